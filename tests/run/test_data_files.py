"""Data files are inputs: a changed file re-runs the steps that read it (and what depends on
them), never a stale cached result; a missing one stops the run before it starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, write_notebook

CELLS = [
    ("import json\nimport pandas as pd\ntrain_path = 'data/train.csv'", ["parameters"]),
    ("frame = pd.read_csv(train_path)\ntotal = int(frame['x'].sum())", ["preprocessing"]),
    ("labels = json.load(open('data/labels.json'))\ndoubled = total * 2", ["training:model"]),
    ("steady = 41 + 1", ["training:other"]),
    ("result = doubled + steady + len(labels)", ["evaluation"]),
    ("result", ["metrics"]),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    data = tmp_path / "notebooks" / "data"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("x\n1\n2\n3\n")
    (data / "labels.json").write_text('["a", "b"]')
    write_notebook(tmp_path / "notebooks" / "reads.ipynb", CELLS)
    r = run_cli("export", "notebooks/reads.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def run(project: Path, *args: str) -> Any:
    return run_cli("run", "pipelines/reads", "--no-track", *args, cwd=project, env={"CI": "true"})


def last_run(project: Path) -> dict[str, Any]:
    runs = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    data: dict[str, Any] = json.loads(runs[-1].read_text())
    return data


def states(record: dict[str, Any]) -> dict[str, str]:
    return {name: step["state"] for name, step in record["steps"].items()}


def test_the_version_and_inspect_name_the_files_each_step_reads(project: Path) -> None:
    import yaml

    manifest = yaml.safe_load((project / "pipelines/reads/v1/pipeline.yaml").read_text())
    data = {s["name"]: s.get("data") for s in manifest["steps"]}
    assert data["preprocessing"] == [
        {"path": "data/train.csv", "cell": 1, "parameter": "train_path"}
    ]
    assert data["model"] == [{"path": "data/labels.json", "cell": 2, "parameter": None}]
    assert data["other"] is None and data["evaluation"] is None
    r = run_cli("inspect", "notebooks/reads.ipynb", cwd=project)
    assert "reads:  data/train.csv (parameter train_path)" in r.stdout
    assert "reads:  data/labels.json" in r.stdout


def test_one_changed_byte_reruns_its_readers_and_their_dependants_only(project: Path) -> None:
    assert run(project).returncode == 0
    first = last_run(project)
    assert first["metrics"] == {"result": 56}
    csv_sha = first["steps"]["preprocessing"]["data"]["data/train.csv"]
    assert run(project).returncode == 0
    assert set(states(last_run(project)).values()) == {"cached"}

    (project / "notebooks/data/train.csv").write_text("x\n1\n2\n4\n")  # one byte
    r = run(project)
    assert r.returncode == 0, r.stdout + r.stderr
    record = last_run(project)
    assert states(record) == {
        "preprocessing": "succeeded",
        "model": "succeeded",
        "other": "cached",
        "evaluation": "succeeded",
    }
    assert record["steps"]["preprocessing"]["reason"] == "data changed: data/train.csv"
    assert record["steps"]["preprocessing"]["data"]["data/train.csv"] != csv_sha
    assert "data changed: data/train.csv" in r.stdout + r.stderr
    assert record["metrics"] == {"result": 58}


def test_a_literal_path_counts_too(project: Path) -> None:
    assert run(project).returncode == 0
    (project / "notebooks/data/labels.json").write_text('["a", "b", "c"]')
    assert run(project).returncode == 0
    record = last_run(project)
    assert states(record)["preprocessing"] == "cached"
    assert states(record)["model"] == "succeeded"
    assert record["steps"]["model"]["reason"] == "data changed: data/labels.json"
    assert record["metrics"] == {"result": 57}


def test_a_parameter_points_a_run_at_other_data(project: Path) -> None:
    (project / "notebooks/data/other.csv").write_text("x\n10\n")
    r = run(project, "-p", "train_path=data/other.csv")
    assert r.returncode == 0, r.stderr
    record = last_run(project)
    assert list(record["steps"]["preprocessing"]["data"]) == ["data/other.csv"]
    assert record["metrics"] == {"result": 64}


def test_a_missing_file_stops_the_run_before_it_starts(project: Path) -> None:
    (project / "notebooks/data/train.csv").unlink()
    r = run(project)
    assert r.returncode == 2
    assert "step preprocessing" in r.stderr and "data/train.csv" in r.stderr
    assert "cell 2" in r.stderr and "-p train_path=PATH" in r.stderr
    assert not list((project / ".nb2prod" / "runs").glob("*/run.json"))
    r = run(project, "-p", "train_path=data/none.csv")
    assert r.returncode == 2 and "data/none.csv" in r.stderr and "does not exist" in r.stderr
