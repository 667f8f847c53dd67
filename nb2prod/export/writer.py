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
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError, PlanError
from ..grammar import is_safe_name, make_safe_name
from ..plan.planner import Plan, inspect_notebook

# Reading a version folder lives in version_folder (the runner must not import the exporter);
# these names stay importable from here for existing callers.
from ..version_folder import (
    PIPELINES,
    VERSION_DIR,
    Edit,
    EnvironmentSpec,
    default_pipeline_name,
    edited_message,
    edits,
    exported_from,
    read_environment,
    read_files,
    read_manifest,
    read_version_yaml,
    recorded_notebook,
    version_path,
    versions,
)
from .codegen import CAPTURE, VersionInfo, render_version
from .imports import first_party_modules

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


def check_name(name: str) -> str:
    if not is_safe_name(name):
        raise Nb2prodError(
            f"pipeline name `{name}` is not allowed: use lower-case letters, digits and "
            f"underscores, starting with a letter. Fix: use --name {make_safe_name(name)}"
        )
    return name


def _created_at() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds: pin the timestamp
    stamp = (
        datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    )
    return stamp.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _version_dir_label(out: Path, name: str, version: int) -> str:
    root = out.resolve().parent
    return Path(os.path.relpath(version_path(out.resolve() / name, version), root)).as_posix()


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


def _info(
    plan: Plan,
    out: Path,
    name: str,
    version: int,
    created_at: str,
    env: EnvironmentSpec | str | None = CAPTURE,
) -> VersionInfo:
    return VersionInfo(
        version=version,
        created_at=created_at,
        notebook_path=recorded_notebook(plan.notebook.path, out),
        version_dir=_version_dir_label(out, name, version),
        first_party=first_party_modules(out.resolve().parent),
        environment=env,
    )


def _compare(
    plan: Plan,
    out: Path,
    name: str,
    latest: int,
    manifest: dict[str, Any],
    pin_env: bool = False,
) -> tuple[str, ...]:
    """Files that differ between the latest version and a fresh render of the notebook. The
    render records the environment the version recorded (none for one exported before nb2prod
    did), so a changed environment alone makes no new version; ``pin_env`` compares with this
    interpreter's instead."""
    vdir = version_path(out / name, latest)
    created_at = str(manifest.get("created_at", ""))
    env = CAPTURE if pin_env else read_environment(vdir, manifest)
    fresh = render_version(plan, _info(plan, out, name, latest, created_at, env))
    on_disk = read_files(vdir)
    return tuple(sorted(p for p in set(fresh) | set(on_disk) if fresh.get(p) != on_disk.get(p)))


def _guard_source(plan: Plan, out: Path, name: str, manifest: dict[str, Any]) -> None:
    """Refuse to add a version to a pipeline exported from a different notebook."""
    source = manifest.get("source")
    previous = source.get("notebook") if isinstance(source, dict) else None
    mine = recorded_notebook(plan.notebook.path, out)
    if previous and previous != mine and (out.resolve().parent / str(previous)).exists():
        raise Nb2prodError(
            f"{plan.notebook.path}: pipeline `{name}` in {out} was exported from another "
            f"notebook, {previous}. Fix: pass --name with a different pipeline name."
        )


def export_plan(plan: Plan, out: str | Path = PIPELINES, pin_env: bool = False) -> ExportResult:
    out = Path(out)
    name = check_name(plan.name)
    if plan.errors:
        raise PlanError.from_problems(str(plan.notebook.path), plan.problems)
    pipeline_dir = out / name
    created = [p for p in (out, pipeline_dir) if not p.exists()]
    try:
        return _export_locked(plan, out, name, pipeline_dir, pin_env)
    except Nb2prodError:
        for folder in reversed(created):  # a refused export leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _export_locked(
    plan: Plan, out: Path, name: str, pipeline_dir: Path, pin_env: bool = False
) -> ExportResult:
    with _locked(pipeline_dir):
        _remove_stale_temps(pipeline_dir)
        existing = versions(pipeline_dir)
        if existing:
            latest = existing[-1]
            manifest = read_manifest(version_path(pipeline_dir, latest))
            _guard_source(plan, out, name, manifest)
            if not _compare(plan, out, name, latest, manifest, pin_env):
                return ExportResult(name, latest, version_path(pipeline_dir, latest), False, plan)
        version = (existing[-1] if existing else 0) + 1
        while True:
            files = render_version(plan, _info(plan, out, name, version, _created_at()))
            temp = pipeline_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                _write_tree(temp, files)
                target = version_path(pipeline_dir, version)
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
    path: str | Path,
    name: str | None = None,
    out: str | Path = PIPELINES,
    pin_env: bool = False,
) -> ExportResult:
    """Export ``path`` to ``out/<name>/vN``; an unchanged notebook creates no new version (nor
    does a changed environment alone, unless ``pin_env``)."""
    if name is not None:
        check_name(name)
    return export_plan(inspect_notebook(path, name), out, pin_env)


def find_pipeline_name(notebook: Path, out: Path) -> str:
    """The pipeline exported from ``notebook`` under ``out``, else its default name."""
    return exported_from(notebook, out) or default_pipeline_name(notebook)


def check_notebook(
    path: str | Path, out: str | Path = PIPELINES, name: str | None = None
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
    vdir = version_path(out / name, latest)
    manifest = read_manifest(vdir)
    edited = edits(vdir, manifest) or ()
    changed = _compare(plan, out, name, latest, manifest)
    return CheckResult(name, latest, not changed and not edited, changed, vdir, edited)


__all__ = [
    "VERSION_DIR",
    "CheckResult",
    "Edit",
    "ExportResult",
    "check_notebook",
    "edited_message",
    "edits",
    "export_notebook",
    "export_plan",
    "make_safe_name",
    "read_files",
    "read_manifest",
    "read_version_yaml",
    "versions",
]
