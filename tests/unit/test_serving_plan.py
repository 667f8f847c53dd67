"""The `serving` cell: what the function needs, its export to steps/serving.py and pipeline.yaml,
the problems a bad serving cell gives, and the runtime's record of a step's first call."""

from __future__ import annotations

import ast
import keyword
import pickle
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nb2prod import runtime
from nb2prod.export.writer import export_notebook
from nb2prod.pipeline import load_pipeline
from nb2prod.plan.notebook import notebook_from_json
from nb2prod.plan.planner import Plan, build_plan
from nb2prod.run_folder import serving_example_dir
from nb2prod.version_folder import ServingNeed

from conftest import CellSpec, notebook_json, write_notebook

SERVING_CELLS: list[CellSpec] = [
    ("import math", ["setup"]),
    ("offset = 1.5  # added to every prediction\nunused = 3", ["parameters"]),
    ("def helper(v):\n    return math.floor(v)", []),
    ("rows = [1.0, 2.0, 3.0]\nscale = 2.0\nnoise = 0.5", ["preprocessing"]),
    ("weight = sum(rows) * scale", ["training"]),
    (
        "def predict(raw: list) -> list:\n    return [helper(x * weight) + offset for x in raw]",
        ["serving"],
    ),
    ("preds = predict(rows)\nscore = float(sum(preds))", ["evaluation", "metrics"]),
]


def plan_of(cells: list[CellSpec]) -> Plan:
    return build_plan(notebook_from_json(notebook_json(cells), "nb.ipynb"))


def codes(plan: Plan) -> list[str]:
    return [p.code for p in plan.problems]


def test_needs_resolve_to_parameters_step_outputs_and_code() -> None:
    plan = plan_of(SERVING_CELLS)
    assert not plan.errors, [p.message for p in plan.errors]
    sv = plan.serving
    assert sv is not None
    assert (sv.function, sv.args, sv.cell) == ("predict", ("raw",), 5)
    assert sv.needs == (("offset", "parameter"), ("weight", "training"))
    assert [h.names for h in sv.code] == [("math",), ("helper",), ("predict",)]
    assert sv.callers == ("evaluation",)
    assert sv.example == ("rows", "preprocessing")
    assert sv.summary() == "predict(raw) uses offset (parameter), weight from training"
    assert plan.to_json()["serving"]["needs"] == [
        {"name": "offset", "from": "parameter"},
        {"name": "weight", "from": "training"},
    ]


def test_a_need_no_step_reads_is_still_saved_for_serving() -> None:
    cells = [c for c in SERVING_CELLS if "preds =" not in c[0]]
    cells.append(("score = float(weight)", ["evaluation", "metrics"]))
    cells[5] = ("def predict(raw):\n    return [x * scale for x in raw]", ["serving"])
    plan = plan_of(cells)
    assert plan.serving is not None and plan.serving.callers == ()
    assert plan.serving.needs == (("scale", "preprocessing"),)
    assert "scale" in plan.step("preprocessing").outputs  # nothing else reads it


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def a(x):\n    return x\n\ndef b(x):\n    return x", "defines 2: `a`, `b`"),
        ("import math", "this one defines none"),
        ("x = 1", "this line is `x = 1`"),
        ("import math\nk = 2\ndef f(x):\n    return x", "line 2"),
        ("class Model:\n    pass", "a class"),
        ("async def f(x):\n    return x", "async function `f`"),
    ],
)
def test_a_serving_cell_defines_exactly_one_function(source: str, words: str) -> None:
    cells = list(SERVING_CELLS)
    cells[5] = (source, ["serving"])
    cells[6] = ("score = 1.0", ["evaluation", "metrics"])
    plan = plan_of(cells)
    problem = next(p for p in plan.errors if p.code == "serving-not-one-function")
    assert words in problem.message and problem.cell is not None and problem.cell.index == 5
    assert plan.serving is None


def test_a_name_nothing_produces_is_an_error_with_a_suggestion() -> None:
    cells = list(SERVING_CELLS)
    cells[5] = ("def predict(raw):\n    return [x * weigth for x in raw]", ["serving"])
    cells[6] = ("score = 1.0", ["evaluation", "metrics"])
    plan = plan_of(cells)
    problem = next(p for p in plan.errors if p.code == "serving-unknown-name")
    assert problem.variable == "weigth" and "did you mean `weight`?" in problem.message
    assert "serving-unknown-name" in codes(plan)


def test_a_name_set_only_outside_the_steps_is_an_error() -> None:
    cells = [("early = 1", []), *SERVING_CELLS]
    cells[6] = ("def predict(raw):\n    return [x + early for x in raw]", ["serving"])
    cells[7] = ("score = 1.0", ["evaluation", "metrics"])
    plan = plan_of(cells)
    problem = next(p for p in plan.errors if p.code == "serving-unknown-name")
    assert problem.variable == "early" and "in no step" in problem.message


def test_a_parameter_only_the_serving_function_reads_is_used() -> None:
    cells = list(SERVING_CELLS)
    cells[5] = ("def predict(raw):\n    return [x * unused for x in raw]", ["serving"])
    cells[6] = ("score = 1.0", ["evaluation", "metrics"])
    plan = plan_of(cells)
    assert plan.serving is not None and plan.serving.needs == (("unused", "parameter"),)
    assert "unused-parameter" not in [p.code for p in plan.problems if p.variable == "unused"]


def test_two_serving_cells_and_a_step_called_serving_are_refused() -> None:
    twice = [*SERVING_CELLS, ("def other(raw):\n    return raw", ["serving"])]
    assert "serving-twice" in codes(plan_of(twice))
    clash = [*SERVING_CELLS, ("z = weight", ["evaluation:serving"])]
    assert "serving-not-one-function" in codes(plan_of(clash))


def test_export_writes_the_module_the_section_and_the_recorder(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", SERVING_CELLS)
    result = export_notebook(nb, out=tmp_path / "pipelines")
    vdir = Path(result.path)
    spec = load_pipeline(vdir).serving
    assert spec is not None
    assert spec.needs == (ServingNeed("offset", "parameter"), ServingNeed("weight", "training"))
    assert (spec.callers, spec.example) == (("evaluation",), ServingNeed("rows", "preprocessing"))
    text = (vdir / spec.module).read_text("utf-8")
    module = types.ModuleType("serving_under_test")
    exec(compile(text, spec.module, "exec"), module.__dict__)  # noqa: S102 - our own export
    module.weight, module.offset = 12.0, 1.5
    assert module.predict([0.1, 1.0]) == [2.5, 13.5]  # helper and math came along
    evaluation = (vdir / "steps" / "evaluation.py").read_text("utf-8")
    assert "predict = nb2prod.runtime.record_serving_call(predict)" in evaluation
    assert "record_serving_call" not in (vdir / "steps" / "training.py").read_text("utf-8")


def test_annotations_are_needs_of_a_hoisted_function(tmp_path: Path) -> None:
    cells = list(SERVING_CELLS)
    cells[0] = ("import math\nimport fractions as fr", ["setup"])
    cells[5] = (
        "def predict(raw: fr.Fraction) -> fr.Fraction:\n    return raw * 2",
        ["serving"],
    )
    cells[6] = ("preds = predict(1)\nscore = float(preds)", ["evaluation", "metrics"])
    result = export_notebook(write_notebook(tmp_path / "nb.ipynb", cells), out=tmp_path / "p")
    vdir = Path(result.path)
    assert "import fractions as fr" in (vdir / "steps" / "serving.py").read_text("utf-8")
    assert "import fractions as fr" in (vdir / "steps" / "evaluation.py").read_text("utf-8")


identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in ("print", "len", "helper", "math", "weight")
)


@settings(max_examples=40, deadline=None)
@given(identifiers, identifiers, st.text(max_size=30))
def test_the_function_round_trips_into_the_module(fn: str, arg: str, literal: str) -> None:
    """Any function name, argument and string literal reaches steps/serving.py as the same
    code: parsing the module's def gives the cell's def."""
    if fn == arg:
        return
    source = f"def {fn}({arg}):\n    return ({arg}, {literal!r}, weight)"
    cells = list(SERVING_CELLS)
    cells[5] = (source, ["serving"])
    cells[6] = ("score = 1.0", ["evaluation", "metrics"])
    plan = plan_of(cells)
    assert plan.serving is not None, [p.message for p in plan.errors]
    from nb2prod.export.serving_module import render_serving_module

    text = render_serving_module(plan.serving, "p", 1, 'odd "path"\n.ipynb', "header", frozenset())
    tree = ast.parse(text)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert ast.dump(defs[-1]) == ast.dump(ast.parse(source).body[0])
    module: dict[str, Any] = {}
    exec(compile(text, "serving.py", "exec"), module)  # noqa: S102
    assert module["weight"] is None  # a placeholder the serving model replaces
    module["weight"] = 7
    assert module[fn]("in") == ("in", literal, 7)


# --- the runtime's record of a step's first call ---------------------------------------------


@pytest.fixture
def in_step(tmp_path: Path):  # type: ignore[no-untyped-def]
    runtime.start_step(tmp_path, "evaluation")
    yield tmp_path
    runtime.end_step()


def _recorded(run: Path) -> tuple[Any, Any]:
    folder = serving_example_dir(run, "evaluation")
    with open(folder / "input.pkl", "rb") as f_in, open(folder / "output.pkl", "rb") as f_out:
        return pickle.load(f_in), pickle.load(f_out)  # noqa: S301 - written by this test


def test_the_first_call_is_recorded_and_later_calls_are_not(in_step: Path) -> None:
    calls: list[Any] = []

    def predict(raw: list[int], scale: int = 1) -> list[int]:
        calls.append(raw)
        return [x * scale for x in raw]

    wrapped = runtime.record_serving_call(predict)
    assert wrapped.__name__ == "predict"
    assert wrapped([1, 2], scale=3) == [3, 6]
    assert wrapped([5]) == [5]
    assert _recorded(in_step) == ({"args": [[1, 2]], "kwargs": {"scale": 3}}, [3, 6])
    assert calls == [[1, 2], [5]]  # no extra call for a small input


def test_a_long_input_is_recorded_by_its_head_and_called_again(in_step: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": range(250)})
    wrapped = runtime.record_serving_call(lambda raw: raw["a"].to_numpy() * 2)
    assert len(wrapped(frame)) == 250
    args, out = _recorded(in_step)
    assert len(args["args"][0]) == runtime.SERVING_EXAMPLE_ROWS
    assert list(out) == [2 * i for i in range(runtime.SERVING_EXAMPLE_ROWS)]


def test_outside_a_step_and_when_unpicklable_the_call_is_unchanged(tmp_path: Path) -> None:
    wrapped = runtime.record_serving_call(lambda raw: raw + 1)
    assert wrapped(1) == 2  # no step: nothing recorded, nothing raised
    runtime.start_step(tmp_path, "evaluation")
    try:
        odd = runtime.record_serving_call(lambda raw: lambda: raw)
        with pytest.warns(UserWarning, match="could not record the call"):
            assert odd(3)() == 3
    finally:
        runtime.end_step()
