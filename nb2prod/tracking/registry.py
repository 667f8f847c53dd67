"""The MLflow model registry side of gates: finding the champion or a run to compare with, and
promoting a run (registering its models and moving the ``champion`` alias to them)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

ALIAS = "champion"
RUN_TAG = "nb2prod.run_id"


def _summary(client: Any, parent_id: str, source: str, requested: str) -> dict[str, Any]:
    """A baseline (nb2prod.gates.baseline.Baseline's JSON) from an MLflow parent run."""
    run = client.get_run(parent_id)
    tags = run.data.tags
    version = tags.get("nb2prod.version")
    return {
        "requested": requested,
        "source": source,
        "run_id": tags.get(RUN_TAG),
        "mlflow_run_id": parent_id,
        "version": int(version) if str(version or "").isdigit() else None,
        "metrics": dict(run.data.metrics),
    }


def _parent_of(client: Any, run_id: str) -> str:
    """The pipeline run an MLflow run belongs to (itself when it is the parent)."""
    run = client.get_run(run_id)
    return str(run.data.tags.get("mlflow.parentRunId") or run_id)


def _champion_versions(client: Any, pipeline: str) -> list[Any]:
    """The model versions holding the alias on ``pipeline`` or ``pipeline-<step>…``."""
    found = []
    names = [pipeline]
    with contextlib.suppress(Exception):
        names += [
            m.name
            for m in client.search_registered_models(
                # Pipeline names are [a-z0-9_]; `_` matches any character in LIKE, so a
                # near-name may match: the parent run's pipeline tag is checked after.
                filter_string=f"name LIKE '{pipeline}-%'"
            )
        ]
    for name in names:
        with contextlib.suppress(Exception):
            found.append(client.get_model_version_by_alias(name, ALIAS))
    return found


def find_champion(client: Any, pipeline: str) -> dict[str, Any] | None:
    for mv in _champion_versions(client, pipeline):
        run_id = getattr(mv, "run_id", None)
        if not run_id:
            continue
        parent = _parent_of(client, run_id)
        found = _summary(client, parent, "champion (MLflow registry)", ALIAS)
        if client.get_run(parent).data.tags.get("nb2prod.pipeline") == pipeline:
            return found
    return None


def find_run(client: Any, mlflow_run_id: str, pipeline: str) -> dict[str, Any] | None:
    try:
        parent = _parent_of(client, mlflow_run_id)
    except Exception:  # noqa: BLE001 - no such run
        return None
    found = _summary(client, parent, "MLflow run", mlflow_run_id)
    tags = client.get_run(parent).data.tags
    return found if tags.get("nb2prod.pipeline") == pipeline else None


def promote(
    mlflow: Any,
    client: Any,
    pipeline: str,
    models: dict[str, dict[str, str]],
    run_id: str,
    serving: str | None = None,
) -> dict[str, str]:
    """Register the run's models and point the alias at the new versions.

    ``serving``: the run's serving model (``models:/<id>``), when it logged one: it alone is
    registered, under the pipeline's name, as it is what serves the pipeline. Otherwise every
    model of ``models`` ({step: {model name: URI}}); pickle files kept as plain artifacts (not
    MLflow models) cannot be registered and are left out. Returns {registered name: version}.
    """
    usable = {
        step: {name: uri for name, uri in found.items() if not str(uri).endswith(".pkl")}
        for step, found in models.items()
    }
    usable = {step: found for step, found in usable.items() if found}
    names = {serving: pipeline} if serving else registered_names(pipeline, usable)
    promoted: dict[str, str] = {}
    for uri, name in names.items():
        with contextlib.suppress(Exception):
            client.create_registered_model(name)  # raises when it exists already
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            # MLflow prints "Created version ..." itself; nb2prod's summary says it once.
            version = mlflow.register_model(uri, name, tags={RUN_TAG: run_id})
        client.set_registered_model_alias(name, ALIAS, str(version.version))
        promoted[name] = str(version.version)
    return promoted


def registered_names(pipeline: str, models: dict[str, dict[str, str]]) -> dict[str, str]:
    """The registered model name for each logged model URI: the pipeline's name when the run
    logged one model; ``<pipeline>-<step>`` per step otherwise (``-<model>`` appended when a
    step logged several). ``models``: {step: {model name: uri}}."""
    flat = [(step, name, uri) for step, found in models.items() for name, uri in found.items()]
    if len(flat) == 1:
        return {flat[0][2]: pipeline}
    names = {}
    for step, name, uri in flat:
        several = len(models[step]) > 1
        names[uri] = f"{pipeline}-{step}" + (f"-{name}" if several else "")
    return names
