"""Run progress on the terminal: a live display on a TTY, plain lines in CI or pipes."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

MARK = {
    "queued": "·",
    "running": "…",
    "succeeded": "✓",
    "cached": "↺",
    "failed": "✗",
    "skipped": "-",
    "interrupted": "!",
}


def plain_wanted(stream: TextIO) -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or not stream.isatty()


class Progress:
    """Receives the runner's step events (``observer``) and shows them."""

    def __init__(self, steps: list[str], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.plain = plain_wanted(self.stream)
        self.steps = steps
        self.state: dict[str, dict[str, Any]] = {s: {"state": "queued"} for s in steps}
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.drawn = 0
        self.width = max((len(s) for s in steps), default=4)

    def __call__(self, event: str, step: str, record: dict[str, Any]) -> None:
        with self.lock:
            self.state[step] = record
            if self.plain:
                self._line(step, record)
            else:
                self._redraw()

    def _describe(self, record: dict[str, Any]) -> str:
        state = record.get("state", "queued")
        text = state
        if record.get("duration") is not None and state in ("succeeded", "failed"):
            text += f" in {record['duration']:.1f}s"
        if state == "cached":
            text += f" (reused from {record.get('cached_from')})"
        if state in ("failed", "skipped") and record.get("error"):
            text += f": {record['error'].get('message', '')}"
        return text

    def _line(self, step: str, record: dict[str, Any]) -> None:
        state = record.get("state", "queued")
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"[{elapsed:6.1f}s] {MARK.get(state, '?')} {step:<{self.width}}  "
            f"{self._describe(record)}\n"
        )
        self.stream.flush()

    def _redraw(self) -> None:
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}F")  # back to the first line of the block
        for step in self.steps:
            record = self.state[step]
            out.append(
                f"\x1b[2K {MARK.get(record.get('state', 'queued'), '?')} "
                f"{step:<{self.width}}  {self._describe(record)}\n"
            )
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = len(self.steps)
