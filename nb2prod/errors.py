"""Problems and exceptions shared by every part of nb2prod.

A :class:`Problem` is a finding about a notebook (it can be shown in the side panel or the CLI);
an :class:`Nb2prodError` stops a command with exit code 2 and a one-paragraph message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class CellRef:
    """A notebook cell, named the same way in every message: position and stable id."""

    index: int  # 0-based position in the notebook, independent of execution
    id: str | None = None

    @property
    def number(self) -> int:
        return self.index + 1

    def label(self) -> str:
        return f"cell {self.number}" + (f" (id {self.id})" if self.id else "")


@dataclass(frozen=True)
class Problem:
    code: str
    severity: Severity
    message: str
    fix: str
    cell: CellRef | None = None
    variable: str | None = None

    def render(self, notebook: str) -> str:
        where = f"{notebook}, {self.cell.label()}" if self.cell else notebook
        return f"{where}: {self.message} Fix: {self.fix}"


class Nb2prodError(Exception):
    """Bad input or usage. The CLI prints the message (no traceback) and exits with code 2."""

    exit_code = 2

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)


class NotebookError(Nb2prodError):
    """The notebook file cannot be used at all (unreadable, malformed, wrong version or kernel)."""


class PlanError(Nb2prodError):
    """The notebook can be read but has errors that block export."""

    @classmethod
    def from_problems(cls, notebook: str, problems: Iterable[Problem]) -> PlanError:
        errors = [p for p in problems if p.severity == "error"]
        text = "\n\n".join(p.render(notebook) for p in errors)
        noun = "problem" if len(errors) == 1 else "problems"
        return cls(f"{text}\n\n{len(errors)} {noun}; nothing was written.", errors)
