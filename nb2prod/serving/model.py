"""The MLflow pyfunc model that serves a notebook's serving function.

Its artifacts: ``module`` (the version's ``steps/serving.py``), ``parameters`` (a JSON object of
the parameters the function reads, with the run's values) and ``need.<name>`` (each step output
the function reads, as the step saved it). :meth:`ServingModel.load_context` imports the module
under a name of its own and sets every need on it; :meth:`ServingModel.predict` calls the
function on the model input, MLflow's ``params`` as keyword arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc

MODULE = "module"
PARAMETERS = "parameters"
NEED = "need."  # + the need's name


class ServingModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    # MLflow would wrap predict for validation by its type hints, and warn that it has none:
    # the signature (from the input example) validates the input instead.
    _skip_type_hint_validation = True

    def __init__(self, function: str, needs: dict[str, str], parameters: list[str]) -> None:
        self.function = function
        self.needs = dict(needs)  # name -> the step whose output it is
        self.parameters = list(parameters)
        self._call: Any = None

    def load_context(self, context: Any) -> None:
        from .function import read_need, read_parameters, serving_function

        artifacts = context.artifacts
        values = {
            name: read_need(name, step, Path(artifacts[NEED + name]))
            for name, step in self.needs.items()
        }
        if self.parameters:
            values.update(read_parameters(Path(artifacts[PARAMETERS])))
        self._call = serving_function(Path(artifacts[MODULE]), self.function, values)

    def predict(self, context, model_input, params=None):
        # No type hints: MLflow would take them for the signature, which the input example
        # gives instead.
        return self._call(model_input, **(params or {}))
