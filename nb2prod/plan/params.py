"""Parameters: the literal assignments of ``parameters`` cells, with their help comments."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from typing import Any

from ..errors import CellRef, Problem
from ..run_folder import RUN_DIR_PARAM

RESERVED_NAMES = frozenset({"nb2prod", RUN_DIR_PARAM})


@dataclass(frozen=True)
class Parameter:
    name: str
    value: Any
    type: str  # "int", "float", "str", "bool", "null", "list" or "dict"
    help: str
    cell: CellRef


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[
        type(value)
    ]


def _plain(value: Any) -> bool:
    """Values that config.yaml can hold exactly: no tuples, sets, bytes or complex numbers."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(
            (k is None or type(k) in (bool, int, float, str)) and _plain(v)
            for k, v in value.items()
        )
    return False


def _comments(source: str) -> dict[int, str]:
    """Trailing comment text by 1-based line number."""
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def parse_parameters(source: str, cell: CellRef) -> tuple[list[Parameter], list[Problem]]:
    """Parameters of one ``parameters`` cell. Imports are allowed (they are hoisted elsewhere)."""
    params: list[Parameter] = []
    problems: list[Problem] = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return params, problems  # reported as a syntax error by the planner
    comments = _comments(source)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring-like note
        target: ast.expr | None = None
        value_node: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value_node = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value_node = node.target, node.value
        if not isinstance(target, ast.Name) or value_node is None:
            problems.append(
                Problem(
                    "parameter-statement",
                    "error",
                    f"line {node.lineno} of the parameters cell is not a simple assignment "
                    f"`name = value`: `{ast.unparse(node)[:60]}`.",
                    "keep only `name = literal` lines in parameters cells; move other code "
                    "into a setup cell or a step.",
                    cell,
                )
            )
            continue
        name = target.id
        try:
            value = ast.literal_eval(value_node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = ast.literal_eval  # sentinel: not a literal
        if value is ast.literal_eval or not _plain(value):
            problems.append(
                Problem(
                    "non-literal-parameter",
                    "error",
                    f"parameter `{name}` is set to `{ast.unparse(value_node)[:60]}`, which is not "
                    "a plain literal (number, string, bool, None, list or dict).",
                    f"write the value itself, e.g. `{name} = 0.5`, and compute derived values "
                    "in a step.",
                    cell,
                    name,
                )
            )
            continue
        if name in RESERVED_NAMES:
            problems.append(
                Problem(
                    "reserved-name",
                    "error",
                    f"parameter `{name}` uses a name nb2prod reserves for itself.",
                    "rename it.",
                    cell,
                    name,
                )
            )
            continue
        help_text = comments.get(node.end_lineno or node.lineno, "")
        params.append(Parameter(name, value, type_name(value), help_text, cell))
    return params, problems
