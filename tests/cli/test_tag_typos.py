"""A mistyped tag is reported once, as the root cause, without a trail of follow-on errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, run_cli, write_notebook


def _breast_cancer_with_typos(tmp_path: Path) -> Path:
    """The example notebook with `parameters` -> `parameter`, `preprocessing` -> `Preprocessing`."""
    nb = json.loads((REPO / "notebooks" / "breast_cancer.ipynb").read_text("utf-8"))
    renames = {"parameters": "parameter", "preprocessing": "Preprocessing"}
    for cell in nb["cells"]:
        tags = cell["metadata"].get("tags", [])
        cell["metadata"]["tags"] = [renames.get(t, t) for t in tags]
    path = tmp_path / "breast_cancer.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_two_typos_give_two_problems_with_the_right_fixes(tmp_path: Path) -> None:
    nb = _breast_cancer_with_typos(tmp_path)
    r = run_cli("inspect", nb, "--json", cwd=tmp_path)
    assert r.returncode == 2
    problems = json.loads(r.stdout)["problems"]
    assert [(p["code"], p["cell"]["index"], p["fix"]) for p in problems] == [
        ("unknown-tag", 2, "use `parameters`."),
        ("unknown-tag", 4, "use `preprocessing`."),
    ]
    assert "(tags are lower-case)" in problems[1]["message"]
    exported = run_cli("export", nb, cwd=tmp_path)
    assert exported.returncode == 2
    assert "2 problems; nothing was written." in exported.stderr
    assert "outside every step" not in exported.stderr


def test_genuine_problems_elsewhere_are_still_reported(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("rate = 0.5", ["parameter"]),
            ("data = [1, 2] * 3", ["preprocesing"]),
            ("scaled = [d * rate for d in data]", []),
            ("model = sum(scaled) + missing", ["training"]),
        ],
    )
    r = run_cli("inspect", nb, "--json", cwd=tmp_path)
    codes = [
        (p["code"], p["cell"]["index"], p["variable"]) for p in json.loads(r.stdout)["problems"]
    ]
    # `scaled` comes from a cell whose step tag was mistyped: a follow-on, not reported.
    # `missing` is defined nowhere: a mistake of its own, still reported.
    assert codes == [
        ("unknown-tag", 0, None),
        ("unknown-tag", 1, None),
        ("undefined-name", 3, "missing"),
    ]
