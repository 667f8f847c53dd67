"""What a UI shows of exported pipelines: their versions, steps and parameter forms.

Shared by the server extension (``GET /nb2prod/pipelines``) and the ipywidgets panel, so both
build their run forms from the same description of a version's ``config.yaml``. The server
imports :func:`inside` from here when it loads, so everything else is imported where used, but
:mod:`nb2prod.version_folder`, which parses nothing on import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import Nb2prodError
from .version_folder import (
    CONFIG,
    config_help,
    edits,
    read_manifest,
    read_version_yaml,
    version_path,
    versions,
)


def value_type(value: Any) -> str:
    """ "int", "float", "str", "bool", "null", "list" or "dict" (a hand-edited oddity: "str")."""
    from .plan.params import type_name

    try:
        return type_name(value)
    except KeyError:
        return "str"


def parameters(version_dir: Path) -> list[dict[str, Any]]:
    """``[{"name", "value", "type", "help"}]`` in the notebook's order, from config.yaml."""
    return _parameters(version_dir, read_manifest(version_dir))


def _parameters(version_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`parameters`, with the version's manifest already read."""
    config = read_version_yaml(version_dir, CONFIG)
    try:
        helps = config_help((version_dir / CONFIG).read_text("utf-8"))
    except OSError:
        helps = {}
    listed = manifest.get("parameters")
    order = [str(p) for p in listed] if isinstance(listed, list) else []
    order += [str(k) for k in config if str(k) not in order]
    return [
        {
            "name": name,
            "value": config.get(name),
            "type": value_type(config.get(name)),
            "help": helps.get(name, ""),
        }
        for name in order
        if name in config
    ]


def _posix(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def describe_version(version_dir: Path, root: Path) -> dict[str, Any]:
    """One version as the run form needs it; paths relative to ``root``. ``edited`` lists the
    files that are not what nb2prod wrote: such a version is refused when it is run."""
    version = int(version_dir.name[1:])
    try:
        manifest = read_manifest(version_dir)
        source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
        steps = manifest.get("steps") if isinstance(manifest.get("steps"), list) else []
        assert isinstance(source, dict) and isinstance(steps, list)
        return {
            "version": version,
            "path": _posix(version_dir, root),
            "created_at": str(manifest.get("created_at", "")),
            "notebook": str(source.get("notebook", "")),
            "steps": [
                {
                    "name": str(s.get("name")),
                    "role": str(s.get("role")),
                    "depends_on": [str(d) for d in s.get("depends_on") or []],
                }
                for s in steps
                if isinstance(s, dict)
            ],
            "parameters": _parameters(version_dir, manifest),
            "edited": [str(e) for e in edits(version_dir, manifest) or ()],
        }
    except Nb2prodError as exc:  # one damaged version must not hide the others
        return {"version": version, "path": _posix(version_dir, root), "error": exc.message}


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` (symbolic links followed) is ``root`` or lies below it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def describe_pipeline(pipeline_dir: Path, root: Path) -> dict[str, Any]:
    """A pipeline folder and its versions (those that link outside ``root`` are left out)."""
    found = [v for v in versions(pipeline_dir) if inside(version_path(pipeline_dir, v), root)]
    return {
        "name": pipeline_dir.name,
        "path": _posix(pipeline_dir, root),
        "latest": found[-1] if found else None,
        "versions": [describe_version(version_path(pipeline_dir, v), root) for v in found],
    }


def list_pipelines(out: Path, root: Path) -> list[dict[str, Any]]:
    """Every pipeline under ``out`` (e.g. ``<root>/pipelines``) with a version inside ``root``."""
    if not out.is_dir() or not inside(out, root):
        return []
    found = [
        describe_pipeline(d, root)
        for d in sorted(out.iterdir())
        if d.is_dir() and not d.name.startswith(".") and inside(d, root)
    ]
    return [p for p in found if p["versions"]]


__all__ = [
    "config_help",
    "describe_pipeline",
    "describe_version",
    "inside",
    "list_pipelines",
    "parameters",
]
