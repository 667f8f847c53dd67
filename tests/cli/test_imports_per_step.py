"""Each step module imports only what the step uses, plus imports kept for their side effect."""

from __future__ import annotations

from pathlib import Path

from nb2prod.plan.planner import inspect_notebook

from conftest import run_cli, write_notebook


def _imports(module: Path) -> list[str]:
    """The lines of the step module's import cell (the first code cell after the header)."""
    cells = module.read_text("utf-8").split("# %%")
    block = next(c for c in cells[1:] if "import nb2prod.runtime" in c)
    return [ln for ln in block.splitlines() if ln.startswith(("import ", "from "))]


def test_unused_imports_of_a_cell_do_not_spread_to_steps(tmp_path: Path) -> None:
    # LineaPy's messy notebook: one cell imports four names; the first step uses only `pd`.
    # Titanic (Kale): an `imports` cell whose unused modules went into every step.
    nb = write_notebook(
        tmp_path / "messy.ipynb",
        [
            (
                "import pandas as pd\n"
                "import matplotlib.pyplot as plt\n"
                "from sklearn.decomposition import PCA\n"
                "from sklearn.discriminant_analysis import LinearDiscriminantAnalysis",
                [],
            ),
            ("import math, statistics\nimport os\nfrom sklearn import linear_model", ["imports"]),
            ("df = pd.DataFrame({'a': [1.0, 4.0]})", ["preprocessing"]),
            ("root = math.sqrt(df['a'].sum())", ["training"]),
            ("mean = statistics.mean([root, 1.0])", ["evaluation"]),
        ],
    )
    r = run_cli("export", nb, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = tmp_path / "pipelines" / "messy" / "v1" / "steps"
    assert _imports(steps / "preprocessing.py") == ["import nb2prod.runtime", "import pandas as pd"]
    assert _imports(steps / "training.py") == ["import math", "import nb2prod.runtime"]
    assert _imports(steps / "evaluation.py") == ["import statistics", "import nb2prod.runtime"]
    for module in steps.glob("*.py"):
        text = module.read_text("utf-8")
        for unused in ("matplotlib", "PCA", "Discriminant", "import os", "linear_model"):
            assert unused not in text, (module.name, unused)


def test_imports_kept_for_their_side_effect(make_nb) -> None:  # type: ignore[no-untyped-def]
    plan = inspect_notebook(
        make_nb(
            [
                (
                    "from sklearn.experimental import enable_iterative_imputer\n"
                    "import hvplot.pandas\n"
                    "import my_plugin\n"
                    "import seaborn as sns  # noqa: F401 - sets the plot theme\n"
                    "import json\n"
                    "from collections import OrderedDict",
                    ["setup"],
                ),
                ("x = 1", ["preprocessing"]),
                ("y = x + 1", ["training"]),
            ]
        )
    )
    kept = {
        "from sklearn.experimental import enable_iterative_imputer",
        "import hvplot.pandas",
        "import my_plugin",
        "import seaborn as sns",
    }
    for step in plan.steps:
        assert {h.code for h in step.hoisted.values()} == kept, step.name
        assert all(h.unused for h in step.hoisted.values())
