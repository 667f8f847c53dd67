"""Every line of a cell comes back as the same code from its step module (issue 9, item 1).

Step modules are jupytext "percent" scripts, and the runner reads them back with
``jupytext.read``. There, a comment line such as ``# %% [markdown]`` starts a new cell, so the
code after it would become Markdown and never run. These tests export arbitrary cell text and
read the step module back the way the runner does.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tempfile
import tokenize
from pathlib import Path

import jupytext
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nb2prod.errors import Nb2prodError
from nb2prod.export.writer import export_notebook

from conftest import run_cli, write_notebook

# Lines jupytext treats specially in a percent script: cell markers, escaped markers of its
# other formats, commented magics, and harmless look-alikes.
SPECIAL = [
    "# %%",
    "#%%",
    "# %% [markdown]",
    "# %% [raw]",
    "# %% [md] some title",
    "# %%%",
    "#  %%  ",
    "# %% tags=['parameters']",
    "# In[ ]:",
    "# In[12]:",
    "# In[]",
    "# <codecell>",
    "# <markdowncell>",
    "# +",
    "# -",
    "# # +",
    "## +",
    "# # # +",
    '# + {"tags": []}',
    "# ---",
    "# %time",
    "# %%time",
    "# !ls",
    "# cd somewhere",
    "# what?",
]
# str.splitlines() line breaks that Python does not treat as line breaks.
BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
CODE = ["x = 1", "x += 1", "y = [x, 2]", "assert x >= 1", "z = {'a': x}  # %% not a marker"]
MAGICS = ["%matplotlib inline", "!echo hi", "%env A=1"]

comment_text = st.text(
    st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)), max_size=12
)
comment = st.one_of(
    st.sampled_from(SPECIAL),
    st.tuples(st.sampled_from(SPECIAL), comment_text).map("".join),
    comment_text.map(lambda t: "# " + t),
)
string_text = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(
        st.characters(blacklist_characters="\n\r\x00\\\"'" + BREAKS, blacklist_categories=("Cs",)),
        max_size=12,
    ),
)
unit = st.one_of(
    st.sampled_from(CODE),
    st.sampled_from(MAGICS),
    comment,
    comment.map(lambda c: f"if x:\n    {c}\n    x = 2"),  # indented
    comment.map(lambda c: f"x = 3  {c}"),  # trailing
    st.lists(string_text, min_size=1, max_size=3).map(
        lambda lines: 's = """\n' + "\n".join(lines) + '\n"""'
    ),
)


def python_of(code: str) -> str:
    """The cell as the kernel runs it: IPython turns magics into Python first."""
    from IPython.core.inputtransformer2 import TransformerManager

    return str(TransformerManager().transform_cell(code))


def comment_columns(code: str) -> dict[int, int]:
    return {
        t.start[0]: t.start[1]
        for t in tokenize.generate_tokens(io.StringIO(python_of(code)).readline)
        if t.type == tokenize.COMMENT
    }


def documented_change(user: str, back: str, comment_at: int | None) -> bool:
    """The transformations docs/exported-layout.md lists for comments: a comment that jupytext
    would read as a cell marker gets a second `#`; a line-break-like character in a comment is
    written as its escape."""
    if comment_at is None:
        return False
    escaped = user[:comment_at] + re.sub(
        f"[{BREAKS}]", lambda m: f"\\u{ord(m.group()):04x}", user[comment_at:]
    )
    indent = len(escaped) - len(escaped.lstrip())
    return back in (escaped, escaped[:indent] + "# " + escaped[indent:])


def step_cells(module: Path) -> list[tuple[str, str, str]]:
    nb = jupytext.read(module)
    return [(c.cell_type, c.metadata.get("title", ""), c.source) for c in nb.cells]


def export_cell(code: str, folder: Path) -> list[tuple[str, str, str]]:
    nb = write_notebook(folder / "nb.ipynb", [(code, ["training"])])
    result = export_notebook(nb, out=folder / "pipelines")
    return step_cells(result.path / "steps" / "training.py")


@settings(max_examples=100, deadline=None)
@given(st.lists(unit, min_size=1, max_size=6))
def test_every_line_comes_back_as_the_same_code(units: list[str]) -> None:
    code = "\n".join(["x = 1", *units, "last = 0"])
    with tempfile.TemporaryDirectory() as tmp:
        cells = export_cell(code, Path(tmp))
    # Exactly one cell per notebook cell, nothing turned into Markdown after the header.
    assert [t for kind, t, _ in cells if t] == ["cell 1 (id c0)"]
    assert [kind for kind, _, _ in cells[1:]] == ["code"] * (len(cells) - 1)
    back = next(source for _, title, source in cells if title)
    # Line for line the same, but for the documented changes to comments...
    comments = comment_columns(code)
    user_lines, back_lines = code.split("\n"), back.split("\n")
    assert len(back_lines) == len(user_lines), back
    for n, (u, b) in enumerate(zip(user_lines, back_lines, strict=True), 1):
        assert u == b or documented_change(u, b, comments.get(n)), (u, b)
    # ...which change nothing that runs.
    assert ast.dump(ast.parse(python_of(back))) == ast.dump(ast.parse(python_of(code)))


TRICKY_STRINGS = [
    # jupytext's idea of where strings end is simpler than Python's: here it misses that a
    # triple-quoted string opens after "\\", so it would take "# %%" for a cell marker.
    'x = "\\\\" """\n# %%\n"""',
    's = """\n# %%\n"""',  # jupytext knows this one is inside a string: written as it is
    "s = '''\n# %% [markdown]\n'''",
    "t = 'a\u2028b'",
    "%%bash\n# %%\necho hi",
]


@pytest.mark.parametrize("code", TRICKY_STRINGS)
def test_marker_in_a_string_is_exact_or_refused(tmp_path: Path, code: str) -> None:
    """A marker-like line that is not a comment cannot be escaped without changing what the
    code does: it is either written so that it comes back exactly, or refused by name."""
    try:
        cells = export_cell(code, tmp_path)
    except Nb2prodError as exc:
        assert exc.message.startswith(f"{tmp_path / 'nb.ipynb'}, cell 1 (id c0): line ")
        assert "Fix:" in exc.message and "\n" not in exc.message
        return
    assert [source for _, title, source in cells if title] == [code]


def test_refused_cases_are_the_ones_expected(tmp_path: Path) -> None:
    for n, code in enumerate(TRICKY_STRINGS):
        try:
            export_cell(code, tmp_path / str(n))
            refused = False
        except Nb2prodError:
            refused = True
        assert refused == (n in (0, 3, 4)), code


def test_hoisted_definitions_are_guarded_too(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("def f():\n    # %% [markdown]\n    return 2", ["setup"]),
            ("x = f()", ["training"]),
        ],
    )
    module = export_notebook(nb, out=tmp_path / "p").path / "steps" / "training.py"
    sources = [source for _, _, source in step_cells(module)]
    assert any("def f():\n    # # %% [markdown]\n    return 2" in s for s in sources)


def test_step_module_ends_without_displaying_a_value(tmp_path: Path) -> None:
    """Outputs are saved by one call that returns nothing, then models, never `_`."""
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("data = [1, 2]", ["preprocessing"]),
            ("_ = 5\nmodel = sum(data)\nsecond = 1", ["training"]),
            ("score = model + second", ["evaluation"]),
        ],
    )
    module = export_notebook(nb, out=tmp_path / "p").path / "steps" / "training.py"
    sources = [source for _, _, source in step_cells(module)]
    assert sources[-2:] == [
        'nb2prod.runtime.save_outputs({"model": model, "second": second})',
        'nb2prod.runtime.save_models(globals(), ["model", "second"])',
    ]


def test_long_output_lists_are_wrapped(tmp_path: Path) -> None:
    names = [f"a_rather_long_output_name_{i}" for i in range(5)]
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("\n".join(f"{n} = {i}" for i, n in enumerate(names)), ["preprocessing"]),
            (f"total = {' + '.join(names)}", ["evaluation"]),
        ],
    )
    module = export_notebook(nb, out=tmp_path / "p").path / "steps" / "preprocessing.py"
    last = step_cells(module)[-1][2]
    assert last.splitlines() == [
        "nb2prod.runtime.save_outputs(",
        "    {",
        *(f'        "{n}": {n},' for n in names),
        "    }",
        ")",
    ]


def test_import_only_cells_say_what_happened(tmp_path: Path) -> None:
    """The comment left in an import-only cell is true whichever imports the step uses (it
    claimed they were all at the top, where an import only a later step uses is not)."""
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("data = [1, 2]", ["preprocessing"]),
            ("import math\nfrom statistics import mean", ["training"]),
            "model = math.sqrt(sum(data))",
            ("score = mean(data) + model", ["evaluation"]),
            ("", ["training:empty"]),
        ],
    )
    path = export_notebook(nb, out=tmp_path / "p").path
    training = step_cells(path / "steps" / "training.py")
    assert dict((t, s) for _, t, s in training)["cell 2 (id c1)"] == (
        "# (this cell only imports modules; the ones this step uses are at the top)"
    )
    assert "import math" in training[1][2]
    empty = dict((t, s) for _, t, s in step_cells(path / "steps" / "empty.py"))
    assert empty["cell 5 (id c4)"] == "# (this cell is empty)"


# --- through the CLI, as a user meets it ------------------------------------------------------
MARKER_REPRO = [
    ("x = 1\n# %% [markdown]\nx = 2\nassert x == 2", ["training"]),
    ("score = x", ["evaluation", "metrics"]),
]


def test_marker_line_in_a_cell_runs_as_code(tmp_path: Path) -> None:
    """The repro of issue 9: the code after `# %% [markdown]` became Markdown and never ran, so
    the run "succeeded" with score 1. Now it runs: score 2."""
    write_notebook(tmp_path / "notebooks" / "markers.ipynb", MARKER_REPRO)
    r = run_cli("export", "notebooks/markers.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    env = {"NB2PROD_HOME": str(tmp_path / "home"), "CI": "true"}
    r = run_cli("run", "pipelines/markers", "--no-track", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    run_json = next((tmp_path / "home" / "runs").glob("*/run.json"))
    record = json.loads(run_json.read_text())
    assert record["status"] == "succeeded"
    assert record["metrics"] == {"score": 2}
    # The executed step ends by saving its outputs and models, and shows no value for it (it
    # used to end by displaying `PosixPath('.../x.json')` and `[]`).
    executed = json.loads((run_json.parent / record["steps"]["training"]["notebook"]).read_text())
    last = [c for c in executed["cells"] if c["cell_type"] == "code"][-2:]
    assert ["save_outputs" in "".join(c["source"]) for c in last] == [True, False]
    assert [o["output_type"] for c in last for o in c["outputs"]] == []


def test_marker_line_that_would_fail_now_fails(tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "notebooks" / "markers.ipynb",
        [("x = 1\n# %% [raw]\nraise ValueError('this line must run')", ["training"])],
    )
    assert run_cli("export", "notebooks/markers.ipynb", cwd=tmp_path).returncode == 0
    env = {"NB2PROD_HOME": str(tmp_path / "home"), "CI": "true"}
    r = run_cli("run", "pipelines/markers", "--no-track", cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "this line must run" in r.stdout + r.stderr


def test_marker_inside_a_string_is_refused_at_export(tmp_path: Path) -> None:
    write_notebook(tmp_path / "nb.ipynb", [('x = "\\\\" """\n# %%\n"""\nprint(x)', ["training"])])
    r = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "nb.ipynb, cell 1 (id c0): line 2 (`# %%`)" in r.stderr and "Fix:" in r.stderr
    assert not (tmp_path / "pipelines").exists()
