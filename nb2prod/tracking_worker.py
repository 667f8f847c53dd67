"""MLflow logging in a process of its own.

Importing MLflow and opening its store costs seconds of pure-Python work. Done in a thread of
the runner, it would hold the interpreter lock while the runner drives the step kernels; in a
separate, lower-priority process it overlaps the steps instead. The runner starts the worker
when a run begins and hands it the run folder when the run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER_NICENESS = 10  # kernels running steps come first; MLflow's import fills the gaps


class TrackingWorker:
    def __init__(self, models: bool = True, background: bool = True) -> None:
        """``background``: steps will run meanwhile, so let their kernels come first. When every
        step comes from the cache, tracking is the whole run and keeps normal priority."""

        def lower_priority() -> None:
            with contextlib.suppress(OSError):
                os.nice(WORKER_NICENESS)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.tracking_worker", *([] if models else ["--no-models"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lower_priority if background and os.name == "posix" else None,  # noqa: PLW1509
        )

    def log_run(self, run_dir: Path) -> Any:
        from .tracking import Tracker, TrackingResult

        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{Path(run_dir).resolve()}\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            result = TrackingResult(**json.loads(line))
            self.proc.wait(timeout=30)
            return result
        except (OSError, ValueError, TypeError, subprocess.SubprocessError):
            self.close()
            # The worker died; log from this process instead, so the run is still tracked.
            return Tracker(warm=False).log_run(run_dir)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)


def main() -> None:
    import signal

    # Ctrl-C reaches the whole process group; the runner decides, and still logs the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .tracking import Tracker

    tracker = Tracker(warm=True, models="--no-models" not in sys.argv)
    line = sys.stdin.readline().strip()
    if not line:  # the run was abandoned before it finished
        return
    result = tracker.log_run(Path(line))
    sys.stdout.write(json.dumps(result.to_json()) + "\n")
    sys.stdout.flush()
    # Everything is logged and reported; tearing down MLflow's modules only costs time.
    os._exit(0)


if __name__ == "__main__":
    main()
