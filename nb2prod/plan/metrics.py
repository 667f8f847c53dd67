"""What a metrics cell reports: the scalars it assigns (or prints, for Kale) and its last dict."""

from __future__ import annotations

import ast

from .analysis import CellAnalysis, Statement, literal_names_in_print
from .model import CellPlan, MetricsCell


def metrics_cell(plan: CellPlan, a: CellAnalysis) -> MetricsCell:
    kale = any(t == "pipeline-metrics" for t in plan.tags)
    names: list[str] = []
    for stmt in a.statements:
        node = _single_node(stmt)
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names.append(t.id)
        elif kale:
            names.extend(literal_names_in_print(stmt))
    last: str | None = None
    final = _single_node(a.statements[-1]) if a.statements else None
    if isinstance(final, ast.Expr) and not a.statements[-1].source.rstrip().endswith(";"):
        value = final.value
        if isinstance(value, ast.Name):  # a scalar metric, or a dict of them
            last = value.id
            names.append(value.id)
        elif isinstance(value, (ast.Dict, ast.DictComp)) or (
            isinstance(value, ast.Call)
            and not (isinstance(value.func, ast.Name) and value.func.id == "print")
        ):
            last = "_"
    return MetricsCell(plan.index, tuple(dict.fromkeys(names)), last)


def _single_node(stmt: Statement) -> ast.stmt | None:
    try:
        tree = ast.parse(stmt.source)
    except SyntaxError:
        return None
    return tree.body[0] if len(tree.body) == 1 else None
