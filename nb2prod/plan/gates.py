"""The ``gates`` cells: parse each line into a gate and check its metric is one a step logs."""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

from ..gates.expr import Gate, parse_cell
from .model import CellPlan, StepPlan
from .notebook import Notebook
from .problems import ProblemLog

_LOGGERS = {"log_metric", "log_metrics"}


@dataclass
class KnownMetrics:
    """The metric names the steps visibly log; ``open``: some step logs names nb2prod cannot
    read from the code (a computed name, a dict built at run time)."""

    names: set[str] = field(default_factory=set)
    open: bool = False


def read_gates(
    nb: Notebook, cells: list[CellPlan], steps: dict[str, StepPlan], log: ProblemLog
) -> list[Gate]:
    """Every gate of every ``gates`` cell in notebook order; bad lines and unknown metrics are
    problems at the cell (errors when every metric the steps log is known)."""
    known = known_metrics(cells, steps)
    gates: list[Gate] = []
    for plan in cells:
        if plan.role != "gates":
            continue
        found, errors = parse_cell(nb.cells[plan.index].source, plan.index)
        for line, exc in errors:
            log.report(
                "bad-gate",
                f"line {line}: {exc.message}",
                exc.fix,
                plan.index,
                key=f"{plan.index}:{line}",
            )
        for gate in found:
            problem = unknown_metric(gate.metric, known)
            if problem is not None:
                log.report(
                    "unknown-gate-metric",
                    f"line {gate.line}: gate `{gate.expr}` is on `{gate.metric}`, which no step "
                    "logs as a metric.",
                    problem,
                    plan.index,
                    variable=gate.metric,
                    severity="warning" if known.open else "error",
                    key=f"{plan.index}:{gate.line}",
                )
        gates.extend(found)
    return gates


def unknown_metric(metric: str, known: KnownMetrics) -> str | None:
    """None when ``metric`` is one the steps log; otherwise the fix, with the closest name."""
    if metric in known.names:
        return None
    close = difflib.get_close_matches(metric, sorted(known.names), n=1)
    if close:
        return f"did you mean `{close[0]}`? Name a metric a `metrics` cell assigns or logs."
    if known.names:
        shown = ", ".join(f"`{n}`" for n in sorted(known.names)[:8])
        return f"gate one of the metrics the steps log: {shown}."
    return "tag the cell that computes it `metrics` (inside its step), then gate it."


def known_metrics(cells: list[CellPlan], steps: dict[str, StepPlan]) -> KnownMetrics:
    known = KnownMetrics()
    for step in steps.values():
        for mc in step.metrics:
            known.names.update(mc.names)
    by_index = {c.index: c for c in cells}
    for step in steps.values():
        metrics_cells = {m.cell: m for m in step.metrics}
        for index in step.cells:
            plan = by_index.get(index)
            tree = plan.analysis.tree if plan is not None and plan.analysis is not None else None
            if tree is None:
                continue
            _logged_names(tree, known)
            found = metrics_cells.get(index)
            if found is not None and found.last is not None:
                _final_dict_keys(tree, found.last, known)
    return known


def _logged_names(tree: ast.Module, known: KnownMetrics) -> None:
    """``log_metric("name", v)`` and ``log_metrics({"a": v})``, by nb2prod or MLflow."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in _LOGGERS or not node.args:
            continue
        first = node.args[0]
        if name == "log_metric":
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                known.names.add(first.value)
            else:
                known.open = True
        else:
            _dict_keys(first, known)


def _final_dict_keys(tree: ast.Module, last: str, known: KnownMetrics) -> None:
    """The keys of the dict a metrics cell ends with (``{"acc": acc}``)."""
    final = tree.body[-1] if tree.body else None
    value = final.value if isinstance(final, ast.Expr) else None
    if last == "_" and value is not None:
        _dict_keys(value, known)
    elif last != "_":
        known.open = True  # a name that may hold a dict of metrics built at run time


def _dict_keys(node: ast.expr, known: KnownMetrics) -> None:
    if isinstance(node, ast.Dict) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys
    ):
        known.names.update(str(k.value) for k in node.keys if isinstance(k, ast.Constant))
    else:
        known.open = True
