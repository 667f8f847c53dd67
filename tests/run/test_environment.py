"""The environment is an input: an upgraded library re-runs the steps that import it, the run
says what differs from the version's requirements.txt, and --strict-env refuses to run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, run_cli, write_notebook

CELLS = [
    ("factor = 2", ["parameters"]),
    ("import nb2prodfake\nvalue = nb2prodfake.VALUE", ["preprocessing"]),
    ("scaled = value * factor", ["training:model"]),
    ("steady = 40 + factor", ["training:other"]),
    ("result = scaled + steady", ["evaluation", "metrics"]),
]


def install_fake(site: Path, version: str) -> None:
    """A real distribution on the path (as pip would leave it): a package and its metadata."""
    for old in site.glob("nb2prodfake-*.dist-info"):
        shutil.rmtree(old)
    (site / "nb2prodfake").mkdir(parents=True, exist_ok=True)
    (site / "nb2prodfake" / "__init__.py").write_text("VALUE = 1\n")
    info = site / f"nb2prodfake-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: nb2prodfake\nVersion: {version}\n"
    )
    (info / "top_level.txt").write_text("nb2prodfake\n")


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = tmp_path / "site"
    install_fake(site, "1.0")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "CI": "true"}
    write_notebook(tmp_path / "notebooks" / "env.ipynb", CELLS)
    r = run_cli("export", "notebooks/env.ipynb", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    return tmp_path, env


def last_run(project: Path) -> dict[str, Any]:
    runs = sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    data: dict[str, Any] = json.loads(runs[-1].read_text())
    return data


def test_the_version_pins_what_its_steps_import(project: tuple[Path, dict[str, str]]) -> None:
    import yaml

    root, _ = project
    vdir = root / "pipelines" / "env" / "v1"
    pins = (vdir / "requirements.txt").read_text().splitlines()
    assert "nb2prodfake==1.0" in pins
    assert any(p.startswith("papermill==") for p in pins)
    assert any(p.startswith("ipykernel==") for p in pins)
    manifest = yaml.safe_load((vdir / "pipeline.yaml").read_text())
    assert manifest["environment"]["packages"]["preprocessing"] == ["nb2prodfake"]
    assert manifest["environment"]["packages"]["other"] == []
    assert manifest["environment"]["python"].count(".") == 2


def test_an_upgraded_library_reruns_the_steps_that_import_it(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    args = ("run", "pipelines/env", "--no-track")
    r = run_cli(*args, cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_run(root)["environment"]["differences"] == []
    assert run_cli(*args, cwd=root, env=env).returncode == 0
    assert {s["state"] for s in last_run(root)["steps"].values()} == {"cached"}

    install_fake(root / "site", "1.1")
    r = run_cli(*args, cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    record = last_run(root)
    states = {name: step["state"] for name, step in record["steps"].items()}
    assert states == {
        "preprocessing": "succeeded",
        "model": "cached",  # its input came out the same
        "other": "cached",
        "evaluation": "cached",
    }
    reason = record["steps"]["preprocessing"]["reason"]
    assert reason == "environment changed: nb2prodfake 1.1 (was 1.0)"
    difference = "nb2prodfake 1.1 installed, exported with 1.0"
    assert record["environment"]["differences"] == [difference]
    assert f"environment: {difference}" in r.stdout + r.stderr

    r = run_cli(*args, "--strict-env", cwd=root, env=env)
    assert r.returncode == 2
    assert "--strict-env" in r.stderr and difference in r.stderr
    assert len(list((root / ".nb2prod" / "runs").glob("*/run.json"))) == 3  # none started


def test_a_changed_environment_alone_makes_no_version_unless_pinned(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    install_fake(root / "site", "1.1")
    r = run_cli("export", "notebooks/env.ipynb", cwd=root, env=env)
    assert r.returncode == 0 and "Up to date: env v1" in r.stdout
    assert run_cli("check", "notebooks/env.ipynb", cwd=root, env=env).returncode == 0
    r = run_cli("export", "notebooks/env.ipynb", "--pin-env", cwd=root, env=env)
    assert r.returncode == 0 and "Exported env v2" in r.stdout
    pins = (root / "pipelines/env/v2/requirements.txt").read_text().splitlines()
    assert "nb2prodfake==1.1" in pins


def test_a_version_from_before_stays_up_to_date(tmp_path: Path) -> None:
    """Exported by 0.1 (no requirements.txt): re-exporting the unchanged notebook adds none."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    release = Path(__file__).resolve().parents[1] / "released" / "0.1"
    shutil.copytree(release / "breast_cancer", tmp_path / "pipelines" / "breast_cancer")
    # The notebook as it was when 0.1 exported it (the example has changed since).
    shutil.copy(release / "notebooks" / "breast_cancer.ipynb", tmp_path / "notebooks")
    r = run_cli("export", "notebooks/breast_cancer.ipynb", cwd=tmp_path)
    assert r.returncode == 0 and "Up to date: breast_cancer v1" in r.stdout, r.stderr
    r = run_cli("run", "pipelines/breast_cancer", "--no-track", "--strict-env", cwd=tmp_path)
    assert r.returncode == 2 and "exported before nb2prod recorded the environment" in r.stderr
