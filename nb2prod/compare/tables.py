"""The comparison of runs as plain data: what ``text``, ``html`` and ``--json`` all render.

Every value is read from the runs' records (``run.json``) and their version folders'
``pipeline.yaml``; nothing is recomputed, so the comparison says what the runs recorded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .code import CodeRow, code_rows, read_version
from .resolve import ComparedRun, read_champion

SCHEMA_VERSION = 1
HIGHER, LOWER = "higher", "lower"
_GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|>|<)")


@dataclass(frozen=True)
class StepFile:
    """What to open for one step of a run: its HTML report, else its executed notebook."""

    step: str
    kind: str  # "report" or "notebook"
    path: str  # relative to the run folder


@dataclass(frozen=True)
class RunInfo:
    label: str  # A, B, C...: the column headings
    argument: str
    id: str
    pipeline: str
    version: int | None
    status: str
    started_at: str | None
    source: str
    champion: bool
    folder: str
    files: list[StepFile] = field(default_factory=list)


@dataclass(frozen=True)
class ParameterRow:
    name: str
    values: list[Any]  # per run; None where the run has no such parameter


@dataclass(frozen=True)
class MetricRow:
    name: str
    values: list[float | None]  # per run; None where the run did not log it
    deltas: list[float | None]  # against the first run; None for the first run and gaps
    direction: str | None  # "higher" or "lower" is better, as a gate on the metric says
    better: list[bool | None]  # per run: the delta is an improvement (None: no direction)


@dataclass(frozen=True)
class GateCell:
    status: str  # passed, failed, no baseline
    value: float | None
    threshold: float | None
    baseline: float | None
    reason: str | None


@dataclass(frozen=True)
class GateRow:
    expr: str
    metric: str
    op: str
    results: list[GateCell | None]  # per run; None where the run did not check this gate


@dataclass(frozen=True)
class Comparison:
    runs: list[RunInfo]
    parameters: list[ParameterRow]  # only those that differ
    metrics: list[MetricRow]
    gate_status: list[str | None]  # per run: passed, failed, not checked; None: no gates
    gates: list[GateRow]
    code: list[CodeRow]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema_version"] = SCHEMA_VERSION
        return _finite(data)


def _finite(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _mapping(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def label_of(index: int) -> str:
    """A, B, ... Z, then R27, R28...: short column headings."""
    return chr(ord("A") + index) if index < 26 else f"R{index + 1}"


# --- runs -------------------------------------------------------------------------------------
def _step_files(record: dict[str, Any]) -> list[StepFile]:
    out = []
    for name, step in (record.get("steps") or {}).items():
        if not isinstance(step, dict):
            continue
        for kind in ("report", "notebook"):
            path = step.get(kind)
            if isinstance(path, str) and path and not Path(path).is_absolute():
                out.append(StepFile(str(name), kind, path))
                break
    return out


def _run_info(i: int, run: ComparedRun, champions: dict[str, str | None]) -> RunInfo:
    r = run.record
    version = r.get("version")
    return RunInfo(
        label=label_of(i),
        argument=run.argument,
        id=run.id,
        pipeline=run.pipeline,
        version=version if isinstance(version, int) else None,
        status=str(r.get("status", "")),
        started_at=r.get("started_at") if isinstance(r.get("started_at"), str) else None,
        source=run.source,
        champion=champions.get(run.pipeline) == run.id,
        folder=run.folder.as_posix(),
        files=_step_files(r),
    )


def champion_ids(home: Path, pipelines: Iterable[str]) -> dict[str, str | None]:
    """Each pipeline's champion run id (None without a champion)."""
    out: dict[str, str | None] = {}
    for name in pipelines:
        data = read_champion(home, name)
        run_id = data.get("run_id") if data else None
        out[name] = run_id if isinstance(run_id, str) else None
    return out


# --- parameters and metrics -------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    """Equal values of equal JSON types (1 and 1.0 differ, as in ``nb2prod diff``)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _ordered_keys(mappings: Iterable[Any]) -> list[str]:
    keys: dict[str, None] = {}
    for m in mappings:
        if isinstance(m, dict):
            keys.update(dict.fromkeys(str(k) for k in m))
    return list(keys)


def parameter_rows(records: Sequence[dict[str, Any]]) -> list[ParameterRow]:
    params = [_mapping(r, "params") for r in records]
    rows = []
    for name in _ordered_keys(params):
        present = [name in p for p in params]
        values = [p.get(name) for p in params]
        if not all(present) or any(not _same(values[0], v) for v in values[1:]):
            rows.append(ParameterRow(name, values))
    return rows


def _directions(gates: Iterable[tuple[str, str]]) -> dict[str, str | None]:
    """``metric -> higher|lower`` from gates' operators; None when gates disagree (a range)."""
    seen: dict[str, set[str]] = {}
    for metric, op in gates:
        seen.setdefault(metric, set()).add(HIGHER if op in (">=", ">") else LOWER)
    return {m: next(iter(d)) if len(d) == 1 else None for m, d in seen.items()}


def metric_rows(
    records: Sequence[dict[str, Any]], directions: dict[str, str | None]
) -> list[MetricRow]:
    metrics = [_mapping(r, "metrics") for r in records]
    rows = []
    for name in _ordered_keys(metrics):
        values = [number(m.get(name)) for m in metrics]
        first = values[0]
        deltas: list[float | None] = [None]
        for v in values[1:]:
            ok = v is not None and first is not None and math.isfinite(v) and math.isfinite(first)
            deltas.append(v - first if ok and v is not None and first is not None else None)
        direction = directions.get(name)
        better: list[bool | None] = []
        for d in deltas:
            if d is None or d == 0 or direction is None:
                better.append(None)
            else:
                better.append((d > 0) == (direction == HIGHER))
        rows.append(MetricRow(name, values, deltas, direction, better))
    return rows


# --- gates ------------------------------------------------------------------------------------
def _gate_results(record: dict[str, Any]) -> list[dict[str, Any]]:
    gates = record.get("gates")
    results = gates.get("results") if isinstance(gates, dict) else None
    return [g for g in results if isinstance(g, dict)] if isinstance(results, list) else []


def gate_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str | None], list[GateRow]]:
    status = []
    for r in records:
        gates = r.get("gates")
        status.append(str(gates.get("status")) if isinstance(gates, dict) else None)
    exprs: dict[str, tuple[str, str]] = {}
    for r in records:
        for g in _gate_results(r):
            exprs.setdefault(str(g.get("expr", "")), (str(g.get("metric", "")), str(g.get("op"))))
    rows = []
    for expr, (metric, op) in exprs.items():
        cells: list[GateCell | None] = []
        for r in records:
            found = [g for g in _gate_results(r) if str(g.get("expr", "")) == expr]
            g = found[0] if found else {}
            cells.append(
                None
                if not found
                else GateCell(
                    status=str(g.get("status", "")),
                    value=number(g.get("value")),
                    threshold=number(g.get("threshold")),
                    baseline=number(g.get("baseline")),
                    reason=g.get("reason") if isinstance(g.get("reason"), str) else None,
                )
            )
        rows.append(GateRow(expr, metric, op, cells))
    return status, rows


def _manifest_gates(manifest: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``(metric, op)`` of the version's gates: written as strings or as the plan's objects."""
    out = []
    for g in (manifest or {}).get("gates") or []:
        if isinstance(g, dict) and isinstance(g.get("metric"), str) and g.get("op"):
            out.append((g["metric"], str(g["op"])))
            continue
        text = g.get("expr") if isinstance(g, dict) else g
        m = _GATE.match(text) if isinstance(text, str) else None
        if m:
            out.append((m.group(1), m.group(2)))
    return out


# --- the whole comparison ---------------------------------------------------------------------
def build_comparison(home: Path, runs: Sequence[ComparedRun]) -> Comparison:
    """Compare ``runs`` (the first is the reference for deltas and code changes)."""
    records = [r.record for r in runs]
    champions = champion_ids(home, dict.fromkeys(r.pipeline for r in runs))
    versions = [read_version(r, home) for r in records]
    gates = [(g.get("metric"), g.get("op")) for r in records for g in _gate_results(r)]
    gates += [g for v in versions for g in _manifest_gates(v.manifest)]
    known = [(str(m), str(op)) for m, op in gates if m and op in (">=", ">", "<=", "<")]
    status, gate_table = gate_rows(records)
    return Comparison(
        runs=[_run_info(i, r, champions) for i, r in enumerate(runs)],
        parameters=parameter_rows(records),
        metrics=metric_rows(records, _directions(known)),
        gate_status=status,
        gates=gate_table,
        code=code_rows(versions),
    )
