"""Gates against a real MLflow store: a run that passes is promoted (registry alias
`champion`), a worse run fails with exit 4 and leaves the alias where it was, a better one
moves it; the champion is the default baseline, found in the registry."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_cli, write_notebook

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

CELLS = [
    (
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.metrics import accuracy_score\n"
        "from sklearn.model_selection import train_test_split",
        ["setup"],
    ),
    ("C = 1.0  # inverse regularisation strength", ["parameters"]),
    (
        "X, y = load_breast_cancer(return_X_y=True)\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)",
        ["preprocessing"],
    ),
    ("model = LogisticRegression(C=C, max_iter=5000).fit(X_train, y_train)", ["training"]),
    ("accuracy = float(accuracy_score(y_test, model.predict(X_test)))", ["evaluation", "metrics"]),
    ("accuracy >= 0.9  # floor\naccuracy >= baseline - 0.02  # no real regression", ["gates"]),
]


def _alias(uri: str) -> tuple[str, str]:
    """(model version, nb2prod run id) the `champion` alias of model `bc` points to."""
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("bc", "champion")
    return str(version.version), str(version.tags.get("nb2prod.run_id"))


def _last(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    found = sorted((tmp_path / ".nb2prod" / "runs").glob("*/run.json"))
    return json.loads(found[-1].read_text())


def test_gates_fail_a_worse_model_and_promotion_moves_the_alias(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    write_notebook(tmp_path / "bc.ipynb", CELLS)
    assert run_cli("export", "bc.ipynb", cwd=tmp_path).returncode == 0

    first = run_cli("run", "pipelines/bc", "--promote", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    champion = _last(tmp_path)
    assert _alias(uri) == ("1", champion["id"])
    assert champion["gates"]["promoted"] == {"models": {"bc": "1"}}

    worse = run_cli(
        "run", "pipelines/bc", "-p", "C=0.0000001", "--promote", "--junit", "j.xml",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert worse.returncode == 4, worse.stdout + worse.stderr
    assert "accuracy >= baseline - 0.02" in worse.stderr
    record = _last(tmp_path)
    assert record["baseline"]["source"] == "champion (MLflow registry)"
    assert record["baseline"]["run_id"] == champion["id"]
    assert record["baseline"]["mlflow_run_id"] == champion["tracking"]["run_id"]
    assert record["gates"]["promoted"] is None
    assert _alias(uri) == ("1", champion["id"])  # a failed gate never moves it
    suite = ET.parse(tmp_path / "j.xml").getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert "accuracy >= baseline - 0.02" in failed
    parent = mlflow.MlflowClient(tracking_uri=uri).get_run(record["tracking"]["run_id"])
    assert parent.data.tags["nb2prod.gates"] == "failed"
    assert parent.data.tags["nb2prod.baseline_run_id"] == champion["tracking"]["run_id"]

    better = run_cli("run", "pipelines/bc", "-p", "C=2.0", "--promote", cwd=tmp_path, env=env)
    assert better.returncode == 0, better.stdout + better.stderr
    assert _alias(uri) == ("2", _last(tmp_path)["id"])
    shown = run_cli("champion", "bc", "--json", cwd=tmp_path, env=env)
    assert json.loads(shown.stdout)["mlflow"]["run_id"] == _last(tmp_path)["id"]
