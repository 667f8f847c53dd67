"""The pipeline's champion as recorded locally: ``<runs home>/champions/<pipeline>.json``.

Written on every promotion, tracked or not, so ``nb2prod champion`` and ``--baseline
champion`` work without a tracking server; when runs are tracked, the MLflow registry's
``champion`` alias is the source of truth and this record follows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..run_folder import check_name, write_record
from ..run_index import read_json

CHAMPIONS = "champions"


def champion_path(home: Path, pipeline: str) -> Path:
    check_name("pipeline", pipeline)
    return home / CHAMPIONS / f"{pipeline}.json"


def read_champion(home: Path, pipeline: str) -> dict[str, Any] | None:
    """The champion record of ``pipeline``; None when it has none (or the name is unsafe)."""
    try:
        path = champion_path(home, pipeline)
    except (TypeError, ValueError):
        return None
    return read_json(path)


def write_champion(home: Path, record: dict[str, Any], models: dict[str, str]) -> dict[str, Any]:
    """Make the run ``record`` (run.json's content) the champion of its pipeline."""

    tracking = record.get("tracking") or {}
    data = {
        "pipeline": record["pipeline"],
        "run_id": record["id"],
        "version": record.get("version"),
        "promoted_at": _now(),
        "mlflow_run_id": tracking.get("run_id") if isinstance(tracking, dict) else None,
        "metrics": record.get("metrics") or {},
        "models": dict(models),
    }
    path = champion_path(home, str(record["pipeline"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(path, json.dumps(data, indent=2, default=repr) + "\n")
    return data


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
