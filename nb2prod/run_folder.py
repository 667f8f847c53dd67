"""The run folder: where runs keep their results on disk, and the one writer for its files.

Every path of the run folder is made here, so its layout is written down once::

    <home>/                                 $NB2PROD_HOME, else .nb2prod, relative to where
                                            the run started (see :func:`runs_home`)
        runs/<run-id>/
            run.json                        the run's record, rewritten at every change
            config.yaml                     the effective parameters
            .reserve                        room given back for the last write on a full disk
            steps/<step>/
                notebook.ipynb              the executed notebook
                report.html                 it rendered as a web page (unless turned off)
                outputs/<name>.<ext>        one file per value the step saved
                digests/<name>.<ext>.sha256 an output's SHA-256, computed while writing it
                metrics.json                the metrics the step logged
                models/<name>.pkl           fitted models, for tracking
                step.json                   the step's record, when `nb2prod step` ran it
                                            (engines: `nb2prod track` builds run.json from them)
        cache/<pipeline>/<step>/<key>.json  the cache index: which run computed a step's key
        jobs/<run-id>.json, .log, .error    runs the Jupyter server was asked for

Files are written through :func:`write_atomic` (a temporary file in the same folder, fsync,
``os.replace``), so a reader never sees half a file and a crash never leaves one behind.

Exported steps import :mod:`nb2prod.runtime`, which imports this module, inside their kernels:
only the standard library may be imported here. Reading runs back (their believed status, the
listing of ``nb2prod runs`` and the REST API) is :mod:`nb2prod.run_index`, built on these paths.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

# --- names ----------------------------------------------------------------------------------
HOME_ENV = "NB2PROD_HOME"
DEFAULT_HOME = ".nb2prod"
RUNS = "runs"
JOBS = "jobs"
CACHE = "cache"
FINGERPRINTS = "fingerprints.json"  # data files' SHA-256, by path, size, mtime and inode
RECORD = "run.json"
CONFIG = "config.yaml"
RESERVE = ".reserve"
STEPS = "steps"
OUTPUTS = "outputs"
METRICS = "metrics.json"
MODELS = "models"
DIGESTS = "digests"
NOTEBOOK = "notebook.ipynb"
REPORT = "report.html"
STEP_RECORD = "step.json"
SERVING = "serving"  # a step's recorded call of the serving function; the run's serving model
MODEL_EXT = ".pkl"

#: How messages name a run folder when they tell a user which folder to pass.
RUN_DIR_HINT = f"{DEFAULT_HOME}/{RUNS}/<run-id>/"
#: The papermill parameter that tells an exported step where its run folder is.
RUN_DIR_PARAM = "nb2prod_run_dir"
#: What :func:`nb2prod.run.runner.new_run_id` makes; ids from requests must match before use.
RUN_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]{3}[0-9a-f]{4}")

PathLike = str | os.PathLike[str]


# --- errors ---------------------------------------------------------------------------------
class RuntimeStepError(Exception):
    """Base class of the errors a pipeline step raises about its run folder.

    The messages are written for the person running the pipeline: one paragraph
    saying what is wrong, where, and how to fix it, so the papermill error cell
    is enough to act on without reading a traceback.
    """


class NoSpaceError(RuntimeStepError, OSError):
    """The disk filled up while the step wrote to its run folder (an OSError, ENOSPC)."""

    def __init__(self, target: Path) -> None:
        super().__init__(
            errno.ENOSPC,
            f"No space left on device while writing {target}. Fix: free space on that disk (or "
            "set NB2PROD_HOME to a folder on a larger one) and run again.",
        )

    def __str__(self) -> str:
        return str(self.strerror)


# --- the home and its runs ------------------------------------------------------------------
def runs_home(base: Path | None = None) -> Path:
    """The folder holding ``runs/``, ``cache/`` and the server's ``jobs/`` for runs started in
    ``base`` (the current folder for the CLI, the server's root folder for the REST API)."""
    home = Path(os.environ.get(HOME_ENV, DEFAULT_HOME))
    return home if base is None else base / home


def runs_dir(home: Path) -> Path:
    """``<home>/runs``: one folder per run."""
    return home / RUNS


def run_dir(home: Path, run_id: str) -> Path:
    """``<home>/runs/<run-id>``."""
    return runs_dir(home) / run_id


def record_path(run: Path) -> Path:
    """``run.json`` of the run folder ``run``."""
    return run / RECORD


def config_path(run: PathLike) -> Path:
    """``config.yaml`` of the run folder ``run``: the effective parameters."""
    return Path(os.fspath(run)) / CONFIG


def reserve_path(run: Path) -> Path:
    """The reserve file of the run folder ``run``."""
    return run / RESERVE


# --- a step's folder ------------------------------------------------------------------------
def check_name(kind: str, name: object) -> None:
    """Reject names that would escape their folder or cannot be file names.

    Output and step names become path components, so a stray separator would
    silently write somewhere else.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
    bad_chars = {"/", "\\", "\0", os.sep}
    if os.altsep:
        bad_chars.add(os.altsep)
    if name in ("", ".", "..") or any(c in name for c in bad_chars):
        raise ValueError(
            f"{kind} name {name!r} cannot be used as a file name: it must be non-empty, "
            "not '.' or '..', and contain no path separators."
        )


def step_dir(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>``, the folder that belongs to one step."""
    check_name("step", step)
    return Path(os.fspath(run)) / STEPS / step


def outputs_dir(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/outputs``, where a step's saved values live."""
    return step_dir(run, step) / OUTPUTS


def metrics_path(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/metrics.json``."""
    return step_dir(run, step) / METRICS


def models_dir(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/models``, where a step keeps its fitted models."""
    return step_dir(run, step) / MODELS


def notebook_path(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/notebook.ipynb``, the step's executed notebook."""
    return step_dir(run, step) / NOTEBOOK


def report_path(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/report.html``, the executed notebook as HTML."""
    return step_dir(run, step) / REPORT


def serving_example_dir(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/serving``: the step's first call of the serving function
    (``input.pkl``: ``{"args": [...], "kwargs": {...}}``; ``output.pkl``: what it returned)."""
    return step_dir(run, step) / SERVING


def serving_model_dir(run: PathLike) -> Path:
    """Return ``<run_dir>/serving/model``, the run's MLflow serving model."""
    return Path(os.fspath(run)) / SERVING / "model"


def step_record_path(run: PathLike, step: str) -> Path:
    """Return ``<run_dir>/steps/<step>/step.json``, the record ``nb2prod step`` leaves."""
    return step_dir(run, step) / STEP_RECORD


# --- an output's digest, computed while it was written ----------------------------------------
def digest_path(output: Path) -> Path:
    """``steps/<step>/digests/<name>.<ext>.sha256`` for ``steps/<step>/outputs/<name>.<ext>``:
    the SHA-256 the runtime computed while writing that output. Kept out of ``outputs/``, which
    holds exactly one file per saved value."""
    return output.parent.parent / DIGESTS / f"{output.name}.sha256"


def _identity(output: Path) -> list[int]:
    stat = os.stat(output)
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def write_digest(output: Path, sha256: str) -> None:
    """Record ``sha256`` as the digest of ``output`` as it is now (size, mtime, inode).

    Best effort: without the record, :func:`read_digest` finds nothing and the runner hashes
    the file itself, so a failure here costs time, never correctness.
    """
    target = digest_path(output)
    try:
        target.parent.mkdir(exist_ok=True)
        data = json.dumps({"sha256": sha256, "file": _identity(output)})
        write_bytes_atomic(target, data.encode("ascii"), durable=False)
    except OSError:
        try:
            target.unlink(missing_ok=True)
        except OSError:
            pass


def read_digest(output: Path) -> str | None:
    """The SHA-256 recorded for ``output`` by :func:`write_digest`, if the file is still the
    very one it was computed for (same size, modification time and inode); else None."""
    try:
        data = json.loads(digest_path(output).read_bytes())
        sha = data["sha256"]
        if data["file"] != _identity(output):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(sha, str) or len(sha) != 64:
        return None
    return sha


# --- the cache index ------------------------------------------------------------------------
def cache_dir(home: Path, pipeline: str) -> Path:
    """``<home>/cache/<pipeline>``: the cache index of one pipeline."""
    return home / CACHE / pipeline


def cache_step_dir(cache: Path, step: str) -> Path:
    """The index entries of one step in the pipeline's cache folder ``cache``."""
    return cache / step


def cache_entry(cache: Path, step: str, key: str) -> Path:
    """The index entry of ``step``'s cache ``key`` in the pipeline's cache folder ``cache``."""
    return cache_step_dir(cache, step) / f"{key}.json"


def cache_entries(cache: Path) -> list[Path]:
    """Every index entry in the pipeline's cache folder ``cache``, sorted (none if it is gone)."""
    return sorted(cache.glob("*/*.json"))


# --- the server's jobs ----------------------------------------------------------------------
def fingerprints_path(home: Path) -> Path:
    """Remembered SHA-256 of the data files steps read, so unchanged files are not re-read."""
    return home / CACHE / FINGERPRINTS


def jobs_dir(home: Path) -> Path:
    """``<home>/jobs``: runs the server was asked for, before their process writes run.json."""
    return home / JOBS


def job_path(home: Path, run_id: str, suffix: str = ".json") -> Path:
    """``<home>/jobs/<run-id>.json`` (the request), ``.log`` (its output), ``.error``."""
    return jobs_dir(home) / f"{run_id}{suffix}"


JOB_SUFFIXES = (".json", ".log", ".error")


def job_files(home: Path, run_id: str) -> list[Path]:
    """Every file the server may keep about run ``run_id`` in ``<home>/jobs``."""
    return [job_path(home, run_id, suffix) for suffix in JOB_SUFFIXES]


# --- the one writer -------------------------------------------------------------------------
def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename; best effort because not every platform can open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_temp_path(target: Path) -> Path:
    """Create an empty, hidden temporary file next to ``target`` and return its path.

    ``os.open`` with mode 0o666 (unlike ``tempfile.mkstemp``'s 0o600) lets the
    final file get the permissions the umask gives any ordinary file. The
    ``.tmp`` suffix is never an output's extension, so an abandoned temporary
    file can never be loaded as an output. The random name keeps threads and
    processes writing the same file apart.
    """
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file next to {target}")


def write_atomic(
    target: Path,
    write: Callable[[Path], None],
    *,
    read_only: bool = True,
    durable: bool = True,
) -> None:
    """Let ``write`` fill a temporary file, then move it over ``target`` in one step.

    Readers see either the old file or the complete new one. If ``write`` raises,
    the temporary file is removed and ``target`` is untouched; a full disk is
    raised as :class:`NoSpaceError`, whose message says what to do.

    ``read_only``: results (outputs, metrics, models) are read-only once written, because
    cached runs hard-link them into later run folders and an edit in place would change every
    run that shares them; records that are rewritten (run.json, the cache index, jobs) pass
    False. ``durable``: fsync the file and its folder; records rewritten at every change skip
    it, as the next write replaces them anyway and a run writes its record dozens of times.
    """
    tmp = _new_temp_path(target)
    try:
        write(tmp)
        if durable:
            _fsync_path(tmp)
        if read_only:
            os.chmod(tmp, os.stat(tmp).st_mode & ~0o222)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        if full and not isinstance(exc, NoSpaceError):
            raise NoSpaceError(target) from exc
        raise
    if durable:
        _fsync_dir(target.parent)


def write_bytes_atomic(
    target: Path, data: bytes, *, read_only: bool = True, durable: bool = True
) -> None:
    """:func:`write_atomic` of ``data``."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(target, write, read_only=read_only, durable=durable)


def write_record(target: Path, text: str) -> None:
    """Replace a record that is rewritten as things change (run.json, a cache entry, a job):
    atomic, but writable and without fsync (see :func:`write_atomic`)."""
    write_bytes_atomic(target, text.encode("utf-8"), read_only=False, durable=False)


def link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) every file of ``source`` into ``target``."""
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
