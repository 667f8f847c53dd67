"""`nb2prod serve` refusals (exit 2, one paragraph, the fix), and that its help imports no
MLflow. Serving a real model: tests/run/test_serving.py and tests/tracking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, run_cli, write_notebook

RUN_ID = "20261127-061824-859e5a7"


def _run_folder(project: Path, record: dict[str, object]) -> None:
    folder = project / ".nb2prod/runs" / RUN_ID
    folder.mkdir(parents=True)
    base = {"id": RUN_ID, "pipeline": "nb", "version": 1, "status": "succeeded", "steps": {}}
    (folder / "run.json").write_text(json.dumps({**base, **record}))


def test_a_run_without_a_serving_model_is_refused_with_the_tag_to_add(tmp_path: Path) -> None:
    _run_folder(tmp_path, {})
    done = run_cli("serve", RUN_ID, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"nb2prod: run {RUN_ID} logged no serving model. Fix: tag the ")
    assert "`serving`" in done.stderr and "export again" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_whose_serving_model_failed_says_why(tmp_path: Path) -> None:
    error = "training/serving skew: predict(raw) returned different results when served"
    _run_folder(
        tmp_path,
        {"status": "failed", "serving": {"status": "failed", "skew": "found", "error": error}},
    )
    done = run_cli("serve", RUN_ID, cwd=tmp_path)
    assert done.returncode == 2 and error in done.stderr


def test_unknown_runs_and_pipelines_are_refused(tmp_path: Path) -> None:
    done = run_cli("serve", RUN_ID, cwd=tmp_path)
    assert done.returncode == 2 and "no such run" in done.stderr
    done = run_cli("serve", "champion", cwd=tmp_path)
    assert done.returncode == 2 and "`champion` needs a pipeline" in done.stderr
    write_notebook(tmp_path / "nb.ipynb", [("x = 1", ["preprocessing"])])
    assert run_cli("export", "nb.ipynb", cwd=tmp_path).returncode == 0
    done = run_cli("serve", "pipelines/nb", cwd=tmp_path)
    assert done.returncode == 2 and "nb has no successful run yet" in done.stderr
    assert "nb2prod run pipelines/nb" in done.stderr


def test_serve_help_imports_no_mlflow() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from nb2prod.cli import main\n"
        "result = CliRunner().invoke(main, ['serve', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'RUN_ID|champion|PIPELINE' in result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith(('mlflow', 'pandas'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
