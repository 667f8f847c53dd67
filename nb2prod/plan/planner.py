"""From a notebook to a plan: steps, their cells, inputs, outputs, parameters and the DAG.

The planning itself is a series of passes in :mod:`nb2prod.plan`, each with one job; this
module runs them in order and keeps the plan's public types and entry points in one place.
Everything that cannot be planned becomes a :class:`~nb2prod.errors.Problem` naming the cell and
the variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Problem
from ..gates.expr import Gate
from ..version_folder import default_pipeline_name
from .checks import (
    MLFLOW_OVERRIDES,
    analyse_cells,
    check_mlflow_overrides,
    check_plan,
    check_randomness,
    read_parameters,
)
from .datafiles import find_data_reads
from .dataflow import IPYTHON_IMPORTS, trace_data_flow
from .gates import read_gates
from .model import CellPlan, CellRole, Hoist, Input, MetricsCell, StepPlan
from .notebook import Cell, Notebook, notebook_from_json, read_notebook
from .ordering import order_steps
from .params import Parameter
from .problems import FOLLOW_ON_PROBLEMS, TAG_PROBLEMS, ProblemLog
from .roles import apply_engine_defaults, assign_roles
from .serving import ServingPlan, read_serving

SCHEMA_VERSION = 1


@dataclass
class Plan:
    notebook: Notebook
    name: str
    cells: list[CellPlan]
    parameters: list[Parameter]
    steps: list[StepPlan]  # in run order
    edges: list[tuple[str, str]]
    problems: list[Problem]
    gates: list[Gate] = field(default_factory=list)
    serving: ServingPlan | None = None

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
            "gates": [g.to_json() for g in self.gates],
            "serving": None if self.serving is None else self.serving.to_json(),
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


def build_plan(nb: Notebook, name: str | None = None) -> Plan:
    """Run the planning passes over ``nb``; the order matters, each uses what the last found."""
    log = ProblemLog(nb)
    roles = assign_roles(nb, log)
    apply_engine_defaults(nb, roles.steps, log)
    analyse_cells(nb, roles.cells, log)
    parameters = read_parameters(nb, roles.cells, log)
    flow = trace_data_flow(roles.cells, roles.steps, parameters, log)
    serving = read_serving(nb, roles.cells, roles.steps, flow, log)
    ordering = order_steps(roles.steps, log)
    find_data_reads(nb.path, roles.cells, roles.steps, parameters, log)
    check_randomness(nb, roles.cells, roles.steps, log)
    check_mlflow_overrides(nb, roles.cells, log)
    serving_reads = frozenset(n for n, _ in serving.needs) if serving is not None else frozenset()
    check_plan(roles.cells, roles.steps, parameters, log, serving_reads)
    gates = read_gates(nb, roles.cells, roles.steps, log)
    return Plan(
        notebook=nb,
        name=name or default_pipeline_name(nb.path),
        cells=roles.cells,
        parameters=list(parameters.values()),
        steps=ordering.steps,
        edges=ordering.edges,
        problems=log.in_report_order(),
        gates=gates,
        serving=serving,
    )


def inspect_notebook(path: str | Path, name: str | None = None) -> Plan:
    """Read ``path`` and plan its pipeline. Raises NotebookError for unusable files."""
    return build_plan(read_notebook(path), name)


def inspect_notebook_json(raw: object, path: str | Path, name: str | None = None) -> Plan:
    """Plan a notebook given as parsed JSON (unsaved editor content); ``path`` only names it."""
    return build_plan(notebook_from_json(raw, path), name)


__all__ = [
    "FOLLOW_ON_PROBLEMS",
    "IPYTHON_IMPORTS",
    "MLFLOW_OVERRIDES",
    "SCHEMA_VERSION",
    "TAG_PROBLEMS",
    "Cell",
    "CellPlan",
    "CellRole",
    "Hoist",
    "Input",
    "MetricsCell",
    "Plan",
    "ServingPlan",
    "StepPlan",
    "build_plan",
    "default_pipeline_name",
    "inspect_notebook",
    "inspect_notebook_json",
    "problem_json",
]
