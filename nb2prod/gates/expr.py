"""Gate expressions: ``metric OP number`` or ``metric OP <arithmetic on baseline>``.

A gate is parsed with :mod:`ast` and checked node by node; it is never executed. The
right-hand side may combine numbers and the name ``baseline`` (at most once) with ``+ - * /``
and unary minus, so it is always a linear function of the baseline's value.
"""

from __future__ import annotations

import ast
import io
import math
import operator
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[type[ast.cmpop], tuple[str, Callable[[float, float], bool]]] = {
    ast.GtE: (">=", operator.ge),
    ast.Gt: (">", operator.gt),
    ast.LtE: ("<=", operator.le),
    ast.Lt: ("<", operator.lt),
}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
BASELINE = "baseline"
MAX_LENGTH = 500


class GateError(ValueError):
    """A gate that cannot be read; the message says what is wrong, ``fix`` what to write."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str  # >=, >, <=, <
    threshold: str  # the right-hand side, normalised (``baseline - 0.01``)
    help: str = ""
    origin: str = "notebook"  # or "command line"
    cell: int | None = None  # 0-based index of the gates cell
    line: int | None = None  # 1-based line within the cell

    @property
    def expr(self) -> str:
        return f"{self.metric} {self.op} {self.threshold}"

    @property
    def uses_baseline(self) -> bool:
        return _uses_baseline(ast.parse(self.threshold, mode="eval").body)

    def bound(self, baseline: float | None) -> float:
        """The number the metric is compared with; ``baseline`` must be given when used."""
        return _evaluate(ast.parse(self.threshold, mode="eval").body, baseline)

    def holds(self, value: float, bound: float) -> bool:
        return OPERATORS[_OP_TYPES[self.op]][1](value, bound)

    def to_json(self) -> dict[str, Any]:
        return {
            "expr": self.expr,
            "metric": self.metric,
            "op": self.op,
            "threshold": self.threshold,
            "uses_baseline": self.uses_baseline,
            "help": self.help,
            "origin": self.origin,
            "cell": self.cell,
            "line": self.line,
        }

    def to_manifest(self) -> dict[str, Any]:
        """Its entry in pipeline.yaml: what it checks, without where it came from."""
        entry: dict[str, Any] = {"expr": self.expr}
        if self.help:
            entry["help"] = self.help
        return entry


_OP_TYPES = {symbol: kind for kind, (symbol, _) in OPERATORS.items()}


def parse_gate(text: str, origin: str = "notebook") -> Gate:
    """One gate from one line (a trailing ``# comment`` is its help). Raises GateError."""
    code, comment = _split_comment(text)
    help_text = comment.strip()
    code = code.strip()
    if len(code) > MAX_LENGTH:
        raise GateError(
            f"is {len(code)} characters long.", f"keep a gate under {MAX_LENGTH} characters."
        )
    shape = "write one comparison such as `accuracy >= 0.95` or `f1 >= baseline - 0.01`"
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        raise GateError(f"`{code}` is not a comparison nb2prod can read.", shape + ".") from None
    node = tree.body
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        raise GateError(f"`{code}` is not one comparison.", shape + ".")
    kind = type(node.ops[0])
    if kind not in OPERATORS:
        raise GateError(
            f"`{code}` uses `{_op_text(node.ops[0])}`; gates compare with >=, >, <= or <.",
            "use one of >=, >, <=, < (a metric is never exactly equal to a bound).",
        )
    left = node.left
    if not isinstance(left, ast.Name) or left.id == BASELINE:
        raise GateError(
            f"`{code}` must start with the name of a metric.",
            "put the metric on the left: `accuracy >= 0.95`.",
        )
    right = node.comparators[0]
    _check_bound(right, code)
    if _count_baseline(right) > 1:
        raise GateError(
            f"`{code}` uses `baseline` more than once.",
            "write the bound with `baseline` once, e.g. `rmse <= baseline * 1.05`.",
        )
    threshold = ast.unparse(right)
    gate = Gate(left.id, OPERATORS[kind][0], threshold, help_text, origin)
    if not gate.uses_baseline:
        try:
            gate.bound(None)  # a bound such as `1 / 0` is refused now, not after the run
        except ZeroDivisionError:
            raise GateError(f"`{code}` divides by zero.", "fix the bound.") from None
    return gate


def parse_cell(
    source: str, cell: int | None = None
) -> tuple[list[Gate], list[tuple[int, GateError]]]:
    """Every gate of a ``gates`` cell, and the lines that are not gates (1-based, the error)."""
    gates: list[Gate] = []
    errors: list[tuple[int, GateError]] = []
    for number, line in enumerate(source.splitlines(), start=1):
        code, _ = _split_comment(line)
        if not code.strip():
            continue  # blank, or a comment of its own
        try:
            gate = parse_gate(line)
        except GateError as exc:
            errors.append((number, exc))
            continue
        gates.append(
            Gate(gate.metric, gate.op, gate.threshold, gate.help, "notebook", cell, number)
        )
    return gates, errors


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one line; a ``#`` inside a string is not a comment."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                col = token.start[1]
                return line[:col], line[col + 1 :]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return line, ""


def _check_bound(node: ast.expr, code: str) -> None:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GateError(
                f"`{code}` compares with {ast.unparse(node)}, which is not a number.",
                "compare with a number or with `baseline` (`f1 >= baseline - 0.01`).",
            )
        if not math.isfinite(value):
            raise GateError(f"`{code}` compares with a number that is not finite.", "fix it.")
        return
    if isinstance(node, ast.Name):
        if node.id != BASELINE:
            raise GateError(
                f"`{code}` uses the name `{node.id}` on the right.",
                "the right side may use numbers and `baseline` only (the baseline run's value "
                "of the same metric).",
            )
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check_bound(node.operand, code)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        _check_bound(node.left, code)
        _check_bound(node.right, code)
        return
    raise GateError(
        f"`{code}` has `{ast.unparse(node)}` on the right, which a gate cannot use.",
        "combine numbers and `baseline` with + - * / only, e.g. `rmse <= baseline * 1.05`.",
    )


def _count_baseline(node: ast.expr) -> int:
    return sum(isinstance(n, ast.Name) and n.id == BASELINE for n in ast.walk(node))


def _uses_baseline(node: ast.expr) -> bool:
    return _count_baseline(node) > 0


def _evaluate(node: ast.expr, baseline: float | None) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        if baseline is None:
            raise ValueError("the gate needs a baseline")
        return float(baseline)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, baseline)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](
            _evaluate(node.left, baseline), _evaluate(node.right, baseline)
        )
    raise ValueError(f"not a gate bound: {ast.dump(node)}")  # parse_gate refuses these


def _op_text(op: ast.cmpop) -> str:
    return {
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.In: "in",
        ast.NotIn: "not in",
    }.get(type(op), type(op).__name__)
