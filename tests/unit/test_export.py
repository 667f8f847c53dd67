"""Export: layout, versions, determinism, atomicity, concurrency and injection safety."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
import yaml

from nb2prod.errors import Nb2prodError, PlanError
from nb2prod.export.writer import check_notebook, export_notebook

from conftest import EXAMPLES, tree, write_notebook

BASIC = [
    ("import math", ["setup"]),
    ("rate = 0.5  # learning rate\nlabel = 'a'", ["parameters"]),
    ("data = [1.0, 2.0, 3.0]", ["preprocessing"]),
    ("model = sum(data) * rate", ["training"]),
    ("score = math.sqrt(model)", ["evaluation"]),
    ("score", ["metrics"]),
]


def test_export_writes_the_documented_layout(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "notebooks" / "My Model.ipynb", BASIC)
    result = export_notebook(nb, out=tmp_path / "pipelines")
    assert result.created and result.version == 1 and result.name == "my_model"
    files = set(tree(tmp_path / "pipelines" / "my_model" / "v1"))
    assert files == {
        "pipeline.yaml",
        "config.yaml",
        "README.md",
        "requirements.txt",
        "steps/preprocessing.py",
        "steps/training.py",
        "steps/evaluation.py",
    }
    manifest = yaml.safe_load((result.path / "pipeline.yaml").read_text())
    assert manifest["source"]["notebook"] == "notebooks/My Model.ipynb"  # relative, never absolute
    assert manifest["dag"]["order"] == ["preprocessing", "training", "evaluation"]
    assert yaml.safe_load((result.path / "config.yaml").read_text()) == {"rate": 0.5, "label": "a"}
    for text in tree(result.path).values():
        assert str(tmp_path).encode() not in text


def test_step_module_structure(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    result = export_notebook(nb, out=tmp_path / "pipelines")
    code = (result.path / "steps" / "training.py").read_text()
    params_at = code.index('# %% tags=["parameters"]')
    load_at = code.index('data = nb2prod.runtime.load("data", step="preprocessing")')
    user_at = code.index("model = sum(data) * rate")
    save_at = code.index('nb2prod.runtime.save_outputs({"model": model})')
    models_at = code.index('nb2prod.runtime.save_models(globals(), ["model"])')
    assert params_at < load_at < user_at < save_at < models_at  # a saved model is then linked
    assert "rate = ...  # learning rate" in code
    assert "label" not in code  # only the parameters this step uses
    assert "0.5" not in code  # values live in config.yaml only
    assert "# %% cell 4 (id c3)" in code  # traceable to its notebook cell


def test_reexport_unchanged_creates_nothing(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    assert export_notebook(nb, out=tmp_path / "p").created
    before = tree(tmp_path / "p")
    again = export_notebook(nb, out=tmp_path / "p")
    assert not again.created and again.version == 1
    assert tree(tmp_path / "p") == before


def test_editor_litter_in_a_version_does_not_make_a_new_version(tmp_path: Path) -> None:
    """Opening README.md in JupyterLab writes .ipynb_checkpoints/ into the version folder."""
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    v1 = export_notebook(nb, out=tmp_path / "p").path
    (v1 / ".ipynb_checkpoints").mkdir()
    (v1 / ".ipynb_checkpoints" / "README-checkpoint.md").write_text("old copy")
    (v1 / "steps" / "__pycache__").mkdir()
    (v1 / "steps" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    again = export_notebook(nb, out=tmp_path / "p")
    assert not again.created and again.version == 1
    assert check_notebook(nb, out=tmp_path / "p").up_to_date


def test_outputs_markdown_and_execution_counts_do_not_make_a_new_version(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [*BASIC, "#md # Notes"])
    export_notebook(nb, out=tmp_path / "p")
    data = json.loads(nb.read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["execution_count"] = 7
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
        else:
            cell["source"] = "# Notes, rewritten"
    nb.write_text(json.dumps(data))
    result = export_notebook(nb, out=tmp_path / "p")
    assert not result.created and result.version == 1
    assert check_notebook(nb, out=tmp_path / "p").up_to_date


def test_change_creates_next_version_and_keeps_earlier_ones(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    export_notebook(nb, out=tmp_path / "p")
    v1 = tree(tmp_path / "p" / "nb" / "v1")
    changed = list(BASIC)
    changed[1] = ("rate = 0.25  # learning rate\nlabel = 'a'", ["parameters"])
    write_notebook(nb, changed)
    result = export_notebook(nb, out=tmp_path / "p")
    assert result.created and result.version == 2
    assert tree(tmp_path / "p" / "nb" / "v1") == v1
    assert yaml.safe_load((result.path / "config.yaml").read_text())["rate"] == 0.25
    write_notebook(nb, BASIC)  # back to the original: still a new version, never a rewrite
    assert export_notebook(nb, out=tmp_path / "p").version == 3
    assert tree(tmp_path / "p" / "nb" / "v1") == v1


def test_output_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for example in EXAMPLES:
        a = export_notebook(example, out=tmp_path / "a" / "pipelines")
        b = export_notebook(example, out=tmp_path / "b" / "pipelines")
        assert tree(a.path) == tree(b.path)


def test_created_at_is_the_only_time_dependent_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    a = tree(export_notebook(nb, out=tmp_path / "a" / "p").path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "99999")
    b = tree(export_notebook(nb, out=tmp_path / "b" / "p").path)
    diff = [p for p in a if a[p] != b[p]]
    assert diff == ["pipeline.yaml"]
    lines_a, lines_b = a["pipeline.yaml"].splitlines(), b["pipeline.yaml"].splitlines()
    assert [x for x, y in zip(lines_a, lines_b, strict=True) if x != y][0].startswith(
        b"created_at:"
    )


def test_errors_write_nothing(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [("x = y", ["training"])])
    with pytest.raises(PlanError) as info:
        export_notebook(nb, out=tmp_path / "p")
    assert "cell 1 (id c0)" in info.value.message and "`y`" in info.value.message
    assert not (tmp_path / "p").exists()


def test_unsafe_pipeline_name_is_refused(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    for bad in ["../escape", "a b", "UPPER", "", "x" * 100, "class"]:
        with pytest.raises(Nb2prodError):
            export_notebook(nb, name=bad, out=tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_pipeline_from_another_notebook_is_not_overwritten(tmp_path: Path) -> None:
    a = write_notebook(tmp_path / "x" / "nb.ipynb", BASIC)
    b = write_notebook(tmp_path / "y" / "nb.ipynb", BASIC[:4])
    export_notebook(a, out=tmp_path / "p")
    with pytest.raises(Nb2prodError, match="another notebook"):
        export_notebook(b, out=tmp_path / "p")
    assert export_notebook(b, name="nb_y", out=tmp_path / "p").created


def test_stale_temp_folders_are_cleaned_and_ignored(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    stale = tmp_path / "p" / "nb" / ".tmp-123-dead"
    stale.mkdir(parents=True)
    (stale / "pipeline.yaml").write_text("half written")
    result = export_notebook(nb, out=tmp_path / "p")
    assert result.version == 1 and not stale.exists()


def _export_in_process(args: tuple[str, str]) -> tuple[int, bool]:
    nb, out = args
    r = export_notebook(nb, out=out)
    return r.version, r.created


def test_concurrent_exports_of_one_notebook(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        results = pool.map(_export_in_process, [(str(nb), str(tmp_path / "p"))] * 12)
    assert sorted(results) == [(1, False)] * 11 + [(1, True)]
    assert [p.name for p in (tmp_path / "p" / "nb").iterdir() if not p.name.startswith(".")] == [
        "v1"
    ]


def test_concurrent_exports_of_different_contents(tmp_path: Path) -> None:
    out = tmp_path / "p"
    jobs = []
    for i in range(6):
        cells = list(BASIC)
        cells[1] = (f"rate = {i}.5\nlabel = 'a'", ["parameters"])
        nb = write_notebook(tmp_path / f"copy{i}" / "nb.ipynb", cells)
        jobs.append((str(nb), str(out)))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        results = pool.map(_export_named, jobs)
    versions = sorted(v for v, _ in results)
    assert versions == list(range(1, 7))
    for v in versions:
        vdir = out / "shared" / f"v{v}"
        config = yaml.safe_load((vdir / "config.yaml").read_text())
        manifest = yaml.safe_load((vdir / "pipeline.yaml").read_text())
        # Each version is complete and self-consistent.
        assert set(tree(vdir)) >= {"pipeline.yaml", "config.yaml", "README.md", "steps/training.py"}
        assert manifest["version"] == v
        assert isinstance(config["rate"], float)


def _export_named(args: tuple[str, str]) -> tuple[int, bool]:
    """Export one variant as if it were the same notebook file edited between exports."""
    from dataclasses import replace

    from nb2prod.export.writer import export_plan
    from nb2prod.plan.notebook import read_notebook
    from nb2prod.plan.planner import build_plan

    nb, out = args
    notebook = replace(read_notebook(nb), path=Path(out).parent / "shared.ipynb")
    r = export_plan(build_plan(notebook), out)
    return r.version, r.created


TRICKY = [
    "He said \"hi\" and 'bye'",
    "line one\nline two\n",
    "key: value\n- item",
    "'''\nimport os\nos.system('echo pwned')\n'''",
    "\\n and \\x00 and tab\t",
    "null",
    "yes",
    "1e3",
    "ünïcødé ✓ \u2028 sep",
    "# not a comment",
    "{{ template }}",
    "",
]


@pytest.mark.parametrize("value", TRICKY)
def test_string_parameters_round_trip_exactly(tmp_path: Path, value: str) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            (f"text = {value!r}\nnested = {{'k': [{value!r}, 1, None, True]}}", ["parameters"]),
            ("out = (text, nested)", ["training"]),
        ],
    )
    result = export_notebook(nb, out=tmp_path / "p")
    config = yaml.safe_load((result.path / "config.yaml").read_text())
    assert config == {"text": value, "nested": {"k": [value, 1, None, True]}}
    code = (result.path / "steps" / "training.py").read_text()
    compile(code, "training.py", "exec")
    assert "pwned" not in code


def test_help_text_cannot_break_out_of_comments(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("x = 1  # help \u2028import os; os.system('x')", ["parameters"]),
            ("y = x", ["training"]),
        ],
    )
    result = export_notebook(nb, out=tmp_path / "p")
    for path, text in tree(result.path).items():
        if path.endswith(".py"):
            compile(text, path, "exec")
            assert b"\nimport os" not in text
        if path.endswith(".yaml"):
            yaml.safe_load(text)
    assert yaml.safe_load((result.path / "config.yaml").read_text()) == {"x": 1}


def test_check_reports_changes(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", BASIC)
    assert check_notebook(nb, out=tmp_path / "p").latest is None
    export_notebook(nb, out=tmp_path / "p")
    assert check_notebook(nb, out=tmp_path / "p").up_to_date
    changed = list(BASIC)
    changed[3] = ("model = sum(data) * rate * 2", ["training"])
    write_notebook(nb, changed)
    result = check_notebook(nb, out=tmp_path / "p")
    assert not result.up_to_date
    assert result.changed_files == ("README.md", "pipeline.yaml", "steps/training.py")


def test_all_examples_export(tmp_path: Path) -> None:
    for example in EXAMPLES:
        result = export_notebook(example, out=tmp_path / "pipelines")
        assert result.created
        for path, text in tree(result.path).items():
            if path.endswith(".py"):
                compile(text, path, "exec")
    assert os.listdir(tmp_path / "pipelines")
