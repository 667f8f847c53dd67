"""MLflow logging in a process of its own.

Importing MLflow and opening its store costs over a second of pure-Python work, the floor of
every tracked run and nearly all of a run whose steps come from the cache. Done in a thread of
the runner, it would hold the interpreter lock while the runner drives the step kernels; in a
separate process it overlaps the steps instead, at lower priority once steps are running. The
runner starts the worker before anything else and hands it the run folder when the run ends.

Protocol, one JSON object per line to the worker: ``{"models": bool}`` once the runner knows
whether a step that can make a model will run (optional; the worker then imports the
model-logging machinery too), then ``{"run_dir": path}`` when the run folder is complete. The
worker answers the latter with a :class:`~nb2prod.tracking.TrackingResult` as JSON, and exits.
End of input means the run was abandoned: the worker exits without logging.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

WORKER_NICENESS = 10  # kernels running steps come first; MLflow's import fills the gaps


class TrackingWorker:
    """The runner's end of a tracking worker. Start it as early as possible."""

    def __init__(self) -> None:
        self.models = True
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.tracking_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def prepare(self, models: bool, background: bool) -> None:
        """``models``: a step that can make a model will run. ``background``: steps will run
        meanwhile, so let their kernels come first; when every step comes from the cache,
        tracking is the whole run and keeps normal priority."""
        self.models = models
        with contextlib.suppress(OSError, ValueError):
            self._send({"models": models})
        if background and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, WORKER_NICENESS)

    def log_run(self, run_dir: Path) -> Any:
        from .tracking import Tracker, TrackingResult

        assert self.proc.stdout is not None
        try:
            self._send({"run_dir": str(Path(run_dir).resolve())})
            line = self.proc.stdout.readline()
            result = TrackingResult(**json.loads(line))
            self.proc.wait(timeout=30)
            return result
        except (OSError, ValueError, TypeError, subprocess.SubprocessError):
            self.close()
            # The worker died; log from this process instead, so the run is still tracked.
            return Tracker(models=self.models).log_run(run_dir)

    def close(self) -> None:
        """Stop the worker if it is still running (an abandoned or failed start of a run)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)


def _read(stream: IO[str]) -> dict[str, Any] | None:
    line = stream.readline()
    if not line.strip():
        return None
    message = json.loads(line)
    return message if isinstance(message, dict) else None


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The worker: warm up, take the protocol's messages from ``requests``, log, answer."""
    # Ctrl-C reaches the whole process group; the runner decides, and still logs the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .gc_tuning import imports_without_gc

    with imports_without_gc():
        from .tracking import Tracker

        tracker = Tracker(models=True)
        tracker.warm_store()
        message = _read(requests)
        if message is not None and "models" in message:
            tracker.models = bool(message["models"])
            if tracker.models:
                tracker.warm_models()
            message = _read(requests)
    if message is None or not message.get("run_dir"):  # the run was abandoned before it ended
        return
    result = tracker.log_run(Path(message["run_dir"]))
    replies.write(json.dumps(result.to_json()) + "\n")
    replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from MLflow must not corrupt the reply stream
    serve(sys.stdin, replies)
    # Everything is logged and reported; tearing down MLflow's modules only costs time.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
