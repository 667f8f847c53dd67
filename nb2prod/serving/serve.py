"""``nb2prod serve``: find a run's serving model, then run MLflow's scoring server on it.

What can be served: a run id (its run folder's ``serving/model``; for a run folder that is gone,
the MLflow run's ``runs:/<id>/serving``), an MLflow run id, ``champion`` (the registry alias
``models:/<pipeline>@champion``), or a pipeline (``pipelines/x`` or ``.../vN``: its newest run
that built a serving model). MLflow is imported only to ask its store or registry.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..run_folder import RUN_ID_RE, run_dir, serving_model_dir
from ..run_index import list_runs, pipeline_name, read_run
from ..version_folder import PIPELINES, versions
from .outcome import MODEL_NAME

ALIAS = "champion"  # the registry alias `nb2prod run --promote` moves (nb2prod.tracking.registry)
MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")
EXAMPLE_ROWS = 2  # rows of the input example the printed curl command sends
TAG_FIX = (
    "Fix: tag the cell that defines the production function `serving` (one function, e.g. "
    "`def predict(raw): ...`), export again and run the new version."
)


@dataclass(frozen=True)
class Target:
    uri: str  # what `mlflow models serve -m` gets
    what: str  # for the first line printed
    local: Path | None = None  # the model folder, when it is on this machine


def _no_model(what: str, record: dict[str, Any] | None = None) -> Nb2prodError:
    serving = (record or {}).get("serving")
    if isinstance(serving, dict) and serving.get("status") != "ok":
        return Nb2prodError(
            f"{what} has no servable model: its serving model failed "
            f"({serving.get('error')}). Fix: correct the notebook, export and run again."
        )
    if record is not None and record.get("status") != "succeeded" and not serving:
        return Nb2prodError(
            f"{what} did not succeed ({record.get('status')}), so it built no serving model. "
            "Fix: serve a successful run, or the pipeline (its newest successful run)."
        )
    return Nb2prodError(f"{what} logged no serving model. {TAG_FIX}")


def _from_record(record: dict[str, Any], home: Path) -> Target:
    run_id = str(record.get("id"))
    what = f"run {run_id} ({record.get('pipeline')} v{record.get('version')})"
    serving = record.get("serving")
    if not isinstance(serving, dict) or serving.get("status") != "ok":
        raise _no_model(f"run {run_id}", record)
    folder = serving_model_dir(run_dir(home, run_id))
    if (folder / "MLmodel").is_file():
        return Target(str(folder.resolve()), what, folder)
    tracking = record.get("tracking") or {}
    if tracking.get("serving_model") and tracking.get("run_id"):
        return Target(f"runs:/{tracking['run_id']}/{MODEL_NAME}", what)
    raise Nb2prodError(
        f"run {run_id}: its serving model is gone from {folder} and was not logged to MLflow. "
        "Fix: run the pipeline again."
    )


def _pipelines() -> list[str]:
    return sorted(p.name for p in PIPELINES.glob("*") if versions(p)) if PIPELINES.is_dir() else []


def _champion(pipeline: str | None) -> Target:
    names = _pipelines()
    if pipeline is None:
        if len(names) != 1:
            there = f" (pipelines here: {', '.join(names)})" if names else ""
            raise Nb2prodError(
                f"`champion` needs a pipeline{there}. Fix: nb2prod serve champion --pipeline NAME."
            )
        pipeline = names[0]
    name = pipeline_name(pipeline)
    uri = f"models:/{name}@champion"
    found = _registry_serving(name)
    if found is None:
        raise Nb2prodError(
            f"pipeline `{name}` has no champion serving model in the MLflow registry. Fix: "
            f"promote a run whose version has a serving function: nb2prod run pipelines/{name} "
            f"--promote. {TAG_FIX}"
        )
    return Target(uri, f"the champion of {name} (MLflow run {found})")


def _registry_serving(name: str) -> str | None:
    """The MLflow run of the champion's serving model, or None when the alias is missing or
    points at a model that is not a serving model (promoted before nb2prod logged them)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except Exception:  # noqa: BLE001 - no such model or alias
        return None
    run_id = str(getattr(version, "run_id", "") or "")
    if not run_id:
        return None
    tags = client.get_run(run_id).data.tags
    return run_id if tags.get("nb2prod.serving_model") == version.source else None


def _mlflow_run(run_id: str) -> Target:
    mlflow = _mlflow()
    try:
        tags = mlflow.MlflowClient().get_run(run_id).data.tags
    except Exception as exc:  # noqa: BLE001 - no such run in this store
        raise Nb2prodError(
            f"{run_id}: no such MLflow run in {mlflow.get_tracking_uri()} ({exc}). Fix: pass an "
            "nb2prod run id (`nb2prod runs` lists them), or set MLFLOW_TRACKING_URI."
        ) from None
    if not tags.get("nb2prod.serving_model"):
        raise _no_model(f"MLflow run {run_id}")
    return Target(f"runs:/{run_id}/{MODEL_NAME}", f"MLflow run {run_id}")


def _newest(pipeline: str, home: Path) -> Target:
    from ..pipeline import locate

    folder = locate(Path(pipeline), "nb2prod serve {}")
    version = int(folder.name[1:]) if re.fullmatch(r"v[0-9]+", folder.name) else None
    name = folder.name if version is None else folder.parent.name
    shown = name if version is None else f"{name} v{version}"
    runs = [
        r
        for r in list_runs(home, name, limit=10_000)
        if r.get("status") == "succeeded" and (version is None or r.get("version") == version)
    ]
    if not runs:
        raise Nb2prodError(
            f"{shown} has no successful run yet. Fix: nb2prod run {folder.as_posix()}"
        )
    return _from_record(runs[0], home)


def _mlflow() -> Any:
    from ..gc_tuning import imports_without_gc

    with imports_without_gc():
        import mlflow
    return mlflow


def resolve(target: str, pipeline: str | None, home: Path) -> Target:
    """What ``nb2prod serve TARGET`` serves (see the module's docs)."""
    if target == "champion":
        return _champion(pipeline)
    if RUN_ID_RE.fullmatch(target):
        record = read_run(home, target)
        if record is None:
            raise Nb2prodError(
                f"run {target}: no such run in {home}. Fix: `nb2prod runs` lists them."
            )
        return _from_record(record, home)
    if MLFLOW_RUN_ID.fullmatch(target):
        return _mlflow_run(target)
    return _newest(target, home)


def curl_example(target: Target, host: str, port: int) -> str:
    """A ready ``curl`` command posting the first rows of the model's input example."""
    body: Any = None
    try:
        if target.local is not None:
            path = target.local / "serving_input_example.json"
        else:
            mlflow = _mlflow()
            path = Path(
                mlflow.artifacts.download_artifacts(f"{target.uri}/serving_input_example.json")
            )
        body = json.loads(path.read_text("utf-8"))
    except Exception:  # noqa: BLE001 - a model without an example still serves
        body = None
    if isinstance(body, dict) and isinstance(body.get("dataframe_split"), dict):
        split = dict(body["dataframe_split"])
        split.pop("index", None)
        split["data"] = list(split.get("data") or [])[:EXAMPLE_ROWS]
        body = {"dataframe_split": split}
    elif isinstance(body, dict) and isinstance(body.get("inputs"), list):
        body = {**body, "inputs": body["inputs"][:EXAMPLE_ROWS]}
    if body is None:
        body = {"dataframe_split": {"columns": ["..."], "data": [["..."]]}}
    data = json.dumps(body, separators=(",", ":")).replace("'", "'\\''")
    return (
        f"curl -s http://{host}:{port}/invocations -H 'Content-Type: application/json' -d '{data}'"
    )


def command(target: Target, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        target.uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
    ]


def run_server(target: Target, host: str, port: int) -> int:
    """MLflow's scoring server in the foreground, until it exits (its exit code) or is stopped
    by Ctrl-C or SIGTERM (0, once it has stopped)."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    proc = subprocess.Popen(command(target, host, port), env=env)
    stopped = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopped
        stopped = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                code = proc.wait()
                return 0 if stopped else code
            except KeyboardInterrupt:  # the server got the Ctrl-C too; let it stop
                stopped = True
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
