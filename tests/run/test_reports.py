"""Step HTML reports: rendered by nbconvert beside the steps, kept in the run folder, named in
run.json; ``report:disabled`` and ``NB2PROD_REPORTS=0`` turn them off; a report that cannot be
rendered is a warning, never a failed run. Real kernels, real nbconvert, through the CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, write_notebook

pytestmark = pytest.mark.timeout(600)

# A 1x1 red PNG: an image output, which the report must carry inline.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408"
        "d763f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()

CELLS = [
    ("mode = 'ok'", ["parameters"]),
    ("data = [1, 2, 3]\nprint('rows loaded:', len(data))", ["preprocessing"]),
    (
        "import base64\nfrom IPython.display import Image, display\n"
        f"display(Image(data=base64.b64decode('{PNG}')))\ntotal = sum(data)",
        ["training:a"],
    ),
    ("other = len(data)", ["training:b", "report:disabled"]),
    (
        # A folder where the report would go: its render fails, the step does not.
        "import os\nfrom nb2prod.runtime import current_step\n"
        "where = current_step()\n"
        "if mode == 'ok' and where is not None:\n"
        "    os.makedirs(where[0] / 'steps' / where[1] / 'report.html', exist_ok=True)\n"
        "third = 3",
        ["training:c"],
    ),
    ("result = total + other + third", ["evaluation"]),
    ("result", ["metrics"]),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "notebooks" / "rep.ipynb", CELLS)
    r = run_cli("export", "notebooks/rep.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def run(project: Path, **env: str) -> tuple[dict[str, Any], Path, str]:
    r = run_cli("run", "pipelines/rep", "--no-track", cwd=project, env={"CI": "true", **env})
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1].read_text())
    return record, project / ".nb2prod" / "runs" / record["id"], r.stdout


def test_each_step_gets_an_html_report(project: Path) -> None:
    record, run_dir, _ = run(project)
    steps = record["steps"]
    assert record["status"] == "succeeded"
    for name in ("preprocessing", "a", "evaluation"):
        assert steps[name]["report"] == f"steps/{name}/report.html"
    html = (run_dir / "steps/preprocessing/report.html").read_text("utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "rows loaded: 3" in html  # the printed output
    assert '<span class="n">data</span>' in html  # the step's code, highlighted
    assert f"data:image/png;base64,{PNG}" in (run_dir / "steps/a/report.html").read_text()
    # report:disabled: none rendered, none named.
    assert "report" not in steps["b"]
    assert not (run_dir / "steps/b/report.html").exists()
    # A report that cannot be written: a warning naming the step; the step succeeded.
    assert steps["c"]["state"] == "succeeded" and "report" not in steps["c"]
    assert any("step c" in w and "report" in w for w in record["warnings"]), record["warnings"]


def test_cached_steps_keep_their_report_and_env_turns_reports_off(project: Path) -> None:
    first, first_dir, _ = run(project)
    second, second_dir, _ = run(project)
    steps = second["steps"]
    assert steps["a"]["state"] == "cached"
    # The report of the run that computed the step, linked in with the step's folder.
    assert steps["a"]["report"] == "steps/a/report.html"
    a_report = second_dir / "steps/a/report.html"
    assert a_report.samefile(first_dir / "steps/a/report.html")
    # The earlier run kept none for c: rendered now from its cached notebook.
    assert steps["c"]["report"] == "steps/c/report.html"
    assert '<span class="n">third</span>' in (second_dir / "steps/c/report.html").read_text("utf-8")
    assert "report" not in steps["b"]

    off, _, _ = run(project, NB2PROD_REPORTS="0", NB2PROD_TEST="1")
    assert all("report" not in s for s in off["steps"].values())


def test_a_corrupt_notebook_is_a_warning(tmp_path: Path) -> None:
    """The renderer itself, on a notebook nbconvert cannot read: the record gets a warning."""
    from nb2prod.run.record import RunData, RunRecord, StepRecord
    from nb2prod.run.reports import StepReports
    from nb2prod.version_folder import StepSpec

    run_dir = tmp_path / "run"
    (run_dir / "steps/x").mkdir(parents=True)
    (run_dir / "steps/x/notebook.ipynb").write_text("{ not json", "utf-8")
    data = RunData(
        id="20261127-000000-000abcd",
        pipeline="p",
        version=1,
        version_dir="pipelines/p/v1",
        notebook="p.ipynb",
        notebook_sha256=None,
        nb2prod_version="0",
        git_commit=None,
        pid=0,
        params={},
        overrides={},
        steps={"x": StepRecord(role="training", state="succeeded", depends_on=[], params={})},
    )
    record = RunRecord(run_dir / "run.json", data)
    reports = StepReports(record, run_dir, enabled=True)
    step = StepSpec("x", "training", tmp_path / "x.py", (), (), (), ())
    reports.render(step)
    reports.finish(timeout=120)
    saved = json.loads((run_dir / "run.json").read_text())
    assert "report" not in saved["steps"]["x"]
    assert len(saved["warnings"]) == 1 and "step x" in saved["warnings"][0]
    assert not (run_dir / "steps/x/report.html").exists()


def test_nb2prod_step_renders_its_report(project: Path) -> None:
    """What engine tasks run: the report is rendered at the end and named in step.json."""
    run_dir = project / "engine-run"
    for step in ("preprocessing", "b"):
        r = run_cli("step", "pipelines/rep/v1", step, "--run-dir", run_dir, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
    pre = json.loads((run_dir / "steps/preprocessing/step.json").read_text())
    assert pre["report"] == "steps/preprocessing/report.html"
    assert "rows loaded: 3" in (run_dir / pre["report"]).read_text("utf-8")
    b = json.loads((run_dir / "steps/b/step.json").read_text())
    assert "report" not in b and not (run_dir / "steps/b/report.html").exists()
