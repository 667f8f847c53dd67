"""Pass 1, roles: which step or marker each cell belongs to, from its tags, and the steps'
engine settings (Kale 2.x tags and the notebook's Kale defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..grammar import EngineTag, ParsedTag, TagError, load_grammar, parse_engine_tag, parse_tag
from .model import CellPlan, CellRole, Roles, StepPlan
from .notebook import Cell, Notebook
from .problems import ProblemLog


def assign_roles(nb: Notebook, log: ProblemLog) -> Roles:
    """Every cell's role and step; undetermined cells are recorded in ``log.undetermined``."""
    assigner = _RoleAssigner(log)
    for cell in nb.cells:
        assigner.add(cell)
    return Roles(assigner.cells, assigner.steps)


@dataclass
class _CellTags:
    parsed: list[ParsedTag]
    engine: list[EngineTag]
    role_unknown: bool  # a tag that failed to parse was probably meant to give a role


class _RoleAssigner:
    """Walks the cells top to bottom: an untagged cell continues the step above it."""

    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.step_roles = load_grammar().step_roles
        self.cells: list[CellPlan] = []
        self.steps: dict[str, StepPlan] = {}
        self.current: StepPlan | None = None
        self.after_unknown = False  # untagged cells after an undetermined one share its fate

    def add(self, cell: Cell) -> None:
        if cell.cell_type != "code":
            role: CellRole = "markdown" if cell.cell_type == "markdown" else "raw"
            self.cells.append(CellPlan(cell.index, cell.id, cell.cell_type, cell.tags, role))
            return
        tags = self.read_tags(cell)
        main = [p for p in tags.parsed if not p.spec.modifier]
        if main and main[0].role in self.step_roles:
            self.after_unknown = False
        elif not main and (tags.role_unknown or self.after_unknown):
            # Its tag was probably meant to give it a role (a typo such as `Preprocessing`);
            # what follows from guessing one would only bury the real mistake.
            self.log.undetermined.add(cell.index)
            self.after_unknown = True
        kinds = {(p.role, p.name) for p in main}
        if len(kinds) > 1:
            shown = ", ".join(f"`{p.tag}`" for p in main)
            self.log.report(
                "conflicting-tags",
                f"has more than one role: {shown}.",
                "keep one of them; a cell belongs to one step or marker.",
                cell.index,
            )
        metrics = any(p.role == "metrics" for p in tags.parsed)
        prevs = [p.name for p in tags.parsed if p.spec.tag == "prev" and p.name]
        plan = CellPlan(
            cell.index, cell.id, cell.cell_type, cell.tags, "unassigned", metrics=metrics
        )
        first = main[0] if main else None
        if first is not None and first.role in self.step_roles:
            step = self.start_step(first, cell.index)
            if step is None:
                self.cells.append(plan)
                return
            plan.role, plan.step = "step", step.name
        elif first is not None:
            self.mark(plan, first, metrics)
        elif self.current is not None:
            plan.role, plan.step = "step", self.current.name
        self.place(plan, tags.engine, prevs)
        self.cells.append(plan)

    def read_tags(self, cell: Cell) -> _CellTags:
        tags = _CellTags([], [], False)
        for tag in cell.tags:
            try:
                e = parse_engine_tag(tag)
                p = None if e is not None else parse_tag(tag)
            except TagError as exc:
                self.log.report(
                    exc.code, exc.message, exc.fix, cell.index, key=f"{cell.index}:{tag}"
                )
                tags.role_unknown |= exc.code != "bad-engine-tag"
                continue
            if e is not None:
                tags.engine.append(e)
            elif p is not None:
                tags.parsed.append(p)
        return tags

    def start_step(self, first: ParsedTag, cell: int) -> StepPlan | None:
        """The step a step tag puts ``cell`` in (None: a `block:` tag with nothing to continue)."""
        name = first.name
        if name is None:
            if first.role == "step":  # Kale's empty `block:` continues the block
                if self.current is None:
                    self.log.report(
                        "unsafe-name",
                        f"tag `{first.tag}` has no step name.",
                        "write `step:NAME`.",
                        cell,
                    )
                    return None
                name = self.current.name
            else:
                name = first.role or "step"
        role = first.role or "step"
        existing = self.steps.get(name)
        if existing is None:
            self.current = self.steps[name] = StepPlan(name, role, kale=first.spec.kale)
        elif existing.role != role:
            self.log.report(
                "duplicate-step",
                f"step `{name}` is already {_a(existing.role)} step (from cell "
                f"{existing.cells[0] + 1}), so it cannot also be {_a(role)} step.",
                f"give this step another name, e.g. `{role}:{name}_2`.",
                cell,
            )
            self.current = existing
        elif existing is not self.current and not first.spec.kale:
            self.log.report(
                "duplicate-step",
                f"starts step `{name}` again, but that step already started in cell "
                f"{existing.cells[0] + 1}.",
                f"name the steps apart, e.g. `{role}:{name}_a` and `{role}:{name}_b`.",
                cell,
            )
            self.current = existing
        else:
            self.current = existing
        return self.current

    def mark(self, plan: CellPlan, first: ParsedTag, metrics: bool) -> None:
        """A marker tag: parameters, setup, skip (the cell is in no step)."""
        plan.role = first.role  # type: ignore[assignment]
        if first.role in ("parameters", "setup", "gates", "serving") and metrics:
            self.log.report(
                "conflicting-tags",
                f"is tagged both `{first.tag}` and metrics.",
                "metrics cells belong inside a step; drop one tag.",
                plan.index,
            )

    def place(self, plan: CellPlan, engine: list[EngineTag], prevs: list[str]) -> None:
        """Add a step cell to its step, with its `prev:` and engine tags; check the others."""
        if plan.role == "step" and plan.step is not None:
            step = self.steps[plan.step]
            step.cells.append(plan.index)
            for prev in prevs:
                if prev not in step.prev:
                    step.prev.append(prev)
            if plan.index not in self.log.undetermined:
                for e in engine:
                    engine_setting(step, e, plan.index, self.log)
        elif engine:
            self.log.report(
                "engine-tag-outside-step",
                f"has `{engine[0].tag}`, but is not in a step, so the tag has no effect.",
                "put it on the first cell of the step it is meant for.",
                plan.index,
                severity="warning",
            )
        elif prevs:
            self.log.report(
                "conflicting-tags",
                "has a `prev:` tag but is not in a step.",
                "put `prev:NAME` on the step's first cell.",
                plan.index,
            )
        if plan.metrics and plan.role == "unassigned":
            self.log.report(
                "metrics-outside-step",
                "is tagged metrics but is not inside any step.",
                "move it below the step whose results it measures, or tag a step above it.",
                plan.index,
            )


def engine_setting(step: StepPlan, e: EngineTag, cell: int, log: ProblemLog) -> None:
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
        log.report(
            "conflicting-tags",
            f"sets `{entry}` of step `{step.name}` again, to a different value (`{e.tag}`).",
            f"keep one `{e.key}:` tag for it on the step's cells.",
            cell,
            key=f"{cell}:{e.tag}",
        )


def apply_engine_defaults(nb: Notebook, steps: dict[str, StepPlan], log: ProblemLog) -> None:
    """Kale's notebook-wide settings, for steps that do not set their own (as Kale does).

    ``steps_defaults`` (tags applied to every step), then ``enable_caching: false`` and
    ``base_image``, all from the notebook's ``kubeflow_notebook`` metadata.
    """
    defaults = _engine_defaults(nb, log)
    order = list(load_grammar().engine_tags)
    for step in steps.values():
        for e in defaults:  # in order of precedence: the first to set an entry wins
            if _engine_entry(e) not in _engine_entries(step.engine):
                engine_setting(step, e, step.cells[0], log)
        # One key order everywhere (the grammar's), so generated files are stable.
        step.engine = {k: _sorted_setting(step.engine[k]) for k in order if k in step.engine}


def _engine_defaults(nb: Notebook, log: ProblemLog) -> list[EngineTag]:
    kale = nb.kale
    tags = kale.get("steps_defaults")
    defaults: list[EngineTag] = []
    for tag in tags if isinstance(tags, list) else []:
        try:
            e = parse_engine_tag(tag) if isinstance(tag, str) else None
        except TagError as exc:
            e = None
            log.report(
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
            log.report(
                "bad-engine-tag",
                f"the notebook's Kale `base_image` `{image}` is not a valid image name; "
                "it is ignored.",
                "set `base_image` to an image name such as `python:3.11-slim` in the "
                "notebook's Kale settings.",
                key="defaults:base_image",
                severity="warning",
            )
    return defaults


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
