"""Fingerprints of the data files steps read: the SHA-256 that joins each step's cache key.

A file's fingerprint is the SHA-256 of its content; a folder's, the SHA-256 of the sorted list
of its files' relative paths and fingerprints. Hashing a large file on every run would cost as
much as reading it, so each file's hash is remembered (``run_folder.fingerprints_path``) with
its size, modification time and inode, and read again only when one of them changed. Remote
sources (``s3://``, ``https://``...) are recorded by their URL and never hashed.

Everything here runs before the run exists: a missing or unreadable file stops the run with
exit 2, naming the step, the cell and the parameter that can point elsewhere, and loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from ..run_folder import fingerprints_path, write_record
from ..version_folder import REMOTE_PREFIXES, DataSpec
from .cache import file_sha256

RACY_NS = 2_000_000_000  # a hash taken within 2 s of the file's mtime is not trusted later
REMOTE = "remote"  # the fingerprint recorded for a remote source: its URL alone keys the cache


@dataclass(frozen=True)
class DataInput:
    """One data file a step reads in this run, resolved and fingerprinted."""

    shown: str  # as the user names it: the notebook's literal or the run's parameter value
    path: Path | None  # absolute; None for a remote source
    sha256: str  # or REMOTE


class FingerprintMemo:
    """Remembered hashes by absolute path, valid while size, mtime and inode stay the same."""

    def __init__(self, home: Path) -> None:
        self.path = fingerprints_path(home)
        self.lock = threading.Lock()
        try:
            data = json.loads(self.path.read_text("utf-8"))
            self.entries: dict[str, Any] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def file_sha256(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = str(path)
        with self.lock:
            known = self.entries.get(key)
            if (
                isinstance(known, dict)
                and known.get("stamp") == stamp
                and known.get("sha256")
                # A file changed again in the same clock tick as its hashing keeps its size
                # and mtime: trust only hashes taken well after the last change (as git does).
                and isinstance(known.get("at"), int)
                and known["at"] - st.st_mtime_ns > RACY_NS
            ):
                return str(known["sha256"])
        at = time.time_ns()
        digest = file_sha256(path)
        with self.lock:
            self.entries[key] = {"stamp": stamp, "sha256": digest, "at": at}
            self.changed = True
        return digest

    def fingerprint(self, path: Path) -> str:
        if not path.is_dir():
            return self.file_sha256(path)
        listing = [
            [p.relative_to(path).as_posix(), self.file_sha256(p)]
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
        return hashlib.sha256(json.dumps(listing).encode("utf-8")).hexdigest()

    def save(self) -> None:
        """Best effort: a memo that cannot be written only costs a re-read next time."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_record(self.path, json.dumps(self.entries))
        except OSError:
            pass


def data_inputs(
    spec: PipelineSpec, params: dict[str, Any], steps: Iterable[str], cwd: Path, home: Path
) -> dict[str, list[DataInput]]:
    """The data each of ``steps`` reads, fingerprinted. Raises Nb2prodError (exit 2) for a file
    that is missing or unreadable, before anything of the run exists."""
    memo = FingerprintMemo(home)
    wanted = set(steps)
    found: dict[str, list[DataInput]] = {}
    for step in spec.steps:
        if step.name not in wanted:
            continue
        found[step.name] = [_resolve(spec, step.name, d, params, cwd, memo) for d in step.data]
    memo.save()
    return found


def _resolve(
    spec: PipelineSpec,
    step: str,
    data: DataSpec,
    params: dict[str, Any],
    cwd: Path,
    memo: FingerprintMemo,
) -> DataInput:
    shown = data.path
    if data.parameter is not None:
        value = params.get(data.parameter)
        if not isinstance(value, str) or not value:
            # The run points the parameter at something that is not a path: nothing to read.
            return DataInput(repr(value), None, REMOTE)
        shown = value
    if shown.startswith(REMOTE_PREFIXES):
        return DataInput(shown, None, REMOTE)
    path = Path(shown) if Path(shown).is_absolute() else cwd / shown
    try:
        return DataInput(shown, path.resolve(), memo.fingerprint(path))
    except OSError as exc:
        problem = "does not exist" if not path.exists() else f"cannot be read ({exc.strerror})"
        where = f"cell {data.cell + 1} of {spec.notebook}"
        if data.parameter is not None:
            fix = (
                f"create it, or point parameter `{data.parameter}` elsewhere: "
                f"-p {data.parameter}=PATH"
            )
            via = f" (parameter `{data.parameter}`)"
        else:
            fix = "create it, or make the path a parameter so a run can point it elsewhere"
            via = ""
        raise Nb2prodError(
            f"step {step} of {spec.name} v{spec.version} reads {shown}{via} in {where}, "
            f"which {problem} (looked for {path}). Fix: {fix}."
        ) from None
