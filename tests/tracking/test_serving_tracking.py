"""The done test of issue 14: a notebook whose evaluation step calls its serving function is
exported, run tracked with --promote, and `mlflow models serve -m runs:/<id>/serving` (MLflow's
own scoring server, on a free loopback port) answers with the predictions the evaluation step
computed for the same rows; a request missing a column gets MLflow's schema error; the
`champion` alias points at the serving model, which `nb2prod serve champion` serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from serving_helpers import SERVING_CELLS, free_port, post, rows, scoring_server, serve_command

from conftest import run_cli, write_notebook

mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.timeout(900)


def test_the_served_model_answers_like_the_evaluation_step(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    write_notebook(tmp_path / "clf.ipynb", SERVING_CELLS)
    assert run_cli("export", "clf.ipynb", cwd=tmp_path).returncode == 0
    done = run_cli("run", "pipelines/clf", "--promote", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "serving: predict(raw) logged as model 'serving', no training/serving skew on 100 " \
        "rows" in done.stdout + done.stderr  # fmt: skip
    record = json.loads(next((tmp_path / ".nb2prod/runs").glob("*/run.json")).read_text())
    parent = record["tracking"]["run_id"]
    assert record["serving"]["skew"] == "none"
    assert record["tracking"]["serving_model"].startswith("models:/m-")

    # --promote: the champion alias is the serving model, registered under the pipeline's name
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("clf", "champion")
    assert champion.source == record["tracking"]["serving_model"]
    assert champion.run_id == parent
    assert record["gates"]["promoted"] == {"models": {"clf": str(champion.version)}}

    expected = pd.read_csv(tmp_path / "eval_predictions.csv", index_col=0)
    port = free_port()
    mlflow_serve = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{parent}/serving",
        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with scoring_server(mlflow_serve, port, tmp_path, env):
        status, answer = post(port, rows(expected[["a", "b", "noise"]]))
        assert status == 200, answer
        assert answer["predictions"] == expected["pred"].tolist()
        status, answer = post(port, rows(expected[["a", "noise"]].iloc[:5]))
        assert 400 <= status < 500, answer
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "missing inputs ['b']" in answer["message"]
        assert "Traceback" not in json.dumps(answer)  # MLflow's schema error, not user code

    port = free_port()
    with scoring_server(serve_command("champion", "--port", str(port)), port, tmp_path, env):
        status, answer = post(port, rows(expected[["a", "b", "noise"]].iloc[:10]))
        assert status == 200 and answer["predictions"] == expected["pred"].iloc[:10].tolist()
