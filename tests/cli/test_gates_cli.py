"""Gates through the CLI, untracked: the gates cell at export, --gate, --baseline, exit 4, the
local champion, and bad input refused (exit 2) before anything runs or is written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from conftest import TINY_CELLS, run_cli, write_notebook

# TINY_CELLS' evaluation logs score = sum(range(n)) * factor and count = n + 2.
GATES = ("score >= 6  # the floor\ncount >= baseline  # never fewer items", ["gates"])
NO_TRACK = {"MLFLOW_TRACKING_URI": ""}


def _export(tmp_path: Path, gates: tuple[str, list[str]] = GATES) -> Path:
    write_notebook(tmp_path / "nb.ipynb", [*TINY_CELLS, gates])
    out = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path / "pipelines" / "nb"


def _runs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".nb2prod" / "runs").glob("*/run.json"))


def _last(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(_runs(tmp_path)[-1].read_text())


def test_gates_are_part_of_the_version(tmp_path: Path) -> None:
    pipeline = _export(tmp_path)
    manifest = yaml.safe_load((pipeline / "v1" / "pipeline.yaml").read_text())
    assert manifest["gates"] == [
        {"expr": "score >= 6", "help": "the floor"},
        {"expr": "count >= baseline", "help": "never fewer items"},
    ]
    again = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert "v1" in again.stdout and not (pipeline / "v2").exists()
    write_notebook(tmp_path / "nb.ipynb", [*TINY_CELLS, ("score >= 7", ["gates"])])
    changed = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert changed.returncode == 0 and (pipeline / "v2").is_dir()


def test_an_unknown_metric_or_a_bad_line_refuses_the_export(tmp_path: Path) -> None:
    write_notebook(tmp_path / "nb.ipynb", [*TINY_CELLS, ("scor >= 6\ncount >= len(x)", ["gates"])])
    out = run_cli("export", "nb.ipynb", cwd=tmp_path)
    assert out.returncode == 2
    assert "cell 6" in out.stderr and "`score`" in out.stderr and "line 2" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "pipelines").exists()


def test_pass_then_fail_with_exit_4_and_junit_then_promote(tmp_path: Path) -> None:
    _export(tmp_path)
    first = run_cli("run", "pipelines/nb", "--no-track", "--promote", cwd=tmp_path, env=NO_TRACK)
    assert first.returncode == 0, first.stderr
    assert "gates (passed" in first.stdout and "no baseline" in first.stdout
    champion = _last(tmp_path)
    assert champion["gates"]["promoted"] == {"models": {}}
    shown = run_cli("champion", "nb", "--no-track", cwd=tmp_path)
    assert shown.returncode == 0 and champion["id"] in shown.stdout

    worse = run_cli(
        "run", "pipelines/nb", "--no-track", "--promote", "-p", "n=2", "--junit", "j.xml",
        cwd=tmp_path, env=NO_TRACK,
    )  # fmt: skip
    assert worse.returncode == 4, worse.stdout + worse.stderr
    assert "score >= 6" in worse.stderr and "FAIL" in worse.stderr
    assert "champion did not move" in worse.stderr
    record = _last(tmp_path)
    assert record["status"] == "succeeded" and record["gates"]["status"] == "failed"
    assert record["baseline"]["run_id"] == champion["id"]
    failing = {r["expr"]: r for r in record["gates"]["results"]}
    assert failing["score >= 6"]["status"] == "failed"
    assert failing["count >= baseline"]["threshold"] == 5
    suite = ET.parse(tmp_path / "j.xml").getroot()
    failures = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failures == ["score >= 6", "count >= baseline"]
    again = run_cli("champion", "nb", "--no-track", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["local"]["run_id"] == champion["id"]

    better = run_cli(
        "run", "pipelines/nb", "--no-track", "--promote", "-p", "n=5", cwd=tmp_path, env=NO_TRACK
    )
    assert better.returncode == 0, better.stderr
    moved = json.loads(run_cli("champion", "nb", "--no-track", "--json", cwd=tmp_path).stdout)
    assert moved["local"]["run_id"] == _last(tmp_path)["id"]


def test_run_time_gates_and_baselines(tmp_path: Path) -> None:
    _export(tmp_path)
    base = run_cli("run", "pipelines/nb", "--no-track", cwd=tmp_path, env=NO_TRACK)
    assert base.returncode == 0
    first_id = _last(tmp_path)["id"]
    stricter = run_cli(
        "run", "pipelines/nb", "--no-track", "--gate", "score >= baseline * 2",
        "--baseline", "previous", cwd=tmp_path, env=NO_TRACK,
    )  # fmt: skip
    assert stricter.returncode == 4
    record = _last(tmp_path)
    assert record["baseline"]["run_id"] == first_id
    assert record["gates"]["results"][-1]["origin"] == "command line"
    by_id = run_cli(
        "run", "pipelines/nb", "--no-track", "--baseline", first_id, "--require-baseline",
        cwd=tmp_path, env=NO_TRACK,
    )  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr
    by_version = run_cli(
        "run", "pipelines/nb", "--no-track", "--baseline", "v1", cwd=tmp_path, env=NO_TRACK
    )
    assert by_version.returncode == 0


def test_require_baseline_fails_a_first_run(tmp_path: Path) -> None:
    _export(tmp_path)
    out = run_cli(
        "run", "pipelines/nb", "--no-track", "--require-baseline", cwd=tmp_path, env=NO_TRACK
    )
    assert out.returncode == 4
    assert "--require-baseline" in out.stderr


def test_bad_gates_and_baselines_are_refused_before_anything_runs(tmp_path: Path) -> None:
    _export(tmp_path)
    cases = [
        (["--gate", "scor >= 1"], "did you mean `score`"),
        (["--gate", "score >= open('x')"], "--gate"),
        (["--gate", "score = 1"], "--gate"),
        (["--baseline", "v7"], "no successful run of version 7"),
        (["--baseline", "yesterday"], "is not a baseline"),
        (["--baseline", "20200101-000000-000abcd"], "no run with that id"),
        (["--baseline", "0123456789abcdef0123456789abcdef"], "not tracked"),
    ]
    for args, words in cases:
        out = run_cli("run", "pipelines/nb", "--no-track", *args, cwd=tmp_path, env=NO_TRACK)
        assert out.returncode == 2, (args, out.stderr)
        assert words in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert _runs(tmp_path) == []


def test_a_nan_metric_fails_its_gate(tmp_path: Path) -> None:
    cells = [*TINY_CELLS[:-1], ('score = float("nan")\ncount = 1', ["evaluation", "metrics"])]
    write_notebook(tmp_path / "nb.ipynb", [*cells, ("score >= 0", ["gates"])])
    assert run_cli("export", "nb.ipynb", cwd=tmp_path).returncode == 0
    out = run_cli("run", "pipelines/nb", "--no-track", cwd=tmp_path, env=NO_TRACK)
    assert out.returncode == 4
    assert "`score` is NaN" in out.stderr


def test_a_step_failure_is_exit_1_and_gates_not_checked(tmp_path: Path) -> None:
    _export(tmp_path)
    out = run_cli(
        "run", "pipelines/nb", "--no-track", "-p", "delay=-1.0", cwd=tmp_path, env=NO_TRACK
    )
    assert out.returncode == 1, out.stderr
    assert _last(tmp_path)["gates"]["status"] == "not checked"


def test_asking_for_the_champion_creates_no_mlflow_store(tmp_path: Path) -> None:
    out = run_cli("champion", "nb", cwd=tmp_path, env=NO_TRACK)
    assert out.returncode == 1
    assert "no champion yet" in out.stderr and "--promote" in out.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
