"""``nb2prod compare``'s tables, text and page, built from run folders written on disk."""

from __future__ import annotations

import hashlib
import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nb2prod.compare.code import CHANGED, SAME, code_digest
from nb2prod.compare.html import render_html, write_html
from nb2prod.compare.resolve import resolve_runs
from nb2prod.compare.tables import build_comparison
from nb2prod.compare.text import comparison_text
from nb2prod.compare.trend import build_trends
from nb2prod.errors import Nb2prodError

STEP_CODE = """# ---
# jupyter:
#   kernelspec:
#     name: python3
# ---

# %% [markdown]
# # Step `{step}`
#
# Pipeline `p` v{version}, exported by nb2prod.

# %% cell {cell} (id c{cell})
{code}
"""


def ids(n: int) -> list[str]:
    return [f"20261127-0100{i:02d}-000abc{i}" for i in range(n)]


def write_version(
    root: Path, name: str, version: int, code: dict[str, str], gates: list[Any] | None = None
) -> Path:
    """A version folder with the parts compare reads: steps/*.py and pipeline.yaml's hashes."""
    import yaml

    folder = root / "pipelines" / name / f"v{version}"
    (folder / "steps").mkdir(parents=True)
    files = {}
    for i, (step, text) in enumerate(code.items()):
        body = STEP_CODE.format(step=step, version=version, cell=i + version, code=text)
        (folder / "steps" / f"{step}.py").write_text(body, "utf-8")
        files[f"steps/{step}.py"] = hashlib.sha256(body.encode()).hexdigest()
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "steps": [{"name": s} for s in code],
        "files": files,
    }
    if gates is not None:
        manifest["gates"] = gates
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), "utf-8")
    return folder


def write_run(
    home: Path,
    run_id: str,
    *,
    pipeline: str = "p",
    version: int = 1,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    status: str = "succeeded",
    gates: dict[str, Any] | None = None,
    steps: dict[str, Any] | None = None,
) -> None:
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    stamp = f"2026-11-27T01:00:{run_id[13:15]}Z"
    record = {
        "id": run_id,
        "pipeline": pipeline,
        "version": version,
        "version_dir": f"pipelines/{pipeline}/v{version}",
        "status": status,
        "started_at": stamp,
        "params": params or {},
        "metrics": metrics or {},
        "steps": steps
        or {"train": {"state": "succeeded", "notebook": "steps/train/notebook.ipynb"}},
        "gates": gates,
    }
    (folder / "run.json").write_text(json.dumps(record), "utf-8")


def write_champion(home: Path, pipeline: str, run_id: str) -> None:
    (home / "champions").mkdir(parents=True, exist_ok=True)
    data = {"pipeline": pipeline, "run_id": run_id, "version": 1, "metrics": {}, "models": {}}
    (home / "champions" / f"{pipeline}.json").write_text(json.dumps(data), "utf-8")


def gate(expr: str, status: str, value: float, threshold: float) -> dict[str, Any]:
    metric, op = expr.split()[:2]
    return {
        "expr": expr,
        "metric": metric,
        "op": op,
        "help": "",
        "origin": "notebook",
        "value": value,
        "baseline": None,
        "threshold": threshold,
        "status": status,
        "reason": None if status == "passed" else f"{metric} {value} is below {threshold}",
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as the current folder, with its runs home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NB2PROD_HOME", raising=False)
    write_version(tmp_path, "p", 1, {"train": "model = fit(C)"})
    return Path(".nb2prod")


def compare(home: Path, *arguments: str):  # type: ignore[no-untyped-def]
    return build_comparison(home, resolve_runs(home, arguments))


# --- tables -----------------------------------------------------------------------------------
def test_only_parameters_that_differ_are_shown(home: Path) -> None:
    a, b, c = ids(3)
    write_run(home, a, params={"C": 1.0, "seed": 1, "name": "x"})
    write_run(home, b, params={"C": 1, "seed": 1, "name": "x"})
    write_run(home, c, params={"C": 1.0, "seed": 1, "name": "x", "extra": True})
    table = compare(home, a, b, c)
    rows = {p.name: p.values for p in table.parameters}
    assert rows == {"C": [1.0, 1, 1.0], "extra": [None, None, True]}  # 1 and 1.0 differ


def test_metric_deltas_and_direction_from_the_runs_gates(home: Path) -> None:
    a, b = ids(2)
    write_run(home, a, metrics={"accuracy": 0.9, "rmse": 2.0, "n": 5})
    checked = {
        "status": "failed",
        "results": [
            gate("accuracy >= 0.95", "failed", 0.85, 0.95),
            gate("rmse <= 3", "passed", 1.5, 3),
        ],
        "promote": False,
        "promoted": None,
    }
    write_run(home, b, metrics={"accuracy": 0.85, "rmse": 1.5, "n": 5}, gates=checked)
    rows = {m.name: m for m in compare(home, a, b).metrics}
    assert rows["accuracy"].direction == "higher"
    assert rows["accuracy"].deltas[0] is None
    assert math.isclose(rows["accuracy"].deltas[1] or 0, -0.05)
    assert rows["accuracy"].better == [None, False]
    assert rows["rmse"].direction == "lower" and rows["rmse"].better == [None, True]
    assert (
        rows["n"].direction is None
        and rows["n"].deltas == [None, 0]
        and rows["n"].better
        == [
            None,
            None,
        ]
    )


def test_direction_from_the_versions_gates_and_a_range_has_none(home: Path, tmp_path: Path) -> None:
    write_version(
        tmp_path,
        "q",
        1,
        {"train": "x = 1"},
        gates=[
            "f1 >= baseline - 0.01",
            {"expr": "loss < 1", "metric": "loss", "op": "<"},
            "r >= 0",
            "r <= 1",
        ],
    )
    a, b = ids(2)
    write_run(home, a, pipeline="q", metrics={"f1": 0.5, "loss": 0.5, "r": 0.5})
    write_run(home, b, pipeline="q", metrics={"f1": 0.6, "loss": 0.6, "r": 0.6})
    rows = {m.name: m for m in compare(home, a, b).metrics}
    assert rows["f1"].better == [None, True]
    assert rows["loss"].better == [None, False]
    assert rows["r"].direction is None and rows["r"].better == [None, None]


def test_gate_results_per_run(home: Path) -> None:
    a, b, c = ids(3)
    write_run(home, a)  # an older run: no gates recorded
    write_run(
        home,
        b,
        gates={"status": "passed", "results": [gate("acc >= 0.9", "passed", 0.95, 0.9)]},
    )
    write_run(
        home,
        c,
        gates={"status": "failed", "results": [gate("acc >= 0.9", "failed", 0.8, 0.9)]},
    )
    table = compare(home, a, b, c)
    assert table.gate_status == [None, "passed", "failed"]
    (row,) = table.gates
    assert row.expr == "acc >= 0.9" and row.results[0] is None
    assert row.results[1] is not None and row.results[1].status == "passed"
    assert row.results[2] is not None and row.results[2].reason == "acc 0.8 is below 0.9"
    text = comparison_text(table)
    assert "acc >= 0.9  -" in text and "failed (0.8 vs 0.9)" in text
    assert "overall     -  passed" in text


def test_code_changes_between_versions(home: Path, tmp_path: Path) -> None:
    # v2: the same code (only the header and cell markers name another version); v3: changed
    # training code and a new step.
    write_version(tmp_path, "p", 2, {"train": "model = fit(C)"})
    write_version(tmp_path, "p", 3, {"train": "model = fit(C * 2)", "report": "r = 1"})
    a, b, c, d = ids(4)
    write_run(home, a, version=1)
    write_run(home, b, version=1)
    write_run(home, c, version=2)
    write_run(home, d, version=3)
    table = compare(home, a, b, c, d)
    rows = {r.step: r.changes for r in table.code}
    assert rows == {
        "train": [SAME, SAME, SAME, CHANGED],
        "report": ["absent", "absent", "absent", "added"],
    }
    text = comparison_text(table)
    assert "Step code against A (p v1):" in text
    assert "train   same  same  changed" in text and "report  -     -     added" in text


def test_code_digest_ignores_header_markdown_and_markers() -> None:
    one = STEP_CODE.format(step="s", version=1, cell=3, code="x = 1")
    two = STEP_CODE.format(step="s", version=2, cell=7, code="x = 1")
    assert one != two and code_digest(one) == code_digest(two)
    assert code_digest(one) != code_digest(
        STEP_CODE.format(step="s", version=1, cell=3, code="x = 2")
    )


def test_a_missing_version_folder_is_unknown_not_a_crash(home: Path) -> None:
    a, b = ids(2)
    write_run(home, a, version=1)
    write_run(home, b, version=9)  # exported elsewhere, folder not here
    rows = {r.step: r.changes for r in compare(home, a, b).code}
    assert rows == {"train": [SAME, "unknown"]}  # its steps come from the run record


def test_json_has_stable_keys_and_no_nan(home: Path) -> None:
    a, b = ids(2)
    write_run(home, a, metrics={"m": 1.0})
    write_run(home, b, metrics={"m": float("nan")})
    data = compare(home, a, b).to_json()
    assert list(data) == [
        "runs",
        "parameters",
        "metrics",
        "gate_status",
        "gates",
        "code",
        "schema_version",
    ]
    assert data["metrics"][0]["values"] == [1.0, None] and data["metrics"][0]["deltas"] == [
        None,
        None,
    ]
    json.dumps(data, allow_nan=False)
    assert set(data["runs"][0]) == {
        "label",
        "argument",
        "id",
        "pipeline",
        "version",
        "status",
        "started_at",
        "source",
        "champion",
        "folder",
        "files",
    }


# --- arguments ----------------------------------------------------------------------------------
def test_pipeline_arguments_pick_the_newest_successful_run(home: Path, tmp_path: Path) -> None:
    write_version(tmp_path, "p", 2, {"train": "model = fit(C)"})
    a, b, c, d = ids(4)
    write_run(home, a, version=1)
    write_run(home, b, version=1)
    write_run(home, c, version=2)
    write_run(home, d, version=2, status="failed")
    runs = resolve_runs(home, ["pipelines/p/v1", "pipelines/p", "p/v2", a])
    assert [r.id for r in runs] == [b, c, c, a]
    assert runs[0].source == "newest successful run of v1" and runs[3].source == "run"


def test_champion_is_the_pipelines_champion(home: Path) -> None:
    a, b = ids(2)
    write_run(home, a)
    write_run(home, b)
    write_champion(home, "p", a)
    runs = resolve_runs(home, [b, "champion"])
    assert [r.id for r in runs] == [b, a] and runs[1].source == "champion"
    table = build_comparison(home, runs)
    assert [r.champion for r in table.runs] == [False, True]
    assert "(champion)" in comparison_text(table)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["champion", "champion"], "`champion` alone does not say which pipeline"),
        ([ids(1)[0], "2026"], "`2026` names no run"),
        (["20261127-090000-000abcf", ids(1)[0]], "there is no run folder"),
        (["pipelines/p/v7", ids(1)[0]], "`p` v7 has no successful run"),
        (["pipelines/nope", ids(1)[0]], "pipeline `nope` has no successful run"),
        ([ids(1)[0]], "needs at least two runs"),
        (["champion", ids(1)[0]], "pipeline `p` has no champion"),
    ],
)
def test_arguments_naming_no_run_are_one_paragraph_errors(
    home: Path, arguments: list[str], fragment: str
) -> None:
    write_run(home, ids(1)[0])
    with pytest.raises(Nb2prodError) as info:
        resolve_runs(home, arguments)
    assert fragment in info.value.message and "Fix:" in info.value.message
    assert "\n" not in info.value.message


def test_champion_with_runs_of_two_pipelines_is_ambiguous(home: Path) -> None:
    a, b = ids(2)
    write_run(home, a, pipeline="p")
    write_run(home, b, pipeline="q")
    with pytest.raises(Nb2prodError, match="ambiguous: the other arguments name runs of p, q"):
        resolve_runs(home, [a, b, "champion"])


def test_a_champion_whose_run_was_removed(home: Path) -> None:
    a = ids(1)[0]
    write_run(home, a)
    write_champion(home, "p", "20261127-090000-000abcf")
    with pytest.raises(Nb2prodError, match="folder .* is gone"):
        resolve_runs(home, [a, "champion"])


# --- the page -----------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("href", "src")]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_page_is_self_contained_escaped_and_charts_every_run(home: Path, tmp_path: Path) -> None:
    a, b, c, d = ids(4)
    hostile = "<script>alert(1)</script>"
    write_run(home, a, metrics={"acc": 0.8}, params={"label": "x"})
    write_run(home, b, metrics={"acc": 0.9}, params={"label": hostile})
    write_run(home, c, metrics={"acc": 0.7}, status="failed")  # not on the chart
    steps = {
        "train": {"notebook": "steps/train/notebook.ipynb", "report": "steps/train/report.html"}
    }
    write_run(home, d, metrics={"acc": 0.95}, params={"label": "x"}, steps=steps)
    write_champion(home, "p", d)
    page = tmp_path / "out" / "compare.html"
    table = compare(home, a, b)
    write_html(page, home, table)
    text = page.read_text("utf-8")
    parsed = _Page()
    parsed.feed(text)
    assert "script" not in parsed.tags and hostile not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "svg" in parsed.tags and "style" in parsed.tags
    assert all(not link.startswith(("http:", "https:", "//")) for link in parsed.links)
    assert f"../.nb2prod/runs/{a}/steps/train/notebook.ipynb" in parsed.links
    (trend,) = build_trends(home, table)
    assert [p.run_id for p in trend.points] == [a, b, d]  # every successful run, in time order
    assert [p.label for p in trend.points] == ["A", "B", None]
    assert [p.champion for p in trend.points] == [False, False, True]
    assert "champion" in parsed.texts
    assert "acc over 3 successful runs" in "".join(parsed.texts)
    # A run with a step report links the report, relative to the page.
    report = render_html(page, compare(home, d, a), [])
    assert f"../.nb2prod/runs/{d}/steps/train/report.html" in report


def test_an_unwritable_page_is_an_error(home: Path, tmp_path: Path) -> None:
    a, b = ids(2)
    write_run(home, a)
    write_run(home, b)
    (tmp_path / "file").write_text("", "utf-8")
    with pytest.raises(Nb2prodError, match="cannot write"):
        write_html(tmp_path / "file" / "page.html", home, compare(home, a, b))
