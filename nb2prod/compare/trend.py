"""The trend of each metric over every successful run of a pipeline, for the HTML charts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .resolve import successful_runs
from .tables import Comparison, champion_ids, number


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
                value = number((h.get("metrics") or {}).get(metric))
                if value is None or not math.isfinite(value):
                    continue
                run_id = str(h.get("id"))
                started = h.get("started_at") if isinstance(h.get("started_at"), str) else None
                champion = champions.get(pipeline) == run_id
                points.append(TrendPoint(run_id, started, value, labels.get(run_id), champion))
            if points:
                out.append(Trend(pipeline, metric, points))
    return out
