"""Step kernels forked from the zygote are as isolated as kernels started the usual way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_run import no_leftover_kernels, our_kernels  # noqa: F401 - fixture

from conftest import run_cli, write_notebook

pytestmark = pytest.mark.timeout(300)

# Step `a` leaves marks in its process: a module attribute, an environment variable, a changed
# working directory. Step `b` runs after it (it reads `x`) and must see none of them, with a
# process and random state of its own.
CELLS = [
    ("import gc\nimport os\nimport sys\nimport numpy as np", ["setup"]),
    ("seed = 1  # unused, keeps a parameters cell", ["parameters"]),
    (
        "x = float(np.random.rand())\n"
        "pid_a = os.getpid()\n"
        "setattr(np, 'nb2prod_mark', 1)\n"
        "os.environ['NB2PROD_MARK'] = '1'\n"
        "os.chdir('/')",
        ["preprocessing"],
    ),
    (
        "y = float(np.random.rand())\n"
        "same_random = int(x == y)\n"
        "same_pid = int(pid_a == os.getpid())\n"
        "leaked_module = int(hasattr(np, 'nb2prod_mark'))\n"
        "leaked_env = int('NB2PROD_MARK' in os.environ)\n"
        "cwd_is_notebook_dir = int(os.path.basename(os.getcwd()) == 'notebooks')\n"
        "argv_is_kernel = int('ipykernel_launcher' in sys.argv[0])\n"
        "gc_enabled = int(gc.isenabled())",
        ["training:b"],
    ),
    (
        "{'same_random': same_random, 'same_pid': same_pid, 'leaked_module': leaked_module, "
        "'leaked_env': leaked_env, 'cwd_is_notebook_dir': cwd_is_notebook_dir, "
        "'argv_is_kernel': argv_is_kernel, 'gc_enabled': gc_enabled}",
        ["metrics"],
    ),
]

ISOLATED = {
    "same_random": 0,
    "same_pid": 0,
    "leaked_module": 0,
    "leaked_env": 0,
    "cwd_is_notebook_dir": 1,
    "argv_is_kernel": 1,
    "gc_enabled": 1,  # the zygote imports with the collector off; user code must have it on
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "notebooks" / "marks.ipynb", CELLS)
    r = run_cli("export", "notebooks/marks.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def metrics(project: Path, fork: str) -> dict[str, Any]:
    r = run_cli(
        "run",
        "pipelines/marks",
        "--no-track",
        "--no-cache",
        cwd=project,
        env={"CI": "true", "NB2PROD_FORK_KERNELS": fork},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1].read_text())
    assert record["status"] == "succeeded"
    return dict(record["metrics"])


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "launched"])
def test_steps_share_nothing_but_files(project: Path, fork: str, no_leftover_kernels) -> None:  # noqa: F811
    assert metrics(project, fork) == ISOLATED


def test_zygote_stops_with_the_runner(project: Path) -> None:
    before = our_kernels()
    assert metrics(project, "1") == ISOLATED
    assert not our_kernels() - before
