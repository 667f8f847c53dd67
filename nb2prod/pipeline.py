"""Reading an exported pipeline version back: manifest, steps and default parameters.

Nothing in a version folder is trusted before it is checked. :func:`load_pipeline`, which every
way of running a pipeline goes through (``nb2prod run``, the REST API, the widgets), refuses a
version edited by hand (its files no longer match the SHA-256 that ``pipeline.yaml`` records)
and a manifest whose fields would make the runner read or write outside its folders.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codegen import MANIFEST, SCHEMA_VERSION
from .errors import Nb2prodError
from .export import (
    VERSION_DIR,
    edited_message,
    edits,
    read_manifest,
    read_version_yaml,
    versions,
)
from .grammar import is_safe_name, load_grammar

PIPELINES = Path("pipelines")  # where a bare pipeline name is looked for (the default --out)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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

    @property
    def cache(self) -> bool:
        """False when the step was tagged ``cache:disabled``: it is never reused from the cache."""
        return self.engine.get("cache") != "disabled"


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    version: int
    path: Path  # the version folder
    notebook: str
    notebook_sha256: str
    steps: tuple[StepSpec, ...]  # in run order
    defaults: dict[str, Any] = field(default_factory=dict)
    # False for a version exported before nb2prod recorded file hashes: it could not be checked.
    verified: bool = True

    def step(self, name: str) -> StepSpec:
        return next(s for s in self.steps if s.name == name)

    def downstream(self, names: set[str]) -> set[str]:
        """``names`` and every step that depends on them, directly or not."""
        out = set(names)
        for s in self.steps:
            if set(s.depends_on) & out:
                out.add(s.name)
        return out

    def upstream(self, names: set[str]) -> set[str]:
        out = set(names)
        for s in reversed(self.steps):
            if s.name in out:
                out.update(s.depends_on)
        return out


# --- what the user passed for PIPELINE ----------------------------------------------------------
def _exported_as(notebook: Path) -> str | None:
    """The pipeline under ./pipelines exported from ``notebook``, if there is one."""
    from .export import find_pipeline_name

    name = find_pipeline_name(notebook, PIPELINES)
    found = versions(PIPELINES / name)
    if not found:
        return None
    source = read_manifest(PIPELINES / name / f"v{found[-1]}").get("source")
    mine = os.path.relpath(os.path.abspath(notebook), os.path.abspath(PIPELINES.parent))
    same = isinstance(source, dict) and source.get("notebook") == Path(mine).as_posix()
    return name if same else None


def _version_of_file(path: Path) -> Path | None:
    """The version folder a file (a step module, pipeline.yaml...) belongs to."""
    for folder in list(path.parents)[:3]:
        if VERSION_DIR.match(folder.name) and (folder / MANIFEST).is_file():
            return folder
    return None


def locate(path: Path, usage: str = "nb2prod run {}") -> Path:
    """The pipeline or version folder that ``path`` names, as typed after a command.

    ``pipelines/NAME`` and ``pipelines/NAME/vN`` as they are; a bare ``NAME`` (or ``NAME/vN``)
    is looked up under ./pipelines. A notebook, or a file inside a version, is refused with the
    command to type instead (``usage`` with ``{}`` for the pipeline).
    """
    for candidate in [path] if path.is_absolute() else [path, PIPELINES / path]:
        if candidate.is_dir() and (versions(candidate) or (candidate / MANIFEST).is_file()):
            return candidate
        if VERSION_DIR.match(candidate.name) and versions(candidate.parent):
            return candidate  # no such version: resolve_version names the ones there are
    if path.suffix.lower() == ".ipynb":
        name = _exported_as(path) if path.is_file() else None
        if name is not None:
            target = (PIPELINES / name).as_posix()
            raise Nb2prodError(
                f"{path} is a notebook; it was exported as {target}. "
                f"Fix: run `{usage.format(target)}`."
            )
        what = "is a notebook that has not been exported" if path.is_file() else "no such file"
        target = (PIPELINES / _default_name(path)).as_posix()
        raise Nb2prodError(
            f"{path}: {what}, so there is no exported pipeline to use. Fix: export it first: "
            f"`nb2prod export {path}`, then `{usage.format(target)}`."
        )
    version = _version_of_file(path) if path.is_file() else None
    if version is not None:
        raise Nb2prodError(
            f"{path} is a file of the exported version {version}. "
            f"Fix: run `{usage.format(version)}`."
        )
    # Pipelines under ./pipelines, for a path typed at the command line (not for the REST API,
    # whose paths are absolute: the server's working folder is none of the caller's business).
    listed = not path.is_absolute() and PIPELINES.is_dir()
    names = sorted(p.name for p in PIPELINES.glob("*") if versions(p)) if listed else []
    known = f" Pipelines here: {', '.join(names)}." if names else ""
    raise Nb2prodError(
        f"{path}: no exported pipeline here.{known} Fix: pass pipelines/<name> (or "
        f"pipelines/<name>/vN, or just <name>), after running `nb2prod export NOTEBOOK`."
    )


def _default_name(notebook: Path) -> str:
    from .plan import default_pipeline_name

    return default_pipeline_name(notebook)


def resolve_version(path: Path, usage: str = "nb2prod run {}") -> Path:
    """``pipelines/<name>`` (or ``<name>``) -> its latest ``vN``; ``.../vN`` as it is."""
    path = locate(path, usage)
    if VERSION_DIR.match(path.name) and (path / MANIFEST).is_file():
        return path
    if VERSION_DIR.match(path.name):
        there = ", ".join(f"v{v}" for v in versions(path.parent)) or "none"
        raise Nb2prodError(
            f"{path}: no such pipeline version (there are: {there}). Fix: pass one of them, or "
            f"{path.parent} for the latest; `nb2prod versions {path.parent}` lists them."
        )
    found = versions(path)
    if not found:
        raise Nb2prodError(
            f"{path}: no exported pipeline here. Fix: pass pipelines/<name> (or .../vN) after "
            "running `nb2prod export NOTEBOOK`."
        )
    return path / f"v{found[-1]}"


# --- checking a manifest field by field ----------------------------------------------------------
class _Manifest:
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


def _check_folder(m: _Manifest) -> tuple[str, int]:
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
    return name, version


def _check_source(m: _Manifest) -> tuple[str, str]:
    source = m.get("source", dict)
    notebook = m.get("source.notebook", str, source.get("notebook"))
    if not notebook or Path(notebook).is_absolute() or "\x00" in notebook:
        raise m.bad("source.notebook", f"is {_shown(notebook)}, not a relative path")
    sha = m.get("source.sha256", str, source.get("sha256"))
    if not _SHA256.match(sha):
        raise m.bad("source.sha256", f"is {_shown(sha)}, not a SHA-256")
    return notebook, sha


def _check_step(m: _Manifest, n: int, raw: Any, parameters: list[str]) -> StepSpec:
    at = f"steps[{n}]"
    s = m.get(at, dict, raw)
    name = m.get(f"{at}.name", str, s.get("name"))
    if not is_safe_name(name):
        raise m.bad(f"{at}.name", f"is {_shown(name)}, not a step name")
    at = f"steps.{name}"
    role = m.get(f"{at}.role", str, s.get("role"))
    if role not in load_grammar().step_roles:
        raise m.bad(f"{at}.role", f"is {_shown(role)}, not a step role")
    module = m.get(f"{at}.module", str, s.get("module"))
    expected = m.vdir.resolve() / "steps" / f"{name}.py"
    if module != f"steps/{name}.py" or (m.vdir / module).resolve() != expected:
        raise m.bad(f"{at}.module", f"is {_shown(module)}, not the step's module steps/{name}.py")
    if not expected.is_file():
        raise Nb2prodError(
            f"{m.vdir / module}: step module is missing. Fix: export again, or restore the "
            "folder from version control."
        )
    for i, cell in enumerate(m.get(f"{at}.cells", list, s.get("cells", []))):
        ref = m.get(f"{at}.cells[{i}]", dict, cell)
        index, cell_id = ref.get("index"), ref.get("id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise m.bad(f"{at}.cells[{i}].index", f"is {_shown(index)}")
        if cell_id is not None and not isinstance(cell_id, str):
            raise m.bad(f"{at}.cells[{i}].id", f"is {_shown(cell_id)}")
    inputs = []
    for i, item in enumerate(m.get(f"{at}.inputs", list, s.get("inputs", []))):
        entry = m.get(f"{at}.inputs[{i}]", dict, item)
        var = m.get(f"{at}.inputs[{i}].name", str, entry.get("name"))
        producer = m.get(f"{at}.inputs[{i}].from", str, entry.get("from"))
        if not _identifier(var):
            raise m.bad(f"{at}.inputs[{i}].name", f"is {_shown(var)}, not a variable name")
        inputs.append((var, producer))
    outputs = m.names(f"{at}.outputs", s.get("outputs"), _identifier, "a variable name")
    used = m.names(
        f"{at}.parameters", s.get("parameters"), lambda p: p in parameters, "a parameter"
    )
    m.names(f"{at}.metrics", s.get("metrics"), bool, "a metric name")
    depends_on = m.names(f"{at}.depends_on", s.get("depends_on"), is_safe_name, "a step name")
    for var, producer in inputs:
        if producer not in depends_on:
            raise m.bad(
                f"{at}.inputs", f"reads `{var}` from {_shown(producer)}, not a step it depends on"
            )
    engine = m.get(f"{at}.engine", dict, s.get("engine"), required=False) or {}
    if not all(isinstance(k, str) for k in engine):
        raise m.bad(f"{at}.engine", "has a key that is not a string")
    return StepSpec(
        name=name,
        role=role,
        module=m.vdir / module,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        parameters=tuple(used),
        depends_on=tuple(depends_on),
        engine=dict(engine),
    )


def _check_dag(m: _Manifest, steps: list[StepSpec]) -> tuple[StepSpec, ...]:
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


def _check_config(vdir: Path, parameters: list[str]) -> dict[str, Any]:
    defaults = read_version_yaml(vdir, "config.yaml")
    keys = list(defaults)
    if sorted(map(str, keys)) != sorted(parameters) or not all(isinstance(k, str) for k in keys):
        raise Nb2prodError(
            f"{vdir / 'config.yaml'}: its parameters ({', '.join(map(str, keys)) or 'none'}) are "
            f"not those pipeline.yaml lists ({', '.join(parameters) or 'none'}). Fix: export the "
            "notebook again, or restore the folder from version control."
        )
    return defaults


def load_pipeline(path: Path) -> PipelineSpec:
    """The version ``path`` names, checked: refused (exit 2) when it was edited by hand, or when
    a field of its manifest is not what nb2prod writes, before anything runs."""
    vdir = resolve_version(path)
    data: dict[str, Any] = read_manifest(vdir)
    found = edits(vdir, data)
    if found:
        source = data.get("source")
        notebook = source.get("notebook") if isinstance(source, dict) else None
        raise Nb2prodError(
            edited_message(vdir, found, notebook if isinstance(notebook, str) else "")
        )
    m = _Manifest(vdir, data)
    name, version = _check_folder(m)
    notebook, sha = _check_source(m)
    parameters = m.names("parameters", data.get("parameters"), _identifier, "a parameter name")
    raw_steps = m.get("steps", list)
    if not raw_steps:
        raise m.bad("steps", "is empty")
    steps = [_check_step(m, n, s, parameters) for n, s in enumerate(raw_steps)]
    return PipelineSpec(
        name=name,
        version=version,
        path=vdir,
        notebook=notebook,
        notebook_sha256=sha,
        steps=_check_dag(m, steps),
        defaults=_check_config(vdir, parameters),
        verified=found is not None,
    )
