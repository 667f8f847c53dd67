"""Shared helpers: build small notebooks on disk and run the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# pytest-jupyter's fixtures (jp_fetch, jp_serverapp, ...) for the server extension's tests.
pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "notebooks").glob("*.ipynb"))

# Test tiers, run in this order by scripts/test.sh (fastest and most basic first, so failures
# show early); `bash scripts/test.sh unit` (or `pytest -m unit`, or `pytest tests/unit`) runs
# one. A test's tier is the folder its file is in (tests/<tier>/), unless TIER_OF_TEST says
# otherwise. See docs/testing.md.
#   unit      in-process, no kernel, no nb2prod subprocess
#   cli       the nb2prod command (export, check, inspect, refusals), linters
#   run       pipelines run in kernels
#   tracking  MLflow
#   server    the Jupyter server extension's REST API
#   docs      every command transcript in README.md and docs/ run again against real output
#   ui        the JupyterLab extension (jest, linters, UI tests in Chromium), the installed wheel
TIERS = ("unit", "cli", "run", "tracking", "engines", "server", "docs", "ui")
TESTS = Path(__file__).resolve().parent
# Slow tests in an otherwise fast file ("folder/file::test name" prefixes).
TIER_OF_TEST = {
    "unit/test_export.py::test_concurrent_exports": "cli",
    "unit/test_widgets.py::test_panel_runs_a_pipeline_inside_a_kernel": "run",
}


def tier_of(item: pytest.Item) -> str:
    where = item.path.resolve().relative_to(TESTS)
    test = f"{where.as_posix()}::{item.name}"
    for prefix, tier in TIER_OF_TEST.items():
        if test.startswith(prefix):
            return tier
    if where.parts[0] not in TIERS:
        raise pytest.UsageError(f"{where}: a test file belongs in a tier folder, tests/<tier>/.")
    return where.parts[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, tier_of(item)))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m TIER``, do not even import the files with no test in that tier: importing
    them all (MLflow, Jupyter server...) takes longer than the unit tier's tests."""
    tier = config.getoption("markexpr", "")
    try:
        where = collection_path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return None
    if tier not in TIERS or where.partition("/")[0] not in TIERS:
        return None
    in_tier = where.partition("/")[0] == tier or any(
        prefix.startswith(where) and t == tier for prefix, t in TIER_OF_TEST.items()
    )
    return None if in_tier else True


# Every process this test session starts inherits this marker in its environment: the runner,
# its kernels, the zygote they fork from, the MLflow worker, and whatever is re-parented when a
# test kills its runner. Leftover checks look only at processes carrying it (and at this
# process's descendants), so other nb2prod processes on a shared machine never count.
SESSION_MARKER = "NB2PROD_TEST_SESSION"
SESSION = os.environ.setdefault(SESSION_MARKER, uuid.uuid4().hex)

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


def own_processes() -> dict[int, list[str]]:
    """This session's processes, other than this one, with their command lines: this process's
    descendants, and any process carrying the session marker in its environment (kernels and
    zygotes outlive their runner when a test kills it, and then belong to no one)."""
    import psutil

    me = psutil.Process()
    descendants = {p.pid for p in me.children(recursive=True)}
    found: dict[int, list[str]] = {}
    for proc in psutil.process_iter():
        try:
            if proc.pid != me.pid and (
                proc.pid in descendants or proc.environ().get(SESSION_MARKER) == SESSION
            ):
                found[proc.pid] = proc.cmdline()
        except psutil.Error:  # gone, or another user's: not ours
            continue
    return found


def own_kernels() -> set[int]:
    """PIDs of this session's kernels: those nb2prod launches carry its in-memory history flag,
    and those it forks (and the zygote they fork from) the zygote's command line. Its MLflow
    tracking worker and its report worker count too: no run may leave them behind either."""
    pids = set()
    for pid, cmd in own_processes().items():
        if (
            "nb2prod.run.zygote" in cmd
            or "nb2prod.tracking.worker" in cmd
            or "nb2prod.run.reports" in cmd
            or (
                any("ipykernel_launcher" in part for part in cmd)
                and "--HistoryManager.hist_file=:memory:" in cmd
            )
        ):
            pids.add(pid)
    return pids


@pytest.fixture
def short_tmpdir() -> Iterator[Path]:
    """A temporary folder of a test's own, for $TMPDIR: short enough for the kernels' Unix
    sockets (pytest's tmp_path can be too deep, and nb2prod would then use /tmp instead)."""
    folder = Path(tempfile.mkdtemp(prefix="nb2t-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
