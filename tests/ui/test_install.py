"""`pip install nb2prod` in a fresh virtual environment, then `jupyter lab`, as the README says.

The wheel is built from this checkout (with the lab extension built in, as a release is) and
installed into a new venv that sees nothing of this environment's packages, so a dependency
missing from pyproject.toml fails here, not on a user's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.timeout(1800)


def sh(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500
    )


def test_pip_install_gives_jupyter_lab_with_the_extension(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = sh(sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", dist)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("nb2prod-*.whl"))

    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    bin_dir = venv / "bin"
    installed = sh(bin_dir / "python", "-m", "pip", "install", "--quiet", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]

    # What the README promises: JupyterLab is there, with nb2prod's extension enabled.
    lab = sh(bin_dir / "jupyter", "lab", "--version")
    assert lab.returncode == 0, lab.stderr
    extensions = sh(bin_dir / "jupyter", "labextension", "list")
    listing = extensions.stdout + extensions.stderr
    line = next((ln for ln in listing.splitlines() if "nb2prod" in ln), "")
    assert "enabled" in line and "OK" in line, listing
    server = sh(bin_dir / "jupyter", "server", "extension", "list")
    assert "nb2prod" in server.stdout + server.stderr
    assert "enabled" in (server.stdout + server.stderr).split("nb2prod", 1)[1].splitlines()[0]
    # And the command line works there.
    cli = sh(bin_dir / "nb2prod", "--help")
    assert cli.returncode == 0 and "export" in cli.stdout
