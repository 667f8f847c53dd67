"""Pass 4, ordering: the steps' dependencies (data they read, `prev:` tags) and their run order.

The run order is a topological order that keeps notebook order wherever the dependencies allow:
of the steps ready to run, the one that starts first in the notebook runs first. When steps
depend on each other in a cycle, the first of the blocked steps runs anyway (after a `cycle`
problem), so a plan is always complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from .model import StepPlan
from .problems import ProblemLog


@dataclass
class Ordering:
    steps: list[StepPlan]  # in run order
    edges: list[tuple[str, str]]  # (producer, consumer), consumers in run order


@dataclass
class RunOrder:
    order: list[str]
    # Each time the steps left were blocked by a cycle: those steps, in notebook order. The
    # first of them was then run regardless.
    blocked: list[list[str]]


def order_steps(steps: dict[str, StepPlan], log: ProblemLog) -> Ordering:
    """Set every step's ``depends_on`` and put the steps in run order."""
    deps = dependencies(steps, log)
    first = {name: s.cells[0] for name, s in steps.items()}
    run = run_order(first, deps)
    for blocked in run.blocked:
        cycle = ", ".join(f"`{n}`" for n in blocked)
        log.report(
            "cycle",
            f"steps {cycle} depend on each other in a cycle.",
            "split the steps so data flows one way, top to bottom.",
            first[blocked[0]],
        )
    for step in steps.values():
        step.depends_on = sorted(deps[step.name], key=lambda n: first.get(n, 0))
    order = [steps[n] for n in run.order]
    return Ordering(order, [(d, s.name) for s in order for d in s.depends_on])


def dependencies(steps: dict[str, StepPlan], log: ProblemLog) -> dict[str, set[str]]:
    """The steps each step runs after: the producers of its inputs and its valid `prev:` tags."""
    deps: dict[str, set[str]] = {s: set() for s in steps}
    for step in steps.values():
        for i in step.inputs.values():
            deps[step.name].add(i.step)
        for prev in step.prev:
            if prev not in steps:
                log.report(
                    "unknown-step",
                    f"says `prev:{prev}`, but there is no step `{prev}`.",
                    "fix the name or remove the tag.",
                    step.cells[0],
                    key=f"prev:{prev}",
                )
            elif prev != step.name:
                if steps[prev].cells[0] > step.cells[0]:
                    log.report(
                        "order",
                        f"says step `{step.name}` runs after `{prev}`, but `{prev}` comes "
                        "later in the notebook.",
                        "reorder the cells so the notebook runs top to bottom.",
                        step.cells[0],
                        key=f"prev:{prev}",
                    )
                deps[step.name].add(prev)
    return deps


def run_order(first: dict[str, int], deps: dict[str, set[str]]) -> RunOrder:
    """Steps in dependency order; among steps ready together, the earliest ``first`` wins.

    ``first`` gives each step's position in the notebook; ``deps`` the steps it runs after.
    graphlib keeps track of what is ready; choosing among the ready ones is ours, since
    graphlib has no priorities. When a cycle blocks every step left, the earliest of them is
    released from its dependencies on the others, and sorting goes on from there.
    """
    left = sorted(first, key=first.__getitem__)
    result = RunOrder([], [])
    release: str | None = None
    while left:
        remaining = set(left)
        graph = {n: set() if n == release else deps[n] & remaining for n in left}
        sorter: TopologicalSorter[str] = TopologicalSorter(graph)
        try:
            sorter.prepare()
        except CycleError:
            pass  # graphlib still hands out every step the cycle does not block
        ready: list[str] = []
        while True:
            ready += sorter.get_ready()
            if not ready:
                break
            nxt = min(ready, key=first.__getitem__)
            ready.remove(nxt)
            sorter.done(nxt)
            result.order.append(nxt)
            left.remove(nxt)
        if left:
            result.blocked.append(list(left))
            release = left[0]
    return result
