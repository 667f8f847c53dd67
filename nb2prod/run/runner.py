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
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._version import __version__
from ..errors import Nb2prodError
from ..grammar import MODEL_ROLES
from ..pipeline import PipelineSpec, StepSpec, load_pipeline
from ..run_folder import (
    MODEL_EXT,
    RUN_DIR_PARAM,
    RUN_ID_RE,
    config_path,
    link_tree,
    metrics_path,
    models_dir,
    notebook_path,
    record_path,
    run_dir,
    runs_dir,
    runs_home,
    step_dir,
    write_record,
)
from ..run_index import promotion_due
from .cache import Hit, KeyParts, Miss, StepCache, normalized_code, output_hashes
from .environment import EnvironmentCheck, check_environment
from .fingerprints import data_inputs
from .gating import Gating, record_champion
from .gating import evaluate as evaluate_gates
from .gating import prepare as prepare_gates
from .overrides import effective_params
from .record import (
    REUSABLE,
    Observer,
    RunData,
    RunRecord,
    StepError,
    StepRecord,
    describe_os_error,
    now,
)
from .reports import StepReports

if TYPE_CHECKING:
    from ..serving.process import ServingProcess
    from ..tracking.worker import TrackingWorker


def fork_kernels() -> bool:
    """Fork step kernels from a zygote (the default); NB2PROD_FORK_KERNELS=0 starts each one
    as a new Python, as jupyter_client does, for libraries that cannot stand a fork."""
    return os.environ.get("NB2PROD_FORK_KERNELS", "1") not in ("0", "false", "no") and hasattr(
        os, "fork"
    )


def new_run_id() -> str:
    """Sortable by start time (to the millisecond), unique by its random tail."""
    at = datetime.now(timezone.utc)
    return f"{at:%Y%m%d-%H%M%S}-{at.microsecond // 1000:03d}{secrets.token_hex(2)}"


@dataclass
class RunResult:
    id: str
    path: Path
    record: dict[str, Any]
    tracking: Any = None  # nb2prod.tracking.mlflow_log.TrackingResult, when tracking ran
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
        gates = self.record.get("gates")
        if isinstance(gates, dict) and gates.get("status") == "failed":
            return 4
        if self.tracking is not None and not self.tracking.ok:
            return 3
        return 0


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class StepSource:
    """A step module, read from disk once per run: its text gives the cache key's code, the
    imports the zygote preloads, whether it calls MLflow, and (parsed once, by jupytext) the
    notebook that warms and then runs its kernel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text("utf-8")
        self.code = normalized_code(self.text)
        self.uses_mlflow = re.search(r"\bmlflow\b", self.text) is not None
        self._notebook: Any = None
        self._lock = threading.Lock()

    def notebook(self) -> Any:
        """The module as a notebook (jupytext's percent format), parsed on first use."""
        with self._lock:
            if self._notebook is None:
                import jupytext

                self._notebook = jupytext.reads(self.text, fmt={"extension": ".py"})
            return self._notebook

    def warm_code(self) -> str:
        """The first code cell: the step's imports, run while the kernel waits for its turn."""
        code = [c for c in self.notebook().cells if c.cell_type == "code"]
        return str(code[0].source) if code else ""

    def import_code(self) -> str:
        """The top-level import statements, found without jupytext (whose import alone takes
        longer than the zygote needs to start): enough to preload the step's libraries."""
        import ast

        try:
            tree = ast.parse(self.text)
        except (SyntaxError, ValueError):
            return ""
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        return "\n".join(ast.unparse(n) for n in imports)


@dataclass
class _Run:
    """One run in progress: what every phase and step thread shares."""

    spec: PipelineSpec
    run_dir: Path  # absolute
    record: RunRecord
    selected: set[str]
    needed: set[str]  # the selected steps and what they need from upstream
    no_cache: bool
    step_timeout: float | None
    cache: StepCache
    home: Path  # holds runs/ and cache/ (run_folder.runs_home)
    cwd: Path
    tracker: TrackingWorker | None = None
    env: EnvironmentCheck | None = None  # None for a version that recorded no environment
    sources: dict[str, StepSource] = field(default_factory=dict)  # the needed steps'
    kernels: dict[str, Any] = field(default_factory=dict)
    done: dict[str, threading.Event] = field(default_factory=dict)
    interrupted: threading.Event = field(default_factory=threading.Event)
    zygote: Any = None  # nb2prod.run.zygote.Zygote, when kernels are forked
    lookups: dict[str, Hit | Miss] = field(default_factory=dict)  # by cache key
    scratch: str | None = None  # a throwaway MLflow store for steps of an untracked run
    phase: str = "steps"  # then "tracking": what a signal interrupts
    socket_dir: str | None = None  # the kernels' Unix sockets, in a private temporary folder
    gating: Gating | None = None
    reports: StepReports | None = None  # the steps' HTML reports, rendered beside the steps
    builder: ServingProcess | None = None  # builds an untracked run's serving model


def run_pipeline(
    pipeline: PipelineSpec | str | Path,
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
    strict_env: bool = False,
    tags: dict[str, str] | None = None,
    gates: Iterable[str] = (),
    baseline: str = "champion",
    promote: bool = False,
    require_baseline: bool = False,
) -> RunResult:
    """Run ``pipeline``: a version already loaded (:func:`nb2prod.pipeline.load_pipeline`), or
    its path (``pipelines/<name>`` or ``.../vN``). See the module's docs.

    ``run_id`` lets a caller that must answer before the run starts (the server) choose the id;
    it must look like one :func:`new_run_id` makes and not be taken yet. ``tracker``: a
    tracking worker the caller started earlier still (the CLI does, first thing), used when
    ``track`` is set; it is stopped when the run cannot start. ``strict_env``: refuse to run
    (exit 2) when the installed libraries differ from the version's requirements.txt.
    ``tags``: recorded in run.json and set on the run's MLflow parent run (a sweep's id).
    ``gates``: gate expressions checked after the steps besides the version's own, against
    ``baseline`` (champion, previous, vN or a run id); ``promote``: make the run the champion
    when every gate passes; ``require_baseline``: a gate that needs a missing baseline fails.
    """
    if track and tracker is None:
        from ..tracking.worker import TrackingWorker

        # First of all: MLflow's import in the worker is the floor of every tracked run.
        tracker = TrackingWorker()
    elif not track and tracker is not None:
        tracker.close()
        tracker = None
    try:
        spec = pipeline if isinstance(pipeline, PipelineSpec) else load_pipeline(Path(pipeline))
        effective, overrides = effective_params(spec.defaults, files, assignments, params)
        selected = _selected_steps(spec, steps)
        env = check_environment(spec, strict_env)
        home = runs_home()
        needed = spec.upstream(selected)
        cwd = working_folder(spec)
        reads = data_inputs(spec, effective, needed, cwd, home)  # exit 2 before the run exists
        gating = prepare_gates(spec, gates, baseline, promote, require_baseline, home, tracker)
        run_path, run_id = _open_run_folder(home, run_id, effective)
        data = _new_record(spec, run_id, effective, overrides, needed, tracked=tracker is not None)
        data.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        for name, found in reads.items():
            data.steps[name].data = {d.shown: d.sha256 for d in found}
        data.environment = env.to_json() if env is not None else None
        run = _Run(
            spec=spec,
            run_dir=run_path.resolve(),
            record=RunRecord(record_path(run_path), data, observer),
            selected=selected,
            needed=needed,
            no_cache=no_cache,
            step_timeout=step_timeout,
            cache=StepCache(home, spec.name),
            home=home,
            cwd=cwd,
            tracker=tracker,
            env=env,
            gating=gating,
        )
        return _run(run, run_path, jobs or os.cpu_count() or 1, handle_signals)
    finally:
        if tracker is not None:
            tracker.close()  # a no-op once it has logged the run


# Phase 1: before anything of the run exists -------------------------------------------------


def _selected_steps(spec: PipelineSpec, steps: Iterable[str] | None) -> set[str]:
    names = [s.name for s in spec.steps]
    if steps is None:
        return set(names)
    selected = {s.strip() for s in steps if s.strip()}
    unknown = sorted(selected - set(names))
    if unknown:
        raise Nb2prodError(
            f"--steps: no step `{unknown[0]}` in {spec.name} v{spec.version}. "
            f"Fix: choose from {', '.join(names)}."
        )
    return selected


def _open_run_folder(home: Path, run_id: str | None, params: dict[str, Any]) -> tuple[Path, str]:
    """Create the run's folder under a new (or the requested) id, with its ``config.yaml``.
    Nothing is left behind when that fails."""
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
            config_path(run_path), yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
        )
    except OSError as exc:
        shutil.rmtree(run_path, ignore_errors=True)  # nothing of this run exists yet
        raise Nb2prodError(
            f"{describe_os_error(exc, config_path(run_path))} Fix: free space or permissions "
            "there (or set NB2PROD_HOME to a writable folder with room) and run again."
        ) from None
    return run_path, run_id


def project_folder(spec: PipelineSpec) -> Path:
    """The folder holding the pipelines folder: where the notebook's path is relative to."""
    return spec.path.resolve().parent.parent.parent


def working_folder(spec: PipelineSpec) -> Path:
    """Steps run where the notebook ran: its folder, so its relative paths mean the same."""
    notebook_dir = (project_folder(spec) / spec.notebook).parent
    return notebook_dir if notebook_dir.is_dir() else Path.cwd()


def _new_record(
    spec: PipelineSpec,
    run_id: str,
    params: dict[str, Any],
    overrides: dict[str, Any],
    needed: set[str],
    tracked: bool,
) -> RunData:
    return RunData(
        id=run_id,
        pipeline=spec.name,
        version=spec.version,
        version_dir=os.path.relpath(spec.path.resolve(), Path.cwd()),
        notebook=spec.notebook,
        notebook_sha256=spec.notebook_sha256,
        nb2prod_version=__version__,
        git_commit=git_commit(project_folder(spec)),
        pid=os.getpid(),
        params=params,
        overrides=overrides,
        steps={
            s.name: StepRecord(
                role=s.role,
                state="queued" if s.name in needed else "skipped",
                depends_on=list(s.depends_on),
                params={p: params[p] for p in s.parameters if p in params},
            )
            for s in spec.steps
        },
        tracking={"state": "pending"} if tracked else None,
    )


# Phase 2: the steps, then the outcome, then MLflow ----------------------------------------


def _run(run: _Run, run_path: Path, jobs: int, handle_signals: bool) -> RunResult:
    started = time.monotonic()
    try:
        with _signals_stop(run, handle_signals):
            try:
                _execute(run, jobs)
            finally:
                _stop_kernels(run)
                if run.reports is not None:  # run.json names them before the tracker reads it
                    run.reports.finish(abandon=run.interrupted.is_set())
            if _serving_due(run):
                try:
                    _serve(run)
                except Exception as exc:  # noqa: BLE001 - recorded: the run fails, not the runner
                    assert run.spec.serving is not None
                    name = run.spec.serving.function
                    run.record.served(
                        {
                            "function": name,
                            "status": "failed",
                            "error": f"the serving model of {name} could not be built "
                            f"({type(exc).__name__}: {exc}).",
                        }
                    )
            result = _finish(run, started, run_path)
            if run.tracker is not None:
                _track(run, result)
            return result
    finally:
        if run.builder is not None:
            run.builder.close()
        run.record.release_reserve()


@contextlib.contextmanager
def _signals_stop(run: _Run, handle: bool) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run's kernels (the steps end "interrupted"), or, while
    logging to MLflow, the wait for the tracking worker."""
    previous: dict[signal.Signals, Any] = {}
    if handle:

        def on_signal(signum: int, frame: Any) -> None:
            run.interrupted.set()
            if run.phase == "tracking":
                raise KeyboardInterrupt  # out of the wait for the tracking worker
            for kernel in list(run.kernels.values()):
                kernel.shutdown()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_kernels(run: _Run) -> None:
    for kernel in list(run.kernels.values()):
        kernel.shutdown()
    if run.zygote is not None:
        run.zygote.close()
    for folder in (run.socket_dir, run.scratch):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _finish(run: _Run, started: float, run_path: Path) -> RunResult:
    """Record the run's outcome from its steps' states (and a run folder that could not be
    written, such as on a full disk). ``run_path`` as the user named it (relative, usually)."""
    record = run.record
    states = {s.state for s in record.data.steps.values()}
    if run.interrupted.is_set() or "interrupted" in states:
        status = "interrupted"
    elif "failed" in states or record.write_error:
        status = "failed"
    elif (record.data.serving or {}).get("status") == "failed":
        status = "failed"  # the serving model could not be built, or is skewed
    else:
        status = "succeeded"
    # The tracker reads run.json, so it must be complete before logging starts.
    final = run.tracker is None
    record.finish(status, round(time.monotonic() - started, 3), final)
    if final:  # untracked: the gates now; a tracked run's wait for MLflow's champion is its own
        _check_gates(run, status)
    result = RunResult(record.data.id, run_path, record.to_json())
    if final and promotion_due(result.record):  # untracked: the champion is recorded locally
        promoted = record_champion(run.home, result.record, {})
        record.promoted(promoted)
        result.record = record.to_json()
    return result


def _serving_due(run: _Run) -> bool:
    """Whether to build the serving model: the version has one and every step succeeded (or
    came from the cache), so every need and example is in the run folder."""
    if run.spec.serving is None or run.interrupted.is_set():
        return False
    return all(s.state in REUSABLE for s in run.record.data.steps.values())


def _serve(run: _Run) -> None:
    """Build and check the run's serving model, or reuse an earlier run's identical one."""
    from ..serving.outcome import ServingOutcome
    from ..serving.reuse import model_key, reuse

    spec, record = run.spec, run.record
    assert spec.serving is not None
    steps = record.data.steps
    key = model_key(spec, run.run_dir, record.data.params, {n: s.outputs for n, s in steps.items()})
    earlier = []
    for run_id in dict.fromkeys(s.cached_from for s in steps.values() if s.cached_from):
        folder = run_dir(run.home, run_id)
        found = read_json_object(record_path(folder)).get("serving")
        if isinstance(found, dict):
            earlier.append((run_id, folder, found))
    outcome = reuse(run.run_dir, key, earlier)
    if outcome is None:
        version_dir, where = spec.path.resolve(), run.run_dir
        reply = run.tracker.build_serving(version_dir, where) if run.tracker is not None else None
        if reply is None:
            if run.builder is None:
                from ..serving.process import ServingProcess

                run.builder = ServingProcess(background=False)
            reply = run.builder.build(version_dir, where)
            run.builder = None
        function = spec.serving.function
        shown = f"{function}({', '.join(spec.serving.args)})"
        outcome = ServingOutcome.from_json({"function": function, "signature": shown, **reply})
        outcome.key = key
    record.served(outcome.to_json())
    for message in outcome.warnings or []:
        record.warn(message)


def _check_gates(run: _Run, status: str) -> None:
    """Check the run's gates against its baseline and record both in run.json."""
    if run.gating is None:
        return
    baseline, gates = evaluate_gates(
        run.gating, status, run.record.merged_metrics(), run.spec.name, run.home, run.tracker
    )
    run.record.gated(baseline, gates)
    for message in run.gating.warnings:
        run.record.warn(message)


def _track(run: _Run, result: RunResult) -> None:
    """Log the finished run folder to MLflow, recording the phase in run.json as it goes."""
    assert run.tracker is not None
    record = run.record
    t0 = time.monotonic()
    record.track("tracking", {"state": "logging", "started_at": now()})
    try:
        run.phase = "tracking"
        try:
            # The champion may come from MLflow's registry, so the gates are part of tracking.
            _check_gates(run, record.data.status)
            result.tracking = run.tracker.log_run(run.run_dir)
        finally:
            run.phase = "done"
    except KeyboardInterrupt:
        run.tracker.close()
        result.interrupted = True
        from ..tracking.mlflow_log import TrackingResult

        result.tracking = TrackingResult(
            ok=False,
            uri=getattr(run.tracker, "uri", "") or "",
            experiment=record.data.pipeline,
            experiment_id=None,
            run_id=None,
            error="MLflow tracking was interrupted before it finished. The run's results are "
            f"safe in {run.run_dir}. Fix: run again and let tracking finish, or pass --no-track.",
        )
    run.tracker.close()
    tracking = result.tracking.to_json()
    tracking.update(state="done", duration=round(time.monotonic() - t0, 3))
    promoted = None
    if result.tracking.promoted is not None:
        record.data.tracking = tracking  # the champion record keeps the MLflow run's id
        promoted = record_champion(run.home, record.to_json(), result.tracking.promoted)
    record.track("tracked", tracking, models=result.tracking.models, final=True, promoted=promoted)
    result.record = record.to_json()


# The steps: kernels started ahead, each step in a thread of its own --------------------------


def _execute(run: _Run, jobs: int) -> None:
    spec = run.spec
    run.sources = {s.name: StepSource(s.module) for s in spec.steps if s.name in run.needed}
    run.reports = StepReports(run.record, run.run_dir)
    predicted = _predict_cache_hits(run)
    to_run = [s for s in spec.steps if s.name in run.needed and s.name not in predicted]
    warmers = min(jobs, len(to_run))
    if to_run and os.name == "posix":
        # Kernels listen on Unix sockets, which no other local user can reach (TCP ports on
        # 127.0.0.1 anyone can), and ipykernel does not warn about running "over TCP without
        # encryption".
        from .kernels import new_socket_dir  # removes those left by runners killed outright

        run.socket_dir = new_socket_dir()
    if to_run and fork_kernels():
        from .zygote import Zygote

        # First, as its imports are on the critical path; each library is imported once there.
        run.zygote = Zygote(
            preload=[run.sources[s.name].import_code() for s in to_run],
            socket_dir=run.socket_dir,
        )
        # Forked kernels start in a fraction of a second with their imports done, so all of
        # them can warm at once and independent steps really start side by side.
        warmers = len(to_run)
    if run.tracker is not None:
        # MLflow imports in its own process while the steps run; the model-logging machinery
        # only when a step that can make a model will actually run.
        run.tracker.prepare(
            # A run whose steps all come from the cache usually reuses its serving model.
            models=any(s.role in MODEL_ROLES for s in to_run)
            or (spec.serving is not None and bool(to_run)),
            background=bool(to_run),
        )
    elif spec.serving is not None and to_run:
        from ..serving.process import ServingProcess

        # MLflow imports there while the steps run; an all-cached run usually reuses the
        # model an earlier run built, and starts the process only if it cannot.
        run.builder = ServingProcess(spec.path / spec.serving.module)
    if to_run:
        from .kernels import StepKernel

        for s in to_run:
            run.kernels[s.name] = StepKernel("python3", run.cwd, run.zygote, run.socket_dir)

    def preload() -> None:  # the first step should not wait for these imports
        from ..gc_tuning import imports_without_gc

        with imports_without_gc():
            import jupytext  # noqa: F401
            import papermill  # noqa: F401

    if to_run:  # an all-cached run needs neither
        threading.Thread(target=preload, daemon=True).start()
    if any(s.report for s in to_run):
        run.reports.warm()  # nbconvert imports beside the first steps, not after the last
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
            kernel = run.kernels[step.name]
            try:
                if not run.interrupted.is_set():
                    kernel.start_and_warm(run.sources[step.name].warm_code)
            finally:
                kernel.ready.set()  # never leave the step waiting, whatever happened

    run.done = {s.name: threading.Event() for s in spec.steps}
    threads = [threading.Thread(target=warmer, daemon=True) for _ in range(warmers)]
    for s in spec.steps:
        if s.name not in run.needed:
            run.done[s.name].set()
            continue
        threads.append(threading.Thread(target=_step_thread, args=(run, s, run_slots), daemon=True))
    for t in threads:
        t.start()
    for s in spec.steps:
        while not run.done[s.name].wait(0.1):
            pass


def _lookup(run: _Run, step: StepSpec, parts: KeyParts) -> Hit | Miss:
    """Whether ``step`` can be reused, and if not, why it runs. Remembered per key, so the
    outputs of a cached result are hashed once per run."""
    if run.no_cache and step.name in run.selected:
        return Miss("--no-cache")
    if not step.cache:
        return Miss("it is tagged cache:disabled")
    if parts.key not in run.lookups:
        run.lookups[parts.key] = run.cache.lookup(step.name, parts)
    return run.lookups[parts.key]


def _predict_cache_hits(run: _Run) -> set[str]:
    """Steps that will be reused from the cache, so their kernels need not start."""
    hashes: dict[str, dict[str, str]] = {}
    hits: set[str] = set()
    for s in run.spec.steps:
        if s.name not in run.sources:
            continue
        inputs = {}
        for name, producer in s.inputs:
            if producer not in hits or name not in hashes[producer]:
                break
            inputs[f"{producer}/{name}"] = hashes[producer][name]
        else:
            parts = _key_parts(run, s, inputs)
            found = _lookup(run, s, parts)
            if isinstance(found, Hit):
                hits.add(s.name)
                hashes[s.name] = dict(found.record.get("outputs", {}))
    return hits


def _key_parts(run: _Run, step: StepSpec, inputs: dict[str, str]) -> KeyParts:
    """What the step's cache key is made of: its code, parameters, inputs and data files."""
    record = run.record.step(step.name)
    env = run.env.step_versions(run.spec, step.name) if run.env is not None else {}
    return KeyParts(run.sources[step.name].code, record.params, inputs, dict(record.data), env)


def _step_thread(run: _Run, step: StepSpec, slots: threading.Semaphore) -> None:
    try:
        _run_step(run, step, slots)
    except BaseException as exc:  # noqa: BLE001 - a step thread must always finish its record
        run.record.change(step.name, "failed", error=StepError.internal(exc))
    finally:
        kernel = run.kernels.get(step.name)
        if kernel is not None:
            kernel.shutdown()
        run.done[step.name].set()


def _run_step(run: _Run, step: StepSpec, slots: threading.Semaphore) -> None:
    """A step's phases: wait for upstream, decide (skip, reuse or run), run, collect."""
    record = run.record
    for dep in step.depends_on:
        run.done[dep].wait()
    if run.interrupted.is_set():
        record.change(step.name, "interrupted")
        return
    bad = [d for d in step.depends_on if record.step(d).state not in REUSABLE]
    if bad:
        record.change(step.name, "skipped", error=StepError.skipped(bad[0]))
        return
    inputs = {
        f"{producer}/{name}": record.step(producer).outputs.get(name, "")
        for name, producer in step.inputs
    }
    parts = _key_parts(run, step, inputs)
    found = _lookup(run, step, parts)
    if isinstance(found, Hit):
        _reuse(run, step, found)
    elif step.name not in run.selected:
        # --no-cache re-runs the chosen steps; steps outside --steps always come from the cache.
        record.change(step.name, "failed", error=StepError.not_cached(step.name, found.reason))
    else:
        duration = _execute_step(run, step, found.reason, slots)
        if duration is not None:
            _collect(run, step, parts, duration)


def _reuse(run: _Run, step: StepSpec, found: Hit) -> None:
    """Link an earlier run's results of this step in, as they were."""
    earlier = found.record
    link_tree(
        step_dir(run_dir(run.home, found.run_id), step.name), step_dir(run.run_dir, step.name)
    )
    run.record.change(
        step.name,
        "cached",
        cached_from=earlier.get("cached_from") or found.run_id,
        duration=0.0,
        notebook=earlier.get("notebook"),
        outputs=earlier.get("outputs", {}),
        metrics=earlier.get("metrics", {}),
        models=earlier.get("models", []),
        model_uris=earlier.get("model_uris", {}),
    )
    if run.reports is not None:
        report = run.reports.reused(step, earlier.get("report"))
        if report is not None:
            run.record.note(step.name, report=report)
    kernel = run.kernels.pop(step.name, None)
    if kernel is not None:
        kernel.shutdown()


def _execute_step(
    run: _Run, step: StepSpec, reason: str, slots: threading.Semaphore
) -> float | None:
    """Run the step's notebook in its kernel: its duration, or None when it did not succeed
    (the record says why)."""
    record = run.record
    kernel = run.kernels[step.name]
    kernel.ready.wait()  # started and warmed ahead of time, usually while upstream steps ran
    with slots:
        if run.interrupted.is_set():
            record.change(step.name, "interrupted")
            return None
        step_dir(run.run_dir, step.name).mkdir(parents=True, exist_ok=True)
        notebook = notebook_path(run.run_dir, step.name)
        nb = run.sources[step.name].notebook()
        env = _mlflow_env(run, step)
        if env:
            nb.cells.insert(0, environment_cell(env))
        record.change(
            step.name,
            "running",
            reason=reason,
            started_at=now(),
            notebook=notebook.relative_to(run.run_dir).as_posix(),
        )
        t0 = time.monotonic()
        parameters = {RUN_DIR_PARAM: str(run.run_dir), **record.step(step.name).params}
        try:
            kernel.execute(nb, notebook, parameters, run.step_timeout)
        except Exception as exc:  # noqa: BLE001 - reported in run.json and by the CLI
            error = StepError.from_execution(exc, notebook)
            interrupted = run.interrupted.is_set()
            make_read_only(notebook)
            record.change(
                step.name,
                "interrupted" if interrupted else "failed",
                duration=round(time.monotonic() - t0, 3),
                error=StepError.interrupted(error.cell) if interrupted else error,
            )
            if not interrupted and run.reports is not None:
                run.reports.render(step)  # where it failed, readable in a browser
            return None
        finally:
            kernel.shutdown()
    return round(time.monotonic() - t0, 3)


def _collect(run: _Run, step: StepSpec, parts: KeyParts, duration: float) -> None:
    """Record what a successful step left in its folder, and remember it for later runs."""
    make_read_only(notebook_path(run.run_dir, step.name))
    run.record.change(
        step.name,
        "succeeded",
        duration=duration,
        outputs=output_hashes(run.run_dir, step.name, step.outputs),
        metrics=read_json_object(metrics_path(run.run_dir, step.name)),
        models=sorted(p.stem for p in models_dir(run.run_dir, step.name).glob(f"*{MODEL_EXT}")),
    )
    if run.reports is not None:
        run.reports.render(step)
    if step.cache:
        try:
            run.cache.store(step.name, parts, run.record.data.id)
        except OSError as exc:  # the result stands; only later runs cannot reuse it
            why = describe_os_error(exc, run.cache.root)
            run.record.warn(f"step {step.name} is not cached for later runs: {why}")


def make_read_only(path: Path) -> None:
    """Executed notebooks are results: read-only, like outputs (cached runs share them)."""
    with contextlib.suppress(OSError):
        os.chmod(path, os.stat(path).st_mode & ~0o222)


def _mlflow_env(run: _Run, step: StepSpec) -> dict[str, str]:
    """Environment that makes the step's own MLflow calls (``mlflow.log_param``, ``autolog``)
    land in the step's nested run, or, for an untracked run, in a throwaway store."""
    if not run.sources[step.name].uses_mlflow:
        return {}
    if run.tracker is not None:
        env = dict(run.tracker.open_step(run.run_dir, step.name))
        if env:
            return env
        # Tracking is failing (the final report says why): keep the step's calls away from
        # whatever store they would find on their own.
    from ..tracking.mlflow_log import scratch_env

    with run.record.lock:
        if run.scratch is None:
            run.scratch = tempfile.mkdtemp(prefix="nb2prod-mlflow-")
    return dict(scratch_env(Path(run.scratch)))


def environment_cell(env: dict[str, str]) -> Any:
    """A first cell, visible in the executed notebook, that sets the step's environment."""
    from nbformat.v4 import new_code_cell

    values = json.dumps(dict(sorted(env.items())), indent=1)
    return new_code_cell(
        "# nb2prod: MLflow calls in this step log to the step's run in the pipeline's run\n"
        f'__import__("os").environ.update({values})',
        metadata={"tags": ["nb2prod-environment"]},
    )


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
