"""Retention: which old run folders ``nb2prod gc`` removes, and removing them.

The rules, in order, per pipeline (runs sorted newest first by id, which starts with the start
time):

1. The newest ``keep`` runs stay. Of the others, with ``older_than_days``, only runs that
   started more than that many days ago may go: a run goes only when both rules allow it
   (``keep=0`` leaves the age alone to decide).
2. A run that still works never goes: its record says queued or running, or its process is
   still alive (it may be logging to MLflow after its steps), as :mod:`nb2prod.run_index`
   believes it.
3. The cache index points at the run that computed each result. A later run that reused it
   has hard links to the same files and a ``cached`` step record whose ``cached_from`` names
   that run, which the cache's lookup accepts as well. So before a run the index points at goes,
   the entry is re-pointed at the newest kept run holding the same result; only when no kept run
   holds it is the run the *only copy*: it stays, unless ``include_cached``, which removes it
   and drops the entry, so no entry ever names a removed run.

Bytes freed count a file once its last hard link goes (``st_nlink`` against the links among the
removed runs), so removing a run whose files a kept run shares frees nothing of them. Every path
comes from :mod:`nb2prod.run_folder`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run_folder import (
    cache_dir,
    cache_entries,
    job_files,
    job_path,
    record_path,
    run_dir,
    write_record,
)
from ..run_index import ACTIVE, list_runs, pipeline_name, started_epoch

DEFAULT_KEEP = 20
KEEP_ENV = "NB2PROD_KEEP_RUNS"  # `nb2prod run` applies `gc --keep N` to its pipeline when set
_SUCCESS = ("succeeded", "cached")  # step states the cache's lookup accepts
_ALL = 1 << 62  # "no limit" for list_runs


@dataclass(frozen=True)
class CacheChange:
    """One cache index entry whose run goes: re-pointed at ``to``, or dropped (``to`` None)."""

    entry: Path
    step: str
    run_id: str
    to: str | None


@dataclass
class GcPlan:
    """What :func:`apply` will do, computed without changing anything (``--dry-run`` prints it)."""

    home: Path
    pipeline: str | None
    known: bool  # the pipeline has runs or a cache index here (always True without a pipeline)
    pipelines: list[str]  # pipelines with runs here, for a message naming the choices
    remove: list[dict[str, Any]] = field(default_factory=list)  # believed records, newest first
    kept_active: list[str] = field(default_factory=list)
    kept_cached: dict[str, list[str]] = field(default_factory=dict)  # run id -> its steps
    cache: list[CacheChange] = field(default_factory=list)
    freed_bytes: int = 0
    total: int = 0  # runs looked at

    @property
    def remove_ids(self) -> list[str]:
        return [str(r["id"]) for r in self.remove]


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line each: what could not be removed


def human_size(n: int) -> str:
    """``512 B``, ``1.2 kB``, ``12.3 MB`` (decimal units, like ``ls --si`` and file managers)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _started(home: Path, record: dict[str, Any]) -> float | None:
    """When the run started; its record's mtime if the record does not say, else None."""
    at = started_epoch(record)
    if at is not None:
        return at
    for path in (record_path(run_dir(home, record["id"])), job_path(home, record["id"])):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None


def _step(record: dict[str, Any], step: str) -> dict[str, Any] | None:
    found = (record.get("steps") or {}).get(step)
    return found if isinstance(found, dict) else None


def _same_result(keeper: dict[str, Any], gone: dict[str, Any], step: str) -> bool:
    """Whether ``keeper`` holds the result of ``step`` the index found in run ``gone``: a
    successful step record with the same origin run and the same output hashes."""
    a, b = _step(keeper, step), _step(gone, step)
    if a is None or b is None or a.get("state") not in _SUCCESS:
        return False
    origin_a = a.get("cached_from") or keeper["id"]
    origin_b = b.get("cached_from") or gone["id"]
    return bool(origin_a == origin_b and a.get("outputs") == b.get("outputs"))


def _entries(home: Path, pipeline: str) -> list[tuple[Path, str, str]]:
    """(entry, step, run id) of every readable cache index entry of ``pipeline``."""
    out = []
    for path in cache_entries(cache_dir(home, pipeline)):
        try:
            data = json.loads(path.read_text("utf-8"))
            out.append((path, path.parent.name, str(data["run"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: the lookup treats it as a miss; nothing to protect
    return out


def plan(
    home: Path,
    pipeline: str | None = None,
    *,
    keep: int = DEFAULT_KEEP,
    older_than_days: float | None = None,
    include_cached: bool = False,
    now: float | None = None,
) -> GcPlan:
    """Which runs of ``pipeline`` (a name or folder, as ``nb2prod runs`` takes it; None: every
    pipeline) go under the rules of this module, and what happens to the cache index."""
    now = time.time() if now is None else now
    name = pipeline_name(pipeline) if pipeline else None
    records = list_runs(home, None, _ALL)  # newest first; runs of every pipeline
    pipelines = sorted({str(r["pipeline"]) for r in records if r.get("pipeline")})
    if name is not None:
        records = [r for r in records if r.get("pipeline") == name]
    # "..", say, is no pipeline, and its "cache folder" would be another folder of home
    named = name not in ("", ".", "..")
    known = name is None or bool(records) or (named and cache_dir(home, str(name)).is_dir())
    out = GcPlan(home, name, known, pipelines, total=len(records))

    by_pipeline: dict[str | None, list[dict[str, Any]]] = {}
    for r in records:
        by_pipeline.setdefault(r.get("pipeline"), []).append(r)
    for pipe, runs in by_pipeline.items():
        candidates = []
        for r in runs[keep:]:
            if older_than_days is not None:
                started = _started(home, r)
                if started is None or now - started <= older_than_days * 86400:
                    continue  # unknown age is never "old enough"
            if r.get("active") or r.get("status") in ACTIVE:
                out.kept_active.append(r["id"])
                continue
            candidates.append(r)
        if pipe is not None:
            _settle_cache(home, pipe, runs, candidates, include_cached, out)
        out.remove += candidates
    out.remove.sort(key=lambda r: str(r["id"]), reverse=True)
    out.freed_bytes = freed_bytes(home, out.remove_ids)
    return out


def _settle_cache(
    home: Path,
    pipeline: str,
    runs: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    include_cached: bool,
    out: GcPlan,
) -> None:
    """Decide every cache entry naming a candidate: re-point it, drop it, or keep the run.

    Keeping a run can give another entry a copy to be re-pointed at, so this repeats until
    nothing changes; then it plans the entries' changes. ``candidates`` is edited in place.
    """
    entries = _entries(home, pipeline)
    by_id = {r["id"]: r for r in runs}
    gone = {r["id"] for r in candidates}

    def copy_of(run_id: str, step: str) -> str | None:
        for r in runs:  # newest first: the copy most likely to be kept longest
            if r["id"] not in gone and r["id"] != run_id and _same_result(r, by_id[run_id], step):
                return str(r["id"])
        return None

    changed = not include_cached
    while changed:
        changed = False
        for _, step, run_id in entries:
            if run_id in gone and copy_of(run_id, step) is None:
                gone.discard(run_id)
                out.kept_cached[run_id] = []
                changed = True
    for entry, step, run_id in entries:
        if run_id in gone:
            out.cache.append(CacheChange(entry, step, run_id, copy_of(run_id, step)))
        elif run_id in out.kept_cached and copy_of(run_id, step) is None:
            if step not in out.kept_cached[run_id]:
                out.kept_cached[run_id].append(step)
    candidates[:] = [r for r in candidates if r["id"] in gone]


def freed_bytes(home: Path, run_ids: list[str]) -> int:
    """Bytes removing these runs (folders and job files) gives back: a file counts once, and
    only when every one of its hard links is among them."""
    links: dict[tuple[int, int], list[int]] = {}  # (device, inode) -> [links seen, nlink, size]
    for run_id in run_ids:
        paths: list[str] = [os.fspath(p) for p in job_files(home, run_id)]
        for root, _dirs, files in os.walk(run_dir(home, run_id)):
            paths += [os.path.join(root, f) for f in files]
        for path in paths:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            seen = links.setdefault((st.st_dev, st.st_ino), [0, st.st_nlink, st.st_size])
            seen[0] += 1
    return sum(size for seen, nlink, size in links.values() if seen >= nlink)


def _writable_tree(folder: Path) -> None:
    """Make ``folder`` and its subfolders writable by us, so their entries can be unlinked.
    Files themselves may stay read-only: unlinking needs only a writable folder."""
    for root, dirs, _files in os.walk(folder):
        for d in [root, *(os.path.join(root, d) for d in dirs)]:
            st = os.lstat(d)
            if stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700) != 0o700:
                os.chmod(d, st.st_mode | 0o700)  # never a symlink: lstat said folder


def _remove_run(home: Path, run_id: str) -> None:
    folder = run_dir(home, run_id)
    if folder.is_dir() and not folder.is_symlink():
        try:
            shutil.rmtree(folder)
        except OSError:
            _writable_tree(folder)  # read-only subfolders: open them up and try again
            shutil.rmtree(folder)
    elif folder.is_symlink():
        folder.unlink()
    for path in job_files(home, run_id):
        path.unlink(missing_ok=True)


def apply(gc: GcPlan) -> GcResult:
    """Carry out ``gc``: the cache index first (so no entry ever names a removed run), then the
    run folders and job files. A run that cannot be removed is reported, the others go on."""
    result = GcResult()
    keep_ids: set[str] = set()
    for change in gc.cache:
        try:
            if change.to is None:
                change.entry.unlink(missing_ok=True)
            else:
                data = json.loads(change.entry.read_text("utf-8"))
                if data.get("run") == change.run_id:  # not re-stored by a run meanwhile
                    data["run"] = change.to
                    write_record(change.entry, json.dumps(data))
        except (OSError, ValueError) as exc:
            keep_ids.add(change.run_id)  # the entry still names it: the run must stay
            result.errors.append(f"{change.run_id}: kept, its cache entry {change.entry}: {exc}")
    for r in gc.remove:
        if r["id"] in keep_ids:
            continue
        try:
            _remove_run(gc.home, r["id"])
            result.removed.append(r["id"])
        except OSError as exc:
            result.errors.append(
                f"{r['id']}: could not be removed ({exc}). Fix: check the permissions of "
                f"{run_dir(gc.home, r['id'])} and run nb2prod gc again"
            )
    return result


def report(gc: GcPlan, result: GcResult | None = None) -> list[str]:
    """The lines ``nb2prod gc`` prints: ``result`` None for ``--dry-run`` (would remove)."""
    dry = result is None
    done = set(gc.remove_ids) if result is None else set(result.removed)
    lines = []
    for r in gc.remove:
        if r["id"] in done:
            verb = "would remove" if dry else "removed"
            lines.append(
                f"{verb} {r['id']}  {r.get('pipeline')} v{r.get('version')}  {r.get('status')}"
            )
    lines += [f"kept {run_id}: still running" for run_id in gc.kept_active]
    for run_id, steps in gc.kept_cached.items():
        names = ", ".join(steps)
        lines.append(
            f"kept {run_id}: the only copy of the cached result of step {names} "
            "(--include-cached removes it)"
        )
    for c in gc.cache:
        if c.run_id not in done:
            continue
        if c.to is None:
            lines.append(f"cache: step {c.step} forgets the result of run {c.run_id}")
        else:
            lines.append(f"cache: step {c.step} now reuses run {c.to} (was {c.run_id})")
    of = f"runs of {gc.pipeline}" if gc.pipeline else "runs"
    if not done:
        lines.append(f"nothing to remove ({gc.total} {of}).")
    else:
        freed = gc.freed_bytes if dry or len(done) == len(gc.remove) else None
        size = "" if freed is None else f"{human_size(freed)} ({freed} bytes) "
        verb = "would free" if dry else "freed"
        lines.append(f"{verb} {size}by removing {len(done)} of {gc.total} {of}.")
    if result is not None:
        lines += [f"could not remove {e}" for e in result.errors]
    return lines
