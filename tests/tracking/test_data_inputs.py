"""The data files a step read show in MLflow as the step run's dataset inputs, with their digest."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, write_notebook

CELLS = [
    ("import pandas as pd\ntrain_path = 'data/train.csv'", ["parameters"]),
    ("frame = pd.read_csv(train_path)\ntotal = int(frame['x'].sum())", ["preprocessing"]),
    ("result = total", ["evaluation", "metrics"]),
]


def test_each_changed_file_shows_its_new_digest(tmp_path: Path) -> None:
    import mlflow

    data = tmp_path / "notebooks" / "data"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("x\n1\n2\n")
    write_notebook(tmp_path / "notebooks" / "reads.ipynb", CELLS)
    assert run_cli("export", "notebooks/reads.ipynb", cwd=tmp_path).returncode == 0
    env = {"CI": "true", "MLFLOW_TRACKING_URI": ""}
    digests = []
    for content in ("x\n1\n2\n", "x\n1\n3\n"):
        (data / "train.csv").write_text(content)
        r = run_cli("run", "pipelines/reads", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        record = json.loads(sorted((tmp_path / ".nb2prod/runs").glob("*/run.json"))[-1].read_text())
        sha = record["steps"]["preprocessing"]["data"]["data/train.csv"]
        client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        parent = client.get_run(record["tracking"]["run_id"])
        [child] = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
            "and tags.`nb2prod.step` = 'preprocessing'",
        )
        inputs = child.inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["data/train.csv"]
        assert inputs[0].dataset.digest == sha[:32]
        assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "preprocessing"}
        digests.append(inputs[0].dataset.digest)
    assert digests[0] != digests[1]
