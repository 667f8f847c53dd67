"""The problem log every pass reports to: one entry per finding, follow-on findings muted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import CellRef, Problem
from .notebook import Notebook

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
        "serving-unknown-name",
        "skip-only-name",
        "order",
        "metrics-outside-step",
        "unused-parameter",
        "star-import",
        "unseeded-random",
        "engine-tag-outside-step",
    }
)


@dataclass
class ProblemLog:
    """Problems in the order the passes find them (the final sort is stable, so order counts)."""

    nb: Notebook
    problems: list[Problem] = field(default_factory=list)
    # Cells whose role an unknown tag left undetermined, and the untagged cells after them.
    # The roles pass fills it as it goes; follow-on problems at these cells are not reported.
    undetermined: set[int] = field(default_factory=set)
    _seen: set[tuple[str, str | None, str | None]] = field(
        default_factory=set, init=False, repr=False
    )

    def ref(self, index: int) -> CellRef:
        return CellRef(index, self.nb.cells[index].id)

    def report(
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
        if dedupe in self._seen:
            return
        self._seen.add(dedupe)
        ref = None if cell is None else self.ref(cell)
        self.problems.append(Problem(code, severity, message, fix, ref, variable))

    def add(self, problems: list[Problem]) -> None:
        """Add problems found elsewhere (e.g. by the parameters parser) as they are."""
        self.problems.extend(problems)

    def has_tag_problem(self) -> bool:
        return any(p.code in TAG_PROBLEMS for p in self.problems)

    def in_report_order(self) -> list[Problem]:
        """Errors first, then by cell; problems without a cell lead (stable within each)."""
        return sorted(
            self.problems, key=lambda p: (p.severity != "error", p.cell.index if p.cell else -1)
        )
