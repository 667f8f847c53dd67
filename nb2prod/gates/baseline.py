"""The baseline a run's gates compare with: the champion, the previous run, a version's newest
run, or a run named by id.

Local runs are found in the runs home (run.json files); the champion, when the run is tracked,
comes from the MLflow registry through the tracking worker (nb2prod.tracking), and otherwise
from the local champion record (:mod:`nb2prod.gates.champion`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..run_folder import RUN_ID_RE
from ..run_index import list_runs, read_run

CHAMPION, PREVIOUS = "champion", "previous"
_VERSION = re.compile(r"v([1-9][0-9]{0,5})")
MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")
USAGE = "champion, previous, vN (a version's newest successful run) or a run id"


@dataclass
class Baseline:
    requested: str
    source: str  # how it was found: "champion (MLflow registry)", "previous run", "v3", "run"
    run_id: str | None = None  # nb2prod's run id
    mlflow_run_id: str | None = None
    version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], **override: Any) -> Baseline:
        """From its run.json form (or a champion record / registry answer of that shape)."""
        version = data.get("version")
        found = cls(
            requested=str(data.get("requested")),
            source=str(data.get("source")),
            run_id=data.get("run_id"),
            mlflow_run_id=data.get("mlflow_run_id"),
            version=version if isinstance(version, int) and not isinstance(version, bool) else None,
            metrics=dict(data.get("metrics") or {}),
        )
        for key, value in override.items():
            setattr(found, key, value)
        return found

    @property
    def label(self) -> str:
        return self.run_id or self.mlflow_run_id or self.source

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "run_id": self.run_id,
            "mlflow_run_id": self.mlflow_run_id,
            "version": self.version,
            "source": self.source,
            "metrics": dict(self.metrics),
        }


def check_request(text: str) -> str:
    """``--baseline``'s value, checked for shape (exit 2 otherwise)."""
    text = text.strip()
    if (
        text in (CHAMPION, PREVIOUS)
        or _VERSION.fullmatch(text)
        or RUN_ID_RE.fullmatch(text)
        or MLFLOW_RUN_ID.fullmatch(text)
    ):
        return text
    raise Nb2prodError(
        f"--baseline {text!r} is not a baseline nb2prod knows. Fix: pass {USAGE} "
        "(an nb2prod run id as `nb2prod runs` lists it, or an MLflow run id)."
    )


def from_record(requested: str, source: str, record: dict[str, Any]) -> Baseline:
    tracking = record.get("tracking") or {}
    metrics = record.get("metrics")
    return Baseline(
        requested=requested,
        source=source,
        run_id=str(record.get("id")),
        mlflow_run_id=tracking.get("run_id") if isinstance(tracking, dict) else None,
        version=record.get("version") if isinstance(record.get("version"), int) else None,
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
    )


def resolve_local(
    home: Path, pipeline: str, requested: str, pipeline_dir: Path | None = None
) -> Baseline | None:
    """The baseline ``requested`` names among the local runs of ``pipeline``, before the run
    starts. None when there is none to be had (``previous`` of a first run); an explicit
    version or run id that names no usable run is refused (exit 2). ``champion`` and MLflow
    run ids are resolved elsewhere (None here)."""
    if requested == PREVIOUS:
        newest = _newest(home, pipeline)
        return from_record(requested, "previous run", newest) if newest else None
    match = _VERSION.fullmatch(requested)
    if match:
        version = int(match.group(1))
        newest = _newest(home, pipeline, version)
        if newest is None:
            where = f" ({pipeline_dir}/v{version})" if pipeline_dir is not None else ""
            raise Nb2prodError(
                f"--baseline {requested}: pipeline `{pipeline}` has no successful run of "
                f"version {version}{where} in {home}. Fix: run that version first "
                f"(`nb2prod run pipelines/{pipeline}/v{version}`), or pass --baseline champion "
                "or previous."
            )
        return from_record(requested, f"v{version}", newest)
    if RUN_ID_RE.fullmatch(requested):
        record = read_run(home, requested)
        if record is None:
            raise Nb2prodError(
                f"--baseline {requested}: no run with that id in {home}. Fix: pick one from "
                f"`nb2prod runs {pipeline}`, or pass --baseline champion or previous."
            )
        if record.get("pipeline") != pipeline:
            raise Nb2prodError(
                f"--baseline {requested} is a run of pipeline `{record.get('pipeline')}`, not "
                f"`{pipeline}`. Fix: pick a run of `{pipeline}` (`nb2prod runs {pipeline}`)."
            )
        if record.get("status") != "succeeded":
            raise Nb2prodError(
                f"--baseline {requested}: that run {record.get('status')}, so its metrics are "
                "not a baseline. Fix: pick a successful run (`nb2prod runs "
                f"{pipeline}`)."
            )
        return from_record(requested, "run", record)
    return None


def _newest(home: Path, pipeline: str, version: int | None = None) -> dict[str, Any] | None:
    for record in list_runs(home, pipeline, limit=10_000):
        if record.get("status") == "succeeded" and (
            version is None or record.get("version") == version
        ):
            return record
    return None
