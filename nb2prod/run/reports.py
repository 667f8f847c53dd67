"""Step reports: each executed step notebook as a self-contained HTML page.

nbconvert's HTMLExporter renders the page (code and outputs as Jupyter shows them, images
inline), kept as ``steps/<step>/report.html`` beside the executed notebook and logged to the
step's MLflow run, whose UI previews it.

Rendering is kept off the critical path: one background thread imports nbconvert (about a
second) while the first kernels start, then renders each step as it finishes, beside the steps
still running. The run waits for it only once every step is done, and only so long; a report
that cannot be rendered is a warning, never a failed step.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..pipeline import StepSpec
from ..run_folder import notebook_path, report_path, write_bytes_atomic
from .record import RunRecord

#: ``NB2PROD_REPORTS=0`` turns every step's report off (benchmarks, CI that has no use for them).
REPORTS_ENV = "NB2PROD_REPORTS"
#: How long a run waits, once its steps are done, for reports still rendering.
WAIT_SECONDS = 60.0

Done = Callable[[str, Path | None, str | None], None]  # (step, report or None, why not)


def reports_enabled() -> bool:
    return os.environ.get(REPORTS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def render_report(notebook: Path, target: Path) -> None:
    """Render the executed ``notebook`` to ``target`` (read-only, written atomically, like
    every result). Raises when the notebook cannot be read or rendered."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter()
    # The injected parameters and nb2prod's environment cell are part of what ran: kept.
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": notebook.parent.name}}
    )
    write_bytes_atomic(target, body.encode("utf-8"), durable=False)


def _warm() -> None:
    """Import nbconvert and load its templates and highlighter, which the first render would
    otherwise pay for (about a second on top of the import)."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_notebook

    HTMLExporter().from_notebook_node(new_notebook(cells=[new_code_cell("x = 1")]))


@dataclass
class _Job:
    step: str
    notebook: Path
    target: Path
    done: Done


@dataclass
class ReportRenderer:
    """One worker thread rendering reports in the order steps finish.

    ``submit`` returns at once; ``done`` is called from the worker with the report's path, or
    None and the reason it failed. ``wait`` blocks until every submitted report is rendered or
    the time is up, and names the steps still pending.
    """

    _queue: queue.Queue[_Job | None] = field(default_factory=queue.Queue)
    _pending: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Condition = field(init=False)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._idle = threading.Condition(self._lock)

    def start(self) -> ReportRenderer:
        self._thread = threading.Thread(target=self._work, name="nb2prod-reports", daemon=True)
        self._thread.start()
        return self

    def submit(self, step: str, notebook: Path, target: Path, done: Done) -> None:
        with self._lock:
            self._pending.add(step)
        self._queue.put(_Job(step, notebook, target, done))

    def wait(self, timeout: float = WAIT_SECONDS) -> list[str]:
        """Wait for the submitted reports; the steps whose report is still not done."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            late = sorted(self._pending)
        self._queue.put(None)  # the worker ends after what is queued
        return late

    def _work(self) -> None:
        try:
            _warm()
        except Exception:  # noqa: BLE001, S110 - each render then reports the problem itself
            pass
        while True:
            job = self._queue.get()
            if job is None:
                return
            report: Path | None = job.target
            why = None
            try:
                render_report(job.notebook, job.target)
            except Exception as exc:  # noqa: BLE001 - a report never fails the run
                report, why = None, f"{type(exc).__name__}: {exc}".strip()
            try:
                job.done(job.step, report, why)
            except Exception:  # noqa: BLE001, S110 - the record says what it could
                pass
            with self._idle:
                self._pending.discard(job.step)
                self._idle.notify_all()


def describe_failure(step: str, why: str | None) -> str:
    """The run.json warning for a report that could not be rendered."""
    first = (why or "unknown error").splitlines()[0][:300]
    return (
        f"step {step}: its HTML report was not rendered ({first}); the step's results and "
        "executed notebook are unaffected."
    )


def describe_late(steps: list[str], timeout: float) -> str:
    return (
        f"the HTML report of step{'s' if len(steps) > 1 else ''} {', '.join(steps)} was not "
        f"rendered within {timeout:.0f}s after the steps ended; the run did not wait longer. "
        "The executed notebooks are complete."
    )


class StepReports:
    """A run's reports: rendered in the background as steps end, recorded in run.json (the
    step's ``report``) as each is done, failures as warnings. The renderer starts on first
    need, so a run with nothing to render never imports nbconvert."""

    def __init__(self, record: RunRecord, run_dir: Path, enabled: bool | None = None) -> None:
        self.record = record
        self.run_dir = run_dir
        self.enabled = reports_enabled() if enabled is None else enabled
        self._renderer: ReportRenderer | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the renderer now, so nbconvert imports while the first steps run."""
        self._start()

    def render(self, step: StepSpec) -> None:
        """Render ``step``'s executed notebook, when it has one and its report is on."""
        notebook = notebook_path(self.run_dir, step.name)
        if not (self.enabled and step.report and notebook.is_file()):
            return
        renderer = self._start()
        assert renderer is not None
        renderer.submit(step.name, notebook, report_path(self.run_dir, step.name), self._done)

    def reused(self, step: StepSpec, earlier: str | None) -> str | None:
        """A cached step's report: the one of the run that computed it, linked in with its
        folder; rendered from the cached notebook when that run kept none."""
        if not (self.enabled and step.report):
            return None
        if earlier and (self.run_dir / earlier).is_file():
            return earlier
        self.render(step)
        return None

    def wait(self, timeout: float = WAIT_SECONDS) -> None:
        """Wait (at most ``timeout``) for the reports still rendering; late ones are a warning."""
        if self._renderer is None:
            return
        late = self._renderer.wait(timeout)
        if late:
            self.record.warn(describe_late(late, timeout))

    def _start(self) -> ReportRenderer | None:
        with self._lock:
            if self._renderer is None and self.enabled:
                self._renderer = ReportRenderer().start()
            return self._renderer

    def _done(self, step: str, report: Path | None, why: str | None) -> None:
        if report is None:
            self.record.warn(describe_failure(step, why))
        else:
            self.record.note(step, report=report.relative_to(self.run_dir).as_posix())
