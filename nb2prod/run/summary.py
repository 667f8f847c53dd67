"""The end-of-run report, as ``nb2prod run`` prints it: status, failures, metrics, where to look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..gates.report import gates_text
from ..serving.outcome import summary_line


def _timing(record: dict[str, Any], total: float | None) -> str:
    """``in 8.9s (steps 5.6s, MLflow 3.1s, start-up 0.2s)``: the parts add up to what the user
    waited, ``total`` being the command's own wall time when the caller measured it."""
    steps = float(record.get("duration") or 0)
    serving = record.get("serving") or {}
    model = float(serving.get("duration") or 0)
    steps = max(steps - model, 0.0)  # the run's duration includes building the serving model
    tracking = record.get("tracking") or {}
    mlflow = float(tracking.get("duration") or 0) if tracking.get("state") == "done" else 0.0
    if total is None:
        total = steps + model + mlflow
    parts = [f"steps {steps:.1f}s"]
    if serving:
        parts.append(f"serving model {model:.1f}s")
    if tracking:
        parts.append(f"MLflow {mlflow:.1f}s")
    rest = total - steps - model - mlflow
    if rest >= 0.05:
        parts.append(f"start-up {rest:.1f}s")
    return f"in {total:.1f}s ({', '.join(parts)})" if len(parts) > 1 else f"in {total:.1f}s"


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else str(value)


def run_text(record: dict[str, Any], run_dir: Path, total: float | None = None) -> str:
    """The end-of-run report: status, failures (a short paragraph each), metrics, where to look.

    ``total``: seconds the caller waited in all, when it measured them (the CLI does).
    """
    status = record["status"]
    lines = [
        "",
        f"{record['pipeline']} v{record['version']}: {status} {_timing(record, total)}"
        f" (run {record['id']})",
    ]
    if record.get("error"):
        lines.append(f"run failed: {record['error']}")
    for warning in record.get("warnings") or []:
        lines.append(f"warning: {warning}")
    environment = record.get("environment") or {}
    for difference in environment.get("differences") or []:
        lines.append(f"environment: {difference} (requirements.txt of the version)")
    cached = [n for n, s in record["steps"].items() if s["state"] == "cached"]
    if cached:
        lines.append(f"reused from earlier runs: {', '.join(cached)}")
    for name, step in record["steps"].items():
        error = step.get("error")
        if step["state"] != "failed" or not error:
            continue
        where = f" in notebook {error['cell']}" if error.get("cell") else ""
        lines += ["", f"step {name} failed{where}:", f"  {error.get('message', '')}"]
        source = (error.get("source") or "").strip().splitlines()
        if source:
            lines.append("  cell source:")
            lines += [f"    {line}" for line in source[:8]]
            if len(source) > 8:
                lines.append("    ...")
        if step.get("notebook"):
            lines.append(f"  executed notebook: {run_dir / step['notebook']}")
    skipped = [n for n, s in record["steps"].items() if s["state"] == "skipped" and s.get("error")]
    if skipped:
        lines.append(f"not run (an upstream step failed): {', '.join(skipped)}")
    metrics = record.get("metrics") or {}
    if metrics:
        lines += ["", "metrics:"] + [f"  {k} = {_value(v)}" for k, v in metrics.items()]
    lines += gates_text(record)
    serving = summary_line(record)
    if serving is not None:
        lines += ["", serving]
    lines += ["", f"run folder: {run_dir}"]
    tracking = record.get("tracking")
    if tracking and tracking.get("state", "done") == "done":
        if tracking.get("ok"):
            uri = str(tracking.get("uri"))
            browse = (
                uri
                if uri.startswith(("http://", "https://"))
                else (f"mlflow ui --backend-store-uri {uri}")
            )
            lines.append(
                f"MLflow: experiment {tracking.get('experiment')!r}, run {tracking.get('run_id')} "
                f"({uri}); browse: {browse}"
            )
        else:
            error = str(tracking.get("error") or "")
            lines.append(
                error if error.startswith("MLflow") else f"MLflow tracking failed: {error}"
            )
    return "\n".join(lines)
