"""A tracked run logs each step's HTML report to the step's MLflow run, where MLflow's UI
previews it. Real kernels, the real default SQLite store, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, write_notebook

mlflow = pytest.importorskip("mlflow")

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning"),
]

CELLS = [
    ("scale = 2", ["parameters"]),
    ("data = [1, 2, 3]\nprint('rows loaded:', len(data))", ["preprocessing"]),
    ("total = sum(data) * scale", ["training", "report:disabled"]),
    ("result = total + 1", ["evaluation"]),
    ("result", ["metrics"]),
]


def test_step_report_is_an_artifact_of_the_step_run(tmp_path: Path) -> None:
    write_notebook(tmp_path / "notebooks" / "rt.ipynb", CELLS)
    assert run_cli("export", "notebooks/rt.ipynb", cwd=tmp_path).returncode == 0
    env = {"CI": "true", "MLFLOW_TRACKING_URI": ""}
    r = run_cli("run", "pipelines/rt", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(next((tmp_path / ".nb2prod" / "runs").glob("*/run.json")).read_text())
    assert record["tracking"]["ok"], record["tracking"]
    assert str(tmp_path) in record["tracking"]["uri"]  # the default store, in the project
    client = mlflow.MlflowClient(record["tracking"]["uri"])
    parent = client.get_run(record["tracking"]["run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    artifacts = {
        c.data.tags["nb2prod.step"]: {a.path for a in client.list_artifacts(c.info.run_id)}
        for c in children
    }
    assert "report.html" in artifacts["preprocessing"]
    assert "report.html" in artifacts["evaluation"]
    assert "report.html" not in artifacts["training"]  # report:disabled
    local = client.download_artifacts(
        next(c for c in children if c.data.tags["nb2prod.step"] == "preprocessing").info.run_id,
        "report.html",
        str(tmp_path / "dl"),
    )
    assert "rows loaded: 3" in Path(local).read_text("utf-8")
