"""``nb2prod track``: a run folder that engine tasks filled step by step, logged to MLflow.

Each ``nb2prod step`` task leaves its step's record in ``steps/<step>/step.json``
(:mod:`nb2prod.run.single`). Here they become one ``run.json``, the record ``nb2prod run``
writes, so the run is logged by the same code and looks the same in MLflow: a parent run with
the merged metrics, one nested run per step. A folder ``nb2prod run`` made (a ``run.json``, no
step records) is logged as it is, which also retries a run whose tracking failed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec, load_pipeline
from ..run_folder import (
    RUN_ID_RE,
    STEP_RECORD,
    STEPS,
    config_path,
    record_path,
    write_record,
)
from .record import RunData, RunRecord, StepError, StepRecord, now
from .runner import RunResult, new_run_id
from .single import STEP_SCHEMA

# The run-level facts every step record repeats; steps of one run agree on them. (Parameters
# need not: an engine may pass each step only the parameters it uses, see _parameters.)
_SAME = ("pipeline", "version", "notebook_sha256")


@dataclass
class TrackResult:
    run: RunResult

    @property
    def exit_code(self) -> int:
        tracking = self.run.record.get("tracking") or {}
        return 0 if tracking.get("ok") else 3

    def text(self) -> str:
        from .summary import run_text

        return run_text(self.run.record, self.run.path).lstrip("\n")


def track_run_folder(run_dir: Path) -> TrackResult:
    """Build ``run_dir/run.json`` from its step records (unless ``nb2prod run`` wrote it), then
    log the run to MLflow. Raises Nb2prodError for a folder that holds no run."""
    if not run_dir.is_dir():
        raise Nb2prodError(
            f"{run_dir}: no such folder. Fix: pass the --run-dir the pipeline's `nb2prod step` "
            "tasks wrote to."
        )
    steps = _step_records(run_dir)
    if not steps and record_path(run_dir).is_file():
        return _log_existing(run_dir)
    if not steps:
        raise Nb2prodError(
            f"{run_dir} holds no run: no {STEPS}/<step>/{STEP_RECORD} and no run.json. Fix: "
            "pass the folder `nb2prod step ... --run-dir` wrote to (or a run folder of "
            "`nb2prod run`)."
        )
    data = _assemble(run_dir, steps)
    # The run's parameters as its steps ran them: a folder assembled from artifacts (KFP) has
    # no config.yaml, and in a shared one each step left its own view of them.
    import yaml

    text = yaml.safe_dump(data.params, sort_keys=False, allow_unicode=True)
    write_record(config_path(run_dir), text)
    record = RunRecord(record_path(run_dir), data)
    try:
        return TrackResult(_log(run_dir, record))
    finally:
        record.release_reserve()


def _step_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / STEPS).glob(f"*/{STEP_RECORD}")):
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise Nb2prodError(
                f"{path} cannot be read ({exc}). Fix: run that step again into this folder."
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("run"), dict):
            raise Nb2prodError(
                f"{path} is not a step record of `nb2prod step`. Fix: run that step again."
            )
        if not isinstance(data.get("schema_version"), int) or data["schema_version"] > STEP_SCHEMA:
            raise Nb2prodError(
                f"{path} was written by a newer nb2prod (format {data.get('schema_version')}). "
                "Fix: track the run with that nb2prod version, or a newer one than this."
            )
        if data.get("step") != path.parent.name:
            raise Nb2prodError(
                f"{path} is the record of step {data.get('step')!r}, not of "
                f"{path.parent.name!r}. Fix: run step {path.parent.name} again into this folder."
            )
        found[path.parent.name] = data
    return found


def _assemble(run_dir: Path, steps: dict[str, dict[str, Any]]) -> RunData:
    first_name, first = next(iter(steps.items()))
    head = first["run"]
    for name, data in steps.items():
        for key in _SAME:
            if data["run"].get(key) != head.get(key):
                raise Nb2prodError(
                    f"{run_dir} mixes runs: step {name} ran with {key} "
                    f"{data['run'].get(key)!r}, step {first_name} with {head.get(key)!r}. Fix: "
                    "give each run of the pipeline a run folder of its own."
                )
    params, overrides = _parameters(run_dir, steps)
    spec = _version(head)
    order = [s.name for s in spec.steps] if spec is not None else _dependency_order(steps)
    records: dict[str, StepRecord] = {}
    for name in order:
        if name in steps:
            records[name] = _step_record(steps[name])
        elif spec is not None:
            s = spec.step(name)
            records[name] = StepRecord(
                role=s.role,
                state="skipped",
                depends_on=list(s.depends_on),
                params={},
                error=StepError("NotRun", "not run", f"step {name} did not run in {run_dir}"),
            )
    states = {r.state for r in records.values()}
    missing = [n for n, r in records.items() if n not in steps]
    if "interrupted" in states:
        status = "interrupted"
    elif "failed" in states or missing:
        status = "failed"
    else:
        status = "succeeded"
    started, finished = _span(list(steps.values()))
    metrics: dict[str, Any] = {}
    for r in records.values():
        metrics.update(r.metrics)
    return RunData(
        id=run_dir.name if RUN_ID_RE.fullmatch(run_dir.name) else new_run_id(),
        pipeline=str(head["pipeline"]),
        version=int(head["version"]),
        version_dir=str(head.get("version_dir") or ""),
        notebook=str(head.get("notebook") or ""),
        notebook_sha256=head.get("notebook_sha256"),
        nb2prod_version=str(head.get("nb2prod_version") or ""),
        git_commit=head.get("git_commit"),
        pid=os.getpid(),
        params=params,
        overrides=overrides,
        steps=records,
        started_at=started,
        status=status,
        finished_at=finished,
        duration=round((_when(finished) - _when(started)).total_seconds(), 3),
        metrics=metrics,
        error=f"steps not run in this folder: {', '.join(missing)}" if missing else None,
        tracking={"state": "pending"},
        environment=head.get("environment"),
    )


def _parameters(
    run_dir: Path, steps: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's parameters: each step's own (what it ran with) over the defaults. Two steps
    that ran one parameter with different values belong to different runs."""
    params: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    used_by: dict[str, str] = {}
    for data in steps.values():
        for key, value in (data["run"].get("params") or {}).items():
            params.setdefault(key, value)
    for name, data in steps.items():
        given = data["run"].get("overrides") or {}
        for key, value in (data.get("params") or {}).items():
            if key in used_by and params[key] != value:
                raise Nb2prodError(
                    f"{run_dir} mixes runs: step {name} ran with {key} = {value!r}, step "
                    f"{used_by[key]} with {params[key]!r}. Fix: give each run of the pipeline a "
                    "run folder of its own."
                )
            used_by[key] = name
            params[key] = value
            if key in given:
                overrides[key] = value
    return params, overrides


def _version(head: dict[str, Any]) -> PipelineSpec | None:
    """The version the steps ran, when it is here too: it knows the steps that did not run."""
    where = head.get("version_dir")
    if not isinstance(where, str) or not where:
        return None
    try:
        spec = load_pipeline(Path(where))
    except Nb2prodError:
        return None
    return spec if spec.notebook_sha256 == head.get("notebook_sha256") else None


def _dependency_order(steps: dict[str, dict[str, Any]]) -> list[str]:
    from graphlib import TopologicalSorter

    graph = {n: [d for d in s.get("depends_on") or [] if d in steps] for n, s in steps.items()}
    return list(TopologicalSorter(graph).static_order())


def _step_record(data: dict[str, Any]) -> StepRecord:
    error = data.get("error")
    return StepRecord(
        role=str(data.get("role") or ""),
        state=str(data.get("state") or "failed"),
        depends_on=list(data.get("depends_on") or []),
        params=dict(data.get("params") or {}),
        started_at=data.get("started_at"),
        duration=data.get("duration"),
        notebook=data.get("notebook"),
        report=data.get("report"),
        outputs=dict(data.get("outputs") or {}),
        metrics=dict(data.get("metrics") or {}),
        models=list(data.get("models") or []),
        error=_error(error) if isinstance(error, dict) else None,
        reason=data.get("reason"),
        data=dict(data.get("data") or {}),
    )


def _error(data: dict[str, Any]) -> StepError:
    return StepError(
        ename=str(data.get("ename") or "Error"),
        evalue=str(data.get("evalue") or ""),
        message=str(data.get("message") or ""),
        cell=data.get("cell"),
        source=data.get("source"),
        traceback=data.get("traceback"),
    )


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _span(steps: list[dict[str, Any]]) -> tuple[str, str]:
    """When the first step started and the last one ended, as run.json writes times."""
    starts, ends = [], []
    for s in steps:
        try:
            start = _when(str(s.get("started_at")))
        except ValueError:
            continue
        starts.append(start)
        ends.append(start + timedelta(seconds=round(float(s.get("duration") or 0))))
    if not starts:
        return now(), now()
    return _stamp(min(starts)), _stamp(max(ends))


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _log_existing(run_dir: Path) -> TrackResult:
    """A run folder of ``nb2prod run`` (tracked or not before): logged as it is, and its
    run.json told the outcome."""
    import time

    from ..tracking.mlflow_log import Tracker, TrackingError, _read_record
    from .record import write_json

    try:
        data = _read_record(run_dir)
    except TrackingError as exc:
        raise Nb2prodError(str(exc)) from None
    if data.get("status") in (None, "running"):
        raise Nb2prodError(
            f"{record_path(run_dir)}: the run has not finished. Fix: track it once it has."
        )
    t0 = time.monotonic()
    tracking = Tracker(models=True).log_run(run_dir)
    data["tracking"] = {
        **tracking.to_json(),
        "state": "done",
        "duration": round(time.monotonic() - t0, 3),
    }
    write_json(record_path(run_dir), data)
    result = RunResult(str(data["id"]), run_dir, data, tracking=tracking)
    return TrackResult(result)


def _log(run_dir: Path, record: RunRecord) -> RunResult:
    import time

    from ..tracking.mlflow_log import Tracker

    t0 = time.monotonic()
    record.track("tracking", {"state": "logging", "started_at": now()})
    result = RunResult(record.data.id, run_dir, record.to_json())
    result.tracking = Tracker(models=True).log_run(run_dir)
    tracking = result.tracking.to_json()
    tracking.update(state="done", duration=round(time.monotonic() - t0, 3))
    record.track("tracked", tracking, models=result.tracking.models, final=True)
    result.record = record.to_json()
    return result
