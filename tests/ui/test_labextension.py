"""The JupyterLab extension's own checks, run as part of the Python test suite.

`pip install ".[test]" && python -m pytest` builds the extension (into the wheel) and runs, from
here: jest, the linters (eslint, prettier, stylelint), the TypeScript compiler, and the galata UI
tests in Debian's Chromium against a real `jupyter lab` with the installed extension.

These tests fail, never skip, when Node.js or Chromium is missing: the README promises that
this one command passes every test, UI tests in a real browser included.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABEXTENSION = ROOT / "labextension"
UI_TESTS = LABEXTENSION / "ui-tests"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# What a failure shows of a command's output (its end, where the errors are).
OUTPUT_TAIL = 25_000


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is missing, so the JupyterLab extension cannot be built or tested. "
            "Fix: install Node.js 20 or newer (Debian: `apt-get install -y nodejs`).",
            pytrace=False,
        )
    jlpm = shutil.which("jlpm")
    if jlpm is None:
        pytest.fail(
            "`jlpm` is missing. Fix: `pip install '.[test]'`, which brings JupyterLab "
            "(and jlpm with it).",
            pytrace=False,
        )
    return jlpm


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure, fail the test with its output."""
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
        pytest.fail(
            f"`{' '.join(args)}` in {cwd} took more than {timeout:.0f}s.\n{out[-OUTPUT_TAIL:]}",
            pytrace=False,
        )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` in {cwd} exited with {proc.returncode}:\n"
            f"{proc.stdout[-OUTPUT_TAIL:]}",
            pytrace=False,
        )
    return proc.stdout


@pytest.fixture(scope="module")
def jlpm() -> str:
    """jlpm, with the extension's node dependencies installed (from the committed yarn.lock)."""
    jlpm = _require_node()
    _run([jlpm, "install"], LABEXTENSION, timeout=900)
    return jlpm


def test_jest(jlpm: str) -> None:
    """Unit tests of the tag logic (roles <-> tags, names, step spans) and the run form."""
    out = _run([jlpm, "test"], LABEXTENSION, timeout=600)
    assert re.search(r"Tests:\s+\d+ passed", out), out[-OUTPUT_TAIL:]


def test_lint(jlpm: str) -> None:
    """eslint, prettier and stylelint are clean."""
    _run([jlpm, "lint:check"], LABEXTENSION, timeout=600)


def test_typescript_compiles(jlpm: str) -> None:
    """TypeScript (strict) compiles, importing nb2prod/grammar.json itself."""
    _run([jlpm, "build:lib:prod"], LABEXTENSION, timeout=600)
    assert (LABEXTENSION / "lib" / "labextension" / "src" / "index.js").is_file()


def test_labextension_is_installed_and_enabled() -> None:
    """The prebuilt extension shipped with the package is found by JupyterLab."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert re.search(r"nb2prod v\S+ enabled\s+OK", text), text


@pytest.mark.timeout(1500)
def test_ui_in_chromium(jlpm: str) -> None:
    """The galata suite: tag, see the panel follow, export, run, and jump to a problem."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is missing ({CHROMIUM}), so the UI tests cannot run. "
            "Fix: `apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH).",
            pytrace=False,
        )
    if shutil.which("jupyter-notebook") is None:
        pytest.fail(
            "Jupyter Notebook 7 is missing, so the extension cannot be checked in it. "
            "Fix: `pip install '.[test]'`, which brings it.",
            pytrace=False,
        )
    env = {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "CHROMIUM_PATH": CHROMIUM}
    _run([jlpm, "install"], UI_TESTS, timeout=600, env=env)
    out = _run([jlpm, "playwright", "test"], UI_TESTS, timeout=1200, env=env)
    assert re.search(r"\d+ passed", out), out[-OUTPUT_TAIL:]
    assert "[notebook7]" in out, "the Notebook 7 suite did not run:\n" + out[-OUTPUT_TAIL:]
    assert not re.search(r"\d+ (failed|flaky)", out), out[-OUTPUT_TAIL:]
