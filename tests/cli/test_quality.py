"""The code base stays clean under ruff and mypy (part of the test command, so CI runs it)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_clean() -> None:
    for args in (["check"], ["format", "--check"]):
        r = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", "nb2prod", "tests", "benchmarks"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null", "nb2prod"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
