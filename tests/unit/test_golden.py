"""Golden files: the exact bytes nb2prod writes for the README's example notebook.

A change to generated code shows up here as a reviewable diff. To accept an intended change:
``NB2PROD_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_golden.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nb2prod.export import environment
from nb2prod.export.writer import export_notebook
from nb2prod.version_folder import EnvironmentSpec

from conftest import REPO, tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("example", ["breast_cancer", "wine_models"])
def test_generated_files_match_golden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    capture = environment.capture

    def fixed(step_modules: dict[str, str]) -> EnvironmentSpec:
        """What the steps import, found as usual, at versions that do not depend on the machine
        (the test compares bytes; the installed versions are each machine's own)."""
        found = capture(step_modules)
        pins = {name: "1.0" for name in found.pins}
        return EnvironmentSpec("3.11.0", found.packages, pins)

    monkeypatch.setattr(environment, "capture", fixed)
    project = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    result = export_notebook(project / "notebooks" / f"{example}.ipynb", out=project / "pipelines")
    got = tree(result.path)
    expected_dir = GOLDEN / example / "v1"
    if os.environ.get("NB2PROD_UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, data in got.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes(data)
    expected = tree(expected_dir)
    assert sorted(got) == sorted(expected)
    for rel in expected:
        assert got[rel].decode() == expected[rel].decode(), rel
