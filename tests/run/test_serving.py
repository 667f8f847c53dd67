"""The serving model of untracked runs, end to end through the CLI with real kernels: built and
checked after the steps, reused by an all-cached run, served by `nb2prod serve`; skew and a
need that cannot be loaded fail the run."""

from __future__ import annotations

import json
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import SERVING_CELLS, free_port, post, rows, scoring_server, serve_command

from conftest import run_cli, write_notebook

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.timeout(600)
NO_TRACK = {"NB2PROD_TEST": "1"}


def _runs(project: Path) -> list[dict[str, Any]]:
    found = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    return [json.loads(p.read_text()) for p in found]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose pipeline ran once, untracked."""
    root = tmp_path_factory.mktemp("serving")
    write_notebook(root / "clf.ipynb", SERVING_CELLS)
    assert run_cli("export", "clf.ipynb", cwd=root).returncode == 0
    done = run_cli("run", "pipelines/clf", "--no-track", cwd=root, env=NO_TRACK)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_a_run_builds_its_serving_model_and_finds_no_skew(project: Path) -> None:
    record = _runs(project)[0]
    serving = record["serving"]
    assert {k: serving[k] for k in ("function", "model", "example_from", "rows", "skew")} == {
        "function": "predict",
        "model": "serving/model",
        "example_from": "evaluation",
        "rows": 100,
        "skew": "none",
    }
    assert serving["status"] == "ok" and "error" not in serving
    model = project / ".nb2prod/runs" / record["id"] / "serving/model"
    mlmodel = (model / "MLmodel").read_text()
    assert "python_function" in mlmodel and "signature" in mlmodel
    inputs = json.loads((model / "serving_input_example.json").read_text())
    assert inputs["dataframe_split"]["columns"] == ["a", "b", "noise"]
    text = (project / "pipelines/clf/v1/requirements.txt").read_text()
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert set(pins) <= set((model / "requirements.txt").read_text().split())


def test_an_all_cached_run_reuses_the_model_an_earlier_run_built(project: Path) -> None:
    again = run_cli("run", "pipelines/clf", "--no-track", cwd=project, env=NO_TRACK)
    assert again.returncode == 0, again.stdout + again.stderr
    first, second = _runs(project)[:2]
    assert all(s["state"] == "cached" for s in second["steps"].values())
    assert second["serving"]["reused_from"] == first["id"]
    assert second["serving"]["duration"] < 1.0
    assert "serving: predict(raw) saved as serving/model, no training/serving skew on 100 rows" in (
        again.stdout + again.stderr
    )
    model = project / ".nb2prod/runs" / second["id"] / "serving/model"
    assert (model / "MLmodel").is_file()


def test_nb2prod_serve_a_run_answers_like_the_evaluation_step(project: Path) -> None:
    run_id = _runs(project)[0]["id"]
    port = free_port()
    with scoring_server(serve_command(run_id, "--port", str(port)), port, project) as server:
        expected = pd.read_csv(project / "eval_predictions.csv", index_col=0)
        status, answer = post(port, rows(expected[["a", "b", "noise"]].iloc[:30]))
        assert status == 200, answer
        assert answer["predictions"] == expected["pred"].iloc[:30].tolist()
        status, answer = post(port, rows(expected[["a", "noise"]].iloc[:3]))
        assert status == 400 and "missing inputs ['b']" in answer["message"], answer
        assert "Traceback" not in json.dumps(answer)
        server.terminate()  # SIGTERM, as a service manager stops it: the server goes too
        printed = server.communicate(timeout=30)[0]
        assert server.returncode == 0, printed
    assert f"Serving run {run_id} (clf v1)" in printed
    curl = next(line for line in printed.splitlines() if line.strip().startswith("try: curl"))
    assert f"http://127.0.0.1:{port}/invocations" in curl
    body = json.loads(shlex.split(curl.strip()[len("try: ") :])[-1])
    assert body["dataframe_split"]["columns"] == ["a", "b", "noise"]
    assert len(body["dataframe_split"]["data"]) == 2


def test_nb2prod_serve_the_pipeline_picks_its_newest_successful_run(project: Path) -> None:
    """Resolution only: the server is started (and stopped) in the test above."""
    import os

    from nb2prod.serving.serve import resolve

    newest = _runs(project)[-1]["id"]
    cwd = os.getcwd()
    os.chdir(project)
    try:
        target = resolve("pipelines/clf", None, project / ".nb2prod")
    finally:
        os.chdir(cwd)
    assert target.what.startswith(f"run {newest}")


SKEWED = [
    ("import numpy as np\nimport pandas as pd", []),
    ("k = 2.0  # weight", ["parameters"]),
    ("raw = pd.DataFrame({'a': np.arange(30.0), 'b': np.arange(30.0) * 2})", ["preprocessing"]),
    ("w = np.array([1.0, 0.5]) * k", ["training"]),
    (
        "def score(raw):\n"
        "    jitter = np.random.default_rng().integers(0, 2, len(raw))  # not reproducible\n"
        "    return raw[['a', 'b']].to_numpy() @ w + jitter",
        ["serving"],
    ),
    ("s = score(raw)\ntotal = float(s.sum())", ["evaluation", "metrics"]),
]

NOTEBOOK_CLASS = [
    ("import numpy as np\nimport pandas as pd", []),
    ("raw = pd.DataFrame({'a': np.arange(20.0)})", ["preprocessing"]),
    (
        "class Shift:\n"
        "    def __init__(self, by):\n"
        "        self.by = by\n"
        "    def apply(self, x):\n"
        "        return x + self.by\n"
        "shift = Shift(3.0)",
        ["training"],
    ),
    ("def score(raw):\n    return shift.apply(raw['a'].to_numpy())", ["serving"]),
    ("s = score(raw)\ntotal = float(s.sum())", ["evaluation", "metrics"]),
]


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (
            SKEWED,
            "training/serving skew: score(raw) returned different results when served",
        ),
        (NOTEBOOK_CLASS, "serving need `shift` (an output of step training) cannot be loaded"),
    ],
    ids=["skew", "unloadable-need"],
)
def test_a_model_that_differs_or_cannot_load_fails_the_run(
    tmp_path: Path, cells: list[Any], expected: str
) -> None:
    write_notebook(tmp_path / "nb.ipynb", cells)
    assert run_cli("export", "nb.ipynb", cwd=tmp_path).returncode == 0
    done = run_cli(
        "run", "pipelines/nb", "--no-track", "--junit", "j.xml", cwd=tmp_path, env=NO_TRACK
    )
    assert done.returncode == 1, done.stdout + done.stderr
    record = _runs(tmp_path)[0]
    suite = ET.parse(tmp_path / "j.xml").getroot()
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["score(raw)"]
    kind = "TrainingServingSkew" if cells is SKEWED else "ServingModelError"
    assert failed[0].find("failure").get("type") == kind  # type: ignore[union-attr]
    assert record["status"] == "failed"
    assert all(s["state"] == "succeeded" for s in record["steps"].values())
    assert record["serving"]["status"] == "failed"
    assert expected in record["error"] and expected in done.stdout + done.stderr
    if cells is SKEWED:
        assert record["serving"]["skew"] == "found"
        assert "first differing rows: index " in record["error"]
        assert ": expected " in record["error"] and ", served " in record["error"]


def test_a_version_without_serving_records_no_serving(tmp_path: Path) -> None:
    cells = [c for c in SKEWED if "serving" not in c[1]]
    cells[-1] = ("total = float((raw.to_numpy() @ w).sum())", ["evaluation", "metrics"])
    write_notebook(tmp_path / "nb.ipynb", cells)
    assert run_cli("export", "nb.ipynb", cwd=tmp_path).returncode == 0
    done = run_cli("run", "pipelines/nb", "--no-track", cwd=tmp_path, env=NO_TRACK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "serving" not in _runs(tmp_path)[0]
    assert "serving" not in done.stdout + done.stderr
    refused = subprocess.run(
        serve_command(_runs(tmp_path)[0]["id"]), cwd=tmp_path, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert (
        "logged no serving model. Fix: tag the cell that defines the production function "
        "`serving`" in refused.stderr
    )
