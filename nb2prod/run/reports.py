"""Step reports: each executed step notebook as a self-contained HTML page.

nbconvert's HTMLExporter renders the page (code and outputs as Jupyter shows them, images
inline), kept as ``steps/<step>/report.html`` beside the executed notebook and logged to the
step's MLflow run, whose UI previews it.

Rendering is kept off the critical path: one worker process, at lower priority, imports
nbconvert (about a second) while the first kernels start, then renders each step as it ends,
beside the steps still running. The run waits for it only once every step is done, and only so
long; a report that cannot be rendered is a warning, never a failed step.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..pipeline import StepSpec
from ..run_folder import notebook_path, report_path, write_bytes_atomic
from .record import RunRecord

#: ``NB2PROD_REPORTS=0`` turns every step's report off (benchmarks, CI that has no use for them).
REPORTS_ENV = "NB2PROD_REPORTS"
#: How long a run waits, once its steps are done, for reports still rendering.
WAIT_SECONDS = 60.0
#: The worker's niceness while it renders beside the steps.
WORKER_NICENESS = 10

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
class ReportRenderer:
    """A worker process rendering reports in the order steps finish (``python -m
    nb2prod.run.reports``, one JSON line per job each way).

    A process, not a thread: rendering is CPU-bound Python, and in the runner it would hold the
    GIL that the threads driving the step kernels need; as a process it runs beside them at
    lower priority. ``submit`` returns at once; ``done`` is called (from a reader thread) with
    the report's path, or None and why not. ``wait`` blocks until every submitted report is
    done or the time is up, then stops the worker, and names the steps still pending.
    """

    _proc: subprocess.Popen[str] | None = None
    _pending: dict[str, tuple[Path, Done]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._idle = threading.Condition(self._lock)

    def start(self) -> ReportRenderer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "nb2prod.run.reports"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, name="nb2prod-reports", daemon=True).start()
        return self

    def submit(self, step: str, notebook: Path, target: Path, done: Done) -> None:
        job = {"step": step, "notebook": str(notebook), "target": str(target)}
        with self._lock:
            self._pending[step] = (target, done)
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(job) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:  # the worker is gone
            self._answer({"step": step, "error": f"the report worker stopped ({exc})"})

    def wait(self, timeout: float = WAIT_SECONDS) -> list[str]:
        """Wait for the submitted reports, then stop the worker; the steps still pending."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
            late = sorted(self._pending)
            self._pending.clear()
        self.close()
        return late

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        with contextlib.suppress(Exception):
            if proc.poll() is None:
                proc.kill()  # anything still rendering is abandoned: a late report
            proc.wait(timeout=10)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self._answer(json.loads(line))
        with self._lock:  # the worker died: whatever it had left will not come
            lost = list(self._pending)
        for step in lost:
            self._answer({"step": step, "error": "the report worker stopped"})

    def _answer(self, reply: dict[str, Any]) -> None:
        with self._lock:
            job = self._pending.pop(str(reply.get("step")), None)
        if job is None:
            return
        target, done = job
        error = reply.get("error")
        with contextlib.suppress(Exception):  # the record says what it could
            done(str(reply["step"]), None if error else target, error)
        with self._idle:
            self._idle.notify_all()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The worker: warm nbconvert up, then render each job and answer."""
    # Ctrl-C reaches the whole process group; the runner decides what becomes of the reports.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)  # the step kernels come first
    # jsonschema (nbformat's validator) builds an IRI grammar with lark on import when
    # rfc3987_syntax is installed: 2 CPU-s, for a format check nbformat's schema never asks
    # for. This process only renders, so it goes without.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    from ..gc_tuning import imports_without_gc

    with contextlib.suppress(Exception), imports_without_gc():  # each render reports it
        _warm()
    for line in requests:
        job: dict[str, Any] = {}
        try:
            job = json.loads(line)
            render_report(Path(job["notebook"]), Path(job["target"]))
            error = None
        except Exception as exc:  # noqa: BLE001 - a report never fails the run
            error = f"{type(exc).__name__}: {exc}".strip()
        replies.write(json.dumps({"step": job.get("step"), "error": error}) + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints must not corrupt the reply stream
    serve(sys.stdin, replies)
    sys.stdout.flush()
    os._exit(0)


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

    def finish(self, abandon: bool = False, timeout: float = WAIT_SECONDS) -> None:
        """Wait (at most ``timeout``) for the reports still rendering, late ones a warning, and
        stop the worker; ``abandon`` (an interrupted run): stop it without waiting."""
        if self._renderer is None:
            return
        if abandon:
            self._renderer.close()
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


if __name__ == "__main__":
    main()
