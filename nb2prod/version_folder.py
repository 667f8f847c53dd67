"""The version folder, ``pipelines/<name>/vN/``: one home for its paths, listing and manifest.

A version folder is an on-disk contract that the runner, the server, the widgets and every
future engine read, so how to find and read one lives here and nowhere else::

    pipelines/<name>/
        v1/
            pipeline.yaml      the manifest: steps, DAG, parameters, SHA-256 of every file
            config.yaml        default parameter values
            README.md          how to run the version by hand
            requirements.txt   pinned distributions the steps import (since nb2prod 0.2)
            steps/<step>.py    one jupytext module per step

Reading a version never needs the exporter: this module imports the standard library, PyYAML
(where a file is parsed) and small nb2prod modules only, so ``nb2prod run`` does not pay for
codegen, planning and analysis. Nothing in a version folder is trusted before it is checked:
:func:`load_manifest` refuses a version edited by hand (its files no longer match the SHA-256
that ``pipeline.yaml`` records) and a manifest whose fields would make the runner read or write
outside its folders.
"""

from __future__ import annotations

import hashlib
import hmac
import keyword
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Nb2prodError

PIPELINES = Path("pipelines")  # where a bare pipeline name is looked for (the default --out)
MANIFEST = "pipeline.yaml"
CONFIG = "config.yaml"
README = "README.md"
REQUIREMENTS = "requirements.txt"
# A pin of requirements.txt as nb2prod writes it: `name==version`.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")
STEPS = "steps"  # the step modules' folder
VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
# 2: pipeline.yaml records the SHA-256 of every file (``files`` and its sealing last line).
SCHEMA_VERSION = 2
SEAL = "# sha256 of the lines above: "
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- paths ---------------------------------------------------------------------------------------
def default_pipeline_name(notebook: Path) -> str:
    """The folder name a notebook's pipeline gets unless the user names it."""
    from .grammar import make_safe_name

    return make_safe_name(notebook.stem, "pipeline")


def version_path(pipeline_dir: Path, version: int) -> Path:
    """``<pipeline_dir>/v<version>``."""
    return pipeline_dir / f"v{version}"


def step_module(step: str) -> str:
    """A step's module, relative to the version folder (POSIX): ``steps/<step>.py``."""
    return f"{STEPS}/{step}.py"


def is_version_dir(path: Path) -> bool:
    """Whether ``path`` is a complete version folder: named ``vN``, with its manifest."""
    return bool(VERSION_DIR.match(path.name)) and (path / MANIFEST).is_file()


def versions(pipeline_dir: Path) -> list[int]:
    """Complete versions of a pipeline, oldest first."""
    if not pipeline_dir.is_dir():
        return []
    found = []
    for entry in pipeline_dir.iterdir():
        m = VERSION_DIR.match(entry.name)
        if m and (entry / MANIFEST).is_file():
            found.append(int(m.group(1)))
    return sorted(found)


def recorded_notebook(notebook: Path, out: Path) -> str:
    """``source.notebook`` as the manifest records it: relative to the folder holding ``out``."""
    root = out.resolve().parent
    return Path(os.path.relpath(notebook.resolve(), root)).as_posix()


def exported_from(notebook: Path, out: Path) -> str | None:
    """The pipeline under ``out`` whose latest version was exported from ``notebook``."""
    mine = recorded_notebook(notebook, out)
    if not out.is_dir():
        return None
    for pipeline_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        found = versions(pipeline_dir)
        if not found:
            continue
        try:
            source = read_manifest(version_path(pipeline_dir, found[-1])).get("source")
        except Nb2prodError:
            continue
        if isinstance(source, dict) and source.get("notebook") == mine:
            return pipeline_dir.name
    return None


# --- reading files -------------------------------------------------------------------------------
def read_version_yaml(version_dir: Path, name: str = MANIFEST) -> dict[str, Any]:
    """A YAML mapping from a version folder (``pipeline.yaml`` or ``config.yaml``)."""
    import yaml  # not at import time: locating a version needs no parser

    path = version_dir / name
    # libyaml for the manifest, which export and run read on every call (the pure-Python
    # parser took 0.45 s for a large notebook's); config.yaml's values go through the same
    # loader as the steps' own reading of them, so both always agree.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if name == MANIFEST else yaml.SafeLoader
    try:
        data = yaml.load(path.read_text("utf-8"), Loader=loader)  # noqa: S506 - safe loaders
    except (OSError, yaml.YAMLError) as exc:
        raise Nb2prodError(
            f"{path}: cannot be read ({exc}). Fix: restore the folder from version control; "
            "exported versions must not be edited."
        ) from None
    if data is None and name != MANIFEST:
        return {}
    if not isinstance(data, dict):
        raise Nb2prodError(
            f"{path}: is not what nb2prod wrote there (a mapping). Fix: export again."
        )
    return data


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """``pipeline.yaml`` as a plain mapping, unchecked (listings show even damaged versions)."""
    return read_version_yaml(version_dir, MANIFEST)


def _tool_litter(rel: Path) -> bool:
    """Files that editors and Python leave in a version folder (JupyterLab writes
    ``.ipynb_checkpoints/`` when a user opens README.md there); never part of a version."""
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def read_files(version_dir: Path) -> dict[str, bytes]:
    """Every file of a version (tool litter left out), by relative POSIX path."""
    return {
        rel.as_posix(): p.read_bytes()
        for p in sorted(version_dir.rglob("*"))
        if p.is_file() and not _tool_litter(rel := p.relative_to(version_dir))
    }


# --- hashes: is the version what nb2prod wrote? --------------------------------------------------
def content_sha256(data: bytes) -> str:
    """The SHA-256 recorded for a file of a version. Line endings do not count, so a checkout
    that writes CRLF (git's autocrlf on Windows) still matches."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def seal_holds(data: bytes) -> bool:
    """Whether a manifest's last line is the SHA-256 of the lines above it."""
    body, _, last = data.replace(b"\r\n", b"\n").rstrip(b"\n").rpartition(b"\n")
    expected = (SEAL + content_sha256(body + b"\n")).encode("ascii")
    return bool(body) and hmac.compare_digest(last, expected)


@dataclass(frozen=True)
class Edit:
    """A file of a version that is not what nb2prod wrote."""

    path: str  # relative to the version folder, POSIX
    what: str  # "differs", "is missing", "was added", "is a link"

    def __str__(self) -> str:
        suffix = " from what nb2prod wrote" if self.what == "differs" else ""
        return f"{self.path} {self.what}{suffix}"


def _listing(version_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """The version's files (tool litter left out) and any symbolic links in it, by relative
    path. Links are not followed: nb2prod never writes one."""
    files: dict[str, Path] = {}
    links: list[str] = []
    for folder, dirs, names in os.walk(version_dir):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            rel = path.relative_to(version_dir)
            if _tool_litter(rel):
                continue
            if path.is_symlink():
                links.append(rel.as_posix())
            elif name in names:
                files[rel.as_posix()] = path
        dirs[:] = [d for d in dirs if not _tool_litter(Path(folder, d).relative_to(version_dir))]
    return files, sorted(links)


def edits(version_dir: Path, manifest: dict[str, Any]) -> tuple[Edit, ...] | None:
    """The files of a version that are not what nb2prod wrote: edited, missing, added, or
    links. ``None`` for a version exported before nb2prod recorded hashes (``schema_version``
    1, no ``files``): it cannot be checked, and is accepted as it is."""
    recorded = manifest.get("files")
    if recorded is None and manifest.get("schema_version") == 1:
        return None
    found: list[Edit] = []
    try:
        sealed = seal_holds((version_dir / MANIFEST).read_bytes())
    except OSError:
        sealed = False
    if not sealed:
        found.append(Edit(MANIFEST, "differs"))
    if not isinstance(recorded, dict):
        return tuple(found or [Edit(MANIFEST, "differs")])
    files, links = _listing(version_dir)
    found += [Edit(rel, "is a link") for rel in links]
    files.pop(MANIFEST, None)
    for rel in sorted(set(recorded) | set(files), key=str):
        if rel not in files:
            if str(rel) not in links:
                found.append(Edit(str(rel), "is missing"))
        elif rel not in recorded:
            found.append(Edit(rel, "was added"))
        elif content_sha256(files[rel].read_bytes()) != recorded[rel]:
            found.append(Edit(rel, "differs"))
    return tuple(found)


def edited_message(version_dir: Path, found: tuple[Edit, ...], notebook: str = "") -> str:
    """One paragraph for a version edited by hand: what differs, and the fix. ``notebook``:
    the manifest's ``source.notebook`` (relative to the folder that holds the pipelines)."""
    shown = "; ".join(str(e) for e in found[:5]) + ("; ..." if len(found) > 5 else "")
    command = "nb2prod export NOTEBOOK"
    if notebook and not os.path.isabs(notebook):
        # As the user can type it from here; else as recorded (relative to the project root),
        # which is also how the REST API's callers name it.
        where = Path(os.path.abspath(version_dir)).parent.parent.parent / notebook
        here = os.path.relpath(where)
        command = f"nb2prod export {_shell_word(notebook if here.startswith('..') else here)}"
    return (
        f"{version_dir} was edited by hand: {shown}. Exported versions are immutable, so "
        f"nothing was run. Fix: export again (`{command}` writes the next version), or copy "
        "the change back into the notebook first; to drop the edit, restore the folder from "
        "version control."
    )


def _shell_word(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- the manifest, typed -------------------------------------------------------------------------
# Data sources nb2prod records by URL and never hashes (plan.datafiles finds them, the runner
# keys the cache on the URL alone).
REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "hdfs://", "http://", "https://")


@dataclass(frozen=True)
class DataSpec:
    """A file or folder a step reads (``steps[].data``): relative to the notebook's folder
    unless absolute; when ``parameter`` is set, the run's value of that parameter names it."""

    path: str
    cell: int
    parameter: str | None = None


@dataclass(frozen=True)
class StepSpec:
    name: str
    role: str
    module: Path
    inputs: tuple[tuple[str, str], ...]  # (name, producing step)
    outputs: tuple[str, ...]
    parameters: tuple[str, ...]
    depends_on: tuple[str, ...]
    # Kale 2.x engine settings from the step's tags (cache, image, limit...), as exported.
    engine: dict[str, Any] = field(default_factory=dict)
    data: tuple[DataSpec, ...] = ()  # files the step reads, which join its cache key
    metrics: tuple[str, ...] = ()  # the names its metrics cells assign

    @property
    def cache(self) -> bool:
        """False when the step was tagged ``cache:disabled``: it is never reused from the cache."""
        return self.engine.get("cache") != "disabled"

    @property
    def report(self) -> bool:
        """False when the step was tagged ``report:disabled``: no HTML report is rendered."""
        return self.engine.get("report") != "disabled"


@dataclass(frozen=True)
class EnvironmentSpec:
    """The environment a version was exported in: the Python version, the distributions each
    step imports (``environment`` in pipeline.yaml) and their pinned versions (requirements.txt,
    which also pins nb2prod, papermill and ipykernel)."""

    python: str
    packages: dict[str, tuple[str, ...]]  # step -> distribution names
    pins: dict[str, str]  # distribution -> version

    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.pins.items())]


def render_requirements(env: EnvironmentSpec) -> str:
    return (
        "# Generated by nb2prod: what the steps import, as installed when this version was\n"
        "# exported, plus what runs them. `pip install -r requirements.txt` rebuilds it.\n"
        + "".join(f"{line}\n" for line in env.requirements())
    )


def read_environment(vdir: Path, data: dict[str, Any]) -> EnvironmentSpec | None:
    """A version's recorded environment, or None for a version exported before nb2prod
    recorded one. Raises Nb2prodError for one that is not what nb2prod writes."""
    raw = data.get("environment")
    if raw is None:
        return None
    m = _Fields(vdir, data)
    env = m.get("environment", dict, raw)
    python = m.get("environment.python", str, env.get("python"))
    packages = {}
    for step, names in m.get("environment.packages", dict, env.get("packages")).items():
        packages[str(step)] = tuple(
            m.names(
                f"environment.packages.{step}",
                names,
                lambda n: PIN_NAME.fullmatch(n) is not None,
                "a distribution",
            )
        )
    pins = {}
    try:
        text = (vdir / REQUIREMENTS).read_text("utf-8")
    except OSError:
        raise m.bad("environment", f"is set, but {REQUIREMENTS} cannot be read") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pin = PIN.fullmatch(line)
        if pin is None:
            raise Nb2prodError(
                f"{vdir / REQUIREMENTS}: {_shown(line)} is not a pin nb2prod writes "
                "(name==version). Fix: export the notebook again, or restore the folder from "
                "version control."
            )
        pins[pin.group(1)] = pin.group(2)
    return EnvironmentSpec(python, packages, pins)


PIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

SERVING_MODULE = f"{STEPS}/serving.py"  # the serving function's module (not a step)
PARAMETER = "parameter"  # a serving need's source when it is a parameter, not a step output


@dataclass(frozen=True)
class ServingNeed:
    name: str
    source: str  # the step whose output it is, or PARAMETER


def serving_summary(function: str, args: Iterable[str], needs: Iterable[tuple[str, str]]) -> str:
    """``predict(raw) uses scaler from preprocessing, features (parameter)``: how inspect, the
    version's readers and the panels describe a serving function."""
    call = f"{function}({', '.join(args)})"
    used = [f"{n} ({PARAMETER})" if src == PARAMETER else f"{n} from {src}" for n, src in needs]
    return f"{call} uses {', '.join(used)}" if used else f"{call} uses nothing from the steps"


@dataclass(frozen=True)
class ServingSpec:
    """pipeline.yaml's ``serving`` section: the notebook's production entry point."""

    function: str
    module: str  # SERVING_MODULE, relative to the version folder
    cell: int
    args: tuple[str, ...]
    needs: tuple[ServingNeed, ...]  # names the function reads that the run produces
    callers: tuple[str, ...]  # steps that call it: their first call is the input example
    example: ServingNeed | None  # otherwise: the head of this step output

    def summary(self) -> str:
        return serving_summary(self.function, self.args, ((n.name, n.source) for n in self.needs))


@dataclass(frozen=True)
class Manifest:
    """A version's ``pipeline.yaml``, checked field by field (see :func:`load_manifest`)."""

    path: Path  # the version folder
    name: str
    version: int
    schema_version: int
    notebook: str  # relative to the folder that holds the pipelines folder
    notebook_sha256: str
    parameters: tuple[str, ...]  # in the notebook's order
    steps: tuple[StepSpec, ...]  # in run order
    created_at: str
    nb2prod_version: str
    # False for a version exported before nb2prod recorded file hashes: it could not be checked.
    verified: bool = True
    environment: EnvironmentSpec | None = None  # None: exported before nb2prod recorded it
    gates: tuple[tuple[str, str], ...] = ()  # (expression, help), parsed by nb2prod.gates
    serving: ServingSpec | None = None


class _Fields:
    """Typed access to a manifest's fields; each failure names pipeline.yaml and the field."""

    def __init__(self, vdir: Path, data: dict[str, Any]) -> None:
        self.vdir, self.data = vdir, data

    def bad(self, where: str, what: str) -> Nb2prodError:
        return Nb2prodError(
            f"{self.vdir / MANIFEST}: `{where}` {what}, which nb2prod never writes; the version "
            "cannot be run. Fix: export the notebook again, or restore the folder from version "
            "control."
        )

    def get(self, where: str, kind: type, value: Any = None, *, required: bool = True) -> Any:
        if value is None:
            value = self.data.get(where)
        if value is None and not required:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.bad(where, f"is {_shown(value)}, not {_KINDS.get(kind, kind.__name__)}")
        return value

    def names(self, where: str, value: Any, check: Callable[[str], bool], what: str) -> list[str]:
        items = self.get(where, list, value if value is not None else [])
        for item in items:
            if not isinstance(item, str) or not check(item):
                raise self.bad(where, f"holds {_shown(item)}, not {what}")
        if len(set(items)) != len(items):
            raise self.bad(where, "lists a name twice")
        return list(items)


_KINDS = {dict: "a mapping", list: "a list", str: "a string", int: "a whole number"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _check_folder(m: _Fields) -> tuple[int, str, int]:
    from .grammar import is_safe_name

    schema = m.get("schema_version", int)
    if schema > SCHEMA_VERSION:
        raise Nb2prodError(
            f"{m.vdir / MANIFEST}: written by a newer nb2prod (schema {schema}; this one reads "
            f"up to {SCHEMA_VERSION}). Fix: upgrade nb2prod (pip install -U nb2prod)."
        )
    if schema < 1:
        raise m.bad("schema_version", f"is {schema}")
    folder = Path(os.path.abspath(m.vdir))  # as typed: a link to the folder keeps its name
    name = m.get("name", str)
    if not is_safe_name(name) or name != folder.parent.name:
        raise m.bad("name", f"is {_shown(name)}, but the folder is {folder.parent.name}")
    version = m.get("version", int)
    if f"v{version}" != folder.name:
        raise m.bad("version", f"is {version}, but the folder is {folder.name}")
    return schema, name, version


def _check_source(m: _Fields) -> tuple[str, str]:
    source = m.get("source", dict)
    notebook = m.get("source.notebook", str, source.get("notebook"))
    if not notebook or Path(notebook).is_absolute() or "\x00" in notebook:
        raise m.bad("source.notebook", f"is {_shown(notebook)}, not a relative path")
    sha = m.get("source.sha256", str, source.get("sha256"))
    if not _SHA256.match(sha):
        raise m.bad("source.sha256", f"is {_shown(sha)}, not a SHA-256")
    return notebook, sha


def _check_module(m: _Fields, at: str, name: str, raw: Any) -> str:
    """The step's module field: its own ``steps/<name>.py``, present, inside the version."""
    module = m.get(f"{at}.module", str, raw)
    expected = m.vdir.resolve() / step_module(name)
    if module != step_module(name) or (m.vdir / module).resolve() != expected:
        raise m.bad(
            f"{at}.module", f"is {_shown(module)}, not the step's module {step_module(name)}"
        )
    if not expected.is_file():
        raise Nb2prodError(
            f"{m.vdir / module}: step module is missing. Fix: export again, or restore the "
            "folder from version control."
        )
    return module


def _check_cells(m: _Fields, at: str, raw: Any) -> None:
    for i, cell in enumerate(m.get(f"{at}.cells", list, raw)):
        ref = m.get(f"{at}.cells[{i}]", dict, cell)
        index, cell_id = ref.get("index"), ref.get("id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise m.bad(f"{at}.cells[{i}].index", f"is {_shown(index)}")
        if cell_id is not None and not isinstance(cell_id, str):
            raise m.bad(f"{at}.cells[{i}].id", f"is {_shown(cell_id)}")


def _check_inputs(m: _Fields, at: str, raw: Any) -> list[tuple[str, str]]:
    inputs = []
    for i, item in enumerate(m.get(f"{at}.inputs", list, raw)):
        entry = m.get(f"{at}.inputs[{i}]", dict, item)
        var = m.get(f"{at}.inputs[{i}].name", str, entry.get("name"))
        producer = m.get(f"{at}.inputs[{i}].from", str, entry.get("from"))
        if not _identifier(var):
            raise m.bad(f"{at}.inputs[{i}].name", f"is {_shown(var)}, not a variable name")
        inputs.append((var, producer))
    return inputs


def _check_step(m: _Fields, n: int, raw: Any, parameters: list[str]) -> StepSpec:
    from .grammar import is_safe_name, load_grammar

    at = f"steps[{n}]"
    s = m.get(at, dict, raw)
    name = m.get(f"{at}.name", str, s.get("name"))
    if not is_safe_name(name):
        raise m.bad(f"{at}.name", f"is {_shown(name)}, not a step name")
    at = f"steps.{name}"
    role = m.get(f"{at}.role", str, s.get("role"))
    if role not in load_grammar().step_roles:
        raise m.bad(f"{at}.role", f"is {_shown(role)}, not a step role")
    module = _check_module(m, at, name, s.get("module"))
    _check_cells(m, at, s.get("cells", []))
    inputs = _check_inputs(m, at, s.get("inputs", []))
    outputs = m.names(f"{at}.outputs", s.get("outputs"), _identifier, "a variable name")
    used = m.names(
        f"{at}.parameters", s.get("parameters"), lambda p: p in parameters, "a parameter"
    )
    metrics = m.names(f"{at}.metrics", s.get("metrics"), bool, "a metric name")
    depends_on = m.names(f"{at}.depends_on", s.get("depends_on"), is_safe_name, "a step name")
    for var, producer in inputs:
        if producer not in depends_on:
            raise m.bad(
                f"{at}.inputs", f"reads `{var}` from {_shown(producer)}, not a step it depends on"
            )
    engine = m.get(f"{at}.engine", dict, s.get("engine"), required=False) or {}
    if not all(isinstance(k, str) for k in engine):
        raise m.bad(f"{at}.engine", "has a key that is not a string")
    data = _check_data(m, at, s.get("data"), used)
    return StepSpec(
        name=name,
        role=role,
        module=m.vdir / module,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        parameters=tuple(used),
        depends_on=tuple(depends_on),
        engine=dict(engine),
        data=data,
        metrics=tuple(metrics),
    )


def _check_data(m: _Fields, at: str, raw: Any, parameters: list[str]) -> tuple[DataSpec, ...]:
    """``steps[].data``: a path (any string a file system takes), the reading cell's index and
    the parameter, if any, that names the path (one the step uses)."""
    found = []
    for i, item in enumerate(m.get(f"{at}.data", list, raw, required=False) or []):
        entry = m.get(f"{at}.data[{i}]", dict, item)
        path = m.get(f"{at}.data[{i}].path", str, entry.get("path"))
        if not path or "\0" in path or len(path) > 4096:
            raise m.bad(f"{at}.data[{i}].path", f"is {_shown(path)}, not a file path")
        cell = entry.get("cell")
        if not isinstance(cell, int) or isinstance(cell, bool) or cell < 0:
            raise m.bad(f"{at}.data[{i}].cell", f"is {_shown(cell)}")
        parameter = entry.get("parameter")
        if parameter is not None and parameter not in parameters:
            raise m.bad(f"{at}.data[{i}].parameter", f"is {_shown(parameter)}, not a parameter")
        found.append(DataSpec(path, cell, parameter))
    return tuple(found)


def _check_dag(m: _Fields, steps: list[StepSpec]) -> tuple[StepSpec, ...]:
    by_name = {s.name: s for s in steps}
    if len(by_name) != len(steps):
        raise m.bad("steps", "names a step twice")
    dag = m.get("dag", dict)
    order = m.names("dag.order", dag.get("order"), lambda n: n in by_name, "a step")
    if sorted(order) != sorted(by_name):
        raise m.bad("dag.order", "does not list every step once")
    seen: set[str] = set()
    for name in order:
        missing = [d for d in by_name[name].depends_on if d not in seen]
        if missing:
            raise m.bad(
                f"steps.{name}.depends_on",
                f"names {_shown(missing[0])}, which does not run before it",
            )
        seen.add(name)
    edges = m.get("dag.edges", list, dag.get("edges", []))
    if not all(isinstance(e, list) and len(e) == 2 for e in edges) or sorted(
        tuple(e) for e in edges
    ) != sorted((d, s.name) for s in steps for d in s.depends_on):
        raise m.bad("dag.edges", "does not match the steps' depends_on")
    return tuple(by_name[n] for n in order)


def _refuse_edited(vdir: Path, data: dict[str, Any]) -> bool:
    """Raise when files of the version are not what nb2prod wrote; whether they were checked
    (False for a version exported before nb2prod recorded hashes)."""
    found = edits(vdir, data)
    if found:
        source = data.get("source")
        notebook = source.get("notebook") if isinstance(source, dict) else None
        raise Nb2prodError(
            edited_message(vdir, found, notebook if isinstance(notebook, str) else "")
        )
    return found is not None


def load_manifest(vdir: Path) -> Manifest:
    """The manifest of version folder ``vdir``, checked: refused (exit 2) when the version was
    edited by hand, or when a field is not what nb2prod writes."""
    data = read_manifest(vdir)
    verified = _refuse_edited(vdir, data)
    m = _Fields(vdir, data)
    schema, name, version = _check_folder(m)
    notebook, sha = _check_source(m)
    parameters = m.names("parameters", data.get("parameters"), _identifier, "a parameter name")
    raw_steps = m.get("steps", list)
    if not raw_steps:
        raise m.bad("steps", "is empty")
    steps = [_check_step(m, n, s, parameters) for n, s in enumerate(raw_steps)]
    gates = _check_gates(m)
    serving = _check_serving(m, {s.name: s for s in steps}, parameters)
    return Manifest(
        path=vdir,
        name=name,
        version=version,
        schema_version=schema,
        notebook=notebook,
        notebook_sha256=sha,
        parameters=tuple(parameters),
        steps=_check_dag(m, steps),
        created_at=str(data.get("created_at", "")),
        nb2prod_version=str(data.get("nb2prod_version", "")),
        verified=verified,
        environment=read_environment(vdir, data),
        gates=gates,
        serving=serving,
    )


def _check_serving(
    m: _Fields, steps: dict[str, StepSpec], parameters: list[str]
) -> ServingSpec | None:
    """The ``serving`` section: every need a parameter or an output of a step, the module there."""
    raw = m.get("serving", dict, required=False)
    if raw is None:
        return None
    function = m.get("serving.function", str, raw.get("function"))
    if not _identifier(function):
        raise m.bad("serving.function", f"is {_shown(function)}, not a Python name")
    module = m.get("serving.module", str, raw.get("module"))
    if module != SERVING_MODULE:
        raise m.bad("serving.module", f"is {_shown(module)}, not {SERVING_MODULE}")
    if not (m.vdir / module).is_file():
        raise Nb2prodError(
            f"{m.vdir / module}: the serving module is missing. Fix: export again, or restore "
            "the folder from version control."
        )
    cell = m.get("serving.cell", int, raw.get("cell"))
    args = m.names("serving.args", raw.get("args"), _identifier, "a Python name")

    def need(where: str, entry: Any) -> ServingNeed:
        entry = m.get(where, dict, entry)
        name = m.get(f"{where}.name", str, entry.get("name"))
        source = m.get(f"{where}.from", str, entry.get("from"))
        if not _identifier(name):
            raise m.bad(f"{where}.name", f"is {_shown(name)}, not a Python name")
        if source == PARAMETER:
            if name not in parameters:
                raise m.bad(f"{where}.name", f"is {_shown(name)}, not a parameter")
        elif source not in steps or name not in steps[source].outputs:
            raise m.bad(f"{where}", f"names {_shown(name)} from {_shown(source)}, no step output")
        return ServingNeed(name, source)

    needs = [
        need(f"serving.needs[{n}]", e)
        for n, e in enumerate(m.get("serving.needs", list, raw.get("needs", [])))
    ]
    callers = m.names("serving.callers", raw.get("callers"), lambda n: n in steps, "a step")
    example = raw.get("example")
    return ServingSpec(
        function=function,
        module=module,
        cell=cell,
        args=tuple(args),
        needs=tuple(needs),
        callers=tuple(callers),
        example=None if example is None else need("serving.example", example),
    )


def _check_gates(m: _Fields) -> tuple[tuple[str, str], ...]:
    """The ``gates`` list as (expression, help) text; what each means is nb2prod.gates' job."""
    raw = m.get("gates", list, required=False) or []
    found = []
    for n, entry in enumerate(raw):
        entry = m.get(f"gates[{n}]", dict, entry)
        expr = m.get(f"gates[{n}].expr", str, entry.get("expr"))
        help_text = m.get(f"gates[{n}].help", str, entry.get("help"), required=False) or ""
        found.append((expr, help_text))
    return tuple(found)


def read_defaults(manifest: Manifest) -> dict[str, Any]:
    """``config.yaml`` of a checked version: refused unless it sets exactly the manifest's
    parameters."""
    vdir, parameters = manifest.path, list(manifest.parameters)
    defaults = read_version_yaml(vdir, CONFIG)
    keys = list(defaults)
    if sorted(map(str, keys)) != sorted(parameters) or not all(isinstance(k, str) for k in keys):
        raise Nb2prodError(
            f"{vdir / CONFIG}: its parameters ({', '.join(map(str, keys)) or 'none'}) are "
            f"not those pipeline.yaml lists ({', '.join(parameters) or 'none'}). Fix: export the "
            "notebook again, or restore the folder from version control."
        )
    return defaults


__all__ = [
    "CONFIG",
    "MANIFEST",
    "PIPELINES",
    "README",
    "SCHEMA_VERSION",
    "STEPS",
    "VERSION_DIR",
    "Edit",
    "Manifest",
    "StepSpec",
    "content_sha256",
    "edited_message",
    "edits",
    "exported_from",
    "is_version_dir",
    "load_manifest",
    "read_defaults",
    "read_files",
    "read_manifest",
    "read_version_yaml",
    "recorded_notebook",
    "seal_holds",
    "step_module",
    "version_path",
    "versions",
]


def config_help(text: str) -> dict[str, str]:
    """Help texts of ``config.yaml``: the comment line nb2prod writes right above each key."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    lines = text.splitlines()
    out: dict[str, str] = {}
    for key, _ in node.value:
        line = key.start_mark.line  # 0-based
        above = lines[line - 1] if 0 < line <= len(lines) else ""
        if isinstance(key, yaml.ScalarNode) and above.startswith("# "):
            out[str(key.value)] = above[2:].strip()
    return out
