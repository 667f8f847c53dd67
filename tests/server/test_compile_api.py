"""``POST /nb2prod/compile`` over real HTTP: auth, bad input, and the files it writes.

Each test gets a real Jupyter server (pytest-jupyter) with nb2prod enabled, rooted in a fresh
temporary folder holding the tiny notebook exported to ``pipelines/tiny/v1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from nb2prod.export.writer import export_notebook

from conftest import TINY_CELLS, run_cli, write_notebook

# What each target writes (besides anything else the generator adds), and the file the Lab opens.
EXPECTED = {
    "kfp": {"pipeline.py", "pipeline.yaml", "Dockerfile", "README.md"},
    "airflow": {"dag.py", "Dockerfile", "README.md"},
}


class ReadOnlyAuthorizer(Authorizer):
    """A user who may look at everything but change nothing."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"


@pytest.fixture(params=["default"])
def auth_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def jp_server_config(auth_mode: str) -> dict[str, Any]:
    server: dict[str, Any] = {"jpserver_extensions": {"nb2prod": True}}
    if auth_mode == "strict":  # every handler must then be authenticated, decorators or not
        server["allow_unauthenticated_access"] = False
    if auth_mode == "read-only":
        server["authorizer_class"] = ReadOnlyAuthorizer
    return {"ServerApp": server}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    """The server's root with notebooks/tiny.ipynb exported to pipelines/tiny/v1."""
    root = Path(jp_root_dir)
    assert Path.cwd().resolve() != root.resolve()  # nothing may depend on the server's cwd
    notebook = write_notebook(root / "notebooks" / "tiny.ipynb", TINY_CELLS)
    export_notebook(notebook, out=root / "pipelines")
    assert (root / "pipelines" / "tiny" / "v1" / "pipeline.yaml").is_file()
    return root


async def call(
    jp_fetch: Any, body: Any = None, headers: dict[str, str] | None = None, raw: bytes = b""
) -> tuple[int, Any]:
    """(status, JSON reply) of ``POST /nb2prod/compile``, errors included."""
    data = json.dumps(body).encode() if body is not None else raw
    try:
        response = await jp_fetch("nb2prod", "compile", method="POST", body=data, headers=headers)
    except HTTPClientError as exc:
        assert exc.response is not None
        text = exc.response.body or b"{}"
        return exc.code, json.loads(text) if text.startswith(b"{") else text
    return response.code, json.loads(response.body)


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed) and the SHA-256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth_mode", ["default", "strict"], indirect=True)
async def test_compile_refuses_a_missing_or_wrong_token(jp_fetch: Any, root: Path) -> None:
    body = {"pipeline": "pipelines/tiny", "target": "kfp"}
    for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
        code, _ = await call(jp_fetch, body, headers)
        assert code == 403, headers
    assert not (root / "build").exists()


@pytest.mark.parametrize("auth_mode", ["read-only"], indirect=True)
async def test_compile_needs_write_permission(jp_fetch: Any, root: Path) -> None:
    # The same user may read (so the refusal below is the authorizer's, not the token's).
    listed = await jp_fetch("nb2prod", "pipelines", method="GET")
    assert json.loads(listed.body)["pipelines"][0]["name"] == "tiny"
    code, _ = await call(jp_fetch, {"pipeline": "pipelines/tiny", "target": "kfp"})
    assert code == 403
    assert not (root / "build").exists()


# --- bad input ----------------------------------------------------------------------------------
async def test_bad_requests_get_one_paragraph_and_write_nothing(
    jp_fetch: Any, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copytree(root / "pipelines" / "tiny", outside / "tiny")
    (root / "pipelines" / "linked").symlink_to(outside / "tiny")
    (root / "elsewhere").symlink_to(outside)
    before = digests(root)
    cases: list[tuple[Any, int, str]] = [
        ({"pipeline": "pipelines/tiny"}, 400, "`target` is missing"),
        ({"pipeline": "pipelines/tiny", "target": "argo"}, 400, "`target` 'argo' is not"),
        ({"pipeline": "pipelines/tiny", "target": "KFP"}, 400, '"kfp" (Kubeflow Pipelines)'),
        ({"pipeline": "pipelines/tiny", "target": ["kfp"]}, 400, '"airflow" (Airflow)'),
        ({"target": "kfp"}, 400, "`pipeline` is missing"),
        ({"pipeline": 3, "target": "kfp"}, 400, "`pipeline` is missing"),
        ({"pipeline": "notebooks", "target": "kfp"}, 400, "no exported pipeline here"),
        ({"pipeline": "pipelines/tiny/v1/config.yaml", "target": "kfp"}, 400, "is a file"),
        ({"pipeline": "pipelines/nothing", "target": "kfp"}, 404, "no such folder"),
        ({"pipeline": "pipelines/tiny/v7", "target": "kfp"}, 404, "no such folder"),
        ({"pipeline": "../outside/tiny", "target": "kfp"}, 403, "leaves the server's root"),
        ({"pipeline": str(outside / "tiny"), "target": "kfp"}, 403, "is absolute"),
        ({"pipeline": "pipelines/linked", "target": "kfp"}, 403, "outside the server's root"),
        ({"pipeline": "elsewhere/tiny/v1", "target": "airflow"}, 403, "outside the server's"),
        ({"pipeline": "pipelines/.tiny", "target": "kfp"}, 403, "is hidden"),
    ]
    for body, status, message in cases:
        code, reply = await call(jp_fetch, body)
        assert code == status, (body, reply)
        assert isinstance(reply, dict) and set(reply) == {"message"}, reply
        assert message in reply["message"], (body, reply)
        assert "Traceback" not in reply["message"] and "\n" not in reply["message"]
        assert str(root) not in reply["message"]
        if not str(body.get("pipeline")).startswith(str(outside)):  # where links point stays
            assert str(outside) not in reply["message"], reply  # unsaid
    for raw in (b"{not json", b'["pipelines/tiny", "kfp"]'):
        code, reply = await call(jp_fetch, raw=raw)
        assert code == 400 and "JSON" in reply["message"], reply
    assert digests(root) == before  # no build/ folder, the version untouched
    assert not (outside / "build").exists()


async def test_a_version_edited_by_hand_is_422(jp_fetch: Any, root: Path) -> None:
    step = root / "pipelines" / "tiny" / "v1" / "steps" / "training.py"
    step.chmod(0o644)
    step.write_text(step.read_text("utf-8") + "\ntotal = 0\n", "utf-8")
    code, reply = await call(jp_fetch, {"pipeline": "pipelines/tiny", "target": "kfp"})
    assert code == 422, reply
    assert "pipelines/tiny/v1" in reply["message"] and "Fix:" in reply["message"], reply
    assert str(root) not in reply["message"]
    assert not (root / "build").exists()


async def test_a_malformed_resource_tag_is_400(jp_fetch: Any, root: Path) -> None:
    cells = [*TINY_CELLS]
    source, _tags = cells[3]
    cells[3] = (source, ["training", "limit:gpu:two"])
    notebook = write_notebook(root / "notebooks" / "gpu.ipynb", cells)
    export_notebook(notebook, out=root / "pipelines")
    before = digests(root)
    for target in ("kfp", "airflow"):
        code, reply = await call(jp_fetch, {"pipeline": "pipelines/gpu", "target": target})
        assert code == 400, (target, reply)
        assert "limit:gpu:two" in reply["message"] and "Fix:" in reply["message"], reply
        assert str(root) not in reply["message"]
    assert digests(root) == before


async def test_a_build_folder_linking_out_of_the_root_is_refused(
    jp_fetch: Any, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-build"
    outside.mkdir()
    (root / "build").symlink_to(outside)
    code, reply = await call(jp_fetch, {"pipeline": "pipelines/tiny", "target": "kfp"})
    assert code == 403, reply
    assert reply["message"].startswith("build/tiny-v1-kfp would be written outside"), reply
    assert str(outside) not in reply["message"]
    assert list(outside.iterdir()) == []


# --- compiling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["kfp", "airflow"])
async def test_compile_writes_what_the_cli_writes(jp_fetch: Any, root: Path, target: str) -> None:
    version = root / "pipelines" / "tiny" / "v1"
    sealed = digests(version)
    # The command line, in the root, is the reference.
    cli = run_cli("compile", "pipelines/tiny", "--target", target, cwd=root)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    out = root / "build" / f"tiny-v1-{target}"
    expected = digests(out)
    assert EXPECTED[target] <= set(expected), expected
    shutil.rmtree(root / "build")

    code, reply = await call(jp_fetch, {"pipeline": "pipelines/tiny", "target": target})
    assert code == 200, reply
    assert reply["target"] == target
    assert reply["out"] == f"build/tiny-v1-{target}"
    assert (reply["pipeline"], reply["version"]) == ("tiny", 1)
    assert reply["version_dir"] == "pipelines/tiny/v1"
    assert reply["files"] == sorted(expected)
    assert all(str(root) not in line for line in reply["next_steps"]), reply
    assert digests(out) == expected  # byte for byte what `nb2prod compile` wrote
    assert digests(version) == sealed  # the version folder is never touched

    # A pinned version is the same version; compiling again rewrites the same bytes.
    code, again = await call(jp_fetch, {"pipeline": "pipelines/tiny/v1", "target": target})
    assert code == 200 and again == reply
    assert digests(out) == expected


async def test_concurrent_compiles_of_one_version_both_succeed(jp_fetch: Any, root: Path) -> None:
    body = {"pipeline": "pipelines/tiny", "target": "kfp"}
    (code1, first), (code2, second) = await asyncio.gather(
        call(jp_fetch, body), call(jp_fetch, body)
    )
    assert (code1, code2) == (200, 200), (first, second)
    assert first == second
    out = root / first["out"]
    assert sorted(digests(out)) == first["files"]
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no leftovers
