"""A run the server started: ``python -m nb2prod.server.run_job <home>/jobs/<id>.json``.

The server starts this in its root folder, in a session of its own, with its output going to
``<home>/jobs/<id>.log``. It runs the pipeline exactly as ``nb2prod run`` would, under the id
the server already answered with, so ``run.json`` appears in ``<home>/runs/<id>/``. A problem
found before the run starts (the pipeline was deleted meanwhile, say) goes to
``<home>/jobs/<id>.error``, which the server reports as the run's error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    from ..errors import Nb2prodError
    from ..run.runner import run_pipeline

    job_file = Path(argv[0])
    job = json.loads(job_file.read_text("utf-8"))
    # Only what the request set: run_pipeline's defaults stay the one place defaults live.
    gate_options: dict[str, Any] = {}
    if job.get("gates"):
        gate_options["gates"] = list(job["gates"])
    if job.get("baseline"):
        gate_options["baseline"] = job["baseline"]
    if job.get("promote"):
        gate_options["promote"] = True
    try:
        result = run_pipeline(
            job["version_dir"],
            job.get("params") or {},
            steps=job.get("steps"),
            no_cache=bool(job.get("no_cache")),
            track=True,
            handle_signals=True,  # SIGTERM records the run as interrupted and stops its kernels
            run_id=job["id"],
            **gate_options,
        )
    except Nb2prodError as exc:
        job_file.with_suffix(".error").write_text(exc.message + "\n", "utf-8")
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    print(f"{result.record['pipeline']} v{result.record['version']}: {result.status}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
