"""Reusing an earlier run's serving model when nothing it was built from changed.

A run whose steps all come from the cache would otherwise spend most of its time importing
MLflow to build the very model an earlier run built. The key covers everything the model and
its check are made of: the serving module, the requirements, the needs' values (their SHA-256
as run.json records them), the parameters' values, and the input example with its expected
output. Only a model that passed its skew check is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..pipeline import PipelineSpec
from ..run_folder import link_tree, serving_example_dir, serving_model_dir
from ..version_folder import PARAMETER, REQUIREMENTS
from .example import first_caller
from .outcome import ServingOutcome


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def model_key(
    spec: PipelineSpec,
    run_dir: Path,
    params: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, str]],
) -> str:
    """What the run's serving model is made of, as one SHA-256. ``outputs``: each step's
    output hashes (run.json's ``steps.<step>.outputs``)."""
    serving = spec.serving
    assert serving is not None
    needs = {
        n.name: (
            json.dumps(params.get(n.name), sort_keys=True, default=repr)
            if n.source == PARAMETER
            else outputs.get(n.source, {}).get(n.name)
        )
        for n in serving.needs
    }
    caller = first_caller(spec, run_dir)
    if caller is not None:
        folder = serving_example_dir(run_dir, caller)
        example: Any = [caller, _file_sha(folder / "input.pkl"), _file_sha(folder / "output.pkl")]
    elif serving.example is not None:
        e = serving.example
        example = [e.name, e.source, outputs.get(e.source, {}).get(e.name)]
    else:
        example = None
    parts = {
        "nb2prod": __version__,
        "function": serving.function,
        "module": _file_sha(spec.path / serving.module),
        "requirements": _file_sha(spec.path / REQUIREMENTS),
        "needs": needs,
        "example": example,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def reuse(
    run_dir: Path, key: str, earlier: Iterable[tuple[str, Path, Mapping[str, Any]]]
) -> ServingOutcome | None:
    """Link in the model of an earlier run (id, folder, its run.json's ``serving``) that was
    built from ``key`` and passed its check; its outcome, or None."""
    t0 = time.monotonic()
    for run_id, folder, recorded in earlier:
        if recorded.get("key") != key or recorded.get("status") != "ok":
            continue
        source = serving_model_dir(folder)
        if not (source / "MLmodel").is_file():
            continue
        target = serving_model_dir(run_dir)
        try:
            link_tree(source, target)
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            continue
        outcome = ServingOutcome.from_json(dict(recorded))
        outcome.reused_from = str(recorded.get("reused_from") or run_id)
        outcome.duration = round(time.monotonic() - t0, 3)
        return outcome
    return None
