"""Step kernels are ordinary Jupyter kernels: isolated from each other, and, forked from the
zygote or not, indistinguishable from the kernel papermill starts for the notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_run import no_leftover_kernels, our_kernels  # noqa: F401 - fixture

from conftest import nb2prod_command, run_cli, write_notebook

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


def run_fresh(project: Path, pipeline: str, fork: str) -> Path:
    """Run ``pipelines/<pipeline>`` uncached, with forked kernels or not; its run.json."""
    r = run_cli(
        "run",
        f"pipelines/{pipeline}",
        "--no-track",
        "--no-cache",
        cwd=project,
        env={"CI": "true", "NB2PROD_FORK_KERNELS": fork},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1]


def metrics(project: Path, fork: str) -> dict[str, Any]:
    record = json.loads(run_fresh(project, "marks", fork).read_text())
    assert record["status"] == "succeeded"
    return dict(record["metrics"])


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "launched"])
def test_steps_share_nothing_but_files(project: Path, fork: str, no_leftover_kernels) -> None:  # noqa: F811
    assert metrics(project, fork) == ISOLATED


def test_zygote_stops_with_the_runner(project: Path) -> None:
    before = our_kernels()
    assert metrics(project, "1") == ISOLATED
    assert not our_kernels() - before


# A kernel described from inside: everything that a library or the user's code can see and
# that configures itself from its surroundings. Imported at the top of the notebook, as users
# do, so the zygote preloads whatever it is willing to preload of it (scikit-learn pulls in
# pandas; matplotlib and tqdm look for the kernel on import).
PROBE_IMPORTS = """\
import gc
import json
import locale
import os
import random
import signal
import sys
import threading
import warnings

import comm
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
from IPython import get_ipython
from tqdm.autonotebook import tqdm
"""

PROBE = '''\
def probe(where):
    """Print, as one JSON line, what this kernel looks like from inside."""
    ip = get_ipython()

    def name(obj):
        if obj is None or isinstance(obj, (int, str)):
            return str(obj)
        qualname = getattr(obj, "__qualname__", type(obj).__qualname__)
        return f"{getattr(obj, '__module__', '?')}.{qualname}"

    handlers = {}
    for number in sorted(signal.valid_signals()):
        try:
            handlers[signal.Signals(number).name] = name(signal.getsignal(number))
        except ValueError:
            pass
    umask = os.umask(0)
    os.umask(umask)
    magics = ip.magics_manager.lsmagic()
    found = {
        "where": where,
        "pandas_options": pd.describe_option(_print_desc=False),
        "matplotlib": [matplotlib.get_backend(), matplotlib.is_interactive()],
        "rcparams": {k: repr(v) for k, v in sorted(matplotlib.rcParams.items())},
        "tqdm": tqdm.__module__,
        "sklearn": [sklearn.__version__, sorted(sklearn.get_config().items())],
        "comm_targets": sorted(comm.get_comm_manager().targets),
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "name": ip.user_ns["__name__"],
        "main_is_user_module": sys.modules["__main__"] is ip.user_module,
        "mp_main_is_main": sys.modules.get("__mp_main__", sys.modules["__main__"])
        is sys.modules["__main__"],
        "path": sys.path,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "warnings": [
            [a, getattr(m, "pattern", m), c.__name__, getattr(mod, "pattern", mod), n]
            for a, m, c, mod, n in warnings.filters
        ],
        "signals": handlers,
        "blocked_signals": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "gc": [gc.isenabled(), gc.get_threshold(), gc.get_freeze_count(), gc.get_debug()],
        "formatters": {
            mime: sorted(
                [name(t) for t in f.type_printers] + [".".join(k) for k in f.deferred_printers]
            )
            for mime, f in sorted(ip.display_formatter.formatters.items())
        },
        "active_types": ip.display_formatter.active_types,
        "events": {e: [name(c) for c in cbs] for e, cbs in sorted(ip.events.callbacks.items())},
        "magics": [sorted(magics["line"]), sorted(magics["cell"])],
        "config": json.loads(json.dumps(ip.config, default=repr)),
        "history": [ip.history_manager.hist_file, ip.execution_count > 0],
        "hooks": [name(sys.displayhook), name(sys.excepthook), name(type(sys.stdout))],
        "process": [
            sys.getrecursionlimit(),
            sys.getswitchinterval(),
            umask,
            os.getpriority(os.PRIO_PROCESS, 0),
            sorted(os.sched_getaffinity(0)),
            locale.setlocale(locale.LC_ALL),
            os.getpgid(0) == os.getpid(),
            os.getsid(0) == os.getpid(),
        ],
        "threads": sorted(t.name for t in threading.enumerate()),
        "random": [float(np.random.rand()), random.random()],
        "forked": "nb2prod.run.zygote" in open("/proc/self/cmdline").read(),
    }
    print("NB2PROD-PROBE " + json.dumps(found, sort_keys=True, default=repr))
    return found["random"]
'''

PROBE_CELLS = [
    (PROBE_IMPORTS, ["setup"]),
    (PROBE, ["setup"]),
    ("label = 'probe'  # unused, keeps a parameters cell", ["parameters"]),
    ("first = probe('preprocessing')", ["preprocessing"]),
    ("second = probe('training')\ndraws = [first, second]", ["training"]),
    "plt.plot([1, 2, 3])",  # the inline backend must show it, with no plt.show()
]
PLOT = "plt.plot([1, 2, 3])"


def probes(notebook: Path) -> dict[str, Any]:
    """The probe's findings in an executed notebook, and whether the plot cell showed a PNG."""
    found: dict[str, Any] = {"plot_shown": False}
    for cell in json.loads(notebook.read_text("utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            for line in "".join(out.get("text", "")).splitlines():
                if line.startswith("NB2PROD-PROBE "):
                    probe = json.loads(line.split(" ", 1)[1])
                    found[probe["where"]] = probe
            if "".join(cell["source"]) == PLOT and "image/png" in out.get("data", {}):
                found["plot_shown"] = True
    return found


def normalised(probe: dict[str, Any], connection_file: str) -> dict[str, Any]:
    """Only what legitimately differs between two kernel processes made uniform: the connection
    file's path, the parent's PID, and the test's own settings (the NB2PROD_FORK_KERNELS
    switch, and pytest's name for the test phase it ran in)."""
    text = json.dumps(probe).replace(json.dumps(connection_file)[1:-1], "<connection file>")
    out = json.loads(text)
    out["env"].pop("NB2PROD_FORK_KERNELS", None)
    out["env"].pop("PYTEST_CURRENT_TEST", None)
    if "JPY_PARENT_PID" in out["env"]:
        out["env"]["JPY_PARENT_PID"] = "<pid>"
    del out["random"], out["where"], out["forked"]
    return out


def difference(papermill: Any, nb2prod: Any) -> Any:
    """What differs, as [papermill's, nb2prod's]; between dicts, only at the keys that differ."""
    if isinstance(papermill, dict) and isinstance(nb2prod, dict):
        keys = sorted(set(papermill) | set(nb2prod))
        return {
            k: [papermill.get(k), nb2prod.get(k)]
            for k in keys
            if papermill.get(k) != nb2prod.get(k)
        }
    return [papermill, nb2prod]


def connection_file(probe: dict[str, Any]) -> str:
    return str(probe["argv"][probe["argv"].index("-f") + 1])


@pytest.fixture(scope="module")
def probe_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    write_notebook(root / "notebooks" / "probe.ipynb", PROBE_CELLS)
    r = run_cli("export", "notebooks/probe.ipynb", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture(scope="module")
def under_papermill(probe_project: Path) -> dict[str, Any]:
    """The notebook run top to bottom by papermill's command, in the notebook's folder (where
    Jupyter starts its kernels, and so does nb2prod)."""
    script = Path(sys.executable).with_name("papermill")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "papermill"]
    out = probe_project / "papermill.ipynb"
    r = subprocess.run(
        [*command, "notebooks/probe.ipynb", str(out), "--cwd", "notebooks", "--no-progress-bar"],
        cwd=probe_project,
        env={**os.environ, "CI": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return probes(out)


def under_nb2prod(project: Path, fork: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What each step's probe found, and the run record."""
    run_json = run_fresh(project, "probe", fork)
    record = json.loads(run_json.read_text("utf-8"))
    found: dict[str, Any] = {"plot_shown": False, "first_execution_count": {}}
    for name, step in record["steps"].items():
        notebook = run_json.parent / step["notebook"]
        got = probes(notebook)
        found["plot_shown"] |= got.pop("plot_shown")
        found.update(got)
        counts = [
            c["execution_count"]
            for c in json.loads(notebook.read_text("utf-8"))["cells"]
            if c["cell_type"] == "code" and c.get("execution_count")
        ]
        found["first_execution_count"][name] = min(counts)
    return found, record


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "launched"])
def test_step_kernels_look_like_the_kernel_papermill_starts(
    probe_project: Path,
    under_papermill: dict[str, Any],
    fork: str,
    no_leftover_kernels,  # noqa: F811
) -> None:
    got, record = under_nb2prod(probe_project, fork)
    assert under_papermill["plot_shown"], "papermill itself did not show the plot"
    assert got["plot_shown"], "plt.plot(...) in a step showed no image: no inline backend"
    for where in ("preprocessing", "training"):
        expected = normalised(under_papermill[where], connection_file(under_papermill[where]))
        actual = normalised(got[where], connection_file(got[where]))
        differing = {
            key: difference(expected.get(key), actual.get(key))
            for key in sorted(set(expected) | set(actual))
            if expected.get(key) != actual.get(key)
        }
        detail = "\n".join(f"  {k}: {json.dumps(v)[:1500]}" for k, v in differing.items())
        assert not differing, f"step {where} differs in {sorted(differing)}:\n{detail}"
    # Forked they were (the process is the zygote's fork), or not, as asked.
    assert got["preprocessing"]["forked"] == got["training"]["forked"] == (fork == "1")
    # Each kernel draws its own random numbers, as separate fresh kernels do.
    draws = [got["preprocessing"]["random"], got["training"]["random"]]
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]
    # Warming a kernel up leaves no trace in its history: the step's cells count from 1.
    assert got["first_execution_count"] == {"preprocessing": 1, "training": 1}
    assert record["status"] == "succeeded"


def test_a_killed_runner_leaves_no_socket_folder_or_kernel_without_forking(
    tmp_path: Path, short_tmpdir: Path
) -> None:
    """Without a zygote nobody removes the kernels' socket folder when the runner is killed
    with -9: the next run does, and the killed run's kernels have stopped by themselves."""
    from conftest import TINY_CELLS, own_processes

    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=tmp_path).returncode == 0
    tmp = short_tmpdir  # the runs' temporary folder, where socket folders go
    env = {**os.environ, "CI": "true", "TMPDIR": str(tmp), "NB2PROD_FORK_KERNELS": "0"}
    runner = subprocess.Popen(
        [*nb2prod_command(), "run", "pipelines/tiny", "--no-track", "-p", "delay=120"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = tmp_path / ".nb2prod" / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        records = [json.loads(p.read_text()) for p in runs.glob("*/run.json")]
        if records and records[0]["steps"]["training"]["state"] == "running":
            break
        time.sleep(0.2)
    else:
        runner.kill()
        pytest.fail(f"the training step never started: {records}")
    (stale,) = list(tmp.iterdir())
    assert stale.name.startswith("nb2prod-kernels-")
    kernels = {pid for pid, cmd in own_processes().items() if str(stale) in " ".join(cmd)}
    assert kernels, "the run's kernels are not found by their socket folder"
    runner.kill()  # no chance to clean up
    runner.wait(timeout=10)
    assert stale.is_dir()  # what a killed runner leaves

    r = run_cli("run", "pipelines/tiny", "--no-track", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not stale.exists() and not list(tmp.iterdir())
    deadline = time.monotonic() + 15  # a kernel notices its runner is gone within a second
    while kernels & set(own_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not kernels & set(own_processes()), "kernels of the killed run were left behind"


def test_a_spoilt_zygote_forks_no_kernel(tmp_path: Path) -> None:
    """A package the zygote may preload that imports an unknown one (here a stand-in for
    threadpoolctl) spoils it: every kernel then starts as a new process, and the run works."""
    fake = tmp_path / "site"
    (fake / "threadpoolctl").mkdir(parents=True)
    (fake / "threadpoolctl" / "__init__.py").write_text("import nb2prod_unknown\nVALUE = 7\n")
    (fake / "nb2prod_unknown.py").write_text("")
    cells = [
        ("import threadpoolctl", ["setup"]),
        ("seed = 1  # unused, keeps a parameters cell", ["parameters"]),
        ("value = threadpoolctl.VALUE", ["preprocessing"]),
        (
            "forked = int('nb2prod.run.zygote' in open('/proc/self/cmdline').read())\n"
            "{'value': value, 'forked': forked}",
            ["evaluation", "metrics"],
        ),
    ]
    write_notebook(tmp_path / "notebooks" / "spoilt.ipynb", cells)
    assert run_cli("export", "notebooks/spoilt.ipynb", cwd=tmp_path).returncode == 0
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    r = run_cli("run", "pipelines/spoilt", "--no-track", cwd=tmp_path, env={"PYTHONPATH": path})
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads(next((tmp_path / ".nb2prod" / "runs").glob("*/run.json")).read_text())
    assert record["metrics"] == {"value": 7, "forked": 0}
