"""What a sweep shows: one row per point (its parameters, status, run id, metrics), sorted by a
metric, as a table or as JSON; and the check of ``--sort`` before anything runs.

A metric's name is known before the runs only from the version's ``pipeline.yaml`` (the names a
``metrics`` cell assigns) and from earlier runs of the pipeline; a step can also report one
under a name no one could see coming (a dict a ``metrics`` cell evaluates to, ``log_metric``).
So ``--sort`` with a name neither knows is refused up front (exit 2, the known ones listed),
unless nothing is known at all; then the table stays in grid order when no point reports it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from ..run_index import list_runs
from ..version_folder import read_manifest

EARLIER_RUNS = 20  # how many of the pipeline's latest runs tell which metrics it reports


@dataclass(frozen=True)
class SortKey:
    metric: str
    descending: bool


@dataclass
class Row:
    params: dict[str, Any]
    outcome: dict[str, Any]  # from nb2prod.sweep.point.outcome, or a stand-in for no run

    @property
    def status(self) -> str:
        return str(self.outcome.get("status") or "")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.outcome.get("metrics") or {})

    def to_json(self, sweep_id: str) -> dict[str, Any]:
        data = {
            "params": self.params,
            "run_id": self.outcome.get("id"),
            "status": self.status,
            "metrics": self.metrics,
            "sweep": sweep_id,
        }
        if self.outcome.get("error"):
            data["error"] = self.outcome["error"]
        return data


def known_metrics(spec: PipelineSpec, home: Path) -> list[str]:
    """The metric names the version declares, then those its pipeline's earlier runs reported."""
    names: dict[str, None] = {}
    steps = read_manifest(spec.path).get("steps")
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("metrics"), list):
            names.update(dict.fromkeys(str(m) for m in step["metrics"]))
    for run in list_runs(home, spec.name, EARLIER_RUNS):
        if isinstance(run.get("metrics"), dict):
            names.update(dict.fromkeys(str(m) for m in run["metrics"]))
    return list(names)


def parse_sort(text: str | None, known: Sequence[str]) -> SortKey | None:
    """``--sort METRIC`` (lowest first) or ``-METRIC`` (highest first), checked against the
    ``known`` metric names when there are any."""
    if text is None:
        return None
    metric = text.removeprefix("-").strip()
    if not metric:
        raise Nb2prodError(
            f"--sort {text!r}: no metric named. Fix: give one, e.g. --sort -accuracy (highest "
            "first) or --sort loss (lowest first)."
        )
    if known and metric not in known:
        names = ", ".join(known)
        raise Nb2prodError(
            f"--sort {text}: this pipeline reports no metric `{metric}` (it reports {names}). "
            f"Fix: sort by one of them, e.g. --sort -{known[0]}; a metric only a run can name "
            "(a dict or log_metric) is known once `nb2prod run` has reported it."
        )
    return SortKey(metric, text.startswith("-"))


def sort_rows(rows: list[Row], key: SortKey | None) -> list[Row]:
    """By the metric, points without a number for it last (in grid order, as ties are)."""
    if key is None:
        return list(rows)

    def number(row: Row) -> float | None:
        value = row.metrics.get(key.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return None  # not a number, or NaN: no place in an order
        return float(value)

    scored = [r for r in rows if number(r) is not None]
    scored.sort(key=lambda r: number(r) or 0.0, reverse=key.descending)
    return scored + [r for r in rows if number(r) is None]


def _metric(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _param(value: Any) -> str:
    """A parameter's value as given (``1.0``, not ``1``: a float stays one), texts unquoted."""
    return value if isinstance(value, str) else json.dumps(value)


def table(rows: Sequence[Row], names: Sequence[str]) -> str:
    """The points as aligned columns: parameters, status, run, then every metric reported."""
    metrics: dict[str, None] = {}
    for row in rows:
        metrics.update(dict.fromkeys(row.metrics))
    header = [*names, "status", "run", *metrics]
    body = [
        [
            *(_param(row.params[n]) for n in names),
            row.status,
            str(row.outcome.get("id") or "-"),
            *(_metric(row.metrics[m]) if m in row.metrics else "-" for m in metrics),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    )


def as_json(rows: Sequence[Row], sweep_id: str) -> str:
    return json.dumps([r.to_json(sweep_id) for r in rows], indent=2, default=repr)


def point_label(params: dict[str, Any]) -> str:
    """``C=0.1 max_iter=100``: a point as progress lines and failure lists name it."""
    return " ".join(f"{k}={_param(v)}" for k, v in params.items())
