"""Starting runs in processes of their own and reading their state back from disk.

A run requested over REST is checked here (pipeline inside the root, known parameters of the
right types, known steps), then handed to a new process, ``python -m nb2prod.server.run_job``,
started in the server's root folder and in a session of its own. The server keeps nothing about
a run in memory that it cannot rebuild: ``<home>/jobs/<id>.json`` records that the run was asked
for (and its process id), ``<home>/runs/<id>/run.json`` is the runner's own record. A restarted
server therefore answers for every run, and one whose process died without finishing its record
is reported as ``interrupted`` instead of ``running`` forever. Reading runs back is
:mod:`nb2prod.run_index`, the same reader ``nb2prod runs`` uses.

``<home>`` is ``<root>/.nb2prod`` (``$NB2PROD_HOME`` if set, relative to the root), the same run
folder ``nb2prod run`` uses when started in the root.

Runs outlive the server: stopping or restarting Jupyter does not stop a run (it finishes and
records its result, which the next server reads). While the server runs, it reaps its finished
run processes, so none is left a zombie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import run_index
from ..errors import Nb2prodError
from ..run_folder import job_path, jobs_dir, run_dir, runs_home, write_record
from .errors import ApiError
from .paths import Root, inside


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_record(path, json.dumps(data, indent=2, allow_nan=False) + "\n")  # never half a file


# --- starting ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRequest:
    version_dir: str  # API path of the pinned version, e.g. pipelines/churn/v3
    pipeline: str
    version: int
    params: dict[str, Any]
    steps: list[str] | None
    no_cache: bool
    # Quality gates (issue 13); None/empty leaves run_pipeline's own defaults.
    baseline: str | None = None
    promote: bool = False
    gates: tuple[str, ...] = ()


MAX_GATE_CHARS = 500
MAX_GATES = 100


def _check_gate_fields(body: dict[str, Any]) -> tuple[str | None, bool, tuple[str, ...]]:
    """``baseline``, ``promote`` and ``gates`` of a run request, by shape only: the runner
    parses the gates and finds the baseline, and reports what it cannot (the run's error)."""
    from ..gates.baseline import check_request as check_baseline

    baseline = body.get("baseline")
    if baseline is not None:
        try:
            if not isinstance(baseline, str):
                raise Nb2prodError("not a string")
            baseline = check_baseline(baseline)
        except Nb2prodError:
            raise ApiError(
                400,
                f"`baseline` {json.dumps(baseline)[:60]} is not a baseline. Fix: send "
                '"champion" (the default), "previous", a version like "v3", or a run id like '
                '"20261122-074521-604c3f1" (or an MLflow run id), e.g. {"baseline": "previous"}.',
            ) from None
    promote = body.get("promote", False)
    if not isinstance(promote, bool):
        raise ApiError(400, "`promote` must be true or false.")
    gates = body.get("gates")
    if gates is None:
        gates = []
    if not isinstance(gates, list) or not all(isinstance(g, str) for g in gates):
        raise ApiError(
            400,
            '`gates` must be a list of gate expressions, e.g. {"gates": ["accuracy >= 0.9"]}.',
        )
    if len(gates) > MAX_GATES:
        raise ApiError(400, f"`gates` has {len(gates)} entries. Fix: send at most {MAX_GATES}.")
    for k, gate in enumerate(gates):
        if not gate.strip():
            raise ApiError(400, f"`gates[{k}]` is empty. Fix: leave it out.")
        if len(gate) > MAX_GATE_CHARS or "\n" in gate or "\r" in gate:
            raise ApiError(
                400,
                f"`gates[{k}]` must be one line of at most {MAX_GATE_CHARS} characters, one "
                'comparison, e.g. "accuracy >= 0.9". Fix: send each gate as its own entry.',
            )
    return baseline, promote, tuple(g.strip() for g in gates)


def _coerce(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """JSON has one number type: 1 for a float parameter means 1.0 (and the same cache key)."""
    out = {}
    for key, value in params.items():
        if isinstance(defaults.get(key), float) and type(value) is int:
            try:
                value = float(value)
            except OverflowError:  # a 400-digit integer: no float holds it
                raise ApiError(
                    400,
                    f"`params.{key}` is too large for a number. Fix: send a smaller number, "
                    f"e.g. {json.dumps({'params': {key: defaults[key]}})}",
                ) from None
        out[key] = value
    return out


def version_dir_of(root: Root, api_path: str, pipeline_dir: Path) -> Path:
    """The version a run request names; the checks the CLI makes, worded for a JSON caller."""
    from ..version_folder import MANIFEST, VERSION_DIR, versions

    if VERSION_DIR.match(pipeline_dir.name):
        version_dir = pipeline_dir
        if not (version_dir / MANIFEST).is_file():
            raise ApiError(
                404,
                f"`pipeline` {api_path!r} is not an exported version (it has no pipeline.yaml). "
                "Fix: choose a version that GET /nb2prod/pipelines lists.",
            )
    else:
        found = versions(pipeline_dir)
        if not found:
            raise ApiError(
                400,
                f"`pipeline` {api_path!r}: no exported pipeline here. Fix: pass "
                '"pipelines/<name>" (or "pipelines/<name>/vN") after exporting a notebook '
                "with POST /nb2prod/export.",
            )
        version_dir = pipeline_dir / f"v{found[-1]}"
    if not inside(version_dir, root.path):
        raise ApiError(403, "`pipeline` links outside the server's root folder.")
    return version_dir


def _check_params(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    from ..run.overrides import ParameterError, effective_params

    params = _coerce(defaults, params)
    try:
        effective_params(defaults, params=params)
    except ParameterError as exc:
        raise ApiError(400, exc.for_request("params")) from None
    return params


def check_request(root: Root, body: dict[str, Any]) -> RunRequest:
    """Validate a ``POST /nb2prod/runs`` body, as ``nb2prod run`` would before it starts.

    Raises ApiError: 400 for a bad field, 403/404 for the pipeline's path, 422 for a version
    that cannot run (an incomplete or unsafe pipeline.yaml, files edited since export).
    """
    from ..pipeline import load_pipeline

    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(400, '`params` must be an object, e.g. {"params": {"C": 0.1}}.')
    steps = body.get("steps")
    if steps is not None and (
        not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)
    ):
        raise ApiError(400, '`steps` must be a list of step names, e.g. {"steps": ["training"]}.')
    if steps == []:
        raise ApiError(400, "`steps` is empty. Fix: leave it out to run every step.")
    no_cache = body.get("no_cache", False)
    if not isinstance(no_cache, bool):
        raise ApiError(400, "`no_cache` must be true or false.")
    api_path = body.get("pipeline")
    pipeline_dir = root.resolve(api_path, "pipeline", kind="dir")
    assert isinstance(api_path, str)  # resolve refuses anything else
    version_dir = version_dir_of(root, api_path, pipeline_dir)
    try:
        spec = load_pipeline(version_dir)  # validates the manifest and the version's files
    except Nb2prodError as exc:
        shown = root.relative(version_dir) or api_path
        raise ApiError(422, exc.message.replace(str(version_dir), shown)) from None
    baseline, promote, gates = _check_gate_fields(body)
    params = _check_params(spec.defaults, params)
    names = [s.name for s in spec.steps]
    unknown = [s for s in steps or [] if s not in names]
    if unknown:
        raise ApiError(
            400,
            f"`steps`: no step `{unknown[0][:60]}` in {spec.name} v{spec.version}. "
            f"Fix: choose from {', '.join(names)}.",
        )
    return RunRequest(
        version_dir=root.relative(version_dir) or ".",
        pipeline=spec.name,
        version=spec.version,
        params=params,
        steps=steps,
        no_cache=no_cache,
        baseline=baseline,
        promote=promote,
        gates=gates,
    )


class Launcher:
    """Starts run processes and reaps them; one per server."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def start(self, root: Root, request: RunRequest) -> str:
        from ..run.runner import new_run_id

        home = runs_home(root.path).resolve()
        jobs_dir(home).mkdir(parents=True, exist_ok=True)
        run_id = new_run_id()
        while job_path(home, run_id).exists() or run_dir(home, run_id).exists():
            run_id = new_run_id()
        job_file = job_path(home, run_id)
        job: dict[str, Any] = {
            "id": run_id,
            "pipeline": request.pipeline,
            "version": request.version,
            "version_dir": request.version_dir,
            "params": request.params,
            "steps": request.steps,
            "no_cache": request.no_cache,
            "baseline": request.baseline,
            "promote": request.promote,
            "gates": list(request.gates),
            "requested_at": time.time(),
            "pid": None,
        }
        _write_json(job_file, job)
        env = {**os.environ, "NB2PROD_HOME": str(home)}
        with open(job_path(home, run_id, ".log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nb2prod.server.run_job", str(job_file)],
                cwd=root.path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the server does not stop runs
            )
        job["pid"] = proc.pid
        _write_json(job_file, job)
        with self.lock:
            self.children[run_id] = proc
        threading.Thread(
            target=self._reap, args=(run_id, proc), name=f"nb2prod-run-{run_id}", daemon=True
        ).start()
        return run_id

    def _reap(self, run_id: str, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()  # collects the exit status: no zombie
        with self.lock:
            self.children.pop(run_id, None)


# --- reading -------------------------------------------------------------------------------------
def check_id(run_id: str) -> str:
    if not run_index.RUN_ID_RE.fullmatch(run_id):
        raise ApiError(
            400,
            f"`{run_id[:40]}` is not a run id (like 20261122-074521-604c3f1). Fix: use the "
            '"id" that POST /nb2prod/runs answered.',
        )
    return run_id


def _paths(root: Root, home: Path, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Add paths relative to the root, so a UI can open the run folder's files."""
    folder = run_dir(home, run_id)
    shown = root.relative(folder) if folder.is_dir() else None
    log = job_path(home, run_id, ".log")
    data["dir"] = shown
    data["log"] = root.relative(log) if log.is_file() else None
    for step in (data.get("steps") or {}).values():
        if isinstance(step, dict):
            notebook = step.get("notebook")
            step["notebook_path"] = f"{shown}/{notebook}" if shown and notebook else None
            report = step.get("report")
            step["report_path"] = f"{shown}/{report}" if shown and report else None
    return data


def read_run(root: Root, run_id: str) -> dict[str, Any]:
    """A run's record as a reader should believe it (see run_index), with paths from the root."""
    check_id(run_id)
    home = runs_home(root.path)
    data = run_index.read_run(home, run_id)
    if data is None:
        raise ApiError(404, f"no run {run_id} in {root.relative(home) or home}.")
    return _paths(root, home, run_id, data)


def list_runs(root: Root, pipeline: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first (queued ones included), optionally of one pipeline."""
    home = runs_home(root.path)
    found = run_index.list_runs(home, pipeline, limit)
    return [_paths(root, home, str(data["id"]), data) for data in found]


def _step_file(root: Root, run_id: str, step: object, key: str, what: str) -> Path:
    """A file a step's record names under ``key`` (``notebook``, ``report``), kept inside the
    runs folder; 400/404 answers otherwise."""
    if not isinstance(step, str) or not step:
        raise ApiError(400, "`step` is missing. Fix: pass ?step=NAME.")
    data = read_run(root, run_id)
    record = (data.get("steps") or {}).get(step)
    if not isinstance(record, dict):
        raise ApiError(404, f"run {run_id} has no step `{step[:60]}`.")
    home = runs_home(root.path)
    name = record.get(key)
    path = run_dir(home, run_id) / str(name)
    if not name or not inside(path, home) or not path.is_file():
        raise ApiError(404, f"step `{step}` of run {run_id} has no {what} (yet).")
    return path


def executed_notebook(root: Root, run_id: str, step: object) -> dict[str, Any]:
    """The executed notebook of one step (run folders are hidden from the contents API)."""
    path = _step_file(root, run_id, step, "notebook", "executed notebook")
    nb = run_index.read_json(path)
    if nb is None:
        raise ApiError(409, f"the executed notebook of step `{step}` is being written; retry.")
    return nb


def step_report(root: Root, run_id: str, step: object) -> str:
    """The HTML report of one step (nbconvert's rendering of its executed notebook)."""
    return _step_file(root, run_id, step, "report", "report").read_text("utf-8", errors="replace")
