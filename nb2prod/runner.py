"""Running a pipeline version: steps in DAG order, each in a fresh kernel, results in a run folder.

The run folder (laid out in :mod:`nb2prod.run_folder`) holds everything a run produced:
``config.yaml`` (effective parameters), ``steps/<step>/`` (outputs, metrics, models, executed
notebook) and ``run.json``, rewritten atomically at every change, so it always tells the state
of the run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ._version import __version__
from .cache import Hit, KeyParts, Miss, StepCache, link_tree, normalized_code, output_hashes
from .errors import Nb2prodError
from .overrides import effective_params
from .pipeline import PipelineSpec, StepSpec, load_pipeline
from .run_folder import (
    MODEL_EXT,
    RUN_DIR_PARAM,
    RUN_ID_RE,
    config_path,
    metrics_path,
    models_dir,
    notebook_path,
    record_path,
    reserve_path,
    run_dir,
    runs_dir,
    runs_home,
    step_dir,
    write_record,
)

if TYPE_CHECKING:
    from .tracking_worker import TrackingWorker

STATES_DONE = ("succeeded", "cached", "failed", "skipped", "interrupted")
Observer = Callable[[str, str, dict[str, Any]], None]  # (event, step, step record)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fork_kernels() -> bool:
    """Fork step kernels from a zygote (the default); NB2PROD_FORK_KERNELS=0 starts each one
    as a new Python, as jupyter_client does, for libraries that cannot stand a fork."""
    return os.environ.get("NB2PROD_FORK_KERNELS", "1") not in ("0", "false", "no") and hasattr(
        os, "fork"
    )


def new_run_id() -> str:
    """Sortable by start time (to the millisecond), unique by its random tail."""
    now = datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}{secrets.token_hex(2)}"


@dataclass
class RunResult:
    id: str
    path: Path
    record: dict[str, Any]
    tracking: Any = None  # nb2prod.tracking.TrackingResult, when tracking ran
    interrupted: bool = False  # a signal came, during the steps or while logging to MLflow

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted" or self.interrupted:
            return 130
        if self.status != "succeeded":
            return 1
        if self.tracking is not None and not self.tracking.ok:
            return 3
        return 0


class RunRecord:
    """``run.json``, kept in memory and written atomically after every change.

    The run folder also keeps a small reserve file: when the disk fills up during the run, the
    reserve is given back for the final write, so ``run.json`` still ends valid, with the run
    failed and the reason. A write that fails meanwhile is remembered (``write_error``) and
    makes the run fail; the previous complete ``run.json`` stays in place.
    """

    RESERVE_BYTES = 256 * 1024

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.lock = threading.RLock()
        self.write_error: str | None = None
        self._reserve = reserve_path(path.parent)
        with contextlib.suppress(OSError):
            with open(self._reserve, "wb") as fh:
                fh.write(b"\0" * self.RESERVE_BYTES)
        try:
            write_json(self.path, self.data)
        except OSError as exc:
            self.release_reserve()
            raise Nb2prodError(
                f"{describe_os_error(exc, self.path)} Fix: free space or permissions there (or "
                "set NB2PROD_HOME to a writable folder with room) and run again."
            ) from None

    def save(self, final: bool = False) -> None:
        with self.lock:
            try:
                write_json(self.path, self.data)
                return
            except OSError as exc:
                if not (final and exc.errno == errno.ENOSPC and self.release_reserve()):
                    self.write_error = self.write_error or describe_os_error(exc, self.path)
                    return
            try:  # the last write, into the space the reserve gave back
                write_json(self.path, self.data)
            except OSError as exc:
                self.write_error = self.write_error or describe_os_error(exc, self.path)

    def release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except OSError:
            return False
        return True

    def step(self, name: str) -> dict[str, Any]:
        step: dict[str, Any] = self.data["steps"][name]
        return step

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self.data["steps"][name].update(fields)
            self.save()
            return dict(self.data["steps"][name])


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


def describe_os_error(exc: OSError, path: Path | str) -> str:
    """One sentence for a failed write: disk full and permissions said plainly."""
    where = exc.filename or path
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {where}."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({exc.strerror or 'permission denied'})."
    return f"cannot write {where} ({exc.strerror or exc})."


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _warm_code(module: Path) -> str:
    """The step module's first code cell: its imports."""
    import jupytext

    nb = jupytext.read(module)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return str(code[0].source) if code else ""


def _import_code(module: Path) -> str:
    """The module's top-level import statements, read without jupytext (whose import alone
    takes longer than the zygote needs to start): enough to preload its libraries."""
    import ast

    try:
        tree = ast.parse(module.read_text("utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(n) for n in imports)


def _error_info(exc: BaseException, notebook: Path) -> dict[str, Any]:
    """Where and why a step failed, in the notebook's own terms."""
    from .kernels import KernelDied, StepTimeout

    if isinstance(exc, StepTimeout):
        return {"cell": None, "ename": "Timeout", "evalue": str(exc), "message": str(exc)}
    if isinstance(exc, KernelDied):
        msg = f"the kernel died ({exc}); the step may have run out of memory or called os._exit"
        return {"cell": None, "ename": "KernelDied", "evalue": str(exc), "message": msg}
    if isinstance(exc, OSError):  # papermill could not write the executed notebook
        msg = describe_os_error(exc, notebook)
        return {"cell": None, "ename": type(exc).__name__, "evalue": msg, "message": msg}
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = None
    source = getattr(exc, "source", "")
    with contextlib.suppress(Exception):
        # papermill adds marker cells to the saved notebook, so find the cell by its error.
        executed = json.loads(notebook.read_text("utf-8"))
        for c in executed["cells"]:
            if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                cell = c.get("metadata", {}).get("title") or "a cell nb2prod generated"
                source = "".join(c.get("source", source))
                break
    return {
        "cell": cell,
        "ename": ename,
        "evalue": evalue,
        "source": source,
        "message": f"{ename}: {evalue}",
        "traceback": getattr(exc, "traceback", None),
    }


@dataclass
class _Plan:
    spec: PipelineSpec
    run_dir: Path
    record: RunRecord
    params: dict[str, Any]
    selected: set[str]
    no_cache: bool
    step_timeout: float | None
    cache: StepCache
    home: Path  # holds runs/ and cache/ (run_folder.runs_home)
    cwd: Path
    observer: Observer | None
    kernels: dict[str, Any] = field(default_factory=dict)
    done: dict[str, threading.Event] = field(default_factory=dict)
    interrupted: threading.Event = field(default_factory=threading.Event)
    tracker: TrackingWorker | None = None
    zygote: Any = None  # nb2prod.kernels.Zygote, when kernels are forked
    lookups: dict[str, Hit | Miss] = field(default_factory=dict)  # by cache key
    scratch: str | None = None  # a throwaway MLflow store for steps of an untracked run
    phase: str = "steps"  # then "tracking": what a signal interrupts
    socket_dir: str | None = None  # the kernels' Unix sockets, in a private temporary folder


def run_pipeline(
    path: str | Path,
    params: dict[str, Any] | None = None,
    *,
    files: Iterable[Path] = (),
    assignments: Iterable[str] = (),
    steps: Iterable[str] | None = None,
    no_cache: bool = False,
    step_timeout: float | None = None,
    track: bool = True,
    observer: Observer | None = None,
    jobs: int | None = None,
    handle_signals: bool = False,
    run_id: str | None = None,
    tracker: TrackingWorker | None = None,
) -> RunResult:
    """Run the pipeline at ``path`` (``pipelines/<name>`` or ``.../vN``). See module docs.

    ``run_id`` lets a caller that must answer before the run starts (the server) choose the id;
    it must look like one :func:`new_run_id` makes and not be taken yet. ``tracker``: a
    tracking worker the caller started earlier still (the CLI does, first thing), used when
    ``track`` is set; it is stopped when the run cannot start.
    """
    if track and tracker is None:
        from .tracking_worker import TrackingWorker

        # First of all: MLflow's import in the worker is the floor of every tracked run.
        tracker = TrackingWorker()
    elif not track and tracker is not None:
        tracker.close()
        tracker = None
    try:
        return _run_pipeline(
            path,
            params,
            files=files,
            assignments=assignments,
            steps=steps,
            no_cache=no_cache,
            step_timeout=step_timeout,
            observer=observer,
            jobs=jobs,
            handle_signals=handle_signals,
            run_id=run_id,
            tracker=tracker,
        )
    finally:
        if tracker is not None:
            tracker.close()  # a no-op once it has logged the run


def _run_pipeline(
    path: str | Path,
    params: dict[str, Any] | None,
    *,
    files: Iterable[Path],
    assignments: Iterable[str],
    steps: Iterable[str] | None,
    no_cache: bool,
    step_timeout: float | None,
    observer: Observer | None,
    jobs: int | None,
    handle_signals: bool,
    run_id: str | None,
    tracker: TrackingWorker | None,
) -> RunResult:
    spec = load_pipeline(Path(path))
    effective, overrides = effective_params(spec.defaults, files, assignments, params)
    names = [s.name for s in spec.steps]
    selected = set(names)
    if steps is not None:
        selected = {s.strip() for s in steps if s.strip()}
        unknown = sorted(selected - set(names))
        if unknown:
            raise Nb2prodError(
                f"--steps: no step `{unknown[0]}` in {spec.name} v{spec.version}. "
                f"Fix: choose from {', '.join(names)}."
            )
    home = runs_home()
    runs = runs_dir(home)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        if not os.access(runs, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(runs))
    except OSError as exc:
        raise Nb2prodError(
            f"{describe_os_error(exc, runs)} nb2prod keeps every run there. Fix: make it "
            "writable, or set NB2PROD_HOME to a writable folder."
        ) from None
    if run_id is not None:
        if not RUN_ID_RE.fullmatch(run_id):
            raise Nb2prodError(f"run id `{run_id}` is not valid. Fix: omit it to get a new one.")
        run_path = run_dir(home, run_id)
        try:
            run_path.mkdir()
        except FileExistsError:
            raise Nb2prodError(
                f"run id `{run_id}` is taken. Fix: omit it to get a new one."
            ) from None
    while run_id is None:
        candidate = new_run_id()
        run_path = run_dir(home, candidate)
        try:
            run_path.mkdir()
            run_id = candidate
        except FileExistsError:  # another run started in the same second with the same token
            continue
    try:
        write_record(
            config_path(run_path), yaml.safe_dump(effective, sort_keys=False, allow_unicode=True)
        )
    except OSError as exc:
        shutil.rmtree(run_path, ignore_errors=True)  # nothing of this run exists yet
        raise Nb2prodError(
            f"{describe_os_error(exc, config_path(run_path))} Fix: free space or permissions "
            "there (or set NB2PROD_HOME to a writable folder with room) and run again."
        ) from None
    project = spec.path.resolve().parent.parent.parent
    notebook_dir = (project / spec.notebook).parent
    cwd = notebook_dir if notebook_dir.is_dir() else Path.cwd()
    needed = spec.upstream(selected)
    record = RunRecord(
        record_path(run_path),
        {
            "schema_version": 1,
            "id": run_id,
            "pipeline": spec.name,
            "version": spec.version,
            "version_dir": os.path.relpath(spec.path.resolve(), Path.cwd()),
            "notebook": spec.notebook,
            "notebook_sha256": spec.notebook_sha256,
            "nb2prod_version": __version__,
            "git_commit": git_commit(project),
            "status": "running",
            "pid": os.getpid(),
            "started_at": _now(),
            "finished_at": None,
            "duration": None,
            "params": effective,
            "overrides": overrides,
            "steps": {
                s.name: {
                    "role": s.role,
                    "state": "queued" if s.name in needed else "skipped",
                    "depends_on": list(s.depends_on),
                    "params": {p: effective[p] for p in s.parameters if p in effective},
                    "started_at": None,
                    "duration": None,
                    "cached_from": None,
                    "notebook": None,
                    "outputs": {},
                    "metrics": {},
                    "models": [],
                    "model_uris": {},
                    "error": None,
                }
                for s in spec.steps
            },
            "metrics": {},
            "error": None,
            "warnings": [],
            # null when not tracked; pending -> logging -> done (with the result) when tracked
            "tracking": {"state": "pending"} if tracker is not None else None,
        },
    )
    plan = _Plan(
        spec=spec,
        run_dir=run_path.resolve(),
        record=record,
        params=effective,
        selected=selected,
        no_cache=no_cache,
        step_timeout=step_timeout,
        cache=StepCache(home, spec.name),
        home=home,
        cwd=cwd,
        observer=observer,
        tracker=tracker,
    )
    started = time.monotonic()
    previous: dict[signal.Signals, Any] = {}
    if handle_signals:

        def on_signal(signum: int, frame: Any) -> None:
            plan.interrupted.set()
            if plan.phase == "tracking":
                raise KeyboardInterrupt  # out of the wait for the tracking worker
            for kernel in list(plan.kernels.values()):
                kernel.shutdown()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        try:
            _execute(plan, jobs or os.cpu_count() or 1, needed)
        finally:
            for kernel in list(plan.kernels.values()):
                kernel.shutdown()
            if plan.zygote is not None:
                plan.zygote.close()
            for folder in (plan.socket_dir, plan.scratch):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
        result = _finish(plan, names, started, run_path)
        if plan.tracker is not None:
            _track(plan, result)
        return result
    finally:
        record.release_reserve()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _finish(plan: _Plan, names: list[str], started: float, run_dir: Path) -> RunResult:
    """Record the run's outcome from its steps' states (and a run folder that could not be
    written, such as on a full disk). ``run_dir`` as the user named it (relative, usually)."""
    record = plan.record
    states = {n: record.step(n)["state"] for n in names}
    if plan.interrupted.is_set() or "interrupted" in states.values():
        status = "interrupted"
    elif any(s == "failed" for s in states.values()) or record.write_error:
        status = "failed"
    else:
        status = "succeeded"
    with record.lock:
        merged: dict[str, Any] = {}
        for n in names:
            merged.update(record.step(n).get("metrics") or {})
        record.data.update(
            status=status,
            finished_at=_now(),
            duration=round(time.monotonic() - started, 3),
            metrics=merged,
        )
        if record.write_error and not record.data.get("error"):
            record.data["error"] = record.write_error
        # The tracker reads this file, so it must be complete before logging starts.
        record.save(final=plan.tracker is None)
    return RunResult(record.data["id"], run_dir, record.data)


def _track(plan: _Plan, result: RunResult) -> None:
    """Log the finished run folder to MLflow, recording the phase in run.json as it goes."""
    assert plan.tracker is not None
    record = plan.record
    t0 = time.monotonic()
    with record.lock:
        record.data["tracking"] = {"state": "logging", "started_at": _now()}
        record.save()
    _notify_tracking(plan, "tracking")
    try:
        plan.phase = "tracking"
        try:
            result.tracking = plan.tracker.log_run(plan.run_dir)
        finally:
            plan.phase = "done"
    except KeyboardInterrupt:
        plan.tracker.close()
        result.interrupted = True
        from .tracking import TrackingResult

        result.tracking = TrackingResult(
            ok=False,
            uri=getattr(plan.tracker, "uri", "") or "",
            experiment=str(record.data.get("pipeline") or ""),
            experiment_id=None,
            run_id=None,
            error="MLflow tracking was interrupted before it finished. The run's results are "
            f"safe in {plan.run_dir}. Fix: run again and let tracking finish, or pass --no-track.",
        )
    plan.tracker.close()
    with record.lock:
        tracking = result.tracking.to_json()
        tracking.update(state="done", duration=round(time.monotonic() - t0, 3))
        record.data["tracking"] = tracking
        for step_name, uris in (result.tracking.models or {}).items():
            record.data["steps"][step_name]["model_uris"] = uris
        record.save(final=True)
    _notify_tracking(plan, "tracked")


def _notify_tracking(plan: _Plan, event: str) -> None:
    if plan.observer is not None:
        with contextlib.suppress(Exception):
            plan.observer(event, "", dict(plan.record.data.get("tracking") or {}))


def _notify(plan: _Plan, event: str, name: str) -> None:
    if plan.observer is not None:
        with contextlib.suppress(Exception):
            plan.observer(event, name, dict(plan.record.step(name)))


def _execute(plan: _Plan, jobs: int, needed: set[str]) -> None:
    spec = plan.spec
    codes = {s.name: normalized_code(s.module) for s in spec.steps if s.name in needed}
    predicted = _predict_cache_hits(plan, codes)
    to_run = [s for s in spec.steps if s.name in needed and s.name not in predicted]
    warmers = min(jobs, len(to_run))
    if to_run and os.name == "posix":
        # Kernels listen on Unix sockets, which no other local user can reach (TCP ports on
        # 127.0.0.1 anyone can), and ipykernel does not warn about running "over TCP without
        # encryption".
        from .kernels import new_socket_dir  # removes those left by runners killed outright

        plan.socket_dir = new_socket_dir()
    if to_run and fork_kernels():
        from .kernel_zygote import Zygote

        # First, as its imports are on the critical path; each library is imported once there.
        plan.zygote = Zygote(
            preload=[_import_code(s.module) for s in to_run], socket_dir=plan.socket_dir
        )
        # Forked kernels start in a fraction of a second with their imports done, so all of
        # them can warm at once and independent steps really start side by side.
        warmers = len(to_run)
    if plan.tracker is not None:
        from .codegen import MODEL_ROLES

        # MLflow imports in its own process while the steps run; the model-logging machinery
        # only when a step that can make a model will actually run.
        plan.tracker.prepare(
            models=any(s.role in MODEL_ROLES for s in to_run), background=bool(to_run)
        )
    if to_run:
        from .kernels import StepKernel

        for s in to_run:
            plan.kernels[s.name] = StepKernel("python3", plan.cwd, plan.zygote, plan.socket_dir)

    def preload() -> None:  # the first step should not wait for these imports
        from .gc_tuning import imports_without_gc

        with imports_without_gc():
            import jupytext  # noqa: F401
            import papermill  # noqa: F401

    if to_run:  # an all-cached run needs neither
        threading.Thread(target=preload, daemon=True).start()
    run_slots = threading.Semaphore(jobs)

    # Kernels warm in run order. Without forking, as many at once as there are cores: warming
    # them all at once would make the first step wait for every kernel's imports.
    queue = list(to_run)
    queue_lock = threading.Lock()

    def warmer() -> None:
        while True:
            with queue_lock:
                if not queue:
                    return
                step = queue.pop(0)
            kernel = plan.kernels[step.name]
            try:
                if not plan.interrupted.is_set():
                    kernel.start_and_warm(lambda module=step.module: _warm_code(module))
            finally:
                kernel.ready.set()  # never leave the step waiting, whatever happened

    plan.done = {s.name: threading.Event() for s in spec.steps}
    threads = [threading.Thread(target=warmer, daemon=True) for _ in range(warmers)]
    for s in spec.steps:
        if s.name not in needed:
            plan.done[s.name].set()
            continue
        threads.append(
            threading.Thread(target=_step_thread, args=(plan, s, codes, run_slots), daemon=True)
        )
    for t in threads:
        t.start()
    for s in spec.steps:
        while not plan.done[s.name].wait(0.1):
            pass


def _lookup(plan: _Plan, step: StepSpec, parts: KeyParts) -> Hit | Miss:
    """Whether ``step`` can be reused, and if not, why it runs. Remembered per key, so the
    outputs of a cached result are hashed once per run."""
    if plan.no_cache and step.name in plan.selected:
        return Miss("--no-cache")
    if not getattr(step, "cache", True):
        return Miss("it is tagged cache:disabled")
    if parts.key not in plan.lookups:
        plan.lookups[parts.key] = plan.cache.lookup(step.name, parts)
    return plan.lookups[parts.key]


def _predict_cache_hits(plan: _Plan, codes: dict[str, str]) -> set[str]:
    """Steps that will be reused from the cache, so their kernels need not start."""
    hashes: dict[str, dict[str, str]] = {}
    hits: set[str] = set()
    for s in plan.spec.steps:
        if s.name not in codes:
            continue
        inputs = {}
        for name, producer in s.inputs:
            if producer not in hits or name not in hashes[producer]:
                break
            inputs[f"{producer}/{name}"] = hashes[producer][name]
        else:
            parts = KeyParts(codes[s.name], plan.record.step(s.name)["params"], inputs)
            found = _lookup(plan, s, parts)
            if isinstance(found, Hit):
                hits.add(s.name)
                hashes[s.name] = dict(found.record.get("outputs", {}))
    return hits


def _step_thread(plan: _Plan, step: StepSpec, codes: dict[str, str], slots: Any) -> None:
    try:
        _run_step(plan, step, codes, slots)
    except BaseException as exc:  # noqa: BLE001 - a step thread must always finish its record
        plan.record.update(
            step.name,
            state="failed",
            error={
                "cell": None,
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "message": "nb2prod could not run the step: "
                + (describe_os_error(exc, "") if isinstance(exc, OSError) else str(exc)),
            },
        )
        _notify(plan, "failed", step.name)
    finally:
        kernel = plan.kernels.get(step.name)
        if kernel is not None:
            kernel.shutdown()
        plan.done[step.name].set()


def _run_step(plan: _Plan, step: StepSpec, codes: dict[str, str], slots: Any) -> None:
    record = plan.record
    for dep in step.depends_on:
        plan.done[dep].wait()
    bad = [d for d in step.depends_on if record.step(d)["state"] not in ("succeeded", "cached")]
    if plan.interrupted.is_set():
        record.update(step.name, state="interrupted")
        _notify(plan, "interrupted", step.name)
        return
    if bad:
        record.update(
            step.name,
            state="skipped",
            error={
                "cell": None,
                "ename": "Skipped",
                "evalue": f"{bad[0]} did not succeed",
                "message": f"not run because step {bad[0]} did not succeed",
            },
        )
        _notify(plan, "skipped", step.name)
        return
    inputs = {
        f"{producer}/{name}": record.step(producer)["outputs"].get(name, "")
        for name, producer in step.inputs
    }
    parts = KeyParts(codes[step.name], record.step(step.name)["params"], inputs)
    found = _lookup(plan, step, parts)
    # --no-cache re-runs the chosen steps; steps outside --steps always come from the cache.
    if isinstance(found, Miss) and step.name not in plan.selected:
        record.update(
            step.name,
            state="failed",
            error={
                "cell": None,
                "ename": "NotCached",
                "evalue": "no usable cached result",
                "message": f"--steps needs step {step.name}'s results, but no earlier run "
                "computed them with this code, these parameters and these inputs "
                f"({found.reason}); run without --steps first",
            },
        )
        _notify(plan, "failed", step.name)
        return
    target = step_dir(plan.run_dir, step.name)
    if isinstance(found, Hit):
        earlier = found.record
        link_tree(step_dir(run_dir(plan.home, found.run_id), step.name), target)
        origin = earlier.get("cached_from") or found.run_id
        record.update(
            step.name,
            state="cached",
            cached_from=origin,
            duration=0.0,
            notebook=earlier.get("notebook"),
            outputs=earlier.get("outputs", {}),
            metrics=earlier.get("metrics", {}),
            models=earlier.get("models", []),
            model_uris=earlier.get("model_uris", {}),
        )
        kernel = plan.kernels.pop(step.name, None)
        if kernel is not None:
            kernel.shutdown()
        _notify(plan, "cached", step.name)
        return
    import jupytext

    kernel = plan.kernels[step.name]
    kernel.ready.wait()  # started and warmed ahead of time, usually while upstream steps ran
    with slots:
        if plan.interrupted.is_set():
            record.update(step.name, state="interrupted")
            _notify(plan, "interrupted", step.name)
            return
        target.mkdir(parents=True, exist_ok=True)
        notebook = notebook_path(plan.run_dir, step.name)
        nb = jupytext.read(step.module)
        env = _mlflow_env(plan, step)
        if env:
            nb.cells.insert(0, _environment_cell(env))
        record.update(
            step.name,
            state="running",
            reason=found.reason,
            started_at=_now(),
            notebook=notebook.relative_to(plan.run_dir).as_posix(),
        )
        _notify(plan, "running", step.name)
        t0 = time.monotonic()
        parameters = {RUN_DIR_PARAM: str(plan.run_dir), **record.step(step.name)["params"]}
        try:
            kernel.execute(nb, notebook, parameters, plan.step_timeout)
        except Exception as exc:  # noqa: BLE001 - reported in run.json and by the CLI
            state = "interrupted" if plan.interrupted.is_set() else "failed"
            error = _error_info(exc, notebook)
            if state == "interrupted":
                error = {
                    "cell": error.get("cell"),
                    "ename": "Interrupted",
                    "evalue": "the run was interrupted",
                    "message": "stopped because the run was interrupted (Ctrl-C or SIGTERM)",
                }
            _read_only(notebook)
            record.update(
                step.name, state=state, duration=round(time.monotonic() - t0, 3), error=error
            )
            _notify(plan, state, step.name)
            return
        finally:
            kernel.shutdown()
    duration = round(time.monotonic() - t0, 3)
    _read_only(notebook)
    outputs = output_hashes(plan.run_dir, step.name, step.outputs)
    metrics = _read_json(metrics_path(plan.run_dir, step.name))
    models = sorted(p.stem for p in models_dir(plan.run_dir, step.name).glob(f"*{MODEL_EXT}"))
    record.update(
        step.name,
        state="succeeded",
        duration=duration,
        outputs=outputs,
        metrics=metrics,
        models=models,
    )
    if getattr(step, "cache", True):
        try:
            plan.cache.store(step.name, parts, plan.record.data["id"])
        except OSError as exc:  # the result stands; only later runs cannot reuse it
            why = describe_os_error(exc, plan.cache.root)
            _warn(plan, f"step {step.name} is not cached for later runs: {why}")
    _notify(plan, "succeeded", step.name)


def _read_only(path: Path) -> None:
    """Executed notebooks are results: read-only, like outputs (cached runs share them)."""
    with contextlib.suppress(OSError):
        os.chmod(path, os.stat(path).st_mode & ~0o222)


def _warn(plan: _Plan, message: str) -> None:
    with plan.record.lock:
        plan.record.data.setdefault("warnings", []).append(message)
        plan.record.save()
    if plan.observer is not None:
        with contextlib.suppress(Exception):
            plan.observer("warning", "", {"message": message})


def _mlflow_env(plan: _Plan, step: StepSpec) -> dict[str, str]:
    """Environment that makes the step's own MLflow calls (``mlflow.log_param``, ``autolog``)
    land in the step's nested run, or, for an untracked run, in a throwaway store."""
    try:
        text = step.module.read_text("utf-8")
    except OSError:
        return {}
    if not re.search(r"\bmlflow\b", text):
        return {}
    if plan.tracker is not None:
        env = dict(plan.tracker.open_step(plan.run_dir, step.name))
        if env:
            return env
        # Tracking is failing (the final report says why): keep the step's calls away from
        # whatever store they would find on their own.
    from .tracking import scratch_env

    with plan.record.lock:
        if plan.scratch is None:
            plan.scratch = tempfile.mkdtemp(prefix="nb2prod-mlflow-")
    return dict(scratch_env(Path(plan.scratch)))


def _environment_cell(env: dict[str, str]) -> Any:
    """A first cell, visible in the executed notebook, that sets the step's environment."""
    from nbformat.v4 import new_code_cell

    values = json.dumps(dict(sorted(env.items())), indent=1)
    return new_code_cell(
        "# nb2prod: MLflow calls in this step log to the step's run in the pipeline's run\n"
        f'__import__("os").environ.update({values})',
        metadata={"tags": ["nb2prod-environment"]},
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
