"""Step cache: reuse a step's results when nothing it depends on has changed.

A step's key hashes its normalised code (comments and markdown do not count), the values of the
parameters it uses, the content hashes of its inputs and nb2prod's version. A successful run
records ``key -> (run id, step)`` together with those parts, so a later miss can say what
changed. A later run with the same key links that run's files in, but only after checking that
every output still has the SHA-256 recorded when it was written: cached files are shared by
hard links, and one edited or corrupted copy must never be served as a clean result.
"""

from __future__ import annotations

import hashlib
import io
import json
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..run_folder import (
    cache_dir,
    cache_entry,
    cache_step_dir,
    read_digest,
    record_path,
    run_dir,
    write_record,
)
from ..runtime import output_path


def normalized_code(text: str) -> str:
    """A step module's code (its text) without comments, blank lines or markdown.

    The module is jupytext's percent format, where markdown cells are comment lines, so
    dropping comments drops them too; magics (``# %matplotlib``, ``# !pip``) are kept.
    """
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("# %", "# !")) and not stripped.startswith("# %%"):
            lines.append(stripped)
    lines += _strip_comments(text)
    return "\n".join(lines)


def _strip_comments(source: str) -> list[str]:
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type != tokenize.COMMENT
        ]
        text = tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        text = source
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def output_hashes(run_dir: Path, step: str, names: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of each named output a step wrote (names it did not write are left out).

    The runtime hashes each output as it writes it and leaves the digest beside the file
    (``run_folder.write_digest``); it is taken when the file is still the one it was computed
    for, so each file is hashed once. Otherwise (older runtimes, a file changed since) the file
    is hashed here. Reusing a cached result always re-hashes (:meth:`StepCache.lookup`).
    """
    hashes = {}
    for name in names:
        path = output_path(run_dir, step, name)
        if path is not None:
            hashes[name] = read_digest(path) or file_sha256(path)
    return hashes


@dataclass(frozen=True)
class KeyParts:
    """What a step's cache key is made of, kept so that a miss can say what changed."""

    code: str
    params: dict[str, Any]
    inputs: dict[str, str]  # "producer/name" -> sha256
    data: dict[str, str] = field(default_factory=dict)  # data file as named -> sha256 (or URL)
    env: dict[str, str] = field(default_factory=dict)  # distribution -> installed version

    @property
    def key(self) -> str:
        what: dict[str, Any] = {
            "nb2prod": __version__,
            "code": self.code,
            "params": self.params,
            "inputs": self.inputs,
        }
        if self.data:  # a step that reads no file keeps the key it always had
            what["data"] = self.data
        if self.env:  # likewise a version exported before nb2prod recorded the environment
            what["env"] = self.env
        payload = json.dumps(what, sort_keys=True, default=repr)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def code_sha256(self) -> str:
        return hashlib.sha256(self.code.encode("utf-8")).hexdigest()


def step_key(code: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    return KeyParts(code, params, inputs).key


@dataclass(frozen=True)
class Hit:
    run_id: str  # the run whose folder holds the files
    record: dict[str, Any]  # that run's record of the step


@dataclass(frozen=True)
class Miss:
    reason: str  # why the step runs, in words for the progress display and run.json


class StepCache:
    """The cache index of one pipeline (``run_folder.cache_dir``) and the checks of a hit."""

    def __init__(self, home: Path, pipeline: str) -> None:
        self.root = cache_dir(home, pipeline)
        self.home = home  # holds the runs the entries name

    def _entry(self, step: str, key: str) -> Path:
        return cache_entry(self.root, step, key)

    def lookup(self, step: str, parts: KeyParts) -> Hit | Miss:
        """A usable earlier result, or why there is none."""
        entry_path = self._entry(step, parts.key)
        try:
            entry = json.loads(entry_path.read_text("utf-8"))
        except FileNotFoundError:
            return Miss(self._what_changed(step, parts))
        except (OSError, ValueError):
            return Miss("its cache entry cannot be read")
        try:
            run_id = str(entry["run"])
            record = json.loads(record_path(run_dir(self.home, run_id)).read_text("utf-8"))
            step_record = record["steps"][step]
        except (OSError, ValueError, KeyError, TypeError):
            return Miss("the run its cached result came from is gone")
        if not isinstance(step_record, dict) or step_record.get("state") not in (
            "succeeded",
            "cached",
        ):
            return Miss("the run its cached result came from did not succeed")
        recorded = step_record.get("outputs") or {}
        for name, sha in sorted(recorded.items()):
            try:
                path = output_path(run_dir(self.home, run_id), step, str(name))
            except (TypeError, ValueError):
                path = None
            if path is None:
                return Miss(f"its cached output `{name}` (run {run_id}) is missing")
            try:
                actual = file_sha256(path)
            except OSError as exc:
                return Miss(f"its cached output `{name}` cannot be read ({exc.strerror})")
            if actual != sha:
                self.forget(step, parts.key)
                return Miss(
                    f"its cached output `{name}` ({path}) no longer matches the SHA-256 recorded "
                    "when it was written: it was edited or corrupted"
                )
        return Hit(run_id, step_record)  # files are in that run's folder, linked if it was cached

    def _what_changed(self, step: str, parts: KeyParts) -> str:
        """Compare with the most recent entry of the step: code, parameters or inputs."""
        folder = cache_step_dir(self.root, step)
        try:
            entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            last = json.loads(entries[-1].read_text("utf-8")) if entries else None
        except (OSError, ValueError):
            last = None
        if not isinstance(last, dict) or "code" not in last:
            return "no earlier run computed it"
        changes = []
        if last.get("code") != parts.code_sha256:
            changes.append("its code changed")
        old_params = last.get("params") or {}
        changed = sorted(
            k
            for k in set(old_params) | set(parts.params)
            if json.dumps(old_params.get(k), default=repr)
            != json.dumps(parts.params.get(k), default=repr)
        )
        if changed:
            changes.append("parameter " + ", ".join(f"`{k}`" for k in changed) + " changed")
        old_inputs = last.get("inputs") or {}
        moved = sorted(
            k
            for k in set(old_inputs) | set(parts.inputs)
            if old_inputs.get(k) != parts.inputs.get(k)
        )
        if moved:
            changes.append("input " + ", ".join(f"`{k}`" for k in moved) + " changed")
        old_data = last.get("data") or {}
        edited = sorted(
            k for k in set(old_data) | set(parts.data) if old_data.get(k) != parts.data.get(k)
        )
        if edited:
            changes.append("data changed: " + ", ".join(edited))
        old_env = last.get("env") or {}
        upgraded = sorted(
            f"{k} {parts.env.get(k, 'missing')} (was {old_env.get(k, 'missing')})"
            for k in set(old_env) | set(parts.env)
            if old_env.get(k) != parts.env.get(k)
        )
        if upgraded:
            changes.append("environment changed: " + ", ".join(upgraded))
        return "; ".join(changes) if changes else "nb2prod's version changed"

    def store(self, step: str, parts: KeyParts, run_id: str) -> None:
        path = self._entry(step, parts.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "run": run_id,
            "step": step,
            "code": parts.code_sha256,
            "params": parts.params,
            "inputs": parts.inputs,
            "data": parts.data,
            "env": parts.env,
        }
        write_record(path, json.dumps(entry, default=repr))

    def forget(self, step: str, key: str) -> None:
        """Drop an entry whose files no longer match, so no later run tries it again."""
        try:
            self._entry(step, key).unlink(missing_ok=True)
        except OSError:
            pass
