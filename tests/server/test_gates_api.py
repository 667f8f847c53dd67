"""Quality gates over REST (issue 13): the run request's baseline, promote and gates fields,
the gate results and baseline a run record carries, and the step reports.

A real Jupyter server (pytest-jupyter) with nb2prod enabled, as tests/server/test_server.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_server import call, wait_for_run
from tornado.httpclient import HTTPClientError

from conftest import TINY_CELLS, write_notebook

RUN_ID = "20261127-023015-1230abc"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"nb2prod": True}}}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    root = Path(jp_root_dir)
    (root / "notebooks").mkdir()
    write_notebook(root / "notebooks" / "tiny.ipynb", TINY_CELLS)
    return root


async def test_gate_fields_are_checked_before_anything_starts(jp_fetch: Any, root: Path) -> None:
    code, _ = await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    assert code == 200
    pipeline = {"pipeline": "pipelines/tiny"}
    rejected = [
        ({"baseline": "latest"}, '`baseline` "latest" is not a baseline'),
        ({"baseline": "v0"}, "is not a baseline"),
        ({"baseline": "../runs/x"}, "is not a baseline"),
        ({"baseline": 3}, "`baseline` 3 is not a baseline"),
        ({"baseline": "20261127-0230"}, 'a run id like "20261122-074521-604c3f1"'),
        ({"baseline": "ABC" * 11}, "or an MLflow run id"),
        ({"promote": "yes"}, "`promote` must be true or false"),
        ({"gates": "accuracy >= 0.9"}, "`gates` must be a list of gate expressions"),
        ({"gates": [1]}, "`gates` must be a list"),
        ({"gates": ["  "]}, "`gates[0]` is empty"),
        ({"gates": ["score >= 1", "x" * 501]}, "`gates[1]` must be one line of at most 500"),
        ({"gates": ["score >= 1\ncount >= 2"]}, "`gates[0]` must be one line"),
        ({"gates": ["score >= 1"] * 101}, "send at most 100"),
    ]
    for extra, message in rejected:
        code, reply = await call(jp_fetch, "POST", "runs", {**pipeline, **extra})
        assert code == 400 and message in reply["message"], (extra, reply)
        assert "--" not in reply["message"]  # worded for a JSON caller, never a CLI flag
    assert not (root / ".nb2prod").exists()  # nothing was started


async def test_gate_fields_reach_the_runner(jp_fetch: Any, root: Path) -> None:
    await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    body = {
        "pipeline": "pipelines/tiny",
        "baseline": "previous",
        "promote": True,
        "gates": ["score >= 1  # at least one", " count > 100 "],
    }
    code, started = await call(jp_fetch, "POST", "runs", body)
    assert code == 202, started
    job = json.loads((root / ".nb2prod" / "jobs" / f"{started['id']}.json").read_text())
    assert job["baseline"] == "previous" and job["promote"] is True
    assert job["gates"] == ["score >= 1  # at least one", "count > 100"]
    run = await wait_for_run(jp_fetch, started["id"])
    # Every step succeeded; the command-line gate `count > 100` failed.
    assert run["status"] == "succeeded", run
    assert all(s["state"] == "succeeded" for s in run["steps"].values())
    gates = run["gates"]
    assert gates["status"] == "failed" and gates["promote"] is True and not gates["promoted"]
    results = {r["expr"]: r for r in gates["results"]}
    assert results["count > 100"]["status"] == "failed"
    assert results["count > 100"]["origin"] == "command line"
    assert results["count > 100"]["value"] == 5
    assert run.get("baseline") is None  # the first run: nothing before it


def _write_record(root: Path, report: str | None) -> Path:
    folder = root / ".nb2prod" / "runs" / RUN_ID
    (folder / "steps" / "training").mkdir(parents=True)
    step: dict[str, Any] = {"state": "succeeded", "duration": 1.0, "notebook": None}
    if report is not None:
        step["report"] = report
    record = {
        "id": RUN_ID,
        "pipeline": "tiny",
        "version": 2,
        "status": "succeeded",
        "steps": {"training": step},
        "metrics": {"score": 9.0},
        "baseline": {
            "requested": "champion",
            "run_id": "20261126-101010-0000001",
            "mlflow_run_id": None,
            "version": 1,
            "source": "champion (local)",
            "metrics": {"score": 10.0},
        },
        "gates": {
            "status": "failed",
            "results": [
                {
                    "expr": "score >= baseline",
                    "metric": "score",
                    "op": ">=",
                    "help": "",
                    "origin": "notebook",
                    "value": 9.0,
                    "baseline": 10.0,
                    "threshold": 10.0,
                    "status": "failed",
                    "reason": None,
                }
            ],
            "promote": False,
            "promoted": None,
        },
    }
    (folder / "run.json").write_text(json.dumps(record))
    return folder


async def test_run_record_carries_baseline_gates_and_report(jp_fetch: Any, root: Path) -> None:
    folder = _write_record(root, "steps/training/report.html")
    (folder / "steps" / "training" / "report.html").write_text("<html><p>plot</p></html>")
    code, run = await call(jp_fetch, "GET", f"runs/{RUN_ID}")
    assert code == 200, run
    assert run["baseline"]["metrics"] == {"score": 10.0}
    assert run["gates"]["results"][0]["status"] == "failed"
    step = run["steps"]["training"]
    assert step["report_path"] == f".nb2prod/runs/{RUN_ID}/steps/training/report.html"
    response = await jp_fetch(
        "nb2prod", "runs", RUN_ID, "report", method="GET", params={"step": "training"}
    )
    assert response.body == b"<html><p>plot</p></html>"
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Content-Security-Policy"] == "sandbox"
    code, reply = await call(jp_fetch, "GET", f"runs/{RUN_ID}/report", params={"step": "x"})
    assert code == 404 and "no step `x`" in reply["message"]
    code, reply = await call(jp_fetch, "GET", f"runs/{RUN_ID}/report")
    assert code == 400 and "?step=NAME" in reply["message"]


async def test_a_report_outside_the_run_folder_or_missing_is_404(jp_fetch: Any, root: Path) -> None:
    _write_record(root, "../../../secret.html")
    (root / "secret.html").write_text("secret")
    for _ in range(2):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch(
                "nb2prod", "runs", RUN_ID, "report", method="GET", params={"step": "training"}
            )
        assert err.value.code == 404
        assert b"has no report" in (err.value.response.body or b"")
        (root / "secret.html").unlink(missing_ok=True)  # then: a report not written (yet)


async def test_inspect_passes_the_notebooks_gates(jp_fetch: Any, root: Path) -> None:
    cells = [*TINY_CELLS, ("score >= 1  # at least one\ncount >= 2", ["gates"])]
    write_notebook(root / "notebooks" / "gated.ipynb", cells)
    code, plan = await call(jp_fetch, "GET", "inspect", params={"path": "notebooks/gated.ipynb"})
    assert code == 200, plan
    assert [g["expr"] for g in plan["gates"]] == ["score >= 1", "count >= 2"]
    assert plan["gates"][0]["help"] == "at least one"
