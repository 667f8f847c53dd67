"""Which steps' code changed between the versions of compared runs.

Runs of one version ran the same code. Across versions, ``pipeline.yaml``'s SHA-256 of each
``steps/<step>.py`` answers first; as each module's generated header names its version, equal
code in two versions still has different hashes, so those modules are compared without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..version_folder import MANIFEST, PIPELINES, read_manifest, step_module, version_path

SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"
ABSENT, UNKNOWN = "absent", "unknown"  # in neither version; a version folder is not found


@dataclass(frozen=True)
class CodeRow:
    step: str
    # Per run against the first run's version: same, changed, added, removed, absent (from
    # both), unknown (a version folder is missing); the first run's own is same or absent.
    changes: list[str]


def version_dir(record: dict[str, Any], home: Path) -> Path | None:
    """The version folder a run ran, found from where the run started or the project folder."""
    recorded = record.get("version_dir")
    candidates = []
    if isinstance(recorded, str) and recorded:
        path = Path(recorded)
        candidates += [path] if path.is_absolute() else [path, home.parent / path]
    name, version = record.get("pipeline"), record.get("version")
    if isinstance(name, str) and name and isinstance(version, int):
        candidates.append(version_path(PIPELINES / name, version))
    return next((c for c in candidates if (c / MANIFEST).is_file()), None)


def _manifest(folder: Path | None) -> dict[str, Any] | None:
    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except Nb2prodError:
        return None


def _step_names(manifest: dict[str, Any] | None, record: dict[str, Any]) -> list[str]:
    steps = (manifest or {}).get("steps")
    if isinstance(steps, list):
        return [str(s.get("name")) for s in steps if isinstance(s, dict)]
    return [str(s) for s in record.get("steps") or {}]


def code_digest(text: str) -> str:
    """SHA-256 of a step module's code alone. Each module's header names its version (and its
    cell markers their notebook positions), so the file's own hash differs between any two
    versions; this leaves out the jupytext header, markdown cells and cell markers."""
    kept: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0] == "# ---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line == "# ---"), 0)
        lines = lines[end + 1 :]
    markdown = False
    for line in lines:
        if line.startswith("# %%"):
            markdown = "[markdown]" in line
            kept.append("# %%")
        elif not markdown:
            kept.append(line)
    return hashlib.sha256("\n".join(kept).strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VersionCode:
    folder: Path | None
    manifest: dict[str, Any] | None
    steps: list[str]
    key: tuple[str, int | None]  # (pipeline, version): equal keys ran the same code

    def file_sha(self, step: str) -> str | None:
        files = (self.manifest or {}).get("files")
        sha = files.get(step_module(step)) if isinstance(files, dict) else None
        return sha if isinstance(sha, str) else None

    def code(self, step: str) -> str | None:
        if self.folder is None:
            return None
        try:
            return code_digest((self.folder / step_module(step)).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None


def read_version(record: dict[str, Any], home: Path) -> VersionCode:
    folder = version_dir(record, home)
    manifest = _manifest(folder)
    version = record.get("version")
    key = (str(record.get("pipeline")), version if isinstance(version, int) else None)
    return VersionCode(folder, manifest, _step_names(manifest, record), key)


def _change(base: VersionCode, other: VersionCode, step: str) -> str:
    if step not in other.steps and step not in base.steps:
        return ABSENT
    if step not in other.steps:
        return REMOVED
    if step not in base.steps:
        return ADDED
    if base.key == other.key and base.key[1] is not None:
        return SAME
    sha_a, sha_b = base.file_sha(step), other.file_sha(step)
    if sha_a is not None and sha_a == sha_b:
        return SAME
    code_a, code_b = base.code(step), other.code(step)
    if code_a is None or code_b is None:
        return UNKNOWN
    return SAME if code_a == code_b else CHANGED


def code_rows(versions: Sequence[VersionCode]) -> list[CodeRow]:
    steps = list(dict.fromkeys(s for v in versions for s in v.steps))
    base = versions[0]
    return [
        CodeRow(
            s, [SAME if s in base.steps else ABSENT] + [_change(base, v, s) for v in versions[1:]]
        )
        for s in steps
    ]
