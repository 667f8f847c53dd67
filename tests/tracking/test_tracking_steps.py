"""MLflow calls in a step's own code (issue 9, items 6 and 7).

Under ``nb2prod run`` they land in the step's nested run (or, untracked, in a throwaway store),
no run is left RUNNING, and parallel first runs on a fresh SQLite store are all tracked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from test_tracking import STEPS, make_run  # noqa: E402

from nb2prod.tracking.mlflow_log import scratch_env  # noqa: E402
from nb2prod.tracking.worker import TrackingWorker  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")

# What a notebook that already uses MLflow does (MLflow's own diabetes example, plus autolog and
# a second run), ending like a step kernel stopped with shutdown_kernel(now=True): no atexit.
USER_CODE = """
import os
import mlflow
import numpy as np
from sklearn.linear_model import ElasticNet

mlflow.autolog()
x = np.random.RandomState(0).rand(40, 3)
y = x @ [1.0, 2.0, 3.0]
with mlflow.start_run(run_name="elasticnet"):
    model = ElasticNet(alpha=0.5, l1_ratio=0.1).fit(x, y)
    mlflow.log_param("C", 2.0)  # nb2prod logs C = 1.0 for this step: the user's value is kept
    mlflow.log_param("l1_ratio", 0.1)  # autolog logged the same value already
    for step, value in enumerate([0.5, 0.7]):
        mlflow.log_metric("train_acc", value, step=step)  # nb2prod has train_acc = 0.96
    mlflow.sklearn.log_model(model, name="user_model")
mlflow.log_metric("after", 1.0)  # MLflow starts a second run for this one
mlflow.start_run(nested=True)  # and a run nested in it, never ended
print("USER", mlflow.active_run().info.run_id, flush=True)
os._exit(0)
"""


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow's default store (sqlite:///mlflow.db, artifacts in ./mlruns) inside tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    return tmp_path


def run_user_code(code: str, env: dict[str, str], cwd: Path) -> str:
    """Run ``code`` as a step kernel would: another folder, the step's environment."""
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "View run" not in done.stdout + done.stderr
    return done.stdout


def all_runs(client: Any) -> list[Any]:
    experiments = client.search_experiments(view_type=mlflow.entities.ViewType.ALL)
    return client.search_runs([e.experiment_id for e in experiments], max_results=1000)


def test_step_code_logs_into_the_steps_nested_run(local_store: Path) -> None:
    run_dir, _, _ = make_run(local_store)
    worker = TrackingWorker()
    try:
        worker.prepare(models=True, background=True)
        env = worker.open_step(run_dir, "training")
        again = worker.open_step(run_dir, "training")  # asked twice: the same run
        other = worker.open_step(run_dir, "evaluation")
        assert env and again == env
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{local_store / 'mlflow.db'}"
        assert env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
        assert other["MLFLOW_RUN_ID"] != env["MLFLOW_RUN_ID"]
        # The kernel runs in the notebook's folder: the absolute URI still finds the store.
        user_out = run_user_code(USER_CODE, env, local_store / "notebooks")
        result = worker.log_run(run_dir)
    finally:
        worker.close()
    assert result.ok, result.error
    assert not (local_store / "notebooks" / "mlflow.db").exists()
    assert not (local_store / "notebooks" / "mlruns").exists()

    client = mlflow.MlflowClient(result.uri)
    runs = all_runs(client)
    assert {r.info.experiment_id for r in runs} == {result.experiment_id}  # nothing in Default
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [result.run_id]  # reused, not created twice
    steps = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id
    }
    assert set(steps) == set(STEPS)  # one nested run per step, named after it
    training = steps["training"]
    assert training.info.run_id == env["MLFLOW_RUN_ID"]
    assert training.info.status == "FINISHED"
    assert steps["evaluation"].info.run_id == other["MLFLOW_RUN_ID"]
    # What the user logged is kept; nb2prod added only what the user did not log.
    assert training.data.params["C"] == "2.0"
    assert training.data.params["alpha"] == "0.5"  # autolog
    assert training.data.params["l1_ratio"] == "0.1"
    history = client.get_metric_history(training.info.run_id, "train_acc")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.7)]
    assert "training_r2_score" in training.data.metrics  # autolog
    assert training.data.tags["nb2prod.state"] == "succeeded"
    assert training.data.tags["nb2prod.model.model"].startswith("models:/")
    assert "training.ipynb" in {a.path for a in client.list_artifacts(training.info.run_id)}
    models = {m.name: m for m in client.search_logged_models([result.experiment_id])}
    assert models["user_model"].source_run_id == training.info.run_id
    assert models["model"].source_run_id == training.info.run_id
    # Runs the code started after its first one are nested under the step's run, and ended.
    later = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == training.info.run_id]
    assert len(later) == 1 and later[0].data.metrics == {"after": 1.0}
    assert later[0].data.tags["nb2prod.step"] == "training"
    innermost = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == later[0].info.run_id]
    assert [r.info.run_id for r in innermost] == [user_out.split()[-1]]
    assert {r.info.status for r in (*later, *innermost)} == {"FINISHED"}


def test_runs_of_a_failed_step_end_failed_and_abandoned_runs_end_killed(
    local_store: Path,
) -> None:
    run_dir, _, _ = make_run(local_store, status="failed")
    code = "import os, mlflow\nmlflow.log_param('p', 1)\nos._exit(0)\n"
    worker = TrackingWorker()
    try:
        run_user_code(code, worker.open_step(run_dir, "evaluation"), local_store)
        result = worker.log_run(run_dir)
    finally:
        worker.close()
    assert result.ok, result.error
    client = mlflow.MlflowClient(result.uri)
    evaluation = client.search_runs([result.experiment_id], "tags.`nb2prod.step` = 'evaluation'")
    assert [(r.info.status, r.data.params) for r in evaluation] == [("FAILED", {"p": "1"})]

    # A run that never reaches log_run (the runner died): the worker ends what it opened.
    abandoned, _, _ = make_run(local_store / "again", run_id="20261122-070000-000001")
    worker = TrackingWorker()
    try:
        env = worker.open_step(abandoned, "training")
        run_user_code(code, env, local_store)
    finally:
        worker.close()
    runs = client.search_runs(
        [result.experiment_id], "tags.`nb2prod.run_id` = '20261122-070000-000001'"
    )
    assert len(runs) == 2  # the parent and the training step's run
    assert {r.info.status for r in runs} == {"KILLED"}


def test_when_the_worker_dies_the_run_is_logged_into_the_runs_it_opened(
    local_store: Path,
) -> None:
    run_dir, _, _ = make_run(local_store)
    worker = TrackingWorker()
    try:
        env = worker.open_step(run_dir, "training")
        worker.proc.kill()
        worker.proc.wait(timeout=30)
        assert worker.open_step(run_dir, "evaluation") == {}
        result = worker.log_run(run_dir)  # logged from this process instead
    finally:
        worker.close()
    assert result.ok, result.error
    client = mlflow.MlflowClient(result.uri)
    runs = client.search_runs([result.experiment_id])
    assert len(runs) == 1 + len(STEPS)  # reused, not created twice
    assert result.run_id in {r.data.tags.get("mlflow.parentRunId") for r in runs}
    assert env["MLFLOW_RUN_ID"] in {r.info.run_id for r in runs}
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_open_step_without_a_reachable_store_returns_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _, _ = make_run(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the worker inherits it
    worker = TrackingWorker()
    try:
        assert worker.open_step(run_dir, "training") == {}
        assert worker.open_step(run_dir, "evaluation") == {}  # fails once, then at once
        result = worker.log_run(run_dir)
    finally:
        worker.close()
    assert not result.ok and "http://127.0.0.1:9" in (result.error or "")


def test_scratch_env_keeps_step_code_away_from_every_real_store(
    local_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = local_store / "real"
    # Whatever the user's shell selects must not be reached, nor break the step.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{real / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "42")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    scratch = local_store / "scratch"
    env = scratch_env(scratch)
    code = USER_CODE.replace("os._exit(0)", "")  # run MLflow's exit hook too
    run_user_code(code, env, local_store / "notebooks")
    assert not real.exists()
    assert not (local_store / "mlflow.db").exists() and not (local_store / "mlruns").exists()
    notebooks = local_store / "notebooks"
    assert sorted(p.name for p in notebooks.iterdir()) == []
    assert env["MLFLOW_TRACKING_URI"].startswith(scratch.as_uri())
    assert any(scratch.rglob("meta.yaml"))  # it did log, into the scratch folder
    # Parallel steps get stores of their own.
    assert scratch_env(scratch)["MLFLOW_TRACKING_URI"] != env["MLFLOW_TRACKING_URI"]


def test_scratch_env_does_not_import_mlflow(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from nb2prod.tracking.mlflow_log import scratch_env\n"
        f"env = scratch_env(pathlib.Path({str(tmp_path)!r}))\n"
        "assert 'mlflow' not in sys.modules\n"
        "print(env['MLFLOW_TRACKING_URI'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(tmp_path.as_uri())
    assert json.dumps(scratch_env(tmp_path))  # plain strings, ready for os.environ.update


# --- through `nb2prod run`, as users run it ------------------------------------------------------
# A notebook that already tracks itself with MLflow, in the shape of MLflow's diabetes example.
MLFLOW_NB = [
    ("alpha = 0.5  # regularization\nl1_ratio = 0.1  # L1 share", ["parameters"]),
    (
        "import numpy as np\n"
        "x = np.random.RandomState(0).rand(60, 3)\n"
        "y = x @ np.array([1.0, 2.0, 3.0])",
        ["preprocessing"],
    ),
    (
        "import mlflow\n"
        "from sklearn.linear_model import ElasticNet\n"
        "mlflow.autolog()\n"
        "with mlflow.start_run():\n"
        "    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio).fit(x, y)\n"
        "    mlflow.log_param('alpha', alpha)\n"
        "    mlflow.log_metric('train_r2', model.score(x, y))\n"
        "    mlflow.sklearn.log_model(model, name='elasticnet')",
        ["training"],
    ),
    (
        "rmse = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))\n"
        "mlflow.log_metric('rmse', rmse)",
        ["evaluation", "metrics"],
    ),
]


def export_mlflow_notebook(project: Path) -> None:
    from conftest import run_cli, write_notebook

    write_notebook(project / "notebooks" / "diabetes.ipynb", MLFLOW_NB)
    done = run_cli("export", "notebooks/diabetes.ipynb", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_run_puts_the_notebooks_own_mlflow_calls_in_its_step_runs(
    tmp_path: Path, short_tmpdir: Path
) -> None:
    from conftest import run_cli

    export_mlflow_notebook(tmp_path)
    scratch_parent = short_tmpdir
    env = {"CI": "true", "TMPDIR": str(scratch_parent)}

    # Untracked: the calls go nowhere persistent, and the throwaway store is removed.
    r = run_cli("run", "pipelines/diabetes", "--no-track", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for folder in (tmp_path, tmp_path / "notebooks"):
        assert not (folder / "mlflow.db").exists() and not (folder / "mlruns").exists()
    assert not list(scratch_parent.glob("nb2prod-mlflow-*"))

    # Tracked: one parent run, one nested run per step, the user's calls in the step's run.
    r = run_cli("run", "pipelines/diabetes", "--no-cache", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "View run" not in r.stdout + r.stderr
    records = [json.loads(p.read_text()) for p in tmp_path.glob(".nb2prod/runs/*/run.json")]
    (record,) = [r for r in records if r["tracking"] is not None]  # not the --no-track run
    assert record["tracking"]["ok"], record["tracking"]
    assert not (tmp_path / "notebooks" / "mlflow.db").exists()
    assert not (tmp_path / "notebooks" / "mlruns").exists()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = all_runs(client)
    experiment_id = record["tracking"]["experiment_id"]
    assert {r.info.experiment_id for r in runs} == {experiment_id}  # nothing in "Default"
    assert [r.info.run_name for r in runs if r.info.status != "FINISHED"] == []
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [record["tracking"]["run_id"]]
    steps = {r.data.tags["nb2prod.step"]: r for r in runs if r not in parents}
    assert len(steps) == len(runs) - 1 == 3  # one run per step, and no other
    training, evaluation = steps["training"], steps["evaluation"]
    assert training.data.params["alpha"] == "0.5"
    assert training.data.params["l1_ratio"] == "0.1"  # autolog's, and nb2prod's
    assert "train_r2" in training.data.metrics and "training_r2_score" in training.data.metrics
    models = {m.name: m for m in client.search_logged_models([experiment_id])}
    assert models["elasticnet"].source_run_id == training.info.run_id
    assert [m.value for m in client.get_metric_history(evaluation.info.run_id, "rmse")] == [
        pytest.approx(record["metrics"]["rmse"])
    ]
    # The executed notebook shows where its MLflow calls went.
    run_dir = tmp_path / ".nb2prod" / "runs" / record["id"]
    executed = json.loads((run_dir / record["steps"]["training"]["notebook"]).read_text())
    assert training.info.run_id in "".join(executed["cells"][0]["source"])


def test_parallel_first_runs_on_a_fresh_store_are_all_tracked(tmp_path: Path) -> None:
    from conftest import TINY_CELLS, nb2prod_command, run_cli, write_notebook

    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=tmp_path).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    procs = [
        subprocess.Popen(
            [*nb2prod_command(), "run", "pipelines/tiny"],
            cwd=tmp_path,
            env={**env, "CI": "true", "NB2PROD_HOME": str(tmp_path / f"home{i}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outputs)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert not (tmp_path / "mlflow.db.lock").exists()
    # The store is healthy for the next run too.
    r = run_cli("run", "pipelines/tiny", cwd=tmp_path, env={"CI": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
