"""An ipywidgets panel for running a pipeline from any Jupyter front end.

For front ends without the JupyterLab extension (VS Code, classic Notebook)::

    from nb2prod.widgets import PipelinePanel
    PipelinePanel("pipelines/breast_cancer")

shows a version picker, a parameter form built from that version's ``config.yaml``, the
baseline the quality gates compare with and a *Promote if gates pass* checkbox, a Run button,
per-step progress, and at the end the metrics (with their change against the baseline), a
pass/fail mark per gate, the MLflow run, or the failing step's error and executed notebook.
When the notebook has a serving function, the panel names it and what it uses ("serving:
predict(raw) uses model from training, ..."), and after a run says whether its serving model
was logged and passed the skew check, with the command that serves it.
The run happens in a background thread, so the kernel stays responsive;
:meth:`PipelinePanel.run` runs in the foreground and returns the
:class:`~nb2prod.run.runner.RunResult` (for scripts and tests). Runs go where ``nb2prod run``
started in the kernel's working directory would put them. ``import nb2prod`` does not import
this module.
"""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .catalog import parameters
from .errors import Nb2prodError
from .serving.outcome import check_phrase
from .version_folder import VERSION_DIR, versions

if TYPE_CHECKING:
    from .run.runner import RunResult
    from .version_folder import ServingSpec

JSON_KINDS = ("list", "dict", "null")  # edited as JSON text
JSON_NAMES = {"list": "array", "dict": "object", "str": "string", "int": "number"}
JSON_NAMES |= {"float": "number", "bool": "boolean"}
STATE_STYLE = {  # progress bar value (of 2) and colour per step state
    "queued": (0, ""),
    "running": (1, "info"),
    "succeeded": (2, "success"),
    "cached": (2, "success"),
    "failed": (2, "danger"),
    "skipped": (2, "warning"),
    "interrupted": (2, "warning"),
}
LABEL = widgets.Layout(width="12em")
GATE_MARKS = {"passed": "✓ pass", "failed": "✗ fail", "no baseline": "– no baseline"}


def _error_html(message: str) -> str:
    return f'<span style="color: #c62828">{html.escape(message)}</span>'


class ParamField:
    """One parameter's input: the widget its type calls for, its help and its error."""

    def __init__(self, name: str, default: Any, kind: str, help_text: str = "") -> None:
        self.name, self.default, self.kind = name, default, kind
        self.widget: Any
        if kind == "bool":
            self.widget = widgets.Checkbox(value=bool(default), indent=False)
        elif kind == "int":
            self.widget = widgets.IntText(value=default)
        elif kind == "float":
            self.widget = widgets.FloatText(value=default)
        elif kind == "str":
            self.widget = widgets.Text(value=default)
        else:
            self.widget = widgets.Textarea(value=json.dumps(default), placeholder="JSON", rows=2)
            self.widget.observe(lambda _change: self.check(), "value")
        self.widget.tooltip = help_text or None
        self.error = widgets.HTML()
        label = widgets.Label(name, layout=LABEL, tooltip=help_text or None)
        hint = widgets.HTML(f'<span style="color: #666">{html.escape(help_text)}</span>')
        self.box = widgets.HBox([label, self.widget, hint, self.error])

    def get(self) -> Any:
        """The value entered, typed. Raises Nb2prodError naming the parameter and the fix."""
        if self.kind not in JSON_KINDS:
            return self.widget.value
        text = str(self.widget.value)
        example = json.dumps(self.default)
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise Nb2prodError(
                f"parameter `{self.name}`: {text!r} is not valid JSON ({exc}). "
                f"Fix: write JSON, e.g. {example}"
            ) from None
        if self.kind != "null" and value is not None and type(value).__name__ != self.kind:
            got = JSON_NAMES.get(type(value).__name__, "value")
            raise Nb2prodError(
                f"parameter `{self.name}` is a {self.kind}, but {text!r} is a JSON {got}. "
                f"Fix: write a JSON {JSON_NAMES[self.kind]}, e.g. {example}"
            )
        return value

    def set(self, value: Any) -> None:
        self.widget.value = json.dumps(value) if self.kind in JSON_KINDS else value

    def check(self) -> str | None:
        """Show (and return) what is wrong with the entered value, if anything."""
        try:
            self.get()
        except Nb2prodError as exc:
            self.error.value = _error_html(exc.message)
            return exc.message
        self.error.value = ""
        return None


class StepRow:
    """One step's progress: name, bar, state and duration."""

    def __init__(self, name: str) -> None:
        self.bar = widgets.IntProgress(value=0, min=0, max=2)
        self.state = widgets.HTML("queued")
        self.box = widgets.HBox([widgets.Label(name, layout=LABEL), self.bar, self.state])

    def show(self, record: dict[str, Any]) -> None:
        state = str(record.get("state", "queued"))
        self.bar.value, self.bar.bar_style = STATE_STYLE.get(state, (0, ""))
        text = state
        if record.get("duration") is not None and state in ("succeeded", "failed"):
            text += f" in {record['duration']:.1f}s"
        if state == "cached":
            text += f" (reused from run {record.get('cached_from')})"
        self.state.value = html.escape(text)


class PipelinePanel(widgets.VBox):
    """Parameter form, Run button, per-step progress and results for ``pipelines/<name>``.

    ``pipeline`` may also be a version folder (``pipelines/<name>/v2``), which is then chosen.
    ``track=False`` skips MLflow, as ``nb2prod run --no-track`` does.
    """

    def __init__(
        self, pipeline: str | Path, version: int | None = None, *, track: bool = True
    ) -> None:
        path = Path(pipeline)
        match = VERSION_DIR.match(path.name)
        if match and version is None:
            path, version = path.parent, int(match.group(1))
        found = versions(path)
        if not found:
            raise Nb2prodError(
                f"{path}: no exported pipeline here. Fix: pass pipelines/<name> after running "
                "`nb2prod export NOTEBOOK` (paths are relative to the kernel's working folder)."
            )
        if version is not None and version not in found:
            shown = ", ".join(f"v{v}" for v in found)
            raise Nb2prodError(f"{path}: there is no version v{version}. Fix: use one of {shown}.")
        self.pipeline = path
        self.track = track
        self.fields: dict[str, ParamField] = {}
        self.steps: dict[str, StepRow] = {}
        self.result: RunResult | None = None
        self._thread: threading.Thread | None = None
        self.version = widgets.Dropdown(
            options=[(f"v{v}", v) for v in reversed(found)],
            value=version or found[-1],
            description="version",
        )
        self.form = widgets.VBox()
        self.no_cache = widgets.Checkbox(value=False, description="re-run cached steps")
        # A combobox: the usual choices to pick, or a run id typed in.
        self.baseline = widgets.Combobox(
            value="champion",
            options=["champion", "previous", *(f"v{v}" for v in reversed(found))],
            ensure_option=False,
            description="baseline",
            placeholder="champion, previous, vN or a run id",
            tooltip="The run the quality gates compare with (gates on `baseline`).",
        )
        self.promote = widgets.Checkbox(
            value=False, description="Promote if gates pass", indent=False
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.progress = widgets.VBox()
        self.serving = widgets.HTML()  # the serving function, when the version has one
        self.status = widgets.HTML()
        self.results = widgets.HTML()
        self.version.observe(lambda _change: self._load_version(), "value")
        self.run_button.on_click(lambda _button: self.start())
        self._load_version()
        title = widgets.HTML(f"<b>Pipeline {html.escape(path.name)}</b>")
        controls = widgets.HBox([self.run_button, self.no_cache])
        gates = widgets.HBox([self.baseline, self.promote])
        super().__init__(
            [
                title,
                self.version,
                self.serving,
                self.form,
                gates,
                controls,
                self.status,
                self.progress,
                self.results,
            ]
        )

    @property
    def version_dir(self) -> Path:
        return self.pipeline / f"v{self.version.value}"

    def _load_version(self) -> None:
        """Rebuild the form and the step list for the chosen version."""
        from .pipeline import load_pipeline

        spec = load_pipeline(self.version_dir)
        self.defaults = dict(spec.defaults)
        self.fields = {
            p["name"]: ParamField(p["name"], p["value"], p["type"], p["help"])
            for p in parameters(self.version_dir)
        }
        self.form.children = [f.box for f in self.fields.values()]
        self.steps = {s.name: StepRow(s.name) for s in spec.steps}
        self.progress.children = [r.box for r in self.steps.values()]
        self.serving.value = (
            "" if spec.serving is None else f"<p>{html.escape(serving_summary(spec.serving))}</p>"
        )
        self.results.value = self.status.value = ""

    def set(self, name: str, value: Any) -> None:
        """Fill in parameter ``name`` as a user would."""
        if name not in self.fields:
            raise Nb2prodError(
                f"unknown parameter `{name}`. Fix: choose from {', '.join(self.fields)}."
            )
        self.fields[name].set(value)

    def params(self) -> dict[str, Any]:
        """The parameters that differ from the defaults; raises Nb2prodError for bad entries."""
        from .run.overrides import effective_params

        problems = [m for m in (f.check() for f in self.fields.values()) if m]
        if problems:
            raise Nb2prodError(" ".join(problems))
        values = {name: f.get() for name, f in self.fields.items()}
        changed = {
            k: v
            for k, v in values.items()
            if type(v) is not type(self.defaults.get(k)) or v != self.defaults.get(k)
        }
        try:
            effective_params(self.defaults, params=changed)  # the runner's own checks
        except Nb2prodError as exc:
            self.status.value = _error_html(exc.message)
            raise
        return changed

    def gate_options(self) -> dict[str, Any]:
        """The baseline and promotion asked for, as run_pipeline takes them (only what differs
        from its defaults). Raises Nb2prodError for a baseline that names no kind of run."""
        from .gates.baseline import check_request

        baseline = str(self.baseline.value).strip()
        try:
            check_request(baseline)
        except Nb2prodError:
            raise Nb2prodError(
                f"baseline {baseline[:60]!r} is not a baseline. Fix: choose champion (the "
                "default), previous, a version like v3, or type a run id like "
                "20261122-074521-604c3f1 (`nb2prod runs` lists them) or an MLflow run id."
            ) from None
        options: dict[str, Any] = {}
        if baseline != "champion":
            options["baseline"] = baseline
        if self.promote.value:
            options["promote"] = True
        return options

    def run(self) -> RunResult:
        """Run the chosen version with the form's values, in the foreground."""
        try:
            params = self.params()
            self.gate_options()
        except Nb2prodError as exc:
            self.status.value = _error_html(exc.message)
            raise
        return self._run(params)

    def start(self) -> bool:
        """What the Run button does: run in a background thread. False if the form is wrong."""
        if self._thread is not None and self._thread.is_alive():
            return False
        try:
            params = self.params()
            self.gate_options()
        except Nb2prodError as exc:
            self.status.value = _error_html(exc.message)
            return False
        self._thread = threading.Thread(target=self._background, args=(params,), daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for a run started by :meth:`start`; its result (None if it could not run)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _background(self, params: dict[str, Any]) -> None:
        try:
            self._run(params)
        except Exception as exc:  # noqa: BLE001 - a thread has no caller to raise to
            if not isinstance(exc, Nb2prodError):
                self.status.value = _error_html(f"nb2prod could not run the pipeline: {exc!r}")

    def _busy(self, busy: bool) -> None:
        self.run_button.disabled = self.version.disabled = self.no_cache.disabled = busy
        self.baseline.disabled = self.promote.disabled = busy
        for f in self.fields.values():
            f.widget.disabled = busy

    def _run(self, params: dict[str, Any]) -> RunResult:
        from .run.runner import run_pipeline

        self.result = None
        self._busy(True)
        for row in self.steps.values():
            row.show({"state": "queued"})
        self.results.value = ""
        self.status.value = html.escape(f"running {self.pipeline.name} v{self.version.value}…")
        try:
            result = run_pipeline(
                self.version_dir,
                params,
                no_cache=self.no_cache.value,
                track=self.track,
                observer=self._on_step,
                **self.gate_options(),
            )
        except Nb2prodError as exc:
            self.status.value = _error_html(exc.message)
            raise
        finally:
            self._busy(False)
        self.result = result
        for name, record in result.record["steps"].items():
            if name in self.steps:
                self.steps[name].show(record)
        self.status.value, self.results.value = render_result(result)
        return result

    def _on_step(self, event: str, step: str, record: dict[str, Any]) -> None:
        if step in self.steps:
            self.steps[step].show(record)


def render_result(result: RunResult) -> tuple[str, str]:
    """(status line, results HTML): metrics, MLflow run, or what failed and where to look."""
    rec = result.record
    e = html.escape
    gates = rec.get("gates") or {}
    steps_ok = all(s.get("state") in ("succeeded", "cached") for s in rec["steps"].values())
    # Failed gates on good steps: a worse model, not a crash; say it in those words.
    outcome = (
        "steps succeeded, gates failed"
        if steps_ok and gates.get("status") == "failed"
        else result.status
    )
    status = (
        f"<b>{e(str(rec['pipeline']))} v{rec['version']}: {e(outcome)}</b> in "
        f"{rec.get('duration') or 0:.1f}s (run <code>{e(result.id)}</code>)"
    )
    parts = []
    metrics = rec.get("metrics") or {}
    if metrics:
        parts.append(_metrics_table(metrics, (rec.get("baseline") or {}).get("metrics") or {}))
    if gates:
        parts.append(_gates_html(gates, rec.get("baseline")))
    for name, step in rec["steps"].items():
        error = step.get("error")
        if step.get("state") != "failed" or not error:
            continue
        where = f" in {e(str(error['cell']))}" if error.get("cell") else ""
        text = f"<p><b>step {e(name)} failed</b>{where}: {e(str(error.get('message')))}</p>"
        if error.get("source"):
            text += f"<pre>{e(str(error['source']))}</pre>"
        if step.get("notebook"):
            notebook = Path(result.path) / str(step["notebook"])
            text += f"<p>executed notebook: <code>{e(str(notebook))}</code></p>"
        parts.append(text)
    if rec.get("serving"):
        parts.append(_serving_html(rec, result.id))
    tracking = rec.get("tracking") or {}
    if tracking.get("run_id"):
        parts.append(
            f"<p>MLflow: experiment <code>{e(str(tracking.get('experiment')))}</code>, run "
            f"<code>{e(str(tracking['run_id']))}</code> ({e(str(tracking.get('uri')))})</p>"
        )
    elif tracking.get("error"):
        parts.append(f"<p>{_error_html('MLflow: ' + str(tracking['error']))}</p>")
    parts.append(f"<p>run folder: <code>{e(str(result.path))}</code></p>")
    return status, "\n".join(parts)


def serving_summary(serving: ServingSpec) -> str:
    """The serving line, in ``nb2prod inspect``'s words: ``serving: predict(raw) uses ...``."""
    return f"serving: {serving.summary()}"


def _serving_html(record: dict[str, Any], run_id: str) -> str:
    """One line on the run's serving model, in the words of the CLI's summary: built (logged,
    when tracked) and checked, with the command that serves it; or the skew or build error."""
    e = html.escape
    serving = record["serving"]
    shown = str(serving.get("signature") or serving.get("function"))
    error = serving.get("error")
    if serving.get("skew") == "found":
        return f"<p>{_error_html(str(error or f'{shown}: training/serving skew found.'))}</p>"
    if serving.get("status") != "ok":
        why = error or f"{shown} could not be built."
        return f"<p>{_error_html(f'no serving model: {why}')}</p>"
    tracking = record.get("tracking") or {}
    if tracking.get("ok") and tracking.get("serving_model"):
        where = f"logged as model 'serving' (<code>{e(str(tracking['serving_model']))}</code>)"
    else:
        where = f"saved as <code>{e(str(serving.get('model') or 'serving/model'))}</code>"
    check = e(check_phrase(serving))
    if serving.get("reused_from"):
        check += f" (reused from run {e(str(serving['reused_from']))})"
    return (
        f"<p>serving: {e(shown)} {where}, {check}. "
        f"Serve it: <code>nb2prod serve {e(run_id)}</code></p>"
    )


def _metrics_table(metrics: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Each metric, and its change against the baseline's when there is one."""
    e = html.escape
    head = "<th>metric</th><th>value</th>" + ("<th>Δ baseline</th>" if baseline else "")
    rows = []
    for name, value in metrics.items():
        row = f"<td>{e(str(name))}</td><td>{e(_number(value))}</td>"
        if baseline:
            row += f"<td>{e(_delta(value, baseline.get(name)))}</td>"
        rows.append(f"<tr>{row}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _gates_html(gates: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """The gates' outcome, the run compared with, and a mark per gate."""
    e = html.escape
    results = gates.get("results") or []
    failed = sum(1 for r in results if r.get("status") == "failed")
    state = str(gates.get("status"))
    line = f"gates {e(state)}" + (f": {failed} of {len(results)} failed" if failed else "")
    parts = [f"<p><b>{line}</b></p>"]
    if baseline and (baseline.get("run_id") or baseline.get("mlflow_run_id")):
        ref = baseline.get("run_id") or baseline.get("mlflow_run_id")
        parts.append(
            f"<p>baseline: {e(str(baseline.get('source')))}, run <code>{e(str(ref))}</code></p>"
        )
    elif any(r.get("status") == "no baseline" for r in results):
        parts.append("<p>no baseline found: gates on <code>baseline</code> not checked</p>")
    rows = []
    for r in results:
        mark = GATE_MARKS.get(str(r.get("status")), str(r.get("status")))
        reason = f"<br><small>{e(str(r['reason']))}</small>" if r.get("reason") else ""
        threshold = "" if r.get("threshold") is None else _number(r["threshold"])
        value = "–" if r.get("value") is None else _number(r["value"])
        rows.append(
            f"<tr><td><code>{e(str(r.get('expr')))}</code>{reason}</td><td>{e(value)}</td>"
            f"<td>{e(threshold)}</td><td>{e(mark)}</td></tr>"
        )
    if rows:
        parts.append(
            "<table><thead><tr><th>gate</th><th>value</th><th>threshold</th><th>result</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    promoted = gates.get("promoted")
    if gates.get("promote"):
        models = ", ".join(f"{k} v{v}" for k, v in ((promoted or {}).get("models") or {}).items())
        parts.append(
            f"<p>promoted to champion{': ' + e(models) if models else ''}</p>"
            if promoted
            else "<p>not promoted: the champion stays</p>"
        )
    return "\n".join(parts)


def _delta(value: Any, base: Any) -> str:
    """``value - base`` signed, as the Lab panel shows it; empty without a number to compare."""
    numbers = (int, float)
    if not isinstance(value, numbers) or not isinstance(base, numbers):
        return ""
    delta = value - base
    if delta != delta:  # NaN
        return ""
    if delta == 0:
        return "±0"
    return ("+" if delta > 0 else "−") + _number(abs(delta))


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


__all__ = ["ParamField", "PipelinePanel", "render_result", "serving_summary"]
