"""Pass 3, data flow: what each step needs from outside itself, and from where.

Every cell's name events are replayed in notebook order (skip cells excluded), keeping track of
which cell last defined or changed each name. A step's read of a name it does not define itself
is resolved against that record: a parameter, an import or definition to hoist, or data produced
by an earlier step (an input, and so a dependency). What cannot be resolved is a problem naming
the cell and the variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .analysis import BUILTIN_NAMES, IPYTHON_NAMES, CellAnalysis, Event, import_for_side_effect
from .metrics import metrics_cell
from .model import CellPlan, Hoist, Input, StepPlan
from .params import Parameter
from .problems import ProblemLog

# Names IPython provides that generated modules import explicitly, so they run and lint anywhere.
IPYTHON_IMPORTS = {
    "display": "from IPython.display import display",
    "get_ipython": "from IPython import get_ipython",
}


@dataclass
class NameTables:
    """Facts about names across the whole notebook, gathered before the replay."""

    first_data: dict[str, int] = field(default_factory=dict)  # first cell assigning data
    first_define: dict[str, tuple[int, int, int, Event]] = field(default_factory=dict)
    skip_writes: dict[str, int] = field(default_factory=dict)  # first `skip` cell setting it
    all_reads: set[str] = field(default_factory=set)  # read anywhere
    step_reads: dict[str, set[str]] = field(default_factory=dict)  # read by each step
    step_binds: dict[str, set[str]] = field(default_factory=dict)  # bound by each step
    star_imports: list[Hoist] = field(default_factory=list)
    side_effect_imports: dict[int, list[Hoist]] = field(default_factory=dict)  # by cell


@dataclass(frozen=True)
class Definition:
    """What last gave a name its value, as the notebook runs top to bottom."""

    kind: Literal["data", "hoist", "param", "unassigned", "deleted"]
    cell: int
    step: str | None = None
    hoist: Hoist | None = None
    needs: frozenset[str] = frozenset()
    global_writes: frozenset[str] = frozenset()


@dataclass
class StepState:
    """A step's names while the replay goes through it."""

    binds: set[str]  # every name any of its cells binds
    local: set[str] = field(default_factory=set)  # set by the step itself so far
    available: set[str] = field(default_factory=set)  # made to exist in it: inputs, hoists...
    own_definitions: list[Hoist] = field(default_factory=list)
    pending_imports: dict[str, Hoist] = field(default_factory=dict)  # kept if the name is read


def name_tables(cells: list[CellPlan]) -> NameTables:
    t = NameTables()
    imports: list[Hoist] = []
    for plan in cells:
        a = plan.analysis
        if a is None:
            continue
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind in ("read", "mutate"):
                    t.all_reads.add(e.name)
                elif e.kind == "define":
                    t.all_reads |= e.needs
                if plan.role == "skip":
                    if e.kind in ("write", "define"):
                        t.skip_writes.setdefault(e.name, plan.index)
                    continue
                if e.kind == "define" and e.code is not None:
                    t.first_define.setdefault(e.name, (plan.index, si, ei, e))
                    if e.is_import and import_for_side_effect(e.code, e.noqa):
                        imports.append(
                            Hoist(e.code, plan.index, (plan.index, si, ei), True, (e.name,))
                        )
                elif e.kind == "write" and plan.role != "parameters":
                    t.first_data.setdefault(e.name, plan.index)
            if stmt.star_import and plan.role != "skip":
                t.star_imports.append(Hoist(stmt.source, plan.index, (plan.index, si, 0), True, ()))
        if plan.step is not None:
            t.step_binds.setdefault(plan.step, set()).update(a.writes)
            reads = t.step_reads.setdefault(plan.step, set())
            for stmt in a.statements:
                reads |= stmt.needs
    # An import whose name nothing reads may be there for its side effect (sklearn's
    # `enable_*` modules, plugin registration; see import_for_side_effect). It goes
    # wherever its cell's code goes. Any other unused import goes nowhere.
    for h in imports:
        if not set(h.names) & t.all_reads:
            t.side_effect_imports.setdefault(h.cell, []).append(replace(h, unused=True))
    return t


def trace_data_flow(
    cells: list[CellPlan],
    steps: dict[str, StepPlan],
    parameters: dict[str, Parameter],
    log: ProblemLog,
) -> DataFlow:
    """Fill in each step's inputs, outputs, parameters, hoisted code and metrics; the replay's
    final state is what the serving function sees."""
    flow = DataFlow(cells, steps, parameters, name_tables(cells), log)
    flow.replay()
    flow.carry_definitions()
    return flow


def _define(cell: int, si: int, ei: int, e: Event) -> Definition:
    h = Hoist(
        e.code or "",
        cell,
        (cell, si, ei),
        e.is_import,
        (e.name,),
        definition=not e.is_import,
        needs=e.needs,
    )
    return Definition("hoist", cell, hoist=h, needs=e.needs, global_writes=e.global_writes)


class DataFlow:
    def __init__(
        self,
        cells: list[CellPlan],
        steps: dict[str, StepPlan],
        parameters: dict[str, Parameter],
        tables: NameTables,
        log: ProblemLog,
    ) -> None:
        self.cells = cells
        self.steps = steps
        self.parameters = parameters
        self.tables = tables
        self.log = log
        self.state = {n: StepState(set(tables.step_binds.get(n, ()))) for n in steps}
        self.last: dict[str, Definition] = {}
        self.aliases: dict[str, frozenset[str]] = {}  # names bound to one object, by name
        self.setup_effects: list[Hoist] = []  # setup statements that bind nothing

    # --- the replay, cell by cell ---------------------------------------------------------------
    def replay(self) -> None:
        for plan in self.cells:
            a = plan.analysis
            if a is None or plan.role == "skip":
                continue
            if plan.role == "parameters":
                for p in self.parameters.values():
                    if p.cell.index == plan.index:
                        self.last[p.name] = Definition("param", plan.index)
                self.replay_definitions(plan, a)
            elif plan.role == "setup":
                self.replay_setup(plan, a)
            elif plan.role == "serving":  # its one def, hoisted where it is called
                self.replay_definitions(plan, a)
            elif plan.role == "unassigned":
                self.replay_unassigned(plan, a)
            elif plan.step is not None:
                step = self.steps[plan.step]
                if plan.index == step.cells[0]:
                    self.enter_step(step)
                self.replay_step(step, plan, a)

    def replay_definitions(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "define" and e.code is not None:
                    self.last[e.name] = _define(plan.index, si, ei, e)

    def replay_setup(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            if stmt.kind in ("import", "def"):
                for ei, e in enumerate(stmt.events):
                    if e.kind == "define":
                        self.last[e.name] = _define(plan.index, si, ei, e)
                continue
            h = Hoist(
                stmt.source, plan.index, (plan.index, si, 0), False, stmt.binds, needs=stmt.needs
            )
            if stmt.binds:
                for name in stmt.binds:
                    self.last[name] = Definition("hoist", plan.index, hoist=h, needs=stmt.needs)
            else:
                self.setup_effects.append(h)

    def replay_unassigned(self, plan: CellPlan, a: CellAnalysis) -> None:
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "define" and e.code is not None:
                    self.last[e.name] = _define(plan.index, si, ei, e)
                elif e.kind == "write":
                    self.last[e.name] = Definition("unassigned", plan.index)
                elif e.kind == "mutate":
                    current = self.last.get(e.name)
                    if current is None or current.kind != "hoist":
                        self.last[e.name] = Definition("unassigned", plan.index)
                elif e.kind == "delete":
                    self.last[e.name] = Definition("deleted", plan.index)

    def enter_step(self, step: StepPlan) -> None:
        first = step.cells[0]
        setup = {c.index for c in self.cells if c.role == "setup"}
        for cell, hoists in self.tables.side_effect_imports.items():
            if cell in setup or cell in step.cells:
                for h in hoists:
                    step.hoisted.setdefault(h.code, h)
        for h in self.setup_effects:
            if h.cell < first:
                self.hoist(step, h, h.needs, first)

    def replay_step(self, step: StepPlan, plan: CellPlan, a: CellAnalysis) -> None:
        cell = plan.index
        state = self.state[step.name]
        for si, stmt in enumerate(a.statements):
            for ei, e in enumerate(stmt.events):
                if e.kind == "read":
                    self.need(step, e.name, cell)
                    d = self.last.get(e.name)
                    if d is not None and d.global_writes:
                        for g in d.global_writes:  # calling f() assigns the globals f declares
                            self.write(step, g, cell)
                elif e.kind == "mutate":
                    self.mutate(step, e.name, cell)
                elif e.kind == "write":
                    self.write(step, e.name, cell, alias_of=e.alias_of)
                elif e.kind == "define":
                    self.define(step, plan, a, si, ei, e)
                elif e.kind == "delete":
                    state.local.discard(e.name)
                    state.available.discard(e.name)
                    self.unalias(e.name)
                    self.last[e.name] = Definition("deleted", cell)
        if plan.metrics:
            step.metrics.append(metrics_cell(plan, a))

    def mutate(self, step: StepPlan, name: str, cell: int) -> None:
        d = self.last.get(name)
        if d is not None and d.kind == "hoist" and name not in self.state[step.name].local:
            self.need(step, name, cell)  # a module or function: nothing to pass on
            return
        self.need(step, name, cell)
        for other in self.aliases.get(name, frozenset({name})):
            if other != name:
                self.need(step, other, cell)
            self.write(step, other, cell, keep_alias=True)

    def define(
        self, step: StepPlan, plan: CellPlan, a: CellAnalysis, si: int, ei: int, e: Event
    ) -> None:
        """An import, def or class in a step's own cell."""
        state = self.state[step.name]
        state.local.add(e.name)
        step.defines.add(e.name)
        self.unalias(e.name)
        d = self.last[e.name] = _define(plan.index, si, ei, e)
        if d.hoist is not None and a.statements[si].kind == "import" and a.lines_match_source:
            # The import line moves to the module's import cell (it leaves the
            # cell's code), kept only if this step uses the name.
            side_effect = e.name not in self.tables.all_reads and import_for_side_effect(
                d.hoist.code, e.noqa
            )
            if e.name in self.tables.step_reads[step.name] or side_effect:
                step.hoisted.setdefault(d.hoist.code, replace(d.hoist, unused=side_effect))
            else:  # maybe needed later by a hoisted function's body
                state.pending_imports[e.name] = d.hoist
        if d.hoist is not None and d.hoist.definition:
            state.own_definitions.append(d.hoist)
        for name in sorted(e.needs - state.binds):
            self.need(step, name, plan.index)

    def write(
        self,
        step: StepPlan,
        name: str,
        cell: int,
        alias_of: str | None = None,
        keep_alias: bool = False,
    ) -> None:
        self.state[step.name].local.add(name)
        step.defines.add(name)
        step.data_names.add(name)
        self.last[name] = Definition("data", cell, step.name)
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

    # --- making a name exist in a step ----------------------------------------------------------
    def hoist(self, step: StepPlan, h: Hoist, needs: frozenset[str], cell: int) -> None:
        if h.code in step.hoisted:
            return
        step.hoisted[h.code] = h
        if h.is_import:
            for other in self.tables.side_effect_imports.get(h.cell, []):
                step.hoisted.setdefault(other.code, other)
        state = self.state[step.name]
        state.available.update(h.names)
        for name in sorted(needs - state.binds):
            self.need(step, name, cell)

    def need(self, step: StepPlan, name: str, cell: int) -> None:
        """Make ``name`` exist in ``step`` when ``cell`` reads it."""
        state = self.state[step.name]
        pending = state.pending_imports.pop(name, None)
        if pending is not None:
            step.hoisted.setdefault(pending.code, pending)
        if name in state.local or name in state.available:
            return
        state.available.add(name)
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
            self.log.report(
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
            self.log.report(
                "undefined-name",
                f"reads `{name}`, but cell {d.cell + 1} deleted it before this cell runs.",
                f"remove the `del {name}` or stop reading it here.",
                cell,
                name,
                cause=d.cell,
            )

    def resolve_missing(self, step: StepPlan, name: str, cell: int) -> None:
        """A name nothing above has set: an IPython name, a later import, or a problem."""
        t = self.tables
        if name in IPYTHON_IMPORTS:
            code = IPYTHON_IMPORTS[name]
            step.hoisted.setdefault(code, Hoist(code, -1, (-1, 0, 0), True, (name,)))
            return
        if name in BUILTIN_NAMES or name in IPYTHON_NAMES:
            return
        if name in t.first_define:  # an import or def further down: hoisting fixes the order
            d = _define(*t.first_define[name])
            assert d.hoist is not None
            self.hoist(step, d.hoist, d.needs, cell)
            return
        if name in t.first_data and t.first_data[name] > cell:
            later = t.first_data[name]
            self.log.report(
                "order",
                f"reads `{name}` before it is defined: it is first set in cell {later + 1}, "
                "further down, so the notebook only worked because cells ran out of order.",
                f"move the code that sets `{name}` above this cell (or this cell below cell "
                f"{later + 1}), then re-run the notebook top to bottom.",
                cell,
                name,
                cause=later,
            )
        elif t.star_imports:
            for h in t.star_imports:
                self.hoist(step, h, frozenset(), cell)
            self.log.report(
                "star-import",
                f"reads `{name}`, assumed to come from a `from ... import *`.",
                "import the name explicitly so each step's imports are exact.",
                cell,
                name,
                severity="warning",
            )
        elif name in t.skip_writes:
            skip = t.skip_writes[name]
            self.log.report(
                "skip-only-name",
                f"reads `{name}`, which is only set in cell {skip + 1}, a `skip` cell that "
                "the pipeline never runs.",
                f"remove the `skip` tag from cell {skip + 1}, or set `{name}` in a step.",
                cell,
                name,
            )
        else:
            self.log.report(
                "undefined-name",
                f"reads `{name}`, which no cell defines.",
                f"define `{name}` in a step, a setup cell or the parameters, or fix the typo.",
                cell,
                name,
            )

    # --- after the replay -----------------------------------------------------------------------
    def carry_definitions(self) -> None:
        """Give each step the functions and classes its producers had.

        Pickled objects refer to their class (or a function they hold, as in sklearn's
        FunctionTransformer) by name in ``__main__``; the loading step must define it too.
        """
        available: dict[str, dict[str, Hoist]] = {}
        for step in sorted(self.steps.values(), key=lambda s: s.cells[0]):
            state = self.state[step.name]
            carried: dict[str, Hoist] = {}
            for producer in sorted({i.step for i in step.inputs.values()}):
                carried.update(available.get(producer, {}))
            for code, h in sorted(carried.items(), key=lambda kv: kv[1].order):
                if code in step.hoisted or set(h.names) & state.binds:
                    continue
                if not all(self.carriable(step, name) for name in h.needs):
                    continue  # it needs data or parameters: defining it here would not work
                step.hoisted[code] = h
                for name in sorted(h.needs - state.local - state.available):
                    d = self.last.get(name)
                    if d is not None and d.kind == "hoist" and d.hoist is not None:
                        self.hoist(step, d.hoist, d.needs, step.cells[0])
            mine = {h.code: h for h in state.own_definitions}
            mine.update({c: h for c, h in step.hoisted.items() if h.definition})
            available[step.name] = {**carried, **mine}

    def carriable(self, step: StepPlan, name: str) -> bool:
        state = self.state[step.name]
        if name in BUILTIN_NAMES or name in IPYTHON_NAMES or name in state.local | state.available:
            return True
        d = self.last.get(name)
        return d is not None and d.kind == "hoist"
