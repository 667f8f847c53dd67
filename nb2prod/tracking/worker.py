"""MLflow logging in a process of its own.

Importing MLflow and opening its store costs over a second of pure-Python work, the floor of
every tracked run and nearly all of a run whose steps come from the cache. Done in a thread of
the runner, it would hold the interpreter lock while the runner drives the step kernels; in a
separate process it overlaps the steps instead, at lower priority once steps are running. The
runner starts the worker before anything else and hands it the run folder when the run ends.

Protocol, one JSON object per line to the worker:

- ``{"models": bool}`` once the runner knows whether a step that can make a model will run
  (optional; the worker then imports the model-logging machinery too, in the background);
- ``{"open_step": {"run_dir": path, "step": name}}`` just before a step whose code calls MLflow
  runs (any number, answered in order): the worker creates the run's parent run (the first
  time) and the step's nested run, and answers ``{"env": {...}, "opened": {...}}``, the step
  kernel's environment and the runs created so far
  (:class:`~nb2prod.tracking.mlflow_log.OpenedRuns`);
- ``{"serving": {"version_dir": path, "run_dir": path}}`` when the steps succeeded and the
  version has a serving function: the worker builds and checks the run's serving model
  (:func:`nb2prod.serving.build.build_and_check`) and answers with the outcome;
- ``{"run_dir": path}`` when the run folder is complete: the worker logs it, reusing the runs it
  opened, answers with a :class:`~nb2prod.tracking.mlflow_log.TrackingResult` as JSON, and exits.

End of input means the run was abandoned: the worker ends the runs it opened as KILLED and
exits without logging.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

WORKER_NICENESS = 10  # kernels running steps come first; MLflow's import fills the gaps
ABANDON_GRACE = 15.0  # seconds an abandoned worker may take to end the runs it opened


class TrackingWorker:
    """The runner's end of a tracking worker. Start it as early as possible."""

    def __init__(self) -> None:
        self.models = True
        # Run folder -> the runs the worker opened for it (OpenedRuns as JSON): should the worker
        # die, this process logs the run itself and still reuses them.
        self.opened: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # one exchange at a time; steps ask from their threads
        self._broken = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.tracking.worker"],
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
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._send({"models": models})
        if background and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, WORKER_NICENESS)

    def _ask(self, message: dict[str, Any]) -> Any:
        assert self.proc.stdout is not None
        self._send(message)
        return json.loads(self.proc.stdout.readline())

    def open_step(self, run_dir: Path, step: str) -> dict[str, str]:
        """Create ``step``'s MLflow runs; the environment its kernel needs to log into them.

        Thread-safe; waits for the worker to have MLflow ready. ``{}`` when tracking is not
        possible (the final :meth:`log_run` reports why). See
        :meth:`nb2prod.tracking.mlflow_log.Tracker.open_step`.
        """
        key = str(Path(run_dir).resolve())
        with self._lock:
            if self._broken:
                return {}
            try:
                reply = self._ask({"open_step": {"run_dir": key, "step": step}})
                if reply.get("opened"):
                    self.opened[key] = dict(reply["opened"])
                return {str(k): str(v) for k, v in (reply.get("env") or {}).items()}
            except (OSError, ValueError, TypeError, AttributeError):
                self._broken = True  # the worker died; log_run logs from this process
                return {}

    def find_baseline(self, kind: str, value: str, pipeline: str) -> dict[str, Any]:
        """See :meth:`nb2prod.tracking.mlflow_log.Tracker.find_baseline`; waits for the worker
        to have MLflow ready."""
        with self._lock:
            try:
                if self._broken:
                    raise OSError("the tracking worker stopped")
                reply = self._ask(
                    {"baseline": {"kind": kind, "value": value, "pipeline": pipeline}}
                )
                return dict(reply)
            except (OSError, ValueError, TypeError) as exc:
                self._broken = True
                return {"baseline": None, "error": f"the tracking worker stopped ({exc})"}

    def build_serving(self, version_dir: Path, run_dir: Path) -> dict[str, Any] | None:
        """The run's serving model, built and checked here (MLflow is imported already): the
        outcome as JSON, or None when the worker stopped (the caller builds it elsewhere)."""
        with self._lock:
            try:
                if self._broken:
                    return None
                request = {"version_dir": str(version_dir), "run_dir": str(run_dir)}
                return dict(self._ask({"serving": request}))
            except (OSError, ValueError, TypeError):
                self._broken = True
                return None

    def log_run(self, run_dir: Path) -> Any:
        from .mlflow_log import OpenedRuns, Tracker, TrackingResult

        key = str(Path(run_dir).resolve())
        with self._lock:
            try:
                if self._broken:
                    raise OSError("the tracking worker stopped")
                result = TrackingResult(**self._ask({"run_dir": key}))
            except (OSError, ValueError, TypeError):
                self._stop(grace=0)
                # The worker died; log from this process instead, so the run is still tracked,
                # into the runs it opened, if any.
                opened = OpenedRuns.from_json(self.opened[key]) if key in self.opened else None
                return Tracker(models=self.models).log_run(run_dir, opened=opened)
            # Logged and answered: a worker slow to exit is stopped, never logged again.
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._stop(grace=0)
            return result

    def close(self) -> None:
        """Stop the worker if it is still running (an abandoned or failed start of a run).

        A worker that opened runs gets a moment to end them as KILLED.
        """
        self._stop(grace=ABANDON_GRACE if self.opened and not self._broken else 0)

    def _stop(self, grace: float) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(Exception):
            if grace > 0 and self.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)


def _read(stream: IO[str]) -> dict[str, Any] | None:
    line = stream.readline()
    if not line.strip():
        return None
    message = json.loads(line)
    return message if isinstance(message, dict) else None


def _reply(replies: IO[str], message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def _warm_models(tracker: Any) -> None:
    from ..gc_tuning import imports_without_gc

    with imports_without_gc():
        tracker.warm_models()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The worker: warm up, take the protocol's messages from ``requests``, log, answer."""
    # Ctrl-C reaches the whole process group; the runner decides, and still logs the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..gc_tuning import imports_without_gc

    with imports_without_gc():
        from .mlflow_log import Tracker, _run_key

        tracker = Tracker(models=True)
        tracker.warm_store()
    warming: threading.Thread | None = None
    while True:
        message = _read(requests)
        if message is None:  # the run was abandoned before it ended
            tracker.abandon()
            return
        if "models" in message:
            tracker.models = bool(message["models"])
            if tracker.models:
                # In the background: a step whose code calls MLflow must not wait for it.
                warming = threading.Thread(target=_warm_models, args=(tracker,), daemon=True)
                warming.start()
        elif isinstance(message.get("open_step"), dict):
            request = message["open_step"]
            run_dir = Path(str(request.get("run_dir")))
            env = tracker.open_step(run_dir, str(request.get("step")))
            opened = tracker.opened.get(_run_key(run_dir))
            _reply(replies, {"env": env, "opened": opened.to_json() if opened else None})
        elif isinstance(message.get("baseline"), dict):
            request = message["baseline"]
            _reply(
                replies,
                tracker.find_baseline(
                    str(request.get("kind")),
                    str(request.get("value")),
                    str(request.get("pipeline")),
                ),
            )
        elif isinstance(message.get("serving"), dict):
            if warming is not None:
                warming.join()
            from ..serving.build import build_and_check

            request = message["serving"]
            outcome = build_and_check(Path(request["version_dir"]), Path(request["run_dir"]))
            _reply(replies, outcome.to_json())
        elif message.get("run_dir"):
            if warming is not None:
                warming.join()
            _reply(replies, tracker.log_run(Path(message["run_dir"])).to_json())
            return


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from MLflow must not corrupt the reply stream
    serve(sys.stdin, replies)
    # Everything is logged and reported; tearing down MLflow's modules only costs time.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
