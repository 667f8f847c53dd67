"""The version folder has one home, nb2prod.version_folder (issue 10, item 1).

Reading a version (paths, listing, the typed manifest) must not import the exporter: the runner
and the server read versions on every run, and codegen, planning and analysis cost most of an
import. The writer (codegen) and the reader must agree on every name and hash.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nb2prod import version_folder as vf
from nb2prod.errors import Nb2prodError
from nb2prod.export.writer import export_notebook, find_pipeline_name

from conftest import TINY_CELLS, write_notebook

# The lifecycle subpackages: reading a version or a run folder needs none of them.
EXPORTER = ("nb2prod.plan", "nb2prod.export", "nb2prod.run", "nb2prod.tracking")


@pytest.mark.parametrize(
    "module",
    [
        "nb2prod.version_folder",
        "nb2prod.pipeline",
        "nb2prod.run_folder",
        "nb2prod.run_index",
        "nb2prod.runtime",
    ],
)
def test_reading_a_version_never_imports_the_exporter(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = [m for m in {EXPORTER!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    # A fresh interpreter: this test process has imported the exporter already.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_writer_seals_what_the_reader_checks() -> None:
    from nb2prod.export import codegen
    from nb2prod.plan.planner import StepPlan

    # The writer takes the layout and the hashing from the reader's module: one definition.
    assert codegen.MANIFEST is vf.MANIFEST and codegen.content_sha256 is vf.content_sha256
    assert vf.content_sha256(b"a\r\nb\r\n") == vf.content_sha256(b"a\nb\n")
    sealed = codegen.seal("name: x\n").encode()
    assert vf.seal_holds(sealed)
    assert not vf.seal_holds(sealed.replace(b"x", b"y", 1))
    assert StepPlan(name="training", role="training").module == vf.step_module("training")


def test_versions_lists_complete_folders_in_number_order(tmp_path: Path) -> None:
    for name in ("v1", "v2", "v10", "v0", "v03", "latest", ".tmp-1-abc"):
        (tmp_path / name).mkdir()
        (tmp_path / name / vf.MANIFEST).write_text("name: x\n")
    (tmp_path / "v7").mkdir()  # no manifest: not a complete version
    assert vf.versions(tmp_path) == [1, 2, 10]
    assert vf.versions(tmp_path / "missing") == []
    assert vf.version_path(tmp_path, 10) == tmp_path / "v10"
    assert vf.is_version_dir(tmp_path / "v2") and not vf.is_version_dir(tmp_path / "v7")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """notebooks/tiny.ipynb exported to pipelines/tiny/v1; the cwd is the project's root."""
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    monkeypatch.chdir(tmp_path)
    assert export_notebook("notebooks/tiny.ipynb").created
    return tmp_path


V1 = Path("pipelines/tiny/v1")


def test_load_manifest_is_typed(project: Path) -> None:
    m = vf.load_manifest(V1)
    assert (m.path, m.name, m.version, m.schema_version) == (V1, "tiny", 1, vf.SCHEMA_VERSION)
    assert m.notebook == "notebooks/tiny.ipynb" and len(m.notebook_sha256) == 64
    assert m.parameters == ("n", "factor", "delay", "flags", "label")
    assert [s.name for s in m.steps] == ["preprocessing", "training", "evaluation"]
    training = m.steps[1]
    assert training.module == V1 / vf.step_module("training")
    assert training.depends_on == ("preprocessing",)
    assert ("data", "preprocessing") in training.inputs
    assert m.verified and m.created_at and m.nb2prod_version
    assert list(vf.read_defaults(m)) == list(m.parameters)


def test_an_edited_version_is_refused_with_the_files_named(project: Path) -> None:
    (V1 / vf.README).chmod(0o644)
    (V1 / vf.README).write_text("edited\n")
    assert vf.edits(V1, vf.read_manifest(V1)) == (vf.Edit("README.md", "differs"),)
    with pytest.raises(Nb2prodError, match="was edited by hand: README.md differs"):
        vf.load_manifest(V1)


def test_a_config_that_does_not_match_the_manifest_is_refused(project: Path) -> None:
    m = vf.load_manifest(V1)
    short = vf.Manifest(**{**m.__dict__, "parameters": ("n",)})
    with pytest.raises(Nb2prodError, match="are not those pipeline.yaml lists"):
        vf.read_defaults(short)


def test_a_notebook_finds_the_pipeline_exported_from_it(project: Path) -> None:
    notebook = Path("notebooks/tiny.ipynb")
    assert vf.exported_from(notebook, vf.PIPELINES) == "tiny"
    assert vf.recorded_notebook(notebook, vf.PIPELINES) == "notebooks/tiny.ipynb"
    assert vf.exported_from(Path("notebooks/other.ipynb"), vf.PIPELINES) is None
    assert find_pipeline_name(notebook, vf.PIPELINES) == "tiny"
    assert find_pipeline_name(Path("notebooks/other.ipynb"), vf.PIPELINES) == "other"


def test_old_names_still_import_from_their_modules() -> None:
    from nb2prod import catalog, pipeline
    from nb2prod.export import writer as export

    assert export.versions is vf.versions and export.VERSION_DIR is vf.VERSION_DIR
    assert export.edits is vf.edits and export.read_manifest is vf.read_manifest
    assert pipeline.StepSpec is vf.StepSpec and pipeline.PIPELINES is vf.PIPELINES
    assert catalog.CONFIG == vf.CONFIG == "config.yaml"
