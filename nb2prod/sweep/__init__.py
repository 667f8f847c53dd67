"""``nb2prod sweep``: a grid of whole runs, locally or on a Dask cluster.

Before anything runs, everything the user typed is checked (the pipeline, the grid in
:mod:`.grid`, ``--sort`` in :mod:`.report`, the cluster in :mod:`.executors`); a problem is an
exit 2 with nothing written. Then the steps that no swept parameter reaches run once
(:func:`.jobs.shared_steps`), so that every point reuses them from the cache, and the points
run, each a whole ``nb2prod run`` in a warm process of its own (:mod:`.jobs`,
:mod:`.point`), tagged in run.json and MLflow with the sweep's id (``nb2prod.sweep``) and its
values (``nb2prod.sweep.<parameter>``).

On a Dask cluster (``--cluster``), the workers must see the project folder (the folder the
sweep starts in, holding ``pipelines/`` and ``.nb2prod/``) at the same path, through a shared
mount, with nb2prod and the version's requirements installed; a local SQLite MLflow store must
be on that mount too, or ``MLFLOW_TRACKING_URI`` must name a tracking server.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from ..pipeline import PipelineSpec, load_pipeline
from ..run_folder import runs_dir, runs_home
from .executors import Executor
from .grid import Grid, parse_grid
from .jobs import Job, shared_steps
from .report import (
    Row,
    SortKey,
    as_json,
    known_metrics,
    parse_sort,
    point_label,
    sort_rows,
    table,
)

SWEEP_TAG = "nb2prod.sweep"  # the sweep's id; nb2prod.sweep.<parameter>: the point's values


def sweep_command(
    pipeline: Path,
    grid: tuple[str, ...],
    *,
    parallel: int | None,
    cluster: str | None,
    sort_by: str | None,
    as_json: bool,
    track: bool,
) -> int:
    """Run the sweep, print its table (or JSON); the exit code."""
    spec = load_pipeline(pipeline)
    points = parse_grid(grid, spec.defaults)
    home = runs_home().absolute()
    sort = parse_sort(sort_by, known_metrics(spec, home))
    if cluster is not None:
        from .executors import connect

        executor: Executor = connect(cluster)
    else:
        from .executors import LocalExecutor

        executor = LocalExecutor(parallel or os.cpu_count() or 1)
    # SIGTERM stops a sweep as Ctrl-C does: no new run, those under way end interrupted.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _sweep(spec, points, executor, home, sort, as_json, track)
    finally:
        executor.close()
        signal.signal(signal.SIGTERM, previous)


def _sweep(
    spec: PipelineSpec,
    grid: Grid,
    executor: Executor,
    home: Path,
    sort: SortKey | None,
    json_out: bool,
    track: bool,
) -> int:
    from ..run.runner import new_run_id

    sweep_id = new_run_id()
    env = {"NB2PROD_HOME": str(home)}
    store: threading.Thread | None = None
    if track:
        from ..tracking.mlflow_log import absolute_tracking_uri

        uri = env["MLFLOW_TRACKING_URI"] = absolute_tracking_uri()
        if uri.startswith("sqlite:"):
            # Runs writing to one SQLite store at once are fine once it exists; creating it is
            # not (MLflow's table creation), so it is created now, while the shared steps run.
            store = threading.Thread(target=_create_store, args=(uri,))
            store.start()
    points = grid.points()

    def job(
        params: dict[str, Any], tags: dict[str, str], steps: list[str] | None = None
    ) -> dict[str, Any]:
        return Job(
            version_dir=str(spec.path.resolve()),
            cwd=str(Path.cwd()),
            run_id=new_run_id(),
            params=params,
            tags={SWEEP_TAG: sweep_id, **tags},
            track=track and steps is None,  # the shared steps' run is a means, not a result
            env=env,
            steps=steps,
        ).to_json()

    _say(
        f"Sweep {sweep_id} of {spec.name} v{spec.version}: {len(points)} "
        f"{'point' if len(points) == 1 else 'points'} {executor.where}."
    )
    outcomes: list[dict[str, Any] | None] = [None] * len(points)
    interrupted = False
    started = time.monotonic()
    try:
        shared = shared_steps(spec, grid.names) if len(points) > 1 else []
        if shared and not _run_shared(spec, executor, job({}, {}, shared)):
            outcomes = [{"status": "not run"} for _ in points]
        else:
            if store is not None:
                store.join()
            jobs = [job(p, {f"{SWEEP_TAG}.{k}": _tag(v) for k, v in p.items()}) for p in points]

            def done(i: int, outcome: dict[str, Any]) -> None:
                outcomes[i] = outcome
                finished = sum(o is not None for o in outcomes)
                took = time.monotonic() - started
                _say(
                    f"[{finished}/{len(points)}] {point_label(points[i])}: "
                    f"{outcome.get('status')} (run {outcome.get('id') or '-'}, {took:.1f}s "
                    "into the sweep)"
                )

            outcomes = executor.run(jobs, done)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if store is not None:
            store.join()
    rows = [
        Row(p, o if o is not None else {"status": "not run"})
        for p, o in zip(points, outcomes, strict=True)
    ]
    shown = sort_rows(rows, sort)
    if json_out:
        click.echo(as_json(shown, sweep_id))
    else:
        click.echo(table(shown, grid.names))
    _summary(spec, sweep_id, shown, home, sort, track)
    if interrupted:
        return 130
    if any(r.status != "succeeded" for r in rows):
        return 1
    if any(r.outcome.get("tracking_error") for r in rows):
        return 3
    return 0


def _run_shared(spec: PipelineSpec, executor: Executor, job: dict[str, Any]) -> bool:
    """Compute the steps every point shares, once; whether they succeeded."""
    names = ", ".join(job["steps"])
    _say(f"Shared steps ({names}): computed once, then reused by every point.")
    outcome = executor.run([job], lambda i, o: None)[0] or {}
    if outcome.get("status") == "succeeded":
        states = {s for s in (outcome.get("steps") or {}).values() if s != "skipped"}
        how = "already cached" if states == {"cached"} else "done"
        _say(f"Shared steps: {how} (run {outcome.get('id')}).")
        return True
    problem = str(outcome.get("error") or outcome.get("status"))
    if outcome.get("id"):
        problem += f" (run {outcome['id']})"
    if outcome.get("status") == "failed":  # the steps themselves, not where they ran
        steps = ",".join(job["steps"])
        problem += (
            f". Fix: make `nb2prod run {spec.path} --steps {steps}` succeed, then sweep again."
        )
    _say(f"Shared steps did not succeed, so no point ran: {problem}")
    return False


def _summary(
    spec: PipelineSpec,
    sweep_id: str,
    rows: list[Row],
    home: Path,
    sort: SortKey | None,
    track: bool,
) -> None:
    """After the table, on standard error: the counts, each failure, where the runs are."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    noun = "point" if len(rows) == 1 else "points"
    lines = ["", f"{len(rows)} {noun}: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    if sort is not None and not any(sort.metric in r.metrics for r in rows):
        lines.append(f"no point reported metric `{sort.metric}`: the table is in grid order.")
    for row in rows:
        problem = row.outcome.get("error") or row.outcome.get("tracking_error")
        if problem:
            lines.append(f"{point_label(row.params)}: {problem}")
    where = os.path.relpath(runs_dir(home), Path.cwd())
    lines.append(f"Runs in {where}/, tagged {SWEEP_TAG}={sweep_id} in their run.json.")
    if track:
        lines.append(f"MLflow: experiment {spec.name}, filter tags.`{SWEEP_TAG}` = '{sweep_id}'.")
    _say("\n".join(lines))


def _tag(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _create_store(uri: str) -> None:
    """Create a local MLflow store (its tables) before parallel runs open it."""
    from ..tracking.mlflow_log import Tracker

    Tracker(uri, models=False).warm_store()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    click.echo(text, err=True)
    sys.stderr.flush()
