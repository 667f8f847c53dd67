"""Warnings about randomness no seed fixes: steps run in fresh kernels, so results would drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nb2prod.plan.planner import Plan, inspect_notebook

from conftest import run_cli, write_notebook


def random_warnings(plan: Plan) -> list[str]:
    return [p.render("nb") for p in plan.problems if p.code == "unseeded-random"]


def plan_of(make_nb, cells) -> Plan:  # type: ignore[no-untyped-def]
    return inspect_notebook(make_nb(cells))


UNSEEDED = [
    (
        "import random\n\nimport numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import train_test_split",
        ["setup"],
    ),
    ("n = 20  # rows", ["parameters"]),
    ("X = np.random.rand(n, 2)\ny = (X[:, 0] > 0.5).astype(int)", ["preprocessing"]),
    (
        "X_train, X_test, y_train, y_test = train_test_split(X, y)\n"
        "model = RandomForestClassifier(n_estimators=5).fit(X_train, y_train)",
        ["training"],
    ),
    (
        "order = list(range(3))\nrandom.shuffle(order)\nacc = model.score(X_test, y_test)",
        ["evaluation"],
    ),
]


def test_unseeded_randomness_is_a_warning_in_inspect_and_export(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", UNSEEDED)
    text = run_cli("inspect", nb, cwd=tmp_path)
    assert text.returncode == 0, text.stdout + text.stderr  # warnings do not block
    assert "Problems (3 warnings)" in text.stdout
    assert (
        "warning: " + str(nb) + ", cell 3 (id c2): draws from NumPy's global random generator "
        "(`np.random.rand`) with no seed" in text.stdout
    )
    assert "call `np.random.seed(42)` in a `setup` cell" in text.stdout
    assert (
        "cell 4 (id c3): leaves `random_state` unset in `train_test_split`, "
        "`RandomForestClassifier`" in text.stdout
    )
    assert "pass `random_state=42`" in text.stdout
    assert "cell 5 (id c4): draws from Python's global random generator (`random.shuffle`)" in (
        text.stdout
    )

    as_json = json.loads(run_cli("inspect", nb, "--json", cwd=tmp_path).stdout)
    found = [p for p in as_json["problems"] if p["code"] == "unseeded-random"]
    assert [(p["severity"], p["cell"]["index"]) for p in found] == [
        ("warning", 2),
        ("warning", 3),
        ("warning", 4),
    ]

    exported = run_cli("export", nb, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.count("warning: ") == 3
    assert "random_state" in exported.stderr


def test_seeds_in_setup_or_in_the_step_silence_the_warning(make_nb) -> None:
    cells = list(UNSEEDED)
    cells[0] = (cells[0][0] + "\n\nrandom.seed(0)\nnp.random.seed(0)", ["setup"])
    # With NumPy's global generator seeded, scikit-learn's default random_state draws from it.
    assert random_warnings(plan_of(make_nb, cells)) == []
    in_step = list(UNSEEDED)
    in_step[2] = ("np.random.seed(1)\n" + in_step[2][0], ["preprocessing"])
    in_step[4] = ("random.seed(2)\n" + in_step[4][0], ["evaluation"])
    warnings = random_warnings(plan_of(make_nb, in_step))
    # The seed in preprocessing does not reach training, which runs in its own kernel.
    assert len(warnings) == 1 and "cell 4" in warnings[0] and "random_state" in warnings[0]


@pytest.mark.parametrize(
    "where", [("np.random.seed(0)", []), ("np.random.seed(0)", ["skip"])], ids=["untagged", "skip"]
)
def test_a_seed_the_pipeline_never_runs_does_not_count(make_nb, where) -> None:  # type: ignore[no-untyped-def]
    plan = plan_of(
        make_nb,
        [("import numpy as np", ["setup"]), where, ("x = np.random.rand(3)", ["training"])],
    )
    assert len(random_warnings(plan)) == 1


@pytest.mark.parametrize(
    "code",
    [
        "rng = np.random.default_rng(42)\nx = rng.normal(size=3)",
        "rng = np.random.default_rng(seed)\nx = rng.normal(size=3)",
        "rs = np.random.RandomState(0)\nx = rs.rand(3)",
        "m = RandomForestClassifier(random_state=42)",
        "m = RandomForestClassifier(random_state=seed)",
        "m = RandomForestClassifier(**params)",
        "cv = KFold(5)",
        "cv = KFold(n_splits=5, shuffle=False)",
        "a, b = train_test_split([1, 2, 3, 4], shuffle=False)",
        "m = LogisticRegression(max_iter=200)",
        "m = SVC()",
        "m = PCA(n_components=2)",
        "def shuffle(x):\n    return x\nz = shuffle([1, 2])",
        "r = random.Random(7)\nz = r.random()",
        "x = np.random.get_state()",
    ],
)
def test_no_false_alarms(make_nb, code: str) -> None:  # type: ignore[no-untyped-def]
    setup = (
        "import random\n\nimport numpy as np\n"
        "from sklearn.decomposition import PCA\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import KFold, train_test_split\n"
        "from sklearn.svm import SVC"
    )
    plan = plan_of(
        make_nb,
        [(setup, ["setup"]), ("seed = 1\nparams = {}", ["parameters"]), (code, ["training"])],
    )
    assert random_warnings(plan) == []


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("rng = np.random.default_rng()\nx = rng.normal()", "`np.random.default_rng`"),
        ("r = random.Random()\nx = r.random()", "`random.Random`"),
        ("cv = KFold(5, shuffle=True)", "`KFold`"),
        ("m = LogisticRegression(solver='liblinear')", "`LogisticRegression`"),
        ("m = SVC(probability=True)", "`SVC`"),
        ("m = RandomForestClassifier(random_state=None)", "`RandomForestClassifier`"),
        ("x = npr.permutation(5)", "`npr.permutation`"),
        ("x = rand(3)", "`rand`"),
        (
            "import sklearn.ensemble as ens\nm = ens.ExtraTreesRegressor()",
            "`ens.ExtraTreesRegressor`",
        ),
        ("np.random.seed()\nx = np.random.rand(2)", "`np.random.rand`"),  # seed() uses the clock
    ],
)
def test_unseeded_cases(make_nb, code: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    setup = (
        "import random\n\nimport numpy as np\nimport numpy.random as npr\n"
        "from numpy.random import rand\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import KFold\n"
        "from sklearn.svm import SVC"
    )
    warnings = random_warnings(plan_of(make_nb, [(setup, ["setup"]), (code, ["training"])]))
    assert len(warnings) == 1 and fragment in warnings[0], warnings


def test_skip_cells_and_follow_ons_are_not_warned_about(make_nb) -> None:  # type: ignore[no-untyped-def]
    plan = plan_of(
        make_nb,
        [
            ("import numpy as np", ["setup"]),
            ("x = 1", ["training"]),
            ("noise = np.random.rand(100)", ["skip"]),
            ("y = np.random.rand(3)", ["Evaluation"]),  # a typo: its role is unknown
        ],
    )
    assert random_warnings(plan) == []
    assert [p.code for p in plan.problems] == ["unknown-tag"]
