"""Writing pipeline versions: immutable folders, created atomically, one at a time.

A version is rendered in memory, written into a hidden temporary folder beside the versions and
then renamed to ``vN`` in one step, so readers never see a half-written version. A lock on the
pipeline folder serialises exporters of the same pipeline; the rename refuses to replace an
existing folder, so even without the lock two exporters cannot overwrite each other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .codegen import MANIFEST, VersionInfo, content_sha256, render_version, seal_holds
from .errors import Nb2prodError, PlanError
from .grammar import is_safe_name, make_safe_name
from .imports import first_party_modules
from .plan import Plan, default_pipeline_name, inspect_notebook

VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
READ_ONLY = 0o444  # a reminder to editors; root ignores it, so the recorded hashes are the guard


@dataclass(frozen=True)
class ExportResult:
    name: str
    version: int
    path: Path  # the version folder
    created: bool  # False when the notebook was unchanged and nothing was written
    plan: Plan = field(repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "created": self.created,
            "warnings": [p.render(str(self.plan.notebook.path)) for p in self.plan.problems],
        }


@dataclass(frozen=True)
class CheckResult:
    name: str
    latest: int | None
    up_to_date: bool
    changed_files: tuple[str, ...]
    path: Path | None
    # The latest version's own files that differ from what nb2prod wrote (edited by hand).
    edited: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Edit:
    """A file of a version that is not what nb2prod wrote."""

    path: str  # relative to the version folder, POSIX
    what: str  # "differs", "is missing", "was added", "is a link"

    def __str__(self) -> str:
        suffix = " from what nb2prod wrote" if self.what == "differs" else ""
        return f"{self.path} {self.what}{suffix}"


def check_name(name: str) -> str:
    if not is_safe_name(name):
        raise Nb2prodError(
            f"pipeline name `{name}` is not allowed: use lower-case letters, digits and "
            f"underscores, starting with a letter. Fix: use --name {make_safe_name(name)}"
        )
    return name


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


def read_version_yaml(version_dir: Path, name: str = MANIFEST) -> dict[str, Any]:
    """A YAML mapping from a version folder (``pipeline.yaml`` or ``config.yaml``)."""
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
    return read_version_yaml(version_dir, MANIFEST)


def _tool_litter(rel: Path) -> bool:
    """Files that editors and Python leave in a version folder (JupyterLab writes
    ``.ipynb_checkpoints/`` when a user opens README.md there); never part of a version."""
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def read_files(version_dir: Path) -> dict[str, bytes]:
    return {
        rel.as_posix(): p.read_bytes()
        for p in sorted(version_dir.rglob("*"))
        if p.is_file() and not _tool_litter(rel := p.relative_to(version_dir))
    }


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


def _created_at() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds: pin the timestamp
    stamp = (
        datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    )
    return stamp.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _notebook_path(notebook: Path, out: Path) -> str:
    root = out.resolve().parent
    return Path(os.path.relpath(notebook.resolve(), root)).as_posix()


def _version_dir_label(out: Path, name: str, version: int) -> str:
    root = out.resolve().parent
    return Path(os.path.relpath(out.resolve() / name / f"v{version}", root)).as_posix()


@contextlib.contextmanager
def _locked(pipeline_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the pipeline folder itself (no lock file to commit)."""
    pipeline_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on the atomic rename alone
        yield
        return
    fd = os.open(pipeline_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(target, READ_ONLY)


def _remove_stale_temps(pipeline_dir: Path) -> None:
    # Only the lock holder writes temporaries, so any left over belong to a crashed export.
    for entry in pipeline_dir.glob(".tmp-*"):
        shutil.rmtree(entry, ignore_errors=True)


def _info(plan: Plan, out: Path, name: str, version: int, created_at: str) -> VersionInfo:
    return VersionInfo(
        version=version,
        created_at=created_at,
        notebook_path=_notebook_path(plan.notebook.path, out),
        version_dir=_version_dir_label(out, name, version),
        first_party=first_party_modules(out.resolve().parent),
    )


def _compare(
    plan: Plan, out: Path, name: str, latest: int, manifest: dict[str, Any]
) -> tuple[str, ...]:
    """Files that differ between the latest version and a fresh render of the notebook."""
    vdir = out / name / f"v{latest}"
    created_at = str(manifest.get("created_at", ""))
    fresh = render_version(plan, _info(plan, out, name, latest, created_at))
    on_disk = read_files(vdir)
    return tuple(sorted(p for p in set(fresh) | set(on_disk) if fresh.get(p) != on_disk.get(p)))


def _guard_source(plan: Plan, out: Path, name: str, manifest: dict[str, Any]) -> None:
    """Refuse to add a version to a pipeline exported from a different notebook."""
    source = manifest.get("source")
    previous = source.get("notebook") if isinstance(source, dict) else None
    mine = _notebook_path(plan.notebook.path, out)
    if previous and previous != mine and (out.resolve().parent / str(previous)).exists():
        raise Nb2prodError(
            f"{plan.notebook.path}: pipeline `{name}` in {out} was exported from another "
            f"notebook, {previous}. Fix: pass --name with a different pipeline name."
        )


def export_plan(plan: Plan, out: str | Path = "pipelines") -> ExportResult:
    out = Path(out)
    name = check_name(plan.name)
    if plan.errors:
        raise PlanError.from_problems(str(plan.notebook.path), plan.problems)
    pipeline_dir = out / name
    created = [p for p in (out, pipeline_dir) if not p.exists()]
    try:
        return _export_locked(plan, out, name, pipeline_dir)
    except Nb2prodError:
        for folder in reversed(created):  # a refused export leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _export_locked(plan: Plan, out: Path, name: str, pipeline_dir: Path) -> ExportResult:
    with _locked(pipeline_dir):
        _remove_stale_temps(pipeline_dir)
        existing = versions(pipeline_dir)
        if existing:
            latest = existing[-1]
            manifest = read_manifest(pipeline_dir / f"v{latest}")
            _guard_source(plan, out, name, manifest)
            if not _compare(plan, out, name, latest, manifest):
                return ExportResult(name, latest, pipeline_dir / f"v{latest}", False, plan)
        version = (existing[-1] if existing else 0) + 1
        while True:
            files = render_version(plan, _info(plan, out, name, version, _created_at()))
            temp = pipeline_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                _write_tree(temp, files)
                target = pipeline_dir / f"v{version}"
                if target.exists():  # written by an exporter that did not take the lock
                    raise FileExistsError(errno.EEXIST, "exists", str(target))
                os.rename(temp, target)
            except OSError as exc:
                shutil.rmtree(temp, ignore_errors=True)
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    version += 1
                    time.sleep(0.01)
                    continue
                raise Nb2prodError(
                    f"{pipeline_dir}: cannot write the new version ({exc.strerror}). Fix: check "
                    "the folder's permissions and free space; earlier versions are untouched."
                ) from None
            _fsync_dir(pipeline_dir)
            return ExportResult(name, version, target, True, plan)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def export_notebook(
    path: str | Path, name: str | None = None, out: str | Path = "pipelines"
) -> ExportResult:
    """Export ``path`` to ``out/<name>/vN``; an unchanged notebook creates no new version."""
    if name is not None:
        check_name(name)
    return export_plan(inspect_notebook(path, name), out)


def find_pipeline_name(notebook: Path, out: Path) -> str:
    """The pipeline exported from ``notebook`` under ``out``, else its default name."""
    mine = _notebook_path(notebook, out)
    if out.is_dir():
        for pipeline_dir in sorted(p for p in out.iterdir() if p.is_dir()):
            found = versions(pipeline_dir)
            if not found:
                continue
            with contextlib.suppress(Nb2prodError):
                source = read_manifest(pipeline_dir / f"v{found[-1]}").get("source")
                if isinstance(source, dict) and source.get("notebook") == mine:
                    return pipeline_dir.name
    return default_pipeline_name(notebook)


def check_notebook(
    path: str | Path, out: str | Path = "pipelines", name: str | None = None
) -> CheckResult:
    """Compare ``path`` with its latest exported version, writing nothing."""
    out = Path(out)
    path = Path(path)
    name = check_name(name) if name else find_pipeline_name(path, out)
    plan = inspect_notebook(path, name)
    if plan.errors:
        raise PlanError.from_problems(str(path), plan.problems)
    existing = versions(out / name)
    if not existing:
        return CheckResult(name, None, False, (), None)
    latest = existing[-1]
    vdir = out / name / f"v{latest}"
    manifest = read_manifest(vdir)
    edited = edits(vdir, manifest) or ()
    changed = _compare(plan, out, name, latest, manifest)
    return CheckResult(name, latest, not changed and not edited, changed, vdir, edited)


__all__ = [
    "CheckResult",
    "Edit",
    "ExportResult",
    "check_notebook",
    "edited_message",
    "edits",
    "export_notebook",
    "export_plan",
    "make_safe_name",
    "versions",
]
