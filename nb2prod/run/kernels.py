"""One fresh kernel per step, started early and warmed with the step's imports.

Starting a kernel and importing pandas or scikit-learn costs more than many steps' own work.
The runner starts each step's kernel ahead of its turn and runs the step's import cell in it, so
when the step's inputs are ready only its own code is left to run. Kernels are forked from a
:class:`Zygote` that has done the imports once (see :mod:`nb2prod.run.zygote`). Every step
still gets a kernel process of its own: nothing is shared between steps but the files in the
run folder, and the kernel is the one jupyter_client would start, as the step's code sees it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from jupyter_core.utils import run_sync

from .zygote import Zygote

KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]  # no history database in the home folder
# (papermill passes the same). papermill's command also sets this for its kernels, to silence
# debugpy's warning about frozen modules; so do Jupyter's installed kernel specs.
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}
SOCKET_DIR_PREFIX = "nb2prod-kernels-"
# In each socket folder, "PID START" of the runner that made it (a file rather than part of the
# name: a socket's whole path must fit in about 100 bytes).
RUNNER_FILE = "runner"


# A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS). A kernel's
# sockets are "<folder>/<12 hex>-<port>", up to 19 bytes after the folder.
MAX_SOCKET_DIR = 80


def _socket_parent() -> str | None:
    """Where to make socket folders: the temporary directory, or /tmp when its path is too
    long for a socket (a deep $TMPDIR); None when neither will do (kernels then use TCP)."""
    name_len = len(SOCKET_DIR_PREFIX) + 8 + 1
    for parent in (tempfile.gettempdir(), "/tmp"):
        if len(parent) + name_len <= MAX_SOCKET_DIR and os.access(parent, os.W_OK | os.X_OK):
            return parent
    return None


def new_socket_dir() -> str | None:
    """A new private (0700) temporary folder for one run's kernel sockets and connection files,
    or None when no temporary folder has a path short enough for a socket.

    It records this process's PID and start time, so later runs can tell when the runner that
    made it is gone: the zygote removes its run's folder if the runner is killed, but kernels
    started without one (``NB2PROD_FORK_KERNELS=0``) leave no one to do it. Such stale folders
    are removed here first. Only folders of this user, named this way and recording a runner
    that no longer runs, are touched.
    """
    tmp = _socket_parent()
    if tmp is None:
        return None
    _remove_stale_socket_dirs(tmp)
    path = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX, dir=tmp)
    pid = os.getpid()
    Path(path, RUNNER_FILE).write_text(f"{pid} {_started(pid) or 0}\n", encoding="ascii")
    return path


def _started(pid: int) -> int | None:
    """When process ``pid`` started, in whole seconds since the epoch; None if it does not run,
    -1 if that cannot be known (another user's process: count it as running)."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return -1


def _runner_gone(folder: str) -> bool:
    """Whether the runner recorded in a socket folder no longer runs (False when unsure)."""
    try:
        fd = os.open(os.path.join(folder, RUNNER_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="ascii") as f:
            pid, started = (int(n) for n in f.read(100).split())
    except (OSError, ValueError):  # being made, or not ours to judge
        return False
    now = _started(pid)
    # A PID can be reused: the runner still runs only if it started when recorded (with a
    # second's slack, as start times derive from the boot time).
    return now is None or (now != -1 and abs(now - started) > 1)


def _remove_stale_socket_dirs(tmp: str) -> None:
    uid = os.getuid()
    with contextlib.suppress(OSError), os.scandir(tmp) as entries:
        for entry in entries:
            if not entry.name.startswith(SOCKET_DIR_PREFIX):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
            except OSError:
                continue
            if _runner_gone(entry.path):
                shutil.rmtree(entry.path, ignore_errors=True)


class StepTimeout(Exception):
    pass


class KernelDied(Exception):
    pass


class _ForkedProcess:
    """What jupyter_client's LocalProvisioner needs of a Popen, for a kernel the zygote forked
    (the zygote is its parent, so liveness is read from /proc rather than waited for)."""

    stdin = stdout = stderr = None
    returncode: int | None = None

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                with open(f"/proc/{self.pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                if state in (b"Z", b"X"):
                    self.returncode = -1
            except (OSError, IndexError):
                self.returncode = -1
        return self.returncode

    def wait(self) -> int | None:
        return self.poll()

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _forkable(cmd: list[str]) -> bool:
    """Whether ``cmd`` is ``python -m ipykernel_launcher ...`` run by the zygote's own Python,
    with no interpreter options: a kernel spec naming another Python (another environment)
    or options must be started as it says."""
    return (
        len(cmd) > 2
        and cmd[1:3] == ["-m", "ipykernel_launcher"]
        and os.path.abspath(cmd[0]) == os.path.abspath(sys.executable)
    )


class ForkProvisioner(LocalProvisioner):
    """Launches the kernel by forking the zygote instead of starting a new Python."""

    zygote: Zygote | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        zygote = self.zygote
        if zygote is None or not _forkable(cmd) or not zygote.usable():  # start as usual
            return await super().launch_kernel(cmd, **kwargs)
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        try:
            pid = zygote.spawn(cmd, env, cwd)
        except OSError:  # the zygote is gone or refuses: start this kernel as usual
            return await super().launch_kernel(cmd, **kwargs)
        self.process = _ForkedProcess(pid)  # type: ignore[assignment]
        self.pid = self.pgid = pid  # the child calls setsid() first thing
        self.cwd = cwd
        return self.connection_info


class StepKernel:
    def __init__(
        self,
        kernel_name: str,
        cwd: Path,
        zygote: Zygote | None = None,
        socket_dir: str | None = None,
    ) -> None:
        """``socket_dir``: a private folder for the kernel's Unix sockets and connection file
        (the runner makes one per run and removes it, and so does the zygote if the runner is
        killed); without it the kernel listens on TCP ports of 127.0.0.1."""
        # The async manager, as nbclient expects: with a blocking one, a kernel that dies
        # mid-cell leaves nbclient waiting forever on a message that never comes.
        from jupyter_client.manager import AsyncKernelManager

        self.km = AsyncKernelManager(kernel_name=kernel_name)
        if socket_dir is not None:
            name = os.path.join(socket_dir, uuid.uuid4().hex[:12])
            self.km.transport = "ipc"
            self.km.ip = name
            self.km.connection_file = f"{name}.json"  # it holds the kernel's signing key
        if zygote is not None:
            self.km.kernel_id = str(uuid.uuid4())
            provisioner = ForkProvisioner(
                kernel_id=self.km.kernel_id, kernel_spec=self.km.kernel_spec, parent=self.km
            )
            provisioner.zygote = zygote
            self.km.provisioner = provisioner
        self.cwd = cwd
        self.ready = threading.Event()
        # Re-entrant: a second Ctrl-C can arrive while the signal handler is inside shutdown()
        self._lock = threading.RLock()
        self._closed = False
        self.timed_out = False

    def start_and_warm(self, warm_code: Callable[[], str]) -> None:
        """Start the kernel, then run ``warm_code()`` (the step's imports) in it while nothing
        waits for it. Errors are left to the step's real run to report."""
        try:
            with self._lock:
                if self._closed:
                    return
                env = {**KERNEL_ENV, **os.environ}
                run_sync(self.km.start_kernel)(
                    extra_arguments=KERNEL_ARGS, cwd=str(self.cwd), env=env
                )
            code = warm_code()  # worked out while the kernel boots
            if code.strip():
                client = self.km.client()
                client.start_channels()
                try:
                    run_sync(client.wait_for_ready)(timeout=60)
                    # Out of the kernel's history: the step's own cells count from 1.
                    run_sync(client.execute_interactive)(
                        code,
                        store_history=False,
                        timeout=600,
                        output_hook=lambda msg: None,
                        allow_stdin=False,
                    )
                finally:
                    client.stop_channels()
        except Exception:  # noqa: BLE001 - the step's own run will report what is wrong
            pass
        finally:
            self.ready.set()

    def execute(
        self, nb: Any, output: Path, parameters: dict[str, Any], timeout: float | None
    ) -> None:
        """Run ``nb`` in this kernel with papermill, saving the executed notebook to ``output``."""
        import papermill

        logging.getLogger("papermill").setLevel(logging.WARNING)
        self.ready.wait()
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._expire)
            timer.daemon = True
            timer.start()
        try:
            papermill.execute_notebook(
                nb,
                str(output),
                parameters=parameters,
                km=self.km,
                kernel_name=self.km.kernel_name,
                progress_bar=False,
                request_save_on_cell_execute=True,
            )
        except Exception as exc:
            if self.timed_out:
                raise StepTimeout(f"stopped after the {timeout:g} s step timeout") from exc
            if type(exc).__name__ == "DeadKernelError" or not run_sync(self.km.is_alive)():
                raise KernelDied(str(exc) or "the kernel died") from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self) -> None:
        self.timed_out = True
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the kernel process at once (idempotent, safe from any thread)."""
        with self._lock:
            self._closed = True
            with contextlib.suppress(Exception):
                if self.km.has_kernel:
                    run_sync(self.km.shutdown_kernel)(now=True)
