"""nb2prod.tracking.mlflow_log against real MLflow: SQLite default, a real server, a dead one."""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from nb2prod.tracking.mlflow_log import Tracker, TrackingResult, tracking_uri  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")

STEPS = ("data", "training", "evaluation")


class Threshold:
    """A model-like object that is not a scikit-learn estimator (a plain pickle)."""

    def __init__(self, cut: float) -> None:
        self.cut = cut

    def predict(self, x: Any) -> Any:
        return (np.asarray(x)[:, 0] > self.cut).astype(int)


def executed_notebook(path: Path, source: str, output: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb.cells = [nbformat.v4.new_code_cell("C = 1.0", metadata={"tags": ["injected-parameters"]})]
    nb.cells.append(cell)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@functools.cache
def fitted_model() -> tuple[LogisticRegression, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return LogisticRegression(C=1.0, max_iter=5000).fit(x, y), x


def make_run(
    root: Path,
    *,
    run_id: str = "20261122-064612-ab12cd",
    status: str = "succeeded",
    cached: tuple[str, ...] = (),
    long_param: bool = False,
) -> tuple[Path, LogisticRegression, np.ndarray]:
    """A run folder like the runner's: run.json, config.yaml, notebooks, metrics, models."""
    run_dir = root / ".nb2prod" / "runs" / run_id
    model, x = fitted_model()
    params: dict[str, Any] = {"C": 1.0, "test_size": 0.25, "features": ["a", "b"]}
    if long_param:
        params["notes"] = "x" * 7000
    states = {"data": "succeeded", "training": "succeeded", "evaluation": "succeeded"}
    for name in cached:
        states[name] = "cached"
    errors: dict[str, Any] = {}
    if status == "failed":
        states["evaluation"] = "failed"
        errors["evaluation"] = {
            "cell": "cell 3 (id score)",
            "ename": "ValueError",
            "evalue": "bad input",
            "message": "ValueError: bad input",
        }
    if status == "interrupted":
        states["evaluation"] = "interrupted"
    step_params = {"data": {"test_size": 0.25}, "training": {"C": 1.0}, "evaluation": {}}
    step_metrics = {"data": {"rows": 569.0}, "training": {"train_acc": 0.96}, "evaluation": {}}
    if status == "succeeded":
        step_metrics["evaluation"] = {"acc": 0.97, "f1": 0.95}
    steps: dict[str, Any] = {}
    for name in STEPS:
        folder = run_dir / "steps" / name
        executed_notebook(folder / "notebook.ipynb", f"print('{name}')", f"{name}\n")
        if step_metrics[name]:
            (folder / "metrics.json").write_text(json.dumps(step_metrics[name]))
        steps[name] = {
            "role": "training" if name == "training" else "step",
            "state": states[name],
            "depends_on": [] if name == "data" else ["data"],
            "duration": 0.0 if states[name] == "cached" else 1.25,
            "started_at": "2026-11-22T06:46:13Z",
            "cached_from": "20261121-000000-000000" if states[name] == "cached" else None,
            "notebook": f"steps/{name}/notebook.ipynb",
            "params": step_params[name],
            "metrics": step_metrics[name],
            "models": [],
            "error": errors.get(name),
        }
    models = run_dir / "steps" / "training" / "models"
    models.mkdir(parents=True)
    with open(models / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    with open(models / "threshold.pkl", "wb") as handle:
        pickle.dump(Threshold(10.0), handle)
    steps["training"]["models"] = ["model", "threshold"]
    merged: dict[str, Any] = {}
    for name in STEPS:
        merged.update(step_metrics[name])
    record = {
        "schema_version": 1,
        "id": run_id,
        "pipeline": "breast_cancer",
        "version": 1,
        "version_dir": "pipelines/breast_cancer/v1",
        "notebook": "notebooks/breast_cancer.ipynb",
        "notebook_sha256": "f" * 64,
        "nb2prod_version": "0.1.0",
        "git_commit": "abc123",
        "status": status,
        "started_at": "2026-11-22T06:46:12Z",
        "finished_at": "2026-11-22T06:46:16Z",
        "duration": 4.2,
        "params": params,
        "steps": steps,
        "metrics": merged,
        "tracking": None,
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=1))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return run_dir, model, x


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow's default store (sqlite:///mlflow.db, artifacts in ./mlruns) inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def runs_of(client: Any, result: TrackingResult) -> tuple[Any, dict[str, Any]]:
    assert result.experiment_id is not None
    found = client.search_runs([result.experiment_id], max_results=100)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in found if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1
    return parents[0], children


def artifact_paths(client: Any, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_logs_parent_and_nested_runs_to_the_default_sqlite_store(local_store: Path) -> None:
    run_dir, model, x = make_run(local_store, cached=("data",), long_param=True)
    result = Tracker().log_run(run_dir)
    assert result.ok, result.error
    assert result.error is None
    assert result.uri == f"sqlite:///{local_store / 'mlflow.db'}"
    assert (local_store / "mlflow.db").is_file() and (local_store / "mlruns").is_dir()
    assert result.experiment == "breast_cancer"
    assert json.loads(json.dumps(result.to_json()))["run_id"] == result.run_id

    client = mlflow.MlflowClient(result.uri)
    experiment = client.get_experiment_by_name("breast_cancer")
    assert experiment is not None and experiment.experiment_id == result.experiment_id
    parent, children = runs_of(client, result)
    assert parent.info.run_id == result.run_id
    assert parent.info.run_name == "breast_cancer v1 20261122-064612-ab12cd"
    assert parent.info.status == "FINISHED"
    assert parent.data.params["C"] == "1.0"
    assert parent.data.params["test_size"] == "0.25"
    assert parent.data.params["features"] == str(["a", "b"])
    assert len(parent.data.params["notes"]) == 6000
    assert parent.data.metrics == {"rows": 569.0, "train_acc": 0.96, "acc": 0.97, "f1": 0.95}
    tags = parent.data.tags
    assert tags["nb2prod.pipeline"] == "breast_cancer"
    assert tags["nb2prod.version"] == "1"
    assert tags["nb2prod.run_id"] == "20261122-064612-ab12cd"
    assert tags["nb2prod.notebook"] == "notebooks/breast_cancer.ipynb"
    assert tags["nb2prod.notebook_sha256"] == "f" * 64
    assert tags["nb2prod.git_commit"] == "abc123"
    assert tags["nb2prod.cached_steps"] == "data"
    assert tags["nb2prod.nb2prod_version"] == "0.1.0"
    assert parent.info.end_time - parent.info.start_time == 4000
    assert artifact_paths(client, parent.info.run_id) == {
        "run.json",
        "config.yaml",
        *(f"notebooks/{s}.ipynb" for s in STEPS),
    }
    notebook = client.download_artifacts(parent.info.run_id, "notebooks/training.ipynb")
    assert nbformat.read(notebook, as_version=4).cells[1].outputs[0]["text"] == "training\n"

    assert set(children) == set(STEPS)
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["nb2prod.step"] == name
        assert child.info.status == "FINISHED"
        assert f"{name}.ipynb" in artifact_paths(client, child.info.run_id)
    data, training = children["data"], children["training"]
    assert data.data.tags["nb2prod.cached"] == "true"
    assert data.data.tags["nb2prod.cached_from"] == "20261121-000000-000000"
    assert data.data.tags["nb2prod.state"] == "cached"
    assert training.data.tags["nb2prod.cached"] == "false"
    assert training.data.tags["nb2prod.cached_from"] == ""
    assert training.data.tags["nb2prod.role"] == "training"
    assert training.data.params == {"C": "1.0"}
    assert training.data.metrics == {"train_acc": 0.96}
    assert children["evaluation"].data.metrics == {"acc": 0.97, "f1": 0.95}

    # The scikit-learn model is a deployable MLflow model that predicts like the original.
    model_uri = training.data.tags["nb2prod.model.model"]
    assert model_uri.startswith("models:/")
    loaded = mlflow.sklearn.load_model(model_uri)
    assert (loaded.predict(x) == model.predict(x)).all()
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    assert (np.asarray(pyfunc.predict(x)) == model.predict(x)).all()
    logged = client.search_logged_models([result.experiment_id])
    assert [m.name for m in logged] == ["model"]
    assert logged[0].source_run_id == training.info.run_id
    # The other model is kept as its pickle file.
    assert "models/threshold.pkl" in artifact_paths(client, training.info.run_id)
    assert training.data.tags["nb2prod.model.threshold"] == (
        f"runs:/{training.info.run_id}/models/threshold.pkl"
    )
    with open(client.download_artifacts(training.info.run_id, "models/threshold.pkl"), "rb") as f:
        assert pickle.load(f).cut == 10.0

    # A second run of the same pipeline goes into the same experiment.
    again, _, _ = make_run(local_store / "second", run_id="20261122-070000-000001")
    second = Tracker().log_run(again)
    assert second.ok, second.error
    assert second.experiment_id == result.experiment_id
    assert len(client.search_runs([result.experiment_id], "tags.`nb2prod.step` = 'data'")) == 2


def test_deleted_experiment_is_restored(local_store: Path) -> None:
    tracker = Tracker()
    first = tracker.log_run(make_run(local_store / "a", run_id="r-a")[0])
    assert first.ok, first.error
    client = mlflow.MlflowClient(first.uri)
    client.delete_experiment(first.experiment_id)
    again = tracker.log_run(make_run(local_store / "b", run_id="r-b")[0])
    assert again.ok, again.error
    assert again.experiment_id == first.experiment_id
    assert client.get_experiment(first.experiment_id).lifecycle_stage == "active"


def test_failed_and_interrupted_runs_get_failed_and_killed_statuses(local_store: Path) -> None:
    tracker = Tracker()
    failed_dir, _, _ = make_run(local_store / "a", run_id="r-failed", status="failed")
    failed = tracker.log_run(failed_dir)
    assert failed.ok, failed.error
    client = mlflow.MlflowClient(failed.uri)
    parent = client.get_run(failed.run_id)
    assert parent.info.status == "FAILED"
    children = {
        r.info.run_name: r
        for r in client.search_runs(
            [failed.experiment_id], f"tags.mlflow.parentRunId = '{failed.run_id}'"
        )
    }
    assert set(children) == set(STEPS)
    evaluation = children["evaluation"]
    assert evaluation.info.status == "FAILED"
    assert evaluation.data.tags["nb2prod.error"] == "ValueError: bad input (in cell 3 (id score))"
    assert children["training"].info.status == "FINISHED"

    stopped_dir, _, _ = make_run(local_store / "b", run_id="r-stopped", status="interrupted")
    stopped = tracker.log_run(stopped_dir)
    assert stopped.ok, stopped.error
    assert client.get_run(stopped.run_id).info.status == "KILLED"
    killed = client.search_runs(
        [stopped.experiment_id],
        f"tags.mlflow.parentRunId = '{stopped.run_id}' and tags.`nb2prod.step` = 'evaluation'",
    )
    assert [r.info.status for r in killed] == ["KILLED"]


def test_skipped_step_gets_a_killed_nested_run(local_store: Path) -> None:
    run_dir, _, _ = make_run(local_store, status="failed")
    record = json.loads((run_dir / "run.json").read_text())
    record["steps"]["report"] = {
        "role": "step",
        "state": "skipped",
        "duration": None,
        "cached_from": None,
        "notebook": None,
        "params": {},
        "metrics": {},
        "models": [],
        "error": {
            "cell": None,
            "ename": "Skipped",
            "evalue": "evaluation did not succeed",
            "message": "not run because step evaluation did not succeed",
        },
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    result = Tracker().log_run(run_dir)
    assert result.ok, result.error
    client = mlflow.MlflowClient(result.uri)
    _, children = runs_of(client, result)
    report = children["report"]
    assert report.info.status == "KILLED"
    assert report.data.tags["nb2prod.state"] == "skipped"
    assert report.data.tags["nb2prod.error"] == "not run because step evaluation did not succeed"
    assert artifact_paths(client, report.info.run_id) == set()


def test_bad_run_folder_and_locked_store_give_ok_false(local_store: Path) -> None:
    missing = Tracker().log_run(local_store / "nowhere")
    assert not missing.ok and missing.run_id is None
    assert "run.json" in (missing.error or "") and "Fix:" in (missing.error or "")

    # A store that is not a database at all: a clear error, not an exception.
    (local_store / "broken.db").write_text("this is not sqlite")
    run_dir, _, _ = make_run(local_store)
    broken = Tracker(f"sqlite:///{local_store / 'broken.db'}").log_run(run_dir)
    assert not broken.ok
    assert "broken.db" in (broken.error or "") and "Fix:" in (broken.error or "")
    assert "\n" not in (broken.error or "")
    assert os.environ.get("MLFLOW_TRACKING_URI") is None  # an explicit URI leaves no trace


def test_failure_half_way_marks_created_runs_failed(local_store: Path) -> None:
    (local_store / "mlruns").write_text("a file where MLflow wants its artifact folder")
    run_dir, _, _ = make_run(local_store)
    result = Tracker().log_run(run_dir)
    assert not result.ok and result.run_id is None
    assert "NotADirectoryError" in (result.error or "") and "mlruns" in (result.error or "")
    client = mlflow.MlflowClient(result.uri)
    runs = client.search_runs([result.experiment_id])
    assert runs and {r.info.status for r in runs} == {"FAILED"}


def test_locked_sqlite_store_waits_briefly_then_gives_ok_false(local_store: Path) -> None:
    tracker = Tracker()
    first = tracker.log_run(make_run(local_store / "a", run_id="r-a")[0])
    assert first.ok, first.error
    lock = sqlite3.connect(local_store / "mlflow.db", isolation_level=None, check_same_thread=False)
    try:
        # Another writer holding the database for a moment only delays tracking.
        lock.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(1.0, lambda: lock.execute("ROLLBACK"))
        release.start()
        brief = tracker.log_run(make_run(local_store / "b", run_id="r-b")[0])
        release.join()
        assert brief.ok, brief.error
        # One that keeps it locked makes tracking fail (after MLflow's 20 s busy timeout).
        lock.execute("BEGIN EXCLUSIVE")
        locked = tracker.log_run(make_run(local_store / "c", run_id="r-c")[0])
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    assert not locked.ok and locked.run_id is None
    error = locked.error or ""
    assert "locked" in error and locked.uri in error and "Fix:" in error
    assert "[SQL:" not in error and "\n" not in error
    client = mlflow.MlflowClient(locked.uri)
    assert {r.data.tags["nb2prod.run_id"] for r in client.search_runs([first.experiment_id])} == {
        "r-a",
        "r-b",
    }


def test_explicit_uri_wins_over_environment(local_store: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # would fail if used
    uri = f"sqlite:///{local_store / 'explicit.db'}"
    run_dir, _, _ = make_run(local_store)
    result = Tracker(uri).log_run(run_dir)
    assert result.ok, result.error
    assert result.uri == uri
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free local port, stopped by its PID afterwards."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:]
                )
            time.sleep(0.25)
        yield url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)
        log.close()


def test_logs_to_a_real_tracking_server(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert tracking_uri() == mlflow_server
    run_dir, model, x = make_run(tmp_path, cached=("data",))
    result = Tracker().log_run(run_dir)
    assert result.ok, result.error
    assert result.uri == mlflow_server
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    client = mlflow.MlflowClient(mlflow_server)
    parent, children = runs_of(client, result)
    assert parent.info.run_id == result.run_id and parent.info.status == "FINISHED"
    assert parent.data.tags["nb2prod.cached_steps"] == "data"
    assert set(children) == set(STEPS)
    assert {"run.json", "config.yaml", "notebooks/evaluation.ipynb"} <= artifact_paths(
        client, parent.info.run_id
    )
    training = children["training"]
    assert training.data.metrics == {"train_acc": 0.96}
    loaded = mlflow.sklearn.load_model(training.data.tags["nb2prod.model.model"])
    assert (loaded.predict(x) == model.predict(x)).all()
    assert "models/threshold.pkl" in artifact_paths(client, training.info.run_id)
    # The request limits were only in force while logging.
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_unreachable_server_fails_fast_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir, _, _ = make_run(tmp_path)
    before = (run_dir / "run.json").read_bytes()
    started = time.monotonic()
    result = Tracker().log_run(run_dir)
    assert time.monotonic() - started < 15
    assert not result.ok
    assert result.uri == uri and result.run_id is None
    assert result.experiment == "breast_cancer"
    error = result.error or ""
    assert uri in error and "Fix:" in error and "unset MLFLOW_TRACKING_URI" in error
    assert str(run_dir) in error
    assert (run_dir / "run.json").read_bytes() == before
    assert not (tmp_path / "mlflow.db").exists()


def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run_dir, _, _ = make_run(tmp_path)
        started = time.monotonic()
        result = Tracker(uri).log_run(run_dir)
        assert time.monotonic() - started < 15
    assert not result.ok
    assert f"{uri} did not answer" in (result.error or "")


def test_tracking_uri_without_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", " http://tracking:5000 ")
    assert tracking_uri() == "http://tracking:5000"
    assert Tracker().uri == "http://tracking:5000"
    assert Tracker("sqlite:///other.db").uri == "sqlite:///other.db"


def test_importing_the_module_does_not_import_mlflow() -> None:
    code = (
        "import sys, nb2prod.tracking.mlflow_log\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert nb2prod.tracking.mlflow_log.tracking_uri()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr


# --- through the CLI, as users run it -----------------------------------------------------------
FAST_NB = [
    ("scale = 2  # multiplier", ["parameters"]),
    ("data = [1.0, 2.0, 3.0]", ["preprocessing"]),
    (
        "from sklearn.linear_model import LinearRegression\n"
        "model = LinearRegression().fit([[x] for x in data], [x * scale for x in data])",
        ["training"],
    ),
    ("slope = float(model.coef_[0])", ["evaluation"]),
    ("slope", ["metrics"]),
]


def export_fast(project: Path) -> None:
    from conftest import run_cli, write_notebook

    write_notebook(project / "notebooks" / "fast.ipynb", FAST_NB)
    assert run_cli("export", "notebooks/fast.ipynb", cwd=project).returncode == 0


def test_cli_run_tracks_to_a_real_server(mlflow_server: str, tmp_path: Path) -> None:
    from conftest import run_cli

    export_fast(tmp_path)
    r = run_cli(
        "run",
        "pipelines/fast",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": mlflow_server, "CI": "true"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(next((tmp_path / ".nb2prod" / "runs").glob("*/run.json")).read_text())
    assert record["tracking"]["ok"] and record["tracking"]["uri"] == mlflow_server
    assert mlflow_server in r.stdout
    client = mlflow.MlflowClient(mlflow_server)
    parent = client.get_run(record["tracking"]["run_id"])
    assert parent.data.metrics == {"slope": pytest.approx(2.0)}
    assert parent.data.params["scale"] == "2"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(c.data.tags["nb2prod.step"] for c in children) == [
        "evaluation",
        "preprocessing",
        "training",
    ]
    training = next(c for c in children if c.data.tags["nb2prod.step"] == "training")
    assert "nb2prod.model.model" in training.data.tags  # a deployable artifact, every run
    assert not (tmp_path / "mlflow.db").exists()
    # Logged once (MLflow's "View run" lines once broke the worker's reply, and the runner
    # then logged everything a second time), and without a link printed per run.
    assert len(client.search_runs([parent.info.experiment_id])) == 4
    assert "View run" not in r.stdout + r.stderr


def test_cli_run_with_unreachable_server_exits_3_and_keeps_results(tmp_path: Path) -> None:
    from conftest import run_cli

    export_fast(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    r = run_cli(
        "run", "pipelines/fast", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri, "CI": "true"}
    )
    assert time.monotonic() - started < 90
    assert r.returncode == 3, r.stdout + r.stderr
    assert uri in r.stderr and "Traceback" not in r.stderr
    record = json.loads(next((tmp_path / ".nb2prod" / "runs").glob("*/run.json")).read_text())
    assert record["status"] == "succeeded" and record["metrics"] == {"slope": pytest.approx(2.0)}
    assert record["tracking"]["ok"] is False
    run_dir = tmp_path / ".nb2prod" / "runs" / record["id"]
    assert (run_dir / "steps" / "training" / "models" / "model.pkl").is_file()
