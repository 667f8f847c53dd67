"""Listing and comparing the versions of an exported pipeline."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..version_folder import (
    CONFIG,
    MANIFEST,
    edits,
    is_version_dir,
    read_files,
    read_manifest,
    version_path,
    versions,
)


@dataclass(frozen=True)
class VersionSummary:
    version: int
    created_at: str
    notebook: str
    notebook_sha256: str
    nb2prod_version: str
    steps: list[str]
    parameters: list[str]
    # Files that are not what nb2prod wrote; None for a version exported before nb2prod
    # recorded hashes (it cannot be checked).
    edited: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_pipeline(path: Path, usage: str = "nb2prod versions {}") -> Path:
    """``pipelines/<name>``; a version folder or a bare name found under ./pipelines also work
    (the same resolver as ``nb2prod run``'s, :func:`nb2prod.pipeline.locate`)."""
    from ..pipeline import locate

    path = locate(path, usage)
    if is_version_dir(path):
        path = path.parent
    if not versions(path):
        raise Nb2prodError(
            f"{path}: no exported pipeline versions here. Fix: pass the pipeline's folder, e.g. "
            "pipelines/<name>, after running nb2prod export."
        )
    return path


def list_versions(pipeline: Path) -> list[VersionSummary]:
    out = []
    for v in versions(pipeline):
        m = read_manifest(version_path(pipeline, v))
        source = m.get("source") if isinstance(m.get("source"), dict) else {}
        assert isinstance(source, dict)
        steps = m.get("steps") if isinstance(m.get("steps"), list) else []
        params = m.get("parameters") if isinstance(m.get("parameters"), list) else []
        assert isinstance(steps, list) and isinstance(params, list)
        found = edits(version_path(pipeline, v), m)
        out.append(
            VersionSummary(
                version=v,
                created_at=str(m.get("created_at", "")),
                notebook=str(source.get("notebook", "")),
                notebook_sha256=str(source.get("sha256", "")),
                nb2prod_version=str(m.get("nb2prod_version", "")),
                steps=[str(s.get("name")) for s in steps if isinstance(s, dict)],
                parameters=[str(p) for p in params],
                edited=None if found is None else [str(e) for e in found],
            )
        )
    return out


def _version_number(text: str, available: list[int], pipeline: Path) -> int:
    raw = text[1:] if text.lower().startswith("v") else text
    if not raw.isdigit() or int(raw) not in available:
        shown = ", ".join(f"v{v}" for v in available)
        raise Nb2prodError(f"{pipeline}: there is no version `{text}`. Fix: use one of {shown}.")
    return int(raw)


def _yaml_values(text: bytes) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(text.decode("utf-8")) if text else None
    return data if isinstance(data, dict) else {}


def _step_names(manifest: dict[str, Any]) -> list[str]:
    steps = manifest.get("steps")
    if not isinstance(steps, list):
        return []
    return [str(s.get("name")) for s in steps if isinstance(s, dict)]


def _shown_lines(path: str, data: bytes) -> list[str]:
    """A file's lines for the diff. pipeline.yaml's hashes (``files:`` and its last line) are
    left out: they change with every file, whose own diff follows."""
    lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    if path == MANIFEST and "files:\n" in lines:
        lines = lines[: lines.index("files:\n")]
    return lines


def diff_versions(pipeline: Path, a: str, b: str) -> str:
    available = versions(pipeline)
    va, vb = _version_number(a, available, pipeline), _version_number(b, available, pipeline)
    files_a = read_files(version_path(pipeline, va))
    files_b = read_files(version_path(pipeline, vb))
    lines: list[str] = [f"{pipeline.name}: v{va} -> v{vb}\n"]
    steps_a = _step_names(_yaml_values(files_a.get(MANIFEST, b"")))
    steps_b = _step_names(_yaml_values(files_b.get(MANIFEST, b"")))
    for s in steps_b:
        if s not in steps_a:
            lines.append(f"  + step {s}\n")
    for s in steps_a:
        if s not in steps_b:
            lines.append(f"  - step {s}\n")
    conf_a = _yaml_values(files_a.get(CONFIG, b""))
    conf_b = _yaml_values(files_b.get(CONFIG, b""))
    for key in dict.fromkeys([*conf_a, *conf_b]):
        if key not in conf_b:
            lines.append(f"  - parameter {key} (was {conf_a[key]!r})\n")
        elif key not in conf_a:
            lines.append(f"  + parameter {key} = {conf_b[key]!r}\n")
        elif conf_a[key] != conf_b[key] or type(conf_a[key]) is not type(conf_b[key]):
            lines.append(f"  ~ parameter {key}: {conf_a[key]!r} -> {conf_b[key]!r}\n")
    changed = [p for p in sorted(set(files_a) | set(files_b)) if files_a.get(p) != files_b.get(p)]
    if len(lines) == 1 and not changed:
        lines.append("  (identical)\n")
    for path in changed:
        old = _shown_lines(path, files_a.get(path, b""))
        new = _shown_lines(path, files_b.get(path, b""))
        lines.append("\n")
        lines.extend(
            difflib.unified_diff(old, new, fromfile=f"v{va}/{path}", tofile=f"v{vb}/{path}", n=2)
        )
    text = "".join(lines)
    return text if text.endswith("\n") else text + "\n"
