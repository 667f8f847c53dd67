"""The DAG `nb2prod compile --target airflow` writes, run by Airflow itself.

Airflow cannot share an environment with kfp, so these tests run it in a venv of its own
(:mod:`airflow_venv`: made once, about 7 minutes, then cached), with nb2prod from this checkout
on PYTHONPATH and a SQLite metadata database made by `airflow db migrate`. `python dag.py` runs
the DAG with dag.test(), as Airflow documents, each task calling `nb2prod step`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_venv import airflow_venv, env_for, install_seconds, python

from conftest import REPO, run_cli, write_notebook

# The first run makes the venv (about 7 minutes) before its DAG runs (a minute or two).
pytestmark = pytest.mark.timeout(2400)

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def venv() -> Path:
    pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    start = time.monotonic()
    made = airflow_venv(REPO)
    TIMINGS["venv ready (s)"] = round(time.monotonic() - start, 1)
    TIMINGS["venv install, when it was made (s)"] = install_seconds(made)
    return made


@pytest.fixture(scope="module")
def airflow_home(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An AIRFLOW_HOME for this module's tests, its metadata database on SQLite: made once (a
    migration takes 15-30 s); each test's DAG run has a run id, and run folder, of its own."""
    home = tmp_path_factory.mktemp("airflow-home")
    start = time.monotonic()
    done = subprocess.run(
        [str(python(venv)), "-m", "airflow", "db", "migrate"],
        env=env_for(REPO, home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    TIMINGS["airflow db migrate (s)"] = round(time.monotonic() - start, 1)
    yield home
    print(f"\nAirflow timings: {json.dumps(TIMINGS)}")


def run_dag(
    venv: Path, home: Path, project: Path, dag: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python dag.py ARGS`` from the project folder; with what it printed last: the DAG run's
    state, run folder and metrics."""
    start = time.monotonic()
    done = subprocess.run(
        [str(python(venv)), dag, *args],
        cwd=project,
        env=env_for(REPO, home),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    shown = ["URI" if a.startswith("sqlite:") else a for a in args]
    label = f"python {Path(dag).parent.name}/dag.py {' '.join(shown)}".strip()
    TIMINGS[f"{label} (s)"] = round(time.monotonic() - start, 1)
    said: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if line.startswith("run folder: "):
            said["folder"] = Path(line.removeprefix("run folder: "))
        elif line.startswith("metrics: "):
            said["metrics"] = json.loads(line.removeprefix("metrics: "))
        elif line.startswith("DAG run "):
            said["state"] = line.rpartition(": ")[2]
    return done, said


def exported_and_compiled(project: Path, notebook: str) -> str:
    name = Path(notebook).stem
    r = run_cli("export", notebook, cwd=project)
    assert r.returncode == 0, r.stderr
    r = run_cli("compile", f"pipelines/{name}", "--target", "airflow", cwd=project)
    assert r.returncode == 0, r.stderr
    return f"build/{name}-v1-airflow/dag.py"


def mlflow_runs(uri: str, experiment: str) -> tuple[Any, dict[str, Any]]:
    """The parent run of ``experiment`` (there must be one) and its nested runs by name."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    [parent] = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {
        r.info.run_name: r
        for r in found
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    return parent, children


def test_the_dag_gives_nb2prod_runs_metrics_and_tracks_them(
    venv: Path, airflow_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    dag = exported_and_compiled(project, "notebooks/breast_cancer.ipynb")
    overrides = ["-p", "C=0.5", "-p", "test_size=0.3"]  # through the DAG's params to the steps

    baseline = run_cli("run", "pipelines/breast_cancer", "--no-track", *overrides, cwd=project)
    assert baseline.returncode == 0, baseline.stderr
    [record] = (project / ".nb2prod" / "runs").glob("*/run.json")
    expected = json.loads(record.read_text())["metrics"]
    assert set(expected) == {"accuracy", "f1", "roc_auc"}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done, said = run_dag(venv, airflow_home, project, dag, *overrides, "--mlflow-tracking-uri", uri)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    assert said["state"] == "success"
    assert said["metrics"] == expected
    # One run folder for the DAG run, which the steps filled, in the project by default.
    folder = said["folder"]
    assert folder.parent == project / ".nb2prod" / "engine-runs" / "breast_cancer_v1"
    for step in ("preprocessing", "training", "evaluation"):
        state = json.loads((folder / "steps" / step / "step.json").read_text())["state"]
        assert state == "succeeded", step
    # Each task passed only its own step's parameters, with the DAG run's values.
    assert "evaluation --run-dir" in done.stdout
    assert f"{folder} -p random_state=42 -p C=0.5 -p max_iter=500" in done.stdout
    assert f"{folder} -p test_size=0.3 -p random_state=42" in done.stdout

    parent, children = mlflow_runs(uri, "breast_cancer")
    assert parent.info.status == "FINISHED"
    assert {k: parent.data.metrics[k] for k in expected} == expected
    assert parent.data.params["C"] == "0.5"
    assert set(children) == {"preprocessing", "training", "evaluation"}


FAILING = [
    ("fail = False  # make training fail", ["parameters"]),
    ("data = [1, 2, 3]", ["preprocessing"]),
    ("if fail:\n    raise ValueError('asked to fail')\ntotal = sum(data)", ["training"]),
    ("score = float(total)", ["evaluation", "metrics"]),
]


def test_a_failing_step_fails_the_dag_run_which_is_still_tracked(
    venv: Path, airflow_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_notebook(project / "notebooks" / "flaky.ipynb", FAILING)
    dag = exported_and_compiled(project, "notebooks/flaky.ipynb")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    done, said = run_dag(
        venv, airflow_home, project, dag, "-p", "fail=true", "--mlflow-tracking-uri", uri
    )
    assert done.returncode == 1, done.stdout[-5000:] + done.stderr[-5000:]
    assert said["state"] == "failed"
    output = done.stdout + done.stderr
    assert "ValueError: asked to fail" in output and "raise ValueError('asked to fail')" in output
    folder = said["folder"]
    assert (folder / "steps" / "preprocessing" / "step.json").exists()
    assert not (folder / "steps" / "evaluation").exists()  # upstream failed: never started
    # The teardown task logged the failed run anyway.
    parent, children = mlflow_runs(uri, "flaky")
    assert parent.info.status == "FAILED"
    assert children["training"].info.status == "FAILED"

    # Steps that succeed with a tracking store that cannot be written: exit 3, as nb2prod run.
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    done, said = run_dag(venv, airflow_home, project, dag, "--mlflow-tracking-uri", unwritable)
    assert done.returncode == 3, done.stdout[-5000:] + done.stderr[-5000:]
    assert said["state"] == "success" and said["metrics"] == {"score": 6.0}


PROBE = r"""
import importlib.abc, importlib.util, json, sys

if sys.argv[2] == "without":  # as where the kubernetes client is not installed
    class NoKubernetes(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "kubernetes":
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoKubernetes())
spec = importlib.util.spec_from_file_location("compiled_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag

from airflow.serialization.serialized_objects import DagSerialization

DagSerialization.to_dict(dag)  # what the DAG processor stores: pods included
pods = {}
for t in dag.tasks:
    pod = t.executor_config.get("pod_override")
    if pod is not None:
        from kubernetes.client import ApiClient

        pod = ApiClient().sanitize_for_serialization(pod)
    pods[t.task_id] = pod
print(json.dumps({
    "kubernetes": "kubernetes" in sys.modules,
    "pods": pods,
    "params": {k: dag.params[k] for k in dag.params},
    "teardowns": [t.task_id for t in dag.tasks if t.is_teardown],
    "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
}))
"""

KALE = [
    ("n = 4\nweights = [1, 2]", ["pipeline-parameters"]),
    (
        "rows = [w * i for i in range(n) for w in weights]",
        [
            "step:load",
            "image:python:3.11-slim",
            "limit:nvidia.com/gpu:1",
            "limit:memory:4Gi",
            "secret:db-credentials:password:DB_PASSWORD",
            "annotation:example.com/owner:data team",
            "label:tier:batch",
        ],
    ),
    ("total = sum(rows)", ["step:train", "prev:load"]),
]


def test_kale_tags_reach_the_pods_and_the_dag_imports_without_kubernetes(
    venv: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_notebook(project / "notebooks" / "kale.ipynb", KALE)
    dag = project / exported_and_compiled(project, "notebooks/kale.ipynb")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    seen = {}
    for mode in ("with", "without"):
        env = env_for(REPO, tmp_path / f"home-{mode}")
        done = subprocess.run(
            [str(python(venv)), str(probe), str(dag), mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-5000:]
        seen[mode] = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["without"]["kubernetes"] is False
    assert seen["without"]["pods"] == {"load": None, "train": None, "nb2prod-track": None}
    pods = seen["with"]["pods"]
    assert pods["nb2prod-track"] is None
    [container] = pods["load"]["spec"]["containers"]
    assert container["name"] == "base" and container["image"] == "python:3.11-slim"
    assert container["resources"] == {"limits": {"memory": "4Gi", "nvidia.com/gpu": "1"}}
    assert container["env"] == [
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"key": "password", "name": "db-credentials"}},
        }
    ]
    assert pods["load"]["metadata"] == {
        "annotations": {"example.com/owner": "data team"},
        "labels": {"tier": "batch"},
    }
    assert pods["train"]["spec"]["containers"] == [{"image": "nb2prod-kale:v1", "name": "base"}]
    for run in seen.values():
        assert run["params"] == {"n": 4, "weights": [1, 2], "mlflow_tracking_uri": ""}
        assert run["teardowns"] == ["nb2prod-track"]
        assert run["upstream"] == {
            "load": [],
            "train": ["load"],
            "nb2prod-track": ["load", "train"],
        }
