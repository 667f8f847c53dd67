"""Machine-readable run reports for CI: JUnit XML and the GitHub Actions step summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..gates.report import gates_markdown

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def junit_xml(record: dict[str, Any]) -> str:
    """One test case per step, then the serving model's (when the version has one), then one
    per gate; failed steps, serving model and gates fail, skipped and interrupted steps (and
    gates not checked or without a baseline) are skipped."""
    steps = record["steps"]
    gates = (record.get("gates") or {}).get("results") or []
    serving = record.get("serving") if isinstance(record.get("serving"), dict) else None
    suite = ET.Element(
        "testsuite",
        name=f"{record['pipeline']} v{record['version']}",
        tests=str(len(steps) + len(gates) + (serving is not None)),
        failures=str(
            sum(1 for s in steps.values() if s["state"] == "failed")
            + sum(1 for g in gates if g.get("status") == "failed")
            + (serving is not None and serving.get("status") != "ok")
        ),
        skipped=str(
            sum(1 for s in steps.values() if s["state"] in ("skipped", "interrupted"))
            + sum(1 for g in gates if g.get("status") in ("no baseline", "not checked"))
        ),
        time=f"{record.get('duration') or 0:.3f}",
        timestamp=str(record.get("started_at") or ""),
    )
    for name, step in steps.items():
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"nb2prod.{record['pipeline']}",
            name=name,
            time=f"{step.get('duration') or 0:.3f}",
        )
        error = step.get("error") or {}
        if step["state"] == "failed":
            failure = ET.SubElement(
                case,
                "failure",
                message=str(error.get("message", "failed")),
                type=str(error.get("ename", "Error")),
            )
            where = f"in notebook {error['cell']}\n" if error.get("cell") else ""
            trace = "\n".join(_plain(line) for line in error.get("traceback") or [])
            failure.text = f"{where}{trace}".strip() or str(error.get("message", ""))
        elif step["state"] in ("skipped", "interrupted"):
            ET.SubElement(case, "skipped", message=str(error.get("message", step["state"])))
        elif step["state"] == "cached":
            out = ET.SubElement(case, "system-out")
            out.text = f"reused from run {step.get('cached_from')}"
    if serving is not None:
        _serving_case(suite, record, serving)
    for gate in gates:
        _gate_case(suite, record, gate)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _serving_case(suite: ET.Element, record: dict[str, Any], serving: dict[str, Any]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"nb2prod.{record['pipeline']}.serving",
        name=str(serving.get("signature") or serving.get("function") or "serving"),
        time=f"{serving.get('duration') or 0:.3f}",
    )
    if serving.get("status") != "ok":
        kind = "TrainingServingSkew" if serving.get("skew") == "found" else "ServingModelError"
        error = str(serving.get("error") or "the serving model failed")
        ET.SubElement(case, "failure", message=error, type=kind).text = error
    else:
        origin = serving.get("example_from")
        ET.SubElement(case, "system-out").text = (
            f"no training/serving skew on {serving.get('rows')} rows (example from {origin})"
            if serving.get("skew") == "none"
            else "no input example, so no skew check"
        )


def _gate_case(suite: ET.Element, record: dict[str, Any], gate: dict[str, Any]) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=f"nb2prod.{record['pipeline']}.gates", name=str(gate["expr"])
    )
    status = gate.get("status")
    detail = (
        f"value {gate.get('value')}, baseline {gate.get('baseline')}, "
        f"threshold {gate.get('threshold')}"
    )
    if status == "failed":
        failure = ET.SubElement(
            case, "failure", message=str(gate.get("reason") or "gate failed"), type="GateFailed"
        )
        failure.text = detail
    elif status in ("no baseline", "not checked"):
        ET.SubElement(case, "skipped", message=str(gate.get("reason") or status))
    else:
        ET.SubElement(case, "system-out").text = detail


def write_junit(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(record), "utf-8")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_summary(record: dict[str, Any]) -> str:
    icon = {"succeeded": "✅", "cached": "♻️", "failed": "❌", "skipped": "⏭️", "interrupted": "⛔"}
    lines = [
        f"### nb2prod run: {record['pipeline']} v{record['version']} — {record['status']}",
        "",
        f"Run `{record['id']}` in {record.get('duration') or 0:.1f} s.",
        "",
        "| step | state | time | note |",
        "| --- | --- | --- | --- |",
    ]
    for name, step in record["steps"].items():
        note = ""
        if step.get("error"):
            note = step["error"].get("message", "")
        elif step["state"] == "cached":
            note = f"reused from {step.get('cached_from')}"
        duration = step.get("duration")
        lines.append(
            f"| {_cell(name)} | {icon.get(step['state'], '')} {step['state']} | "
            f"{'' if duration is None else f'{duration:.1f} s'} | {_cell(note)} |"
        )
    metrics = record.get("metrics") or {}
    if metrics:
        lines += ["", "| metric | value |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | {v:.6g} |" for k, v in metrics.items()]
    lines += gates_markdown(record)
    tracking = record.get("tracking") or {}
    if tracking.get("run_id"):
        lines += [
            "",
            f"MLflow: experiment `{tracking.get('experiment')}`, run `{tracking['run_id']}`.",
        ]
    return "\n".join(lines) + "\n"


def append_github_summary(record: dict[str, Any], path: Path) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown_summary(record))
