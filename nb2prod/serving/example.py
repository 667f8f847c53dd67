"""The serving model's input example and the output the function gave for it in the run.

In order of preference: the first call of the function recorded by a caller step (in run
order; ``steps/<caller>/serving/{input,output}.pkl``), then the first rows of the
``serving.example`` output (the function is then called on them by whoever builds the model),
otherwise none.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from ..run_folder import serving_example_dir
from ..runtime import output_path
from ..version_folder import ServingSpec

FALLBACK_ROWS = 5  # rows of serving.example the fallback example takes
NO_OUTPUT = object()  # the expected output is still to be computed


@dataclass
class Example:
    value: Any  # the model input: the first argument of the call
    params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the call
    output: Any = NO_OUTPUT  # what the function returned, or NO_OUTPUT (compute it)
    origin: str = ""  # "<caller step>" or "<name> from <step>"

    @property
    def rows(self) -> int:
        try:
            return len(self.value)
        except TypeError:
            return 1


def first_caller(spec: PipelineSpec, run_dir: Path) -> str | None:
    """The first caller, in run order, whose call of the function was recorded."""
    assert spec.serving is not None
    callers = set(spec.serving.callers)
    for step in spec.steps:
        folder = serving_example_dir(run_dir, step.name)
        if step.name in callers and (folder / "input.pkl").is_file():
            if (folder / "output.pkl").is_file():
                return step.name
    return None


def find_example(spec: PipelineSpec, run_dir: Path) -> Example | None:
    """The input example of the run's serving model (see the module's docs)."""
    serving = spec.serving
    assert serving is not None
    caller = first_caller(spec, run_dir)
    if caller is not None:
        return _recorded(serving, run_dir, caller)
    if serving.example is None:
        return None
    name, step = serving.example.name, serving.example.source
    path = output_path(run_dir, step, name)
    if path is None:
        return None
    from .function import read_need

    value = read_need(name, step, path)
    head = value.iloc[:FALLBACK_ROWS] if hasattr(value, "iloc") else value[:FALLBACK_ROWS]
    return Example(value=head, origin=f"{name} from {step}")


def _recorded(serving: ServingSpec, run_dir: Path, caller: str) -> Example:
    folder = serving_example_dir(run_dir, caller)
    try:
        with open(folder / "input.pkl", "rb") as fh:
            call = pickle.load(fh)
        with open(folder / "output.pkl", "rb") as fh:
            output = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - a recorded call that cannot be read back
        raise Nb2prodError(
            f"{folder}: the recorded call of {serving.function} cannot be read back "
            f"({type(exc).__name__}: {exc})."
        ) from None
    args, kwargs = list(call.get("args") or []), dict(call.get("kwargs") or {})
    if len(args) != 1:
        raise Nb2prodError(
            f"step {caller} called the serving function {serving.function} with {len(args)} "
            "positional arguments; a served model takes one input (a DataFrame, an array), and "
            "keyword arguments as parameters. Fix: give the function one positional argument."
        )
    return Example(value=args[0], params=kwargs, output=output, origin=caller)
