"""Reading runs back: what ``nb2prod runs`` and the REST API both show, from the same files.

A run's state lives in its folder, ``<home>/runs/<id>/run.json``, rewritten by the runner at
every change. A run the Jupyter server was asked for also has ``<home>/jobs/<id>.json`` (the
request and the process id) before its process writes ``run.json``, and ``<home>/jobs/<id>.error``
when it could not start.

A record only says what its writer last knew. A run killed with ``kill -9`` (or on a machine
that restarted) stays ``running`` in ``run.json`` for ever, so this module reports the status a
reader should believe: a ``running`` or ``queued`` run whose process is gone is
``interrupted``, and so are its unfinished steps, with a ``note`` saying why. It never rewrites
a record. Every record also gets ``active``: whether the run's process still works (after the
steps end it may still be logging to MLflow).

``home`` is ``$NB2PROD_HOME`` or ``.nb2prod``, relative to where ``nb2prod run`` started: the
current folder for the CLI, the server's root folder for the REST API (:func:`runs_home`).
Every path comes from :mod:`nb2prod.run_folder`. This module needs only the standard library
and psutil, so a reader loads neither the runner nor the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .run_folder import (
    JOBS,
    RECORD,
    RUN_ID_RE,
    RUNS,
    job_path,
    jobs_dir,
    record_path,
    run_dir,
    runs_dir,
    runs_home,
)

__all__ = [  # runs_home and the names from run_folder are re-exported for older callers
    "ACTIVE",
    "JOBS",
    "RUNS",
    "RUN_ID_RE",
    "STARTUP_GRACE",
    "list_runs",
    "pipeline_name",
    "process_alive",
    "promotion_due",
    "read_json",
    "read_run",
    "run_size",
    "runs_home",
    "started_epoch",
]

ACTIVE = ("queued", "running")
STARTUP_GRACE = 60.0  # seconds a job may go without a recorded process id before it is failed


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, unreadable or being replaced."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


def started_epoch(record: dict[str, Any]) -> float | None:
    """When a run started (epoch seconds), from its record's ``started_at``; None if unknown."""
    return _epoch(record.get("started_at"))


def _tree_size(folder: str) -> int:
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # gone meanwhile, or not a folder
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += _tree_size(entry.path)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def run_size(home: Path, run_id: str) -> int:
    """Bytes of the files in run ``run_id``'s folder (stat only, links not followed).

    Files a cached run shares with another by hard links count in both: removing one of the
    two frees less (``nb2prod gc --dry-run`` tells how much).
    """
    if not RUN_ID_RE.fullmatch(run_id):
        return 0
    return _tree_size(os.fspath(run_dir(home, run_id)))


def process_alive(pid: object, since: float | None = None) -> bool:
    """Whether process ``pid`` still runs (a zombie does not), and is the one started by then.

    ``since`` (epoch seconds) guards against a reused process id: a process created well after
    the run started is another program.
    """
    import psutil

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or proc.create_time() <= since + 5
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but we may not look at it: assume it is the runner
        return True


def _believed(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """``run.json`` with the status a reader should believe, and ``active``."""
    alive = process_alive(data.get("pid"), _epoch(data.get("started_at")))
    if data.get("status") in ACTIVE and not alive:
        data = read_json(path) or data  # it may have finished between the two reads
        if data.get("status") in ACTIVE:
            data["status"] = "interrupted"
            data["note"] = (
                f"the run's process (pid {data.get('pid')}) ended without finishing its "
                "record: it was killed, or the machine restarted. Steps that had not finished "
                "are shown as interrupted. Fix: start the run again; finished steps are reused."
            )
            for step in (data.get("steps") or {}).values():
                if isinstance(step, dict) and step.get("state") in ACTIVE:
                    step["state"] = "interrupted"
    data["active"] = alive
    return data


def _from_job(job: dict[str, Any], home: Path, run_id: str) -> dict[str, Any]:
    """A run the server was asked for whose process has not written ``run.json`` (yet)."""
    since = job.get("requested_at")
    since = since if isinstance(since, (int, float)) else None
    pid = job.get("pid")
    alive = process_alive(pid, since)
    error_file = job_path(home, run_id, ".error")
    out: dict[str, Any] = {
        "id": run_id,
        "status": "queued",
        "pipeline": job.get("pipeline"),
        "version": job.get("version"),
        "version_dir": job.get("version_dir"),
        "params": job.get("params"),
        "steps": {},
        "active": alive,
    }
    if error_file.is_file():
        out.update(status="failed", error=error_file.read_text("utf-8", "replace").strip())
    elif not alive and (pid is not None or time.time() - (since or 0) > STARTUP_GRACE):
        out.update(
            status="failed",
            error=f"the run's process (pid {pid}) ended before the run started. Fix: see its "
            "log (the `log` path) and start the run again.",
        )
    return out


def read_run(home: Path, run_id: str) -> dict[str, Any] | None:
    """The record of run ``run_id`` as a reader should believe it, or None if there is none.

    ``run_id`` must look like a run id (:data:`RUN_ID_RE`); anything else is None, so an id
    taken from a request can never name a path outside ``home``.
    """
    if not RUN_ID_RE.fullmatch(run_id):
        return None
    record = record_path(run_dir(home, run_id))
    data = read_json(record)
    if data is not None:
        return _believed(data, record)
    job = read_json(job_path(home, run_id))
    if job is None:
        return None
    data = read_json(record)  # the runner may have written it meanwhile
    return _from_job(job, home, run_id) if data is None else _believed(data, record)


def pipeline_name(text: str) -> str:
    """``churn``, ``pipelines/churn`` and ``pipelines/churn/v2`` all name pipeline ``churn``."""
    parts = [p for p in text.replace("\\", "/").split("/") if p]
    if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
        parts.pop()
    return parts[-1] if parts else ""


def list_runs(home: Path, pipeline: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs, newest first, of one pipeline (name or folder) or all.

    Runs the server has queued but not started yet are included.
    """
    ids = {p.parent.name for p in runs_dir(home).glob(f"*/{RECORD}")}
    ids |= {p.stem for p in jobs_dir(home).glob("*.json")}
    name = pipeline_name(pipeline) if pipeline else None
    out: list[dict[str, Any]] = []
    for run_id in sorted((i for i in ids if RUN_ID_RE.fullmatch(i)), reverse=True):
        if len(out) >= limit:
            break
        data = read_run(home, run_id)
        if data is not None and (name is None or data.get("pipeline") == name):
            out.append(data)
    return out


def promotion_due(record: dict[str, Any]) -> bool:
    """Whether a finished run's record asks to become the champion and may: ``--promote``,
    every step succeeded and every gate passed."""
    gates = record.get("gates")
    return (
        record.get("status") == "succeeded"
        and isinstance(gates, dict)
        and bool(gates.get("promote"))
        and gates.get("status") == "passed"
    )
