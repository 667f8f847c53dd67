"""A sweep's run: ``python -m nb2prod.sweep.point``, a :class:`~nb2prod.sweep.jobs.Job` as JSON
on standard input.

It runs the pipeline exactly as ``nb2prod run`` would (in the project folder it was started in,
tracked unless the job says not to, Ctrl-C and SIGTERM recording the run as interrupted), then
prints its outcome as one JSON line after :data:`~nb2prod.sweep.jobs.RESULT_PREFIX`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .jobs import RESULT_PREFIX


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


def main() -> int:
    from ..errors import Nb2prodError
    from ..run.runner import run_pipeline
    from ..run_folder import run_dir, runs_home

    job = json.loads(sys.stdin.read())
    run_id = job["run_id"]
    if run_dir(runs_home(), run_id).exists():
        run_id = None  # a task Dask retried after losing its worker: a run folder of its own
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints must not get mixed into the result line
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
        answer = {"id": None, "status": "error", "exit_code": exc.exit_code}
        answer["error"] = exc.message
        code = exc.exit_code
    else:
        tracking = result.tracking
        failed = tracking.error if tracking is not None and not tracking.ok else None
        answer = outcome(result.record, result.exit_code, failed)
        code = result.exit_code
    replies.write(RESULT_PREFIX + json.dumps(answer, default=repr) + "\n")
    replies.flush()
    return code


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is on disk and reported: tearing down papermill, MLflow and ZeroMQ only costs
    # time (~0.4 s a run), as for `nb2prod run`.
    os._exit(code)
