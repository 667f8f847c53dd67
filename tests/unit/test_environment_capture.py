"""nb2prod.export.environment: imports resolved to the distributions that provide them."""

from __future__ import annotations

from importlib.metadata import packages_distributions

from nb2prod.export.environment import capture, providers, top_level_imports


def test_providers_agree_with_importlib_for_the_names_asked() -> None:
    names = {"sklearn", "pandas", "numpy", "yaml", "papermill", "jupyter_client", "zmq"}
    expected = packages_distributions()
    assert providers(names) == {n: set(expected.get(n, ())) for n in names}


def test_a_step_pins_what_it_imports_and_what_runs_it() -> None:
    module = "import json\nimport numpy as np\nfrom sklearn.linear_model import Ridge\n"
    env = capture({"train": module, "plain": "import os\n"})
    assert env.packages == {"train": ("numpy", "scikit-learn"), "plain": ()}
    assert {"numpy", "scikit-learn", "papermill", "ipykernel"} <= set(env.pins)
    assert top_level_imports("from . import x\nimport a.b\nfrom c.d import e") == {"a", "c"}
