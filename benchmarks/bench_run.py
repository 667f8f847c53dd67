"""How much a pipeline run costs over papermill running the original notebook.

Both are timed as users run them, as commands (``papermill NB OUT`` and ``nb2prod run``), in
the same project folder, in steady state (the MLflow store already exists), MLflow logging
included. Prints the ratios the project targets:

- full run (``--no-cache``) of a small three-step notebook: at most 1.6x papermill;
- full run of a compute-heavy notebook whose two training steps are independent: at most 1.0x;
- unchanged re-run: at most 0.4x the full run;
- the per-step overhead;
- what the steps' HTML reports cost: the full run with them (the default) against the same run
  with ``NB2PROD_REPORTS=0`` (they render in the background, so this should stay near 1.0x).

Run from the repository root: ``python benchmarks/bench_run.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def heavy_notebook(path: Path) -> None:
    """Two independent, single-threaded training steps of a few seconds each."""
    cells = [
        new_markdown_cell("# Two models on digits"),
        new_code_cell(
            "from sklearn.datasets import load_digits\n"
            "from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier\n"
            "from sklearn.model_selection import train_test_split",
            metadata={"tags": ["setup"]},
        ),
        new_code_cell(
            "n_forest = 500  # trees in the random forest\n"
            "n_extra = 700  # trees in the extra-trees model\nseed = 0",
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(
            "X, y = load_digits(return_X_y=True)\n"
            "X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=seed)",
            metadata={"tags": ["preprocessing"]},
        ),
        new_code_cell(
            "forest = RandomForestClassifier(n_estimators=n_forest, random_state=seed, n_jobs=1)\n"
            "forest.fit(X_train, y_train)",
            metadata={"tags": ["training:forest"]},
        ),
        new_code_cell(
            "extra = ExtraTreesClassifier(n_estimators=n_extra, random_state=seed, n_jobs=1)\n"
            "extra.fit(X_train, y_train)",
            metadata={"tags": ["training:extra"]},
        ),
        new_code_cell(
            "forest_acc = forest.score(X_test, y_test)\nextra_acc = extra.score(X_test, y_test)",
            metadata={"tags": ["evaluation", "metrics"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    nbformat.write(nb, path)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return elapsed


def best(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    return min(timed(cmd, cwd, env) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CI"] = "true"
    papermill, nb2prod = str(BIN / "papermill"), str(BIN / "nb2prod")
    with tempfile.TemporaryDirectory(prefix="nb2prod-bench-run-") as tmp:
        project = Path(tmp)
        (project / "notebooks").mkdir()
        shutil.copy(REPO / "notebooks" / "breast_cancer.ipynb", project / "notebooks")
        heavy_notebook(project / "notebooks" / "two_models.ipynb")
        rows = []
        for name, steps in (("breast_cancer", 3), ("two_models", 4)):
            nb = f"notebooks/{name}.ipynb"
            timed([nb2prod, "export", nb], project, env)
            pipeline = f"pipelines/{name}"
            # Steady state: the MLflow store, caches and OS file cache exist before timing.
            timed([nb2prod, "run", pipeline, "--no-cache"], project, env)
            timed([papermill, nb, "/dev/null", "--no-progress-bar"], project, env)
            pm = best(
                [papermill, nb, str(project / "out.ipynb"), "--no-progress-bar"],
                project,
                env,
                args.repeat,
            )
            full = best([nb2prod, "run", pipeline, "--no-cache"], project, env, args.repeat)
            bare = best(
                [nb2prod, "run", pipeline, "--no-cache"],
                project,
                {**env, "NB2PROD_REPORTS": "0"},
                args.repeat,
            )
            rerun = best([nb2prod, "run", pipeline], project, env, args.repeat)
            record = json.loads(
                sorted((project / ".nb2prod" / "runs").glob("*/run.json"))[-1].read_text()
            )
            assert record["tracking"] and record["tracking"]["ok"], record["tracking"]
            rows.append((name, steps, pm, full, rerun, bare))
        print(
            f"nb2prod run vs papermill, {os.cpu_count()} CPUs, best of {args.repeat}, "
            "MLflow logging included (local SQLite store)\n"
        )
        print(
            f"{'notebook':<15}{'steps':>6}{'papermill':>11}{'full run':>10}{'re-run':>9}"
            f"{'full/pm':>9}{'rerun/full':>11}{'per step':>10}{'no reports':>12}"
            f"{'reports cost':>14}"
        )
        for name, steps, pm, full, rerun, bare in rows:
            print(
                f"{name:<15}{steps:>6}{pm:>10.2f}s{full:>9.2f}s{rerun:>8.2f}s"
                f"{full / pm:>9.2f}{rerun / full:>11.2f}{(full - pm) / steps:>9.2f}s"
                f"{bare:>11.2f}s{full - bare:>+13.2f}s"
            )
        small, heavy = rows[0], rows[1]
        print()
        print(
            f"small three-step notebook, full run:  {small[3] / small[2]:.2f}x papermill "
            "(target <= 1.6)"
        )
        print(
            f"two independent trainings, full run:  {heavy[3] / heavy[2]:.2f}x papermill "
            "(target <= 1.0)"
        )
        print(
            f"unchanged re-run:                     {small[4] / small[3]:.2f}x a full run "
            "(target <= 0.4)"
        )
        print(
            f"per-step overhead (small notebook):   {(small[3] - small[2]) / small[1]:.2f}s "
            f"(median of both: {statistics.median([(r[3] - r[2]) / r[1] for r in rows]):.2f}s)"
        )
        for name, _, pm, full, _, bare in rows:
            print(
                f"step reports, {name + ':':<24}{full / bare:.2f}x the run without them "
                f"({bare / pm:.2f}x papermill without, {full / pm:.2f}x with)"
            )


if __name__ == "__main__":
    main()
