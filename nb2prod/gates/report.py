"""Gate results as people and CI read them: a text table, a Markdown table, JUnit test cases."""

from __future__ import annotations

from typing import Any

MARK = {"passed": "pass", "failed": "FAIL", "no baseline": "no baseline", "not checked": "-"}


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:.6g}"


def baseline_text(record: dict[str, Any]) -> str:
    baseline = record.get("baseline")
    if not isinstance(baseline, dict):
        requested = (record.get("gates") or {}).get("baseline_requested")
        return f"none ({requested})" if requested else "none"
    parts = [str(baseline.get("source"))]
    if baseline.get("run_id"):
        parts.append(f"run {baseline['run_id']}")
    if baseline.get("version") is not None:
        parts.append(f"v{baseline['version']}")
    if baseline.get("mlflow_run_id"):
        parts.append(f"MLflow run {baseline['mlflow_run_id']}")
    return ", ".join(parts)


def rows(record: dict[str, Any]) -> list[list[str]]:
    """[gate, value, baseline, threshold, result, reason] per gate."""
    gates = record.get("gates") or {}
    out = []
    for r in gates.get("results") or []:
        status = str(r.get("status"))
        reason = r.get("reason") or ""
        if status == "passed":
            reason = ""
        out.append(
            [
                str(r.get("expr")),
                _num(r.get("value")),
                _num(r.get("baseline")),
                _num(r.get("threshold")),
                MARK.get(status, status),
                str(reason),
            ]
        )
    return out


def gates_text(record: dict[str, Any]) -> list[str]:
    """The lines ``nb2prod run`` prints about the gates (none when the run had none)."""
    gates = record.get("gates")
    if not isinstance(gates, dict):
        return []
    table = rows(record)
    lines = ["", f"gates ({gates.get('status')}; baseline: {baseline_text(record)}):"]
    if table:
        header = ["gate", "value", "baseline", "threshold", "result", ""]
        widths = [max(len(r[i]) for r in [header, *table]) for i in range(5)]
        for r in [header, *table]:
            cells = "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5]))
            lines.append(f"  {cells}  {r[5]}".rstrip())
    else:
        lines.append("  (no gates)")
    if gates.get("status") == "failed":
        moved = " The champion did not move." if gates.get("promote") else ""
        lines.append(f"A gate failed: the run's model is not good enough (exit 4).{moved}")
    promoted = gates.get("promoted")
    if isinstance(promoted, dict):
        models = promoted.get("models") or {}
        shown = ", ".join(f"{k} version {v}" for k, v in models.items())
        where = f" (MLflow registry: {shown}, alias `champion`)" if shown else " (recorded locally)"
        lines.append(f"promoted: this run is now the champion of {record['pipeline']}{where}.")
    elif gates.get("promote") and gates.get("status") == "passed":
        lines.append("not promoted: the run could not be tracked (see below).")
    return lines


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def gates_markdown(record: dict[str, Any]) -> list[str]:
    gates = record.get("gates")
    if not isinstance(gates, dict):
        return []
    icon = {"passed": "✅", "failed": "❌", "no baseline": "➖", "not checked": "⏭️"}
    lines = [
        "",
        f"**Gates: {gates.get('status')}** (baseline: {_md(baseline_text(record))})",
        "",
        "| gate | value | baseline | threshold | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r, raw in zip(rows(record), gates.get("results") or [], strict=False):
        result = f"{icon.get(str(raw.get('status')), '')} {raw.get('status')}"
        if r[5]:
            result += f": {r[5]}"
        lines.append(f"| `{_md(r[0])}` | {r[1]} | {r[2]} | {r[3]} | {_md(result)} |")
    if isinstance(gates.get("promoted"), dict):
        lines += ["", "Promoted: this run is now the champion."]
    return lines
