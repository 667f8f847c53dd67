"""Shared helpers: build small notebooks on disk and run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures (jp_fetch, jp_serverapp, ...) for the server extension's tests.
pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "notebooks").glob("*.ipynb"))

CellSpec = tuple[str, Sequence[str]] | str  # (source, tags) or just source

# A pipeline that runs in a few seconds: no heavy imports; `delay` makes training slow on demand.
TINY_CELLS: list[CellSpec] = [
    ("import time", ["setup"]),
    (
        "n = 3  # how many numbers\n"
        "factor = 2.0  # scale of the total\n"
        "delay = 0.0  # seconds the training step sleeps\n"
        "flags = [1, 2]  # extra items\n"
        'label = "x"',
        ["parameters"],
    ),
    ("data = list(range(n))", ["preprocessing"]),
    ("time.sleep(delay)\ntotal = sum(data) * factor", ["training"]),
    ("score = float(total)\ncount = len(data) + len(flags)", ["evaluation", "metrics"]),
]


def notebook_json(cells: Sequence[CellSpec], **metadata: Any) -> dict[str, Any]:
    out = []
    for i, spec in enumerate(cells):
        source, tags = (spec, ()) if isinstance(spec, str) else spec
        cell_type = "markdown" if source.startswith("#md ") else "code"
        cell: dict[str, Any] = {
            "cell_type": cell_type,
            "id": f"c{i}",
            "metadata": {"tags": list(tags)} if tags else {},
            "source": source[4:] if cell_type == "markdown" else source,
        }
        if cell_type == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    meta = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    meta.update(metadata)
    return {"cells": out, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def write_notebook(path: Path, cells: Sequence[CellSpec], **metadata: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook_json(cells, **metadata), indent=1), encoding="utf-8")
    return path


@pytest.fixture
def make_nb(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(cells: Sequence[CellSpec], name: str = "nb.ipynb", **metadata: Any) -> Path:
        return write_notebook(tmp_path / name, cells, **metadata)

    return make


def nb2prod_command() -> list[str]:
    """The installed ``nb2prod`` console script (what users type), else ``python -m nb2prod``."""
    script = Path(sys.executable).with_name("nb2prod")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nb2prod"]


def run_cli(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``nb2prod ARGS`` in a subprocess, exactly as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*nb2prod_command(), *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
