"""A virtual environment with Apache Airflow, made once and cached, for the Airflow tests.

Airflow cannot share an environment with kfp (their Kubernetes clients conflict), so the tests
that run a generated DAG use a venv of their own. Installing it takes minutes (about 250
packages), so it is cached in ``$NB2PROD_TEST_CACHE`` (default ``~/.cache/nb2prod-tests``) under
a name keyed by everything that decides its contents: the base Python, nb2prod's declared
dependencies (read from pyproject.toml) and the extra packages below. A change to any of them
makes a new venv; the same inputs always find the old one.

It holds nb2prod's *dependencies*, not nb2prod: the checkout under test is put on PYTHONPATH
by whoever runs in it (see :func:`env_for`), so one venv serves every commit and CI's fresh
clone tests its own code (installing nb2prod itself would build the lab extension with node).

Made atomically: it is built in a folder of its own, marked complete last, then published by
renaming a symlink onto its cache name, so a half-made venv (a killed build, a failed pip) is
never found. A lock file serialises two test processes that need it at once; the second waits
and then reuses the first one's venv.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: the tests that need the venv skip (see requirements())
    tomllib = None  # type: ignore[assignment]

#: bump when the way the venv is made changes, to make new ones
LAYOUT = 1
#: the providers' KubernetesExecutor support, so the tests can check the pods a DAG asks for;
#: and the example notebooks' libraries
EXTRA = ("apache-airflow-providers-cncf-kubernetes", "scikit-learn", "pandas", "pyarrow")
READY = "nb2prod-venv.json"  # written last: the build finished
INSTALL_TIMEOUT = 1800  # seconds; a cold install takes about 7 minutes


def requirements(repo: Path) -> list[str]:
    """What the venv holds: Airflow (nb2prod's ``airflow`` extra), nb2prod's dependencies and
    :data:`EXTRA`, as pip requirement strings."""
    if tomllib is None:
        raise RuntimeError("reading pyproject.toml needs Python 3.11 (tomllib)")
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    return [*extras["airflow"], *project["dependencies"], *EXTRA]


def cache_root() -> Path:
    return Path(os.environ.get("NB2PROD_TEST_CACHE") or Path.home() / ".cache" / "nb2prod-tests")


def key(reqs: list[str]) -> str:
    ident = {
        "layout": LAYOUT,
        "python": sys.version,
        "base": sys.base_prefix,
        "requirements": sorted(reqs),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path) -> bool:
    return (venv / READY).is_file() and python(venv).exists()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def airflow_venv(repo: Path) -> Path:
    """The cached Airflow venv for ``repo``'s requirements, made first if need be (minutes)."""
    reqs = requirements(repo)
    name = f"airflow-{key(reqs)}"
    root = cache_root()
    venv = root / name
    if _ready(venv):
        return venv
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{name}.lock"):
        if _ready(venv):  # another process made it while this one waited
            return venv
        # Only the lock holder builds this name, so any build folder left is a dead build's.
        for stale in root.glob(f"{name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix=f"{name}.build-", dir=root))
        try:
            _build(build, reqs)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        # The venv stays where it was built (scripts hold its path); the symlink names it.
        link = root / f".{name}.link-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(build.name)
        os.replace(link, venv)
    return venv


def _build(build: Path, reqs: list[str]) -> None:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(build)], check=True)
    log = build / "install.log"
    with log.open("w") as out:
        pip = subprocess.run(
            [str(python(build)), "-m", "pip", "install", "--disable-pip-version-check", *reqs],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT,
        )
    if pip.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"pip could not install the Airflow test venv:\n{tail}")
    info = {"requirements": reqs, "install_seconds": round(time.monotonic() - start, 1)}
    (build / READY).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def install_seconds(venv: Path) -> float:
    """How long the venv took to make (recorded when it was made)."""
    return float(json.loads((venv / READY).read_text(encoding="utf-8"))["install_seconds"])


def env_for(repo: Path, airflow_home: Path, **extra: str) -> dict[str, str]:
    """The environment to run the venv's Python with: nb2prod from ``repo`` on PYTHONPATH, an
    AIRFLOW_HOME of the test's own with a SQLite metadata DB and no example DAGs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_", "AIRFLOW__", "VIRTUAL_ENV", "PYTHONHOME"))
    }
    env.update(
        PYTHONPATH=str(repo),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    env.update(extra)
    return env


if __name__ == "__main__":  # make it ahead of a test run: python tests/engines/airflow_venv.py
    made = airflow_venv(Path(__file__).resolve().parents[2])
    print(made, f"(made in {install_seconds(made)} s)")
