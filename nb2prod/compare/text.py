"""``nb2prod compare``'s terminal output: one aligned table per section, runs as columns."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .code import ABSENT, SAME
from .tables import Comparison, GateCell, MetricRow, RunInfo

MAX_WIDTH = 40  # a long parameter value is cut here, with an ellipsis


def shown(value: Any, exact: bool = False) -> str:
    """A parameter or metric value as a table cell: numbers short (``exact``: as the config
    holds them, so 2.0 and 2 differ), strings quoted (so ``"3"`` and ``3`` differ too)."""
    if isinstance(value, float) and not exact:
        text = "nan" if math.isnan(value) else f"{value:.6g}"
    elif isinstance(value, (bool, int)) or value is None:
        text = json.dumps(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def delta_text(row: MetricRow, i: int) -> str:
    """``+3 ↑ better``, ``-0.01 ↓``, ``=``: the change of run ``i`` against the first run."""
    delta = row.deltas[i]
    if delta is None:
        return ""
    if delta == 0:
        return "="
    arrow = "↑" if delta > 0 else "↓"
    verdict = {True: " better", False: " worse", None: ""}[row.better[i]]
    return f"{delta:+.4g} {arrow}{verdict}"


def metric_cell(row: MetricRow, i: int) -> str:
    value = row.values[i]
    if value is None:
        return "-"
    delta = delta_text(row, i)
    return f"{shown(value)} ({delta})" if delta else shown(value)


def gate_cell(cell: GateCell | None) -> str:
    if cell is None:
        return "-"
    value = "" if cell.value is None else shown(cell.value)
    if cell.threshold is None:
        return f"{cell.status} ({value})" if value else cell.status
    return f"{cell.status} ({value or '?'} vs {shown(cell.threshold)})"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    out = []
    for r in [header, *rows]:
        out.append(
            (indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))).rstrip()
        )
    return out


def run_line(run: RunInfo) -> str:
    version = f"v{run.version}" if run.version is not None else "v?"
    notes = []
    if run.source not in ("run",):
        notes.append(run.source if run.argument == run.source else f"{run.argument}: {run.source}")
    if run.champion and run.source != "champion":
        notes.append("champion")
    note = f"  ({'; '.join(notes)})" if notes else ""
    started = f"  started {run.started_at}" if run.started_at else ""
    return f"  {run.label}  {run.id}  {run.pipeline} {version}  {run.status}{started}{note}"


def comparison_text(c: Comparison) -> str:
    labels = [r.label for r in c.runs]
    lines = [f"Comparing {len(c.runs)} runs (deltas against {labels[0]}):"]
    lines += [run_line(r) for r in c.runs]

    lines += ["", "Parameters that differ:" if c.parameters else "Parameters: all the same."]
    if c.parameters:
        rows = [[p.name, *(shown(v, exact=True) for v in p.values)] for p in c.parameters]
        lines += table(["parameter", *labels], rows)

    lines += ["", "Metrics:" if c.metrics else "Metrics: none recorded."]
    if c.metrics:
        rows = [[m.name, *(metric_cell(m, i) for i in range(len(c.runs)))] for m in c.metrics]
        lines += table(["metric", *labels], rows)
        directed = [m.name for m in c.metrics if m.direction]
        if directed:
            lines.append(f"  (better or worse as the gates on {', '.join(directed)} say)")

    if not c.gates and not any(c.gate_status):
        lines += ["", "Gates: none checked."]
    else:
        lines += ["", "Gates:"]
        rows = [[g.expr, *(gate_cell(cell) for cell in g.results)] for g in c.gates]
        rows.append(["overall", *(s or "-" for s in c.gate_status)])
        lines += table(["gate", *labels], rows)

    base = c.runs[0]
    against = f"{labels[0]} ({base.pipeline} v{base.version})"
    changed = [r for r in c.code if any(ch not in (SAME, ABSENT) for ch in r.changes[1:])]
    if not c.code:
        lines += ["", f"Step code against {against}: no steps known (version folders missing)."]
    elif not changed:
        lines += ["", f"Step code against {against}: no step's code changed."]
    else:
        lines += ["", f"Step code against {against}:"]
        rows = [[r.step, *(ch if ch != ABSENT else "-" for ch in r.changes[1:])] for r in changed]
        lines += table(["step", *labels[1:]], rows)
    return "\n".join(lines) + "\n"
