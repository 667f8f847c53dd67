"""What handing a large DataFrame from step to step costs a pipeline run.

A generated notebook makes a DataFrame of ``--rows`` rows (4 million by default, about 430 MB)
in a preprocessing step, featurizes it in a second step, and hands the features to a training
and an evaluation step. It is exported with nb2prod and timed, in the same run on the same
machine, as ``papermill NB OUT`` on the original notebook and as ``nb2prod run --no-track
--no-cache`` of the exported pipeline. Prints:

- the full run against papermill (target: at most 1.15x);
- how many bytes the steps handed on, and the run's extra time per GB of them;
- the hand-off alone, in a fresh interpreter: ``nb2prod.runtime.save`` then ``load`` of the
  preprocessing step's DataFrame and of the features as an array, in seconds per GB.

Whichever nb2prod is first on ``sys.path`` is measured (``PYTHONPATH=... python
benchmarks/bench_datasize.py`` compares two checkouts). It never fails because a machine is
slow. Run from the repository root: ``python benchmarks/bench_datasize.py [--rows N]
[--repeat N]``. At full size it needs about 3 GB of memory and a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BIN = Path(sys.executable).parent

MAKE_FRAME = """\
rng = np.random.default_rng(seed)
raw = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(10)})
raw["count"] = rng.integers(0, 1000, rows)
raw["segment"] = pd.Categorical(rng.choice(["a", "b", "c", "d"], rows))
raw["when"] = pd.date_range("2020-01-01", periods=rows, freq="s")
raw["y"] = raw[[f"x{i}" for i in range(10)]].to_numpy() @ np.arange(1.0, 11.0) + rng.normal(
    size=rows
)
"""


def datasize_notebook(path: Path, rows: int) -> None:
    cells = [
        new_markdown_cell("# A large frame through four steps"),
        new_code_cell("import numpy as np\nimport pandas as pd", metadata={"tags": ["setup"]}),
        new_code_cell(f"rows = {rows}\nseed = 0", metadata={"tags": ["parameters"]}),
        new_code_cell(MAKE_FRAME, metadata={"tags": ["preprocessing"]}),
        new_code_cell(
            "columns = [f'x{i}' for i in range(10)]\n"
            "features = (raw[columns] - raw[columns].mean()) / raw[columns].std()\n"
            "features['count'] = raw['count'] / 1000.0\n"
            "features['hour'] = raw['when'].dt.hour.astype('float64')\n"
            "features = pd.concat([features, pd.get_dummies(raw['segment'], dtype=float)], "
            "axis=1)\n"
            "target = raw['y']\n"
            "split = int(len(features) * 0.8)",
            metadata={"tags": ["preprocessing:featurize"]},
        ),
        new_code_cell(
            "X = features.to_numpy()\n"
            "weights, *_ = np.linalg.lstsq(X[:split], target.to_numpy()[:split], rcond=None)",
            metadata={"tags": ["training"]},
        ),
        new_code_cell(
            "residual = target.to_numpy()[split:] - features.to_numpy()[split:] @ weights\n"
            "rmse = float(np.sqrt(np.mean(residual**2)))",
            metadata={"tags": ["evaluation", "metrics"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    nbformat.write(nb, path)


HANDOFF = """\
import json, os, sys, tempfile, time
import numpy as np, pandas as pd
import nb2prod.runtime as rt
rows, seed, repeat = int(sys.argv[1]), 0, int(sys.argv[2])
{make_frame}
values = {{"frame": raw, "array": raw[[f"x{{i}}" for i in range(10)]].to_numpy()}}
out = {{"runtime": rt.__file__}}
with tempfile.TemporaryDirectory(dir=sys.argv[3]) as tmp:
    rt.start_step(tmp, "prep")
    for name, value in values.items():
        best_w = best_r = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            path = rt.save(name, value)
            t1 = time.perf_counter()
            loaded = rt.load(name, step="prep")
            if isinstance(loaded, np.ndarray):
                loaded.sum()  # a mapped array is read when used: count that too
            t2 = time.perf_counter()
            best_w, best_r = min(best_w, t1 - t0), min(best_r, t2 - t1)
            del loaded
        out[name] = {{"file": path.name, "bytes": path.stat().st_size, "write": best_w,
                      "read": best_r}}
print(json.dumps(out))
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, float]:
    """Wall time, standard output and CPU time (user + system, the command and every process
    it waited for: kernels included), which a busy machine disturbs much less than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, r.stdout, cpu


def handed_on_bytes(project: Path) -> tuple[int, dict[str, int]]:
    """Bytes of every output file of the last run, and per file."""
    run_json = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1]
    files = {
        f"{p.parent.parent.name}/{p.name}": p.stat().st_size
        for p in run_json.parent.glob("steps/*/outputs/*")
    }
    return sum(files.values()), files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of the DataFrame")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best kept)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CI"] = "true"
    papermill, nb2prod = str(BIN / "papermill"), str(BIN / "nb2prod")
    with tempfile.TemporaryDirectory(prefix="nb2prod-bench-datasize-") as tmp:
        project = Path(tmp)
        (project / "notebooks").mkdir()
        nb = "notebooks/datasize.ipynb"
        datasize_notebook(project / nb, args.rows)
        run([nb2prod, "export", nb], project, env)
        pipeline = "pipelines/datasize"
        pm_runs, full_runs = [], []
        for _ in range(args.repeat):  # interleaved, so a busy spell hits both alike
            wall, _, cpu = run(
                [papermill, nb, str(project / "out.ipynb"), "--no-progress-bar"], project, env
            )
            pm_runs.append((wall, cpu))
            wall, _, cpu = run([nb2prod, "run", pipeline, "--no-track", "--no-cache"], project, env)
            full_runs.append((wall, cpu))
        pm, full = min(w for w, _ in pm_runs), min(w for w, _ in full_runs)
        pm_cpu, full_cpu = min(c for _, c in pm_runs), min(c for _, c in full_runs)
        total, files = handed_on_bytes(project)
        record = json.loads(
            sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1].read_text()
        )
        steps = {name: s.get("duration") for name, s in record["steps"].items()}
        script = HANDOFF.format(make_frame=textwrap.indent(MAKE_FRAME, ""))
        _, out, _ = run(
            [sys.executable, "-c", script, str(args.rows), str(max(args.repeat, 2)), tmp],
            project,
            env,
        )
        handoff = json.loads(out.strip().splitlines()[-1])

    gb = total / 1e9
    print(
        f"nb2prod run --no-track vs papermill, {args.rows:,} rows, {os.cpu_count()} CPUs, "
        f"best of {args.repeat}\nruntime: {handoff['runtime']}\n"
    )
    print(f"papermill, original notebook     {pm:8.2f}s wall {pm_cpu:8.2f}s CPU")
    print(f"nb2prod run (--no-cache)         {full:8.2f}s wall {full_cpu:8.2f}s CPU")
    print("  steps: " + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items() if v is not None))
    print(f"handed on between steps          {gb:8.3f} GB in {len(files)} files")
    for name, size in sorted(files.items()):
        print(f"  {name:<30} {size / 1e6:9.1f} MB")
    print()
    for name, h in handoff.items():
        if name == "runtime":
            continue
        per_gb = (h["write"] + h["read"]) / (h["bytes"] / 1e9)
        print(
            f"hand-off of the {name:<6} ({h['file']}, {h['bytes'] / 1e6:.0f} MB): write "
            f"{h['write']:.2f}s + read {h['read']:.2f}s = {per_gb:.2f} s/GB"
        )
    print(f"full run / papermill:            {full / pm:8.2f}x (target <= 1.15)")
    print(f"full run / papermill, CPU time:  {full_cpu / pm_cpu:8.2f}x")
    print(f"extra time of the run per GB handed on: {(full - pm) / gb:.2f} s/GB")


if __name__ == "__main__":
    main()
