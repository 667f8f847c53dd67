"""A step that switches MLflow's experiment or tracking URI is refused before anything runs.

Under `nb2prod run` a step's own MLflow calls log to that step's run in the pipeline's
experiment; after `mlflow.set_experiment(...)` MLflow refuses to resume that run, so the step
would fail half-way. `inspect` and `export` say so first, naming the cell and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli, write_notebook


@pytest.mark.parametrize(
    "code",
    [
        "import mlflow\nmlflow.set_experiment('mine')\nx = 1",
        "import mlflow as mf\nmf.set_tracking_uri('http://elsewhere:5000')\nx = 1",
        "from mlflow import set_experiment\nset_experiment('mine')\nx = 1",
    ],
)
def test_switching_mlflow_experiment_in_a_step_is_an_export_error(
    tmp_path: Path, code: str
) -> None:
    write_notebook(tmp_path / "nb.ipynb", [(code, ["training"])])
    r = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert r.returncode == 2
    assert "nb.ipynb, cell 1" in r.stderr and "MLflow refuses to resume it" in r.stderr
    assert "Fix: remove the call" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "pipelines").exists()


def test_other_mlflow_calls_and_skip_cells_are_fine(tmp_path: Path) -> None:
    cells = [
        ("import mlflow\nmlflow.set_experiment('exploration')", ["skip"]),
        ("import mlflow\nx = 1\nmlflow.log_param('x', x)", ["training"]),
    ]
    write_notebook(tmp_path / "nb.ipynb", cells)
    r = run_cli("inspect", "nb.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mlflow.set_experiment" not in r.stdout
