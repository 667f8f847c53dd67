"""`nb2prod step` and `nb2prod track`, as engine tasks call them: through the CLI, real kernels,
a real MLflow store; results compared with `nb2prod run` on the same version."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import nb2prod_command, run_cli, write_notebook

pytestmark = pytest.mark.timeout(600)

CELLS = [
    ("scale = 2\nmode = 'ok'", ["parameters"]),
    ("import json\ndata = [1, 2, 3]", ["preprocessing"]),
    (
        "if mode == 'raise':\n    raise ValueError('bad scale: ' + str(scale))\n"
        "total = sum(data) * scale",
        ["training:a"],
    ),
    ("count = len(data)", ["training:b"]),
    ("mean = total / count", ["evaluation"]),
    ("mean", ["metrics"]),
]
VERSION = "pipelines/small/v1"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "small.ipynb", CELLS)
    r = run_cli("export", "small.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def step(project: Path, name: str, run_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("step", VERSION, name, "--run-dir", run_dir, *args, cwd=project)


def record(project: Path, run_dir: str, name: str) -> dict[str, Any]:
    path = project / run_dir / "steps" / name / "step.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_steps_one_by_one_equal_a_run_and_track_like_one(project: Path) -> None:
    for name in ("preprocessing", "a", "b", "evaluation"):
        # As KFP components do: each step is given only the parameters it uses.
        r = step(project, name, "engine-run", *(["-p", "scale=5"] if name == "a" else []))
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"step {name}: succeeded" in r.stdout
    evaluation = record(project, "engine-run", "evaluation")
    assert evaluation["state"] == "succeeded"
    assert evaluation["metrics"] == {"mean": 10.0}
    assert record(project, "engine-run", "a")["run"]["overrides"] == {"scale": 5}
    assert record(project, "engine-run", "a")["params"] == {"scale": 5, "mode": "ok"}
    assert (project / "engine-run/steps/evaluation/notebook.ipynb").is_file()

    r = run_cli("run", "small", "-p", "scale=5", "--no-track", cwd=project)
    assert r.returncode == 0, r.stderr
    (run_json,) = (project / ".nb2prod" / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["metrics"] == evaluation["metrics"]

    store = project / "mlflow.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    r = run_cli("track", "engine-run", cwd=project, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "small v1: succeeded" in r.stdout and "mean = 10" in r.stdout
    assembled = json.loads((project / "engine-run" / "run.json").read_text())
    assert assembled["status"] == "succeeded"
    assert list(assembled["steps"]) == ["preprocessing", "a", "b", "evaluation"]
    assert assembled["metrics"] == {"mean": 10.0}
    assert assembled["params"] == {"scale": 5, "mode": "ok"}
    assert assembled["overrides"] == {"scale": 5}
    # The run folder's config.yaml holds the run's parameters (what MLflow logs as config).
    assert "scale: 5" in (project / "engine-run" / "config.yaml").read_text()
    assert assembled["tracking"]["ok"] is True

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "small"]
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    assert parents[0].data.metrics == {"mean": 10.0}
    assert parents[0].data.params["scale"] == "5"
    assert parents[0].info.run_id == assembled["tracking"]["run_id"]


def test_independent_steps_run_side_by_side_in_one_folder(project: Path) -> None:
    assert step(project, "preprocessing", "shared").returncode == 0
    procs = [
        subprocess.Popen(
            [*nb2prod_command(), "step", VERSION, name, "--run-dir", "shared"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NB2PROD_TEST": "1"},
        )
        for name in ("a", "b")
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, out + err
    assert step(project, "evaluation", "shared").returncode == 0
    assert record(project, "shared", "evaluation")["metrics"] == {"mean": 4.0}


def test_a_step_before_its_upstream_is_refused_and_writes_nothing(project: Path) -> None:
    r = step(project, "evaluation", "early")
    assert r.returncode == 2
    assert "needs the results of step a, which has not run" in r.stderr
    assert f"nb2prod step {VERSION} a --run-dir early" in r.stderr
    assert not (project / "early").exists()

    r = step(project, "nosuch", "early")
    assert r.returncode == 2 and "has no step `nosuch`" in r.stderr
    r = step(project, "preprocessing", "early", "-p", "nosuch=1")
    assert r.returncode == 2 and "nosuch" in r.stderr
    assert not (project / "early").exists()


def test_a_failing_step_is_recorded_stops_its_dependants_and_is_tracked_failed(
    project: Path,
) -> None:
    assert step(project, "preprocessing", "bad", "-p", "mode=raise").returncode == 0
    r = step(project, "a", "bad", "-p", "mode=raise")
    assert r.returncode == 1
    assert "ValueError: bad scale: 2" in r.stderr
    failed = record(project, "bad", "a")
    assert failed["state"] == "failed" and failed["error"]["ename"] == "ValueError"

    r = step(project, "evaluation", "bad", "-p", "mode=raise")
    assert r.returncode == 2
    assert "needs the results of step a, which failed in bad" in r.stderr

    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    r = run_cli("track", "bad", cwd=project, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assembled = json.loads((project / "bad" / "run.json").read_text())
    assert assembled["status"] == "failed"
    assert assembled["steps"]["a"]["state"] == "failed"
    # Steps that never ran there are part of the record, not silently absent.
    assert assembled["steps"]["evaluation"]["state"] == "skipped"
    assert "b" in assembled["error"] and "evaluation" in assembled["error"]


def test_track_refuses_a_folder_without_a_run(project: Path) -> None:
    (project / "empty").mkdir()
    r = run_cli("track", "empty", cwd=project)
    assert r.returncode == 2 and "holds no run" in r.stderr
    r = run_cli("track", "nowhere", cwd=project)
    assert r.returncode == 2 and "no such folder" in r.stderr
