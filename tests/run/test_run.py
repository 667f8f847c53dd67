"""`nb2prod run` end to end, through the CLI in a subprocess, with real kernels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import EXAMPLES, nb2prod_command, own_kernels, run_cli, write_notebook

pytestmark = pytest.mark.timeout(600)
NO_TRACK = {"NB2PROD_TEST": "1"}


def our_kernels() -> set[int]:
    """PIDs of kernels started by nb2prod: those it launches carry its in-memory history flag,
    and those it forks (and the zygote they fork from) the zygote's command line. Its MLflow
    tracking worker counts too: no run may leave it behind either. Only this test session's
    processes count (see conftest.own_kernels), not other programs' on the same machine."""
    return own_kernels()


@pytest.fixture
def no_leftover_kernels():  # type: ignore[no-untyped-def]
    before = our_kernels()
    yield
    deadline = time.monotonic() + 10
    while our_kernels() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not our_kernels() - before, "kernel processes were left behind"


def last_run(project: Path) -> dict[str, Any]:
    runs = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    return json.loads(runs[-1].read_text())


FAST = [
    ("import os\nimport time\nmode = 'ok'  # what training:a does\nscale = 2", ["parameters"]),
    ("data = [1, 2, 3]  # the input", ["preprocessing"]),
    (
        "total = sum(data) * scale\n"
        "if mode == 'raise':\n    raise ValueError('bad data: ' + str(total))\n"
        "if mode == 'exit':\n    os._exit(3)\n"
        "if mode == 'sleep':\n    time.sleep(120)\n"
        "if mode == 'unsaveable':\n    total = (i for i in data)",
        ["training:a"],
    ),
    ("other = len(data)", ["training:b"]),
    ("result = total + other", ["evaluation"]),
    ("result", ["metrics"]),
]


@pytest.fixture
def fast_project(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "notebooks" / "fast.ipynb", FAST)
    r = run_cli("export", "notebooks/fast.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "pipelines/fast", "--no-track", *args, cwd=project, env={"CI": "true"})


def test_success_writes_run_folder_and_metrics(fast_project: Path, no_leftover_kernels) -> None:
    r = run(fast_project)
    assert r.returncode == 0, r.stderr
    record = last_run(fast_project)
    assert record["status"] == "succeeded"
    assert record["metrics"] == {"result": 15}
    assert {n: s["state"] for n, s in record["steps"].items()} == {
        "preprocessing": "succeeded",
        "a": "succeeded",
        "b": "succeeded",
        "evaluation": "succeeded",
    }
    run_dir = fast_project / ".nb2prod" / "runs" / record["id"]
    for step in record["steps"]:
        assert (run_dir / "steps" / step / "notebook.ipynb").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["scale"] == 2
    assert "result = 15" in r.stdout
    # Plain line-per-step progress in CI.
    assert "✓ preprocessing" in r.stderr and "\x1b[" not in r.stderr


def test_independent_steps_run_side_by_side(fast_project: Path) -> None:
    assert run(fast_project).returncode == 0
    steps = last_run(fast_project)["steps"]
    assert steps["a"]["depends_on"] == ["preprocessing"] == steps["b"]["depends_on"]


def test_failing_step_stops_dependants_not_independents(
    fast_project: Path, no_leftover_kernels
) -> None:
    r = run(fast_project, "-p", "mode=raise")
    assert r.returncode == 1
    record = last_run(fast_project)
    states = {n: s["state"] for n, s in record["steps"].items()}
    assert states == {
        "preprocessing": "succeeded",
        "a": "failed",
        "b": "succeeded",
        "evaluation": "skipped",
    }
    error = record["steps"]["a"]["error"]
    assert error["ename"] == "ValueError" and error["cell"] == "cell 3 (id c2)"
    out = r.stdout + r.stderr
    assert "step a failed in notebook cell 3 (id c2)" in out
    assert "ValueError: bad data: 12" in out
    assert "raise ValueError('bad data: ' + str(total))" in out  # the failing cell's source
    assert "steps/a/notebook.ipynb" in out
    assert out.count("Traceback") == 0


def test_kernel_death_is_a_failure(fast_project: Path, no_leftover_kernels) -> None:
    r = run(fast_project, "-p", "mode=exit")
    assert r.returncode == 1
    error = last_run(fast_project)["steps"]["a"]["error"]
    assert error["ename"] == "KernelDied" and "kernel died" in error["message"]


def test_step_timeout(fast_project: Path, no_leftover_kernels) -> None:
    t0 = time.monotonic()
    r = run(fast_project, "-p", "mode=sleep", "--step-timeout", "3")
    assert r.returncode == 1 and time.monotonic() - t0 < 60
    record = last_run(fast_project)
    assert record["steps"]["a"]["error"]["ename"] == "Timeout"
    assert record["steps"]["b"]["state"] == "succeeded"


def test_unsaveable_output_names_the_variable(fast_project: Path, no_leftover_kernels) -> None:
    r = run(fast_project, "-p", "mode=unsaveable")
    assert r.returncode == 1
    error = last_run(fast_project)["steps"]["a"]["error"]
    assert error["ename"] == "OutputNotSaveableError" and "'total'" in error["evalue"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupting_the_runner(fast_project: Path, no_leftover_kernels, sig: int) -> None:
    proc = subprocess.Popen(
        [*nb2prod_command(), "run", "pipelines/fast", "--no-track", "-p", "mode=sleep"],
        cwd=fast_project,
        env={**os.environ, "CI": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    runs = fast_project / ".nb2prod" / "runs"
    while time.monotonic() < deadline:
        files = list(runs.glob("*/run.json")) if runs.exists() else []
        if files and json.loads(files[0].read_text())["steps"]["a"]["state"] == "running":
            break
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = last_run(fast_project)
    assert record["status"] == "interrupted"
    assert record["steps"]["a"]["state"] == "interrupted"
    assert record["steps"]["preprocessing"]["state"] == "succeeded"  # kept, complete
    run_dir = runs / record["id"]
    assert (run_dir / "steps" / "preprocessing" / "outputs" / "data.json").is_file()


def test_kernel_sockets_are_removed_even_when_the_runner_is_killed(
    fast_project: Path, short_tmpdir: Path, no_leftover_kernels
) -> None:
    tmp = short_tmpdir  # where the kernels' socket folder goes
    env = {**os.environ, "CI": "true", "TMPDIR": str(tmp)}
    r = subprocess.run(
        [*nb2prod_command(), "run", "pipelines/fast", "--no-track"],
        cwd=fast_project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert not list(tmp.iterdir())
    proc = subprocess.Popen(
        [*nb2prod_command(), "run", "pipelines/fast", "--no-track", "-p", "mode=sleep"],
        cwd=fast_project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = last_run(fast_project)
        if record["status"] == "running" and record["steps"]["a"]["state"] == "running":
            break
        time.sleep(0.2)
    assert [p.name for p in tmp.iterdir()][0].startswith("nb2prod-kernels-")
    proc.kill()  # no chance to clean up: the zygote, left without a runner, does it
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while list(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(tmp.iterdir())


def test_parameters_unknown_key_and_wrong_type(fast_project: Path, no_leftover_kernels) -> None:
    # The MLflow worker starts before the parameters are checked; it must not outlive a refusal.
    r = run(fast_project, "-p", "scael=3")
    assert r.returncode == 2 and "unknown parameter `scael`" in r.stderr and "`scale`" in r.stderr
    r = run(fast_project, "-p", "scale=lots")
    assert r.returncode == 2
    assert "`scale` is a int" in r.stderr or "`scale` is an int" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (fast_project / ".nb2prod" / "runs").exists()  # refused before anything ran


def test_parameter_file_and_p_layering(fast_project: Path) -> None:
    (fast_project / "ci.yaml").write_text("scale: 10\nmode: ok\n")
    assert run(fast_project, "-f", "ci.yaml").returncode == 0
    assert last_run(fast_project)["metrics"] == {"result": 63}
    assert run(fast_project, "-f", "ci.yaml", "-p", "scale=1").returncode == 0
    record = last_run(fast_project)
    assert record["metrics"] == {"result": 9}
    assert record["overrides"] == {"mode": "ok", "scale": 1}
    # Only the parameters a step uses are injected into it.
    assert record["steps"]["b"]["params"] == {}
    assert record["steps"]["a"]["params"] == {"mode": "ok", "scale": 1}


def test_cache_hits_misses_and_comment_edits(fast_project: Path) -> None:
    assert run(fast_project).returncode == 0
    r = run(fast_project)
    assert r.returncode == 0
    record = last_run(fast_project)
    assert {s["state"] for s in record["steps"].values()} == {"cached"}
    assert "reused from earlier runs" in r.stdout

    # A parameter only step a uses: a and evaluation re-run, preprocessing and b are reused.
    assert run(fast_project, "-p", "scale=3").returncode == 0
    states = {n: s["state"] for n, s in last_run(fast_project)["steps"].items()}
    assert states == {
        "preprocessing": "cached",
        "a": "succeeded",
        "b": "cached",
        "evaluation": "succeeded",
    }

    # A comment edit makes a new version, but every step stays a cache hit.
    nb = fast_project / "notebooks" / "fast.ipynb"
    cells = list(FAST)
    cells[1] = ("data = [1, 2, 3]  # the input, documented better", ["preprocessing"])
    write_notebook(nb, cells)
    assert "v2" in run_cli("export", "notebooks/fast.ipynb", cwd=fast_project).stdout
    assert run(fast_project).returncode == 0
    record = last_run(fast_project)
    assert record["version"] == 2
    assert {s["state"] for s in record["steps"].values()} == {"cached"}

    # A code change misses, and so does everything downstream of the changed input.
    cells[1] = ("data = [1, 2, 3, 4]", ["preprocessing"])
    write_notebook(nb, cells)
    run_cli("export", "notebooks/fast.ipynb", cwd=fast_project)
    assert run(fast_project).returncode == 0
    record = last_run(fast_project)
    assert {s["state"] for s in record["steps"].values()} == {"succeeded"}
    assert record["metrics"] == {"result": 24}

    assert run(fast_project, "--no-cache").returncode == 0
    assert {s["state"] for s in last_run(fast_project)["steps"].values()} == {"succeeded"}


def test_steps_subset_takes_upstream_from_cache(fast_project: Path) -> None:
    r = run(fast_project, "--steps", "evaluation")
    assert r.returncode == 1 and "run without --steps first" in r.stderr
    assert run(fast_project).returncode == 0
    assert run(fast_project, "--steps", "b", "--no-cache").returncode == 0
    states = {n: s["state"] for n, s in last_run(fast_project)["steps"].items()}
    assert states["b"] == "succeeded" and states["preprocessing"] == "cached"
    assert states["a"] == states["evaluation"] == "skipped"
    r = run(fast_project, "--steps", "nope")
    assert r.returncode == 2 and "no step `nope`" in r.stderr


def test_junit_and_github_summary(fast_project: Path) -> None:
    summary = fast_project / "summary.md"
    r = run_cli(
        "run",
        "pipelines/fast",
        "--no-track",
        "-p",
        "mode=raise",
        "--junit",
        "report.xml",
        cwd=fast_project,
        env={"CI": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.returncode == 1
    import xml.etree.ElementTree as ET

    suite = ET.parse(fast_project / "report.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"preprocessing", "a", "b", "evaluation"}
    assert cases["a"].find("failure") is not None and cases["b"].find("failure") is None
    assert cases["evaluation"].find("skipped") is not None
    text = summary.read_text()
    assert "| a | ❌ failed |" in text and "bad data" in text


def test_runs_lists_recent_runs(fast_project: Path) -> None:
    assert run(fast_project).returncode == 0
    r = run_cli("runs", cwd=fast_project)
    assert r.returncode == 0 and "fast v1" in r.stdout and "succeeded" in r.stdout
    r = run_cli("runs", "pipelines/fast", "--json", cwd=fast_project)
    assert json.loads(r.stdout)[0]["metrics"] == {"result": 15}


def test_run_of_missing_pipeline(tmp_path: Path) -> None:
    r = run_cli("run", "pipelines/none", "--no-track", cwd=tmp_path)
    assert r.returncode == 2 and "no exported pipeline" in r.stderr


def reference(
    example: Path, tmp: Path, parameters: dict[str, Any] | None = None
) -> dict[str, float]:
    """The notebook itself run top to bottom (skip cells removed), as papermill would."""
    from test_steps_with_papermill import reference_metrics

    from nb2prod.plan.planner import inspect_notebook

    return reference_metrics(inspect_notebook(example), tmp, parameters)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_run_equals_notebook(tmp_path: Path, example: Path) -> None:
    """The pipeline's MLflow metrics equal the notebook's, with one nested run per step."""
    import mlflow

    expected = reference(example, tmp_path)
    assert run_cli("export", example, cwd=tmp_path).returncode == 0
    env = {"CI": "true", "MLFLOW_TRACKING_URI": ""}
    r = run_cli("run", f"pipelines/{example.stem}", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # A first run into a new store: no MLflow notes or kernel warnings among the progress lines.
    assert "Creating initial MLflow database tables" not in r.stdout + r.stderr
    assert "without encryption" not in r.stdout + r.stderr
    record = last_run(tmp_path)
    assert {k: v for k, v in record["metrics"].items() if k in expected} == expected
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(record["tracking"]["run_id"])
    assert {k: v for k, v in parent.data.metrics.items() if k in expected} == expected
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(c.data.tags["nb2prod.step"] for c in children) == sorted(record["steps"])
    assert parent.data.tags["nb2prod.notebook_sha256"] == record["notebook_sha256"]


@pytest.mark.parametrize("example", ["breast_cancer", "wine_models"])
def test_versions_exported_earlier_still_run(tmp_path: Path, example: str) -> None:
    """tests/released holds versions exactly as an earlier release wrote them: they run
    unchanged, with the notebook's metrics."""
    import shutil

    from conftest import REPO

    notebook = REPO / "notebooks" / f"{example}.ipynb"
    expected = reference(notebook, tmp_path)
    assert expected, "the notebook logs no metric to compare"
    project = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    golden = Path(__file__).resolve().parents[1] / "released" / "0.1" / example / "v1"
    shutil.copytree(golden, project / "pipelines" / example / "v1")
    r = run_cli("run", f"pipelines/{example}", "--no-track", cwd=project, env={"CI": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
    record = last_run(project)
    assert record["version"] == 1 and set(record["steps"]) == {
        p.stem for p in (golden / "steps").glob("*.py")
    }
    assert {k: v for k, v in record["metrics"].items() if k in expected} == expected


def test_overrides_match_papermill_injection(tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.stem == "breast_cancer")
    overrides = {"C": 0.05, "test_size": 0.3}
    expected = reference(example, tmp_path, overrides)
    run_cli("export", example, cwd=tmp_path)
    r = run_cli(
        "run",
        "pipelines/breast_cancer",
        "--no-track",
        "-p",
        "C=0.05",
        "-p",
        "test_size=0.3",
        cwd=tmp_path,
        env={"CI": "true"},
    )
    assert r.returncode == 0, r.stderr
    assert last_run(tmp_path)["metrics"] == expected


def test_log_metric_from_notebook_code(tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "lm.ipynb",
        [
            ("values = [3, 4]", ["preprocessing"]),
            ("import nb2prod\nnb2prod.log_metric('n_values', len(values))", ["evaluation"]),
        ],
    )
    assert run_cli("export", "lm.ipynb", cwd=tmp_path).returncode == 0
    r = run_cli("run", "pipelines/lm", "--no-track", cwd=tmp_path, env={"CI": "true"})
    assert r.returncode == 0, r.stderr
    assert last_run(tmp_path)["metrics"] == {"n_values": 2}
