"""Kubeflow Kale 2.x notebooks: the whole tag language, and Kale's own test notebooks.

The notebooks shipped in the kubeflow-kale 2.3.0 wheel are downloaded with pip once per test
session (CI has PyPI); they must inspect and export as they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nb2prod.cli import main

from conftest import run_cli, write_notebook

KALE = "kubeflow-kale==2.3.0"


def invoke(*args: str | Path) -> Result:
    """The CLI in this process (click's runner): quicker than a subprocess for many small cases."""
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="session")
def kale_notebooks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every notebook in Kale 2.3.0's wheel, fetched once per session."""
    folder = tmp_path_factory.mktemp("kale-wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", KALE, "--no-deps", "-q", "-d", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        message = f"cannot download {KALE}: {result.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = folder / "notebooks"
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in wheel.namelist():
            if member.endswith(".ipynb"):
                target = out / Path(member).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(member))
    found = sorted(out.glob("*.ipynb"))
    # Kale 2.3.0 ships three; if a packaging change drops them the test must not pass vacuously.
    assert len(found) >= 3, found
    return found


def test_every_notebook_in_kales_wheel_inspects_and_exports(
    kale_notebooks: list[Path], tmp_path: Path
) -> None:
    for source in kale_notebooks:
        nb = tmp_path / source.name
        nb.write_bytes(source.read_bytes())
        inspected = run_cli("inspect", nb, cwd=tmp_path)
        assert inspected.returncode == 0, (source.name, inspected.stdout, inspected.stderr)
        assert "  error:" not in inspected.stdout, inspected.stdout
        exported = run_cli("export", nb, cwd=tmp_path)
        assert exported.returncode == 0, (source.name, exported.stderr)
        assert "Exported" in exported.stdout
        assert "Traceback" not in exported.stderr and "unknown tag" not in exported.stderr
        again = run_cli("export", nb, cwd=tmp_path)
        assert "Up to date" in again.stdout, (source.name, again.stdout, again.stderr)


def test_kales_metrics_notebook_keeps_its_engine_settings(
    kale_notebooks: list[Path], tmp_path: Path
) -> None:
    source = next(p for p in kale_notebooks if p.stem == "pipeline_parameters_and_metrics")
    r = invoke("inspect", source, "--json")
    assert r.exit_code == 0, r.output
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    # `limit:nvidia.com/gpu:2` and `cache:enabled` on create_matrix; the notebook's
    # `enable_caching: false` applies to sum_matrix, which sets nothing itself (as in Kale).
    assert steps["create_matrix"]["engine"] == {
        "cache": "enabled",
        "limit": {"nvidia.com/gpu": "2"},
    }
    assert steps["sum_matrix"]["engine"] == {"cache": "disabled"}
    assert steps["sum_matrix"]["depends_on"] == ["create_matrix"]


ENGINE_CELLS = [
    ("import math", ["imports"]),
    ("n = 4", ["pipeline-parameters"]),
    (
        "rows = list(range(n))",
        [
            "step:load",
            "cache:disabled",
            "image:python:3.11-slim",
            "limit:nvidia.com/gpu:1",
            "limit:memory:4Gi",
            "secret:db-credentials:password:DB_PASSWORD",
            "secret:api.keys:token:API_TOKEN",
            "annotation:example.com/owner:data team: fraud",
            "label:tier:batch",
            "report:disabled",
        ],
    ),
    ("total = math.fsum(rows)", ["step:train", "prev:load"]),
]


def test_engine_tags_are_kept_per_step_in_inspect_json(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "kale.ipynb", ENGINE_CELLS)
    r = invoke("inspect", nb, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert plan["problems"] == []
    steps = {s["name"]: s for s in plan["steps"]}
    assert steps["load"]["engine"] == {
        "cache": "disabled",
        "image": "python:3.11-slim",
        "limit": {"memory": "4Gi", "nvidia.com/gpu": "1"},
        "secret": [
            {"name": "api.keys", "key": "token", "env": "API_TOKEN"},
            {"name": "db-credentials", "key": "password", "env": "DB_PASSWORD"},
        ],
        "annotation": {"example.com/owner": "data team: fraud"},
        "label": {"tier": "batch"},
        "report": "disabled",
    }
    assert steps["train"]["engine"] == {}
    text = invoke("inspect", nb).stdout
    assert "engine: cache disabled, image python:3.11-slim" in text


def test_notebook_defaults_apply_where_a_step_sets_nothing(tmp_path: Path) -> None:
    kale = {
        "base_image": "python:3.12",
        "enable_caching": False,
        "steps_defaults": ["label:team:ml", "limit:cpu:2", "cache:enabled"],
    }
    nb = write_notebook(
        tmp_path / "kale.ipynb",
        [
            ("a = 1", ["step:one", "image:custom/img:1", "label:team:own"]),
            ("b = a + 1", ["step:two"]),
        ],
        kubeflow_notebook=kale,
    )
    r = invoke("inspect", nb, "--json")
    assert r.exit_code == 0, r.stdout
    steps = {s["name"]: s["engine"] for s in json.loads(r.stdout)["steps"]}
    # The step's own tag wins, then steps_defaults, then the notebook-level settings.
    assert steps["one"] == {
        "cache": "enabled",
        "image": "custom/img:1",
        "limit": {"cpu": "2"},
        "label": {"team": "own"},
    }
    assert steps["two"] == {
        "cache": "enabled",
        "image": "python:3.12",
        "limit": {"cpu": "2"},
        "label": {"team": "ml"},
    }


@pytest.mark.parametrize(
    ("tag", "fragments"),
    [
        (
            "cache:disable",
            ["`cache:disable` is not a valid Kale `cache:` tag", "use `cache:disabled`"],
        ),
        ("limit:gpu", ["`limit:gpu`", "`limit:RESOURCE:AMOUNT`", "limit:nvidia.com/gpu:1"]),
        ("secret:Bad_Name:k:ENV", ["`secret:SECRET:KEY:ENV_VAR`"]),
        ('image:x"; rm -rf /', ["not a valid Kale `image:` tag"]),
        ("Cache:Disabled", ["unknown tag `Cache:Disabled`", "use `cache:disabled`"]),
        ("notebook:sub", ["`notebook:sub`", "not supported", "export the other notebook"]),
    ],
)
def test_bad_or_unsupported_kale_tags_are_errors_with_a_fix(
    tmp_path: Path, tag: str, fragments: list[str]
) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["step:one", tag])])
    r = invoke("export", nb, "--out", tmp_path / "pipelines")
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Fix:" in r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, (fragment, r.stderr)
    assert not (tmp_path / "pipelines").exists() or not any((tmp_path / "pipelines").rglob("v1"))


def test_conflicting_engine_values_in_one_step_are_an_error(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        [("x = 1", ["step:one", "cache:enabled"]), ("y = x", ["step:one", "cache:disabled"])],
    )
    r = invoke("inspect", nb)
    assert r.exit_code == 2
    assert "sets `cache` of step `one` again, to a different value (`cache:disabled`)" in r.stdout


def test_engine_tag_outside_a_step_is_a_warning(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb", [("n = 1", ["parameters", "cache:disabled"]), ("x = n", ["step:a"])]
    )
    r = invoke("export", nb, "--out", tmp_path / "pipelines")
    assert r.exit_code == 0, r.stderr
    assert "warning: " in r.stderr and "is not in a step, so the tag has no effect" in r.stderr


def test_bad_notebook_level_kale_settings_are_warnings(tmp_path: Path) -> None:
    kale = {"steps_defaults": ["cache:maybe", 3], "base_image": "not an image"}
    nb = write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["step:one"])], kubeflow_notebook=kale)
    r = invoke("inspect", nb, "--json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["steps"][0]["engine"] == {}
    assert [(p["code"], p["severity"], p["cell"]) for p in plan["problems"]] == [
        ("bad-engine-tag", "warning", None),
        ("bad-engine-tag", "warning", None),
    ]
    assert "`steps_defaults`: tag `cache:maybe` is not a valid" in plan["problems"][0]["message"]
    assert "`base_image` `not an image`" in plan["problems"][1]["message"]


def test_every_notebook_in_kales_wheel_runs_and_cache_disabled_is_honoured(
    kale_notebooks: list[Path], tmp_path: Path
) -> None:
    for source in kale_notebooks:
        (tmp_path / source.name).write_bytes(source.read_bytes())
        assert run_cli("export", source.name, cwd=tmp_path).returncode == 0
        r = run_cli(
            "run", f"pipelines/{source.stem}", "--no-track", cwd=tmp_path, env={"CI": "true"}
        )
        assert r.returncode == 0, (source.name, r.stdout, r.stderr)
    # Kale's metrics notebook tags `sum_matrix` cache:disabled: it runs every time, while its
    # unchanged upstream step is reused.
    again = run_cli(
        "run", "pipelines/pipeline_parameters_and_metrics", "--no-track",
        cwd=tmp_path, env={"CI": "true"},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    records = sorted((tmp_path / ".nb2prod" / "runs").glob("*/run.json"))
    steps = json.loads(records[-1].read_text())["steps"]
    assert steps["create_matrix"]["state"] == "cached"
    assert steps["sum_matrix"]["state"] == "succeeded"
    assert steps["sum_matrix"]["reason"] == "it is tagged cache:disabled"
    assert "running (it is tagged cache:disabled)" in again.stderr
