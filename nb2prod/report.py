"""Human-readable text for a plan, as ``nb2prod inspect`` prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .grammar import load_grammar
from .plan import Plan


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
    lines += ["", "DAG"]
    if plan.edges:
        lines += [f"  {a} -> {b}" for a, b in plan.edges]
    independent = [
        s.name
        for s in plan.steps
        if not s.depends_on and not any(a == s.name for a, _ in plan.edges)
    ]
    lines += [f"  {name} (no data dependencies)" for name in independent]
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


def _timing(record: dict[str, Any], total: float | None) -> str:
    """``in 8.9s (steps 5.6s, MLflow 3.1s, start-up 0.2s)``: the parts add up to what the user
    waited, ``total`` being the command's own wall time when the caller measured it."""
    steps = float(record.get("duration") or 0)
    tracking = record.get("tracking") or {}
    mlflow = float(tracking.get("duration") or 0) if tracking.get("state") == "done" else 0.0
    if total is None:
        total = steps + mlflow
    parts = [f"steps {steps:.1f}s"]
    if tracking:
        parts.append(f"MLflow {mlflow:.1f}s")
    rest = total - steps - mlflow
    if rest >= 0.05:
        parts.append(f"start-up {rest:.1f}s")
    return f"in {total:.1f}s ({', '.join(parts)})" if len(parts) > 1 else f"in {total:.1f}s"


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else str(value)


def run_text(record: dict[str, Any], run_dir: Path, total: float | None = None) -> str:
    """The end-of-run report: status, failures (a short paragraph each), metrics, where to look.

    ``total``: seconds the caller waited in all, when it measured them (the CLI does).
    """
    status = record["status"]
    lines = [
        "",
        f"{record['pipeline']} v{record['version']}: {status} {_timing(record, total)}"
        f" (run {record['id']})",
    ]
    if record.get("error"):
        lines.append(f"run failed: {record['error']}")
    for warning in record.get("warnings") or []:
        lines.append(f"warning: {warning}")
    cached = [n for n, s in record["steps"].items() if s["state"] == "cached"]
    if cached:
        lines.append(f"reused from earlier runs: {', '.join(cached)}")
    for name, step in record["steps"].items():
        error = step.get("error")
        if step["state"] != "failed" or not error:
            continue
        where = f" in notebook {error['cell']}" if error.get("cell") else ""
        lines += ["", f"step {name} failed{where}:", f"  {error.get('message', '')}"]
        source = (error.get("source") or "").strip().splitlines()
        if source:
            lines.append("  cell source:")
            lines += [f"    {line}" for line in source[:8]]
            if len(source) > 8:
                lines.append("    ...")
        if step.get("notebook"):
            lines.append(f"  executed notebook: {run_dir / step['notebook']}")
    skipped = [n for n, s in record["steps"].items() if s["state"] == "skipped" and s.get("error")]
    if skipped:
        lines.append(f"not run (an upstream step failed): {', '.join(skipped)}")
    metrics = record.get("metrics") or {}
    if metrics:
        lines += ["", "metrics:"] + [f"  {k} = {_value(v)}" for k, v in metrics.items()]
    lines += ["", f"run folder: {run_dir}"]
    tracking = record.get("tracking")
    if tracking and tracking.get("state", "done") == "done":
        if tracking.get("ok"):
            uri = str(tracking.get("uri"))
            browse = (
                uri
                if uri.startswith(("http://", "https://"))
                else (f"mlflow ui --backend-store-uri {uri}")
            )
            lines.append(
                f"MLflow: experiment {tracking.get('experiment')!r}, run {tracking.get('run_id')} "
                f"({uri}); browse: {browse}"
            )
        else:
            error = str(tracking.get("error") or "")
            lines.append(
                error if error.startswith("MLflow") else f"MLflow tracking failed: {error}"
            )
    return "\n".join(lines)
