"""One task of a sweep: a whole run in a Python process of its own, wherever the task runs.

:func:`run_job` is what a local thread or a Dask worker calls. It starts
``python -m nb2prod.sweep.point`` (see :mod:`nb2prod.sweep.point`) in the sweep's project folder
and answers with that run's outcome as plain JSON data. A process per run because
``run_pipeline`` owns process-wide things (its kernels, the zygote they fork from, signal
handlers, ``os.environ`` for MLflow) and a Dask worker runs tasks side by side in threads, in
daemon processes that may not start multiprocessing children; and because the run's folder and
MLflow store must be found from the project folder, not from wherever the worker started.

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
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline import PipelineSpec

#: The last line a point process prints on its standard output starts with this.
RESULT_PREFIX = "nb2prod-sweep-result: "
STDERR_TAIL = 1500  # characters of a crashed point process's standard error kept in the message

_children: set[subprocess.Popen[str]] = set()  # the point processes running in this process
_children_lock = threading.Lock()


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


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` (a :class:`Job` as JSON data) in a process of its own; its outcome, as
    :func:`nb2prod.sweep.point.outcome` words it. Never raises for a failed run."""
    host = socket.gethostname()
    cwd = Path(job["cwd"])
    if not (cwd / job["version_dir"]).is_dir():  # version_dir is absolute: the join keeps it
        return _problem(
            job,
            f"the project folder {cwd} (or its pipeline {job['version_dir']}) is not on {host}. "
            "Fix: make the project folder available at the same path on every Dask worker "
            "(a shared mount), or run the sweep without --cluster.",
        )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.sweep.point"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, **job.get("env", {})},
            text=True,
        )
    except OSError as exc:
        return _problem(job, f"could not start Python on {host} ({exc}).")
    with _children_lock:
        _children.add(proc)
    try:
        stdout, stderr = proc.communicate(json.dumps(job))
    finally:
        with _children_lock:
            _children.discard(proc)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = stderr.strip()[-STDERR_TAIL:]
    return _problem(
        job,
        f"the run's process on {host} ended with exit code {proc.returncode} without a result"
        + (f": {tail}" if tail else "."),
    )


def interrupt_children() -> None:
    """Pass Ctrl-C on to the runs under way, which then stop and record themselves as
    interrupted (when Ctrl-C came from a terminal, they had it already; twice does no harm)."""
    with _children_lock:
        for proc in _children:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGINT)


def _problem(job: dict[str, Any], message: str) -> dict[str, Any]:
    """The outcome of a job whose run could not start or report."""
    return {"id": job["run_id"], "status": "error", "exit_code": 1, "error": message}
