"""`nb2prod compile --target kfp`: golden files, determinism, and refusals that write nothing.

A change to the generated files shows up as a reviewable diff. To accept an intended change:
``NB2PROD_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_compile_kfp.py``. The installed
kfp's version (in the Dockerfile's pin and pipeline.yaml's sdkVersion) is compared as KFP.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from compile_helpers import KALE_CELLS, export_cells, export_example, fix_environment

from nb2prod.compile import compile_version
from nb2prod.errors import Nb2prodError

from conftest import tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "compile"
KFP = metadata.version("kfp")


@pytest.fixture(autouse=True)
def _fixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_environment(monkeypatch)


def compiled(project: Path, example: str) -> tuple[Path, dict[str, str]]:
    if example == "kale":
        spec = export_cells(project, "kale", KALE_CELLS)
    else:
        spec = export_example(project, example)
    out = project / "build" / f"{spec.name}-v1-kfp"
    result = compile_version(spec, "kfp", out=out)
    assert result.out == out and result.files == tuple(sorted(p.name for p in out.iterdir()))
    return out, {rel: data.decode() for rel, data in tree(out).items()}


@pytest.mark.parametrize("example", ["breast_cancer", "wine_models", "kale"])
def test_compiled_files_match_golden(tmp_path: Path, example: str) -> None:
    _, got = compiled(tmp_path, example)
    got = {rel: text.replace(KFP, "KFP") for rel, text in got.items()}
    expected_dir = GOLDEN / example / "kfp"
    if os.environ.get("NB2PROD_UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for rel, text in got.items():
            (expected_dir / rel).write_text(text)
    expected = {rel: data.decode() for rel, data in tree(expected_dir).items()}
    assert sorted(got) == sorted(expected)
    for rel in expected:
        assert got[rel] == expected[rel], rel
    for rel, text in got.items():
        # Nothing of this machine (the project's place, the time) in what is shipped.
        assert str(tmp_path) not in text and os.getcwd() not in text, rel
        assert "2026-" not in text and "SOURCE_DATE_EPOCH" not in text, rel


def test_the_same_version_compiles_to_the_same_bytes(tmp_path: Path) -> None:
    out, first = compiled(tmp_path, "kale")
    shutil.rmtree(out)
    _, again = compiled(tmp_path, "kale")
    assert again == first
    # Kale's tags reached the compiled IR, and only the secrets' names did.
    yaml_text = first["pipeline.yaml"]
    for fact in ("secretName: db-credentials", "envVar: DB_PASSWORD", "tier: batch"):
        assert fact in yaml_text
    assert "resourceType: nvidia.com/gpu" in yaml_text and "resourceMemoryLimit: 4Gi" in yaml_text
    assert "resourceCpuLimit: 500m" in yaml_text and "image: python:3.11-slim" in yaml_text


def test_pipeline_py_is_lint_clean_and_recompiles_its_yaml(tmp_path: Path) -> None:
    out, files = compiled(tmp_path, "wine_models")
    for args in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", "--isolated"]
            + ["--line-length", "100", "pipeline.py"],
            cwd=out,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    (out / "pipeline.yaml").unlink()
    again = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=out, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert (out / "pipeline.yaml").read_text() == files["pipeline.yaml"]


def refused(tmp_path: Path, cells: list, **options: object) -> str:
    spec = export_cells(tmp_path, "bad", cells)
    with pytest.raises(Nb2prodError) as caught:
        compile_version(spec, "kfp", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "build").exists() and not Path("build", "bad-v1-kfp").exists()
    message = str(caught.value)
    assert "Fix:" in message and "\n" not in message
    return message


def test_a_memory_kfp_cannot_take_is_refused_with_its_whole_number_form(tmp_path: Path) -> None:
    cells = [("x = 1", ["parameters"]), ("y = x", ["step:load", "limit:memory:1.5Gi"])]
    message = refused(tmp_path, cells, out=tmp_path / "build" / "x")
    assert "`limit:memory:1.5Gi`" in message and "1536Mi" in message


def test_a_parameter_named_like_the_pipelines_own_is_refused(tmp_path: Path) -> None:
    cells = [("mlflow_tracking_uri = 'x'", ["parameters"]), ("y = mlflow_tracking_uri", ["step:a"])]
    message = refused(tmp_path, cells, out=tmp_path / "build" / "x")
    assert "'mlflow_tracking_uri'" in message and "rename the parameter" in message


def test_without_kfp_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kfp" else real(name, *a)
    )
    cells = [("x = 1", ["parameters"]), ("y = x", ["step:a"])]
    message = refused(tmp_path, cells, out=tmp_path / "build" / "x")
    assert "pip install 'nb2prod[kfp]'" in message


def test_an_out_inside_the_version_is_refused(tmp_path: Path) -> None:
    cells = [("x = 1", ["parameters"]), ("y = x", ["step:a"])]
    spec = export_cells(tmp_path, "ok", cells)
    before = tree(spec.path)
    with pytest.raises(Nb2prodError, match="inside the version folder"):
        compile_version(spec, "kfp", out=spec.path / "kfp")
    assert tree(spec.path) == before


def test_the_default_out_is_the_projects_build_folder_wherever_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    spec = export_cells(project, "ok", [("x = 1", ["parameters"]), ("y = x", ["step:a"])])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = compile_version(spec, "kfp")
    assert result.out == project.resolve() / "build" / "ok-v1-kfp"
    assert (result.out / "pipeline.yaml").is_file()
    assert list((tmp_path / "elsewhere").iterdir()) == []
    # Written for the project's root all the same: the commands say build/ok-v1-kfp.
    assert result.next_steps[0].startswith("python build/ok-v1-kfp/pipeline.py --local")
