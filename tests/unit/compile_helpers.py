"""Versions to compile, exported in-process with an environment that is the same on every
machine (as tests/unit/test_golden.py does): compile output is compared byte for byte."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from nb2prod.export import environment
from nb2prod.export.writer import export_notebook
from nb2prod.pipeline import PipelineSpec, load_pipeline
from nb2prod.version_folder import EnvironmentSpec

from conftest import REPO, CellSpec, write_notebook

# Kale 2.x's engine tags on a step (as tests/cli/test_kale.py's ENGINE_CELLS), a cpu limit
# besides, and a list parameter (passed to engines as JSON text).
KALE_CELLS: list[CellSpec] = [
    ("import math", ["imports"]),
    ("n = 4\nweights = [1, 2]", ["pipeline-parameters"]),
    (
        "rows = [w * i for i in range(n) for w in weights]",
        [
            "step:load",
            "cache:disabled",
            "image:python:3.11-slim",
            "limit:nvidia.com/gpu:1",
            "limit:memory:4Gi",
            "limit:cpu:500m",
            "secret:db-credentials:password:DB_PASSWORD",
            "secret:api.keys:token:API_TOKEN",
            "annotation:example.com/owner:data team: fraud",
            "label:tier:batch",
        ],
    ),
    ("total = math.fsum(rows)", ["step:train", "prev:load"]),
]


def fix_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exports record Python 3.11.0 and every pin at 1.0, and a fixed creation time."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    capture = environment.capture

    def fixed(step_modules: dict[str, str]) -> EnvironmentSpec:
        found = capture(step_modules)
        return EnvironmentSpec("3.11.0", found.packages, {name: "1.0" for name in found.pins})

    monkeypatch.setattr(environment, "capture", fixed)


def export_example(project: Path, example: str) -> PipelineSpec:
    """notebooks/<example>.ipynb of this repository, exported into ``project``."""
    if not (project / "notebooks").exists():
        shutil.copytree(REPO / "notebooks", project / "notebooks")
    result = export_notebook(project / "notebooks" / f"{example}.ipynb", out=project / "pipelines")
    return load_pipeline(result.path)


def export_cells(project: Path, name: str, cells: Sequence[CellSpec]) -> PipelineSpec:
    """A notebook of ``cells`` at notebooks/<name>.ipynb in ``project``, exported."""
    notebook = write_notebook(project / "notebooks" / f"{name}.ipynb", cells)
    return load_pipeline(export_notebook(notebook, out=project / "pipelines").path)
