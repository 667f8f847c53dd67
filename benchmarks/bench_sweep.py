"""A sweep's throughput, in runs per minute: `nb2prod sweep` on this machine and on a Dask
LocalCluster, against papermill running the original notebook once per point.

The notebook is ``notebooks/breast_cancer.ipynb``; the grid varies ``C`` (and, for 8 points,
``max_iter``), so its preprocessing step is shared by every point. Each sweep starts in a fresh
copy of the exported project (no cache, no runs), as the first sweep of a grid does. Measured,
as users run them, as commands:

- papermill, one point after another (``papermill NB OUT -p C ...``): the loop a user writes;
- papermill, N at a time (N subprocesses): the same loop made parallel by hand;
- ``nb2prod sweep --parallel N --no-track``;
- ``nb2prod sweep --parallel N`` tracked to a new local SQLite store (which the sweep creates);
- ``nb2prod sweep --cluster ADDRESS --no-track`` on a LocalCluster of N single-threaded worker
  processes started by this script (its start-up is reported, not counted).

Prints each one's wall time, runs per minute, and its throughput as a multiple of papermill's
(above 1: more runs per minute than papermill). Run from the repository root:
``python benchmarks/bench_sweep.py [--points 4|8] [--parallel N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NOTEBOOK = "notebooks/breast_cancer.ipynb"
GRIDS = {
    4: {"C": ["0.01", "0.1", "1.0", "10.0"]},
    8: {"C": ["0.01", "0.1", "1.0", "10.0"], "max_iter": ["100", "200"]},
}


def command(name: str) -> list[str]:
    script = BIN / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def check(r: subprocess.CompletedProcess[str], what: str) -> None:
    if r.returncode != 0:
        sys.exit(f"{what} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    import itertools

    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def papermill_loop(project: Path, env: dict[str, str], grid: dict[str, list[str]], n: int) -> None:
    def one(i: int, point: dict[str, str]) -> None:
        params = [arg for k, v in point.items() for arg in ("-p", k, v)]
        out = project / f"out-{i}.ipynb"
        cmd = [*command("papermill"), NOTEBOOK, str(out), "--no-progress-bar", *params]
        r = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
        check(r, "papermill")

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        for future in [pool.submit(one, i, p) for i, p in enumerate(points(grid))]:
            future.result()


def sweep(project: Path, env: dict[str, str], grid: dict[str, list[str]], *more: str) -> None:
    values = [arg for k, v in grid.items() for arg in ("-p", f"{k}={','.join(v)}")]
    cmd = [*command("nb2prod"), "sweep", "pipelines/breast_cancer", *values, "--json", *more]
    r = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    check(r, "nb2prod sweep")
    rows = json.loads(r.stdout)
    if len(rows) != len(points(grid)) or any(row["status"] != "succeeded" for row in rows):
        sys.exit(f"nb2prod sweep: not every point succeeded:\n{r.stdout}\n{r.stderr}")


def timed(exported: Path, run: Callable[[Path], None], repeat: int) -> float:
    """Best wall time of ``run`` over ``repeat`` tries, each in a fresh copy of the project."""
    best = float("inf")
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="nb2prod-bench-sweep-") as tmp:
            project = Path(shutil.copytree(exported, Path(tmp) / f"project-{i}"))
            t0 = time.perf_counter()
            run(project)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, choices=sorted(GRIDS), default=4)
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1, metavar="N")
    parser.add_argument("--repeat", type=int, default=1, help="tries per row (best kept)")
    args = parser.parse_args()
    grid, n = GRIDS[args.points], args.parallel
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory(prefix="nb2prod-bench-sweep-") as tmp:
        exported = Path(tmp) / "exported"
        (exported / "notebooks").mkdir(parents=True)
        shutil.copy(REPO / NOTEBOOK, exported / "notebooks")
        r = subprocess.run(
            [*command("nb2prod"), "export", NOTEBOOK], cwd=exported, env=env, text=True
        )
        check(r, "nb2prod export")
        # Warm the OS file cache and the kernel spec lookup; not timed.
        papermill_loop(exported, env, {"C": ["1.0"]}, 1)

        def tracked(project: Path) -> None:
            store = {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
            sweep(project, {**env, **store}, grid, "--parallel", str(n))

        rows = {
            "papermill, one at a time": timed(
                exported, lambda p: papermill_loop(p, env, grid, 1), args.repeat
            ),
            f"papermill, {n} at a time": timed(
                exported, lambda p: papermill_loop(p, env, grid, n), args.repeat
            ),
            f"nb2prod sweep --parallel {n} --no-track": timed(
                exported,
                lambda p: sweep(p, env, grid, "--parallel", str(n), "--no-track"),
                args.repeat,
            ),
            f"nb2prod sweep --parallel {n} (MLflow)": timed(exported, tracked, args.repeat),
        }
        t0 = time.perf_counter()
        with LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster:
            started = time.perf_counter() - t0
            address = str(cluster.scheduler_address)
            rows[f"nb2prod sweep --cluster (LocalCluster, {n} workers) --no-track"] = timed(
                exported,
                lambda p: sweep(p, env, grid, "--cluster", address, "--no-track"),
                args.repeat,
            )

    count = len(points(grid))
    base = rows["papermill, one at a time"]
    parallel_base = rows[f"papermill, {n} at a time"]
    print(
        f"\nSweep of {count} points of breast_cancer ({', '.join(grid)}), {os.cpu_count()} CPUs, "
        f"best of {args.repeat}; LocalCluster started in {started:.1f}s (not counted)\n"
    )
    width = max(map(len, rows)) + 2
    print(f"{'':<{width}}{'wall':>8}{'runs/min':>10}{'x pm 1':>8}{f'x pm {n}':>8}")
    for name, seconds in rows.items():
        print(
            f"{name:<{width}}{seconds:>7.1f}s{count * 60 / seconds:>10.1f}"
            f"{base / seconds:>8.2f}{parallel_base / seconds:>8.2f}"
        )
    print("\nx pm 1 / x pm N: runs per minute as a multiple of papermill's, one at a time / N.")


if __name__ == "__main__":
    main()
