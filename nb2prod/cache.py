"""Step cache: reuse a step's results when nothing it depends on has changed.

A step's key hashes its normalised code (comments and markdown do not count), the values of the
parameters it uses, the content hashes of its inputs and nb2prod's version. A successful run
records ``key -> (run id, step)``; a later run with the same key links that run's files in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tokenize
from pathlib import Path
from typing import Any

from ._version import __version__


def normalized_code(module: Path) -> str:
    """The step's code without comments, blank lines or markdown.

    The module is jupytext's percent format, where markdown cells are comment lines, so
    dropping comments drops them too; magics (``# %matplotlib``, ``# !pip``) are kept.
    """
    lines: list[str] = []
    text = module.read_text("utf-8")
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


def step_key(code: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    payload = json.dumps(
        {"nb2prod": __version__, "code": code, "params": params, "inputs": inputs},
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class StepCache:
    def __init__(self, root: Path, pipeline: str) -> None:
        self.root = root / "cache" / pipeline

    def _entry(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.json"

    def lookup(self, step: str, key: str, runs_dir: Path) -> tuple[str, dict[str, Any]] | None:
        """(run id, that run's step record) of a usable earlier result."""
        try:
            entry = json.loads(self._entry(step, key).read_text("utf-8"))
            run_id = str(entry["run"])
            record = json.loads((runs_dir / run_id / "run.json").read_text("utf-8"))
            step_record = record["steps"][step]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if step_record.get("state") not in ("succeeded", "cached"):
            return None
        source = runs_dir / run_id / "steps" / step
        outputs = step_record.get("outputs", {})
        if not all((source / "outputs").glob(f"{name}.*") for name in outputs):
            return None
        return run_id, step_record  # files are in that run's folder, linked if it was cached

    def store(self, step: str, key: str, run_id: str) -> None:
        path = self._entry(step, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"run": run_id, "step": step}), "utf-8")
        os.replace(tmp, path)


def link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) every file of ``source`` into ``target``."""
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
