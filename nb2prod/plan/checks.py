"""Checks of single cells and of the whole plan that do not change it: syntax, magics,
reserved names, parameters, randomness without a seed, MLflow overrides, unused parameters."""

from __future__ import annotations

import ast
import re

from ..errors import Problem
from .analysis import analyse_cell
from .model import CellPlan, StepPlan
from .notebook import Notebook
from .params import RESERVED_NAMES, Parameter, parse_parameters
from .problems import ProblemLog
from .randomness import RandomUse, import_aliases, random_uses, seeds

MLFLOW_OVERRIDES = ("set_experiment", "set_tracking_uri")


def analyse_cells(nb: Notebook, cells: list[CellPlan], log: ProblemLog) -> None:
    """Fill in each code cell's analysis and report what is wrong inside the cell itself."""
    for plan in cells:
        if plan.cell_type != "code" or plan.role == "gates":
            continue  # a gates cell is read by plan.gates, never run
        plan.analysis = a = analyse_cell(nb.cells[plan.index].source)
        if a.syntax_error is not None:
            line = f" on line {a.syntax_line}" if a.syntax_line else ""
            log.report(
                "syntax-error",
                f"has a syntax error{line}: {a.syntax_error}.",
                "fix the code, or tag the cell `skip` if it is not part of the pipeline.",
                plan.index,
                severity="warning" if plan.role == "skip" else "error",
            )
        if plan.role != "skip":
            _check_magics_and_names(plan, log)


def _check_magics_and_names(plan: CellPlan, log: ProblemLog) -> None:
    a = plan.analysis
    assert a is not None
    for magic in sorted(set(a.unknown_magics)):
        log.report(
            "opaque-magic",
            f"uses %{magic}, whose effect on variables nb2prod cannot see.",
            "define the variables in Python code instead, or check the data flow "
            "shown by `nb2prod inspect`.",
            plan.index,
            severity="warning",
        )
    # `import nb2prod` is fine (it is what the generated code imports too);
    # giving either name another value would break the step modules.
    rebound = {
        e.name
        for s in a.statements
        for e in s.events
        if e.kind in ("write", "delete") or (e.kind == "define" and not e.is_import)
    }
    for name in sorted(rebound & RESERVED_NAMES):
        log.report(
            "reserved-name",
            f"uses the name `{name}`, which nb2prod reserves for generated code.",
            "rename the variable.",
            plan.index,
            name,
        )


def read_parameters(nb: Notebook, cells: list[CellPlan], log: ProblemLog) -> dict[str, Parameter]:
    """The parameters of every `parameters` cell, by name, first assignment first."""
    parameters: dict[str, Parameter] = {}
    for plan in cells:
        if plan.role != "parameters":
            continue
        params, problems = parse_parameters(nb.cells[plan.index].source, log.ref(plan.index))
        log.add(problems)
        for p in params:
            if p.name in parameters:
                first = parameters[p.name]
                log.report(
                    "duplicate-parameter",
                    f"sets parameter `{p.name}` again; {first.cell.label()} already sets it.",
                    "keep one assignment per parameter.",
                    plan.index,
                    p.name,
                )
                continue
            parameters[p.name] = p
    return parameters


def check_randomness(
    nb: Notebook, cells: list[CellPlan], steps: dict[str, StepPlan], log: ProblemLog
) -> None:
    """Warn about random draws that no seed fixes, so runs would differ from the notebook."""
    trees = {
        c.index: c.analysis.tree
        for c in cells
        if c.analysis is not None and c.analysis.tree is not None and c.role != "skip"
    }
    aliases = import_aliases(trees.values())
    if not aliases:
        return
    mentions = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(aliases))) + r")\b")
    uses: dict[int, list[RandomUse]] = {}
    for index, tree in trees.items():
        role = cells[index].role
        if role in ("step", "setup") and mentions.search(nb.cells[index].source):
            uses[index] = random_uses(tree, aliases)
    # A seed counts in a setup cell above the step (it runs at the start of every later
    # step) and in the step's own cells up to the one that draws.
    setup_seeds: list[tuple[int, frozenset[str]]] = []
    step_seeds: dict[str, frozenset[str]] = {}
    for plan in cells:
        found = uses.get(plan.index, [])
        here = frozenset(g for u in found for g in seeds(u.kind))
        if plan.role == "setup":
            setup_seeds.append((plan.index, here))
            seeded = frozenset(g for _, s in setup_seeds for g in s)
        elif plan.role == "step" and plan.step is not None:
            first = steps[plan.step].cells[0]
            mine = step_seeds[plan.step] = step_seeds.get(plan.step, frozenset()) | here
            seeded = mine | {g for i, s in setup_seeds if i < first for g in s}
        else:
            continue
        _unseeded(plan.index, [u for u in found if not seeds(u.kind)], seeded, log)


def _unseeded(cell: int, found: list[RandomUse], seeded: frozenset[str], log: ProblemLog) -> None:
    """One warning per kind of unseeded randomness in ``cell``."""
    by_kind: dict[str, list[str]] = {}
    for u in found:
        by_kind.setdefault(u.kind, [])
        if u.shown not in by_kind[u.kind]:
            by_kind[u.kind].append(u.shown)
    drift = "so results change from run to run and differ from the notebook's"
    for kind, names in by_kind.items():
        shown = ", ".join(f"`{n}`" for n in names)
        if kind == "draw-numpy" and "numpy" not in seeded:
            message = f"draws from NumPy's global random generator ({shown}) with no seed, "
            fix = (
                "call `np.random.seed(42)` in a `setup` cell above this step (it runs at "
                "the start of every later step), or draw from `np.random.default_rng(42)`."
            )
        elif kind == "draw-random" and "random" not in seeded:
            message = f"draws from Python's global random generator ({shown}) with no seed, "
            fix = "call `random.seed(42)` in a `setup` cell above this step."
        elif kind == "sklearn" and "numpy" not in seeded:
            message = f"leaves `random_state` unset in {shown}, "
            fix = (
                "pass `random_state=42` (or a parameter), or call `np.random.seed(42)` in a "
                "`setup` cell above this step."
            )
        elif kind == "generator":
            message = f"creates a random generator without a seed ({shown}), "
            fix = "pass a seed, e.g. `np.random.default_rng(42)` or `random.Random(42)`."
        else:
            continue
        log.report(
            "unseeded-random",
            message + drift + ".",
            fix,
            cell,
            severity="warning",
            key=f"{cell}:{kind}",
        )


def check_mlflow_overrides(nb: Notebook, cells: list[CellPlan], log: ProblemLog) -> None:
    """Under ``nb2prod run`` a step's own MLflow calls log to that step's run in the
    pipeline's experiment; switching experiment or tracking URI in the step makes MLflow
    refuse to resume that run, so the step would fail. Say so before anything runs."""
    for plan in cells:
        a = plan.analysis
        source = nb.cells[plan.index].source
        if plan.role not in ("step", "setup") or a is None or a.tree is None:
            continue
        if "mlflow" not in source or not any(f in source for f in MLFLOW_OVERRIDES):
            continue
        for call in sorted(_mlflow_calls(a.tree, MLFLOW_OVERRIDES)):
            log.report(
                "mlflow-override",
                f"calls `mlflow.{call}(...)`. Under `nb2prod run`, MLflow calls in a step log "
                "to that step's run in the pipeline's own experiment, and MLflow refuses to "
                "resume it after this call, so the step would fail.",
                "remove the call: the experiment is named after the pipeline (`--name`), "
                "and `MLFLOW_TRACKING_URI` chooses the tracking server.",
                plan.index,
                key=f"{plan.index}:{call}",
            )


def _mlflow_calls(tree: ast.Module, names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` the cell calls on MLflow: ``mlflow.set_experiment(...)``, or a name
    imported from ``mlflow`` (``from mlflow import set_experiment``)."""
    modules = {"mlflow"}
    functions: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == "mlflow" and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == "mlflow":
            functions |= {a.asname or a.name: a.name for a in node.names if a.name in names}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in names:
            if isinstance(func.value, ast.Name) and func.value.id in modules:
                found.add(func.attr)
        elif isinstance(func, ast.Name) and func.id in functions:
            found.add(functions[func.id])
    return found


def check_plan(
    cells: list[CellPlan],
    steps: dict[str, StepPlan],
    parameters: dict[str, Parameter],
    log: ProblemLog,
    serving_reads: frozenset[str] = frozenset(),
) -> None:
    """Whole-plan checks, once the data flow is known: no steps at all, unused parameters
    (a parameter only the serving function reads is used)."""
    if not steps and not log.has_tag_problem():
        log.add(
            [
                Problem(
                    "no-steps",
                    "error",
                    "no cell is tagged as a step, so there is nothing to export.",
                    "tag the first cell of each step `preprocessing`, `training` or "
                    "`evaluation` (or `training:NAME` for several steps of one role).",
                )
            ]
        )
    used = {p for s in steps.values() for p in s.parameters} | serving_reads
    for c in cells:  # read by a cell an unknown tag left without a role: not unused
        if c.index in log.undetermined and c.analysis is not None:
            used |= c.analysis.reads
    for p in parameters.values():
        if p.name not in used and steps:
            log.report(
                "unused-parameter",
                f"sets parameter `{p.name}`, but no step reads it.",
                "use it in a step or remove it.",
                p.cell.index,
                p.name,
                severity="warning",
            )
