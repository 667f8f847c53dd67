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
    """Receives the runner's events (``observer``) and shows them.

    Step events carry the step's record. Run-level events have no step: ``tracking`` and
    ``tracked`` (the MLflow phase after the steps, with run.json's ``tracking``) and ``warning``.
    A failed step gets one line here; the end-of-run summary gives the details.
    """

    def __init__(self, steps: list[str], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.plain = plain_wanted(self.stream)
        self.steps = steps
        self.state: dict[str, dict[str, Any]] = {s: {"state": "queued"} for s in steps}
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.drawn = 0
        self.width = max((len(s) for s in steps), default=4)
        self.tracking: dict[str, Any] | None = None

    def __call__(self, event: str, step: str, record: dict[str, Any]) -> None:
        with self.lock:
            if not step:
                self._run_event(event, record)
                return
            self.state[step] = record
            if self.plain:
                self._line(step, record)
            else:
                self._redraw()

    def _run_event(self, event: str, record: dict[str, Any]) -> None:
        if event == "warning":
            self._finish_block()
            self.stream.write(f"warning: {record.get('message', '')}\n")
        elif event in ("tracking", "tracked"):
            self.tracking = record
            if self.plain:
                self._write_line("", self._describe_tracking(record))
            else:
                self._redraw()
            return
        self.stream.flush()

    def _describe_tracking(self, record: dict[str, Any]) -> str:
        if record.get("state") != "done":
            return "logging to MLflow…"
        took = f" in {record.get('duration') or 0:.1f}s"
        if record.get("ok"):
            return f"logged to MLflow{took}"
        return f"MLflow logging failed{took} (see below)"

    def _describe(self, record: dict[str, Any]) -> str:
        state = record.get("state", "queued")
        text = state
        if record.get("duration") is not None and state in ("succeeded", "failed"):
            text += f" in {record['duration']:.1f}s"
        if state == "running" and record.get("reason") not in (None, "no earlier run computed it"):
            text += f" ({record['reason']})"
        if state == "cached":
            text += f" (reused from {record.get('cached_from')})"
        if state in ("failed", "skipped") and record.get("error"):
            text += f": {_first_line(record['error'].get('message', ''))}"
        return text

    def _line(self, step: str, record: dict[str, Any]) -> None:
        state = record.get("state", "queued")
        self._write_line(f"{MARK.get(state, '?')} {step:<{self.width}}", self._describe(record))

    def _write_line(self, label: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:6.1f}s] {label}{'  ' if label else ''}{text}\n")
        self.stream.flush()

    def _finish_block(self) -> None:
        """Leave the live block where it is, so a line written now does not get overdrawn."""
        self.drawn = 0

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
        if self.tracking is not None:
            out.append(f"\x1b[2K   {self._describe_tracking(self.tracking)}\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = len(self.steps) + (self.tracking is not None)


def _first_line(text: str, limit: int = 120) -> str:
    """The first line of a message, cut to fit a progress line."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
