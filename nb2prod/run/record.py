"""The run record: what ``run.json`` says about a run, typed, and the one way it changes.

A run's state is a :class:`RunData` holding a :class:`StepRecord` per step. The runner changes
it only through :class:`RunRecord`, whose methods each do three things under one lock: change
the state, write ``run.json`` atomically (through :mod:`nb2prod.run_folder`), and tell the
observer (the terminal's progress, the widgets, the server's job). So what a user sees live and
what the file says never disagree. Errors are :class:`StepError` values, made by named
constructors, never dicts built by hand; they become JSON only when the record is written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..run_folder import reserve_path, write_record

SCHEMA_VERSION = 1
STATES_DONE = ("succeeded", "cached", "failed", "skipped", "interrupted")
REUSABLE = ("succeeded", "cached")  # states whose outputs downstream steps can read
Observer = Callable[[str, str, dict[str, Any]], None]  # (event, step, step record as JSON)


def now() -> str:
    """UTC, to the second, as run.json writes times: ``2026-11-26T19:44:04Z``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def describe_os_error(exc: OSError, path: Path | str) -> str:
    """One sentence for a failed write: disk full and permissions said plainly."""
    where = exc.filename or path
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {where}."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({exc.strerror or 'permission denied'})."
    return f"cannot write {where} ({exc.strerror or exc})."


@dataclass(frozen=True)
class StepError:
    """Why a step did not succeed, in the notebook's own terms."""

    ename: str
    evalue: str
    message: str
    cell: str | None = None  # the notebook cell's title, when a cell raised
    source: str | None = None  # that cell's code
    traceback: list[str] | None = None

    @classmethod
    def skipped(cls, upstream: str) -> StepError:
        return cls(
            "Skipped",
            f"{upstream} did not succeed",
            f"not run because step {upstream} did not succeed",
        )

    @classmethod
    def not_cached(cls, step: str, reason: str) -> StepError:
        return cls(
            "NotCached",
            "no usable cached result",
            f"--steps needs step {step}'s results, but no earlier run computed them with this "
            f"code, these parameters and these inputs ({reason}); run without --steps first",
        )

    @classmethod
    def interrupted(cls, cell: str | None = None) -> StepError:
        return cls(
            "Interrupted",
            "the run was interrupted",
            "stopped because the run was interrupted (Ctrl-C or SIGTERM)",
            cell=cell,
        )

    @classmethod
    def internal(cls, exc: BaseException) -> StepError:
        """nb2prod itself failed around the step (not the step's code)."""
        why = describe_os_error(exc, "") if isinstance(exc, OSError) else str(exc)
        return cls(type(exc).__name__, str(exc), f"nb2prod could not run the step: {why}")

    @classmethod
    def from_execution(cls, exc: BaseException, notebook: Path) -> StepError:
        """A failed execution: the cell that raised (found in the executed notebook, where
        papermill adds marker cells), a timeout, a dead kernel or an unwritable notebook."""
        from .kernels import KernelDied, StepTimeout

        if isinstance(exc, StepTimeout):
            return cls("Timeout", str(exc), str(exc))
        if isinstance(exc, KernelDied):
            return cls(
                "KernelDied",
                str(exc),
                f"the kernel died ({exc}); the step may have run out of memory or called os._exit",
            )
        if isinstance(exc, OSError):  # papermill could not write the executed notebook
            msg = describe_os_error(exc, notebook)
            return cls(type(exc).__name__, msg, msg)
        ename = getattr(exc, "ename", type(exc).__name__)
        evalue = getattr(exc, "evalue", str(exc))
        cell = None
        source = getattr(exc, "source", "")
        with contextlib.suppress(Exception):
            executed = json.loads(notebook.read_text("utf-8"))
            for c in executed["cells"]:
                if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                    cell = c.get("metadata", {}).get("title") or "a cell nb2prod generated"
                    source = "".join(c.get("source", source))
                    break
        return cls(
            ename,
            evalue,
            f"{ename}: {evalue}",
            cell=cell,
            source=source,
            traceback=getattr(exc, "traceback", None),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cell": self.cell, "ename": self.ename, "evalue": self.evalue}
        if self.source is not None:
            data["source"] = self.source
        data["message"] = self.message
        if self.source is not None:  # an execution error: its traceback, even when unknown
            data["traceback"] = self.traceback
        return data


@dataclass
class StepRecord:
    role: str
    state: str  # queued, running, then one of STATES_DONE
    depends_on: list[str]
    params: dict[str, Any]
    started_at: str | None = None
    duration: float | None = None
    cached_from: str | None = None  # the run that computed a reused result
    notebook: str | None = None  # the executed notebook, relative to the run folder
    report: str | None = None  # that notebook as HTML, relative to the run folder, once rendered
    outputs: dict[str, str] = field(default_factory=dict)  # name -> SHA-256
    metrics: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    model_uris: dict[str, Any] = field(default_factory=dict)
    error: StepError | None = None
    reason: str | None = None  # why it ran rather than being reused
    data: dict[str, str] = field(default_factory=dict)  # data file as named -> SHA-256 or "remote"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "role": self.role,
            "state": self.state,
            "depends_on": list(self.depends_on),
            "params": self.params,
            "started_at": self.started_at,
            "duration": self.duration,
            "cached_from": self.cached_from,
            "notebook": self.notebook,
            "outputs": self.outputs,
            "metrics": self.metrics,
            "models": self.models,
            "model_uris": self.model_uris,
            "error": self.error.to_json() if self.error else None,
            "data": self.data,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.report is not None:  # absent, as in runs from before reports, when there is none
            data["report"] = self.report
        return data


@dataclass
class RunData:
    id: str
    pipeline: str
    version: int
    version_dir: str
    notebook: str
    notebook_sha256: str | None
    nb2prod_version: str
    git_commit: str | None
    pid: int
    params: dict[str, Any]
    overrides: dict[str, Any]
    steps: dict[str, StepRecord]
    started_at: str = field(default_factory=now)
    status: str = "running"  # then succeeded, failed or interrupted
    finished_at: str | None = None
    duration: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # None when not tracked; {"state": pending -> logging -> done (with the result)} when tracked
    tracking: dict[str, Any] | None = None
    # The Python version, the differences from the version's requirements.txt and its pins;
    # None for a version exported before nb2prod recorded its environment.
    environment: dict[str, Any] | None = None
    # Labels a caller gives the run (a sweep's id and point), also set on its MLflow parent run;
    # in run.json only when there are some.
    tags: dict[str, str] = field(default_factory=dict)
    # What the gates compared with, and their results (nb2prod.gates); only when there are some.
    baseline: dict[str, Any] | None = None
    gates: dict[str, Any] | None = None
    # The run's serving model (nb2prod.serving.outcome); only for a version with a serving
    # function, once its steps succeeded.
    serving: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "pipeline": self.pipeline,
            "version": self.version,
            "version_dir": self.version_dir,
            "notebook": self.notebook,
            "notebook_sha256": self.notebook_sha256,
            "nb2prod_version": self.nb2prod_version,
            "git_commit": self.git_commit,
            "status": self.status,
            "pid": self.pid,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "params": self.params,
            "overrides": self.overrides,
            "steps": {name: step.to_json() for name, step in self.steps.items()},
            "metrics": self.metrics,
            "error": self.error,
            "warnings": list(self.warnings),
            "environment": self.environment,
            "tracking": dict(self.tracking) if self.tracking is not None else None,
        }
        if self.tags:
            data["tags"] = dict(self.tags)
        if self.baseline is not None:
            data["baseline"] = self.baseline
        if self.gates is not None:
            data["gates"] = self.gates
        if self.serving is not None:
            data["serving"] = self.serving
        return data


class RunRecord:
    """``run.json``, kept in memory, written atomically after every change, and observed.

    The run folder also keeps a small reserve file: when the disk fills up during the run, the
    reserve is given back for the final write, so ``run.json`` still ends valid, with the run
    failed and the reason. A write that fails meanwhile is remembered (``write_error``) and
    makes the run fail; the previous complete ``run.json`` stays in place.
    """

    RESERVE_BYTES = 256 * 1024

    def __init__(self, path: Path, data: RunData, observer: Observer | None = None) -> None:
        self.path = path
        self.data = data
        self.observer = observer
        self.lock = threading.RLock()
        self.write_error: str | None = None
        self._reserve = reserve_path(path.parent)
        with contextlib.suppress(OSError):
            with open(self._reserve, "wb") as fh:
                fh.write(b"\0" * self.RESERVE_BYTES)
        try:
            write_json(self.path, self.data.to_json())
        except OSError as exc:
            self.release_reserve()
            raise Nb2prodError(
                f"{describe_os_error(exc, self.path)} Fix: free space or permissions there (or "
                "set NB2PROD_HOME to a writable folder with room) and run again."
            ) from None

    def step(self, name: str) -> StepRecord:
        return self.data.steps[name]

    def change(self, name: str, state: str, **fields: Any) -> None:
        """Step ``name`` enters ``state`` (with ``fields`` of :class:`StepRecord`): recorded,
        written and told to the observer as the event ``state``."""
        with self.lock:
            step = self.data.steps[name]
            self.data.steps[name] = replace(step, state=state, **fields)
            self._save()
            shown = self.data.steps[name].to_json()
        self._notify(state, name, shown)

    def note(self, name: str, **fields: Any) -> None:
        """Set ``fields`` of step ``name`` without a state change: recorded and written, not
        shown (a step's report, rendered after the step ended)."""
        with self.lock:
            self.data.steps[name] = replace(self.data.steps[name], **fields)
            self._save()

    def warn(self, message: str) -> None:
        with self.lock:
            self.data.warnings.append(message)
            self._save()
        self._notify("warning", "", {"message": message})

    def track(
        self,
        event: str,
        tracking: dict[str, Any],
        models: dict[str, Any] | None = None,
        final: bool = False,
        promoted: dict[str, Any] | None = None,
    ) -> None:
        """The MLflow phase moves on (``event``: tracking, then tracked); ``models``: the
        registered model URIs of each step, once logged; ``promoted``: the run became the
        champion (``gates.promoted``)."""
        with self.lock:
            self.data.tracking = tracking
            if promoted is not None and self.data.gates is not None:
                self.data.gates = {**self.data.gates, "promoted": promoted}
            for step_name, uris in (models or {}).items():
                self.data.steps[step_name] = replace(self.data.steps[step_name], model_uris=uris)
            self._save(final=final)
        self._notify(event, "", dict(tracking))

    def gated(self, baseline: dict[str, Any] | None, gates: dict[str, Any] | None) -> None:
        """What the gates compared with, and their verdict (after :meth:`finish`)."""
        with self.lock:
            self.data.baseline = baseline
            self.data.gates = gates
            self._save(final=True)
        self._notify("gates", "", dict(gates or {}))

    def promoted(self, promoted: dict[str, Any]) -> None:
        """The run became its pipeline's champion (``gates.promoted``)."""
        with self.lock:
            if self.data.gates is not None:
                self.data.gates = {**self.data.gates, "promoted": promoted}
            self._save(final=True)
        self._notify("promoted", "", dict(promoted))

    def served(self, serving: dict[str, Any]) -> None:
        """The run's serving model was built and checked (or why not): before :meth:`finish`,
        which a failed one fails."""
        with self.lock:
            self.data.serving = serving
            if serving.get("status") != "ok" and not self.data.error:
                self.data.error = str(serving.get("error") or "the serving model failed")
            self._save()
        self._notify("serving", "", dict(serving))

    def merged_metrics(self) -> dict[str, Any]:
        """The metrics of the steps merged in run order (a later step's value wins)."""
        with self.lock:
            merged: dict[str, Any] = {}
            for step in self.data.steps.values():
                merged.update(step.metrics or {})
            return merged

    def finish(self, status: str, duration: float, final: bool) -> None:
        """The run's outcome, with the metrics of its steps merged in run order. ``final``:
        nothing will be written after this (no tracking follows)."""
        merged = self.merged_metrics()
        with self.lock:
            self.data.status = status
            self.data.finished_at = now()
            self.data.duration = duration
            self.data.metrics = merged
            if self.write_error and not self.data.error:
                self.data.error = self.write_error
            self._save(final=final)

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return self.data.to_json()

    def _notify(self, event: str, name: str, shown: dict[str, Any]) -> None:
        if self.observer is not None:
            with contextlib.suppress(Exception):  # a display's failure never fails the run
                self.observer(event, name, shown)

    def _save(self, final: bool = False) -> None:
        try:
            write_json(self.path, self.data.to_json())
            return
        except OSError as exc:
            if not (final and exc.errno == errno.ENOSPC and self.release_reserve()):
                self.write_error = self.write_error or describe_os_error(exc, self.path)
                return
        try:  # the last write, into the space the reserve gave back
            write_json(self.path, self.data.to_json())
        except OSError as exc:
            self.write_error = self.write_error or describe_os_error(exc, self.path)

    def release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except OSError:
            return False
        return True


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and a rename; no temporary file is left
    behind, whatever happens. Non-finite floats are written as strings, so the file stays JSON."""
    write_record(path, json.dumps(_finite(data), indent=2, default=repr, allow_nan=False) + "\n")


def _finite(data: Any) -> Any:
    """NaN and infinities as the strings JavaScript's JSON uses for them ("NaN", "Infinity")."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if data != data else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data
