"""Reading an exported pipeline version back: manifest, steps and default parameters.

Nothing in a version folder is trusted before it is checked. :func:`load_pipeline`, which every
way of running a pipeline goes through (``nb2prod run``, the REST API, the widgets), refuses a
version edited by hand (its files no longer match the SHA-256 that ``pipeline.yaml`` records)
and a manifest whose fields would make the runner read or write outside its folders. The
checks and the folder's layout live in :mod:`nb2prod.version_folder`; this module resolves what
the user typed to a version and adds its default parameters. It never imports the exporter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Nb2prodError
from .version_folder import (
    MANIFEST,
    PIPELINES,
    VERSION_DIR,
    EnvironmentSpec,
    ServingSpec,
    StepSpec,
    default_pipeline_name,
    exported_from,
    is_version_dir,
    load_manifest,
    read_defaults,
    read_manifest,
    version_path,
    versions,
)


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
    environment: EnvironmentSpec | None = None  # None: exported before nb2prod recorded it
    gates: tuple[tuple[str, str], ...] = ()  # (expression, help) as pipeline.yaml lists them
    serving: ServingSpec | None = None  # the notebook's serving function, when it has one

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
    name = exported_from(notebook, PIPELINES) or default_pipeline_name(notebook)
    found = versions(PIPELINES / name)
    if not found:
        return None
    source = read_manifest(version_path(PIPELINES / name, found[-1])).get("source")
    mine = os.path.relpath(os.path.abspath(notebook), os.path.abspath(PIPELINES.parent))
    same = isinstance(source, dict) and source.get("notebook") == Path(mine).as_posix()
    return name if same else None


def _version_of_file(path: Path) -> Path | None:
    """The version folder a file (a step module, pipeline.yaml...) belongs to."""
    for folder in list(path.parents)[:3]:
        if is_version_dir(folder):
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
        target = (PIPELINES / default_pipeline_name(path)).as_posix()
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


def resolve_version(path: Path, usage: str = "nb2prod run {}") -> Path:
    """``pipelines/<name>`` (or ``<name>``) -> its latest ``vN``; ``.../vN`` as it is."""
    path = locate(path, usage)
    if is_version_dir(path):
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
    return version_path(path, found[-1])


def load_pipeline(path: Path) -> PipelineSpec:
    """The version ``path`` names, checked: refused (exit 2) when it was edited by hand, or when
    a field of its manifest is not what nb2prod writes, before anything runs."""
    vdir = resolve_version(path)
    manifest = load_manifest(vdir)
    return PipelineSpec(
        name=manifest.name,
        version=manifest.version,
        path=vdir,
        notebook=manifest.notebook,
        notebook_sha256=manifest.notebook_sha256,
        steps=manifest.steps,
        defaults=read_defaults(manifest),
        verified=manifest.verified,
        environment=manifest.environment,
        gates=manifest.gates,
        serving=manifest.serving,
    )


__all__ = [
    "PIPELINES",
    "PipelineSpec",
    "StepSpec",
    "load_pipeline",
    "locate",
    "resolve_version",
]
