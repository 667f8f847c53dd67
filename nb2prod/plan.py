"""From a notebook to a plan: steps, their cells, inputs, outputs, parameters and the DAG.

The planner replays every cell's name events in notebook order (skip cells excluded), keeping
track of which cell last defined or changed each name. A step's read of a name it does not define
itself is resolved against that record: a parameter, an import or definition to hoist, or data
produced by an earlier step (an input, and an edge in the DAG). Everything that cannot be
resolved becomes a :class:`~nb2prod.errors.Problem` naming the cell and the variable.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .analysis import (
    BUILTIN_NAMES,
    IPYTHON_NAMES,
    CellAnalysis,
    Event,
    Statement,
    analyse_cell,
    import_for_side_effect,
    literal_names_in_print,
)
from .errors import CellRef, Problem
from .grammar import (
    EngineTag,
    ParsedTag,
    TagError,
    load_grammar,
    make_safe_name,
    parse_engine_tag,
    parse_tag,
)
from .notebook import Cell, Notebook, notebook_from_json, read_notebook
from .params import RESERVED_NAMES, Parameter, parse_parameters
from .randomness import RandomUse, import_aliases, random_uses, seeds

SCHEMA_VERSION = 1
# Problems about tags themselves: the root causes, always reported.
TAG_PROBLEMS = frozenset(
    {"conflicting-tags", "unknown-tag", "unsafe-name", "unsupported-tag", "bad-engine-tag"}
)
# Problems that follow from data flow or placement. When they involve a cell whose role an
# unknown tag left undetermined, they are consequences of that tag, not mistakes of their own.
FOLLOW_ON_PROBLEMS = frozenset(
    {
        "unassigned-name",
        "undefined-name",
        "skip-only-name",
        "order",
        "metrics-outside-step",
        "unused-parameter",
        "star-import",
        "unseeded-random",
        "engine-tag-outside-step",
    }
)
CellRole = Literal["step", "parameters", "setup", "skip", "unassigned", "markdown", "raw"]
# Names IPython provides that generated modules import explicitly, so they run and lint anywhere.
IPYTHON_IMPORTS = {
    "display": "from IPython.display import display",
    "get_ipython": "from IPython import get_ipython",
}


@dataclass(frozen=True)
class Hoist:
    """Code copied into a step so a name it uses exists there: an import, a def, a setup line."""

    code: str
    cell: int  # index of the cell it comes from (-1 for nb2prod's own imports)
    order: tuple[int, int, int]  # (cell, statement, event): notebook order
    is_import: bool
    names: tuple[str, ...] = ()
    unused: bool = False  # kept for its side effect; nothing reads the name
    definition: bool = False  # a def or class: objects passed between steps may need it
    needs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Input:
    name: str
    step: str  # the step that produces it
    alias_of: str | None = None  # the same object as another input: load once, then alias


@dataclass(frozen=True)
class MetricsCell:
    cell: int
    names: tuple[str, ...]  # scalars the cell assigns (or prints, for Kale)
    last: str | None  # expression giving the dict it ends with: "_" or a variable name


@dataclass
class StepPlan:
    name: str
    role: str
    cells: list[int] = field(default_factory=list)
    kale: bool = False
    # Engine-facing settings from Kale 2.x tags (cache, image, limit, secret, annotation, label,
    # report), plain JSON-ready data; pipeline.yaml keeps them per step for the compilers.
    engine: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Input] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    parameters: set[str] = field(default_factory=set)
    hoisted: dict[str, Hoist] = field(default_factory=dict)  # by code
    metrics: list[MetricsCell] = field(default_factory=list)
    prev: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    # Working state of the planner.
    local: set[str] = field(default_factory=set)
    available: set[str] = field(default_factory=set)
    all_binds: set[str] = field(default_factory=set)
    own_definitions: list[Hoist] = field(default_factory=list)
    pending_imports: dict[str, Hoist] = field(default_factory=dict)
    data_names: set[str] = field(default_factory=set)  # assigned data (not imports or defs)

    @property
    def module(self) -> str:
        return f"steps/{self.name}.py"

    def to_json(self, param_order: list[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "module": self.module,
            "cells": self.cells,
            "inputs": [
                {"name": i.name, "from": i.step}
                for i in sorted(self.inputs.values(), key=lambda i: i.name)
            ],
            "outputs": sorted(self.outputs),
            "parameters": [p for p in param_order if p in self.parameters],
            "metrics": sorted({n for m in self.metrics for n in m.names}),
            "depends_on": self.depends_on,
            "hoisted": sorted({n for h in self.hoisted.values() for n in h.names}),
            "engine": self.engine,
        }


@dataclass
class CellPlan:
    index: int
    id: str | None
    cell_type: str
    tags: tuple[str, ...]
    role: CellRole
    step: str | None = None
    metrics: bool = False
    analysis: CellAnalysis | None = None

    def to_json(self, source: str) -> dict[str, Any]:
        a = self.analysis
        first = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
        return {
            "index": self.index,
            "id": self.id,
            "type": self.cell_type,
            "tags": list(self.tags),
            "role": self.role,
            "step": self.step,
            "metrics": self.metrics,
            "defines": sorted(a.writes) if a else [],
            "reads": sorted(a.reads) if a else [],
            "mutates": sorted(a.mutates) if a else [],
            "deletes": sorted(a.deletes) if a else [],
            "summary": first[:80],
        }


@dataclass
class Plan:
    notebook: Notebook
    name: str
    cells: list[CellPlan]
    parameters: list[Parameter]
    steps: list[StepPlan]  # in run order
    edges: list[tuple[str, str]]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def unassigned(self) -> list[int]:
        return [c.index for c in self.cells if c.role == "unassigned"]

    def step(self, name: str) -> StepPlan:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, Any]:
        order = [p.name for p in self.parameters]
        return {
            "schema_version": SCHEMA_VERSION,
            "notebook": str(self.notebook.path),
            "notebook_sha256": self.notebook.sha256,
            "name": self.name,
            "parameters": [
                {
                    "name": p.name,
                    "value": p.value,
                    "type": p.type,
                    "help": p.help,
                    "cell": p.cell.index,
                    "used_by": [s.name for s in self.steps if p.name in s.parameters],
                }
                for p in self.parameters
            ],
            "steps": [s.to_json(order) for s in self.steps],
            "dag": {
                "order": [s.name for s in self.steps],
                "edges": [list(e) for e in self.edges],
            },
            "cells": [c.to_json(self.notebook.cells[c.index].source) for c in self.cells],
            "unassigned": self.unassigned,
            "problems": [problem_json(p, str(self.notebook.path)) for p in self.problems],
        }


def problem_json(p: Problem, notebook: str) -> dict[str, Any]:
    """One entry of ``problems`` in the plan JSON (docs/inspect-json.md)."""
    return {
        "code": p.code,
        "severity": p.severity,
        "message": p.message,
        "fix": p.fix,
        "cell": None if p.cell is None else {"index": p.cell.index, "id": p.cell.id},
        "variable": p.variable,
        "text": p.render(notebook),
    }


@dataclass(frozen=True)
class _Def:
    """What last gave a name its value, as the notebook runs top to bottom."""

    kind: Literal["data", "hoist", "param", "unassigned", "deleted"]
    cell: int
    step: str | None = None
    hoist: Hoist | None = None
    needs: frozenset[str] = frozenset()
    global_writes: frozenset[str] = frozenset()


class _Planner:
    def __init__(self, nb: Notebook) -> None:
        self.nb = nb
        self.problems: list[Problem] = []
        self._seen_problems: set[tuple[str, str | None, str | None]] = set()
        self.cells: list[CellPlan] = []
        self.steps: dict[str, StepPlan] = {}
        self.parameters: dict[str, Parameter] = {}
        self.last: dict[str, _Def] = {}
        self.aliases: dict[str, frozenset[str]] = {}
        self.setup_effects: list[Hoist] = []
        # Cells whose role an unknown tag left undetermined, and the untagged cells after them.
        self.undetermined: set[int] = set()

    # --- helpers ------------------------------------------------------------------------------
    def ref(self, index: int) -> CellRef:
        return CellRef(index, self.nb.cells[index].id)

    def problem(
        self,
        code: str,
        message: str,
        fix: str,
        cell: int | None = None,
        variable: str | None = None,
        severity: Literal["error", "warning"] = "error",
        key: str | None = None,
        cause: int | None = None,
    ) -> None:
        """Report a problem at ``cell``; ``cause`` is another cell it stems from, if any."""
        if code in FOLLOW_ON_PROBLEMS and ({cell, cause} & self.undetermined):
            return  # a consequence of an unknown tag, which is reported itself
        dedupe = (code, variable, key if key is not None else str(cell))
        if dedupe in self._seen_problems:
            return
        self._seen_problems.add(dedupe)
        ref = None if cell is None else self.ref(cell)
        self.problems.append(Problem(code, severity, message, fix, ref, variable))

    # --- pass 1: roles from tags --------------------------------------------------------------
    def classify(self) -> None:
        step_roles = load_grammar().step_roles
        current: StepPlan | None = None
        after_unknown = False  # untagged cells after an undetermined one share its fate
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                self.cells.append(
                    CellPlan(
                        cell.index,
                        cell.id,
                        cell.cell_type,
                        cell.tags,
                        "markdown" if cell.cell_type == "markdown" else "raw",
                    )
                )
                continue
            parsed: list[ParsedTag] = []
            engine: list[EngineTag] = []
            role_unknown = False
            for tag in cell.tags:
                try:
                    e = parse_engine_tag(tag)
                    p = None if e is not None else parse_tag(tag)
                except TagError as exc:
                    self.problem(
                        exc.code, exc.message, exc.fix, cell.index, key=f"{cell.index}:{tag}"
                    )
                    role_unknown |= exc.code != "bad-engine-tag"
                    continue
                if e is not None:
                    engine.append(e)
                elif p is not None:
                    parsed.append(p)
            main = [p for p in parsed if not p.spec.modifier]
            if main and main[0].role in step_roles:
                after_unknown = False
            elif not main and (role_unknown or after_unknown):
                # Its tag was probably meant to give it a role (a typo such as `Preprocessing`);
                # what follows from guessing one would only bury the real mistake.
                self.undetermined.add(cell.index)
                after_unknown = True
            kinds = {(p.role, p.name) for p in main}
            if len(kinds) > 1:
                shown = ", ".join(f"`{p.tag}`" for p in main)
                self.problem(
                    "conflicting-tags",
                    f"has more than one role: {shown}.",
                    "keep one of them; a cell belongs to one step or marker.",
                    cell.index,
                )
            metrics = any(p.role == "metrics" for p in parsed)
            prevs = [p.name for p in parsed if p.spec.tag == "prev" and p.name]
            plan = CellPlan(
                cell.index, cell.id, cell.cell_type, cell.tags, "unassigned", metrics=metrics
            )
            first = main[0] if main else None
            if first is not None and first.role in step_roles:
                name = first.name
                if name is None:
                    if first.role == "step":  # Kale's empty `block:` continues the block
                        if current is None:
                            self.problem(
                                "unsafe-name",
                                f"tag `{first.tag}` has no step name.",
                                "write `step:NAME`.",
                                cell.index,
                            )
                            self.cells.append(plan)
                            continue
                        name = current.name
                    else:
                        name = first.role or "step"
                role = first.role or "step"
                existing = self.steps.get(name)
                if existing is None:
                    current = self.steps[name] = StepPlan(name, role, kale=first.spec.kale)
                elif existing.role != role:
                    self.problem(
                        "duplicate-step",
                        f"step `{name}` is already {_a(existing.role)} step (from cell "
                        f"{existing.cells[0] + 1}), so it cannot also be {_a(role)} step.",
                        f"give this step another name, e.g. `{role}:{name}_2`.",
                        cell.index,
                    )
                    current = existing
                elif existing is not current and not first.spec.kale:
                    self.problem(
                        "duplicate-step",
                        f"starts step `{name}` again, but that step already started in cell "
                        f"{existing.cells[0] + 1}.",
                        f"name the steps apart, e.g. `{role}:{name}_a` and `{role}:{name}_b`.",
                        cell.index,
                    )
                    current = existing
                else:
                    current = existing
                plan.role, plan.step = "step", current.name
            elif first is not None:
                plan.role = first.role  # type: ignore[assignment]
                if (
                    first.role in ("parameters", "setup", "skip")
                    and metrics
                    and first.role != "skip"
                ):
                    self.problem(
                        "conflicting-tags",
                        f"is tagged both `{first.tag}` and metrics.",
                        "metrics cells belong inside a step; drop one tag.",
                        cell.index,
                    )
            elif current is not None:
                plan.role, plan.step = "step", current.name
            if plan.role == "step" and plan.step is not None:
                step = self.steps[plan.step]
                step.cells.append(cell.index)
                for prev in prevs:
                    if prev not in step.prev:
                        step.prev.append(prev)
                if cell.index not in self.undetermined:
                    for e in engine:
                        self.engine_setting(step, e, cell.index)
            elif engine:
                self.problem(
                    "engine-tag-outside-step",
                    f"has `{engine[0].tag}`, but is not in a step, so the tag has no effect.",
                    "put it on the first cell of the step it is meant for.",
                    cell.index,
                    severity="warning",
                )
            elif prevs:
                self.problem(
                    "conflicting-tags",
                    "has a `prev:` tag but is not in a step.",
                    "put `prev:NAME` on the step's first cell.",
                    cell.index,
                )
            if metrics and plan.role == "unassigned":
                self.problem(
                    "metrics-outside-step",
                    "is tagged metrics but is not inside any step.",
                    "move it below the step whose results it measures, or tag a step above it.",
                    cell.index,
                )
            self.cells.append(plan)

    def engine_setting(self, step: StepPlan, e: EngineTag, cell: int) -> None:
        """Record one Kale engine tag in ``step.engine``; two values for one setting conflict."""
        f = e.fields
        value: Any
        if e.spec.shape == "value":
            entry, value = e.key, f["value"]
            current = step.engine.get(e.key)
            step.engine.setdefault(e.key, value)
        elif e.spec.shape == "map":
            entry, value = f"{e.key}:{f['key']}", f["value"]
            current = step.engine.setdefault(e.key, {}).get(f["key"])
            step.engine[e.key].setdefault(f["key"], value)
        else:  # secret: one entry per environment variable, as Kale keys them
            entry, value = f"{e.key}:{f['env']}", dict(f)
            entries = step.engine.setdefault(e.key, [])
            current = next((x for x in entries if x["env"] == f["env"]), None)
            if current is None:
                entries.append(value)
                entries.sort(key=lambda x: x["env"])
        if current is not None and current != value:
            self.problem(
                "conflicting-tags",
                f"sets `{entry}` of step `{step.name}` again, to a different value (`{e.tag}`).",
                f"keep one `{e.key}:` tag for it on the step's cells.",
                cell,
                key=f"{cell}:{e.tag}",
            )

    def engine_defaults(self) -> None:
        """Kale's notebook-wide settings, for steps that do not set their own (as Kale does).

        ``steps_defaults`` (tags applied to every step), then ``enable_caching: false`` and
        ``base_image``, all from the notebook's ``kubeflow_notebook`` metadata.
        """
        kale = self.nb.kale
        tags = kale.get("steps_defaults")
        defaults: list[EngineTag] = []
        for tag in tags if isinstance(tags, list) else []:
            try:
                e = parse_engine_tag(tag) if isinstance(tag, str) else None
            except TagError as exc:
                e = None
                self.problem(
                    "bad-engine-tag",
                    f"the notebook's Kale `steps_defaults`: {exc.message} It is ignored.",
                    exc.fix,
                    key=f"defaults:{tag}",
                    severity="warning",
                )
            if e is not None:
                defaults.append(e)
        if kale.get("enable_caching") is False:
            defaults.append(parse_engine_tag("cache:disabled"))  # type: ignore[arg-type]
        image = kale.get("base_image")
        if isinstance(image, str) and image:
            try:
                defaults.append(parse_engine_tag(f"image:{image}"))  # type: ignore[arg-type]
            except TagError:
                self.problem(
                    "bad-engine-tag",
                    f"the notebook's Kale `base_image` `{image}` is not a valid image name; "
                    "it is ignored.",
                    "set `base_image` to an image name such as `python:3.11-slim` in the "
                    "notebook's Kale settings.",
                    key="defaults:base_image",
                    severity="warning",
                )
        for step in self.steps.values():
            for e in defaults:  # in order of precedence: the first to set an entry wins
                if _engine_entry(e) not in _engine_entries(step.engine):
                    self.engine_setting(step, e, step.cells[0])
            # One key order everywhere (the grammar's), so generated files are stable.
            order = list(load_grammar().engine_tags)
            step.engine = {k: _sorted_setting(step.engine[k]) for k in order if k in step.engine}

    # --- pass 2: per-cell analysis ------------------------------------------------------------
    def analyse(self) -> None:
        for plan in self.cells:
            if plan.cell_type != "code":
                continue
            cell = self.nb.cells[plan.index]
            plan.analysis = analyse_cell(cell.source)
            a = plan.analysis
            if a.syntax_error is not None:
                line = f" on line {a.syntax_line}" if a.syntax_line else ""
                self.problem(
                    "syntax-error",
                    f"has a syntax error{line}: {a.syntax_error}.",
                    "fix the code, or tag the cell `skip` if it is not part of the pipeline.",
                    plan.index,
                    severity="warning" if plan.role == "skip" else "error",
                )
            if plan.role != "skip":
                for magic in sorted(set(a.unknown_magics)):
                    self.problem(
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
                    self.problem(
                        "reserved-name",
                        f"uses the name `{name}`, which nb2prod reserves for generated code.",
                        "rename the variable.",
                        plan.index,
                        name,
                    )

    def parameters_pass(self) -> None:
        for plan in self.cells:
            if plan.role != "parameters":
                continue
            params, problems = parse_parameters(
                self.nb.cells[plan.index].source, self.ref(plan.index)
            )
            self.problems.extend(problems)
            for p in params:
                if p.name in self.parameters:
                    first = self.parameters[p.name]
                    self.problem(
                        "duplicate-parameter",
                        f"sets parameter `{p.name}` again; {first.cell.label()} already sets it.",
                        "keep one assignment per parameter.",
                        plan.index,
                        p.name,
                    )
                    continue
                self.parameters[p.name] = p

    # --- pass 3: replay in notebook order -----------------------------------------------------
    def tables(self) -> None:
        self.first_data: dict[str, int] = {}
        self.first_define: dict[str, tuple[int, int, int, Event]] = {}
        self.skip_writes: dict[str, int] = {}
        self.all_reads: set[str] = set()
        self.step_reads: dict[str, set[str]] = {}
        self.star_imports: list[Hoist] = []
        self.side_effect_imports: dict[int, list[Hoist]] = {}
        imports: list[tuple[Hoist, tuple[str, ...]]] = []
        for plan in self.cells:
            a = plan.analysis
            if a is None:
                continue
            for si, stmt in enumerate(a.statements):
                for ei, e in enumerate(stmt.events):
                    if e.kind in ("read", "mutate"):
                        self.all_reads.add(e.name)
                    elif e.kind == "define":
                        self.all_reads |= e.needs
                    if plan.role == "skip":
                        if e.kind in ("write", "define"):
                            self.skip_writes.setdefault(e.name, plan.index)
                        continue
                    if e.kind == "define" and e.code is not None:
                        self.first_define.setdefault(e.name, (plan.index, si, ei, e))
                        if e.is_import and import_for_side_effect(e.code, e.noqa):
                            h = Hoist(e.code, plan.index, (plan.index, si, ei), True, (e.name,))
                            imports.append((h, (e.name,)))
                    elif e.kind == "write" and plan.role != "parameters":
                        self.first_data.setdefault(e.name, plan.index)
                if stmt.star_import and plan.role != "skip":
                    self.star_imports.append(
                        Hoist(stmt.source, plan.index, (plan.index, si, 0), True, ())
                    )
            if plan.step is not None:
                self.steps[plan.step].all_binds |= a.writes
                reads = self.step_reads.setdefault(plan.step, set())
                for stmt in a.statements:
                    reads |= stmt.needs
        # An import whose name nothing reads may be there for its side effect (sklearn's
        # `enable_*` modules, plugin registration; see import_for_side_effect). It goes
        # wherever its cell's code goes. Any other unused import goes nowhere.
        for h, names in imports:
            if not set(names) & self.all_reads:
                self.side_effect_imports.setdefault(h.cell, []).append(replace(h, unused=True))

    def replay(self) -> None:
        for plan in self.cells:
            a = plan.analysis
            if a is None or plan.role == "skip":
                continue
            if plan.role == "parameters":
                for p in self.parameters.values():
                    if p.cell.index == plan.index:
                        self.set(p.name, _Def("param", plan.index))
                self.replay_definitions(plan, a)
            elif plan.role == "setup":
                self.replay_setup(plan, a)
            elif plan.role == "unassigned":
                self.replay_unassigned(plan, a)
            elif plan.step is not None:
                step = self.steps[plan.step]
                if plan.index == step.cells[0]:
                    self.enter_step(step)
                self.replay_step(step, plan, a)

    def set(self, name: str, d: _Def) -> None:
        self.last[name] = d

    def replay_definitions(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "define" and e.code is not None:
                    self.set(e.name, self.define_def(plan.index, si, ei, e))

    def define_def(self, cell: int, si: int, ei: int, e: Event) -> _Def:
        h = Hoist(
            e.code or "",
            cell,
            (cell, si, ei),
            e.is_import,
            (e.name,),
            definition=not e.is_import,
            needs=e.needs,
        )
        return _Def("hoist", cell, hoist=h, needs=e.needs, global_writes=e.global_writes)

    def replay_setup(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            if stmt.kind in ("import", "def"):
                for ei, e in enumerate(stmt.events):
                    if e.kind == "define":
                        self.set(e.name, self.define_def(plan.index, si, ei, e))
                continue
            h = Hoist(
                stmt.source, plan.index, (plan.index, si, 0), False, stmt.binds, needs=stmt.needs
            )
            if stmt.binds:
                for name in stmt.binds:
                    self.set(name, _Def("hoist", plan.index, hoist=h, needs=stmt.needs))
            else:
                self.setup_effects.append(h)

    def replay_unassigned(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "define" and e.code is not None:
                    self.set(e.name, self.define_def(plan.index, si, ei, e))
                elif e.kind == "write":
                    self.set(e.name, _Def("unassigned", plan.index))
                elif e.kind == "mutate":
                    current = self.last.get(e.name)
                    if current is None or current.kind != "hoist":
                        self.set(e.name, _Def("unassigned", plan.index))
                elif e.kind == "delete":
                    self.set(e.name, _Def("deleted", plan.index))

    def enter_step(self, step: StepPlan) -> None:
        first = step.cells[0]
        setup = {c.index for c in self.cells if c.role == "setup"}
        for cell, hoists in self.side_effect_imports.items():
            if cell in setup or cell in step.cells:
                for h in hoists:
                    step.hoisted.setdefault(h.code, h)
        for h in self.setup_effects:
            if h.cell < first:
                self.hoist(step, h, h.needs, first)

    def replay_step(self, step: StepPlan, plan: CellPlan, a: CellAnalysis) -> None:
        cell = plan.index
        moves_imports = a.lines_match_source
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "read":
                    self.need(step, e.name, cell)
                    d = self.last.get(e.name)
                    if d is not None and d.global_writes:
                        for g in d.global_writes:  # calling f() assigns the globals f declares
                            self.write(step, g, cell)
                elif e.kind == "mutate":
                    d = self.last.get(e.name)
                    if d is not None and d.kind == "hoist" and e.name not in step.local:
                        self.need(step, e.name, cell)  # a module or function: nothing to pass on
                        continue
                    self.need(step, e.name, cell)
                    for name in self.aliases.get(e.name, frozenset({e.name})):
                        if name != e.name:
                            self.need(step, name, cell)
                        self.write(step, name, cell, keep_alias=True)
                elif e.kind == "write":
                    self.write(step, e.name, cell, alias_of=e.alias_of)
                elif e.kind == "define":
                    step.local.add(e.name)
                    step.defines.add(e.name)
                    self.unalias(e.name)
                    d = self.define_def(cell, si, ei, e)
                    self.set(e.name, d)
                    if d.hoist is not None and stmt.kind == "import" and moves_imports:
                        # The import line moves to the module's import cell (it leaves the
                        # cell's code), kept only if this step uses the name.
                        side_effect = e.name not in self.all_reads and import_for_side_effect(
                            d.hoist.code, e.noqa
                        )
                        if e.name in self.step_reads[step.name] or side_effect:
                            step.hoisted.setdefault(
                                d.hoist.code, replace(d.hoist, unused=side_effect)
                            )
                        else:  # maybe needed later by a hoisted function's body
                            step.pending_imports[e.name] = d.hoist
                    if d.hoist is not None and d.hoist.definition:
                        step.own_definitions.append(d.hoist)
                    for name in sorted(e.needs - step.all_binds):
                        self.need(step, name, cell)
                elif e.kind == "delete":
                    step.local.discard(e.name)
                    step.available.discard(e.name)
                    self.unalias(e.name)
                    self.set(e.name, _Def("deleted", cell))
        if plan.metrics:
            self.metrics_cell(step, plan, a)

    def write(
        self,
        step: StepPlan,
        name: str,
        cell: int,
        alias_of: str | None = None,
        keep_alias: bool = False,
    ) -> None:
        step.local.add(name)
        step.defines.add(name)
        step.data_names.add(name)
        self.set(name, _Def("data", cell, step.name))
        if keep_alias:
            return
        self.unalias(name)
        if alias_of is not None and alias_of not in IPYTHON_NAMES:
            group = self.aliases.get(alias_of, frozenset({alias_of})) | {name}
            for member in group:
                self.aliases[member] = group

    def unalias(self, name: str) -> None:
        group = self.aliases.pop(name, None)
        if group is not None:
            rest = group - {name}
            for member in rest:
                self.aliases[member] = rest

    def hoist(self, step: StepPlan, h: Hoist, needs: frozenset[str], cell: int) -> None:
        if h.code in step.hoisted:
            return
        step.hoisted[h.code] = h
        if h.is_import:
            for other in self.side_effect_imports.get(h.cell, []):
                step.hoisted.setdefault(other.code, other)
        step.available.update(h.names)
        for name in sorted(needs - step.all_binds):
            self.need(step, name, cell)

    def need(self, step: StepPlan, name: str, cell: int) -> None:
        """Make ``name`` exist in ``step`` when ``cell`` reads it."""
        pending = step.pending_imports.pop(name, None)
        if pending is not None:
            step.hoisted.setdefault(pending.code, pending)
        if name in step.local or name in step.available:
            return
        step.available.add(name)
        d = self.last.get(name)
        if d is None:
            self.resolve_missing(step, name, cell)
        elif d.kind == "hoist" and d.hoist is not None:
            self.hoist(step, d.hoist, d.needs, cell)
        elif d.kind == "param":
            step.parameters.add(name)
        elif d.kind == "data" and d.step is not None and d.step != step.name:
            alias = next(
                (
                    i.name
                    for i in step.inputs.values()
                    if i.step == d.step and i.name in self.aliases.get(name, frozenset())
                ),
                None,
            )
            step.inputs[name] = Input(name, d.step, alias)
            self.steps[d.step].outputs.add(name)
        elif d.kind == "unassigned":
            self.problem(
                "unassigned-name",
                f"reads `{name}`, which is set in cell {d.cell + 1}, a cell outside every step "
                "(the pipeline never runs it).",
                f"tag cell {d.cell + 1} `setup` (re-run in every step that needs it), make "
                f"`{name}` a parameter, or start a step at cell {d.cell + 1}.",
                cell,
                name,
                cause=d.cell,
            )
        elif d.kind == "deleted":
            self.problem(
                "undefined-name",
                f"reads `{name}`, but cell {d.cell + 1} deleted it before this cell runs.",
                f"remove the `del {name}` or stop reading it here.",
                cell,
                name,
                cause=d.cell,
            )

    def resolve_missing(self, step: StepPlan, name: str, cell: int) -> None:
        if name in IPYTHON_IMPORTS:
            code = IPYTHON_IMPORTS[name]
            step.hoisted.setdefault(code, Hoist(code, -1, (-1, 0, 0), True, (name,)))
            return
        if name in BUILTIN_NAMES or name in IPYTHON_NAMES:
            return
        if name in self.first_define:  # an import or def further down: hoisting fixes the order
            ci, si, ei, e = self.first_define[name]
            d = self.define_def(ci, si, ei, e)
            assert d.hoist is not None
            self.hoist(step, d.hoist, d.needs, cell)
            return
        if name in self.first_data and self.first_data[name] > cell:
            later = self.first_data[name]
            self.problem(
                "order",
                f"reads `{name}` before it is defined: it is first set in cell {later + 1}, "
                "further down, so the notebook only worked because cells ran out of order.",
                f"move the code that sets `{name}` above this cell (or this cell below cell "
                f"{later + 1}), then re-run the notebook top to bottom.",
                cell,
                name,
                cause=later,
            )
        elif self.star_imports:
            for h in self.star_imports:
                self.hoist(step, h, frozenset(), cell)
            self.problem(
                "star-import",
                f"reads `{name}`, assumed to come from a `from ... import *`.",
                "import the name explicitly so each step's imports are exact.",
                cell,
                name,
                severity="warning",
            )
        elif name in self.skip_writes:
            skip = self.skip_writes[name]
            self.problem(
                "skip-only-name",
                f"reads `{name}`, which is only set in cell {skip + 1}, a `skip` cell that "
                "the pipeline never runs.",
                f"remove the `skip` tag from cell {skip + 1}, or set `{name}` in a step.",
                cell,
                name,
            )
        else:
            self.problem(
                "undefined-name",
                f"reads `{name}`, which no cell defines.",
                f"define `{name}` in a step, a setup cell or the parameters, or fix the typo.",
                cell,
                name,
            )

    def metrics_cell(self, step: StepPlan, plan: CellPlan, a: CellAnalysis) -> None:
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
        step.metrics.append(MetricsCell(plan.index, tuple(dict.fromkeys(names)), last))

    def carry_definitions(self) -> None:
        """Give each step the functions and classes its producers had.

        Pickled objects refer to their class (or a function they hold, as in sklearn's
        FunctionTransformer) by name in ``__main__``; the loading step must define it too.
        """
        available: dict[str, dict[str, Hoist]] = {}
        for step in sorted(self.steps.values(), key=lambda s: s.cells[0]):
            carried: dict[str, Hoist] = {}
            for producer in sorted({i.step for i in step.inputs.values()}):
                carried.update(available.get(producer, {}))
            for code, h in sorted(carried.items(), key=lambda kv: kv[1].order):
                if code in step.hoisted or set(h.names) & step.all_binds:
                    continue
                if not all(self.carriable(step, name) for name in h.needs):
                    continue  # it needs data or parameters: defining it here would not work
                step.hoisted[code] = h
                for name in sorted(h.needs - step.local - step.available):
                    d = self.last.get(name)
                    if d is not None and d.kind == "hoist" and d.hoist is not None:
                        self.hoist(step, d.hoist, d.needs, step.cells[0])
            mine = {h.code: h for h in step.own_definitions}
            mine.update({c: h for c, h in step.hoisted.items() if h.definition})
            available[step.name] = {**carried, **mine}

    def carriable(self, step: StepPlan, name: str) -> bool:
        if name in BUILTIN_NAMES or name in IPYTHON_NAMES or name in step.local | step.available:
            return True
        d = self.last.get(name)
        return d is not None and d.kind == "hoist"

    # --- pass 4: DAG --------------------------------------------------------------------------
    def dag(self) -> tuple[list[StepPlan], list[tuple[str, str]]]:
        deps: dict[str, set[str]] = {s: set() for s in self.steps}
        for step in self.steps.values():
            for i in step.inputs.values():
                deps[step.name].add(i.step)
            for prev in step.prev:
                if prev not in self.steps:
                    self.problem(
                        "unknown-step",
                        f"says `prev:{prev}`, but there is no step `{prev}`.",
                        "fix the name or remove the tag.",
                        step.cells[0],
                        key=f"prev:{prev}",
                    )
                elif prev == step.name:
                    continue
                else:
                    if self.steps[prev].cells[0] > step.cells[0]:
                        self.problem(
                            "order",
                            f"says step `{step.name}` runs after `{prev}`, but `{prev}` comes "
                            "later in the notebook.",
                            "reorder the cells so the notebook runs top to bottom.",
                            step.cells[0],
                            key=f"prev:{prev}",
                        )
                    deps[step.name].add(prev)
        first = {name: s.cells[0] for name, s in self.steps.items()}
        order: list[StepPlan] = []
        done: set[str] = set()
        pending = sorted(self.steps, key=first.__getitem__)
        while pending:
            ready = [n for n in pending if deps[n] <= done]
            if not ready:
                cycle = ", ".join(f"`{n}`" for n in pending)
                self.problem(
                    "cycle",
                    f"steps {cycle} depend on each other in a cycle.",
                    "split the steps so data flows one way, top to bottom.",
                    first[pending[0]],
                )
                ready = [pending[0]]
            nxt = ready[0]
            order.append(self.steps[nxt])
            done.add(nxt)
            pending.remove(nxt)
        for step in self.steps.values():
            step.depends_on = sorted(deps[step.name], key=lambda n: first.get(n, 0))
        edges = [(d, s.name) for s in order for d in s.depends_on]
        return order, edges

    # --- pass 5: randomness that no seed fixes --------------------------------------------------
    def randomness(self) -> None:
        trees = {
            c.index: c.analysis.tree
            for c in self.cells
            if c.analysis is not None and c.analysis.tree is not None and c.role != "skip"
        }
        aliases = import_aliases(trees.values())
        if not aliases:
            return
        mentions = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(aliases))) + r")\b")
        uses: dict[int, list[RandomUse]] = {}
        for index, tree in trees.items():
            role = self.cells[index].role
            if role in ("step", "setup") and mentions.search(self.nb.cells[index].source):
                uses[index] = random_uses(tree, aliases)
        # A seed counts in a setup cell above the step (it runs at the start of every later
        # step) and in the step's own cells up to the one that draws.
        setup_seeds: list[tuple[int, frozenset[str]]] = []
        step_seeds: dict[str, frozenset[str]] = {}
        for plan in self.cells:
            found = uses.get(plan.index, [])
            here = frozenset(g for u in found for g in seeds(u.kind))
            if plan.role == "setup":
                setup_seeds.append((plan.index, here))
                seeded = frozenset(g for _, s in setup_seeds for g in s)
            elif plan.role == "step" and plan.step is not None:
                first = self.steps[plan.step].cells[0]
                mine = step_seeds[plan.step] = step_seeds.get(plan.step, frozenset()) | here
                seeded = mine | {g for i, s in setup_seeds if i < first for g in s}
            else:
                continue
            self.unseeded(plan.index, [u for u in found if not seeds(u.kind)], seeded)

    def unseeded(self, cell: int, found: list[RandomUse], seeded: frozenset[str]) -> None:
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
            self.problem(
                "unseeded-random",
                message + drift + ".",
                fix,
                cell,
                severity="warning",
                key=f"{cell}:{kind}",
            )

    # --- pass 6: MLflow settings a step must not change ------------------------------------------
    def mlflow_overrides(self) -> None:
        """Under ``nb2prod run`` a step's own MLflow calls log to that step's run in the
        pipeline's experiment; switching experiment or tracking URI in the step makes MLflow
        refuse to resume that run, so the step would fail. Say so before anything runs."""
        for plan in self.cells:
            a = plan.analysis
            source = self.nb.cells[plan.index].source
            if plan.role not in ("step", "setup") or a is None or a.tree is None:
                continue
            if "mlflow" not in source or not any(f in source for f in MLFLOW_OVERRIDES):
                continue
            for call in sorted(_mlflow_calls(a.tree, MLFLOW_OVERRIDES)):
                self.problem(
                    "mlflow-override",
                    f"calls `mlflow.{call}(...)`. Under `nb2prod run`, MLflow calls in a step log "
                    "to that step's run in the pipeline's own experiment, and MLflow refuses to "
                    "resume it after this call, so the step would fail.",
                    "remove the call: the experiment is named after the pipeline (`--name`), "
                    "and `MLFLOW_TRACKING_URI` chooses the tracking server.",
                    plan.index,
                    key=f"{plan.index}:{call}",
                )

    def finish(self) -> None:
        if not self.steps and not any(p.code in TAG_PROBLEMS for p in self.problems):
            self.problems.append(
                Problem(
                    "no-steps",
                    "error",
                    "no cell is tagged as a step, so there is nothing to export.",
                    "tag the first cell of each step `preprocessing`, `training` or "
                    "`evaluation` (or `training:NAME` for several steps of one role).",
                )
            )
        used = {p for s in self.steps.values() for p in s.parameters}
        for c in self.cells:  # read by a cell an unknown tag left without a role: not unused
            if c.index in self.undetermined and c.analysis is not None:
                used |= c.analysis.reads
        for p in self.parameters.values():
            if p.name not in used and self.steps:
                self.problem(
                    "unused-parameter",
                    f"sets parameter `{p.name}`, but no step reads it.",
                    "use it in a step or remove it.",
                    p.cell.index,
                    p.name,
                    severity="warning",
                )


def _a(word: str) -> str:
    """``a training``, ``an evaluation``."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _engine_entry(e: EngineTag) -> str:
    """What an engine tag sets: ``cache``, ``limit:cpu``, ``secret:DB_PASSWORD``."""
    sub = e.fields.get("env") if e.spec.shape == "list" else e.fields.get("key")
    return e.key if e.spec.shape == "value" else f"{e.key}:{sub}"


def _engine_entries(engine: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in engine.items():
        if isinstance(value, dict):
            out |= {f"{key}:{k}" for k in value}
        elif isinstance(value, list):
            out |= {f"{key}:{x['env']}" for x in value}
        else:
            out.add(key)
    return out


def _sorted_setting(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    if isinstance(value, list):
        return sorted(value, key=lambda x: x["env"])
    return value


def _single_node(stmt: Statement) -> ast.stmt | None:
    try:
        tree = ast.parse(stmt.source)
    except SyntaxError:
        return None
    return tree.body[0] if len(tree.body) == 1 else None


MLFLOW_OVERRIDES = ("set_experiment", "set_tracking_uri")


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


def build_plan(nb: Notebook, name: str | None = None) -> Plan:
    planner = _Planner(nb)
    planner.classify()
    planner.engine_defaults()
    planner.analyse()
    planner.parameters_pass()
    planner.tables()
    planner.replay()
    planner.carry_definitions()
    order, edges = planner.dag()
    planner.randomness()
    planner.mlflow_overrides()
    planner.finish()
    problems = sorted(
        planner.problems,
        key=lambda p: (p.severity != "error", p.cell.index if p.cell else -1),
    )
    return Plan(
        notebook=nb,
        name=name or default_pipeline_name(nb.path),
        cells=planner.cells,
        parameters=list(planner.parameters.values()),
        steps=order,
        edges=edges,
        problems=problems,
    )


def default_pipeline_name(path: Path) -> str:
    return make_safe_name(path.stem, "pipeline")


def inspect_notebook(path: str | Path, name: str | None = None) -> Plan:
    """Read ``path`` and plan its pipeline. Raises NotebookError for unusable files."""
    return build_plan(read_notebook(path), name)


def inspect_notebook_json(raw: object, path: str | Path, name: str | None = None) -> Plan:
    """Plan a notebook given as parsed JSON (unsaved editor content); ``path`` only names it."""
    return build_plan(notebook_from_json(raw, path), name)


__all__ = [
    "Cell",
    "Plan",
    "StepPlan",
    "build_plan",
    "inspect_notebook",
    "inspect_notebook_json",
    "problem_json",
]
