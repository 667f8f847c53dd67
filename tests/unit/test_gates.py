"""Gate expressions (parsed, never executed), the gates cell in a plan, and gate evaluation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nb2prod.gates.baseline import Baseline
from nb2prod.gates.check import check_gates
from nb2prod.gates.expr import GateError, parse_cell, parse_gate
from nb2prod.plan.notebook import notebook_from_json
from nb2prod.plan.planner import Plan, build_plan

from conftest import notebook_json

names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: (
        n not in ("baseline", "and", "or", "not", "in", "is", "if", "else", "for")
        and n not in __import__("keyword").kwlist
    )
)
numbers = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
ops = st.sampled_from([">=", ">", "<=", "<"])


@given(names, ops, numbers)
def test_a_number_gate_round_trips(metric: str, op: str, bound: float) -> None:
    gate = parse_gate(f"{metric} {op} {bound!r}")
    assert (gate.metric, gate.op, gate.uses_baseline) == (metric, op, False)
    assert gate.bound(None) == bound
    again = parse_gate(gate.expr)
    assert again == gate


@given(names, ops, st.sampled_from(["+", "-", "*"]), numbers, numbers)
def test_a_baseline_gate_is_linear_in_the_baseline(
    metric: str, op: str, arith: str, c: float, base: float
) -> None:
    gate = parse_gate(f"{metric} {op} baseline {arith} {c!r}  # help text")
    assert gate.uses_baseline and gate.help == "help text"
    expected = {"+": base + c, "-": base - c, "*": base * c}[arith]
    assert gate.bound(base) == pytest.approx(expected)
    assert parse_gate(gate.expr) == gate.__class__(gate.metric, gate.op, gate.threshold)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("accuracy == 0.9", "uses `==`"),
        ("accuracy >= f(1)", "`f(1)`"),
        ("accuracy >= model.score", "`model.score`"),
        ("accuracy >= other", "the name `other`"),
        ("0.9 <= accuracy", "name of a metric"),
        ("baseline >= 0.9", "name of a metric"),
        ("a >= b >= c", "not one comparison"),
        ("rmse <= baseline * baseline", "more than once"),
        ("accuracy >= 'high'", "not a number"),
        ("accuracy >= True", "not a number"),
        ("accuracy >= 1 / 0", "divides by zero"),
        ("import os", "not a comparison"),
        ("accuracy >=", "not a comparison"),
        ("__import__('os').system('x') >= 1", "name of a metric"),
    ],
)
def test_what_is_not_a_gate_is_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(GateError) as caught:
        parse_gate(text)
    assert words in caught.value.message
    assert caught.value.fix


def test_a_cell_gives_gates_with_their_lines_and_the_lines_that_are_not() -> None:
    gates, errors = parse_cell(
        "# quality bar\naccuracy >= 0.95  # floor\n\nf1 >= baseline - 0.01\nnope!", 7
    )
    assert [(g.expr, g.line, g.cell, g.help) for g in gates] == [
        ("accuracy >= 0.95", 2, 7, "floor"),
        ("f1 >= baseline - 0.01", 4, 7, ""),
    ]
    assert [line for line, _ in errors] == [5]


def test_a_hash_inside_a_string_is_not_a_comment() -> None:
    with pytest.raises(GateError):
        parse_gate("accuracy >= '#1'")


# --- evaluation ------------------------------------------------------------------------------
def _baseline(**metrics: float) -> Baseline:
    return Baseline("champion", "champion (local)", "20261127-000000-000aaaa", None, 1, metrics)


def test_gates_pass_fail_and_explain() -> None:
    gates = [parse_gate("accuracy >= 0.9"), parse_gate("f1 >= baseline - 0.01")]
    report = check_gates(gates, {"accuracy": 0.95, "f1": 0.80}, _baseline(f1=0.85))
    assert report.status == "failed"
    first, second = report.results
    assert (first.status, first.threshold) == ("passed", 0.9)
    assert second.status == "failed" and second.baseline == 0.85
    assert second.threshold == pytest.approx(0.84)
    assert "0.8 is not >= 0.84" in str(second.reason)


def test_no_baseline_does_not_fail_unless_required() -> None:
    gates = [parse_gate("f1 >= baseline")]
    report = check_gates(gates, {"f1": 0.8}, None)
    assert report.status == "passed" and report.results[0].status == "no baseline"
    required = check_gates(gates, {"f1": 0.8}, None, require_baseline=True)
    assert required.status == "failed" and "--require-baseline" in str(required.results[0].reason)
    missing = check_gates(gates, {"f1": 0.8}, _baseline(accuracy=1.0))
    assert missing.results[0].status == "no baseline"
    assert "has no metric `f1`" in str(missing.results[0].reason)


def test_nan_and_missing_metrics_fail_with_a_reason() -> None:
    gates = [parse_gate("loss <= 1"), parse_gate("auc >= 0.5")]
    report = check_gates(gates, {"loss": math.nan}, None)
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert "NaN" in str(report.results[0].reason)
    assert "logged no metric `auc`" in str(report.results[1].reason)
    as_stored = check_gates([parse_gate("loss <= 1")], {"loss": "NaN"}, None)
    assert as_stored.results[0].status == "failed"


def test_a_bound_that_divides_by_a_zero_baseline_fails() -> None:
    report = check_gates([parse_gate("x >= 1 / baseline")], {"x": 1.0}, _baseline(x=0.0))
    assert report.results[0].status == "failed"
    assert "divides by zero" in str(report.results[0].reason)


# --- in the plan -----------------------------------------------------------------------------
CELLS = [
    ("x = 1  # a parameter", ["parameters"]),
    ("data = [x, 2]", ["preprocessing"]),
    ("score = float(sum(data))\nloss = 1 / score", ["evaluation", "metrics"]),
]


def _plan(gates_source: str, cells: list[tuple[str, list[str]]] = CELLS) -> Plan:
    raw = notebook_json([*cells, (gates_source, ["gates"])])
    return build_plan(notebook_from_json(raw, "nb.ipynb"))


def test_the_plan_lists_the_gates_and_the_cell_is_not_code() -> None:
    plan = _plan("score >= 2  # at least two\nloss <= baseline * 1.05")
    assert not plan.errors
    assert [g["expr"] for g in plan.to_json()["gates"]] == [
        "score >= 2",
        "loss <= baseline * 1.05",
    ]
    assert plan.to_json()["gates"][0]["help"] == "at least two"
    gates_cell = plan.cells[-1]
    assert gates_cell.role == "gates" and gates_cell.step is None
    assert all(3 not in s.cells for s in plan.steps)


def test_an_unknown_metric_is_an_error_with_the_closest_name() -> None:
    plan = _plan("scor >= 2")
    [problem] = plan.errors
    assert problem.code == "unknown-gate-metric" and problem.cell is not None
    assert problem.cell.index == 3
    assert "`score`" in problem.fix
    assert "line 1" in problem.message


def test_a_malformed_line_is_an_error_naming_the_line() -> None:
    plan = _plan("score >= 2\nscore >= len(data)")
    [problem] = plan.errors
    assert problem.code == "bad-gate" and "line 2" in problem.message


def test_metrics_logged_by_name_are_known() -> None:
    cells = [
        ("import mlflow", ["setup"]),
        ('mlflow.log_metric("rmse", 0.5)\nmlflow.log_metrics({"mae": 0.1})', ["training"]),
    ]
    assert not _plan("rmse <= 1\nmae <= 1", cells).errors


def test_a_computed_metric_name_makes_an_unknown_one_a_warning() -> None:
    cells = [
        ("import mlflow", ["setup"]),
        ('for k in ["a", "b"]:\n    mlflow.log_metric(k, 1.0)', ["training"]),
    ]
    plan = _plan("a >= 1", cells)
    assert not plan.errors
    assert [p.code for p in plan.problems] == ["unknown-gate-metric"]
