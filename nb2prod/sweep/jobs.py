"""One task of a sweep: a whole run in a warm Python process of its own, wherever the task runs.

:func:`run_job` is what a local thread or a Dask worker's thread calls. It hands the job to an
idle point server of this process (:mod:`nb2prod.sweep.point`; one is started when none is
idle) and answers with that run's outcome as plain JSON data. A server runs one job at a time,
in the job's project folder with the job's environment, so runs never share a working folder,
environment or signal handlers, while the seconds of imports are paid once per server, not once
per run. Locally the executor starts its servers ahead (:func:`prestart`) and stops them at the
end (:func:`close_servers`); on a Dask worker they end on their own once idle.

Also here: which steps a sweep shares between its points (:func:`shared_steps`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline import PipelineSpec

#: A point server's answers are the lines starting with this.
RESULT_PREFIX = "nb2prod-sweep-result: "
STDERR_TAIL = 1500  # characters of a dead server's standard error kept in the message


@dataclass(frozen=True)
class Job:
    """A whole run as a task: plain data, so that it travels to a Dask worker as it is."""

    version_dir: str  # absolute
    cwd: str  # absolute: the project folder, where the run starts as `nb2prod run` would
    run_id: str  # chosen by the sweep, so a point that dies still has its folder's name
    params: dict[str, Any]
    tags: dict[str, str]
    track: bool
    env: dict[str, str] = field(default_factory=dict)  # NB2PROD_HOME, MLFLOW_TRACKING_URI
    steps: list[str] | None = None  # only these (and what they need): the shared steps' run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shared_steps(spec: PipelineSpec, swept: Iterable[str]) -> list[str]:
    """The steps whose results every point of a sweep over ``swept`` can share, in run order:
    those that use none of the swept parameters, whose upstream steps do not either, and that
    the cache may reuse (with their upstream). Computing them once, before the points, lets
    every point reuse them from the cache instead of computing them side by side."""
    names = set(swept)
    varying = spec.downstream({s.name for s in spec.steps if names & set(s.parameters)})
    uncached = spec.downstream({s.name for s in spec.steps if not s.cache})
    return [s.name for s in spec.steps if s.name not in varying | uncached]


class PointServer:
    """A ``python -m nb2prod.sweep.point`` process and the end of it that sends it jobs."""

    def __init__(self) -> None:
        # Its standard error (kernels' and libraries' noise) goes to a file, read back only to
        # explain a server that died: appended to, so reading never moves the writer; unlinked
        # at once, so nothing is left behind however the server ends.
        fd, log = tempfile.mkstemp(prefix="nb2prod-sweep-", suffix=".log")
        os.close(fd)
        try:
            self.errors = open(log, "rb")  # noqa: SIM115 - kept open for the server's life
            with open(log, "ab") as errors:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "nb2prod.sweep.point"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                    # Out of the terminal's process group: Ctrl-C reaches the sweep, which
                    # passes it on once to the servers running a job (interrupt_children).
                    start_new_session=True,
                )
        finally:
            os.unlink(log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        written = os.fstat(self.errors.fileno()).st_size
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith(RESULT_PREFIX):
                    answer: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                    return answer
        except (OSError, ValueError):
            pass  # the server died
        self.errors.seek(written)
        tail = self.errors.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]
        code = self.proc.wait()
        return _problem(
            job,
            f"the run's process on {socket.gethostname()} ended with exit code {code} without "
            "a result" + (f": {tail}" if tail else "."),
        )

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.send_signal(signal.SIGINT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # end of input: the server ends
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


_idle: list[PointServer] = []  # this process's servers waiting for a job
_busy: set[PointServer] = set()
_lock = threading.Lock()


def prestart(count: int) -> None:
    """Have ``count`` servers in this process, starting those missing now, so that their
    imports overlap whatever runs first (a Dask worker may have some left from a sweep)."""
    with _lock:
        ended = [s for s in _idle if not s.alive()]  # idle too long, on a Dask worker
        _idle[:] = [s for s in _idle if s not in ended]
        missing = count - len(_idle) - len(_busy)
    for server in ended:
        server.close()
    servers = [PointServer() for _ in range(max(0, missing))]
    with _lock:
        _idle.extend(servers)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` (a :class:`Job` as JSON data) on an idle point server of this process; its
    outcome, as :func:`nb2prod.sweep.point.outcome` words it. Never raises for a failed run."""
    cwd = Path(job["cwd"])
    if not (cwd.is_dir() and Path(job["version_dir"]).is_dir()):
        return _problem(
            job,
            f"the project folder {cwd} (or its pipeline {job['version_dir']}) is not on "
            f"{socket.gethostname()}. Fix: make the project folder available at the same path "
            "on every Dask worker (a shared mount), or run the sweep without --cluster.",
        )
    with _lock:
        while _idle and not _idle[-1].alive():  # ended while idle (on a Dask worker)
            _idle.pop().close()
        server = _idle.pop() if _idle else None
    if server is None:
        try:
            server = PointServer()
        except OSError as exc:
            return _problem(job, f"could not start Python on {socket.gethostname()} ({exc}).")
    with _lock:
        _busy.add(server)
    try:
        return server.run(job)
    finally:
        with _lock:
            _busy.discard(server)
            if server.alive():
                _idle.append(server)
            else:
                server.close()


def interrupt_children() -> None:
    """Pass Ctrl-C on to the runs under way, once: they stop and record themselves as
    interrupted. (Once: a second SIGINT while the runner handles the first can hang it.)"""
    with _lock:
        for server in _busy:
            server.interrupt()


def close_servers() -> None:
    """Stop this process's idle servers (those still running a job stop when it ends)."""
    with _lock:
        servers = list(_idle)
        _idle.clear()
    for server in servers:
        server.close()


def _problem(job: dict[str, Any], message: str) -> dict[str, Any]:
    """The outcome of a job whose run could not start or report."""
    return {"id": job["run_id"], "status": "error", "exit_code": 1, "error": message}
