"""A point server: ``python -m nb2prod.sweep.point`` runs a sweep's runs, one at a time.

It reads one :class:`~nb2prod.sweep.jobs.Job` as a JSON line from standard input, runs the
pipeline exactly as ``nb2prod run`` would (in the job's project folder, with the job's
environment, tracked unless the job says not to, Ctrl-C and SIGTERM recording the run as
interrupted), answers with the run's outcome as one JSON line after
:data:`~nb2prod.sweep.jobs.RESULT_PREFIX`, and waits for the next job. It ends at end of input,
or when no job has come for :data:`IDLE_EXIT` seconds (a Dask worker's server outlives the sweep
that started it).

Why a server and not a process per run: papermill, jupytext and the runner take seconds to
import on a busy machine, a large part of a short run, and a process per run pays them every
time (measured: 8 points, 2 at a time, a process per run took 1.6-2.0x the time of processes
kept warm). Why a process at all, not a thread: ``run_pipeline`` owns process-wide things (the
working folder, ``os.environ`` that its MLflow worker and kernels inherit, signal handlers), so
each run gets a process to itself while it runs.
"""

from __future__ import annotations

import json
import os
import select
import sys
import traceback
from typing import IO, Any

from .jobs import RESULT_PREFIX

IDLE_EXIT = 300.0  # seconds without a job before the server ends


def outcome(record: dict[str, Any], exit_code: int, tracking_error: str | None) -> dict[str, Any]:
    """What the sweep reports of a run: its id, status, metrics, each step's state, and for a
    failure the first failed step's message, cell and notebook."""
    steps = record.get("steps") or {}
    error = None
    for name, step in steps.items():
        problem = step.get("error")
        if step.get("state") in ("failed", "interrupted") and problem:
            cell = f" in notebook {problem['cell']}" if problem.get("cell") else ""
            notebook = f" ({step['notebook']})" if step.get("notebook") else ""
            error = f"step {name} {step['state']}{cell}: {problem.get('message', '')}{notebook}"
            break
    return {
        "id": record["id"],
        "status": record["status"],
        "exit_code": exit_code,
        "duration": record.get("duration"),
        "metrics": record.get("metrics") or {},
        "steps": {name: step.get("state") for name, step in steps.items()},
        "error": error or record.get("error"),
        "tracking_error": tracking_error,
    }


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """The job's run, in the current process; its outcome."""
    from ..errors import Nb2prodError
    from ..run.runner import run_pipeline
    from ..run_folder import run_dir, runs_home

    run_id = job["run_id"]
    if run_dir(runs_home(), run_id).exists():
        run_id = None  # a task Dask retried after losing its worker: a run folder of its own
    try:
        result = run_pipeline(
            job["version_dir"],
            job["params"],
            steps=job.get("steps"),
            track=bool(job["track"]),
            handle_signals=True,
            run_id=run_id,
            tags=job.get("tags") or {},
        )
    except Nb2prodError as exc:
        return _problem(job, exc.message, "error", exc.exit_code)
    tracking = result.tracking
    failed = tracking.error if tracking is not None and not tracking.ok else None
    return outcome(result.record, result.exit_code, failed)


def _problem(job: dict[str, Any], message: str, status: str, code: int) -> dict[str, Any]:
    """The outcome of a run that did not get to its steps: the folder it may have made."""
    from ..run_folder import run_dir, runs_home

    made = run_dir(runs_home(), job["run_id"]).is_dir()
    return {
        "id": job["run_id"] if made else None,
        "status": status,
        "exit_code": code,
        "error": message,
    }


def _warm() -> None:
    """What every run imports, once, while the server waits for its first job."""
    from ..gc_tuning import imports_without_gc

    with imports_without_gc():
        import jupytext  # noqa: F401
        import papermill  # noqa: F401

        from ..run import runner  # noqa: F401


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer jobs until the end of input or :data:`IDLE_EXIT` seconds without one."""
    base = dict(os.environ)
    _warm()
    while True:
        ready, _, _ = select.select([requests], [], [], IDLE_EXIT)
        line = requests.readline() if ready else ""
        if not line.strip():
            return
        job = json.loads(line)
        # Each run as if started afresh in its project: the environment, then the folder.
        os.environ.clear()
        os.environ.update({**base, **(job.get("env") or {})})
        try:
            os.chdir(job["cwd"])
            answer = run_one(job)
        except KeyboardInterrupt:  # Ctrl-C before the runner took over its signals
            answer = _problem(job, "interrupted before its steps started", "interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - nb2prod's own failure: said, and served on
            traceback.print_exc()
            why = f"nb2prod could not run it ({type(exc).__name__}: {exc})"
            answer = _problem(job, why, "error", 1)
        replies.write(RESULT_PREFIX + json.dumps(answer, default=repr) + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints must not get mixed into the replies
    try:
        serve(sys.stdin, replies)
    except KeyboardInterrupt:  # Ctrl-C between runs: the sweep is stopping
        pass
    sys.stderr.flush()
    # Everything is on disk and answered: tearing down papermill and ZeroMQ only costs time.
    os._exit(0)


if __name__ == "__main__":
    main()
