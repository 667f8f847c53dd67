"""The serving function, ready to call: its module imported from a file, its needs set.

``steps/serving.py`` defines the function with its imports and helpers; the names it reads
that are data (a fitted model, a scaler, a parameter) are not defined there: whoever loads the
module sets them as module attributes first. Both the MLflow model (from its artifacts) and the
build (from the run folder) load it this way.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError

_count = itertools.count()


class NeedNotLoadable(Nb2prodError):
    """A need's saved value cannot be read back where the model is loaded."""


def import_module(path: Path) -> types.ModuleType:
    """Import the module at ``path`` under a name of its own (never a user's module's name), so
    two serving models in one process never share module state."""
    name = f"nb2prod_serving_{next(_count)}_{id(path):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise Nb2prodError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickle and dataclasses look classes up by module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def read_need(name: str, source: str, path: Path) -> Any:
    """A need's value from its file (as the steps wrote it), or a clear error naming it."""
    from ..runtime import read_output

    try:
        return read_output(path)
    except Exception as exc:  # noqa: BLE001 - any reader's failure means the same to the user
        where = "a parameter" if source == "parameter" else f"an output of step {source}"
        raise NeedNotLoadable(
            f"serving need `{name}` ({where}) cannot be loaded from {path.name} "
            f"({type(exc).__name__}: {exc}). A value the serving function reads must load "
            "outside the notebook: an object of a class defined in a notebook cell does not. "
            f"Fix: define the class of `{name}` in a module the notebook imports, or make "
            f"`{name}` a library object (a fitted scikit-learn estimator, an array, a DataFrame)."
        ) from None


def read_parameters(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text("utf-8"))
    return dict(data) if isinstance(data, dict) else {}


def serving_function(
    module_path: Path, function: str, values: Mapping[str, Any]
) -> Callable[..., Any]:
    """Import the module, set ``values`` (the needs) on it, return the function."""
    module = import_module(module_path)
    for name, value in values.items():
        setattr(module, name, value)
    found = getattr(module, function, None)
    if not callable(found):
        raise Nb2prodError(
            f"{module_path}: defines no function `{function}`. Fix: export the notebook again."
        )
    return found
