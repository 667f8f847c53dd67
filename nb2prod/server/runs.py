"""Starting runs in processes of their own and reading their state back from disk.

A run requested over REST is checked here (pipeline inside the root, known parameters of the
right types, known steps), then handed to a new process, ``python -m nb2prod.server.run_job``,
started in the server's root folder and in a session of its own. The server keeps nothing about
a run in memory that it cannot rebuild: ``<home>/jobs/<id>.json`` records that the run was asked
for (and its process id), ``<home>/runs/<id>/run.json`` is the runner's own record. A restarted
server therefore answers for every run, and one whose process died without finishing its record
is reported as ``interrupted`` instead of ``running`` forever.

``<home>`` is ``<root>/.nb2prod`` (``$NB2PROD_HOME`` if set, relative to the root), the same run
folder ``nb2prod run`` uses when started in the root.

Runs outlive the server: stopping or restarting Jupyter does not stop a run (it finishes and
records its result, which the next server reads). While the server runs, it reaps its finished
run processes, so none is left a zombie.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from .errors import ApiError
from .paths import Root, inside

JOBS = "jobs"
RUNS = "runs"
ACTIVE = ("queued", "running")
STARTUP_GRACE = 60.0  # seconds a job may go without a recorded process id before it is failed


def runs_home(root: Path) -> Path:
    """The folder that holds ``runs/`` and ``jobs/``: as ``nb2prod run`` started in ``root``."""
    return root / os.environ.get("NB2PROD_HOME", ".nb2prod")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    os.replace(tmp, path)  # readers never see half a file


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


def process_alive(pid: object, since: float | None = None) -> bool:
    """Whether process ``pid`` still runs (a zombie does not), and is the one started by then.

    ``since`` (epoch seconds) guards against a reused process id: a process created well after
    the run started is another program.
    """
    import psutil

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or proc.create_time() <= since + 5
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but we may not look at it: assume it is the runner
        return True


# --- starting ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRequest:
    version_dir: str  # API path of the pinned version, e.g. pipelines/churn/v3
    pipeline: str
    version: int
    params: dict[str, Any]
    steps: list[str] | None
    no_cache: bool


def _coerce(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """JSON has one number type: 1 for a float parameter means 1.0 (and the same cache key)."""
    return {
        k: float(v)
        if isinstance(defaults.get(k), float) and type(v) is int and not isinstance(v, bool)
        else v
        for k, v in params.items()
    }


def check_request(root: Root, body: dict[str, Any]) -> RunRequest:
    """Validate a ``POST /nb2prod/runs`` body; raises ApiError with the CLI's messages."""
    from ..overrides import effective_params
    from ..pipeline import load_pipeline, resolve_version

    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(400, '`params` must be an object, e.g. {"C": 0.1}.')
    steps = body.get("steps")
    if steps is not None and (
        not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)
    ):
        raise ApiError(400, '`steps` must be a list of step names, e.g. ["training"].')
    if steps == []:
        raise ApiError(400, "`steps` is empty. Fix: leave it out to run every step.")
    no_cache = body.get("no_cache", False)
    if not isinstance(no_cache, bool):
        raise ApiError(400, "`no_cache` must be true or false.")
    pipeline_dir = root.resolve(body.get("pipeline"), "pipeline", kind="dir")
    try:
        version_dir = resolve_version(pipeline_dir)
        if not inside(version_dir, root.path):
            raise ApiError(403, "`pipeline` links outside the server's root folder.")
        spec = load_pipeline(version_dir)
        params = _coerce(spec.defaults, params)
        effective_params(spec.defaults, params=params)
    except Nb2prodError as exc:
        message = exc.message.replace(str(pipeline_dir), str(body.get("pipeline")))
        raise ApiError(400, message) from None
    names = [s.name for s in spec.steps]
    unknown = [s for s in steps or [] if s not in names]
    if unknown:
        raise ApiError(
            400,
            f"`steps`: no step `{unknown[0]}` in {spec.name} v{spec.version}. "
            f"Fix: choose from {', '.join(names)}.",
        )
    return RunRequest(
        version_dir=root.relative(version_dir) or ".",
        pipeline=spec.name,
        version=spec.version,
        params=params,
        steps=steps,
        no_cache=no_cache,
    )


class Launcher:
    """Starts run processes and reaps them; one per server."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def start(self, root: Root, request: RunRequest) -> str:
        from ..runner import new_run_id

        home = runs_home(root.path).resolve()
        jobs = home / JOBS
        jobs.mkdir(parents=True, exist_ok=True)
        run_id = new_run_id()
        while (jobs / f"{run_id}.json").exists() or (home / RUNS / run_id).exists():
            run_id = new_run_id()
        job_file = jobs / f"{run_id}.json"
        job: dict[str, Any] = {
            "id": run_id,
            "pipeline": request.pipeline,
            "version": request.version,
            "version_dir": request.version_dir,
            "params": request.params,
            "steps": request.steps,
            "no_cache": request.no_cache,
            "requested_at": time.time(),
            "pid": None,
        }
        _write_json(job_file, job)
        env = {**os.environ, "NB2PROD_HOME": str(home)}
        with open(jobs / f"{run_id}.log", "ab") as log:
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
    from ..runner import RUN_ID_RE

    if not RUN_ID_RE.fullmatch(run_id):
        raise ApiError(
            400,
            f"`{run_id[:40]}` is not a run id (like 20261122-074521-604c3f1). Fix: use the "
            '"id" that POST /nb2prod/runs answered.',
        )
    return run_id


def _paths(root: Root, home: Path, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Add paths relative to the root, so a UI can open the run folder's files."""
    run_dir = root.relative(home / RUNS / run_id) if (home / RUNS / run_id).is_dir() else None
    log = home / JOBS / f"{run_id}.log"
    data["dir"] = run_dir
    data["log"] = root.relative(log) if log.is_file() else None
    for step in (data.get("steps") or {}).values():
        if isinstance(step, dict):
            notebook = step.get("notebook")
            step["notebook_path"] = f"{run_dir}/{notebook}" if run_dir and notebook else None
    return data


def _from_record(data: dict[str, Any], path: Path) -> dict[str, Any]:
    alive = process_alive(data.get("pid"), _epoch(data.get("started_at")))
    if data.get("status") in ACTIVE and not alive:
        data = _read_json(path) or data  # it may have finished between the two reads
        if data.get("status") in ACTIVE:
            data["status"] = "interrupted"
            data["note"] = (
                f"the run's process (pid {data.get('pid')}) ended without finishing its "
                "record: it was killed, or the machine restarted. Steps that had not finished "
                "are shown as interrupted. Fix: start the run again; finished steps are reused."
            )
            for step in (data.get("steps") or {}).values():
                if isinstance(step, dict) and step.get("state") in ACTIVE:
                    step["state"] = "interrupted"
    data["active"] = alive  # still working: running steps, or logging to MLflow
    return data


def _from_job(job: dict[str, Any], home: Path, run_id: str) -> dict[str, Any]:
    since = job.get("requested_at")
    since = since if isinstance(since, (int, float)) else None
    pid = job.get("pid")
    alive = process_alive(pid, since)
    error_file = home / JOBS / f"{run_id}.error"
    out: dict[str, Any] = {
        "id": run_id,
        "status": "queued",
        "pipeline": job.get("pipeline"),
        "version": job.get("version"),
        "version_dir": job.get("version_dir"),
        "params": job.get("params"),
        "steps": {},
        "active": alive,
    }
    if error_file.is_file():
        out.update(status="failed", error=error_file.read_text("utf-8", "replace").strip())
    elif not alive and (pid is not None or time.time() - (since or 0) > STARTUP_GRACE):
        out.update(
            status="failed",
            error=f"the run's process (pid {pid}) ended before the run started. Fix: see its "
            "log (the `log` path) and start the run again.",
        )
    return out


def read_run(root: Root, run_id: str) -> dict[str, Any]:
    """``run.json`` of a run, as it stands, with paths relative to the root; see module docs."""
    check_id(run_id)
    home = runs_home(root.path)
    record = home / RUNS / run_id / "run.json"
    data = _read_json(record)
    if data is None:
        job = _read_json(home / JOBS / f"{run_id}.json")
        if job is None:
            raise ApiError(404, f"no run {run_id} in {root.relative(home) or home}.")
        data = _read_json(record)  # the runner may have written it meanwhile
        data = _from_job(job, home, run_id) if data is None else _from_record(data, record)
    else:
        data = _from_record(data, record)
    return _paths(root, home, run_id, data)


def pipeline_name(text: str) -> str:
    """``churn``, ``pipelines/churn`` and ``pipelines/churn/v2`` all name pipeline ``churn``."""
    parts = [p for p in text.replace("\\", "/").split("/") if p]
    if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
        parts.pop()
    return parts[-1] if parts else ""


def list_runs(root: Root, pipeline: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first (queued ones included), optionally of one pipeline."""
    from ..runner import RUN_ID_RE

    home = runs_home(root.path)
    ids = {p.parent.name for p in (home / RUNS).glob("*/run.json")}
    ids |= {p.stem for p in (home / JOBS).glob("*.json")}
    name = pipeline_name(pipeline) if pipeline else None
    out: list[dict[str, Any]] = []
    for run_id in sorted((i for i in ids if RUN_ID_RE.fullmatch(i)), reverse=True):
        with contextlib.suppress(ApiError):
            data = read_run(root, run_id)
            if name is None or data.get("pipeline") == name:
                out.append(data)
        if len(out) >= limit:
            break
    return out


def executed_notebook(root: Root, run_id: str, step: object) -> dict[str, Any]:
    """The executed notebook of one step (run folders are hidden from the contents API)."""
    if not isinstance(step, str) or not step:
        raise ApiError(400, "`step` is missing. Fix: pass ?step=NAME.")
    data = read_run(root, run_id)
    record = (data.get("steps") or {}).get(step)
    if not isinstance(record, dict):
        raise ApiError(404, f"run {run_id} has no step `{step}`.")
    home = runs_home(root.path)
    notebook = record.get("notebook")
    path = home / RUNS / run_id / str(notebook)
    if not notebook or not inside(path, home) or not path.is_file():
        raise ApiError(404, f"step `{step}` of run {run_id} has no executed notebook (yet).")
    nb = _read_json(path)
    if nb is None:
        raise ApiError(409, f"the executed notebook of step `{step}` is being written; retry.")
    return nb
