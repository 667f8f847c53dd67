"""Finding randomness that no seed fixes, so ``inspect`` can warn before results drift.

Each step runs in a fresh kernel, so a draw from an unseeded generator gives different results
between the notebook and the pipeline, and between two runs. This module finds, in one parsed
cell, the calls that matter: seeds (``random.seed(0)``, ``np.random.seed(0)``), draws from the
global generators (``random.shuffle``, ``np.random.rand``), generators created without a seed
(``np.random.default_rng()``), and scikit-learn classes and functions whose ``random_state`` is
left unset. Names are resolved through the notebook's imports (``np`` -> ``numpy``), so a
function of the user's own called ``shuffle`` is not mistaken for ``random.shuffle``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

UseKind = Literal[
    "seed-random", "seed-numpy", "seed-all", "draw-random", "draw-numpy", "sklearn", "generator"
]

# Python's `random` module: functions that draw from its global generator.
RANDOM_DRAWS = frozenset(
    {
        "random",
        "randint",
        "randrange",
        "choice",
        "choices",
        "shuffle",
        "sample",
        "uniform",
        "gauss",
        "normalvariate",
        "triangular",
        "betavariate",
        "binomialvariate",
        "expovariate",
        "gammavariate",
        "lognormvariate",
        "vonmisesvariate",
        "paretovariate",
        "weibullvariate",
        "getrandbits",
        "randbytes",
    }
)
# numpy.random names that create a generator: unseeded when called with no seed (or None).
NUMPY_GENERATORS = frozenset(
    {"default_rng", "RandomState", "PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"}
)
# numpy.random names that neither draw nor create a generator.
NUMPY_NOT_DRAWS = frozenset(
    {"seed", "get_state", "set_state", "Generator", "SeedSequence", "BitGenerator"}
    | {"get_bit_generator", "set_bit_generator"}
    | NUMPY_GENERATORS
)
# Helpers of other libraries that seed Python's and NumPy's generators together.
SEED_EVERYTHING = frozenset({"seed_everything", "set_random_seed", "set_seed"})
SEEDING_LIBRARIES = frozenset(
    {"lightning", "pytorch_lightning", "transformers", "keras", "tensorflow"}
)
# Top-level modules whose names this module looks at; cells mentioning none are not walked.
RELEVANT_MODULES = frozenset({"random", "numpy", "sklearn"}) | SEEDING_LIBRARIES


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, *values: object) -> bool:
    return isinstance(node, ast.Constant) and node.value in values


def _always(call: ast.Call) -> bool:
    return True


def _shuffled(call: ast.Call) -> bool:
    return _is_const(_kw(call, "shuffle"), True)


def _not_unshuffled(call: ast.Call) -> bool:
    return not _is_const(_kw(call, "shuffle"), False)


def _random_solver(call: ast.Call) -> bool:
    # Only these LogisticRegression solvers use random_state; the default (lbfgs) does not.
    return _is_const(_kw(call, "solver"), "sag", "saga", "liblinear")


def _probability(call: ast.Call) -> bool:
    return _is_const(_kw(call, "probability"), True)


def _randomized_svd(call: ast.Call) -> bool:
    return _is_const(_kw(call, "svd_solver"), "randomized", "arpack")


# scikit-learn classes and functions whose results depend on `random_state` (None by default),
# with the condition under which they use it.
SKLEARN_RANDOM: dict[str, Callable[[ast.Call], bool]] = {
    **dict.fromkeys(
        [
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
            "GradientBoostingClassifier",
            "GradientBoostingRegressor",
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "ExtraTreeClassifier",
            "ExtraTreeRegressor",
            "BaggingClassifier",
            "BaggingRegressor",
            "AdaBoostClassifier",
            "AdaBoostRegressor",
            "IsolationForest",
            "RandomTreesEmbedding",
            "SGDClassifier",
            "SGDRegressor",
            "Perceptron",
            "PassiveAggressiveClassifier",
            "PassiveAggressiveRegressor",
            "MLPClassifier",
            "MLPRegressor",
            "KMeans",
            "MiniBatchKMeans",
            "BisectingKMeans",
            "SpectralClustering",
            "GaussianMixture",
            "BayesianGaussianMixture",
            "TruncatedSVD",
            "TSNE",
            "RandomizedSearchCV",
            "HalvingRandomSearchCV",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "ShuffleSplit",
            "StratifiedShuffleSplit",
            "GroupShuffleSplit",
            "make_classification",
            "make_regression",
            "make_blobs",
            "make_moons",
            "make_circles",
            "permutation_importance",
            "resample",
        ],
        _always,
    ),
    "train_test_split": _not_unshuffled,
    "KFold": _shuffled,
    "StratifiedKFold": _shuffled,
    "LogisticRegression": _random_solver,
    "SVC": _probability,
    "NuSVC": _probability,
    "PCA": _randomized_svd,
}


@dataclass(frozen=True)
class RandomUse:
    kind: UseKind
    shown: str  # the callee as written: "np.random.rand", "RandomForestClassifier"
    line: int


def import_aliases(trees: Iterable[ast.Module]) -> dict[str, str]:
    """What each imported name stands for, for the modules this file knows about.

    ``np`` -> ``numpy``, ``rand`` -> ``numpy.random.rand``. Top-level imports only: those are
    the ones every step gets.
    """
    out: dict[str, str] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        out[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        out[a.asname or a.name] = f"{node.module}.{a.name}"
    return {k: v for k, v in out.items() if v.split(".")[0] in RELEVANT_MODULES}


def _qualified(func: ast.expr, aliases: dict[str, str]) -> str | None:
    """``np.random.rand`` -> ``numpy.random.rand`` when ``np`` is an import; else ``None``."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name) or func.id not in aliases:
        return None
    return ".".join([aliases[func.id], *reversed(parts)])


def _seeded(call: ast.Call) -> bool:
    """A seed call that fixes the sequence: ``seed(0)``, not ``seed()`` (which seeds from time)."""
    first = call.args[0] if call.args else _kw(call, "seed") or _kw(call, "a")
    return first is not None and not _is_const(first, None)


def _random_state_set(call: ast.Call) -> bool:
    if any(k.arg is None for k in call.keywords):  # **kwargs may carry it
        return True
    value = _kw(call, "random_state")
    return value is not None and not _is_const(value, None)


def _classify(call: ast.Call, name: str) -> UseKind | None:
    module, _, attr = name.rpartition(".")
    if module == "random":
        if attr == "seed":
            return "seed-random" if _seeded(call) else None
        if attr == "Random":
            return None if _seeded(call) else "generator"
        return "draw-random" if attr in RANDOM_DRAWS else None
    if module == "numpy.random":
        if attr == "seed":
            return "seed-numpy" if _seeded(call) else None
        if attr in NUMPY_GENERATORS:
            return None if _seeded(call) else "generator"
        return None if attr in NUMPY_NOT_DRAWS else "draw-numpy"
    if attr in SEED_EVERYTHING and module.split(".")[0] in SEEDING_LIBRARIES:
        return "seed-all" if _seeded(call) else None
    if name.startswith("sklearn.") and attr in SKLEARN_RANDOM:
        if SKLEARN_RANDOM[attr](call) and not _random_state_set(call):
            return "sklearn"
    return None


def random_uses(tree: ast.AST, aliases: dict[str, str]) -> list[RandomUse]:
    """The seeds and unseeded randomness of one cell, in source order."""
    out: list[RandomUse] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _qualified(node.func, aliases)
        if name is None:
            continue
        kind = _classify(node, name)
        if kind is not None:
            out.append(RandomUse(kind, ast.unparse(node.func), node.lineno))
    return sorted(out, key=lambda u: u.line)


def seeds(kind: UseKind) -> frozenset[str]:
    """The global generators a use seeds: ``{"random"}``, ``{"numpy"}``, both, or none."""
    return {
        "seed-random": frozenset({"random"}),
        "seed-numpy": frozenset({"numpy"}),
        "seed-all": frozenset({"random", "numpy"}),
    }.get(kind, frozenset())
