"""How long does ``nb2prod export`` take, and how does that compare with papermill?

Generates two tagged notebooks in a temporary folder (10 cells and 2,000 cells), then measures:

* ``nb2prod export`` through the real CLI, in a subprocess, for each notebook (best of N runs,
  a fresh output folder every time), and the extra time the 2,000-cell notebook costs over the
  10-cell one (target: under 1 s);
* ``nb2prod.export_notebook`` in-process for both, after a warm-up, which leaves out the
  interpreter start-up and imports that every CLI call pays;
* re-exporting the unchanged 2,000-cell notebook (the "Up to date" path, which still renders
  everything to compare it with the latest version);
* ``nb2prod --help`` (best of 10; target: under 0.3 s);
* papermill running the 10-cell notebook once, in this same run, and the ratio of each export
  time to that papermill time.

Nothing here fails on a slow machine: it prints a table. Run it from the repository root:

    python benchmarks/bench_export.py [--runs N] [--cells N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SMALL_CELLS = 10
BIG_CELLS = 2000
BLOCK = 50  # a new step starts about every BLOCK cells
EXTRA_TARGET_S = 1.0
HELP_TARGET_S = 0.3


# --- notebook generation -------------------------------------------------------------------------
def _code(source: str, tags: list[str] | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": tags} if tags else {},
        "outputs": [],
        "source": source,
    }
    return cell


def _markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def _notebook(cells: list[dict[str, Any]]) -> dict[str, Any]:
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


SETUP = """import math
import random
import statistics

random.seed(0)"""

PARAMETERS = """n_rows = 2000  # rows of synthetic data
noise = 0.1  # standard deviation of the noise added to the target
learning_rate = 0.05  # step size of the gradient descent
epochs = 20  # passes over the data
threshold = 0.5  # decision threshold for the evaluation
weights = [0.5, -1.25, 2.0]  # true coefficients of the synthetic data"""


def small_notebook() -> dict[str, Any]:
    """10 cells: setup, parameters, 3 steps (one with a metrics cell), 2 skip cells."""
    cells = [
        _code(SETUP, ["setup"]),
        _code(PARAMETERS, ["parameters"]),
        _code(
            "rows = [[random.gauss(0, 1) for _ in weights] for _ in range(n_rows)]\n"
            "target = [sum(w * x for w, x in zip(weights, r)) + random.gauss(0, noise)"
            " for r in rows]",
            ["preprocessing"],
        ),
        _code(
            "split = int(0.8 * len(rows))\n"
            "X_train, X_test = rows[:split], rows[split:]\n"
            "y_train, y_test = target[:split], target[split:]"
        ),
        _code("print(statistics.fmean(target), statistics.pstdev(target))", ["skip"]),
        _code(
            "def predict(coef, row):\n"
            "    return sum(c * x for c, x in zip(coef, row))\n\n\n"
            "coef = [0.0 for _ in weights]",
            ["training"],
        ),
        _code(
            "for _ in range(epochs):\n"
            "    for row, y in zip(X_train, y_train):\n"
            "        err = predict(coef, row) - y\n"
            "        coef = [c - learning_rate * err * x for c, x in zip(coef, row)]\n"
            "print([round(c, 3) for c in coef])"
        ),
        _code("preds = [predict(coef, row) for row in X_test]", ["evaluation"]),
        _code(
            "mse = statistics.fmean((p - y) ** 2 for p, y in zip(preds, y_test))\n"
            "rmse = math.sqrt(mse)\n"
            "hit_rate = statistics.fmean(abs(p - y) < threshold for p, y in zip(preds, y_test))",
            ["metrics"],
        ),
        _code("print(sorted(zip(preds, y_test))[:5])", ["skip"]),
    ]
    assert len(cells) == SMALL_CELLS
    return _notebook(cells)


def big_notebook(n_cells: int = BIG_CELLS) -> dict[str, Any]:
    """About ``n_cells`` cells: a new step every ~BLOCK cells, data flowing between steps.

    Each step reads the output of the step before it (and the shared training history, which
    training steps mutate with ``.append()``), builds a chain of local variables, defines a helper
    or imports a module now and then, and ends with the value the next step reads. Evaluation
    steps end with a metrics cell. Every step has a few markdown cells and one ``skip`` cell.
    """
    cells: list[dict[str, Any]] = [
        _markdown("# A long notebook\n\nGenerated by `benchmarks/bench_export.py`."),
        _code(SETUP, ["setup"]),
        _code(PARAMETERS, ["parameters"]),
        _code(
            "def clip(values, lo=-3.0, hi=3.0):\n"
            "    return [min(max(v, lo), hi) for v in values]\n\n\n"
            "def scaled(values, factor):\n"
            "    return [v * factor for v in values]"
        ),
    ]
    roles = ["preprocessing", "training", "evaluation"]
    block = 0
    previous = None
    while len(cells) < n_cells:
        role = roles[block % 3]
        prefix = f"b{block}"
        room = min(BLOCK, n_cells - len(cells))
        body: list[dict[str, Any]] = []
        if previous is None:
            first = f"{prefix}_v0 = [random.gauss(0, 1) for _ in range(n_rows)]\nhistory = []"
        elif role == "training":
            first = (
                f"{prefix}_v0 = scaled({previous}, learning_rate)\n"
                f"history.append(statistics.fmean({prefix}_v0))"
            )
        else:
            first = f"{prefix}_v0 = clip({previous})"
        body.append(_code(first, [f"{role}:{role[:4]}_{block}"]))
        i = 0
        while len(body) < room - 1:
            i += 1
            kind = i % 10
            if kind == 3 and len(body) < room - 2:
                body.append(_markdown(f"### Block {block}, part {i}\n\nNotes about the data."))
                body.append(_code(f"{prefix}_v{i} = sorted({prefix}_v{i - 1})"))
            elif i == 5 and len(body) < room - 2:  # one exploration cell per step
                body.append(
                    _code(f"print(len({prefix}_v{i - 1}), {prefix}_v{i - 1}[:3])", ["skip"])
                )
                body.append(_code(f"{prefix}_v{i} = {prefix}_v{i - 1}"))  # keep the chain going
            elif kind == 7:
                body.append(
                    _code(
                        f"def {prefix}_step{i}(values):\n"
                        f"    return [v + noise * {i} for v in values]\n\n\n"
                        f"{prefix}_v{i} = {prefix}_step{i}({prefix}_v{i - 1})"
                    )
                )
            elif kind == 9:
                body.append(
                    _code(
                        "from statistics import fmean\n\n"
                        f"{prefix}_mean{i} = fmean({prefix}_v{i - 1})\n"
                        f"{prefix}_v{i} = [v - {prefix}_mean{i} for v in {prefix}_v{i - 1}]"
                    )
                )
            else:
                body.append(
                    _code(
                        f"{prefix}_v{i} = [v * 0.99 + {i % 7} * 0.001 for v in {prefix}_v{i - 1}]"
                    )
                )
        last = f"{prefix}_v{i}"
        if role == "evaluation":
            body.append(
                _code(
                    f"{prefix}_mean = statistics.fmean({last})\n"
                    f"{prefix}_spread = statistics.pstdev({last})\n"
                    f"{prefix}_hits = statistics.fmean(abs(v) < threshold for v in {last})",
                    ["metrics"],
                )
            )
        else:
            body.append(_code(f"{prefix}_out = {last}"))
            last = f"{prefix}_out"
        cells.extend(body)
        previous = last if role != "evaluation" else previous
        block += 1
    return _notebook(cells[:n_cells])


# --- timing helpers ------------------------------------------------------------------------------
def nb2prod_command() -> list[str]:
    """The installed console script (what users type), else ``python -m nb2prod``."""
    script = Path(sys.executable).with_name("nb2prod")
    if script.exists():
        return [str(script)]
    found = shutil.which("nb2prod")
    return [found] if found else [sys.executable, "-m", "nb2prod"]


def best_of(runs: int, func: Callable[[int], None]) -> tuple[float, float]:
    """(best, median) wall time in seconds of ``func(i)`` over ``runs`` calls."""
    times = []
    for i in range(runs):
        gc.collect()  # start every run with the same garbage-collector state
        start = time.perf_counter()
        func(i)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def run_checked(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def cli_export(nb: Path, work: Path, tag: str) -> Callable[[int], None]:
    cmd = nb2prod_command()

    def run(i: int) -> None:
        run_checked([*cmd, "export", str(nb), "--out", str(work / f"out-cli-{tag}-{i}")], work)

    return run


def api_export(nb: Path, work: Path, tag: str) -> Callable[[int], None]:
    import nb2prod

    def run(i: int) -> None:
        nb2prod.export_notebook(nb, out=work / f"out-api-{tag}-{i}")

    return run


def papermill_once(nb: Path, work: Path) -> float:
    """One papermill run of ``nb``, kernel start-up included (as every pipeline step pays it)."""
    import papermill

    # The kernel inherits our stderr and logs start-up chatter there; keep the table readable.
    # A failing notebook still raises PapermillExecutionError with the cell and the traceback.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            start = time.perf_counter()
            papermill.execute_notebook(
                str(nb),
                str(work / "executed.ipynb"),
                kernel_name="python3",
                progress_bar=False,
                cwd=str(work),
            )
            return time.perf_counter() - start
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per export timing (best of N)")
    parser.add_argument("--cells", type=int, default=BIG_CELLS, help="size of the big notebook")
    parser.add_argument("--keep", type=Path, help="write the notebooks here and keep them")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="nb2prod-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    small, big = work / "small.ipynb", work / "big.ipynb"
    small.write_text(json.dumps(small_notebook(), indent=1), encoding="utf-8")
    big.write_text(json.dumps(big_notebook(args.cells), indent=1), encoding="utf-8")
    n_big = len(json.loads(big.read_text("utf-8"))["cells"])

    from nb2prod import __version__, inspect_notebook

    big_plan = inspect_notebook(big)
    if big_plan.errors:
        sys.exit(
            "benchmark: the generated notebook has errors:\n"
            + "\n".join(p.render(str(big)) for p in big_plan.errors[:5])
        )
    n_steps = len(big_plan.steps)
    n_edges = len(big_plan.edges)

    started = time.perf_counter()
    try:
        results: dict[str, tuple[float, float, int]] = {}
        cmd = nb2prod_command()

        def helper(_: int) -> None:
            run_checked([*cmd, "--help"], work)

        helper(0)  # warm the file system cache
        results["help"] = (*best_of(10, helper), 10)
        for tag, nb in (("small", small), ("big", big)):
            cli_export(nb, work, f"warm-{tag}")(0)
            results[f"cli-{tag}"] = (*best_of(args.runs, cli_export(nb, work, tag)), args.runs)
        for tag, nb in (("small", small), ("big", big)):
            api_export(nb, work, f"warm-{tag}")(0)  # imports nbformat, jupytext, IPython once
            results[f"api-{tag}"] = (*best_of(args.runs, api_export(nb, work, tag)), args.runs)

        def again(_: int) -> None:  # unchanged notebook: renders and compares, writes nothing
            run_checked([*cmd, "export", str(big), "--out", str(work / "out-cli-big-0")], work)

        results["cli-big-again"] = (*best_of(args.runs, again), args.runs)
        papermill_s = papermill_once(small, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started

    rows = [
        ("nb2prod --help", "help"),
        (f"export {SMALL_CELLS} cells (CLI)", "cli-small"),
        (f"export {n_big:,} cells (CLI)", "cli-big"),
        (f"re-export {n_big:,} cells, unchanged (CLI)", "cli-big-again"),
        (f"export {SMALL_CELLS} cells (in-process)", "api-small"),
        (f"export {n_big:,} cells (in-process)", "api-big"),
    ]
    machine = f"Python {platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPUs"
    print(f"nb2prod {__version__}, {machine}")
    print(f"big notebook: {n_big:,} cells, {n_steps} steps, {n_edges} DAG edges")
    print()
    print(f"{'measurement':<44}{'best':>10}{'median':>10}{'runs':>6}")
    print("-" * 70)
    for label, key in rows:
        best, median, runs = results[key]
        print(f"{label:<44}{best:>9.3f}s{median:>9.3f}s{runs:>6}")
    label = f"papermill, {SMALL_CELLS}-cell notebook (once)"
    print(f"{label:<44}{papermill_s:>9.3f}s{'':>10}{1:>6}")
    print()

    def verdict(value: float, target: float) -> str:
        return f"(target < {target:.1f}s: {'ok' if value < target else 'OVER TARGET'})"

    extra_cli = results["cli-big"][0] - results["cli-small"][0]
    extra_api = results["api-big"][0] - results["api-small"][0]
    help_s = results["help"][0]
    summary = [
        (
            f"extra time of {n_big:,} over {SMALL_CELLS} cells (CLI, best)",
            f"{extra_cli:6.3f}s",
            verdict(extra_cli, EXTRA_TARGET_S),
        ),
        (
            f"extra time of {n_big:,} over {SMALL_CELLS} cells (in-process, best)",
            f"{extra_api:6.3f}s",
            "",
        ),
        ("nb2prod --help (best of 10)", f"{help_s:6.3f}s", verdict(help_s, HELP_TARGET_S)),
        (
            f"export {SMALL_CELLS} cells (CLI) / papermill {SMALL_CELLS} cells",
            f"{results['cli-small'][0] / papermill_s:6.2f}",
            "",
        ),
        (
            f"export {n_big:,} cells (CLI) / papermill {SMALL_CELLS} cells",
            f"{results['cli-big'][0] / papermill_s:6.2f}",
            "",
        ),
    ]
    for label, value, note in summary:
        print(f"{label + ':':<52}{value:>8}  {note}".rstrip())
    print(f"\ntotal benchmark time: {total:.1f}s")


if __name__ == "__main__":
    main()
