"""A fork server for step kernels: import once, then fork a fresh kernel process per step.

Each step needs a kernel of its own, and every new kernel used to pay for starting Python,
IPython and ipykernel and then importing the step's libraries (pandas, scikit-learn...): about
1.5 s of CPU per step, which on a small machine costs more than many steps' own work. The zygote
pays for those imports once. Each kernel is then a ``fork`` of it: a separate process that starts
with the libraries already imported and nothing else, since the zygote never runs user code
beyond ``import`` statements. No state passes between steps.

Protocol, one JSON object per line: the runner writes requests to the zygote's stdin and reads
one reply per request from its stdout.

- ``{"op": "preload", "code": "import pandas as pd\\n..."}``: run a step's import cell in a
  throwaway namespace. Failures are ignored: the step's own run will report them.
- ``{"op": "spawn", "argv": [...], "env": {...}, "cwd": "..."}``: fork a kernel that runs
  ``IPKernelApp`` with ``argv``. Replies ``{"pid": N}``.

When its stdin closes (the runner exits or dies) the zygote kills the kernels it forked and exits.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

# ipykernel sets this when it starts. Set it before anything imports matplotlib, so plotting
# libraries imported here choose the same backend as in a kernel started the usual way.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class Zygote:
    """The runner's end of a :mod:`nb2prod.kernel_zygote` process. Thread-safe."""

    def __init__(self, preload: Sequence[str] = (), socket_dir: str | None = None) -> None:
        """``socket_dir``: the kernels' socket folder, which the zygote removes when it stops,
        so it goes even when the runner is killed."""
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.kernel_zygote", *([socket_dir] if socket_dir else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops kernels itself
        )
        self._ready = False
        # Kernels fork only once the steps' imports are in, or they would import them again.
        self.preloaded = threading.Event()
        threading.Thread(target=self._preload, args=(list(preload),), daemon=True).start()

    def _preload(self, codes: list[str]) -> None:
        try:
            for code in codes:
                if code.strip():
                    self._request({"op": "preload", "code": code})
        except (OSError, ValueError):
            pass  # spawning will report a zygote that is gone
        finally:
            self.preloaded.set()

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            if not self._ready:  # the zygote announces itself once its imports are done
                if not self.proc.stdout.readline():
                    raise OSError("the kernel fork server did not start")
                self._ready = True
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise OSError("the kernel fork server stopped")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        self.preloaded.wait(120)
        return int(self._request({"op": "spawn", "argv": argv, "env": env, "cwd": cwd})["pid"])

    def close(self) -> None:
        """Stop the zygote; it kills any kernel still running, so none is left behind."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _reap(signum: int, frame: Any) -> None:
    """Collect exited kernels at once, so their PIDs disappear and the runner sees them gone."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(argv: list[str], env: dict[str, str], cwd: str, replies: IO[bytes]) -> None:
    """In the forked process: become a kernel. Never returns."""
    code = 1
    try:
        gc.enable()  # the zygote only imports, with the collector off; user code needs it on
        os.setsid()  # its own process group, as jupyter_client gives kernels it starts
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        replies.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # the kernel's own prints go where a normal kernel's would: stderr
        os.close(devnull)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
        import ipykernel_launcher

        sys.argv = [ipykernel_launcher.__file__, *argv]  # as in a kernel started the usual way
        if "numpy" in sys.modules:  # forks share the zygote's global random state otherwise
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp

        # The parent whose exit stops the kernel: the zygote (ipykernel read JPY_PARENT_PID when
        # the zygote imported it, so pass it explicitly).
        IPKernelApp.launch_instance(argv=[*argv, f"--IPKernelApp.parent_handle={os.getppid()}"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report and leave: this process is a kernel
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(requests: IO[bytes], replies: IO[bytes], socket_dir: str | None = None) -> None:
    children: set[int] = set()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when kernels stop
    try:
        for line in requests:
            request = json.loads(line)
            reply: dict[str, Any] = {}
            if request["op"] == "preload":
                try:
                    exec(compile(request["code"], "<step imports>", "exec"), {})  # noqa: S102
                except BaseException as exc:  # noqa: BLE001 - the step's run reports it
                    reply["error"] = f"{type(exc).__name__}: {exc}"
            elif request["op"] == "spawn":
                gc.freeze()  # see nb2prod.gc_tuning: the kernel never walks what was imported
                pid = os.fork()
                if pid == 0:
                    _child(request["argv"], request["env"], request["cwd"], replies)
                children.add(pid)
                reply["pid"] = pid
            replies.write(json.dumps(reply).encode() + b"\n")
            replies.flush()
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)


def main() -> None:
    # Only imports run here; they create no garbage worth collecting (see nb2prod.gc_tuning).
    gc.disable()
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    import ipykernel.kernelapp  # noqa: F401 - the part of every kernel's start-up worth sharing

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from imported libraries must not corrupt the reply stream
    replies.write(b'{"ready": true}\n')
    replies.flush()
    serve(sys.stdin.buffer, replies, sys.argv[1] if len(sys.argv) > 1 else None)
    os._exit(0)  # tearing down the imported libraries would only delay the runner's exit


if __name__ == "__main__":
    main()
