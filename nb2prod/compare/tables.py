"""The comparison of runs as plain data: what ``text``, ``html`` and ``--json`` all render.

Every value is read from the runs' records (``run.json``) and their version folders'
``pipeline.yaml``; nothing is recomputed, so the comparison says what the runs recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..version_folder import MANIFEST, PIPELINES, read_manifest, step_module, version_path
from .resolve import ComparedRun, read_champion, successful_runs

SCHEMA_VERSION = 1
HIGHER, LOWER = "higher", "lower"
# Code changes of a step against the first run's version.
SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"
ABSENT, UNKNOWN = "absent", "unknown"  # not in either version; version folders not found
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
class CodeRow:
    step: str
    # Per run against the first run's version: same, changed, added, removed, absent (from
    # both), unknown (a version folder is missing); the first run's own is same or absent.
    changes: list[str]


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


def _number(value: Any) -> float | None:
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
        values = [_number(m.get(name)) for m in metrics]
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
                    value=_number(g.get("value")),
                    threshold=_number(g.get("threshold")),
                    baseline=_number(g.get("baseline")),
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


# --- code -------------------------------------------------------------------------------------
def version_dir(record: dict[str, Any], home: Path) -> Path | None:
    """The version folder a run ran, found from where the run started or the project folder."""
    recorded = record.get("version_dir")
    candidates = []
    if isinstance(recorded, str) and recorded:
        path = Path(recorded)
        candidates += [path] if path.is_absolute() else [path, home.parent / path]
    name, version = record.get("pipeline"), record.get("version")
    if isinstance(name, str) and name and isinstance(version, int):
        candidates.append(version_path(PIPELINES / name, version))
    return next((c for c in candidates if (c / MANIFEST).is_file()), None)


def _manifest(folder: Path | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except Nb2prodError:
        return None


def _step_names(manifest: dict[str, Any] | None, record: dict[str, Any]) -> list[str]:
    steps = (manifest or {}).get("steps")
    if isinstance(steps, list):
        return [str(s.get("name")) for s in steps if isinstance(s, dict)]
    return [str(s) for s in record.get("steps") or {}]


def code_digest(text: str) -> str:
    """SHA-256 of a step module's code alone. Each module's header names its version (and its
    cell markers their notebook positions), so the file's own hash differs between any two
    versions; this leaves out the jupytext header, markdown cells and cell markers."""
    kept: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0] == "# ---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line == "# ---"), 0)
        lines = lines[end + 1 :]
    markdown = False
    for line in lines:
        if line.startswith("# %%"):
            markdown = "[markdown]" in line
            kept.append("# %%")
        elif not markdown:
            kept.append(line)
    return hashlib.sha256("\n".join(kept).strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Version:
    folder: Path | None
    manifest: dict[str, Any] | None
    steps: list[str]
    key: tuple[str, int | None]  # (pipeline, version): equal keys ran the same code

    def file_sha(self, step: str) -> str | None:
        files = (self.manifest or {}).get("files")
        sha = files.get(step_module(step)) if isinstance(files, dict) else None
        return sha if isinstance(sha, str) else None

    def code(self, step: str) -> str | None:
        if self.folder is None:
            return None
        try:
            return code_digest((self.folder / step_module(step)).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None


def _version(record: dict[str, Any], home: Path) -> _Version:
    folder = version_dir(record, home)
    manifest = _manifest(folder)
    version = record.get("version")
    key = (str(record.get("pipeline")), version if isinstance(version, int) else None)
    return _Version(folder, manifest, _step_names(manifest, record), key)


def _change(base: _Version, other: _Version, step: str) -> str:
    if step not in other.steps and step not in base.steps:
        return ABSENT
    if step not in other.steps:
        return REMOVED
    if step not in base.steps:
        return ADDED
    if base.key == other.key and base.key[1] is not None:
        return SAME
    sha_a, sha_b = base.file_sha(step), other.file_sha(step)
    if sha_a is not None and sha_a == sha_b:
        return SAME
    code_a, code_b = base.code(step), other.code(step)
    if code_a is None or code_b is None:
        return UNKNOWN
    return SAME if code_a == code_b else CHANGED


def code_rows(versions: Sequence[_Version]) -> list[CodeRow]:
    steps = list(dict.fromkeys(s for v in versions for s in v.steps))
    base = versions[0]
    return [
        CodeRow(
            s, [SAME if s in base.steps else ABSENT] + [_change(base, v, s) for v in versions[1:]]
        )
        for s in steps
    ]


# --- the whole comparison ---------------------------------------------------------------------
def build_comparison(home: Path, runs: Sequence[ComparedRun]) -> Comparison:
    """Compare ``runs`` (the first is the reference for deltas and code changes)."""
    records = [r.record for r in runs]
    champions = champion_ids(home, dict.fromkeys(r.pipeline for r in runs))
    versions = [_version(r, home) for r in records]
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


# --- the trend: every successful run of a pipeline --------------------------------------------
@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    started_at: str | None
    value: float
    label: str | None  # the compared run's column heading, if it is one
    champion: bool


@dataclass(frozen=True)
class Trend:
    pipeline: str
    metric: str
    points: list[TrendPoint]  # in time order


def build_trends(home: Path, comparison: Comparison) -> list[Trend]:
    """One trend per metric of the compared runs, over all successful runs of each pipeline."""
    labels = {r.id: r.label for r in reversed(comparison.runs)}
    champions = champion_ids(home, dict.fromkeys(r.pipeline for r in comparison.runs))
    metrics = [m.name for m in comparison.metrics]
    out = []
    for pipeline in dict.fromkeys(r.pipeline for r in comparison.runs):
        history = successful_runs(home, pipeline)
        history.sort(key=lambda h: (str(h.get("started_at") or ""), str(h.get("id"))))
        for metric in metrics:
            points = []
            for h in history:
                value = _number((h.get("metrics") or {}).get(metric))
                if value is None or not math.isfinite(value):
                    continue
                run_id = str(h.get("id"))
                started = h.get("started_at") if isinstance(h.get("started_at"), str) else None
                champion = champions.get(pipeline) == run_id
                points.append(TrendPoint(run_id, started, value, labels.get(run_id), champion))
            if points:
                out.append(Trend(pipeline, metric, points))
    return out
