"""Cell ids: missing or duplicated ids give the same version every time, and no warnings.

nbformat replaces a missing or repeated id with a random one (and warns), which made every
export of an unchanged notebook a new version and every `check` fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nb2prod.plan.planner import inspect_notebook

from conftest import notebook_json, run_cli

CELLS = [
    ("import statistics", ["setup"]),
    ("factor = 3", ["parameters"]),
    ("data = [1, 2, 3]", ["preprocessing"]),
    ("model = statistics.mean(data) * factor", ["training"]),
    ("score = model / 2", ["evaluation", "metrics"]),
]


def _without_ids(minor: int) -> dict[str, Any]:
    nb = notebook_json(CELLS)
    nb["nbformat_minor"] = minor
    for cell in nb["cells"]:
        del cell["id"]
    return nb


def _duplicated_ids() -> dict[str, Any]:
    nb = notebook_json(CELLS)
    for cell in nb["cells"]:
        cell["id"] = "same"
    return nb


NOTEBOOKS = {
    "missing-4.4": lambda: _without_ids(4),
    "missing-4.5": lambda: _without_ids(5),
    "duplicated": _duplicated_ids,
}


@pytest.mark.parametrize("kind", sorted(NOTEBOOKS))
def test_unchanged_notebook_exports_once_and_checks_clean(tmp_path: Path, kind: str) -> None:
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps(NOTEBOOKS[kind]()), encoding="utf-8")
    first = run_cli("export", nb, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Exported nb v1" in first.stdout
    second = run_cli("export", nb, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Up to date: nb v1" in second.stdout
    check = run_cli("check", nb, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "up to date with nb v1" in check.stdout
    for result in (first, second, check):
        assert "Warning" not in result.stderr and "warning" not in result.stderr, result.stderr
        assert "CellId" not in result.stderr and "MissingIDField" not in result.stderr
    assert not (tmp_path / "pipelines" / "nb" / "v2").exists()


def test_ids_are_kept_when_usable_and_none_otherwise(tmp_path: Path) -> None:
    nb = notebook_json(CELLS)
    nb["cells"][2]["id"] = nb["cells"][1]["id"]  # cell 3 repeats cell 2's id
    del nb["cells"][4]["id"]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    ids = [c.id for c in inspect_notebook(path).notebook.cells]
    # The first holder of an id keeps it; a repeat or a missing id names the cell by position.
    assert ids == ["c0", "c1", None, "c3", None]
    assert ids == [c.id for c in inspect_notebook(path).notebook.cells]


def test_the_notebook_passed_in_is_not_modified(tmp_path: Path) -> None:
    from nb2prod.plan.planner import inspect_notebook_json

    raw = _without_ids(5)
    before = json.dumps(raw, sort_keys=True)
    inspect_notebook_json(raw, tmp_path / "nb.ipynb")
    assert json.dumps(raw, sort_keys=True) == before
