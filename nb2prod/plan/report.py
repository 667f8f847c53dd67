"""Human-readable text for a plan, as ``nb2prod inspect`` prints it."""

from __future__ import annotations

from typing import Any

from ..grammar import load_grammar
from .planner import Plan


def _cells(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``cells 4–6, 10`` (1-based, as every message counts cells)."""
    if not indices:
        return "no cells"
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [f"{r[0] + 1}" if len(r) == 1 else f"{r[0] + 1}–{r[-1] + 1}" for r in runs]
    return ("cell " if len(indices) == 1 else "cells ") + ", ".join(parts)


def plan_text(plan: Plan) -> str:
    roles = load_grammar().roles
    lines = [
        f"{plan.notebook.path} -> pipeline {plan.name}: {len(plan.steps)} steps, "
        f"{len(plan.parameters)} parameters",
        "",
        "Parameters",
    ]
    if not plan.parameters:
        lines.append("  (none: tag a cell `parameters` to make values configurable)")
    for p in plan.parameters:
        value = repr(p.value)
        value = value if len(value) <= 40 else value[:39] + "…"
        used = ", ".join(s.name for s in plan.steps if p.name in s.parameters) or "no step"
        help_text = f"  # {p.help}" if p.help else ""
        lines.append(f"  {p.name} = {value}  ({p.type}, used by {used}){help_text}")
    lines += ["", "Steps (in run order)"]
    if not plan.steps:
        lines.append("  (none)")
    for n, s in enumerate(plan.steps, 1):
        label = roles.get(s.role, {}).get("label", s.role.upper())
        lines.append(f"  {n}. {s.name} [{label}] {_cells(s.cells)}")
        needs = ", ".join(
            f"{i.name} (from {i.step})" for i in sorted(s.inputs.values(), key=lambda i: i.name)
        )
        lines.append(f"       needs:  {needs or '-'}")
        lines.append(f"       gives:  {', '.join(sorted(s.outputs)) or '-'}")
        params = [p.name for p in plan.parameters if p.name in s.parameters]
        lines.append(f"       params: {', '.join(params) or '-'}")
        metrics = sorted({m for c in s.metrics for m in c.names})
        if s.metrics:
            lines.append(f"       metrics: {', '.join(metrics) or '(the dict the cell ends with)'}")
        if s.engine:
            lines.append(f"       engine: {_engine(s.engine)}")
        if s.data:
            reads = ", ".join(
                d.path + (f" (parameter {d.parameter})" if d.parameter else "") for d in s.data
            )
            lines.append(f"       reads:  {reads}")
    lines += ["", "DAG"]
    if plan.edges:
        lines += [f"  {a} -> {b}" for a, b in plan.edges]
    independent = [
        s.name
        for s in plan.steps
        if not s.depends_on and not any(a == s.name for a, _ in plan.edges)
    ]
    lines += [f"  {name} (no data dependencies)" for name in independent]
    if plan.serving is not None:
        sv = plan.serving
        called = ", ".join(sv.callers) or "no step (the example comes from the training data)"
        lines += [
            "",
            f"Serving (cell {sv.cell + 1})",
            f"  {sv.summary()}",
            f"  called by: {called}",
        ]
    if plan.unassigned:
        lines += [
            "",
            f"Not in any step: {_cells(plan.unassigned)} "
            "(imports and definitions there are still used)",
        ]
    errors = len(plan.errors)
    warnings = len(plan.problems) - errors
    counts = [_plural(n, w) for n, w in ((errors, "error"), (warnings, "warning")) if n]
    lines += ["", f"Problems ({', '.join(counts)})" if counts else "Problems"]
    if not plan.problems:
        lines.append("  none")
    for problem in plan.problems:  # errors first: they block export; warnings do not
        lines.append(f"  {problem.severity}: {problem.render(str(plan.notebook.path))}")
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _engine(engine: dict[str, Any]) -> str:
    """A step's Kale engine settings on one line: ``cache disabled, limit nvidia.com/gpu=1``."""
    parts = []
    for key, value in engine.items():
        if isinstance(value, dict):
            parts.append(f"{key} " + " ".join(f"{k}={v}" for k, v in value.items()))
        elif isinstance(value, list):
            parts.append(f"{key} " + " ".join(f"{x['env']}={x['name']}/{x['key']}" for x in value))
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)
