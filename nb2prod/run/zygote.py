"""A fork server for step kernels: import once, then fork a fresh kernel process per step.

Each step needs a kernel of its own, and every new kernel used to pay for starting Python,
IPython and ipykernel and then importing the step's libraries (pandas, scikit-learn...): about
1.5 s of CPU per step, which on a small machine costs more than many steps' own work. The zygote
pays for those imports once. Each kernel is then a ``fork`` of it: a separate process that starts
with the libraries already imported and nothing else, since the zygote never runs user code
beyond ``import`` statements. No state passes between steps.

A step kernel must be indistinguishable from a kernel Jupyter or papermill starts (the probe in
tests/run/test_kernels.py compares them field by field). Two things stand in the way:

- Libraries that configure themselves from their surroundings when imported. The zygote is not
  a kernel, so pandas would pick terminal display settings there, matplotlib_inline would find
  no shell to hook its figures into, ipywidgets would register no comm target, and every forked
  kernel would inherit that. So the zygote imports only :data:`PRELOADABLE` packages, whose
  imports were checked to come out the same anywhere (pandas only looks for a kernel's shell and
  its stdout encoding, which the zygote shows it, see :func:`_kernel_like`). Any other import
  statement is left to the step's kernel, which runs the step's imports while it warms up.
  Statements are refused before they run, never rolled back: a C extension cannot be imported
  twice, and ``try: import pandas / except ImportError`` in a half-refused import would quietly
  take the wrong branch. If an allowed import brings in an unknown package anyway (a new
  version of a library, say), the zygote is *spoilt*: it forks no kernel, and every step's
  kernel starts as a new process, as with ``NB2PROD_FORK_KERNELS=0``.
- What the fork itself carries over: each child takes the command line, environment, working
  directory, garbage-collector state, warning filters, signal handlers and parent a kernel
  started by jupyter_client has (see :func:`_child`).

Protocol, one JSON object per line: the runner writes requests to the zygote's stdin and reads
one reply per request from its stdout.

- ``{"op": "preload", "code": "import pandas as pd\\n..."}``: import what may be preloaded of a
  step's import statements. Failures are ignored: the step's own run will report them. Replies
  ``{"spoilt": reason}`` once the zygote must not fork any more.
- ``{"op": "spawn", "cmd": [...], "env": {...}, "cwd": "..."}``: fork a kernel as if ``cmd``
  (``python -m ipykernel_launcher ARGS``) had been started with ``env`` in ``cwd``. Replies
  ``{"pid": N}``, or ``{"error": reason}`` when the zygote is spoilt.

When its stdin closes (the runner exits or dies) the zygote kills the kernels it forked and exits.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

# Top-level packages the zygote may import: their import does the same in any process. Checked
# by importing them in the zygote and in a kernel (tests/run/test_kernels.py) and by reading what
# they do at import time: numpy, SciPy, scikit-learn, joblib, threadpoolctl and pyarrow read
# only environment variables (the same in both); scikit-learn and joblib set two (KMP_*), which
# the kernels get too; pandas is handled by _kernel_like. Not here, on purpose: matplotlib
# (backend and inline figures), tqdm and ipywidgets (notebook detection, comm targets), and
# anything unknown.
PRELOADABLE = frozenset(
    {"joblib", "nb2prod", "numpy", "pandas", "pyarrow", "scipy", "sklearn", "threadpoolctl"}
)
# What those import in turn, as indifferent to their surroundings. Any other new top-level
# module (standard library and private extension modules aside) spoils the zygote.
DEPENDENCIES = frozenset(
    {
        "charset_normalizer",
        "cloudpickle",
        "dateutil",
        "narwhals",
        "packaging",
        "psutil",
        "pytz",
        "six",
        "tzdata",
    }
)


class Zygote:
    """The runner's end of a :mod:`nb2prod.run.zygote` process. Thread-safe."""

    def __init__(self, preload: Sequence[str] = (), socket_dir: str | None = None) -> None:
        """``socket_dir``: the kernels' socket folder, which the zygote removes when it stops,
        so it goes even when the runner is killed."""
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.run.zygote", *([socket_dir] if socket_dir else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops kernels itself
        )
        self._ready = False
        self.spoilt: str | None = None  # why kernels must not be forked from this zygote
        # Kernels fork only once the steps' imports are in, or they would import them again.
        self.preloaded = threading.Event()
        threading.Thread(target=self._preload, args=(list(preload),), daemon=True).start()

    def _preload(self, codes: list[str]) -> None:
        try:
            for code in codes:
                if code.strip():
                    reply = self._request({"op": "preload", "code": code})
                    self.spoilt = reply.get("spoilt") or self.spoilt
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

    def usable(self) -> bool:
        """Whether kernels may be forked from it (wait for its preloading first)."""
        self.preloaded.wait(120)
        return self.spoilt is None

    def spawn(self, cmd: list[str], env: dict[str, str], cwd: str) -> int:
        """Fork a kernel as if ``cmd`` had been run with ``env`` in ``cwd``; its PID."""
        self.preloaded.wait(120)
        reply = self._request({"op": "spawn", "cmd": cmd, "env": env, "cwd": cwd})
        if "pid" not in reply:
            raise OSError(reply.get("error", "the kernel fork server refused"))
        return int(reply["pid"])

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


def _top_level_names(node: ast.stmt) -> set[str] | None:
    """The packages an import statement imports from; None for anything else (or relative)."""
    if isinstance(node, ast.Import):
        return {alias.name.partition(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "__future__":
            return None
        return {node.module.partition(".")[0]}
    return None


class _KernelStream(io.TextIOBase):
    """Stands for ipykernel's OutStream while the zygote imports (output goes to stderr)."""

    encoding = "UTF-8"  # what ipykernel's OutStream reports

    def write(self, text: str) -> int:
        return sys.__stderr__.write(text) if sys.__stderr__ is not None else len(text)

    def flush(self) -> None:
        if sys.__stderr__ is not None:
            sys.__stderr__.flush()


class _KernelShell:
    """What pandas looks for in a kernel when imported: a shell with a ``kernel``."""

    kernel = None


@contextlib.contextmanager
def _kernel_like() -> Iterator[None]:
    """Show imports what pandas checks on import in a kernel: ``get_ipython()`` returning a
    shell with a kernel (display.max_columns 20 rather than a terminal's 0), and ipykernel's
    stdout (display.encoding). Nothing else preloaded asks for either."""
    shell = _KernelShell()
    saved = sys.stdout, sys.stderr
    builtins.get_ipython = lambda: shell  # type: ignore[attr-defined]
    sys.stdout = sys.stderr = _KernelStream()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        del builtins.get_ipython  # type: ignore[attr-defined]


def _signal_handlers() -> dict[int, Any]:
    out = {}
    for number in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            out[int(number)] = signal.getsignal(number)
    return out


def _harmless(exc: BaseException, new: set[str]) -> bool:
    """A failed import that left nothing half-imported: the package is not installed, or a
    ``from`` import named something its (fully imported) module does not have."""
    if isinstance(exc, ModuleNotFoundError):
        return not new
    return isinstance(exc, ImportError) and exc.name is not None and exc.name in sys.modules


def _filters() -> list[Any]:
    """``warnings.filters``, the list it is (typeshed calls it a Sequence)."""
    return cast("list[Any]", warnings.filters)


def _split_filters(current: list[Any], base: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """``current`` as (added in front, ``base``, appended), or None if ``base`` is broken up."""
    for start in range(len(current) - len(base) + 1):
        if current[start : start + len(base)] == base:
            return current[:start], current[start + len(base) :]
    return None


def _private(module: str) -> bool:
    """Extension modules that packages install at top level for themselves (Cython's and
    mypyc's shared helpers, SciPy's ``_moduleTNC``...), and aliases such as ``__mp_main__``."""
    return module.startswith("_") or module.endswith("__mypyc")


class Preloader:
    """Imports, in the zygote, what may be imported there of the steps' imports, and keeps what
    those imports changed that a fork would not carry as a kernel expects."""

    def __init__(
        self, allowed: frozenset[str] = PRELOADABLE, dependencies: frozenset[str] = DEPENDENCIES
    ) -> None:
        self.allowed = allowed
        self.known = allowed | dependencies | frozenset(sys.stdlib_module_names)
        self.env = dict(os.environ)
        self.filters = list(warnings.filters)
        self.threads = threading.active_count()
        self.signals = _signal_handlers()
        self.path = list(sys.path)
        self.spoilt: str | None = None

    def preload(self, code: str) -> dict[str, Any]:
        """Run the import statements of ``code`` that may run here; skip the others."""
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return {"skipped": 1}
        skipped = 0
        for node in tree.body:
            names = _top_level_names(node)
            if self.spoilt or names is None or not names <= self.allowed:
                skipped += 1
                continue
            self._run(node, names)
        return {"skipped": skipped, **({"spoilt": self.spoilt} if self.spoilt else {})}

    def _run(self, node: ast.stmt, names: set[str]) -> None:
        before = set(sys.modules)
        failed: BaseException | None = None
        try:
            with _kernel_like():
                exec(compile(ast.Module([node], []), "<step imports>", "exec"), {})  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - judged below; the step reports it
            failed = exc
        new = set(sys.modules) - before
        unknown = sorted(
            {m.partition(".")[0] for m in new} - self.known - {m for m in new if _private(m)}
        )
        what = f"importing {', '.join(sorted(names))}"
        if failed is not None and not _harmless(failed, new):
            # A module that failed half-way leaves its finished submodules behind; importing
            # it again in the kernel would not behave as the first import does.
            self.spoilt = f"{what} failed: {type(failed).__name__}: {failed}"
        elif unknown:
            self.spoilt = f"{what} imported {', '.join(unknown)}, not known to be preloadable"
        elif threading.active_count() != self.threads:
            self.spoilt = f"{what} started a thread, which a fork would lose"
        elif _signal_handlers() != self.signals or sys.path != self.path:
            self.spoilt = f"{what} changed signal handlers or sys.path"
        elif _split_filters(list(warnings.filters), self.filters) is None:
            self.spoilt = f"{what} reordered the warning filters"

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the changes the preloaded imports made to the zygote's environment (as
        ``KMP_INIT_AT_FORK``, set by joblib), which the same imports in a kernel would make."""
        out = dict(env)
        for key in set(self.env) - set(os.environ):
            out.pop(key, None)
        out.update({k: v for k, v in os.environ.items() if self.env.get(k) != v})
        return out

    def own_filters(self) -> tuple[list[Any], list[Any]]:
        """The warning filters the preloaded imports added (in front, and at the end), taken
        out of ``warnings.filters``. A kernel adds its own filters before the user's imports
        run; :meth:`restore_filters` puts these back in the order that gives."""
        front, back = _split_filters(list(warnings.filters), self.filters) or ([], [])
        _filters()[:] = self.filters
        return front, back

    @staticmethod
    def restore_filters(own: tuple[list[Any], list[Any]]) -> None:
        front, back = own
        _filters()[:] = [*front, *warnings.filters, *back]
        mutated = getattr(warnings, "_filters_mutated", None)
        if mutated is not None:  # forget which warnings were already shown under the old list
            mutated()


def _reap(signum: int, frame: Any) -> None:
    """Collect exited kernels at once, so their PIDs disappear and the runner sees them gone."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict[str, Any], preloader: Preloader, replies: IO[bytes]) -> None:
    """In the forked process: become the kernel ``request["cmd"]`` would start. Never returns."""
    code = 1
    try:
        cmd: list[str] = request["cmd"]
        argv = cmd[cmd.index("ipykernel_launcher") + 1 :]
        os.setsid()  # its own process group, as jupyter_client gives kernels it starts
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        replies.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # the kernel's own prints go where a normal kernel's would: stderr
        os.close(devnull)
        os.chdir(request["cwd"])
        env = preloader.environment(request["env"])
        env["JPY_PARENT_PID"] = str(os.getppid())  # as jupyter_client sets it: the parent
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
        # The zygote imported with the collector off and froze what it imported; a kernel
        # keeps long-lived objects in the oldest generation, with the collector on.
        gc.unfreeze()
        gc.enable()
        import ipykernel_launcher

        sys.argv = [ipykernel_launcher.__file__, *argv]  # as in a kernel started the usual way
        sys.orig_argv = list(cmd)
        if "numpy" in sys.modules:  # forks share the zygote's global random state otherwise
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp

        own_filters = preloader.own_filters()
        app = IPKernelApp.instance()
        # The parent whose exit stops the kernel: the zygote. ipykernel read JPY_PARENT_PID
        # when the zygote imported it; set it as a value, not as configuration, as it would be.
        app.parent_handle = os.getppid()
        app.initialize(argv)
        # What the step's imports would have done after the kernel started:
        Preloader.restore_filters(own_filters)
        if "__mp_main__" in sys.modules:  # multiprocessing's alias, made when joblib imported it
            sys.modules["__mp_main__"] = sys.modules["__main__"]
        app.start()
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
    preloader = Preloader()
    try:
        for line in requests:
            request = json.loads(line)
            reply: dict[str, Any] = {}
            if request["op"] == "preload":
                reply = preloader.preload(request["code"])
            elif request["op"] == "spawn" and preloader.spoilt:
                reply["error"] = f"kernels cannot be forked: {preloader.spoilt}"
            elif request["op"] == "spawn":
                gc.freeze()  # see nb2prod.gc_tuning: forks share these pages untouched
                pid = os.fork()
                if pid == 0:
                    _child(request, preloader, replies)
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
    # `python -m` put the runner's folder first on sys.path; a kernel has its own folder
    # there instead, added when it starts (ipykernel_launcher removes its start folder too).
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    import ipykernel.kernelapp  # noqa: F401 - the part of every kernel's start-up worth sharing

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from imported libraries must not corrupt the reply stream
    replies.write(b'{"ready": true}\n')
    replies.flush()
    serve(sys.stdin.buffer, replies, sys.argv[1] if len(sys.argv) > 1 else None)
    os._exit(0)  # tearing down the imported libraries would only delay the runner's exit


if __name__ == "__main__":
    main()
