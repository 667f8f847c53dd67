"""`nb2prod sweep` through the CLI: locally and on a Dask LocalCluster (same table), the shared
upstream step computed once, failures, MLflow tags, and bad input refused before anything runs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, nb2prod_command, own_processes, run_cli, write_notebook

pytestmark = pytest.mark.timeout(900)

SMALL = [
    (
        "scale = 2.0  # multiplies the data\nmode = 'ok'  # 'raise' fails training\n"
        "delay = 0.0  # seconds training sleeps",
        ["parameters"],
    ),
    ("data = [1, 2, 3]", ["preprocessing"]),
    (
        "import time\n\ntime.sleep(delay)\nif mode == 'raise':\n    raise ValueError('bad mode')\n"
        "total = sum(data) * scale",
        ["training"],
    ),
    ("mean = total / len(data)", ["evaluation", "metrics"]),
]
BLOCK_DASK = "import sys; sys.modules['distributed'] = None; from nb2prod.cli import main; main()"


def sweep(
    project: Path, *args: str, env: dict[str, str] | None = None, without_dask: bool = False
) -> subprocess.CompletedProcess[str]:
    """``nb2prod sweep ARGS`` in ``project``; ``without_dask``: as if dask were not installed."""
    if not without_dask:
        return run_cli("sweep", *args, cwd=project, env=env)
    import os

    return subprocess.run(
        [sys.executable, "-c", BLOCK_DASK, "sweep", *args],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def runs(project: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in (project / ".nb2prod" / "runs").glob("*/run.json"):
        found[path.parent.name] = json.loads(path.read_text())
    return found


def assert_shared_step_computed_once(
    project: Path, points: list[dict[str, Any]], shared: str, varying: list[str]
) -> None:
    """The sweep's runs: one computed ``shared``; every point reused it from that run."""
    sweep_id = points[0]["sweep"]
    records = {i: r for i, r in runs(project).items() if r.get("tags", {}).get("nb2prod.sweep")}
    assert {r["tags"]["nb2prod.sweep"] for r in records.values()} == {sweep_id}
    computed = [i for i, r in records.items() if r["steps"][shared]["state"] == "succeeded"]
    assert len(computed) == 1, {i: r["steps"][shared]["state"] for i, r in records.items()}
    assert set(records) == {computed[0], *(p["run_id"] for p in points)}
    for point in points:
        steps = records[point["run_id"]]["steps"]
        assert steps[shared]["state"] == "cached"
        assert steps[shared]["cached_from"] == computed[0]
        assert all(steps[s]["state"] in ("succeeded", "failed") for s in varying)
        tags = records[point["run_id"]]["tags"]
        assert {k: v for k, v in tags.items() if k != "nb2prod.sweep"} == {
            f"nb2prod.sweep.{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in point["params"].items()
        }


def one_paragraph(r: subprocess.CompletedProcess[str]) -> str:
    message = r.stderr.strip()
    assert r.returncode == 2, r.stdout + r.stderr
    assert message.startswith("nb2prod: ") and "\n" not in message and "Traceback" not in message
    assert "Fix:" in message
    return message


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exported")
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "breast_cancer.ipynb", root / "notebooks")
    r = run_cli("export", "notebooks/breast_cancer.ipynb", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture
def small(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "small.ipynb", SMALL)
    r = run_cli("export", "small.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


@pytest.fixture
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        scheduler_port=0,
    ) as local:
        yield str(local.scheduler_address)


def test_a_sweep_on_dask_gives_the_same_table_as_locally(
    breast_cancer: Path, tmp_path: Path, cluster: str
) -> None:
    grid = ["-p", "C=0.01,1", "-p", "max_iter=100,200", "--sort", "-accuracy", "--json"]
    tables = {}
    for where, more in {"local": ["--parallel", "2"], "dask": ["--cluster", cluster]}.items():
        project = shutil.copytree(breast_cancer, tmp_path / where)  # a cache of its own
        r = sweep(project, "pipelines/breast_cancer", *grid, *more, "--no-track")
        assert r.returncode == 0, r.stdout + r.stderr
        points = json.loads(r.stdout)
        assert len(points) == 4 and all(p["status"] == "succeeded" for p in points)
        assert_shared_step_computed_once(project, points, "preprocessing", ["training"])
        tables[where] = [(p["params"], p["status"], p["metrics"]) for p in points]
    assert tables["dask"] == tables["local"]
    accuracy = [metrics["accuracy"] for _, _, metrics in tables["local"]]
    assert accuracy == sorted(accuracy, reverse=True) and accuracy[0] > accuracy[-1]


def test_failed_points_are_in_the_table_and_the_sweep_exits_1(small: Path) -> None:
    r = sweep(
        small,
        "small",
        "-p",
        "mode=ok,raise",
        "-p",
        "scale=1,3",
        "--sort",
        "-mean",
        "--no-track",
        without_dask=True,  # a local sweep never imports dask
    )
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["mode", "scale", "status", "run", "mean"]
    shown = [line.split() for line in lines[1:]]
    assert [(s[0], s[1], s[2], s[-1]) for s in shown] == [
        ("ok", "3.0", "succeeded", "6"),  # highest mean first
        ("ok", "1.0", "succeeded", "2"),
        ("raise", "1.0", "failed", "-"),  # no mean: last, in grid order
        ("raise", "3.0", "failed", "-"),
    ]
    assert "4 points: 2 succeeded, 2 failed" in r.stderr
    assert "mode=raise scale=1.0: step training failed in notebook cell 3" in r.stderr
    assert "ValueError: bad mode" in r.stderr


def test_each_tracked_run_carries_the_sweep_and_its_point_in_mlflow(
    small: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    r = sweep(small, "small", "-p", "scale=1,3", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    points = json.loads(r.stdout)
    sweep_id = points[0]["sweep"]
    assert_shared_step_computed_once(small, points, "preprocessing", ["training", "evaluation"])

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("small")
    found = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`nb2prod.sweep` = '{sweep_id}'"
    )
    logged = {r.data.tags["nb2prod.run_id"]: r for r in found}
    # The points' runs, not the run that computed the shared step (untracked, a means only).
    assert set(logged) == {p["run_id"] for p in points}
    for point in points:
        run = logged[point["run_id"]]
        assert run.data.tags["nb2prod.sweep.scale"] == json.dumps(point["params"]["scale"])
        assert run.data.params["scale"] == str(point["params"]["scale"])
        assert run.data.metrics["mean"] == point["metrics"]["mean"]
        assert run.info.status == "FINISHED"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_input_is_refused_before_anything_runs(small: Path) -> None:
    port = closed_port()
    cases = {
        ("-p", "scale=1,ten"): "-p 'scale=1,ten': `ten` is not a number, as parameter `scale` is",
        ("-p", "scal=1,2"): "unknown parameter `scal`. Fix: did you mean `scale`?",
        ("-p", "scale=1", "--sort", "-accuracy"): "no metric `accuracy` (it reports mean)",
        ("-p", "scale=1", "--cluster", "localhost:8786"): "not the address of a Dask scheduler",
    }
    for args, said in cases.items():
        assert said in one_paragraph(sweep(small, "small", *args)), args
    t0 = time.monotonic()
    address = f"tcp://127.0.0.1:{port}"
    message = one_paragraph(sweep(small, "small", "-p", "scale=1,2", "--cluster", address))
    assert time.monotonic() - t0 < 60  # a few seconds, plus starting Python on a busy machine
    assert f"--cluster {address}: no Dask scheduler answered" in message
    message = one_paragraph(
        sweep(small, "small", "-p", "scale=1,2", "--cluster", address, without_dask=True)
    )
    assert "pip install 'nb2prod[dask]'" in message
    assert not (small / ".nb2prod").exists() and not (small / "mlflow.db").exists()


def test_ctrl_c_stops_the_runs_under_way_and_starts_no_other(small: Path) -> None:
    before = set(own_processes())
    proc = subprocess.Popen(
        [
            *nb2prod_command(),
            "sweep",
            "small",
            "-p",
            "delay=60,61,62,63",
            "--parallel",
            "2",
            "--no-track",
        ],
        cwd=small,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C: SIGINT to the whole process group
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # until the first two points are in training's sleep
        training = [r["steps"]["training"]["state"] for r in runs(small).values()]
        if training.count("running") == 2:
            break
        time.sleep(0.5)
    import os
    import signal

    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    # The first two points were running; the others never started ("not run").
    assert [line.split()[1] for line in out.splitlines()[1:]] == [
        "interrupted",
        "interrupted",
        "not",
        "not",
    ], out
    assert "4 points: 2 interrupted, 2 not run" in err
    interrupted = [r for r in runs(small).values() if r["status"] == "interrupted"]
    assert len(interrupted) == 2
    assert all(r["steps"]["training"]["state"] == "interrupted" for r in interrupted)
    deadline = time.monotonic() + 20
    while set(own_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(own_processes()) - before, own_processes()
