"""The plain data the planning passes hand to each other and to the code generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .analysis import CellAnalysis

if TYPE_CHECKING:
    from .datafiles import DataRead

CellRole = Literal[
    "step", "parameters", "setup", "gates", "serving", "skip", "unassigned", "markdown", "raw"
]


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
    data_names: set[str] = field(default_factory=set)  # assigned data (not imports or defs)
    data: list[DataRead] = field(default_factory=list)  # files the step reads (plan.datafiles)

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
            "data": [d.to_json() for d in self.data],
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
class Roles:
    """What the roles pass finds: every cell's role, and the steps in notebook order."""

    cells: list[CellPlan]
    steps: dict[str, StepPlan]
