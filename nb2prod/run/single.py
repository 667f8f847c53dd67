"""``nb2prod step``: one step of a version, run in a fresh kernel against a run folder.

It is the one command every engine task runs (Kubeflow Pipelines components, Airflow tasks):
the engine schedules, retries and moves step folders between machines; this module runs the
step exactly as ``nb2prod run`` would (same kernel, same parameters cell, same working folder,
same outputs), reading upstream results from ``RUN_DIR/steps/<upstream>/`` and writing
``RUN_DIR/steps/<step>/`` with the step's record, ``step.json``. ``nb2prod track`` later builds
the run's ``run.json`` from those records (:mod:`nb2prod.run.assemble`).

Each step writes only its own folder, so tasks of one run may run side by side on a shared
folder. Nothing is cached: engines have their own caching (``cache:disabled`` maps to it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._version import __version__
from ..errors import Nb2prodError
from ..pipeline import PipelineSpec, StepSpec
from ..run_folder import (
    MODEL_EXT,
    RUN_DIR_PARAM,
    config_path,
    metrics_path,
    models_dir,
    notebook_path,
    report_path,
    runs_home,
    step_dir,
    step_record_path,
    write_record,
)
from .cache import output_hashes, output_path
from .environment import check_environment
from .fingerprints import data_inputs
from .overrides import effective_params
from .record import REUSABLE, StepError, StepRecord, describe_os_error, now, write_json
from .runner import (
    StepSource,
    environment_cell,
    git_commit,
    make_read_only,
    project_folder,
    read_json_object,
    working_folder,
)

#: step.json's format; readers refuse a newer one.
STEP_SCHEMA = 1


@dataclass
class SingleStepResult:
    """What ``nb2prod step`` did: the step's record and where it lives."""

    spec: PipelineSpec
    step: str
    run_dir: Path
    record: StepRecord
    warning: str | None = None  # the step's report could not be rendered

    @property
    def exit_code(self) -> int:
        return 0 if self.record.state in REUSABLE else (130 if self._interrupted else 1)

    @property
    def _interrupted(self) -> bool:
        return self.record.state == "interrupted"

    def text(self) -> str:
        r = self.record
        head = f"{self.spec.name} v{self.spec.version} step {self.step}: {r.state}"
        if r.duration is not None:
            head += f" in {r.duration:.1f}s"
        lines = [head]
        if r.error is not None:
            where = f" in notebook {r.error.cell}" if r.error.cell else ""
            lines.append(f"  failed{where}: {r.error.message}")
            source = (r.error.source or "").strip().splitlines()
            if source:
                lines.append("  cell source:")
                lines += [f"    {line}" for line in source[:8]]
        lines += [
            f"  {k} = {v:.6g}" if isinstance(v, float) else f"  {k} = {v}"
            for k, v in r.metrics.items()
        ]
        if self.warning:
            lines.append(f"  warning: {self.warning}")
        lines.append(f"  step folder: {step_dir(self.run_dir, self.step)}")
        return "\n".join(lines)


def run_single_step(
    spec: PipelineSpec,
    name: str,
    run_dir: Path,
    *,
    files: Iterable[Path] = (),
    assignments: Iterable[str] = (),
    params: dict[str, Any] | None = None,
    step_timeout: float | None = None,
) -> SingleStepResult:
    """Run step ``name`` of ``spec`` in ``run_dir``. Bad input (an unknown step, a parameter,
    an upstream step that has not run there, a missing data file) raises Nb2prodError before
    anything is written; a failing step is a result (exit code 1), recorded in step.json."""
    step = _the_step(spec, name)
    effective, overrides = effective_params(spec.defaults, files, assignments, params)
    env = check_environment(spec, strict=False)
    cwd = working_folder(spec)
    _check_upstream(spec, step, run_dir)
    reads = data_inputs(spec, effective, [name], cwd, runs_home()).get(name, [])
    _prepare(run_dir, step, effective)
    record = StepRecord(
        role=step.role,
        state="running",
        depends_on=list(step.depends_on),
        params={p: effective[p] for p in step.parameters if p in effective},
        started_at=now(),
        notebook=notebook_path(run_dir, name).relative_to(run_dir).as_posix(),
        reason="nb2prod step",
        data={d.shown: d.sha256 for d in reads},
    )
    header = {
        "schema_version": STEP_SCHEMA,
        "step": name,
        "run": {  # what the run that this step belongs to is; `nb2prod track` checks they agree
            "pipeline": spec.name,
            "version": spec.version,
            "version_dir": _shown_path(spec.path),
            "notebook": spec.notebook,
            "notebook_sha256": spec.notebook_sha256,
            "nb2prod_version": __version__,
            "git_commit": git_commit(project_folder(spec)),
            "params": effective,
            "overrides": overrides,
            "environment": env.to_json() if env is not None else None,
        },
    }
    _save(run_dir, name, header, record)
    record = _execute(spec, step, run_dir, cwd, record, step_timeout)
    record, warning = _report(step, run_dir, record)
    _save(run_dir, name, header, record)
    return SingleStepResult(spec, name, run_dir, record, warning)


def _the_step(spec: PipelineSpec, name: str) -> StepSpec:
    names = [s.name for s in spec.steps]
    if name not in names:
        raise Nb2prodError(
            f"{spec.name} v{spec.version} has no step `{name}`. Fix: pass one of "
            f"{', '.join(names)}."
        )
    return spec.step(name)


def _check_upstream(spec: PipelineSpec, step: StepSpec, run_dir: Path) -> None:
    """Every step this one reads from must have succeeded in ``run_dir``, with the outputs
    this step reads there."""
    for dep in step.depends_on:
        how = (
            f"Fix: run `nb2prod step {_shown_path(spec.path)} {dep} --run-dir {run_dir}` first "
            "(an engine runs the steps in the order of their dependencies)."
        )
        try:
            data = json.loads(step_record_path(run_dir, dep).read_text("utf-8"))
        except FileNotFoundError:
            raise Nb2prodError(
                f"step {step.name} needs the results of step {dep}, which has not run in "
                f"{run_dir} (no {step_record_path(run_dir, dep)}). {how}"
            ) from None
        except (OSError, ValueError) as exc:
            raise Nb2prodError(
                f"step {step.name} needs the results of step {dep}, but "
                f"{step_record_path(run_dir, dep)} cannot be read ({exc}). {how}"
            ) from None
        state = data.get("state") if isinstance(data, dict) else None
        if state not in REUSABLE:
            what = {
                "failed": "failed",
                "interrupted": "was interrupted",
                "running": "is still running (or was killed)",
            }.get(str(state), f"is {state}")
            raise Nb2prodError(
                f"step {step.name} needs the results of step {dep}, which {what} in {run_dir}. "
                f"{how}"
            )
    for value, producer in step.inputs:
        if output_path(run_dir, producer, value) is None:
            raise Nb2prodError(
                f"step {step.name} reads `{value}` from step {producer}, but "
                f"{step_dir(run_dir, producer)} holds no such output. Fix: run step {producer} "
                "of this same version into this run folder again."
            )


def _prepare(run_dir: Path, step: StepSpec, params: dict[str, Any]) -> None:
    """The run folder with the effective parameters, and an empty folder for the step (an
    engine's retry starts over)."""
    folder = step_dir(run_dir, step.name)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            _make_writable(folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_record(
            config_path(run_dir), yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
        )
    except OSError as exc:
        raise Nb2prodError(
            f"{describe_os_error(exc, folder)} Fix: pass a --run-dir you can write to, with room."
        ) from None


def _make_writable(folder: Path) -> None:
    """Outputs and executed notebooks are made read-only once written."""
    for path in [folder, *folder.rglob("*")]:
        with contextlib.suppress(OSError):
            os.chmod(path, os.stat(path).st_mode | 0o200)


def _save(run_dir: Path, name: str, header: dict[str, Any], record: StepRecord) -> None:
    try:
        write_json(step_record_path(run_dir, name), {**header, **record.to_json()})
    except OSError as exc:
        raise Nb2prodError(
            f"{describe_os_error(exc, step_record_path(run_dir, name))} Fix: free space or "
            "permissions there and run the step again."
        ) from None


def _execute(
    spec: PipelineSpec,
    step: StepSpec,
    run_dir: Path,
    cwd: Path,
    record: StepRecord,
    timeout: float | None,
) -> StepRecord:
    from dataclasses import replace

    from .kernels import StepKernel, new_socket_dir

    source = StepSource(step.module)
    nb = source.notebook()
    scratch = tempfile.mkdtemp(prefix="nb2prod-mlflow-") if source.uses_mlflow else None
    if scratch is not None:
        from ..tracking.mlflow_log import scratch_env

        nb.cells.insert(0, environment_cell(dict(scratch_env(Path(scratch)))))
    socket_dir = new_socket_dir() if os.name == "posix" else None
    kernel = StepKernel("python3", cwd, None, socket_dir)
    notebook = notebook_path(run_dir, step.name)
    stopped = threading.Event()
    t0 = time.monotonic()
    try:
        with _stop_on_signals(kernel, stopped):
            kernel.start_and_warm(source.warm_code)
            parameters = {RUN_DIR_PARAM: str(run_dir.resolve()), **record.params}
            kernel.execute(nb, notebook, parameters, timeout)
    except Exception as exc:  # noqa: BLE001 - recorded in step.json and printed
        error = StepError.from_execution(exc, notebook)
        make_read_only(notebook)
        return replace(
            record,
            state="interrupted" if stopped.is_set() else "failed",
            duration=round(time.monotonic() - t0, 3),
            error=StepError.interrupted(error.cell) if stopped.is_set() else error,
        )
    finally:
        kernel.shutdown()
        for folder in (socket_dir, scratch):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    make_read_only(notebook)
    return replace(
        record,
        state="succeeded",
        duration=round(time.monotonic() - t0, 3),
        outputs=output_hashes(run_dir, step.name, step.outputs),
        metrics=read_json_object(metrics_path(run_dir, step.name)),
        models=sorted(p.stem for p in models_dir(run_dir, step.name).glob(f"*{MODEL_EXT}")),
    )


def _report(step: StepSpec, run_dir: Path, record: StepRecord) -> tuple[StepRecord, str | None]:
    """Render the step's report, here at the end: an engine task runs one step, with nothing
    beside it to overlap. A failure is a warning; the step's outcome stands."""
    from dataclasses import replace

    from .reports import describe_failure, render_report, reports_enabled

    notebook = notebook_path(run_dir, step.name)
    if record.state == "interrupted" or not (reports_enabled() and step.report):
        return record, None
    if not notebook.is_file():
        return record, None
    target = report_path(run_dir, step.name)
    try:
        render_report(notebook, target)
    except Exception as exc:  # noqa: BLE001 - a report never fails the step
        return record, describe_failure(step.name, f"{type(exc).__name__}: {exc}")
    return replace(record, report=target.relative_to(run_dir).as_posix()), None


@contextlib.contextmanager
def _stop_on_signals(kernel: Any, stopped: threading.Event) -> Iterator[None]:
    """An engine stops a task with SIGTERM: stop the kernel, so the step ends "interrupted"
    and its record says so, rather than the process dying with the kernel orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        stopped.set()
        kernel.shutdown()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _shown_path(path: Path) -> str:
    """A path as messages show it: relative to the working folder when it is below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
