"""A run's gates: read and checked before the steps run, evaluated after, promotion recorded.

The gates are the version's (pipeline.yaml, from the notebook's ``gates`` cell) plus any given
with ``--gate``. The baseline is found before the run when it is local (previous, vN, a run id),
and after the steps when it is the champion (the MLflow registry, through the tracking worker,
or the local champion record).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Nb2prodError
from ..gates.baseline import (
    CHAMPION,
    MLFLOW_RUN_ID,
    Baseline,
    check_request,
    resolve_local,
)
from ..gates.champion import read_champion, write_champion
from ..gates.check import check_gates, not_checked
from ..gates.expr import Gate, GateError, parse_gate
from ..pipeline import PipelineSpec

if TYPE_CHECKING:
    from ..tracking.worker import TrackingWorker


@dataclass
class Gating:
    gates: list[Gate]
    requested: str
    promote: bool
    require: bool
    baseline: Baseline | None = None  # found before the run (not the champion)
    warnings: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Whether run.json gets a ``gates`` entry."""
        return bool(self.gates) or self.promote


def prepare(
    spec: PipelineSpec,
    extra: Iterable[str],
    requested: str,
    promote: bool,
    require: bool,
    home: Path,
    tracker: TrackingWorker | None,
) -> Gating:
    """Everything that can be refused before the run exists (exit 2): bad gates, a gate on a
    metric no step logs, a baseline that names no run."""
    gates = [_version_gate(spec, expr, help_text) for expr, help_text in spec.gates]
    known = {m for s in spec.steps for m in s.metrics} | {g.metric for g in gates}
    requested = check_request(requested)
    baseline = resolve_local(home, spec.name, requested, spec.path.parent)
    if MLFLOW_RUN_ID.fullmatch(requested):
        baseline = _mlflow_run(spec, requested, tracker)
    if baseline is not None:
        known |= set(baseline.metrics)
    for text in extra:
        gates.append(_command_line_gate(text, known))
    return Gating(gates, requested, promote, require, baseline)


def _version_gate(spec: PipelineSpec, expr: str, help_text: str) -> Gate:
    try:
        gate = parse_gate(expr)
    except GateError as exc:
        raise Nb2prodError(
            f"{spec.path / 'pipeline.yaml'}: gate `{expr}` cannot be read ({exc.message}). "
            "Fix: export the notebook again, or restore the folder from version control."
        ) from None
    return Gate(gate.metric, gate.op, gate.threshold, help_text, "notebook")


def _command_line_gate(text: str, known: set[str]) -> Gate:
    try:
        gate = parse_gate(text, origin="command line")
    except GateError as exc:
        raise Nb2prodError(f"--gate {text!r}: {exc.message} Fix: {exc.fix}") from None
    if gate.metric not in known:
        close = difflib.get_close_matches(gate.metric, sorted(known), n=1)
        hint = f"did you mean `{close[0]}`?" if close else ""
        listed = ", ".join(sorted(known)) or "none"
        raise Nb2prodError(
            f"--gate {text!r}: no step of this pipeline logs a metric `{gate.metric}`. Fix: "
            f"{hint + ' ' if hint else ''}gate one of its metrics ({listed})."
        )
    return gate


def _mlflow_run(spec: PipelineSpec, run_id: str, tracker: TrackingWorker | None) -> Baseline:
    if tracker is None:
        raise Nb2prodError(
            f"--baseline {run_id} looks like an MLflow run id, but this run is not tracked. "
            "Fix: drop --no-track, or pass an nb2prod run id (`nb2prod runs`)."
        )
    reply = tracker.find_baseline("run", run_id, spec.name)
    found = reply.get("baseline")
    if not isinstance(found, dict):
        why = f" ({reply['error']})" if reply.get("error") else ""
        raise Nb2prodError(
            f"--baseline {run_id}: MLflow has no run of pipeline `{spec.name}` with that id"
            f"{why}. Fix: copy the parent run's id from the MLflow UI, or pass --baseline "
            "champion or previous."
        )
    return Baseline.from_json(found)


def find_champion(
    gating: Gating, pipeline: str, home: Path, tracker: TrackingWorker | None
) -> Baseline | None:
    """The champion to compare with: MLflow's alias when tracked, else the local record."""
    if tracker is not None:
        reply = tracker.find_baseline(CHAMPION, CHAMPION, pipeline)
        found = reply.get("baseline")
        if isinstance(found, dict):
            return Baseline.from_json(found)
        if reply.get("error") and gating.active:
            # Without gates the champion only feeds the deltas; the tracking error itself is
            # reported once, with the logging failure.
            gating.warnings.append(
                f"Could not ask MLflow for the champion ({reply['error']}); using the local "
                "champion record, if any."
            )
    local = read_champion(home, pipeline)
    if local is None:
        return None
    return Baseline.from_json(local, requested=CHAMPION, source="champion (local)")


def evaluate(
    gating: Gating,
    status: str,
    metrics: dict[str, Any],
    pipeline: str,
    home: Path,
    tracker: TrackingWorker | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(baseline, gates) for run.json, once the steps have ended with ``status``."""
    baseline = gating.baseline
    if status == "succeeded" and baseline is None and gating.requested == CHAMPION:
        baseline = find_champion(gating, pipeline, home, tracker)
    gates = None
    if gating.active:
        report = (
            check_gates(gating.gates, metrics, baseline, gating.require, gating.promote)
            if status == "succeeded"
            else not_checked(gating.gates, gating.promote)
        )
        gates = {**report.to_json(), "baseline_requested": gating.requested}
    return (baseline.to_json() if baseline is not None else None), gates


def record_champion(home: Path, record: dict[str, Any], models: dict[str, str]) -> dict[str, Any]:
    """Write the local champion record; what run.json's ``gates.promoted`` says."""
    write_champion(home, record, models)
    return {"models": dict(models)}
