"""The process that builds and checks an untracked run's serving model.

MLflow's import takes over a second; the runner never pays it. It starts this process when the
run starts (``python -m nb2prod.serving``), which imports MLflow's pyfunc machinery at low
priority while the steps run, then waits for one JSON line, ``{"version_dir": ..., "run_dir":
...}``, builds and checks the model (:func:`nb2prod.serving.build.build_and_check`), answers
with the outcome as one JSON line and exits. End of input: exit without building. A tracked run
asks its tracking worker instead, which has MLflow imported already.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

NICENESS = 10  # the steps' kernels come first while MLflow imports


class ServingProcess:
    """The runner's end of the process. Start it as early as possible."""

    def __init__(self, module: Path | None = None, background: bool = True) -> None:
        """``module``: the version's serving module, whose imports the process preloads."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.serving", *([str(module)] if module else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if background and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, NICENESS)

    def build(self, version_dir: Path, run_dir: Path) -> dict[str, Any]:
        """The outcome (:class:`~nb2prod.serving.outcome.ServingOutcome` as JSON); a process
        that died answers with an error, never an exception."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            if hasattr(os, "setpriority"):  # the run waits for it now
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, self.proc.pid, 0)
            request = {"version_dir": str(version_dir), "run_dir": str(run_dir)}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline())
            return dict(reply)
        except (OSError, ValueError, TypeError) as exc:
            return {"status": "failed", "error": f"the serving model's builder stopped ({exc})"}
        finally:
            self.close()

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(Exception):
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _module_imports(module: Path | None) -> str:
    """The top-level import statements of the serving module."""
    import ast

    if module is None:
        return ""
    try:
        tree = ast.parse(module.read_text("utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    return "\n".join(
        ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
    )


def warm(module: Path | None = None) -> None:
    """Import what building a model needs: MLflow's pyfunc, the map of installed
    distributions MLflow checks pinned requirements against (~1 s, once per process), the
    serving module's imports, and scikit-learn, which unpickling a fitted model needs."""
    from ..gc_tuning import imports_without_gc

    with imports_without_gc(), contextlib.suppress(Exception):
        import mlflow.pyfunc  # noqa: F401
        from mlflow.models import infer_signature  # noqa: F401
        from mlflow.utils import requirements_utils

        from . import build, model  # noqa: F401

        requirements_utils._init_modules_to_packages_map()
    with imports_without_gc(), contextlib.suppress(Exception):
        exec(compile(_module_imports(module), "<serving imports>", "exec"), {})  # noqa: S102
    with imports_without_gc(), contextlib.suppress(Exception):
        import sklearn.base  # noqa: F401


def serve(requests: IO[str], replies: IO[str], module: Path | None = None) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides what Ctrl-C means
    warming = threading.Thread(target=warm, args=(module,), daemon=True)
    warming.start()
    line = requests.readline()
    if not line.strip():
        return
    request = json.loads(line)
    warming.join()
    from .build import build_and_check

    outcome = build_and_check(Path(request["version_dir"]), Path(request["run_dir"]))
    replies.write(json.dumps(outcome.to_json()) + "\n")
    replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints (the user's function, MLflow) must not corrupt the reply
    serve(sys.stdin, replies, Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    sys.stdout.flush()
    os._exit(0)
