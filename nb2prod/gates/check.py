"""Evaluating gates after a run: each gate's value, bound and verdict, and the overall status."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .baseline import Baseline
from .expr import Gate

PASSED, FAILED, NO_BASELINE, NOT_CHECKED = "passed", "failed", "no baseline", "not checked"


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    status: str  # passed, failed, no baseline
    value: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        g = self.gate
        return {
            "expr": g.expr,
            "metric": g.metric,
            "op": g.op,
            "help": g.help,
            "origin": g.origin,
            "value": self.value,
            "baseline": self.baseline,
            "threshold": self.threshold,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class GateReport:
    status: str  # passed, failed, or not checked (a step failed)
    results: list[GateResult] = field(default_factory=list)
    promote: bool = False
    promoted: dict[str, Any] | None = None  # {"models": {name: version}} once promoted

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "results": [r.to_json() for r in self.results],
            "promote": self.promote,
            "promoted": self.promoted,
        }


def number(value: Any) -> float | None:
    """A metric as a float; None for a missing or non-numeric value. NaN stays NaN (run.json
    stores it as the string "NaN")."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return None


def check_gates(
    gates: Iterable[Gate],
    metrics: Mapping[str, Any],
    baseline: Baseline | None,
    require_baseline: bool = False,
    promote: bool = False,
) -> GateReport:
    results = [_check(g, metrics, baseline, require_baseline) for g in gates]
    status = FAILED if any(r.status == FAILED for r in results) else PASSED
    return GateReport(status, results, promote)


def not_checked(gates: Iterable[Gate], promote: bool = False) -> GateReport:
    """The report of a run whose steps did not all succeed: its gates were not evaluated."""
    return GateReport(
        NOT_CHECKED,
        [GateResult(g, NOT_CHECKED, reason="a step did not succeed") for g in gates],
        promote,
    )


def _check(
    gate: Gate, metrics: Mapping[str, Any], baseline: Baseline | None, require: bool
) -> GateResult:
    value = number(metrics.get(gate.metric))
    if gate.metric not in metrics or value is None:
        return GateResult(gate, FAILED, reason=f"this run logged no metric `{gate.metric}`")
    if math.isnan(value):
        return GateResult(gate, FAILED, value, reason=f"`{gate.metric}` is NaN")
    base: float | None = None
    if gate.uses_baseline:
        base = number(baseline.metrics.get(gate.metric)) if baseline is not None else None
        if base is None or math.isnan(base):
            why = (
                "there is no baseline run"
                if baseline is None
                else f"the baseline run {baseline.label} has no metric `{gate.metric}`"
                if base is None
                else f"the baseline's `{gate.metric}` is NaN"
            )
            if require:
                return GateResult(gate, FAILED, value, reason=f"{why} (--require-baseline)")
            return GateResult(gate, NO_BASELINE, value, reason=why)
    try:
        bound = gate.bound(base)
    except ZeroDivisionError:
        return GateResult(gate, FAILED, value, base, reason="its bound divides by zero")
    if gate.holds(value, bound):
        return GateResult(gate, PASSED, value, base, bound)
    shown = f"{_short(value)} is not {gate.op} {_short(bound)}"
    return GateResult(gate, FAILED, value, base, bound, reason=shown)


def _short(value: float) -> str:
    return f"{value:.6g}"
