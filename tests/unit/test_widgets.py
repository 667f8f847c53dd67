"""The ipywidgets panel: its form in-process, and real runs from inside a notebook kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest

from nb2prod.errors import Nb2prodError
from nb2prod.export.writer import export_notebook
from nb2prod.widgets import PipelinePanel

from conftest import TINY_CELLS, notebook_json, write_notebook


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the tiny notebook exported to pipelines/tiny/v1, as the working folder."""
    write_notebook(tmp_path / "tiny.ipynb", TINY_CELLS)
    export_notebook(tmp_path / "tiny.ipynb", out=tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_form_has_a_widget_per_parameter_type(project: Path) -> None:
    panel = PipelinePanel("pipelines/tiny")
    kinds = {name: type(f.widget) for name, f in panel.fields.items()}
    assert kinds == {
        "n": widgets.IntText,
        "factor": widgets.FloatText,
        "delay": widgets.FloatText,
        "flags": widgets.Textarea,
        "label": widgets.Text,
    }
    assert panel.fields["flags"].widget.value == "[1, 2]"
    assert panel.fields["n"].widget.tooltip == "how many numbers"
    assert list(panel.steps) == ["preprocessing", "training", "evaluation"]
    assert panel.params() == {}  # nothing changed: the run uses config.yaml as it is
    panel.set("n", 5)
    panel.set("flags", [])
    panel.fields["factor"].widget.value = 2.0  # the default again: not an override
    assert panel.params() == {"n": 5, "flags": []}


def test_form_rejects_bad_json_and_wrong_types(project: Path) -> None:
    panel = PipelinePanel("pipelines/tiny")
    flags = panel.fields["flags"]
    flags.widget.value = "[1, 2"
    assert "not valid JSON" in flags.error.value  # shown as the user types
    with pytest.raises(Nb2prodError, match=r"parameter `flags`: '\[1, 2' is not valid JSON"):
        panel.params()
    assert not panel.start()  # the Run button does nothing but show the problem
    assert "not valid JSON" in panel.status.value
    flags.widget.value = '{"a": 1}'
    with pytest.raises(Nb2prodError, match="parameter `flags` is a list, but .* JSON object"):
        panel.params()
    flags.widget.value = "[3]"
    assert flags.error.value == "" and panel.params() == {"flags": [3]}
    with pytest.raises(Nb2prodError, match="unknown parameter `nn`"):
        panel.set("nn", 1)


def test_versions_and_missing_pipelines(project: Path) -> None:
    nb = notebook_json(TINY_CELLS)
    nb["cells"][1]["source"] += "\nextra = True  # a new switch"
    nb["cells"][3]["source"] += "\nuse = extra"
    (project / "tiny.ipynb").write_text(json.dumps(nb))
    assert export_notebook(project / "tiny.ipynb", out=project / "pipelines").version == 2
    panel = PipelinePanel("pipelines/tiny")
    assert panel.version.value == 2 and panel.version.options == (("v2", 2), ("v1", 1))
    assert type(panel.fields["extra"].widget) is widgets.Checkbox
    panel.version.value = 1  # the form follows the chosen version
    assert "extra" not in panel.fields and panel.version_dir == Path("pipelines/tiny/v1")
    assert PipelinePanel("pipelines/tiny/v1").version.value == 1
    with pytest.raises(Nb2prodError, match="no exported pipeline here"):
        PipelinePanel("pipelines/nothing")
    with pytest.raises(Nb2prodError, match="there is no version v9. Fix: use one of v1, v2"):
        PipelinePanel("pipelines/tiny", version=9)


KERNEL_CODE = [
    # Build the panel, fill in the form as a user would, and show it.
    """\
import json
from nb2prod.widgets import PipelinePanel

panel = PipelinePanel("pipelines/tiny")
panel.fields["factor"].widget.value = 3.0
panel.set("flags", [1, 2, 3])
panel""",
    # The synchronous run, for scripts.
    """\
result = panel.run()
print("RESULT", json.dumps({
    "status": result.status,
    "metrics": result.record["metrics"],
    "tracking": result.record["tracking"],
    "states": {name: row.state.value for name, row in panel.steps.items()},
    "bars": {name: [row.bar.value, row.bar.bar_style] for name, row in panel.steps.items()},
    "table": panel.results.value,
    "line": panel.status.value,
}))""",
    # The Run button: a background thread, the kernel stays free.
    """\
panel.set("n", 4)
panel.run_button.click()
busy = panel.run_button.disabled
background = panel.wait(120)
print("RESULT", json.dumps({
    "busy": busy,
    "status": background.status,
    "metrics": background.record["metrics"],
    "enabled": not panel.run_button.disabled,
}))""",
    # A failing step: its error and executed notebook are shown.
    """\
panel.track = False
panel.set("delay", -1.0)
failed = panel.run()
print("RESULT", json.dumps({
    "status": failed.status,
    "states": {name: row.state.value for name, row in panel.steps.items()},
    "table": panel.results.value,
}))""",
]


def _results(nb: Any) -> list[dict[str, Any]]:
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in str(output.get("text", "")).splitlines():
                if line.startswith("RESULT "):
                    out.append(json.loads(line[len("RESULT ") :]))
    return out


def test_panel_runs_a_pipeline_inside_a_kernel(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    import papermill

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in KERNEL_CODE]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    executed = papermill.execute_notebook(
        nb,
        str(project / "panel.ipynb"),
        cwd=str(project),
        kernel_name="python3",
        progress_bar=False,
    )
    views = [
        o
        for o in executed.cells[0].outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert views, executed.cells[0].outputs  # the panel rendered as a widget
    first, background, failed = _results(executed)

    assert first["status"] == "succeeded"
    assert first["metrics"] == {"score": 9.0, "count": 6}  # factor 3, flags of 3
    assert list(first["states"]) == ["preprocessing", "training", "evaluation"]
    assert all(s.startswith("succeeded in ") for s in first["states"].values())
    assert all(bar == [2, "success"] for bar in first["bars"].values())
    assert (
        "<td>score</td><td>9</td>" in first["table"]
        and "<td>count</td><td>6</td>" in first["table"]
    )
    assert first["tracking"]["ok"] and first["tracking"]["run_id"] in first["table"]
    assert "experiment <code>tiny</code>" in first["table"]
    assert "tiny v1: succeeded" in first["line"]

    assert background["busy"] and background["enabled"]
    assert background["status"] == "succeeded"
    assert background["metrics"] == {"score": 18.0, "count": 7}  # n 4: (0+1+2+3) * 3

    assert failed["status"] == "failed"
    assert failed["states"]["preprocessing"].startswith("cached")  # unchanged since the last run
    assert failed["states"]["training"].startswith("failed in ")
    assert failed["states"]["evaluation"] == "skipped"
    assert "step training failed" in failed["table"]
    assert "ValueError: sleep length must be non-negative" in failed["table"]
    assert "steps/training/notebook.ipynb" in failed["table"]
    notebook = failed["table"].split("executed notebook: <code>")[1].split("</code>")[0]
    assert (project / notebook).is_file()


# --- quality gates (issue 13) -------------------------------------------------------------------
def test_baseline_and_promote_in_the_form(project: Path) -> None:
    panel = PipelinePanel("pipelines/tiny")
    assert panel.baseline.value == "champion" and not panel.promote.value
    assert list(panel.baseline.options) == ["champion", "previous", "v1"]
    assert panel.gate_options() == {}  # run_pipeline's defaults: the champion, no promotion
    panel.baseline.value = "v1"
    panel.promote.value = True
    assert panel.gate_options() == {"baseline": "v1", "promote": True}
    panel.baseline.value = " 20261122-074521-604c3f1 "  # typed in, as a run id
    assert panel.gate_options() == {"baseline": "20261122-074521-604c3f1", "promote": True}
    panel.baseline.value = "last week"
    with pytest.raises(Nb2prodError, match="'last week' is not a baseline. Fix: choose"):
        panel.gate_options()
    assert not panel.start()  # the Run button shows the problem and runs nothing
    assert "is not a baseline" in panel.status.value
    assert not (project / ".nb2prod").exists()


def _gated_result(steps_state: str = "succeeded") -> Any:
    from nb2prod.run.runner import RunResult

    record = {
        "id": "20261127-023015-1230abc",
        "pipeline": "tiny",
        "version": 2,
        "status": "succeeded" if steps_state == "succeeded" else "failed",
        "duration": 1.5,
        "steps": {"training": {"state": steps_state, "error": None}},
        "metrics": {"score": 9.0, "count": 5},
        "baseline": {
            "requested": "champion",
            "run_id": "20261126-101010-0000001",
            "mlflow_run_id": None,
            "version": 1,
            "source": "champion (local)",
            "metrics": {"score": 10.0},
        },
        "gates": {
            "status": "failed",
            "results": [
                {"expr": "count >= 5", "status": "passed", "value": 5, "threshold": 5.0},
                {
                    "expr": "score >= baseline",
                    "status": "failed",
                    "value": 9.0,
                    "baseline": 10.0,
                    "threshold": 10.0,
                    "reason": "9 < 10",
                },
                {"expr": "auc >= baseline", "status": "no baseline", "value": None},
            ],
            "promote": True,
            "promoted": None,
        },
    }
    return RunResult(id=record["id"], path=Path(".nb2prod/runs") / record["id"], record=record)


def test_results_show_deltas_and_a_mark_per_gate() -> None:
    from nb2prod.widgets import render_result

    status, table = render_result(_gated_result())
    assert "tiny v2: steps succeeded, gates failed" in status  # not a crash
    assert "<th>Δ baseline</th>" in table
    assert "<td>score</td><td>9</td><td>−1</td>" in table
    assert "<td>count</td><td>5</td><td></td>" in table  # not in the baseline
    assert "gates failed: 1 of 3 failed" in table
    assert "champion (local), run <code>20261126-101010-0000001</code>" in table
    assert "<code>count &gt;= 5</code></td><td>5</td><td>5</td><td>✓ pass</td>" in table
    assert "9 &lt; 10" in table and "✗ fail" in table and "– no baseline" in table
    assert "not promoted: the champion stays" in table
    status, _ = render_result(_gated_result("failed"))
    assert "tiny v2: failed" in status  # a failed step stays a failed run


def test_results_of_a_run_without_gates_are_unchanged() -> None:
    from nb2prod.widgets import render_result

    result = _gated_result()
    del result.record["gates"], result.record["baseline"]
    status, table = render_result(result)
    assert "tiny v2: succeeded" in status
    assert "<thead><tr><th>metric</th><th>value</th></tr></thead>" in table
    assert "gate" not in table


def test_a_gated_run_from_the_panel_promotes_then_compares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real runs (untracked): the first has no baseline and becomes the champion; the second,
    worse, fails its gate against it and shows by how much."""
    cells = [
        *TINY_CELLS,
        ("score >= baseline  # no worse than the champion\ncount >= 5", ["gates"]),
    ]
    write_notebook(tmp_path / "tiny.ipynb", cells)
    export_notebook(tmp_path / "tiny.ipynb", out=tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    panel = PipelinePanel("pipelines/tiny", track=False)
    panel.promote.value = True
    first = panel.run()
    assert first.record["gates"]["status"] == "passed", first.record["gates"]
    assert "– no baseline" in panel.results.value and "✓ pass" in panel.results.value
    assert "promoted to champion" in panel.results.value
    panel.set("factor", 1.0)  # score 3 instead of 6
    second = panel.run()
    assert second.record["gates"]["status"] == "failed"
    assert "steps succeeded, gates failed" in panel.status.value
    assert "<td>score</td><td>3</td><td>−3</td>" in panel.results.value
    assert "✗ fail" in panel.results.value and "the champion stays" in panel.results.value


def test_serving_line_names_what_the_function_uses_and_where_from() -> None:
    from nb2prod.version_folder import ServingNeed, ServingSpec
    from nb2prod.widgets import serving_summary

    spec = ServingSpec(
        function="predict",
        module="steps/serving.py",
        cell=15,
        args=("raw",),
        needs=(  # as pipeline.yaml sorts them: by name
            ServingNeed("features", "parameter"),
            ServingNeed("model", "training"),
            ServingNeed("scaler", "preprocessing"),
        ),
        callers=("evaluation",),
        example=None,
    )
    assert serving_summary(spec) == (
        "serving: predict(raw) uses features (parameter), model from training, "
        "scaler from preprocessing"
    )
    bare = ServingSpec("predict", "steps/serving.py", 3, ("a", "b"), (), (), None)
    assert serving_summary(bare) == "serving: predict(a, b) uses nothing from the steps"


def _serving_result(tracked: bool = True, **serving: Any) -> Any:
    """A run record with run.json's ``serving`` as docs/running.md describes it."""
    result = _gated_result()
    del result.record["gates"], result.record["baseline"]
    result.record["tracking"] = (
        {"ok": True, "run_id": "0a1b2c", "serving_model": "models:/m-77"} if tracked else None
    )
    result.record["serving"] = {
        "function": "predict",
        "signature": "predict(raw)",
        "model": "serving/model",
        "example_from": "evaluation",
        "rows": 100,
        "skew": "none",
        "status": "ok",
        **serving,
    }
    return result


def test_results_show_the_serving_model_its_skew_check_and_how_to_serve_it() -> None:
    from nb2prod.widgets import render_result

    _, table = render_result(_serving_result())
    assert (
        "<p>serving: predict(raw) logged as model 'serving' (<code>models:/m-77</code>), no "
        "training/serving skew on 100 rows (input example from evaluation). Serve it: "
        "<code>nb2prod serve 20261127-023015-1230abc</code></p>"
    ) in table
    _, table = render_result(
        _serving_result(False, rows=1, example_from="X from prep", reused_from="r0")
    )
    assert (
        "saved as <code>serving/model</code>, no training/serving skew on 1 row (input example "
        "from X from prep) (reused from run r0). Serve it"
    ) in table
    _, table = render_result(_serving_result(rows=None, example_from=None, skew=None))
    assert "no input example, so no skew check" in table
    assert "nb2prod serve 20261127-023015-1230abc" in table
    skew = "training/serving skew: predict(raw) returned different results when served"
    _, table = render_result(_serving_result(skew="found", status="failed", error=skew))
    assert skew in table
    assert "nb2prod serve" not in table  # a skewed model is not offered for serving
    _, table = render_result(
        _serving_result(status="failed", model=None, skew=None, error="it could not be built")
    )
    assert "no serving model: it could not be built" in table
    assert "nb2prod serve" not in table
    _, table = render_result(_gated_result())
    assert "serving" not in table  # a notebook without a serving function


def test_the_panel_names_the_versions_serving_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After export (the widgets' inspect): the serving line, as `nb2prod inspect` words it;
    none for a version without a serving cell."""
    cells = [
        *TINY_CELLS,
        ("def predict(raw):\n    return [x * factor + total for x in raw]", ["serving"]),
    ]
    write_notebook(tmp_path / "tiny.ipynb", cells)
    export_notebook(tmp_path / "tiny.ipynb", out=tmp_path / "pipelines")
    monkeypatch.chdir(tmp_path)
    panel = PipelinePanel("pipelines/tiny")
    assert panel.serving.value == (
        "<p>serving: predict(raw) uses factor (parameter), total from training</p>"
    )
    assert panel.serving in panel.children
    write_notebook(tmp_path / "tiny.ipynb", TINY_CELLS)
    export_notebook(tmp_path / "tiny.ipynb", out=tmp_path / "pipelines")
    panel.version.options = [("v2", 2), ("v1", 1)]
    panel.version.value = 2
    assert panel.serving.value == ""  # v2 has no serving cell
