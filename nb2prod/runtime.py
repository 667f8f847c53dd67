"""Runtime support imported by every exported nb2prod pipeline step.

An exported step is a jupytext module that papermill runs in a fresh kernel. The
kernel shares nothing with the other steps, so everything that crosses a step
boundary goes through the *run folder* on disk. This module is the only code that
reads and writes that folder from inside a step, which keeps the on-disk contract
in one place::

    <run_dir>/
        config.yaml                      optional effective parameters (a YAML
                                         mapping), written by the runner
        steps/<step>/
            outputs/<name>.<ext>         exactly one file per saved value
            metrics.json                 JSON object of the metrics the step logged

A generated step calls :func:`start_step` first, then :func:`param` for each
parameter, :func:`load` for each input, runs the notebook cells, and finally calls
:func:`log_metrics` and :func:`save`.

The format of an output file is chosen from the value's type. Every format
round-trips exactly ("equal or refused"), and the large values pipelines hand on
(DataFrames, arrays) move at close to disk speed:

==================  ===========  ==================================================
extension           reader       used for
==================  ===========  ==================================================
``.npy``            numpy        a ``numpy.ndarray`` whose dtype holds no objects;
                                 files of 1 MiB or more load memory-mapped,
                                 copy-on-write, as a plain ndarray
``.json``           json         "pure JSON" values: exactly str, int, float, bool,
                                 None, and lists / str-keyed dicts of those
``.pkl``            pickle       everything else (pickle protocol 5), DataFrames
                                 and Series included
``.cpkl``           pickle       values plain pickle rejects (lambdas, local
                                 functions, ...), written with cloudpickle
``.parquet``        pandas       never written any more; read, because earlier
                                 releases wrote DataFrames this way and old run
                                 folders and caches still hold such files
==================  ===========  ==================================================

Each output is hashed (SHA-256) while it is written, and the digest is left
beside it (``digests/<name>.<ext>.sha256``, see ``run_folder.write_digest``), so
the runner records it without reading the file again.

Every write is atomic (temporary file in the same folder, fsync, ``os.replace``),
so a crashed step never leaves a half-written output that a later step could load.

Importing this module must stay cheap because it is the first line of every step
and of many notebooks: only the standard library is imported at import time;
numpy, pandas, hashlib, PyYAML and cloudpickle are imported inside the functions
that need them, and only when the value at hand can involve them.
"""

from __future__ import annotations

import copy
import json
import numbers
import os
import pickle
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# The run folder's layout, its errors and its one atomic writer (standard library only).
from .run_folder import (
    CONFIG,
    METRICS,
    MODELS,
    OUTPUTS,
    STEPS,
    NoSpaceError,
    RuntimeStepError,
    digest_path,
    metrics_path,
    models_dir,
    outputs_dir,
    step_dir,
    write_atomic,
    write_bytes_atomic,
    write_digest,
)
from .run_folder import check_name as _check_name

__all__ = [
    "CONFIG_FILENAME",
    "METRICS_FILENAME",
    "OUTPUT_EXTENSIONS",
    "ConfigFileError",
    "InputMissingError",
    "InputNotLoadableError",
    "NoSpaceError",
    "OutputNotSaveableError",
    "ParameterMissingError",
    "RuntimeContextError",
    "RuntimeStepError",
    "current_step",
    "end_step",
    "load",
    "log_cell_metrics",
    "log_metric",
    "log_metrics",
    "metrics_path",
    "output_path",
    "outputs_dir",
    "param",
    "read_metrics",
    "save",
    "save_models",
    "save_outputs",
    "start_step",
    "step_dir",
]

CONFIG_FILENAME = CONFIG
STEPS_DIRNAME = STEPS
OUTPUTS_DIRNAME = OUTPUTS
METRICS_FILENAME = METRICS

PARQUET_EXT = ".parquet"
NPY_EXT = ".npy"
JSON_EXT = ".json"
PICKLE_EXT = ".pkl"
CLOUDPICKLE_EXT = ".cpkl"

#: Every extension :func:`save` can write, which is also every extension :func:`load`
#: looks for. Files with other extensions in an outputs folder are ignored.
OUTPUT_EXTENSIONS: tuple[str, ...] = (
    PARQUET_EXT,
    NPY_EXT,
    JSON_EXT,
    PICKLE_EXT,
    CLOUDPICKLE_EXT,
)

PICKLE_PROTOCOL = 5

#: ``.npy`` files at least this large are loaded memory-mapped (copy-on-write); smaller ones
#: are read into memory, where a mapping would save nothing.
MMAP_MIN_BYTES = 1 << 20


# --------------------------------------------------------------------------- errors
# RuntimeStepError (the base) and NoSpaceError come from nb2prod.run_folder, whose writer
# raises the latter; both stay importable from here.


class RuntimeContextError(RuntimeStepError):
    """A function that needs the current step was called before :func:`start_step`."""


class ParameterMissingError(RuntimeStepError):
    """A parameter was neither injected by papermill nor found in ``config.yaml``."""


class ConfigFileError(RuntimeStepError):
    """The run folder's ``config.yaml`` exists but cannot be read as a YAML mapping."""


class InputMissingError(RuntimeStepError):
    """The output a step wants to load was never saved by the producing step."""


class InputNotLoadableError(RuntimeStepError):
    """A saved output exists but cannot be read back in this kernel."""


class OutputNotSaveableError(RuntimeStepError):
    """A value cannot be written in any supported format."""


# -------------------------------------------------------------------------- context


class _StepContext:
    """The step this kernel is running, plus the lazily parsed ``config.yaml``."""

    __slots__ = ("run_dir", "step", "_config", "_config_loaded")

    def __init__(self, run_dir: Path, step: str) -> None:
        self.run_dir = run_dir
        self.step = step
        self._config: dict[str, Any] | None = None
        self._config_loaded = False

    def config(self) -> dict[str, Any] | None:
        """Return ``config.yaml`` as a dict, or None if the run folder has none.

        The file is parsed at most once per context: a step reads every parameter
        from the same snapshot, even if the runner rewrites the file meanwhile.
        """
        if not self._config_loaded:
            self._config = _read_config(self.run_dir / CONFIG_FILENAME, self.step)
            self._config_loaded = True
        return self._config


_context: _StepContext | None = None
_warned_no_context = False


def start_step(run_dir: str | os.PathLike[str], step: str) -> None:
    """Make ``step`` in ``run_dir`` the current step of this kernel.

    Every other function works relative to this context, so a generated step calls
    it before anything else. The run folder is made absolute now so that notebook
    code that changes the working directory cannot redirect outputs. Calling it
    again replaces the context (a kernel runs one step, but tests and interactive
    sessions may switch).
    """
    global _context
    _check_name("step", step)
    run_path = Path(os.fspath(run_dir)).absolute()
    outputs_dir(run_path, step).mkdir(parents=True, exist_ok=True)
    _context = _StepContext(run_path, step)


def end_step() -> None:
    """Forget the current step, as if :func:`start_step` had never been called.

    Useful in tests and interactive sessions; generated steps never need it
    because their kernel ends with the step.
    """
    global _context
    _context = None


def current_step() -> tuple[Path, str] | None:
    """Return ``(run_dir, step)`` of the current context, or None outside a step."""
    if _context is None:
        return None
    return _context.run_dir, _context.step


def _require_context(action: str) -> _StepContext:
    if _context is None:
        raise RuntimeContextError(
            f"nb2prod.runtime.{action} needs to know which pipeline step is running, "
            "but nb2prod.runtime.start_step(run_dir, step) has not been called in this "
            "kernel. Exported step modules call it in their first code cell; if you run "
            "step code by hand, call nb2prod.runtime.start_step first."
        )
    return _context


# ---------------------------------------------------------------------------- paths
# step_dir, outputs_dir and metrics_path are nb2prod.run_folder's, re-exported here.


def output_path(run_dir: str | os.PathLike[str], step: str, name: str) -> Path | None:
    """Return the file holding output ``name`` of ``step``, or None if it was not saved.

    Only the known extensions are considered. :func:`save` keeps exactly one file
    per name; should a crash between writing the new file and removing the old one
    ever leave two, the most recently written one wins, as it is the newer value.
    """
    _check_name("output", name)
    folder = outputs_dir(run_dir, step)
    found: list[tuple[int, int, Path]] = []
    for rank, ext in enumerate(OUTPUT_EXTENSIONS):
        candidate = folder / f"{name}{ext}"
        try:
            mtime = candidate.stat().st_mtime_ns
        except OSError:
            continue
        if candidate.is_file():
            found.append((mtime, -rank, candidate))
    if not found:
        return None
    return max(found)[2]


# ------------------------------------------------------------------------ parameters


def param(name: str, value: Any) -> Any:
    """Return the value of parameter ``name`` for the current step.

    Generated steps declare every parameter as ``...`` (Ellipsis) in the papermill
    ``parameters`` cell. If papermill injected a value, ``value`` is no longer
    Ellipsis and is returned unchanged: explicit injection wins. Otherwise the
    value comes from the run folder's ``config.yaml``, so a run can be reproduced
    from its folder alone.
    """
    if value is not Ellipsis:
        return value
    ctx = _require_context(f"param({name!r}, ...)")
    config = ctx.config()
    if config is None:
        where = f"the run folder {ctx.run_dir} has no {CONFIG_FILENAME}"
    elif name not in config:
        where = f"{ctx.run_dir / CONFIG_FILENAME} has no {name!r} entry"
    else:
        # Deep copy: mutating the value in the step must not change what the next
        # param() call for the same name returns.
        return copy.deepcopy(config[name])
    raise ParameterMissingError(
        f"Parameter {name!r} of step {ctx.step!r} has no value: papermill did not "
        f"inject it and {where}. Fix: pass it with papermill -p {name} VALUE, or "
        f"-f <pipeline>/vN/config.yaml, or put a {CONFIG_FILENAME} that sets {name!r} "
        "in the run folder."
    )


def _read_config(path: Path, step: str) -> dict[str, Any] | None:
    """Parse ``config.yaml`` with ``yaml.safe_load``; None if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(
            f"Step {step!r} cannot read its parameters from {path}: {exc}. Fix: make the "
            "file readable UTF-8 text, or remove it and pass parameters with papermill -p."
        ) from exc

    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigFileError(
            f"Step {step!r} cannot read its parameters from {path}: it is not valid "
            f"YAML ({reason}). Fix: correct the file, or regenerate it from "
            "<pipeline>/vN/config.yaml."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"Step {step!r} cannot read its parameters from {path}: the file holds a "
            f"YAML {type(data).__name__}, not a mapping of parameter names to values. "
            "Fix: write it as 'name: value' lines, like <pipeline>/vN/config.yaml."
        )
    return data


# ---------------------------------------------------------------------- save / load


def _is_pure_json(value: Any) -> bool:
    """True if ``value`` is made only of exact JSON types, so json round-trips it.

    Exact types (not isinstance) because subclasses such as bool-vs-int, numpy
    scalars, tuples or OrderedDict would come back as a different type.
    """
    try:
        return _is_pure_json_inner(value)
    except RecursionError:  # very deep or self-referencing: let pickle handle it
        return False


def _is_pure_json_inner(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return True
    if kind is list:
        return all(_is_pure_json_inner(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_pure_json_inner(item) for key, item in value.items())
    return False


def _json_bytes(value: Any) -> bytes:
    """Serialize a pure-JSON value; floats use repr, so they round-trip exactly."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded as UTF-8; \\u escapes keep them intact.
        return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")


def _sha256_of(path: Path) -> str:
    import hashlib

    sha = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            sha.update(view[:count])
    return sha.hexdigest()


def _write_hashed(target: Path, fill: Callable[[Any], object]) -> None:
    """Write ``target`` atomically through ``fill`` (given a binary file) and record its
    SHA-256 beside it, so that the runner does not read and hash the file again.

    The digest is computed while the file goes to disk: a thread flushes it (``fsync``,
    which waits for the disk and releases the interpreter lock) while this one hashes the
    freshly written bytes from the page cache. On a disk slower than SHA-256 (most), hashing
    then adds no time of its own. The digest (``run_folder.write_digest``) is tied to the
    file's size, modification time and inode, and ignored if any of them changed.
    """
    import threading

    digest = ""

    def write(tmp: Path) -> None:
        nonlocal digest
        with open(tmp, "wb") as handle:
            fill(handle)
        failure: list[OSError] = []

        def flush() -> None:
            try:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:  # e.g. ENOSPC from delayed allocation: raised below
                failure.append(exc)

        flusher = threading.Thread(target=flush, name="nb2prod-fsync", daemon=True)
        flusher.start()
        try:
            digest = _sha256_of(tmp)
        finally:
            flusher.join()
        if failure:
            # Raised here, not left to write_atomic's own fsync: Linux reports a write-back
            # error to one fsync only.
            raise failure[0]

    write_atomic(target, write)
    write_digest(target, digest)


def _save_npy(target: Path, value: Any) -> None:
    import numpy as np

    # A file object, because numpy.save appends ".npy" to a path without it.
    _write_hashed(target, lambda handle: np.save(handle, value, allow_pickle=False))


def _is_plain_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return (
        np is not None and type(value) is getattr(np, "ndarray", None) and not value.dtype.hasobject
    )


def _pickle_to(target: Path, value: Any, dump: Callable[..., None], *, digest: bool = True) -> None:
    if digest:
        _write_hashed(target, lambda handle: dump(value, handle, protocol=PICKLE_PROTOCOL))
        return

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            dump(value, handle, protocol=PICKLE_PROTOCOL)

    write_atomic(target, write)


def _is_main_function(value: Any) -> bool:
    """A function defined in a notebook cell (module ``__main__``).

    Plain pickle stores such a function by name only, so the step that loads it
    would fail unless it defines the same function; cloudpickle stores its code.
    """
    return isinstance(value, types.FunctionType) and value.__module__ == "__main__"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _save_any(folder: Path, name: str, value: Any) -> Path:
    """Write ``value`` in the first format that fits; raise if none does."""
    reasons: list[str] = []

    # DataFrames (and Series) go to pickle protocol 5 below: exact by construction, and as
    # fast as uncompressed Arrow IPC and several times faster than Parquet written and read
    # back (docs/benchmarks.md, "hand-off"), so no format check and no read-back is needed.
    if _is_plain_ndarray(value):
        target = folder / f"{name}{NPY_EXT}"
        try:
            _save_npy(target, value)
            return target
        except OSError:
            raise
        except Exception as exc:
            reasons.append(f"npy: {type(exc).__name__}: {exc}")

    if _is_pure_json(value):
        target = folder / f"{name}{JSON_EXT}"
        try:
            data = _json_bytes(value)
        except ValueError as exc:  # e.g. an int beyond Python's int/str digit limit
            reasons.append(f"JSON: {exc}")
        else:
            _write_hashed(target, lambda handle: handle.write(data))
            return target

    # Plain pickle first: it refers to classes by name, so objects of a class
    # defined in the notebook load as instances of the loading step's own class.
    # Functions defined in the notebook go to cloudpickle first, which stores
    # their code instead of a name the loading step may not define.
    attempts = [(PICKLE_EXT, "pickle"), (CLOUDPICKLE_EXT, "cloudpickle")]
    if _is_main_function(value):
        attempts.reverse()
    for ext, module_name in attempts:
        if module_name == "pickle":
            dump: Callable[..., None] = pickle.dump
        else:
            try:
                import cloudpickle
            except ImportError:
                reasons.append("cloudpickle: not installed")
                continue
            dump = cloudpickle.dump
        try:
            _pickle_to(folder / f"{name}{ext}", value, dump)
            return folder / f"{name}{ext}"
        except OSError:
            raise
        except Exception as exc:
            reasons.append(f"{module_name}: {type(exc).__name__}: {exc}")

    raise _NotSaveable("; ".join(_short(reason) for reason in reasons))


class _NotSaveable(Exception):
    """Internal: every format failed; the message lists why."""


def save(name: str, value: Any) -> Path:
    """Save ``value`` as output ``name`` of the current step and return its file.

    The format follows the value's type (see the module docstring). The write is
    atomic, and any file previously saved under ``name`` with another extension
    is removed afterwards, so the folder always holds exactly one file per name
    and :func:`load` cannot pick up a stale value.

    Raises:
        RuntimeContextError: :func:`start_step` was not called.
        OutputNotSaveableError: no format can store the value (a generator, an
            open file, a lock...); nothing is written in that case.
    """
    ctx = _require_context(f"save({name!r}, ...)")
    _check_name("output", name)
    folder = outputs_dir(ctx.run_dir, ctx.step)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = _save_any(folder, name, value)
    except _NotSaveable as exc:
        raise OutputNotSaveableError(
            f"Step {ctx.step!r} cannot save its output {name!r}: the value is a "
            f"{_type_name(value)}, which cannot be written to a file ({exc}). Values "
            "passed between steps must be data (DataFrames, arrays, JSON-like values) "
            f"or picklable objects. Fix: make {name!r} local to one step so no other "
            "step reads it, or re-create it in the step that reads it (for example "
            "open the file or connection there)."
        ) from None
    for ext in OUTPUT_EXTENSIONS:
        stale = folder / f"{name}{ext}"
        if stale != path:
            stale.unlink(missing_ok=True)
            digest_path(stale).unlink(missing_ok=True)
    return path


def save_outputs(values: Mapping[str, Any]) -> None:
    """Save every entry of ``values`` as an output of the current step (see :func:`save`).

    Generated steps end with this call; it returns nothing, so the executed notebook does not
    display a path as the step's last result.
    """
    for name, value in values.items():
        save(name, value)


def read_output(path: Path) -> Any:
    """The value saved in output file ``path`` (any format this module writes or wrote)."""
    ext = path.suffix
    if ext == PARQUET_EXT:
        import pandas as pd

        return pd.read_parquet(str(path), engine="pyarrow")
    if ext == NPY_EXT:
        import numpy as np

        if path.stat().st_size < MMAP_MIN_BYTES:
            return np.load(path, allow_pickle=False)
        # Memory-mapped copy-on-write: loading costs nothing until the data is touched, the
        # step may change the array as it could in the notebook, and its changes stay in its
        # own memory (the file is never written). Returned as a plain ndarray view, so the
        # step sees the type it would see in the notebook (not numpy.memmap: its repr,
        # isinstance checks and pickles differ).
        mapped = np.load(path, mmap_mode="c", allow_pickle=False)
        return mapped.view(np.ndarray) if isinstance(mapped, np.memmap) else mapped
    if ext == JSON_EXT:
        return json.loads(path.read_bytes())
    # .pkl and .cpkl: cloudpickle output is ordinary pickle data that refers to
    # cloudpickle's helpers, so pickle.load reads both (importing cloudpickle).
    with open(path, "rb") as handle:
        return pickle.load(handle)


def load(name: str, step: str) -> Any:
    """Load output ``name`` that step ``step`` saved in the current run folder.

    Returns a value equal to the one saved. Pickled objects of classes defined
    in notebook cells are looked up in this kernel's ``__main__``, so the class
    must be defined here too (generated steps repeat the cells that define it).

    Raises:
        RuntimeContextError: :func:`start_step` was not called.
        InputMissingError: ``step`` has not saved ``name`` in this run folder.
        InputNotLoadableError: the file exists but cannot be read in this kernel.
    """
    ctx = _require_context(f"load({name!r}, step={step!r})")
    _check_name("output", name)
    path = output_path(ctx.run_dir, step, name)
    if path is None:
        folder = outputs_dir(ctx.run_dir, step)
        if folder.is_dir():
            saved = sorted(
                {p.name[: -len(ext)] for ext in OUTPUT_EXTENSIONS for p in folder.glob(f"*{ext}")}
            )
            found = f"it saved only: {', '.join(saved)}" if saved else "it has saved no outputs yet"
        else:
            found = f"{folder} does not exist, so step {step!r} has not run here"
        raise InputMissingError(
            f"Step {ctx.step!r} needs input {name!r} from step {step!r}, but it is not in "
            f"the run folder {ctx.run_dir} ({found}). Fix: run step {step!r} first, in the "
            f"same run folder, and make sure it assigns {name!r}."
        )
    try:
        return read_output(path)
    except Exception as exc:
        reason = _short(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, AttributeError) and "Can't get attribute" in str(exc):
            fix = (
                "define that class or function in this step too (put its cell in a "
                "setup cell, which every step repeats), or move it into an importable "
                "module"
            )
        else:
            fix = (
                f"make sure this step imports what the value needs, with the same library "
                f"versions as step {step!r}, or re-run step {step!r}"
            )
        raise InputNotLoadableError(
            f"Step {ctx.step!r} cannot load input {name!r} saved by step {step!r} in "
            f"{path}: {reason}. Fix: {fix}."
        ) from exc


# -------------------------------------------------------------------------- metrics


def _as_number(value: Any) -> int | float | None:
    """Return ``value`` as a Python int or float if it is a real number, else None.

    bool (and numpy.bool_) are excluded: a flag is not a metric, and logging it
    as 0/1 would make it look like one in the tracking UI. Numpy scalars and 0-d
    numeric arrays are converted, because that is what numpy reductions return.
    """
    if isinstance(value, bool):
        return None
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.bool_):
        return None
    if (
        np is not None
        and type(value) is np.ndarray
        and value.ndim == 0
        and value.dtype.kind in "iuf"
    ):
        value = value.item()  # a 0-d array such as np.asarray(0.5) is a number too
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def read_metrics(run_dir: str | os.PathLike[str], step: str) -> dict[str, Any]:
    """Return the metrics ``step`` logged in ``run_dir`` ({} if it logged none).

    Raises:
        ValueError: ``metrics.json`` exists but is not a JSON object.
    """
    path = metrics_path(run_dir, step)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object of metrics")
    return data


def log_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Record the real-number entries of ``values`` as metrics of the current step.

    Generated steps pass every variable a ``metrics`` cell assigned, so entries
    that are not real numbers (strings, bools, arrays...) are skipped silently.
    The entries are merged into ``metrics.json`` (later values win), written
    atomically. Outside a step nothing is logged and {} is returned, so the same
    call works in the interactive notebook.

    Returns:
        The entries logged, converted to Python int/float.
    """
    ctx = _context
    if ctx is None:
        return {}
    logged: dict[str, float] = {}
    for key, value in values.items():
        number = _as_number(value)
        if number is not None:
            logged[str(key)] = number
    if not logged:
        return {}
    try:
        merged = read_metrics(ctx.run_dir, ctx.step)
    except ValueError as exc:
        warnings.warn(f"{exc}; starting it afresh", RuntimeWarning, stacklevel=2)
        merged = {}
    merged.update(logged)
    data = json.dumps(merged, sort_keys=True, indent=2, allow_nan=True) + "\n"
    target = metrics_path(ctx.run_dir, ctx.step)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, data.encode("utf-8"))
    return logged


def log_cell_metrics(values: Mapping[str, Any], last: Any = None) -> Any:
    """Log the metrics of a notebook ``metrics`` cell, then give back its final value.

    Generated steps call this after a ``metrics`` cell with the names the cell
    assigned (``values``). When the cell ends with an expression, the call takes
    that expression's place as ``last=...``: if it is a mapping (such as
    ``{"rf_accuracy": rf_acc}``) its real-number entries are logged too (they win
    over ``values`` on equal names), and it is returned so the step's notebook
    still displays what the cell displayed. A scalar ``last`` carries no name, so
    it is not logged; the code generator passes named scalars in ``values``.
    Like :func:`log_metrics`, this logs nothing outside a step.
    """
    merged: dict[str, Any] = dict(values)
    if isinstance(last, Mapping):
        merged.update((str(key), value) for key, value in last.items())
    log_metrics(merged)
    return last


def log_metric(name: str, value: Any) -> None:
    """Log one metric of the current step; a no-op (with a one-time note) outside a step.

    Notebook authors call this while iterating interactively, where there is no
    run folder; the note tells them once that this is expected rather than
    printing on every call.

    Raises:
        TypeError: inside a step, ``value`` is not a real number (bools included).
    """
    global _warned_no_context
    if _context is None:
        if not _warned_no_context:
            _warned_no_context = True
            print(
                f"nb2prod.log_metric: not running inside a pipeline step, so metric {name!r} "
                "is not logged (it is logged when the exported pipeline runs).",
                file=sys.stderr,
            )
        return
    number = _as_number(value)
    if number is None:
        raise TypeError(
            f"metric {name!r} must be a real number (int or float, not bool), got "
            f"{_type_name(value)}: {_short(repr(value), 80)}"
        )
    log_metrics({name: number})


# ---------------------------------------------------------------------------- models

MODELS_DIRNAME = MODELS


def _is_model(value: Any) -> bool:
    """Fitted-estimator-like: an instance with ``fit`` and ``predict`` or ``transform``."""
    if isinstance(value, type) or not hasattr(value, "fit"):
        return False
    return callable(getattr(value, "fit", None)) and any(
        callable(getattr(value, attr, None)) for attr in ("predict", "predict_proba", "transform")
    )


def save_models(namespace: Mapping[str, Any], names: Iterable[str]) -> None:
    """Keep the model-like objects among ``names`` as ``steps/<step>/models/<name>.pkl``.

    Generated training steps call this last, so every run leaves a deployable artifact that the
    runner logs to MLflow (with the scikit-learn flavour when it is a scikit-learn estimator).
    Values that are not models, or that cannot be pickled, are passed over, and so are
    throwaway names (``_``, ``_x``). A model already saved as a pickled output of this step is
    linked, not pickled a second time.
    """
    ctx = _require_context("save_models")
    folder = models_dir(ctx.run_dir, ctx.step)
    for name in names:
        if name.startswith("_"):
            continue
        value = namespace.get(name)
        if value is None or not _is_model(value):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}{PICKLE_EXT}"
        if _link_output(ctx, name, target):
            continue
        try:
            _pickle_to(target, value, pickle.dump, digest=False)
        except Exception as exc:  # noqa: BLE001 - a model we cannot keep is reported, not fatal
            print(
                f"nb2prod: model {name!r} could not be saved for tracking: {exc}", file=sys.stderr
            )


def _link_output(ctx: _StepContext, name: str, target: Path) -> bool:
    """Hard-link output ``name`` of this step to ``target`` if it was saved with plain pickle."""
    source = outputs_dir(ctx.run_dir, ctx.step) / f"{name}{PICKLE_EXT}"
    if output_path(ctx.run_dir, ctx.step, name) != source:
        return False
    try:
        target.unlink(missing_ok=True)
        os.link(source, target)
    except OSError:
        return False
    return True


# -------------------------------------------------------------------------- serving

SERVING_EXAMPLE_ROWS = 100  # a recorded call keeps at most this many rows of its first argument


def record_serving_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the serving function so its first call in this step is kept as the serving model's
    input example and expected output (``serving_example_dir``).

    The call itself is unchanged. When its first argument has more than
    :data:`SERVING_EXAMPLE_ROWS` rows, the function is called once more on the first rows, so
    the recorded input and output belong together. Recording never fails the step: a value that
    cannot be pickled is a warning, and the run then uses its fallback example.
    """
    import functools

    state = {"recorded": False}

    @functools.wraps(function)
    def serving_call(*args: Any, **kwargs: Any) -> Any:
        if state["recorded"] or _context is None:
            return function(*args, **kwargs)
        state["recorded"] = True  # first, so a recursive call is not recorded too
        result = function(*args, **kwargs)
        try:
            _record_call(_context, function, args, kwargs, result)
        except Exception as exc:  # noqa: BLE001 - the step's own result matters more
            warnings.warn(
                f"nb2prod could not record the call of serving function "
                f"{getattr(function, '__name__', '?')!r} in step {_context.step!r} "
                f"({_short(f'{type(exc).__name__}: {exc}')}); the serving model's input example "
                "comes from the training data instead.",
                stacklevel=2,
            )
        return result

    return serving_call


def _head(value: Any, rows: int) -> Any | None:
    """The first ``rows`` rows of ``value``, or None when it has no more than that."""
    try:
        if len(value) <= rows:
            return None
    except TypeError:
        return None
    if hasattr(value, "iloc"):
        return value.iloc[:rows]
    if isinstance(value, (str, bytes, Mapping)):
        return None
    return value[:rows]


def _record_call(
    ctx: _StepContext,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
) -> None:
    from .run_folder import serving_example_dir

    if args:
        head = _head(args[0], SERVING_EXAMPLE_ROWS)
        if head is not None:
            args = (head, *args[1:])
            result = function(*args, **kwargs)
    folder = serving_example_dir(ctx.run_dir, ctx.step)
    folder.mkdir(parents=True, exist_ok=True)
    _pickle_to(
        folder / "input.pkl",
        {"args": list(args), "kwargs": dict(kwargs)},
        pickle.dump,
        digest=False,
    )
    _pickle_to(folder / "output.pkl", result, pickle.dump, digest=False)
