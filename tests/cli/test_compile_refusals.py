"""`nb2prod compile` refuses bad input with one paragraph and exit code 2, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli, tree, write_notebook

GOOD = [("n = 3  # how many", ["parameters"]), ("total = n * 2", ["step:load"])]


def exported(project: Path, cells: list, name: str = "nb") -> Path:
    write_notebook(project / "notebooks" / f"{name}.ipynb", cells)
    r = run_cli("export", f"notebooks/{name}.ipynb", cwd=project)
    assert r.returncode == 0, r.stderr
    return project / "pipelines" / name


def assert_refused(project: Path, before: dict[str, bytes], *args: str) -> str:
    r = run_cli("compile", *args, cwd=project)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    message = r.stderr.strip()
    assert message.startswith("nb2prod: ") and "\n" not in message and "Fix:" in message, message
    assert not (project / "build").exists()  # nothing written
    assert tree(project) == before
    return message


def test_an_unknown_target_is_refused(tmp_path: Path) -> None:
    exported(tmp_path, GOOD)
    before = tree(tmp_path)
    message = assert_refused(tmp_path, before, "pipelines/nb", "--target", "argo")
    assert "'argo'" in message and "--target kfp" in message and "--target airflow" in message


@pytest.mark.parametrize("target", ["kfp", "airflow"])
def test_a_malformed_resource_is_refused_naming_the_step_and_the_fix(
    tmp_path: Path, target: str
) -> None:
    cells = [GOOD[0], ("total = n * 2", ["step:load", "limit:gpu:two"])]
    exported(tmp_path, cells)
    before = tree(tmp_path)
    message = assert_refused(tmp_path, before, "pipelines/nb", "--target", target)
    for fragment in ("step 'load'", "`limit:gpu:two`", "'gpu' is not a Kubernetes resource"):
        assert fragment in message, message
    assert "did you mean nvidia.com/gpu?" in message and "nb2prod export" in message


def test_a_bad_image_option_is_refused(tmp_path: Path) -> None:
    exported(tmp_path, GOOD)
    before = tree(tmp_path)
    message = assert_refused(
        tmp_path, before, "pipelines/nb", "--target", "kfp", "--image", "Bad Image"
    )
    assert "--image" in message and "not a container image reference" in message


def test_an_out_folder_holding_other_files_is_left_alone(tmp_path: Path) -> None:
    exported(tmp_path, GOOD)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("keep me")
    before = tree(tmp_path)
    r = run_cli("compile", "pipelines/nb", "--target", "kfp", "--out", "mine", cwd=tmp_path)
    assert r.returncode == 2 and "notes.md" in r.stderr and "Fix:" in r.stderr, r.stderr
    assert tree(tmp_path) == before
