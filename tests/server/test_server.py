"""The jupyter_server extension over real HTTP: auth, paths, inspect, export, pipelines, runs.

Each test gets a real Jupyter server (pytest-jupyter) with nb2prod enabled, rooted in a fresh
temporary folder that is not the test process's working directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from tornado.httpclient import HTTPClientError
from tornado.web import RequestHandler

from nb2prod.server import handlers, work
from nb2prod.server.errors import ApiError
from nb2prod.server.handlers import LAUNCHER, ROUTES, Nb2prodHandler

from conftest import REPO, TINY_CELLS, notebook_json, run_cli, write_notebook

BREAST_CANCER = REPO / "notebooks" / "breast_cancer.ipynb"
FINAL = ("succeeded", "failed", "interrupted")


@pytest.fixture(scope="module", autouse=True)
def stop_workers() -> Iterator[None]:
    """The server's inspect/export worker processes live as long as this process: stop them."""
    yield
    work.shutdown()


@pytest.fixture(params=["default"])
def auth_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def jp_server_config(auth_mode: str) -> dict[str, Any]:
    server: dict[str, Any] = {"jpserver_extensions": {"nb2prod": True}}
    if auth_mode == "strict":  # every handler must then be authenticated, decorators or not
        server["allow_unauthenticated_access"] = False
    return {"ServerApp": server}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    root = Path(jp_root_dir)
    assert Path.cwd().resolve() != root.resolve()  # exports must not depend on the cwd
    (root / "notebooks").mkdir()
    shutil.copy(BREAST_CANCER, root / "notebooks" / "breast_cancer.ipynb")
    write_notebook(root / "notebooks" / "tiny.ipynb", TINY_CELLS)
    return root


async def call(
    jp_fetch: Any,
    method: str,
    route: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """(status, JSON reply) of ``METHOD /nb2prod/ROUTE``, errors included."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if method == "POST" and data is None:
        data = b""
    try:
        response = await jp_fetch(
            "nb2prod", *route.split("/"), method=method, body=data, params=params, headers=headers
        )
    except HTTPClientError as exc:
        assert exc.response is not None
        text = exc.response.body or b"{}"
        return exc.code, json.loads(text) if text.startswith(b"{") else text
    return response.code, json.loads(response.body)


async def wait_for_run(jp_fetch: Any, run_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll GET runs/ID until the run is over and its process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        code, data = await call(jp_fetch, "GET", f"runs/{run_id}")
        assert code == 200, data
        if data["status"] in FINAL and not data["active"]:
            return dict(data)
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.2)  # lets the server, on this same event loop, work


def files_under(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


# --- auth ---------------------------------------------------------------------------------------
REQUESTS = [
    ("GET", "inspect", None, {"path": "notebooks/tiny.ipynb"}),
    ("POST", "inspect", {"path": "notebooks/tiny.ipynb", "content": {}}, None),
    ("POST", "export", {"path": "notebooks/tiny.ipynb"}, None),
    ("GET", "pipelines", None, None),
    ("GET", "runs", None, None),
    ("POST", "runs", {"pipeline": "pipelines/tiny"}, None),
    ("GET", "runs/20261122-074521-604c3f1", None, None),
    ("GET", "runs/20261122-074521-604c3f1/notebook", None, {"step": "training"}),
    ("GET", "runs/20261122-074521-604c3f1/report", None, {"step": "training"}),
]


@pytest.mark.parametrize("auth_mode", ["default", "strict"], indirect=True)
async def test_every_route_refuses_missing_or_wrong_token(
    recwarn: pytest.WarningsRecorder, jp_fetch: Any, root: Path
) -> None:
    # In strict mode jupyter_server itself lists endpoints that lack authentication.
    assert not [w for w in recwarn if "nb2prod" in str(w.message)]
    before = files_under(root)
    for method, route, body, params in REQUESTS:
        for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
            code, _ = await call(jp_fetch, method, route, body, params, headers)
            assert code == 403, (method, route, headers)
    assert files_under(root) == before  # nothing exported, no run started


async def test_every_route_answers_with_the_token(jp_fetch: Any, root: Path) -> None:
    for method, route, body, params in REQUESTS:
        code, reply = await call(jp_fetch, method, route, body, params)
        assert code not in (401, 403, 405, 500), (method, route, code, reply)
        assert isinstance(reply, dict) and (code < 400 or reply["message"]), reply
        if code == 202:  # the run started (export came first): let it finish
            assert (await wait_for_run(jp_fetch, reply["id"]))["status"] == "succeeded"


def _wrappers(func: Any) -> list[tuple[str, str]]:
    """(source file, function name) of each wrapper around ``func``, outermost first."""
    out = []
    while func is not None:
        code = getattr(func, "__code__", None)
        if code is not None:
            out.append((Path(code.co_filename).as_posix(), code.co_qualname))
        func = getattr(func, "__wrapped__", None)
    return out


def test_every_handler_method_is_authenticated_and_authorized(jp_serverapp: Any) -> None:
    """As the extension template's check_auth.py: each HTTP method carries both decorators."""
    from jupyter_server.base.handlers import APIHandler

    registered = {
        spec.target
        for rule in jp_serverapp.web_app.default_router.rules
        for spec in getattr(rule.target, "rules", [])
        if "/nb2prod/" in spec.matcher.regex.pattern
    }
    assert registered == {cls for _, cls in ROUTES}
    defined = {
        obj
        for obj in vars(handlers).values()
        if isinstance(obj, type) and issubclass(obj, RequestHandler)
        if obj.__module__ == handlers.__name__ and obj is not Nb2prodHandler
    }
    assert defined <= registered  # no handler class is left out of the check
    checked = 0
    for cls in registered:
        assert issubclass(cls, APIHandler) and issubclass(cls, Nb2prodHandler)
        assert cls.auth_resource == "nb2prod"
        for name in ("get", "post", "put", "patch", "delete", "head"):
            if not any(name in k.__dict__ for k in cls.__mro__ if k.__module__.startswith("nb2")):
                continue
            method = getattr(cls, name)
            wrappers = _wrappers(method)
            assert len(wrappers) >= 3, (cls, name, wrappers)
            (f0, n0), (f1, n1) = wrappers[0], wrappers[1]
            assert f0.endswith("tornado/web.py") and n0.startswith("authenticated."), (cls, name)
            assert f1.endswith("jupyter_server/auth/decorator.py"), (cls, name)
            assert n1.startswith("authorized."), (cls, name)
            assert getattr(method, "__allow_unauthenticated", False) is False
            checked += 1
    assert checked == 10  # 8 before POST compile, 9 before GET report


def test_jupyter_lists_the_extension_as_enabled_and_ok() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
    assert re.search(r"^\s*nb2prod enabled\s*$", text, re.M), text
    assert re.search(r"^\s*nb2prod \S* ?OK\s*$", text, re.M), text


# --- paths --------------------------------------------------------------------------------------
async def test_paths_outside_the_root_or_hidden_are_refused(
    jp_fetch: Any, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(BREAST_CANCER, outside / "secret.ipynb")
    (root / "link.ipynb").symlink_to(outside / "secret.ipynb")
    (root / "linked_dir").symlink_to(outside)
    (root / ".hidden").mkdir()
    shutil.copy(BREAST_CANCER, root / ".hidden" / "nb.ipynb")
    before = files_under(outside)
    cases = {
        "../outside/secret.ipynb": 403,
        "notebooks/../../outside/secret.ipynb": 403,
        str(outside / "secret.ipynb"): 403,
        "/notebooks/tiny.ipynb": 403,
        "link.ipynb": 403,
        "linked_dir/secret.ipynb": 403,
        ".hidden/nb.ipynb": 403,
        "%2e%2e/outside/secret.ipynb": 404,  # taken literally: no folder called %2e%2e
        "notebooks/nothing.ipynb": 404,
        "notebooks": 400,
    }
    for path, status in cases.items():
        code, reply = await call(jp_fetch, "GET", "inspect", params={"path": path})
        assert code == status, (path, reply)
        if not path.startswith(str(outside)):  # no leak of where a link really points
            assert str(outside) not in reply["message"], reply
        code, reply = await call(jp_fetch, "POST", "export", {"path": path})
        assert code == status, (path, reply)
    code, reply = await call(jp_fetch, "POST", "runs", {"pipeline": "../outside"})
    assert code == 403, reply
    assert files_under(outside) == before
    assert not (root / "pipelines").exists()


async def test_bad_bodies_and_missing_fields_are_400(jp_fetch: Any, root: Path) -> None:
    for route in ("inspect", "export", "runs"):
        for raw in (b"{not json", b"[1, 2]", b'"text"'):
            code, reply = await call(jp_fetch, "POST", route, raw=raw)
            assert code == 400, (route, raw, reply)
            assert "JSON" in reply["message"]
    bad = [
        ("GET", "inspect", None, None, "`path` is missing"),
        ("POST", "inspect", {"path": "notebooks/tiny.ipynb"}, None, "`content` is missing"),
        ("POST", "inspect", {"content": {}}, None, "`path` is missing"),
        ("POST", "inspect", {"path": "notebooks/tiny.ipynb", "content": [1]}, None, "`content`"),
        ("POST", "export", {}, None, "`path` is missing"),
        ("POST", "export", {"path": 3}, None, "`path` is missing"),
        ("POST", "export", {"path": "notebooks/tiny.ipynb", "name": 5}, None, "`name`"),
        ("POST", "runs", {}, None, "`pipeline` is missing"),
        ("POST", "runs", {"pipeline": "pipelines/tiny", "params": [1]}, None, "`params`"),
        ("POST", "runs", {"pipeline": "pipelines/tiny", "steps": "a"}, None, "`steps`"),
        ("POST", "runs", {"pipeline": "pipelines/tiny", "steps": []}, None, "`steps` is empty"),
        ("POST", "runs", {"pipeline": "pipelines/tiny", "no_cache": "yes"}, None, "`no_cache`"),
        ("GET", "runs", None, {"limit": "many"}, "`limit`"),
        ("GET", "runs/not-a-run-id", None, None, "is not a run id"),
        ("GET", "runs/..%2F..%2Fetc", None, None, "is not a run id"),
        ("GET", "runs/20261122-074521-604c3f1/notebook", None, None, "`step` is missing"),
    ]
    for method, route, body, params, message in bad:
        code, reply = await call(jp_fetch, method, route, body, params)
        assert code == 400, (route, body, reply)
        assert message in reply["message"], (route, body, reply)
    code, reply = await call(jp_fetch, "GET", "runs/20261122-074521-604c3f1")
    assert code == 404 and "no run 20261122-074521-604c3f1" in reply["message"]


# --- inspect ------------------------------------------------------------------------------------
async def test_inspect_saved_and_unsaved_notebook(jp_fetch: Any, root: Path) -> None:
    code, plan = await call(
        jp_fetch, "GET", "inspect", params={"path": "notebooks/breast_cancer.ipynb"}
    )
    assert code == 200
    assert plan["notebook"] == "notebooks/breast_cancer.ipynb"
    assert [s["name"] for s in plan["steps"]] == ["preprocessing", "training", "evaluation"]
    assert {p["name"]: p["value"] for p in plan["parameters"]}["C"] == 1.0

    # The editor's unsaved change (a new value for C, a typo in a tag) shows at once...
    content = json.loads((root / "notebooks" / "breast_cancer.ipynb").read_text())
    for cell in content["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = "".join(cell["source"]).replace("C = 1.0", "C = 0.25")
        if cell.get("id") == "predict":
            cell["metadata"]["tags"] = ["evaluaton"]
    body = {"path": "notebooks/breast_cancer.ipynb", "content": content}
    code, live = await call(jp_fetch, "POST", "inspect", body)
    assert code == 200
    assert {p["name"]: p["value"] for p in live["parameters"]}["C"] == 0.25
    typo = next(p for p in live["problems"] if p["code"] == "unknown-tag")
    assert typo["cell"]["id"] == "predict" and "`evaluation`" in typo["fix"]
    assert typo["text"].startswith("notebooks/breast_cancer.ipynb, cell 15")
    # ...while the saved file is untouched.
    code, again = await call(
        jp_fetch, "GET", "inspect", params={"path": "notebooks/breast_cancer.ipynb"}
    )
    assert again == plan


async def test_inspect_unreadable_notebook_is_422(jp_fetch: Any, root: Path) -> None:
    (root / "broken.ipynb").write_text('{"cells": [', "utf-8")
    code, reply = await call(jp_fetch, "GET", "inspect", params={"path": "broken.ipynb"})
    assert code == 422
    assert reply["message"].startswith("broken.ipynb: ends early (truncated)")
    assert str(root) not in reply["message"]
    bad = notebook_json(["x = 1"])
    bad["nbformat"] = 3
    code, reply = await call(jp_fetch, "POST", "inspect", {"path": "broken.ipynb", "content": bad})
    assert code == 422 and "nb2prod reads format 4" in reply["message"]


# --- export -------------------------------------------------------------------------------------
async def test_export_creates_v1_then_is_up_to_date(jp_fetch: Any, root: Path) -> None:
    body = {"path": "notebooks/breast_cancer.ipynb"}
    code, first = await call(jp_fetch, "POST", "export", body)
    assert code == 200, first
    assert first == {
        "name": "breast_cancer",
        "version": 1,
        "path": "pipelines/breast_cancer/v1",
        "created": True,
        "pipeline_yaml": "pipelines/breast_cancer/v1/pipeline.yaml",
        "readme": "pipelines/breast_cancer/v1/README.md",
        "warnings": [],
    }
    manifest = yaml.safe_load((root / first["pipeline_yaml"]).read_text())
    assert manifest["source"]["notebook"] == "notebooks/breast_cancer.ipynb"
    assert (root / first["readme"]).is_file()
    code, second = await call(jp_fetch, "POST", "export", body)
    assert code == 200 and second == {**first, "created": False}
    # The same pipeline the CLI sees from the root: `nb2prod check` agrees it is current.
    r = run_cli("check", "notebooks/breast_cancer.ipynb", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr

    code, named = await call(
        jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb", "name": "small"}
    )
    assert code == 200 and named["path"] == "pipelines/small/v1"
    assert named["warnings"] == [
        "notebooks/tiny.ipynb, cell 2 (id c1): sets parameter `label`, but no step reads it. "
        "Fix: use it in a step or remove it."
    ]


async def test_export_errors_are_422_with_problems(
    jp_fetch: Any, root: Path, tmp_path: Path
) -> None:
    write_notebook(root / "bad.ipynb", [("x = 1", ["trainig"]), ("y = z", ["evaluation"])])
    code, reply = await call(jp_fetch, "POST", "export", {"path": "bad.ipynb"})
    assert code == 422
    assert reply["message"].startswith("bad.ipynb, cell 1 (id c0): ")
    assert "nothing was written" in reply["message"]
    assert {p["code"] for p in reply["problems"]} >= {"unknown-tag"}
    assert all(p["text"].startswith("bad.ipynb, cell") for p in reply["problems"])
    code, reply = await call(
        jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb", "name": "../evil"}
    )
    assert code == 422 and "is not allowed" in reply["message"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "pipelines").symlink_to(outside)
    code, reply = await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    assert code == 403 and "links outside" in reply["message"], reply
    assert list(outside.iterdir()) == []
    assert not (root.parent / "evil").exists()


# --- pipelines ----------------------------------------------------------------------------------
async def test_pipelines_lists_versions_steps_and_parameters(jp_fetch: Any, root: Path) -> None:
    code, reply = await call(jp_fetch, "GET", "pipelines")
    assert code == 200 and reply == {"pipelines": []}
    await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    tiny = root / "notebooks" / "tiny.ipynb"
    nb = json.loads(tiny.read_text())
    nb["cells"][1]["source"] = nb["cells"][1]["source"].replace("n = 3", "n = 4")
    tiny.write_text(json.dumps(nb))
    code, v2 = await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    assert v2["version"] == 2
    code, reply = await call(jp_fetch, "GET", "pipelines")
    (pipeline,) = reply["pipelines"]
    assert pipeline["name"] == "tiny" and pipeline["path"] == "pipelines/tiny"
    assert pipeline["latest"] == 2 and [v["version"] for v in pipeline["versions"]] == [1, 2]
    v1 = pipeline["versions"][0]
    assert v1["path"] == "pipelines/tiny/v1" and v1["notebook"] == "notebooks/tiny.ipynb"
    assert v1["created_at"]
    assert v1["steps"] == [
        {"name": "preprocessing", "role": "preprocessing", "depends_on": []},
        {"name": "training", "role": "training", "depends_on": ["preprocessing"]},
        {"name": "evaluation", "role": "evaluation", "depends_on": ["preprocessing", "training"]},
    ]
    assert v1["parameters"] == [
        {"name": "n", "value": 3, "type": "int", "help": "how many numbers"},
        {"name": "factor", "value": 2.0, "type": "float", "help": "scale of the total"},
        {
            "name": "delay",
            "value": 0.0,
            "type": "float",
            "help": "seconds the training step sleeps",
        },
        {"name": "flags", "value": [1, 2], "type": "list", "help": "extra items"},
        {"name": "label", "value": "x", "type": "str", "help": ""},
    ]
    assert pipeline["versions"][1]["parameters"][0]["value"] == 4


# --- runs ---------------------------------------------------------------------------------------
async def test_run_over_rest_succeeds_with_metrics_and_mlflow(
    jp_fetch: Any, jp_serverapp: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    code, _ = await call(jp_fetch, "POST", "export", {"path": "notebooks/breast_cancer.ipynb"})
    assert code == 200
    rejected = [
        ({"pipeline": "pipelines/breast_cancer", "params": {"Cc": 1}}, "did you mean `C`?"),
        ({"pipeline": "pipelines/breast_cancer", "params": {"C": "big"}}, "must be a number"),
        ({"pipeline": "pipelines/breast_cancer", "steps": ["train"]}, "no step `train`"),
        ({"pipeline": "notebooks"}, "no exported pipeline here"),
    ]
    for body, message in rejected:
        code, reply = await call(jp_fetch, "POST", "runs", body)
        assert code == 400 and message in reply["message"], (body, reply)
        assert str(root) not in reply["message"]
    for missing in ("pipelines/nothing", "pipelines/breast_cancer/v7"):
        code, reply = await call(jp_fetch, "POST", "runs", {"pipeline": missing})
        assert code == 404 and "no such folder" in reply["message"], reply
    assert not (root / ".nb2prod").exists()  # nothing was started

    body = {"pipeline": "pipelines/breast_cancer", "params": {"C": 2}}
    code, started = await call(jp_fetch, "POST", "runs", body)
    assert code == 202, started
    run_id = started["id"]
    assert started == {"id": run_id, "pipeline": "breast_cancer", "version": 1}
    code, early = await call(jp_fetch, "GET", f"runs/{run_id}")
    assert code == 200 and early["status"] in ("queued", "running")
    run = await wait_for_run(jp_fetch, run_id)
    assert run["status"] == "succeeded", run
    assert run["params"]["C"] == 2.0 and run["overrides"] == {"C": 2.0}
    assert set(run["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert run["metrics"]["accuracy"] > 0.9
    assert run["dir"] == f".nb2prod/runs/{run_id}"
    for name, step in run["steps"].items():
        assert step["state"] == "succeeded" and step["duration"] > 0
        assert step["notebook_path"] == f".nb2prod/runs/{run_id}/steps/{name}/notebook.ipynb"
        assert (root / step["notebook_path"]).is_file()
    assert run["tracking"]["ok"] and run["tracking"]["experiment"] == "breast_cancer"
    assert run["tracking"]["run_id"] and (root / "mlflow.db").is_file()
    assert (root / run["log"]).is_file()

    code, listed = await call(jp_fetch, "GET", "runs", params={"pipeline": "breast_cancer"})
    assert [r["id"] for r in listed["runs"]] == [run_id]
    code, listed = await call(jp_fetch, "GET", "runs", params={"pipeline": "other"})
    assert listed["runs"] == []
    code, nb = await call(jp_fetch, "GET", f"runs/{run_id}/notebook", params={"step": "evaluation"})
    assert code == 200 and nb["nbformat"] == 4
    code, reply = await call(jp_fetch, "GET", f"runs/{run_id}/notebook", params={"step": "x"})
    assert code == 404

    # The run process was reaped: no zombie left behind.
    launcher = jp_serverapp.web_app.settings[LAUNCHER]
    for _ in range(50):
        if not launcher.children:
            break
        await asyncio.sleep(0.1)
    assert not launcher.children
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(run["pid"]).status()


async def test_runs_of_an_earlier_server_are_read_from_disk(jp_fetch: Any, root: Path) -> None:
    """A run made without this server (by `nb2prod run` in the root) is fully visible."""
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=root).returncode == 0
    r = run_cli("run", "pipelines/tiny", "-p", "factor=3", "--no-track", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    (run_id,) = [p.name for p in (root / ".nb2prod" / "runs").iterdir()]
    code, run = await call(jp_fetch, "GET", f"runs/{run_id}")
    assert code == 200, run
    assert run["status"] == "succeeded" and not run["active"]
    assert run["metrics"] == {"score": 9.0, "count": 5}
    assert run["dir"] == f".nb2prod/runs/{run_id}" and run["log"] is None
    code, listed = await call(jp_fetch, "GET", "runs", params={"pipeline": "pipelines/tiny/v1"})
    assert [r["id"] for r in listed["runs"]] == [run_id]


async def test_a_killed_run_is_reported_interrupted(jp_fetch: Any, root: Path) -> None:
    await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    body = {"pipeline": "pipelines/tiny", "params": {"delay": 60}}
    code, started = await call(jp_fetch, "POST", "runs", body)
    assert code == 202
    run_id = started["id"]
    deadline = time.monotonic() + 60
    while True:
        code, run = await call(jp_fetch, "GET", f"runs/{run_id}")
        if run["status"] == "running" and run["steps"]["training"]["state"] == "running":
            break
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.2)
    runner = psutil.Process(run["pid"])
    family = [runner, *runner.children(recursive=True)]  # its kernels would outlive it
    for proc in family:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)
    run = await wait_for_run(jp_fetch, run_id, timeout=20)
    assert run["status"] == "interrupted" and not run["active"]
    assert f"pid {runner.pid}" in run["note"]
    states = {name: step["state"] for name, step in run["steps"].items()}
    assert states == {
        "preprocessing": "succeeded",
        "training": "interrupted",
        "evaluation": "interrupted",
    }
    record = json.loads((root / run["dir"] / "run.json").read_text())
    assert record["status"] == "running"  # the server reports; it never rewrites the record


async def test_queued_and_never_started_runs(jp_fetch: Any, root: Path) -> None:
    """A run whose process has not written run.json yet is queued; one that died, failed."""
    jobs = root / ".nb2prod" / "jobs"
    jobs.mkdir(parents=True)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    for run_id, pid in (
        ("20261122-074521-0000001", os.getpid()),
        ("20261122-074522-0000002", done.pid),
    ):
        job = {"id": run_id, "pipeline": "tiny", "version": 1, "pid": pid}
        (jobs / f"{run_id}.json").write_text(json.dumps({**job, "requested_at": time.time()}))
    code, queued = await call(jp_fetch, "GET", "runs/20261122-074521-0000001")
    assert code == 200 and queued["status"] == "queued" and queued["active"]
    code, failed = await call(jp_fetch, "GET", "runs/20261122-074522-0000002")
    assert failed["status"] == "failed" and "ended before the run started" in failed["error"]
    code, listed = await call(jp_fetch, "GET", "runs")
    assert [r["id"] for r in listed["runs"]] == [
        "20261122-074522-0000002",
        "20261122-074521-0000001",
    ]


# --- hostile input (issue 9, item 11) -----------------------------------------------------------
async def test_long_paths_are_400_not_500(jp_fetch: Any, root: Path) -> None:
    long_name = "a" * 5000
    for path in (long_name, f"notebooks/{long_name}.ipynb", "/".join(["abc"] * 1500)):
        for method, route, body, params in (
            ("GET", "inspect", None, {"path": path}),
            ("POST", "inspect", {"path": path, "content": notebook_json(["x = 1"])}, None),
            ("POST", "export", {"path": path}, None),
            ("POST", "runs", {"pipeline": path}, None),
        ):
            code, reply = await call(jp_fetch, method, route, body, params)
            assert code == 400, (route, path[:20], reply)
            assert "too long" in reply["message"] and "Fix:" in reply["message"], reply
            assert len(reply["message"]) < 400  # the path is not echoed in full
    code, reply = await call(jp_fetch, "GET", "runs", params={"pipeline": long_name})
    assert code == 200 and reply == {"runs": []}


async def test_deeply_nested_bodies_are_400(jp_fetch: Any, root: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    inner: Any = 1
    for _ in range(500):  # parses, but nests far deeper than any notebook or parameter
        inner = {"a": inner}
    cell_metadata = notebook_json(["x = 1"])
    cell_metadata["cells"][0]["metadata"]["deep"] = inner
    for route, raw in (
        ("inspect", deep),
        ("export", deep),
        ("runs", deep),
        ("inspect", json.dumps({"path": "notebooks/tiny.ipynb", "content": cell_metadata})),
        ("runs", json.dumps({"pipeline": "pipelines/tiny", "params": {"flags": inner}})),
    ):
        data = raw.encode() if isinstance(raw, str) else raw
        code, reply = await call(jp_fetch, "POST", route, raw=data)
        assert code == 400, (route, reply)
        assert "nested more than" in reply["message"] and "Fix:" in reply["message"], reply


async def test_nan_and_infinity_parameters_are_refused(jp_fetch: Any, root: Path) -> None:
    code, _ = await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    assert code == 200
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        raw = b'{"pipeline": "pipelines/tiny", "params": {"factor": ' + constant + b"}}"
        code, reply = await call(jp_fetch, "POST", "runs", raw=raw)
        assert code == 400, reply
        assert constant.lstrip(b"-").decode() in reply["message"], reply
        assert "not JSON" in reply["message"] and "Fix:" in reply["message"], reply
    for value in (b"1e999", b"[1, -1e999]"):
        raw = b'{"pipeline": "pipelines/tiny", "params": {"flags": ' + value + b"}}"
        code, reply = await call(jp_fetch, "POST", "runs", raw=raw)
        assert code == 400, reply
        assert reply["message"].startswith("`params.flags` must be a finite number"), reply
    assert not (root / ".nb2prod").exists()  # nothing was started


async def test_oversized_requests_are_413(jp_fetch: Any, root: Path) -> None:
    content = notebook_json(["x = 1", "#md " + "y" * (9 * 2**20)])
    body = {"path": "notebooks/tiny.ipynb", "content": content}
    code, reply = await call(jp_fetch, "POST", "inspect", body)
    assert code == 413, reply
    assert "at most 8 MiB" in reply["message"] and "Fix:" in reply["message"]
    code, reply = await call(jp_fetch, "POST", "runs", {"pipeline": "p", "x": "y" * 2**24})
    assert code == 413, reply


async def test_server_answers_while_a_large_inspect_runs(jp_fetch: Any, root: Path) -> None:
    # One long cell: parsing it holds the GIL for seconds in a single C call, so no thread of
    # the server's process may do it (parsing alone takes seconds here; 300 kB, under the cap).
    source = "x = [" + ", ".join(["0"] * 100_000) + "]\nscore = len(x)"
    content = notebook_json([(source, ["training", "metrics"])])
    body = {"path": "notebooks/tiny.ipynb", "content": content}
    inspect = asyncio.ensure_future(call(jp_fetch, "POST", "inspect", body))
    waits = []
    while not inspect.done():
        t0 = time.perf_counter()
        response = await jp_fetch("api", "status")
        waits.append(time.perf_counter() - t0)
        assert response.code == 200
        await asyncio.sleep(0.05)
    code, plan = await inspect
    assert code == 200, plan
    assert [s["name"] for s in plan["steps"]] == ["training"]
    assert len(waits) >= 5, waits  # the inspect took a while, and the server kept answering
    assert max(waits) < 0.5, sorted(waits)[-5:]


# --- manifests the server must not trust (issue 9, item 10) -------------------------------------
async def test_runs_refuse_a_manifest_that_escapes_its_version(jp_fetch: Any, root: Path) -> None:
    code, _ = await call(jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb"})
    assert code == 200
    manifest_path = root / "pipelines" / "tiny" / "v1" / "pipeline.yaml"
    original = manifest_path.read_text()
    (root / "evil.py").write_text("# %%\nopen('PWNED', 'w').close()\n")

    def escape_module(m: dict[str, Any]) -> str:
        m["steps"][1]["module"] = "../../../evil.py"
        return "../../../evil.py"

    def escape_name(m: dict[str, Any]) -> str:
        text = json.dumps(m).replace('"training"', '"../../x"')
        m.clear()
        m.update(json.loads(text))
        return "../../x"

    for tamper in (escape_module, escape_name):
        manifest = yaml.safe_load(original)
        bad = tamper(manifest)
        manifest_path.chmod(0o644)
        manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        code, reply = await call(jp_fetch, "POST", "runs", {"pipeline": "pipelines/tiny"})
        assert code in (400, 409, 422), (tamper.__name__, code, reply)
        message = reply["message"]
        assert bad in message or "pipeline.yaml" in message, message
        assert str(root) not in message and "Fix:" in message, message
        assert not (root / ".nb2prod").exists() and not (root / "PWNED").exists()
    assert not (root / "x").exists() and not (root.parent / "x").exists()


# --- errors worded for a REST caller (issue 9, item 30) -----------------------------------------
async def test_rest_errors_name_the_json_field_and_never_a_flag(jp_fetch: Any, root: Path) -> None:
    cells = [("C = 1.0\nkernel = 'rbf'", ["parameters"]), ("score = C", ["training", "metrics"])]
    write_notebook(root / "notebooks" / "svm.ipynb", cells)
    code, _ = await call(jp_fetch, "POST", "export", {"path": "notebooks/svm.ipynb"})
    assert code == 200
    cases = [
        (
            {"C": "big"},
            '`params.C` must be a number (default 1.0), but got the string "big". '
            'Fix: send a number, e.g. {"params": {"C": 1.0}}',
        ),
        (
            {"c": 0.1},
            "`params.c`: this pipeline has no parameter `c`. Fix: did you mean `C`? "
            'e.g. {"params": {"C": 0.1}}',
        ),
        (
            {"kernel": 3},
            '`params.kernel` must be a string (default "rbf"), but got the number 3. '
            'Fix: send a string, e.g. {"params": {"kernel": "rbf"}}',
        ),
    ]
    messages = []
    for params, expected in cases:
        code, reply = await call(
            jp_fetch, "POST", "runs", {"pipeline": "pipelines/svm", "params": params}
        )
        assert code == 400 and reply["message"] == expected, reply
        messages.append(reply["message"])
    code, reply = await call(jp_fetch, "POST", "runs", {"pipeline": "notebooks"})
    assert code == 400 and "no exported pipeline here" in reply["message"], reply
    assert "POST /nb2prod/export" in reply["message"]
    messages.append(reply["message"])
    code, reply = await call(
        jp_fetch, "POST", "export", {"path": "notebooks/tiny.ipynb", "name": "Feature-Importance"}
    )
    assert code == 422 and '{"name": "feature_importance"}' in reply["message"], reply
    messages.append(reply["message"])
    for message in messages:
        assert not re.search(r"(^|\s)--?[a-z]", message), message  # no -p, --name, ...
        assert "nb2prod " not in message and "parameter C:" not in message, message


def test_a_dead_worker_is_a_503_and_the_next_request_gets_a_fresh_one() -> None:
    async def scenario() -> None:
        with pytest.raises(ApiError) as info:
            await work.run(os._exit, 1)  # the worker dies mid-request, as on running out of memory
        assert info.value.status_code == 503 and "Fix: try again" in info.value.message
        assert await work.run(len, "abc") == 3

    asyncio.run(scenario())
