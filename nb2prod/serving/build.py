"""Saving a finished run's serving model, and the skew check. Imports MLflow: runs in the
tracking worker or the serving process (:mod:`.process`), never in the runner."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec, load_pipeline
from ..run_folder import config_path, serving_model_dir
from ..runtime import output_path
from ..version_folder import PARAMETER, REQUIREMENTS
from .example import NO_OUTPUT, Example, find_example
from .function import read_need, serving_function
from .outcome import SKEW, ServingOutcome
from .skew import compare

PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass
class BuildResult:
    model_dir: Path
    example: Example | None
    warnings: list[str] = field(default_factory=list)


def signature_text(spec: PipelineSpec) -> str:
    assert spec.serving is not None
    return f"{spec.serving.function}({', '.join(spec.serving.args)})"


def requirements(spec: PipelineSpec) -> list[str]:
    """The version's pinned requirements.txt, as MLflow should write them."""
    try:
        text = (spec.path / REQUIREMENTS).read_text("utf-8")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _need_files(spec: PipelineSpec, run_dir: Path) -> dict[str, tuple[str, Path]]:
    """Each step output the function needs: name -> (step, file in the run folder)."""
    assert spec.serving is not None
    found = {}
    for need in spec.serving.needs:
        if need.source == PARAMETER:
            continue
        path = output_path(run_dir, need.source, need.name)
        if path is None:
            raise Nb2prodError(
                f"serving need `{need.name}` from step {need.source} is not in the run folder "
                f"{run_dir}: step {need.source} saved no `{need.name}`."
            )
        found[need.name] = (need.source, path)
    return found


def _parameters(spec: PipelineSpec, params: dict[str, Any]) -> dict[str, Any]:
    assert spec.serving is not None
    return {n.name: params.get(n.name) for n in spec.serving.needs if n.source == PARAMETER}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's warnings and INFO lines about the model it saves are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "mlflow.pyfunc", "mlflow.models")]
    levels = [lg.level for lg in loggers]
    bar = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"  # "Downloading artifacts" from a local folder
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if bar is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = bar


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build(spec: PipelineSpec, run_dir: Path, params: dict[str, Any]) -> BuildResult:
    """Save the run's serving model to ``<run_dir>/serving/model`` (replacing one there)."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from .model import MODULE, NEED, PARAMETERS, ServingModel

    serving = spec.serving
    assert serving is not None
    run_dir = Path(run_dir)
    needs = _need_files(spec, run_dir)
    parameters = _parameters(spec, params)
    notes: list[str] = []
    example = find_example(spec, run_dir)
    if example is not None and example.output is NO_OUTPUT:
        values = {name: read_need(name, step, path) for name, (step, path) in needs.items()}
        call = serving_function(spec.path / serving.module, serving.function, values | parameters)
        try:
            example.output = call(example.value, **example.params)
        except Exception as exc:  # noqa: BLE001 - the user's function, on the user's data
            raise Nb2prodError(
                f"the serving function {signature_text(spec)} failed on the first rows of "
                f"{example.origin} ({type(exc).__name__}: {exc}), its input example."
            ) from None
    if example is None:
        notes.append(
            f"the serving model of {signature_text(spec)} has no input example (no step calls "
            "the function, and no data it could take one from), so it has no signature and no "
            "skew check. Fix: call the function in the evaluation step."
        )
    target = serving_model_dir(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=target.parent) as tmp:
        staged = Path(tmp) / "artifacts"
        staged.mkdir()
        _link(spec.path / serving.module, staged / "serving.py")
        artifacts = {MODULE: str(staged / "serving.py")}
        for name, (_, path) in needs.items():
            _link(path, staged / f"need-{name}{path.suffix}")
            artifacts[NEED + name] = str(staged / f"need-{name}{path.suffix}")
        if parameters:
            (staged / "parameters.json").write_text(json.dumps(parameters), "utf-8")
            artifacts[PARAMETERS] = str(staged / "parameters.json")
        model = ServingModel(
            serving.function, {n: s for n, (s, _) in needs.items()}, list(parameters)
        )
        signature = input_example = None
        if example is not None:
            signature = _signature(infer_signature, example, notes)
            input_example = (example.value, example.params) if example.params else example.value
        out = Path(tmp) / "model"
        with _quiet():
            mlflow.pyfunc.save_model(
                str(out),
                python_model=model,
                artifacts=artifacts,
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements(spec),
            )
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    return BuildResult(target, example, notes)


def _signature(infer: Any, example: Example, notes: list[str]) -> Any:
    params = example.params or None
    try:
        return infer(example.value, example.output, params=params)
    except Exception as exc:  # noqa: BLE001 - an output MLflow has no schema for
        notes.append(f"the serving model's output has no schema in its signature ({exc})")
        return infer(example.value, None, params=params)


def check(result: BuildResult) -> str | None:
    """The skew check: the saved model, loaded as MLflow serves it, applied to the input
    example. None when it returns what the function returned in the run; else what differs."""
    import mlflow.pyfunc

    example = result.example
    if example is None:
        return None
    with _quiet():
        model = mlflow.pyfunc.load_model(str(result.model_dir), suppress_warnings=True)
        served = model.predict(example.value, params=example.params or None)
    skew = compare(example.output, served, getattr(example.value, "index", None))
    return None if skew is None else skew.describe()


def build_and_check(version_dir: Path, run_dir: Path) -> ServingOutcome:
    """Build the run's serving model and check it; never raises (the outcome says why)."""
    t0 = time.monotonic()
    spec = load_pipeline(Path(version_dir))
    assert spec.serving is not None
    outcome = ServingOutcome(function=spec.serving.function, signature=signature_text(spec))
    try:
        import yaml

        params = yaml.safe_load(config_path(run_dir).read_text("utf-8")) or {}
        result = build(spec, Path(run_dir), dict(params))
        outcome.model = result.model_dir.relative_to(run_dir).as_posix()
        outcome.warnings = result.warnings or None
        if result.example is not None:
            outcome.example_from = result.example.origin
            outcome.rows = result.example.rows
        difference = check(result)
        outcome.skew = "none" if difference is None else "found"
        if result.example is None:
            outcome.skew = None
        if difference is not None:
            origin = result.example.origin if result.example is not None else "?"
            where = f"in step {origin}" if origin in {s.name for s in spec.steps} else origin
            outcome.error = (
                f"{SKEW}: {outcome.signature} returned different results when served (the "
                f"MLflow model {outcome.model}) than {where}, on the same input: {difference}. "
                "Fix: make the function depend only on its input and the values it reads from "
                "steps and parameters (no randomness, clock or state changed after they were "
                "saved)."
            )
        else:
            outcome.status = "ok"
    except Nb2prodError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - the user's function, or MLflow, failed
        outcome.error = (
            f"the serving model of {outcome.signature} could not be built or loaded "
            f"({type(exc).__name__}: {_one_line(exc)})."
        )
    outcome.duration = round(time.monotonic() - t0, 3)
    return outcome


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
