"""The ``serving`` cell: the production entry point, and what it needs from the run.

A serving cell defines one function (it may import what it uses). The function runs after the
whole pipeline, in a serving process, so each free name it reads is resolved against the
notebook's final state: a parameter, a step's output (which that step then saves, whether or
not a later step reads it), or code (imports, helpers, setup lines) copied into
``steps/serving.py``. Steps that call the function are its callers: the first call in each is
recorded as the serving model's input example.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass

from ..version_folder import PARAMETER, serving_summary
from .analysis import BUILTIN_NAMES, IPYTHON_NAMES
from .dataflow import IPYTHON_IMPORTS, DataFlow, _define
from .model import CellPlan, Hoist, StepPlan
from .notebook import Notebook
from .problems import ProblemLog


@dataclass(frozen=True)
class ServingPlan:
    function: str
    cell: int
    args: tuple[str, ...]
    needs: tuple[tuple[str, str], ...]  # (name, the step that produces it or PARAMETER), by name
    code: tuple[Hoist, ...]  # what steps/serving.py holds, in notebook order (the def last)
    callers: tuple[str, ...]  # steps that call it, in run order
    example: tuple[str, str] | None  # (name, step): the fallback input example

    def summary(self) -> str:
        """``predict(raw) uses scaler from preprocessing, features (parameter)``."""
        return serving_summary(self.function, self.args, self.needs)

    def to_json(self) -> dict[str, object]:
        return {
            "function": self.function,
            "args": list(self.args),
            "cell": self.cell,
            "needs": [{"name": n, "from": src} for n, src in self.needs],
            "callers": list(self.callers),
            "example": None
            if self.example is None
            else {"name": self.example[0], "from": self.example[1]},
            "summary": self.summary(),
        }


def read_serving(
    nb: Notebook,
    cells: list[CellPlan],
    steps: dict[str, StepPlan],
    flow: DataFlow,
    log: ProblemLog,
) -> ServingPlan | None:
    """The notebook's serving function, or None (no serving cell, or one with an error)."""
    tagged = [c for c in cells if c.role == "serving"]
    if not tagged:
        return None
    for extra in tagged[1:]:
        log.report(
            "serving-twice",
            f"is a second `serving` cell; the first is cell {tagged[0].index + 1}.",
            "keep one production entry point: tag one cell `serving`.",
            extra.index,
        )
    plan = tagged[0]
    found = _the_function(nb, plan, log)
    if found is None:
        return None
    name, args = found
    if "serving" in steps:
        log.report(
            "serving-not-one-function",
            "cannot be exported beside a step named `serving` (both would be steps/serving.py).",
            "rename that step, e.g. `training:serve_model`.",
            plan.index,
        )
        return None
    resolved = _Resolver(flow, steps, plan.index, log)
    definition = flow.last.get(name)
    if definition is None or definition.hoist is None:
        return None
    resolved.walk(name)
    if resolved.failed:
        return None
    callers = tuple(
        s.name for s in steps.values() if definition.hoist.code in s.hoisted and s.cells
    )
    return ServingPlan(
        function=name,
        cell=plan.index,
        args=args,
        needs=tuple(sorted(resolved.needs.items())),
        code=tuple(sorted(resolved.code.values(), key=lambda h: h.order)),
        callers=tuple(sorted(callers, key=lambda s: steps[s].cells[0])),
        example=_fallback_example(steps),
    )


def _the_function(
    nb: Notebook, plan: CellPlan, log: ProblemLog
) -> tuple[str, tuple[str, ...]] | None:
    """(name, argument names) of the one function the cell defines; anything else is an error."""
    a = plan.analysis
    if a is None:
        return None  # a syntax error, reported by the analysis
    defs: list[ast.FunctionDef] = []
    for stmt in a.statements:
        if stmt.kind == "import":
            continue
        node = _parse(stmt.source)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a bare string
        if isinstance(node, ast.FunctionDef):
            defs.append(node)
            continue
        what = "a class" if isinstance(node, ast.ClassDef) else f"`{_first_line(stmt.source)}`"
        if isinstance(node, ast.AsyncFunctionDef):
            what = f"async function `{node.name}`"
        log.report(
            "serving-not-one-function",
            f"line {stmt.first_line}: a `serving` cell holds one function definition (and the "
            f"imports it uses), but this line is {what}.",
            "move that code to a step or a `setup` cell, and keep only the function here.",
            plan.index,
        )
        return None
    if len(defs) != 1:
        names = ", ".join(f"`{d.name}`" for d in defs)
        log.report(
            "serving-not-one-function",
            "a `serving` cell defines exactly one function, the production entry point, but "
            + (f"this one defines {len(defs)}: {names}." if defs else "this one defines none."),
            "keep one `def` here; move helpers to a `setup` cell.",
            plan.index,
        )
        return None
    fn = defs[0]
    every = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    return fn.name, tuple(arg.arg for arg in every)


def _parse(source: str) -> ast.stmt | None:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    return body[0] if len(body) == 1 else None


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


class _Resolver:
    """Follows the function's free names, and theirs, to the notebook's final state."""

    def __init__(
        self, flow: DataFlow, steps: dict[str, StepPlan], cell: int, log: ProblemLog
    ) -> None:
        self.flow, self.steps, self.cell, self.log = flow, steps, cell, log
        self.needs: dict[str, str] = {}
        self.code: dict[str, Hoist] = {}
        self.seen: set[str] = set()
        self.failed = False

    def walk(self, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        d = self.flow.last.get(name)
        if d is None and name in self.flow.tables.first_define:
            d = _define(*self.flow.tables.first_define[name])  # an import further down
        if d is None:
            if name in IPYTHON_IMPORTS:
                code = IPYTHON_IMPORTS[name]
                self.code[code] = Hoist(code, -1, (-1, 0, 0), True, (name,))
            elif name not in BUILTIN_NAMES and name not in IPYTHON_NAMES:
                self.unknown(name, "no cell the pipeline runs defines it")
            return
        if d.kind == "hoist" and d.hoist is not None:
            self.code[d.hoist.code] = d.hoist
            for other in sorted(d.needs - set(d.hoist.names)):
                self.walk(other)
        elif d.kind == "param":
            self.needs[name] = PARAMETER
        elif d.kind == "data" and d.step is not None:
            self.needs[name] = d.step
            self.steps[d.step].outputs.add(name)  # saved for the serving model
        elif d.kind == "unassigned":
            self.unknown(name, f"it is set in cell {d.cell + 1}, which is in no step", d.cell)
        else:
            self.unknown(name, f"cell {d.cell + 1} deletes it", d.cell)

    def unknown(self, name: str, why: str, cause: int | None = None) -> None:
        self.failed = True
        known = [n for n, d in self.flow.last.items() if d.kind in ("data", "param")]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        self.log.report(
            "serving-unknown-name",
            f"the serving function reads `{name}`, which nothing in the pipeline produces: "
            f"{why}{hint}.",
            f"set `{name}` in a step or make it a parameter, or pass it to the function as an "
            "argument.",
            self.cell,
            name,
            cause=cause,  # not reported when that cell's tag was mistyped: that is the problem
        )


def _fallback_example(steps: dict[str, StepPlan]) -> tuple[str, str] | None:
    """The first input of the first training step: the data the model was fitted on."""
    for step in sorted(steps.values(), key=lambda s: s.cells[0] if s.cells else 0):
        if step.role == "training":
            for i in step.inputs.values():
                if i.alias_of is None:
                    return i.name, i.step
            return None
    return None
