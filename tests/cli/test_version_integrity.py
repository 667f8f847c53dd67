"""Exported versions are checked before they run (issue 9, items 4, 10 and 27).

- Item 4: every file's SHA-256 is recorded in pipeline.yaml (which seals itself with its last
  line); a version edited by hand is refused by `run` (exit 2, naming the file and the fix) and
  reported as edited by `check`, not blamed on the notebook.
- Item 10: every field of pipeline.yaml is validated before anything runs, even when a hostile
  author made the hashes match: modules stay inside the version folder, names follow the grammar.
- Item 27: `run`, `versions` and `diff` accept a bare pipeline name, and a notebook path gets the
  command to type instead.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tornado.httpclient import HTTPClientError

from nb2prod.cli import main
from nb2prod.errors import Nb2prodError
from nb2prod.export.codegen import MANIFEST, _yaml, content_sha256, seal
from nb2prod.export.writer import export_notebook, read_files
from nb2prod.pipeline import load_pipeline

from conftest import TINY_CELLS, run_cli, write_notebook


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with notebooks/tiny.ipynb exported to pipelines/tiny/v1; the cwd is its root."""
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NB2PROD_HOME", str(tmp_path / "home"))
    assert export_notebook("notebooks/tiny.ipynb").created

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the run started: the version should have been refused")

    # `run` imports the runner when it is called: a refusal must come before that call.
    monkeypatch.setattr("nb2prod.run.runner.run_pipeline", started)
    return tmp_path


V1 = Path("pipelines/tiny/v1")


def cli(*args: str | Path) -> Any:
    """`nb2prod ARGS` through click's runner, in this process (no kernel starts before a
    refusal)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_refused(result: Any, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Fix:" in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    assert not (Path("home") / "runs").exists() or not any((Path("home") / "runs").iterdir())


def writable(path: Path) -> Path:
    path.chmod(0o644)  # as a user would before editing (root could write anyway)
    return path


def rewrite_manifest(vdir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change pipeline.yaml as a hostile author would: hashes and seal made to match again."""
    data = yaml.safe_load((vdir / MANIFEST).read_text())
    change(data)
    files = {p: b for p, b in read_files(vdir).items() if p != MANIFEST}
    if "files" in data:
        data["files"] = {p: content_sha256(b) for p, b in sorted(files.items())}
    text = _yaml(data)
    if data.get("schema_version") != 1:
        text = seal(text)
    writable(vdir / MANIFEST).write_text(text)


# --- item 4: hashes, read-only files, hand edits --------------------------------------------------
def test_every_file_is_hashed_sealed_and_read_only(project: Path) -> None:
    files = read_files(V1)
    manifest = yaml.safe_load(files[MANIFEST])
    assert manifest["schema_version"] == 2
    assert manifest["files"] == {
        p: content_sha256(b) for p, b in sorted(files.items()) if p != MANIFEST
    }
    body, last = files[MANIFEST].decode().rstrip("\n").rsplit("\n", 1)
    assert last == f"# sha256 of the lines above: {content_sha256((body + chr(10)).encode())}"
    for path in [V1 / p for p in files]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
    assert load_pipeline(Path("pipelines/tiny")).verified


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        (lambda v: writable(v / "config.yaml").write_text("n: 30\nfactor: 2.0\n"), "config.yaml"),
        (
            lambda v: writable(v / "steps" / "training.py").write_text("total = 0\n"),
            "steps/training.py differs from what nb2prod wrote",
        ),
        (lambda v: (v / "README.md").unlink(), "README.md is missing"),
        (lambda v: (v / "steps" / "extra.py").write_text("x = 1\n"), "steps/extra.py was added"),
        (
            lambda v: writable(v / MANIFEST).write_text(
                (v / MANIFEST).read_text().replace("- training", "- training\n")
            ),
            "pipeline.yaml differs",
        ),
        (
            lambda v: writable(v / MANIFEST).write_text(
                (v / MANIFEST).read_text().rsplit("# sha256", 1)[0]
            ),
            "pipeline.yaml differs",
        ),
    ],
    ids=["config", "step-module", "missing", "added", "manifest", "seal-removed"],
)
def test_run_refuses_a_version_edited_by_hand(
    project: Path, edit: Callable[[Path], Any], shown: str
) -> None:
    edit(V1)
    assert_refused(
        cli("run", "pipelines/tiny", "--no-track"),
        f"{V1} was edited by hand: ",
        shown,
        "export again",
        "copy the change back into the notebook",
    )


def test_run_refuses_an_edited_version_in_a_subprocess(project: Path) -> None:
    """The real command line: exit 2 and one paragraph, nothing run."""
    writable(project / V1 / "config.yaml").write_text("n: 30\n")
    r = run_cli("run", "pipelines/tiny/v1", "--no-track", cwd=project)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith(f"nb2prod: {V1} was edited by hand: config.yaml differs")
    assert "Fix: export again (`nb2prod export notebooks/tiny.ipynb` writes the next" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert not (project / "home" / "runs").exists() or not any((project / "home/runs").iterdir())


def test_tool_litter_is_not_an_edit(project: Path) -> None:
    (V1 / ".ipynb_checkpoints").mkdir()
    (V1 / ".ipynb_checkpoints" / "README-checkpoint.md").write_text("old copy")
    (V1 / "steps" / "__pycache__").mkdir()
    (V1 / "steps" / "__pycache__" / "training.cpython-311.pyc").write_bytes(b"\0")
    assert load_pipeline(V1).verified
    assert cli("check", "notebooks/tiny.ipynb").exit_code == 0


def test_crlf_line_endings_are_not_an_edit(project: Path) -> None:
    """A Windows checkout with git's autocrlf rewrites line endings, nothing else."""
    for rel in read_files(V1):
        path = writable(V1 / rel)
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_pipeline(V1).verified


def test_a_link_is_not_what_nb2prod_wrote(project: Path, tmp_path: Path) -> None:
    module = V1 / "steps" / "training.py"
    copy = tmp_path / "elsewhere.py"
    copy.write_bytes(module.read_bytes())
    module.unlink()
    module.symlink_to(copy)
    with pytest.raises(Nb2prodError, match="steps/training.py is a link"):
        load_pipeline(V1)


def test_check_reports_an_edited_version_not_a_changed_notebook(project: Path) -> None:
    writable(V1 / "steps" / "training.py").write_text("total = 0\n")
    r = cli("check", "notebooks/tiny.ipynb")
    assert r.exit_code == 1
    assert (
        "tiny v1 was edited by hand: steps/training.py differs from what nb2prod wrote" in r.output
    )
    assert "This is not a change to the notebook" in r.output
    assert "changed since" not in r.output
    # The fix works: export writes a clean next version, which runs checks and all.
    r = cli("export", "notebooks/tiny.ipynb")
    assert r.exit_code == 0 and "Exported tiny v2" in r.output
    assert load_pipeline(Path("pipelines/tiny")).version == 2
    assert "EDITED BY HAND: steps/training.py differs" in cli("versions", "tiny").output


def test_unchanged_notebook_is_still_up_to_date(project: Path) -> None:
    r = cli("export", "notebooks/tiny.ipynb")
    assert r.exit_code == 0 and "Up to date: tiny v1" in r.output
    assert cli("check", "notebooks/tiny.ipynb").exit_code == 0


def test_versions_exported_before_hashes_are_accepted(project: Path) -> None:
    """schema_version 1 had no `files` and no seal: such a version cannot be checked, and runs."""

    def legacy(data: dict[str, Any]) -> None:
        data["schema_version"] = 1
        del data["files"]

    rewrite_manifest(V1, legacy)
    writable(V1 / "config.yaml").write_text("n: 3\nfactor: 2.0\ndelay: 0.0\nflags: [1]\nlabel: y\n")
    spec = load_pipeline(V1)
    assert not spec.verified and spec.defaults["label"] == "y"
    rows = json.loads(cli("versions", "tiny", "--json").output)
    assert rows[0]["edited"] is None


# --- item 10: hostile manifests, hashes made to match -------------------------------------------
def _step(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["steps"] if s["name"] == name)


HOSTILE: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "module-outside",
        lambda d: _step(d, "training").update(module="../../../evil.py"),
        "`steps.training.module` is '../../../evil.py'",
    ),
    (
        "module-of-another-step",
        lambda d: _step(d, "training").update(module="steps/evaluation.py"),
        "`steps.training.module`",
    ),
    (
        "name-escapes",
        lambda d: _step(d, "training").update(name="../../x"),
        "`steps[1].name` is '../../x', not a step name",
    ),
    (
        "output-path",
        lambda d: _step(d, "preprocessing").update(outputs=["../../data"]),
        "`steps.preprocessing.outputs` holds '../../data'",
    ),
    (
        "input-from-nowhere",
        lambda d: _step(d, "training")["inputs"][0].update({"from": "nowhere"}),
        "`steps.training.inputs` reads `data` from 'nowhere'",
    ),
    (
        "unknown-parameter",
        lambda d: _step(d, "training").update(parameters=["os"]),
        "`steps.training.parameters` holds 'os', not a parameter",
    ),
    (
        "depends-on-later-step",
        lambda d: _step(d, "preprocessing").update(depends_on=["evaluation"]),
        "`steps.preprocessing.depends_on` names 'evaluation', which does not run before it",
    ),
    (
        "order-not-a-permutation",
        lambda d: d["dag"].update(order=["preprocessing", "preprocessing", "evaluation"]),
        "`dag.order`",
    ),
    ("wrong-version", lambda d: d.update(version=7), "`version` is 7, but the folder is v1"),
    ("wrong-name", lambda d: d.update(name="other"), "`name` is 'other', but the folder is tiny"),
    ("steps-not-a-list", lambda d: d.update(steps={"a": 1}), "`steps` is {'a': 1}, not a list"),
    ("bool-version", lambda d: d.update(version=True), "`version` is True, not a whole number"),
    (
        "engine-not-a-mapping",
        lambda d: _step(d, "training").update(engine=["cache:disabled"]),
        "`steps.training.engine`",
    ),
    (
        "data-not-a-list",
        lambda d: _step(d, "training").update(data="data/train.csv"),
        "`steps.training.data` is 'data/train.csv', not a list",
    ),
    (
        "data-empty-path",
        lambda d: _step(d, "training").update(data=[{"path": "", "cell": 1}]),
        "`steps.training.data[0].path` is '', not a file path",
    ),
    (
        "data-unknown-parameter",
        lambda d: _step(d, "training").update(
            data=[{"path": "x.csv", "cell": 1, "parameter": "os"}]
        ),
        "`steps.training.data[0].parameter` is 'os', not a parameter",
    ),
]


@pytest.mark.parametrize(("change", "shown"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_manifest_is_refused_before_anything_runs(
    project: Path, change: Callable[[dict[str, Any]], None], shown: str
) -> None:
    (project / "pipelines" / "evil.py").write_text("open('/tmp/pwned-by-nb2prod', 'w')\n")
    rewrite_manifest(V1, change)
    assert_refused(cli("run", "pipelines/tiny", "--no-track"), f"{V1 / MANIFEST}: {shown}")
    assert not Path("/tmp/pwned-by-nb2prod").exists()
    assert not (project / "x").exists() and not (project / "data").exists()


def test_newer_schema_asks_for_an_upgrade(project: Path) -> None:
    rewrite_manifest(V1, lambda d: d.update(schema_version=99))
    assert_refused(cli("run", "pipelines/tiny", "--no-track"), "newer nb2prod", "upgrade nb2prod")


def test_legacy_version_is_still_validated(project: Path, tmp_path: Path) -> None:
    """No hashes to check (schema 1), but a module that links outside is still refused."""

    def legacy(data: dict[str, Any]) -> None:
        data["schema_version"] = 1
        del data["files"]

    rewrite_manifest(V1, legacy)
    outside = tmp_path / "outside.py"
    outside.write_text("print('outside')\n")
    (V1 / "steps" / "training.py").unlink()
    (V1 / "steps" / "training.py").symlink_to(outside)
    assert_refused(cli("run", "pipelines/tiny", "--no-track"), "`steps.training.module`")


def test_engine_settings_are_read_back(project: Path) -> None:
    rewrite_manifest(V1, lambda d: _step(d, "training").update(engine={"cache": "disabled"}))
    spec = load_pipeline(V1)
    assert spec.step("training").engine == {"cache": "disabled"}
    assert not spec.step("training").cache and spec.step("evaluation").cache


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"nb2prod": True}}}


@pytest.fixture(scope="module", autouse=True)
def stop_workers() -> Iterator[None]:
    yield
    from nb2prod.server import work

    work.shutdown()


async def test_rest_api_refuses_hostile_and_edited_versions(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    root = Path(jp_root_dir)
    write_notebook(root / "notebooks" / "tiny.ipynb", TINY_CELLS)
    export_notebook(root / "notebooks" / "tiny.ipynb", out=root / "pipelines")
    vdir = root / "pipelines" / "tiny" / "v1"
    rewrite_manifest(vdir, lambda d: _step(d, "training").update(module="../../../evil.py"))
    for edit in ("hostile", "edited"):
        if edit == "edited":
            writable(vdir / "config.yaml").write_text("n: 30\n")
        body = json.dumps({"pipeline": "pipelines/tiny"}).encode()
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("nb2prod", "runs", method="POST", body=body)
        assert 400 <= info.value.code < 500  # refused as bad input, before any run starts
        assert info.value.response is not None
        message = json.loads(info.value.response.body)["message"]
        expected = "steps.training.module" if edit == "hostile" else "was edited by hand"
        assert expected in message, message
    assert not (root / ".nb2prod" / "runs").exists() or not any((root / ".nb2prod/runs").iterdir())


# --- item 27: one resolver for PIPELINE --------------------------------------------------------
def test_bare_name_runs(project: Path) -> None:
    r = run_cli("run", "tiny", "--no-track", cwd=project, env={"CI": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(next((project / "home" / "runs").glob("*/run.json")).read_text())
    assert record["status"] == "succeeded" and record["version_dir"] == "pipelines/tiny/v1"


def test_bare_name_for_versions_and_diff(project: Path) -> None:
    assert cli("versions", "tiny").output.startswith("v1 ")
    assert cli("versions", "tiny/v1").output.startswith("v1 ")
    r = cli("diff", "tiny", "v1", "v1")
    assert r.exit_code == 0 and "(identical)" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "notebooks/tiny.ipynb"],
            "notebooks/tiny.ipynb is a notebook; it was exported as pipelines/tiny. "
            "Fix: run `nb2prod run pipelines/tiny`.",
        ),
        (
            ["versions", "notebooks/tiny.ipynb"],
            "Fix: run `nb2prod versions pipelines/tiny`.",
        ),
        (
            ["diff", "notebooks/tiny.ipynb", "v1", "v2"],
            "Fix: run `nb2prod diff pipelines/tiny v1 v2`.",
        ),
        (
            ["run", "notebooks/other.ipynb"],
            "notebooks/other.ipynb: is a notebook that has not been exported, so there is no "
            "exported pipeline to use. Fix: export it first: `nb2prod export "
            "notebooks/other.ipynb`, then `nb2prod run pipelines/other`.",
        ),
        (
            ["run", "pipelines/tiny/v1/steps/training.py"],
            "is a file of the exported version pipelines/tiny/v1. "
            "Fix: run `nb2prod run pipelines/tiny/v1`.",
        ),
        (["run", "nothing"], "nothing: no exported pipeline here. Pipelines here: tiny."),
        (["run", "tiny/v9"], "pipelines/tiny/v9: no such pipeline version (there are: v1)."),
    ],
    ids=[
        "run-notebook",
        "versions-notebook",
        "diff-notebook",
        "not-exported",
        "module",
        "unknown",
        "no-such-version",
    ],
)
def test_what_to_type_instead(project: Path, args: list[str], message: str) -> None:
    write_notebook(project / "notebooks" / "other.ipynb", TINY_CELLS)
    r = cli(*args, *(["--no-track"] if args[0] == "run" else []))
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output


def test_bare_name_does_not_reach_outside_the_server(project: Path) -> None:
    """Absolute paths (what the REST API passes) are never looked up under ./pipelines."""
    with pytest.raises(Nb2prodError, match="no exported pipeline"):
        load_pipeline(project / "elsewhere" / "tiny")
    assert os.path.isdir("pipelines/tiny")
