"""The runtime contract end to end: exported steps, run one after another with plain papermill,
give the same results as the notebook run top to bottom (without its skip cells)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from nb2prod.export.writer import export_notebook
from nb2prod.plan.planner import Plan, inspect_notebook
from nb2prod.runtime import read_metrics

from conftest import EXAMPLES, write_notebook

pytestmark = pytest.mark.timeout(900)


def _numeric(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def reference_metrics(
    plan: Plan, tmp: Path, parameters: dict[str, Any] | None = None
) -> dict[str, float]:
    """Run the notebook itself (skip cells removed) and record what its metrics cells hold."""
    nb = nbformat.read(plan.notebook.path, as_version=4)
    metrics_cells = {m.cell: m for s in plan.steps for m in s.metrics}
    cells = [nbformat.v4.new_code_cell("__ref = {}")]
    for index, cell in enumerate(nb.cells):
        if "skip" in cell.metadata.get("tags", []):
            continue
        cells.append(cell)
        m = metrics_cells.get(index)
        if m is not None:
            names = ", ".join(f"{n!r}: {n}" for n in m.names)
            cells.append(
                nbformat.v4.new_code_cell(
                    "from IPython import get_ipython as __gi\n"
                    "__last = __gi().last_execution_result.result\n"
                    f"__ref.update({{{names}}})\n"
                    "if isinstance(__last, dict):\n    __ref.update(__last)"
                )
            )
    out_file = tmp / "reference.json"
    cells.append(
        nbformat.v4.new_code_cell(
            "import json as __json\n"
            "__ref = {k: (v.item() if hasattr(v, 'item') else v) for k, v in __ref.items()}\n"
            f"open({str(out_file)!r}, 'w').write(__json.dumps({{k: v for k, v in __ref.items() "
            "if isinstance(v, (int, float)) and not isinstance(v, bool)}))"
        )
    )
    nb.cells = cells
    papermill.execute_notebook(
        nb,
        str(tmp / "reference.ipynb"),
        parameters=parameters or {},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp),
    )
    return json.loads(out_file.read_text())


def run_steps(version_dir: Path, run: Path) -> dict[str, float]:
    import jupytext
    import yaml

    run.mkdir(parents=True)
    shutil.copy(version_dir / "config.yaml", run / "config.yaml")
    manifest = yaml.safe_load((version_dir / "pipeline.yaml").read_text())
    metrics: dict[str, float] = {}
    for name in manifest["dag"]["order"]:
        step = jupytext.read(version_dir / "steps" / f"{name}.py")
        papermill.execute_notebook(
            step,
            str(run / f"{name}.ipynb"),
            parameters={"nb2prod_run_dir": str(run)},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(run),
        )
        metrics.update(read_metrics(run, name))
    return metrics


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_steps_reproduce_the_notebook(tmp_path: Path, example: Path) -> None:
    plan = inspect_notebook(example)
    expected = reference_metrics(plan, tmp_path)
    assert expected, "the example must log metrics"
    result = export_notebook(example, out=tmp_path / "pipelines")
    got = run_steps(result.path, tmp_path / "run")
    assert _numeric(got) == expected


def test_step_runs_with_the_papermill_and_jupytext_clis(tmp_path: Path) -> None:
    """The commands the generated README gives, run as a user would."""
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("scale = 2  # factor", ["parameters"]),
            ("import pandas as pd\nframe = pd.DataFrame({'a': [1, 2, 3]})", ["preprocessing"]),
            ("total = int(frame['a'].sum()) * scale", ["training"]),
            ("total", ["metrics"]),
        ],
    )
    version = export_notebook(nb, out=tmp_path / "pipelines").path
    run = tmp_path / "run"
    run.mkdir()
    bin_dir = Path(sys.executable).parent
    for step in ("preprocessing", "training"):
        ipynb = tmp_path / f"{step}.ipynb"
        subprocess.run(
            [
                str(bin_dir / "jupytext"),
                "--to",
                "ipynb",
                "-o",
                str(ipynb),
                str(version / "steps" / f"{step}.py"),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                str(bin_dir / "papermill"),
                str(ipynb),
                str(run / f"{step}.out.ipynb"),
                "-f",
                str(version / "config.yaml"),
                "-p",
                "nb2prod_run_dir",
                str(run),
                "-p",
                "scale",
                "5",
            ],
            check=True,
            capture_output=True,
        )
    assert (run / "steps" / "preprocessing" / "outputs" / "frame.pkl").is_file()
    assert read_metrics(run, "training") == {"total": 30}


def test_missing_parameter_names_the_parameter(tmp_path: Path) -> None:
    import jupytext

    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("rate = 0.5", ["parameters"]),
            ("x = rate * 2", ["training"]),
        ],
    )
    version = export_notebook(nb, out=tmp_path / "pipelines").path
    run = tmp_path / "run"
    run.mkdir()  # no config.yaml and no -p: the step must say which parameter is missing
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            jupytext.read(version / "steps" / "training.py"),
            str(tmp_path / "out.ipynb"),
            parameters={"nb2prod_run_dir": str(run)},
            kernel_name="python3",
            progress_bar=False,
        )
    assert info.value.ename == "ParameterMissingError" and "rate" in info.value.evalue


def test_unsaveable_output_names_the_variable(tmp_path: Path) -> None:
    import jupytext

    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("numbers = (i for i in range(3))", ["preprocessing"]),
            ("total = sum(numbers)", ["training"]),
        ],
    )
    version = export_notebook(nb, out=tmp_path / "pipelines").path
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            jupytext.read(version / "steps" / "preprocessing.py"),
            str(tmp_path / "out.ipynb"),
            parameters={"nb2prod_run_dir": str(run)},
            kernel_name="python3",
            progress_bar=False,
        )
    assert info.value.ename == "OutputNotSaveableError" and "numbers" in info.value.evalue
    assert not list((run / "steps" / "preprocessing" / "outputs").iterdir())


# Notebooks written the way people write them, beyond the examples: display idioms, loops over
# models, a user class and a notebook function inside a fitted sklearn pipeline passed on.
UNSEEN = {
    "iris_two_models": [
        "#md # Iris",
        "import pandas as pd\nimport numpy as np\nfrom sklearn.datasets import load_iris",
        (
            "n_neighbors = 5\nfeatures = ['sepal length (cm)', 'petal length (cm)']\nseed = 1",
            ["parameters"],
        ),
        ("iris = load_iris(as_frame=True)\ndf = iris.frame\ndf.head()", ["preprocessing"]),
        "df = df[features + ['target']]\ndf.describe()",
        ("df.plot()", ["skip"]),
        "from sklearn.model_selection import train_test_split\n"
        "train, test = train_test_split(df, random_state=seed)",
        (
            "from sklearn.neighbors import KNeighborsClassifier\n"
            "knn = KNeighborsClassifier(n_neighbors)\nknn.fit(train[features], train.target)",
            ["training:knn"],
        ),
        (
            "from sklearn.tree import DecisionTreeClassifier\n"
            "tree = DecisionTreeClassifier(random_state=seed).fit(train[features], train.target)",
            ["training:tree"],
        ),
        (
            "results = {}\nfor name, m in [('knn', knn), ('tree', tree)]:\n"
            "    results[name] = m.score(test[features], test.target)\nresults",
            ["evaluation"],
        ),
        ("knn_acc = results['knn']\ntree_acc = results['tree']", ["metrics"]),
    ],
    "objects_across_steps": [
        (
            "import numpy as np\nfrom sklearn.pipeline import make_pipeline\n"
            "from sklearn.preprocessing import FunctionTransformer, StandardScaler\n"
            "from sklearn.linear_model import Ridge\nfrom sklearn.datasets import load_diabetes\n\n"
            "def log1p_abs(X):\n    return np.log1p(np.abs(X))\n\n"
            "class Clipper:\n    def __init__(self, lo, hi):\n        self.lo, self.hi = lo, hi\n"
            "    def transform(self, X):\n        return np.clip(X, self.lo, self.hi)",
            ["setup"],
        ),
        ("alpha = 0.5\nclip = 3.0", ["parameters"]),
        (
            "X, y = load_diabetes(return_X_y=True)\nhistory = []\nhistory.append('loaded')",
            ["preprocessing"],
        ),
        (
            "model = make_pipeline(FunctionTransformer(log1p_abs), StandardScaler(), "
            "Ridge(alpha=alpha))\nmodel.fit(X, y)\nhistory.append('trained')\n"
            "clipper = Clipper(-clip, clip)",
            ["training"],
        ),
        (
            "preds = model.predict(X)\nclipped = clipper.transform(preds)\n"
            "r2 = model.score(X, y)\nn_steps = len(history)",
            ["evaluation"],
        ),
        ("{'r2': r2, 'n_steps': n_steps, 'max_clipped': float(clipped.max())}", ["metrics"]),
    ],
}


@pytest.mark.parametrize("name", sorted(UNSEEN))
def test_unseen_style_notebooks_reproduce(tmp_path: Path, name: str) -> None:
    nb = write_notebook(tmp_path / f"{name}.ipynb", UNSEEN[name])
    plan = inspect_notebook(nb)
    assert plan.errors == []
    expected = reference_metrics(plan, tmp_path)
    result = export_notebook(nb, out=tmp_path / "pipelines")
    assert _numeric(run_steps(result.path, tmp_path / "run")) == expected
    if name == "objects_across_steps":
        assert expected["n_steps"] == 2  # the list mutated in training reached evaluation
