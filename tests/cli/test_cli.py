"""The CLI end to end, in a subprocess, exactly as users call it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLES, notebook_json, run_cli, tree, write_notebook

GOOD = [
    ("import statistics", ["setup"]),
    ("factor = 3  # scale applied to the data", ["parameters"]),
    ("data = [1, 2, 3]", ["preprocessing"]),
    ("model = statistics.mean(data) * factor", ["training"]),
    ("score = model / 2", ["evaluation"]),
    ("score", ["metrics"]),
]


def assert_clean_failure(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert "Fix:" in result.stderr


def test_help_lists_commands(tmp_path: Path) -> None:
    r = run_cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    for command in ("inspect", "export", "check", "versions", "diff"):
        assert command in r.stdout


def test_help_does_not_import_heavy_modules(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom nb2prod.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('papermill', 'mlflow', 'nbformat', 'jupytext', 'IPython', 'yaml')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_inspect_text_and_json(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", GOOD)
    r = run_cli("inspect", nb, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1. preprocessing [PREP] cell 3" in r.stdout
    assert "needs:  data (from preprocessing)" in r.stdout
    assert "preprocessing -> training" in r.stdout
    assert "Not in any step" not in r.stdout
    r = run_cli("inspect", nb, "--json", cwd=tmp_path)
    plan = json.loads(r.stdout)
    assert plan["schema_version"] == 1
    assert [s["name"] for s in plan["steps"]] == ["preprocessing", "training", "evaluation"]
    training = plan["steps"][1]
    assert training["inputs"] == [{"name": "data", "from": "preprocessing"}]
    assert training["outputs"] == ["model"] and training["parameters"] == ["factor"]
    assert plan["parameters"][0] == {
        "name": "factor",
        "value": 3,
        "type": "int",
        "help": "scale applied to the data",
        "cell": 1,
        "used_by": ["training"],
    }
    assert plan["dag"]["edges"] == [["preprocessing", "training"], ["training", "evaluation"]]
    assert plan["cells"][3]["step"] == "training" and plan["cells"][3]["defines"] == ["model"]
    assert plan["problems"] == []


def test_inspect_with_problems_exits_2_and_still_shows_plan(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [("x = missing", ["training"])])
    r = run_cli("inspect", nb, "--json", cwd=tmp_path)
    assert r.returncode == 2
    [problem] = json.loads(r.stdout)["problems"]
    assert problem["code"] == "undefined-name" and problem["variable"] == "missing"
    assert problem["cell"] == {"index": 0, "id": "c0"}


def test_export_reexport_change_versions_diff_check(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "notebooks" / "demo.ipynb", GOOD)
    r = run_cli("export", "notebooks/demo.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Exported demo v1 -> pipelines/demo/v1" in r.stdout
    r = run_cli("export", "notebooks/demo.ipynb", cwd=tmp_path)
    assert r.returncode == 0 and "Up to date: demo v1" in r.stdout
    assert run_cli("check", "notebooks/demo.ipynb", cwd=tmp_path).returncode == 0

    v1 = tree(tmp_path / "pipelines" / "demo" / "v1")
    cells = list(GOOD)
    cells[1] = ("factor = 4  # scale applied to the data", ["parameters"])
    write_notebook(nb, cells)
    r = run_cli("check", "notebooks/demo.ipynb", cwd=tmp_path)
    assert r.returncode == 1 and "changed since demo v1" in r.stderr
    r = run_cli("export", "notebooks/demo.ipynb", cwd=tmp_path)
    assert "Exported demo v2" in r.stdout
    assert tree(tmp_path / "pipelines" / "demo" / "v1") == v1
    assert run_cli("check", "notebooks/demo.ipynb", cwd=tmp_path).returncode == 0

    r = run_cli("versions", "pipelines/demo", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("v1") and "\nv2" in r.stdout
    r = run_cli("versions", "pipelines/demo", "--json", cwd=tmp_path)
    assert [v["version"] for v in json.loads(r.stdout)] == [1, 2]
    r = run_cli("diff", "pipelines/demo", "v1", "v2", cwd=tmp_path)
    assert r.returncode == 0
    assert "~ parameter factor: 3 -> 4" in r.stdout
    assert "-factor: 3\n+factor: 4" in r.stdout
    r = run_cli("diff", "pipelines/demo", "v1", "v9", cwd=tmp_path)
    assert_clean_failure(r, "no version `v9`")


def test_export_name_and_out_options(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", GOOD)
    r = run_cli("export", nb, "--name", "churn", "--out", "build/pipes", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "build" / "pipes" / "churn" / "v1" / "pipeline.yaml").is_file()
    r = run_cli("export", nb, "--name", "../evil", cwd=tmp_path)
    assert_clean_failure(r, "pipeline name `../evil`")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "pipelines").exists()


def test_check_never_exported_fails(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", GOOD)
    r = run_cli("check", nb, cwd=tmp_path)
    assert r.returncode == 1 and "never exported" in r.stderr


BAD_NOTEBOOKS: dict[str, tuple[str | dict, tuple[str, ...]]] = {
    "unknown-tag": (
        notebook_json([("x = 1", ["trainig"])]),
        ("cell 1 (id c0)", "unknown tag `trainig`", "use `training`"),
    ),
    "syntax": (notebook_json([("x = (1,", ["training"])]), ("cell 1 (id c0)", "syntax error")),
    "non-literal": (
        notebook_json([("n = len('ab')", ["parameters"]), ("y = n", ["training"])]),
        ("cell 1 (id c0)", "parameter `n`", "not a plain literal"),
    ),
    "skip-only": (
        notebook_json([("s = 1", ["skip"]), ("y = s", ["training"])]),
        ("cell 2 (id c1)", "`s`", "skip"),
    ),
    "undefined": (notebook_json([("y = nowhere", ["training"])]), ("cell 1 (id c0)", "`nowhere`")),
    "order": (
        notebook_json([("a = b", ["preprocessing"]), ("b = 1", ["training"])]),
        ("cell 1 (id c0)", "`b`", "before it is defined"),
    ),
    "conflict": (
        notebook_json([("a = 1", ["training", "evaluation"])]),
        ("cell 1 (id c0)", "more than one role"),
    ),
    "unsafe-name": (
        notebook_json([("a = 1", ["training:Bad-Name"])]),
        ("cell 1 (id c0)", "training:bad_name"),
    ),
    "no-steps": (notebook_json(["a = 1"]), ("no cell is tagged as a step",)),
    "r-kernel": (
        notebook_json(
            [("x <- 1", ["training"])],
            kernelspec={"name": "ir", "display_name": "R", "language": "R"},
            language_info={"name": "R"},
        ),
        ("R kernel",),
    ),
    "nbformat3": (
        {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []},
        ("notebook format 3", "nbconvert"),
    ),
    "malformed": ('{"cells": [}', ("not valid JSON", "line 1")),
    "truncated": (json.dumps(notebook_json(GOOD))[:120], ("truncated",)),
    "not-a-notebook": ('{"hello": "world"}', ("not a Jupyter notebook",)),
    "invalid-schema": (
        json.dumps(
            {"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        ),
        ("not a valid notebook",),
    ),
    "binary": ("\udcff", ("",)),
}


@pytest.mark.parametrize("case", sorted(BAD_NOTEBOOKS))
def test_bad_notebooks_are_refused_cleanly(tmp_path: Path, case: str) -> None:
    content, fragments = BAD_NOTEBOOKS[case]
    nb = tmp_path / "bad.ipynb"
    if case == "binary":
        nb.write_bytes(b"\xff\xfe\x00garbage")
        fragments = ("not UTF-8",)
    else:
        nb.write_text(
            content if isinstance(content, str) else json.dumps(content), encoding="utf-8"
        )
    # An existing good pipeline under the same name must survive the failed export untouched.
    write_notebook(tmp_path / "good" / "bad.ipynb", GOOD)
    assert run_cli("export", "good/bad.ipynb", "--name", "bad", cwd=tmp_path).returncode == 0
    before = tree(tmp_path / "pipelines")
    r = run_cli("export", "bad.ipynb", cwd=tmp_path)
    assert_clean_failure(r, "bad.ipynb", *fragments)
    assert tree(tmp_path / "pipelines") == before
    assert run_cli("check", "bad.ipynb", cwd=tmp_path).returncode == 2


def test_missing_file(tmp_path: Path) -> None:
    assert_clean_failure(
        run_cli("export", "nope.ipynb", cwd=tmp_path), "nope.ipynb", "no such file"
    )


def test_versions_of_unknown_pipeline(tmp_path: Path) -> None:
    assert_clean_failure(
        run_cli("versions", "pipelines/none", cwd=tmp_path), "no exported pipeline"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_export_ruff_clean(tmp_path: Path, example: Path) -> None:
    import subprocess
    import sys

    r = run_cli("export", example, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "pipelines"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
