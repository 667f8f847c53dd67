"""The compiled Kubeflow pipeline runs here under kfp.local (SubprocessRunner, this Python, no
Docker): its metrics equal `nb2prod run`'s, and its tracking task logs the same to MLflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nb2prod.pipeline import load_pipeline

from conftest import REPO, run_cli, write_notebook


def local_run(project: Path, pipeline_py: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python pipeline.py --local ...` from the project root, as the README says."""
    return subprocess.run(
        [sys.executable, pipeline_py, "--local", "--outputs", str(project / "kfp"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
    )


def printed_metrics(stdout: str, steps: list[str]) -> dict[str, dict[str, Any]]:
    """The `STEP: name=value, ...` lines `--local` prints last, by step."""
    found: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        step, sep, rest = line.partition(": ")
        if sep and step in steps:
            pairs = [] if rest == "no metrics" else rest.split(", ")
            found[step] = {k: float(v) for k, v in (p.split("=", 1) for p in pairs)}
    return found


def exported_and_run(project: Path, example: str) -> dict[str, Any]:
    """The example exported into ``project``, and the record of `nb2prod run --no-track`."""
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    r = run_cli("export", f"notebooks/{example}.ipynb", cwd=project)
    assert r.returncode == 0, r.stderr
    r = run_cli("run", f"pipelines/{example}", "--no-track", cwd=project, env={"CI": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
    [record] = (project / ".nb2prod" / "runs").glob("*/run.json")
    data: dict[str, Any] = json.loads(record.read_text())
    assert data["metrics"] and data["params"]  # the comparisons below must compare something
    return data


@pytest.mark.parametrize("example", ["breast_cancer", "wine_models"])
def test_the_kfp_pipeline_runs_locally_with_nb2prod_runs_metrics_and_tracks_them(
    tmp_path: Path, example: str
) -> None:
    ran = exported_and_run(tmp_path, example)
    expected = ran["metrics"]
    r = run_cli("compile", f"pipelines/{example}", "--target", "kfp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = [s.name for s in load_pipeline(tmp_path / "pipelines" / example).steps]
    store = tmp_path / "mlflow.db"
    pipeline_py = f"build/{example}-v1-kfp/pipeline.py"
    local = local_run(tmp_path, pipeline_py, "--mlflow-tracking-uri", f"sqlite:///{store}")
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    by_step = printed_metrics(local.stdout, steps)
    assert sorted(by_step) == sorted(steps), local.stdout[-2000:]
    merged = {k: v for values in by_step.values() for k, v in values.items()}
    assert merged == expected
    # Every step ran in a fresh run folder of its own and handed its folder on as a Dataset.
    [outputs] = (tmp_path / "kfp").iterdir()
    records = [json.loads(p.read_text()) for p in outputs.glob("*/step_folder/step.json")]
    assert sorted(r["step"] for r in records) == sorted(steps)
    assert {r["state"] for r in records} == {"succeeded"}
    # The tracking task logged one parent run with the same metrics.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(example)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1 and len(runs) == 1 + len(steps), [r.data.tags for r in runs]
    assert parents[0].data.metrics == expected
    assert parents[0].data.params == {k: str(v) for k, v in ran["params"].items()}


def test_parameters_reach_the_steps_and_a_failing_step_fails_the_run(tmp_path: Path) -> None:
    cells = [
        ("divisor = 2  # what the total is divided by\nlabel = 'x'", ["parameters"]),
        ("total = 10 / divisor", ["step:divide"]),
        ("size = float(len(label))\nshare = total", ["step:report", "metrics"]),
    ]
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", cells)
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=tmp_path).returncode == 0
    assert run_cli("compile", "pipelines/tiny", "--target", "kfp", cwd=tmp_path).returncode == 0
    pipeline_py = "build/tiny-v1-kfp/pipeline.py"
    ok = local_run(tmp_path, pipeline_py, "-p", "divisor=4", "-p", "label=abc")
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert printed_metrics(ok.stdout, ["divide", "report"]) == {
        "divide": {},
        "report": {"size": 3.0, "share": 2.5},
    }
    bad = local_run(tmp_path, pipeline_py, "-p", "divisor=0")
    assert bad.returncode == 1
    output = bad.stdout + bad.stderr
    assert "ZeroDivisionError" in output and "total = 10 / divisor" in output, output[-3000:]
    last = bad.stderr.strip().splitlines()[-1]
    assert "finished with status FAILURE" in last and "'divide'" in last, last
    refused = local_run(tmp_path, pipeline_py, "-p", "divisor=two")
    assert refused.returncode == 2 and "divisor must be of type int" in refused.stderr
