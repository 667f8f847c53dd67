"""What `inspect`, `export` and `check` say about files that are not usable notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import notebook_json, run_cli, write_notebook

CELLS = [("x = 1", ["preprocessing"]), ("y = x + 1", ["training"])]


@pytest.mark.parametrize("command", ["inspect", "export", "check"])
def test_a_generated_step_module_names_its_notebook(tmp_path: Path, command: str) -> None:
    nb = write_notebook(tmp_path / "notebooks" / "churn.ipynb", CELLS)
    assert run_cli("export", nb, cwd=tmp_path).returncode == 0
    module = Path("pipelines", "churn", "v1", "steps", "training.py")
    r = run_cli(command, module, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "not valid JSON" not in r.stderr and "re-save it from Jupyter" not in r.stderr
    assert f"{module}: is a step module of pipeline `churn` v1" in r.stderr
    assert "it is not a notebook" in r.stderr
    assert "It was exported from notebooks/churn.ipynb." in r.stderr
    assert "Fix: pass the notebook instead: notebooks/churn.ipynb" in r.stderr


def test_other_files_of_a_version_name_their_notebook_too(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "churn.ipynb", CELLS)
    assert run_cli("export", nb, cwd=tmp_path).returncode == 0
    r = run_cli("inspect", "pipelines/churn/v1/config.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "is a file of pipeline `churn` v1" in r.stderr and "churn.ipynb" in r.stderr


@pytest.mark.parametrize(
    ("name", "content", "fix"),
    [
        ("script.py", "x = 1\n", "`jupytext --to notebook script.py`"),
        ("data.csv", "a,b\n1,2\n", "pass a Jupyter .ipynb file."),
        ("blob.bin", "\udcff", "pass a Jupyter .ipynb file."),
    ],
)
def test_a_file_that_is_not_a_notebook_says_so(
    tmp_path: Path, name: str, content: str, fix: str
) -> None:
    (tmp_path / name).write_bytes(content.encode("utf-8", "surrogateescape"))
    r = run_cli("inspect", name, cwd=tmp_path)
    assert r.returncode == 2
    assert f"{name}: is not a Jupyter notebook (.ipynb). Fix: " in r.stderr
    assert fix in r.stderr
    assert "not valid JSON" not in r.stderr


def test_a_broken_ipynb_still_gets_the_json_message(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text('{"cells": [', encoding="utf-8")
    r = run_cli("inspect", "nb.ipynb", cwd=tmp_path)
    assert r.returncode == 2 and "ends early (truncated)" in r.stderr


@pytest.mark.parametrize("value", ["4", 4.0, "four", None])
def test_nbformat_must_be_the_integer_4(tmp_path: Path, value: object) -> None:
    raw = notebook_json(CELLS)
    raw["nbformat"] = value
    (tmp_path / "nb.ipynb").write_text(json.dumps(raw), encoding="utf-8")
    r = run_cli("inspect", "nb.ipynb", cwd=tmp_path)
    assert r.returncode == 2
    shown = json.dumps(value)
    assert f'nb.ipynb: has "nbformat": {shown}; the format number must be the integer 4.' in (
        r.stderr
    )
    assert "reads format 4" not in r.stderr
    assert 'Fix: set "nbformat": 4' in r.stderr
