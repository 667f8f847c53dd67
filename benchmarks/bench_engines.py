"""What running a pipeline the way an engine does costs: one `nb2prod step` process per step.

An engine task (a Kubeflow Pipelines component, an Airflow task) runs ``nb2prod step`` for one
step in a process of its own: it pays Python's start-up, nb2prod's imports and a cold kernel
for every step, where ``nb2prod run`` starts its kernels ahead (forked from a warm zygote) while
earlier steps run. This script exports an example notebook and times, in the same run on the
same machine:

- ``papermill`` on the original notebook (the reference: ratios are against it);
- ``nb2prod run --no-track --no-cache`` of the exported version;
- every step in turn with ``nb2prod step ... --run-dir DIR``, as an engine runs them one after
  another (no engine overhead counted: scheduling, pods and artifact copies come on top);

and prints each as a ratio to papermill, plus the cost of ``nb2prod step`` per step over
``nb2prod run``. It never fails because a machine is slow. Run from the repository root:
``python benchmarks/bench_engines.py [--notebook notebooks/breast_cancer.ipynb] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="notebooks/breast_cancer.ipynb")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    nb2prod = [sys.executable, "-m", "nb2prod"]
    with tempfile.TemporaryDirectory(prefix="nb2prod-bench-engines-") as tmp:
        project = Path(tmp)
        source = REPO / args.notebook
        shutil.copytree(source.parent, project / source.parent.name)
        notebook = Path(source.parent.name) / source.name
        subprocess.run(
            [*nb2prod, "export", str(notebook)], cwd=project, check=True, capture_output=True
        )
        (version,) = (project / "pipelines").glob("*/v1")
        manifest = yaml.safe_load((version / "pipeline.yaml").read_text())
        steps = [s["name"] for s in manifest["steps"]]
        rel = version.relative_to(project).as_posix()

        papermill, run, engine = [], [], []
        per_step: dict[str, list[float]] = {s: [] for s in steps}
        for i in range(args.repeat):
            papermill.append(
                timed(
                    [str(BIN / "papermill"), str(notebook), str(project / f"out{i}.ipynb")], project
                )
            )
            run.append(timed([*nb2prod, "run", rel, "--no-track", "--no-cache"], project))
            total = 0.0
            for s in steps:
                took = timed([*nb2prod, "step", rel, s, "--run-dir", f"engine-{i}"], project)
                per_step[s].append(took)
                total += took
            engine.append(total)

    pm, r, e = (statistics.median(x) for x in (papermill, run, engine))
    print(f"{args.notebook}: {len(steps)} steps, median of {args.repeat}")
    print(f"  papermill (original notebook)  {pm:6.2f} s  1.00x")
    print(f"  nb2prod run                    {r:6.2f} s  {r / pm:.2f}x")
    print(f"  nb2prod step, one per step     {e:6.2f} s  {e / pm:.2f}x")
    for s in steps:
        print(f"    {s:<28} {statistics.median(per_step[s]):6.2f} s")
    print(f"  nb2prod step costs {(e - r) / len(steps):.2f} s per step over nb2prod run")


if __name__ == "__main__":
    main()
