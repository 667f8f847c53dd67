"""Log a finished run folder to MLflow: one parent run per pipeline run, one nested run per step.

The input is a run folder as the runner leaves it (see :mod:`nb2prod.run_folder`): ``run.json``,
``config.yaml`` and, per step, ``steps/<step>/notebook.ipynb`` and ``steps/<step>/models/*.pkl``.

Steps whose own code calls MLflow get their runs earlier: :meth:`Tracker.open_step` creates the
parent run and the step's nested run just before the step runs, and returns the environment that
makes MLflow's fluent API in the step's kernel resume that nested run. :meth:`Tracker.log_run`
then reuses those runs, keeps what the step's code logged, and ends every run left RUNNING. For
untracked runs, :func:`scratch_env` points such code at a throwaway store instead.

Creating a SQLite store is serialized across processes (:func:`_store_lock`): MLflow's table
creation is not safe against a second process doing the same at the same time.

MLflow takes about 1.2 s to import, so it is never imported at module level.
:meth:`Tracker.warm_store` and :meth:`Tracker.warm_models` import it ahead of time (the tracking
worker calls them while the pipeline's steps run; see :mod:`nb2prod.tracking.worker`), and
:meth:`Tracker.log_run` never raises: every failure, from an unreachable server to a locked
SQLite file, comes back as ``TrackingResult(ok=False, error=...)`` with a one-paragraph message
naming the tracking URI, the cause and the fix. The run's local results are never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import posixpath
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..run_folder import (
    MODEL_EXT,
    RUN_DIR_HINT,
    config_path,
    models_dir,
    notebook_path,
    record_path,
)
from ..run_index import promotion_due

__all__ = [
    "DEFAULT_TRACKING_URI",
    "OpenedRuns",
    "Tracker",
    "TrackingResult",
    "absolute_tracking_uri",
    "scratch_env",
    "tracking_uri",
]

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
#: What MLflow 3 uses when nothing is configured (relative to the current directory).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

HEALTH_TIMEOUT = 3.0  # seconds for the reachability check of an http(s) tracking server
#: Applied while logging unless the user set them: no retry storms, no two-minute hangs, and
#: no "View run" links printed for each of the runs (the run's report names the parent run).
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

# MLflow's limits (mlflow.utils.validation).
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
TRUNCATED = "...[truncated]"

RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
STEP_STATUS = {
    "succeeded": "FINISHED",
    "cached": "FINISHED",
    "failed": "FAILED",
    "skipped": "KILLED",
    "interrupted": "KILLED",
}
#: How long a process waits for another one creating the same SQLite store before going ahead.
STORE_LOCK_TIMEOUT = 300.0

_LOG_LOCK = threading.Lock()
_NAME_OK = re.compile(r"[^\w\-. /:]")
_SQL_NOISE = re.compile(r"\s*(\[SQL:|\[parameters:|\(Background on this error).*", re.S)


def tracking_uri() -> str:
    """The tracking URI a run will use, for messages; never imports MLflow.

    ``MLFLOW_TRACKING_URI`` when set, else MLflow's own default, ``sqlite:///mlflow.db`` in the
    current directory (artifacts under ``./mlruns``).
    """
    return os.environ.get(ENV_TRACKING_URI, "").strip() or DEFAULT_TRACKING_URI


def absolute_tracking_uri() -> str:
    """:func:`tracking_uri` with a local store's path made absolute, for processes that start
    in other folders (a sweep's runs on Dask workers); never imports MLflow."""
    return _absolute_uri(tracking_uri())


@dataclass(frozen=True)
class TrackingResult:
    ok: bool
    uri: str
    experiment: str
    experiment_id: str | None
    run_id: str | None
    error: str | None
    models: dict[str, dict[str, str]] | None = None  # step -> model name -> MLflow model URI
    promoted: dict[str, str] | None = None  # registered model -> version, when promoted
    serving_model: str | None = None  # the serving model (models:/<id>), on the parent run

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``run.json`` keeps under ``tracking``); ``serving_model``
        only for a run that logged one."""
        data = asdict(self)
        if data["serving_model"] is None:
            del data["serving_model"]
        return data


class TrackingError(Exception):
    """A tracking failure already explained in one paragraph."""


@dataclass
class OpenedRuns:
    """The MLflow runs :meth:`Tracker.open_step` created for one pipeline run before it ended.

    ``uri`` is absolute (step kernels run in the notebook's folder); ``steps`` maps a step's
    name to its nested run. :meth:`Tracker.log_run` reuses these runs instead of creating them.
    """

    uri: str
    experiment: str
    experiment_id: str
    run_id: str  # nb2prod's run id, which tags every run of it
    parent_run_id: str
    steps: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenedRuns:
        return cls(
            uri=str(data["uri"]),
            experiment=str(data["experiment"]),
            experiment_id=str(data["experiment_id"]),
            run_id=str(data["run_id"]),
            parent_run_id=str(data["parent_run_id"]),
            steps={str(k): str(v) for k, v in (data.get("steps") or {}).items()},
        )


@dataclass
class _Progress:
    """What has been created so far, so a failure can report it and close open runs."""

    experiment: str = ""
    experiment_id: str | None = None
    parent_run_id: str | None = None
    open_runs: list[str] = field(default_factory=list)
    client: Any = None
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    promoted: dict[str, str] | None = None
    serving_model: str | None = None


class Tracker:
    """Logs run folders to one MLflow tracking URI.

    ``tracking_uri``: explicit URI; else ``MLFLOW_TRACKING_URI``; else MLflow's default.
    ``models``: whether a model may be logged (if not, MLflow's model flavours stay unimported).
    """

    def __init__(self, tracking_uri: str | None = None, models: bool = True) -> None:
        self.tracking_uri = tracking_uri or None
        self.models = models
        # Per run folder: the runs open_step created, or that opening them failed (log_run
        # then tries again and reports why).
        self.opened: dict[str, OpenedRuns] = {}
        self._open_failed: set[str] = set()

    def warm_store(self) -> None:
        """Import MLflow and open a local store (MLflow caches it, so log_run finds it open).

        Opening a SQLite store costs ~0.5 s of SQLAlchemy/alembic imports, plus ~1.5 s of table
        creation the first time.
        """
        try:
            # Outside _quiet_mlflow_logs: MLflow sets its loggers' levels when first imported.
            mlflow = _import_mlflow(models=False)
        except Exception:  # noqa: BLE001 - log_run reports it
            return
        with contextlib.suppress(Exception), _quiet_mlflow_logs():
            uri = self.tracking_uri or mlflow.get_tracking_uri()
            if not _is_http(uri):  # a server is checked for reachability first, in log_run
                _client(mlflow, uri)

    def warm_models(self) -> None:
        """Import what logging a scikit-learn model needs."""
        with contextlib.suppress(Exception):
            _import_mlflow(models=True)
        with contextlib.suppress(Exception):
            import sklearn.base  # noqa: F401 - unpickling the models needs it
        with contextlib.suppress(Exception):
            # log_model checks the pinned requirements against a map of every installed
            # distribution that MLflow builds once per process (~0.8 s); build it now.
            from mlflow.utils import requirements_utils

            requirements_utils._init_modules_to_packages_map()

    @property
    def uri(self) -> str:
        """The configured URI, as far as it is known without importing MLflow."""
        return self.tracking_uri or tracking_uri()

    def open_step(self, run_dir: Path, step: str) -> dict[str, str]:
        """Create the MLflow runs of ``step`` before it runs; return its kernel's environment.

        The first call for a run folder creates the experiment and the parent run (from
        ``run.json``), every call the step's nested run. The environment makes MLflow's fluent
        API in the step's kernel resume that nested run (``MLFLOW_RUN_ID``), start any further
        run nested under it (``MLFLOW_RUN_CONTEXT``), in the pipeline's experiment, at an
        absolute tracking URI, and print no "View run" links. ``{}`` when tracking is not
        possible: :meth:`log_run` tries again and reports why. Never raises.
        """
        key = _run_key(run_dir)
        if key in self._open_failed:
            return {}
        try:
            record = _read_record(Path(run_dir))
            mlflow = _import_mlflow(models=False)
            if _is_http(self.uri) and key not in self.opened:
                _check_reachable(self.uri, Path(run_dir))
            with _LOG_LOCK, _http_limits(), _quiet_mlflow_logs(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _use_uri(mlflow, self.tracking_uri):
                    uri = mlflow.get_tracking_uri()
                    progress = _Progress(client=_client(mlflow, uri))
                    logger = _RunLogger(mlflow, progress, Path(run_dir), record)
                    opened = self.opened.get(key)
                    if opened is None:
                        opened = self.opened[key] = logger.open_parent(_absolute_uri(uri))
                    if step not in opened.steps:
                        opened.steps[step] = logger.open_step(opened, step)
            return _step_env(opened, step, record)
        except Exception:  # noqa: BLE001 - log_run reports the failure
            self._open_failed.add(key)
            return {}

    def find_baseline(self, kind: str, value: str, pipeline: str) -> dict[str, Any]:
        """The champion (``kind`` "champion") or an MLflow run (``kind`` "run", ``value`` its
        id) of ``pipeline`` as a baseline: ``{"baseline": {...} | None, "error": str | None}``.
        Never raises."""
        from .registry import find_champion, find_run

        local = _sqlite_path(self.uri)
        if local is not None and not local.exists():
            return {"baseline": None, "error": None}  # no store yet: nothing to ask, nothing made
        try:
            mlflow = _import_mlflow(models=False)
            if _is_http(self.uri):
                _check_reachable(self.uri, None)  # asked before a run has results
            with _LOG_LOCK, _http_limits(), _quiet_mlflow_logs(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _use_uri(mlflow, self.tracking_uri):
                    client = _client(mlflow, mlflow.get_tracking_uri())
                    found = (
                        find_champion(client, pipeline)
                        if kind == "champion"
                        else find_run(client, value, pipeline)
                    )
            return {"baseline": found, "error": None}
        except Exception as exc:  # noqa: BLE001 - the caller decides what a failure means
            return {"baseline": None, "error": _one_line(exc)}

    def abandon(self) -> None:
        """End every run :meth:`open_step` created as KILLED: the run ended without log_run."""
        if not self.opened:
            return
        with contextlib.suppress(Exception):
            mlflow = _import_mlflow(models=False)
            with _LOG_LOCK, _http_limits(), _quiet_mlflow_logs(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for opened in self.opened.values():
                    with contextlib.suppress(Exception):
                        client = _client(mlflow, opened.uri)
                        _end_code_runs(client, opened, {}, "KILLED")
                        for run_id in [*opened.steps.values(), opened.parent_run_id]:
                            client.set_terminated(run_id, "KILLED")
        self.opened.clear()

    def log_run(self, run_dir: Path, opened: OpenedRuns | None = None) -> TrackingResult:
        """Log ``run_dir`` to MLflow. Never raises; failures come back with ``ok=False``.

        Runs created by :meth:`open_step` (in this tracker, or ``opened`` from another process)
        are reused, not created again.
        """
        run_dir = Path(run_dir)
        uri = self.uri
        progress = _Progress()
        opened = self.opened.pop(_run_key(run_dir), None) or opened
        try:
            record = _read_record(run_dir)
            progress.experiment = str(record.get("pipeline") or "")
            if _is_http(uri):
                _check_reachable(uri, run_dir)
            mlflow = _import_mlflow(self.models)
            # One run at a time per process: the settings below are process-wide.
            with _LOG_LOCK, _http_limits(), _quiet_mlflow_logs(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _use_uri(mlflow, self.tracking_uri):
                    uri = mlflow.get_tracking_uri()
                    try:
                        progress.client = _client(mlflow, uri)
                        _RunLogger(mlflow, progress, run_dir, record, opened).log()
                        if promotion_due(record):
                            from .registry import promote

                            progress.promoted = promote(
                                mlflow,
                                progress.client,
                                str(record["pipeline"]),
                                progress.models,
                                str(record["id"]),
                                serving=progress.serving_model,
                            )
                    except BaseException as exc:
                        # Still under the short HTTP limits: mark what was created as failed.
                        _close_open_runs(progress, isinstance(exc, KeyboardInterrupt))
                        raise
            return TrackingResult(
                ok=True,
                uri=uri,
                experiment=progress.experiment,
                experiment_id=progress.experiment_id,
                run_id=progress.parent_run_id,
                error=None,
                models=progress.models,
                promoted=progress.promoted,
                serving_model=progress.serving_model,
            )
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - reported, never raised
            return TrackingResult(
                ok=False,
                uri=uri,
                experiment=progress.experiment,
                experiment_id=progress.experiment_id,
                run_id=None,
                error=_explain(exc, uri, run_dir, progress),
            )


# --- importing MLflow --------------------------------------------------------------------------


def _import_mlflow(models: bool = True) -> Any:
    import mlflow

    if models:
        import mlflow.pyfunc  # noqa: F401 - mlflow.sklearn.log_model uses it
        import mlflow.sklearn  # noqa: F401 - the flavour used for scikit-learn models
    return mlflow


@contextlib.contextmanager
def _use_uri(mlflow: Any, uri: str | None) -> Iterator[None]:
    """Use ``uri`` for MLflow's fluent functions (``log_model``) for the duration.

    MLflow's ``set_tracking_uri`` also sets (or unsets) ``MLFLOW_TRACKING_URI``; the previous
    value of both is put back afterwards.
    """
    if not uri:
        yield
        return
    utils = mlflow.tracking._tracking_service.utils
    previous_env = os.environ.get(ENV_TRACKING_URI)
    previous = getattr(utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            mlflow.set_tracking_uri(previous)
        if previous_env is None:
            os.environ.pop(ENV_TRACKING_URI, None)
        else:
            os.environ[ENV_TRACKING_URI] = previous_env


@contextlib.contextmanager
def _http_limits() -> Iterator[None]:
    """No retries and a short request timeout while logging, unless the user chose otherwise."""
    added = [k for k in HTTP_ENV_DEFAULTS if k not in os.environ]
    for key in added:
        os.environ[key] = HTTP_ENV_DEFAULTS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def _quiet_mlflow_logs() -> Iterator[None]:
    """Silence MLflow's and alembic's own logging while logging a run.

    Failures come back in the TrackingResult; MLflow's notes (table creation, its advice about
    cloudpickle, tracebacks of database errors) would only clutter the run's output.
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --- stores and step environments ------------------------------------------------------------


def _run_key(run_dir: Path) -> str:
    return str(Path(run_dir).resolve())


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the current directory or absolute)."""
    if not uri.lower().startswith("sqlite:///"):
        return None
    raw = unquote(uri[len("sqlite:///") :].partition("?")[0])
    return None if raw in ("", ":memory:") else Path(raw)


def _absolute_uri(uri: str) -> str:
    """``uri`` with a local store's path made absolute: step kernels run in another folder."""
    path = _sqlite_path(uri)
    if path is not None:
        query = uri.partition("?")[2]
        return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")
    if not urlparse(uri).scheme:  # a plain folder (MLflow's file store)
        return Path(uri).resolve().as_uri()
    return uri


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold ``<database>.lock`` (beside a local SQLite store) while the block opens the store.

    MLflow creates a new database's tables with alembic migrations, which break when two
    processes run them at once (``table _alembic_tmp_experiments already exists``), leaving the
    store unusable. The lock file is removed again by whoever holds it, so no file is left
    behind; a process that locked a file removed meanwhile notices and tries again. When the
    lock cannot be taken (a read-only folder), the block runs anyway and MLflow reports the
    problem.
    """
    path = _sqlite_path(uri)
    fd = _acquire(path.with_name(path.name + ".lock")) if path is not None else None
    try:
        yield
    finally:
        if fd is not None and path is not None:
            # Unlink before unlocking: a waiter then finds its file gone and starts over.
            with contextlib.suppress(OSError):
                os.unlink(path.with_name(path.name + ".lock"))
            os.close(fd)


def _acquire(lock: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    deadline = time.monotonic() + STORE_LOCK_TIMEOUT
    while time.monotonic() < deadline:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError from None
                    time.sleep(0.02)
            mine, there = os.fstat(fd), os.stat(lock)
            if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                return fd
        except (OSError, TimeoutError):
            pass  # removed by its holder meanwhile (FileNotFoundError), or waited too long
        os.close(fd)
    return None


def _client(mlflow: Any, uri: str) -> Any:
    """An MlflowClient for ``uri``; a local SQLite store is opened (created) under the lock.

    MLflow keeps one store per URI in the process, so only the first client pays for this.
    """
    with _store_lock(uri):
        return mlflow.MlflowClient(tracking_uri=uri)


def _step_env(opened: OpenedRuns, step: str, record: Mapping[str, Any]) -> dict[str, str]:
    run_id = opened.steps[step]
    # MLflow consumes MLFLOW_RUN_ID once: a run the step's code starts after the first one
    # ended (a second `with mlflow.start_run()`, a log call after autolog ended its run) is
    # created anew, and these tags make it a run nested under the step's run, findable when the
    # run ends. Tags the user set for every run (MLFLOW_RUN_CONTEXT) are kept.
    context: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        inherited = json.loads(os.environ.get("MLFLOW_RUN_CONTEXT") or "{}")
        context = inherited if isinstance(inherited, dict) else {}
    context.update(
        {
            "mlflow.parentRunId": run_id,
            "nb2prod.pipeline": str(record.get("pipeline")),
            "nb2prod.run_id": str(record.get("id")),
            "nb2prod.step": step,
        }
    )
    return {
        "MLFLOW_TRACKING_URI": opened.uri,
        "MLFLOW_EXPERIMENT_NAME": opened.experiment,
        "MLFLOW_EXPERIMENT_ID": opened.experiment_id,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_RUN_CONTEXT": json.dumps(context, sort_keys=True),
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }


def scratch_env(folder: Path) -> dict[str, str]:
    """The environment of a step kernel in an untracked run: MLflow calls go to a throwaway store.

    The store is a fresh folder inside ``folder`` (which the caller deletes after the run), in
    MLflow's file format: creating it costs a few folders, not a SQLite schema, and parallel
    steps each get their own. Never imports MLflow.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # A folder MLflow creates itself: only then does it add the "Default" experiment (id 0).
    uri = (Path(tempfile.mkdtemp(prefix="mlflow-", dir=folder)) / "mlruns").as_uri()
    return {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,  # registering a model must not reach a real registry either
        "MLFLOW_ALLOW_FILE_STORE": "true",
        # The store's own "Default" experiment, whatever the user's shell selects.
        "MLFLOW_EXPERIMENT_NAME": "Default",
        "MLFLOW_EXPERIMENT_ID": "0",
        "MLFLOW_RUN_ID": "",  # MLflow treats an empty value as unset
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }


# --- reading the run folder --------------------------------------------------------------------


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = record_path(run_dir)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise TrackingError(
            f"nothing to track: {path} does not exist. Fix: pass the folder of a finished run "
            f"({RUN_DIR_HINT})."
        ) from None
    except (OSError, ValueError) as exc:
        raise TrackingError(
            f"nothing to track: {path} cannot be read ({_one_line(exc)}). Fix: pass the folder "
            "of a finished run whose run.json is intact."
        ) from None
    if not isinstance(data, dict) or not data.get("pipeline") or not data.get("id"):
        raise TrackingError(
            f"nothing to track: {path} is not an nb2prod run record (no `pipeline` or `id`). "
            f"Fix: pass the folder of a finished run ({RUN_DIR_HINT})."
        )
    return data


def _step_file(where: Callable[[Path, str], Path], run_dir: Path, step: str) -> Path | None:
    """A step's file or folder, or None for a name no step could have (``a/b``, ``..``): the
    runtime refuses such names, so nothing was written under them."""
    try:
        return where(run_dir, step)
    except (TypeError, ValueError):
        return None


def _ms(stamp: Any) -> int | None:
    """An ISO timestamp from run.json as MLflow's milliseconds since the epoch."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


# --- MLflow names and values -------------------------------------------------------------------


def _key(name: Any) -> str:
    """A valid MLflow param/metric/tag key: allowed characters only, not path-like, ≤ 250."""
    key = _NAME_OK.sub("_", str(name))[:MAX_KEY]
    if posixpath.normpath(key) != key or key in ("", ".") or key.startswith(("/", "..")):
        key = key.replace("/", "_")
        if key in ("", ".") or key.startswith(".."):
            key = ("_" + key)[:MAX_KEY]
    return key


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(TRUNCATED)] + TRUNCATED


def _param_value(value: Any) -> str:
    # The way mlflow.log_param stringifies values, cut to MLflow's 6000-character limit
    # (the full configuration is in the config.yaml artifact).
    return _clip(str(value), MAX_PARAM_VALUE)


def _tag_value(value: Any) -> str:
    return _clip("" if value is None else str(value), MAX_TAG_VALUE)


def _params(values: Any) -> list[Any]:
    from mlflow.entities import Param

    out: dict[str, Any] = {}
    if isinstance(values, Mapping):
        for name, value in values.items():
            out.setdefault(_key(name), Param(_key(name), _param_value(value)))
    return list(out.values())


def _metrics(values: Any, timestamp: int) -> list[Any]:
    from mlflow.entities import Metric

    out: dict[str, Any] = {}
    if isinstance(values, Mapping):
        for name, value in values.items():
            number = _number(value)
            if number is not None:
                out.setdefault(_key(name), Metric(_key(name), number, timestamp, 0))
    return list(out.values())


def _tags(values: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(_key(k), _tag_value(v)) for k, v in values.items()]


def _error_text(error: Any) -> str:
    if not isinstance(error, Mapping):
        return _one_line(error)
    text = str(error.get("message") or f"{error.get('ename')}: {error.get('evalue')}")
    if error.get("cell"):
        text += f" (in {error['cell']})"
    return _one_line(text, limit=MAX_TAG_VALUE)


# --- logging -----------------------------------------------------------------------------------


class _RunLogger:
    def __init__(
        self,
        mlflow: Any,
        progress: _Progress,
        run_dir: Path,
        record: dict[str, Any],
        opened: OpenedRuns | None = None,
    ) -> None:
        self.mlflow = mlflow
        self.progress = progress
        self.client = progress.client
        self.run_dir = run_dir
        self.record = record
        self.opened = opened
        self.steps: dict[str, dict[str, Any]] = {
            str(k): v for k, v in (record.get("steps") or {}).items() if isinstance(v, dict)
        }
        pipeline, version, run_id = record["pipeline"], record.get("version"), record["id"]
        self.common = {
            "nb2prod.pipeline": pipeline,
            "nb2prod.version": version,
            "nb2prod.run_id": run_id,
        }
        self.run_name = f"{pipeline} v{version} {run_id}"

    def _requirements(self) -> list[str]:
        """The version's pinned requirements.txt, for the models it logs; MLflow's guess for a
        version exported before nb2prod recorded them."""
        environment = self.record.get("environment")
        pins = environment.get("requirements") if isinstance(environment, dict) else None
        if isinstance(pins, list) and pins:
            return [str(p) for p in pins if not str(p).startswith("nb2prod==")]
        return _sklearn_requirements()

    def _parent_tags(self) -> dict[str, Any]:
        record = self.record
        cached = [n for n, s in self.steps.items() if s.get("state") == "cached"]
        tags = {
            **self.common,
            "nb2prod.notebook": record.get("notebook"),
            "nb2prod.notebook_sha256": record.get("notebook_sha256"),
            "nb2prod.cached_steps": ",".join(cached),
            "nb2prod.nb2prod_version": record.get("nb2prod_version"),
            "nb2prod.status": record.get("status"),
            "mlflow.source.name": record.get("notebook"),
            "mlflow.source.type": "NOTEBOOK",
        }
        environment = record.get("environment")
        if isinstance(environment, dict):
            tags["nb2prod.python"] = environment.get("python")
            differences = environment.get("differences") or []
            tags["nb2prod.environment"] = (
                "; ".join(map(str, differences)) if differences else "as exported"
            )
        if record.get("git_commit"):
            tags["nb2prod.git_commit"] = record["git_commit"]
            tags["mlflow.source.git.commit"] = record["git_commit"]
        with contextlib.suppress(Exception):
            import getpass

            tags["mlflow.user"] = getpass.getuser()
        gates = record.get("gates")
        if isinstance(gates, dict) and gates.get("status"):
            tags["nb2prod.gates"] = gates["status"]
        baseline = record.get("baseline")
        if isinstance(baseline, dict):
            tags["nb2prod.baseline_run_id"] = baseline.get("mlflow_run_id") or ""
            tags["nb2prod.baseline"] = baseline.get("run_id") or baseline.get("source") or ""
        extra = record.get("tags")  # the caller's own (a sweep's id), never nb2prod's
        if isinstance(extra, dict):
            tags.update({str(k): v for k, v in extra.items() if str(k) not in tags})
        return tags

    def _step_tags(self, parent_id: str, name: str, step: Mapping[str, Any]) -> dict[str, Any]:
        state = str(step.get("state") or "")
        tags: dict[str, Any] = {
            "mlflow.parentRunId": parent_id,
            **self.common,
            "nb2prod.step": name,
            "nb2prod.role": step.get("role"),
            "nb2prod.cached": "true" if state == "cached" else "false",
            "nb2prod.cached_from": step.get("cached_from") or "",
            "nb2prod.state": state,
        }
        if step.get("error"):
            tags["nb2prod.error"] = _error_text(step["error"])
        return tags

    def _create_run(
        self, experiment_id: str, start: int, tags: Mapping[str, Any], name: str
    ) -> str:
        run = self.client.create_run(
            experiment_id,
            start_time=start,
            tags={_key(k): _tag_value(v) for k, v in tags.items()},
            run_name=name,
        )
        return str(run.info.run_id)

    # Before the run ends (Tracker.open_step) -----------------------------------------------------

    def open_parent(self, uri: str) -> OpenedRuns:
        """Create the experiment and the parent run, which stays RUNNING until log_run."""
        experiment = self.progress.experiment = str(self.record["pipeline"])
        experiment_id = self._experiment(experiment)
        start = _ms(self.record.get("started_at")) or int(time.time() * 1000)
        tags = {**self._parent_tags(), "nb2prod.status": "running"}
        parent_id = self._create_run(experiment_id, start, tags, self.run_name)
        return OpenedRuns(uri, experiment, experiment_id, str(self.record["id"]), parent_id)

    def open_step(self, opened: OpenedRuns, name: str) -> str:
        """Create the nested run of step ``name``, RUNNING until log_run ends it."""
        step = {**self.steps.get(name, {}), "state": "running", "error": None}
        tags = self._step_tags(opened.parent_run_id, name, step)
        return self._create_run(opened.experiment_id, int(time.time() * 1000), tags, name)

    # When the run has ended (Tracker.log_run) ----------------------------------------------------

    def log(self) -> None:
        record, client, opened = self.record, self.client, self.opened
        now = int(time.time() * 1000)
        start = _ms(record.get("started_at")) or now
        end = max(_ms(record.get("finished_at")) or now, start)
        tags = self._parent_tags()
        if opened is not None:
            experiment_id = self.progress.experiment_id = opened.experiment_id
            parent_id = opened.parent_run_id
            self.progress.open_runs.extend([parent_id, *opened.steps.values()])
            client.log_batch(parent_id, tags=_tags(tags))
            self._end_code_runs(opened)
        else:
            experiment_id = self._experiment(self.progress.experiment)
            parent_id = self._create_run(experiment_id, start, tags, self.run_name)
            self.progress.open_runs.append(parent_id)
        self.progress.parent_run_id = parent_id
        client.log_batch(
            parent_id,
            metrics=_metrics(record.get("metrics"), end),
            params=_params(record.get("params")),
        )
        with tempfile.TemporaryDirectory(prefix="nb2prod-mlflow-") as tmp:
            staged = Path(tmp)
            notebooks = self._stage_notebooks(staged / "notebooks")
            for name, step in self.steps.items():
                self._log_step(experiment_id, parent_id, name, step, notebooks, start)
            for path in (record_path(self.run_dir), config_path(self.run_dir)):
                if path.is_file():
                    client.log_artifact(parent_id, str(path))
            if notebooks:
                client.log_artifacts(parent_id, str(staged / "notebooks"), "notebooks")
        self._log_serving(experiment_id, parent_id)
        for name, child_id in (opened.steps if opened is not None else {}).items():
            if name not in self.steps:  # opened, yet not in run.json: it never really ran
                client.set_terminated(child_id, "KILLED", end_time=end)
                self.progress.open_runs.remove(child_id)
        client.set_terminated(
            parent_id, RUN_STATUS.get(str(record.get("status")), "FAILED"), end_time=end
        )
        self.progress.open_runs.remove(parent_id)

    def _log_serving(self, experiment_id: str, parent_id: str) -> None:
        """The run's serving model (saved and checked in the run folder) as the parent run's
        logged model ``serving``: ``runs:/<parent>/serving`` and ``models:/<id>`` load it."""
        from ..serving.outcome import MODEL_NAME

        serving = self.record.get("serving")
        if not isinstance(serving, dict) or serving.get("status") != "ok":
            return
        folder = self.run_dir / str(serving.get("model") or "")
        if not (folder / "MLmodel").is_file():
            return
        client = self.client
        model = client.create_logged_model(
            experiment_id=experiment_id,
            name=MODEL_NAME,
            source_run_id=parent_id,
            tags={_key(k): _tag_value(v) for k, v in self.common.items()},
            model_type="nb2prod-serving",
        )
        try:
            client.log_model_artifacts(model.model_id, str(folder))
        except BaseException:
            with contextlib.suppress(Exception):
                client.finalize_logged_model(model.model_id, "FAILED")
            raise
        client.finalize_logged_model(model.model_id, "READY")
        uri = f"models:/{model.model_id}"
        client.set_tag(parent_id, "nb2prod.serving_model", uri)
        self.progress.serving_model = uri

    def _end_code_runs(self, opened: OpenedRuns) -> None:
        """End the runs the steps' own code started and left RUNNING, as their step ended."""
        statuses = {
            name: STEP_STATUS.get(str(step.get("state") or ""), "KILLED")
            for name, step in self.steps.items()
        }
        _end_code_runs(self.client, opened, statuses, "KILLED")

    def _experiment(self, name: str) -> str:
        client = self.client
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = str(client.create_experiment(name))
            except Exception:  # noqa: BLE001 - another process may have created it just now
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = str(experiment.experiment_id)
        else:
            experiment_id = str(experiment.experiment_id)
            if experiment.lifecycle_stage == "deleted":
                # Runs cannot go into a deleted experiment, and its name stays taken.
                client.restore_experiment(experiment_id)
        self.progress.experiment_id = experiment_id
        return experiment_id

    def _stage_notebooks(self, folder: Path) -> dict[str, Path]:
        """Executed notebooks as ``<step>.ipynb`` in one folder (hard links where possible)."""
        staged: dict[str, Path] = {}
        for name, step in self.steps.items():
            notebook = step.get("notebook")
            source = (
                self.run_dir / notebook
                if notebook
                else _step_file(notebook_path, self.run_dir, name)
            )
            if source is None or not source.is_file():
                continue
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{_key(name).replace('/', '_')}.ipynb"
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            staged[name] = target
        return staged

    def _log_step(
        self,
        experiment_id: str,
        parent_id: str,
        name: str,
        step: Mapping[str, Any],
        notebooks: Mapping[str, Path],
        run_start: int,
    ) -> None:
        client = self.client
        state = str(step.get("state") or "")
        start = _ms(step.get("started_at")) or run_start
        duration = _number(step.get("duration")) or 0.0
        end = start + int(max(duration, 0.0) * 1000)
        tags = self._step_tags(parent_id, name, step)
        params = _params(step.get("params"))
        metrics = _metrics(step.get("metrics"), end)
        child_id = self.opened.steps.get(name) if self.opened is not None else None
        if child_id is None:
            child_id = self._create_run(experiment_id, start, tags, name)
            self.progress.open_runs.append(child_id)
            client.log_batch(child_id, metrics=metrics, params=params)
        else:
            # The step's own code logged to this run. What it logged stays as it is: MLflow
            # refuses to change a param's value, and a metric's history is the user's. nb2prod
            # adds only the keys the code did not log.
            logged = client.get_run(child_id)
            params = [p for p in params if p.key not in logged.data.params]
            metrics = [m for m in metrics if m.key not in logged.data.metrics]
            client.log_batch(child_id, metrics=metrics, params=params, tags=_tags(tags))
            if logged.info.run_name != name:  # `start_run(run_name=...)` renamed it
                client.update_run(child_id, name=name)
        if name in notebooks:
            client.log_artifact(child_id, str(notebooks[name]))
        report = self.run_dir / str(step["report"]) if step.get("report") else None
        if report is not None and report.is_file():
            client.log_artifact(child_id, str(report))  # MLflow's UI shows .html inline
        datasets = _datasets(step)
        if datasets:
            client.log_inputs(child_id, datasets=datasets)
        model_tags: dict[str, str] = {}
        earlier = step.get("model_uris") or {}
        models = _step_file(models_dir, self.run_dir, name)
        if state == "cached" and earlier:
            # Reused results: point at the models the run that computed them logged.
            model_tags = {f"nb2prod.model.{k}": str(v) for k, v in earlier.items()}
        else:
            for path in sorted(models.glob(f"*{MODEL_EXT}")) if models and models.is_dir() else []:
                model_tags[f"nb2prod.model.{path.stem}"] = self._log_model(
                    experiment_id, child_id, path, step
                )
        if model_tags:
            self.progress.models[name] = {
                k.removeprefix("nb2prod.model."): v for k, v in model_tags.items()
            }
        if model_tags:
            client.log_batch(child_id, tags=_tags(model_tags))
        client.set_terminated(child_id, STEP_STATUS.get(state, "KILLED"), end_time=end)
        self.progress.open_runs.remove(child_id)

    def _log_model(
        self, experiment_id: str, run_id: str, path: Path, step: Mapping[str, Any]
    ) -> str:
        """Log one pickled model; returns its URI (``models:/…`` or ``runs:/…/models/x.pkl``).

        A scikit-learn estimator becomes an MLflow model (sklearn flavour, cloudpickle, with
        pinned requirements so MLflow need not infer them). Anything else, or an estimator
        MLflow cannot log, is kept as the pickle file itself under ``models/``.
        """
        name = path.stem
        model = _unpickle(path)
        if model is not None and _is_sklearn(model):
            logged = None
            try:
                logged = self.client.create_logged_model(
                    experiment_id=experiment_id,
                    name=name,
                    source_run_id=run_id,
                    params={p.key: p.value for p in _params(step.get("params"))} or None,
                )
                info = self.mlflow.sklearn.log_model(
                    model,
                    name=name,
                    model_id=logged.model_id,
                    run_id=run_id,
                    pip_requirements=self._requirements(),
                    serialization_format="cloudpickle",
                )
                return str(info.model_uri)
            except Exception as exc:  # noqa: BLE001 - fall back to the pickle file itself
                print(
                    f"nb2prod: MLflow could not log model {name!r} with the scikit-learn flavour "
                    f"({_one_line(exc)}); keeping the pickle file instead.",
                    file=sys.stderr,
                )
        self.client.log_artifact(run_id, str(path), "models")
        return f"runs:/{run_id}/models/{path.name}"


def _datasets(step: Mapping[str, Any]) -> list[Any]:
    """The data files the step read, as MLflow dataset inputs ("Datasets used" in the UI): the
    path as the notebook names it, and a digest of the SHA-256 nb2prod keyed the cache on."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    found = []
    for shown, sha in sorted((step.get("data") or {}).items()):
        remote = sha == "remote"
        source = json.dumps({"uri": str(shown)} if not remote else {"url": str(shown)})
        dataset = Dataset(
            name=_clip(str(shown), 500),
            digest="remote" if remote else str(sha)[:32],  # MLflow's column holds 36 characters
            source_type="http" if remote else "local",
            source=source,
        )
        context = InputTag("mlflow.data.context", str(step.get("role") or "step"))
        found.append(DatasetInput(dataset=dataset, tags=[context]))
    return found


def _unpickle(path: Path) -> Any:
    """The model object, or None when this process cannot load it (it is logged as a file)."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - written by this run's own steps
    except Exception:  # noqa: BLE001 - e.g. a class defined in the notebook itself
        return None


def _is_sklearn(value: Any) -> bool:
    if "sklearn" not in sys.modules:
        return False  # unpickling a scikit-learn object would have imported it
    try:
        from sklearn.base import BaseEstimator
    except Exception:  # noqa: BLE001
        return False
    return isinstance(value, BaseEstimator)


def _sklearn_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in ("scikit-learn", "cloudpickle", "numpy", "scipy"):
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return pins


def _end_code_runs(
    client: Any, opened: OpenedRuns, statuses: Mapping[str, str], default: str
) -> None:
    """End the RUNNING runs that the steps' code started (they carry ``nb2prod.run_id``).

    Step kernels are stopped without running MLflow's exit hook, which would end them. Each
    gets its step's final status (``statuses``, by ``nb2prod.step``), else ``default``.
    """
    ours = {opened.parent_run_id, *opened.steps.values()}
    query = f"tags.`nb2prod.run_id` = '{opened.run_id}' and attributes.status = 'RUNNING'"
    token = None
    while True:
        page = client.search_runs([opened.experiment_id], query, page_token=token)
        for run in page:
            if run.info.run_id not in ours:
                status = statuses.get(run.data.tags.get("nb2prod.step", ""), default)
                client.set_terminated(run.info.run_id, status)
        token = page.token
        if not token:
            return


def _close_open_runs(progress: _Progress, interrupted: bool) -> None:
    """Best effort: do not leave runs RUNNING forever after a failure half-way."""
    if progress.client is None:
        return
    status = "KILLED" if interrupted else "FAILED"
    for run_id in reversed(progress.open_runs):
        try:
            progress.client.set_terminated(run_id, status)
        except BaseException:  # noqa: BLE001 - the store is likely the problem; stop trying
            return


# --- reachability and errors -------------------------------------------------------------------


def _is_http(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def _check_reachable(uri: str, run_dir: Path | None) -> None:
    """Fail in seconds when an http(s) tracking server does not answer at all.

    Any HTTP answer (even 401 or 404) counts as reachable, and so does a TLS problem (MLflow may
    be configured with its own certificates); MLflow itself then reports what is wrong.
    """
    import ssl
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT):  # noqa: S310 - http(s) only
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return
        reason: object = exc.reason
    except (ssl.SSLError, ValueError) as exc:
        if isinstance(exc, ssl.SSLError):
            return
        reason = exc
    except OSError as exc:  # timeouts, resets
        reason = exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        what = f"did not answer {url} within {HEALTH_TIMEOUT:g} s"
    else:
        what = f"cannot be reached ({_one_line(reason)})"
    origin = " (MLFLOW_TRACKING_URI)" if uri == tracking_uri() else ""
    safe = "" if run_dir is None else f" The run's results are safe in {run_dir}."
    raise TrackingError(
        f"MLflow tracking failed: the tracking server {uri}{origin} {what}.{safe} Fix: start "
        "the server (for example `mlflow server --host "
        "127.0.0.1 --port 5000`) or correct MLFLOW_TRACKING_URI, or unset MLFLOW_TRACKING_URI "
        f"to track to the local SQLite store {DEFAULT_TRACKING_URI}; or pass --no-track."
    )


def _one_line(value: Any, limit: int = 400) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _explain(exc: BaseException, uri: str, run_dir: Path, progress: _Progress) -> str:
    if isinstance(exc, TrackingError):
        return str(exc)
    safe = f"The run's results are safe in {run_dir}."
    if isinstance(exc, KeyboardInterrupt):
        return (
            f"MLflow tracking to {uri} was interrupted before it finished. {safe} Fix: run again "
            "and let tracking finish, or pass --no-track."
        )
    if isinstance(exc, ImportError) and "mlflow" in str(exc).lower():
        return (
            f"MLflow tracking failed: MLflow cannot be imported in this Python environment "
            f"({_one_line(exc)}). {safe} Fix: `pip install 'mlflow>=3.17,<4'`, or pass --no-track."
        )
    cause = f"{type(exc).__name__}: {_one_line(_SQL_NOISE.sub('', str(exc)))}"
    where = f" (experiment {progress.experiment!r})" if progress.experiment else ""
    lowered = str(exc).lower()
    if "database is locked" in lowered:
        fix = (
            "wait for the other process writing to that SQLite file (another run, `mlflow ui`) "
            "to finish and run again, or point MLFLOW_TRACKING_URI at a tracking server"
        )
        return (
            f"MLflow tracking failed: the SQLite store {uri} is locked{where} ({cause}). "
            f"{safe} Fix: {fix}."
        )
    if _is_http(uri):
        fix = (
            "check that the server is running and reachable and that you may write to it "
            "(MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN), "
            "start the server, or unset MLFLOW_TRACKING_URI to track to the local SQLite store "
            f"{DEFAULT_TRACKING_URI}"
        )
    elif uri.startswith("sqlite:"):
        fix = (
            "check that the file is an MLflow SQLite database and that it, its folder and "
            "./mlruns (for artifacts) are writable, or set MLFLOW_TRACKING_URI to another store "
            "or to a tracking server"
        )
    else:
        fix = f"check the tracking URI {uri} or unset MLFLOW_TRACKING_URI"
    return (
        f"MLflow tracking to {uri} failed{where}: {cause}. {safe} Fix: {fix}; or pass --no-track."
    )
