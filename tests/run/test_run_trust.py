"""Trust in `nb2prod run`: no silent wrong result and no lost run, through the real CLI.

The cache never serves an output that no longer matches its recorded SHA-256; results are
read-only; a full disk or a read-only run folder gives one clear message and a valid record;
bad options are refused; and the output says why a step re-ran and where the time went.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY_CELLS, nb2prod_command, run_cli, write_notebook

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    r = run_cli("export", "notebooks/tiny.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def run(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "run", "pipelines/tiny", "--no-track", *args, cwd=project, env={"CI": "true", **(env or {})}
    )


def runs(project: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text())
        for p in sorted((project / ".nb2prod" / "runs").glob("*/run.json"))
    ]


def run_dir(project: Path, record: dict[str, Any]) -> Path:
    return project / ".nb2prod" / "runs" / record["id"]


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[None]:
    """A small or read-only file system at ``where``: what a full disk or a read-only mount is
    like, even for root (who ignores file permissions)."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_results_are_read_only(project: Path) -> None:
    assert run(project).returncode == 0
    folder = run_dir(project, runs(project)[-1]) / "steps"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "notebook.ipynb" for p in files)
    assert any(p.parent.name == "outputs" for p in files)
    writable = [str(p) for p in files if p.stat().st_mode & 0o222]
    assert not writable


def test_an_edited_cached_output_is_never_reused(project: Path) -> None:
    assert run(project).returncode == 0
    second = run(project)
    assert second.returncode == 0
    first, cached = runs(project)
    assert cached["steps"]["preprocessing"]["state"] == "cached"
    # The cached run shares the first run's files; edit one (root ignores read-only modes).
    data = run_dir(project, first) / "steps" / "preprocessing" / "outputs" / "data.json"
    os.chmod(data, 0o644)
    data.write_text("[7, 7, 7]")
    third = run(project)
    assert third.returncode == 0, third.stderr
    record = runs(project)[-1]
    step = record["steps"]["preprocessing"]
    assert step["state"] == "succeeded"  # ran again instead of serving the edited file
    assert "no longer matches" in step["reason"]
    assert "no longer matches the SHA-256" in third.stderr
    assert record["metrics"] == first["metrics"]
    mine = run_dir(project, record) / "steps" / "preprocessing" / "outputs" / "data.json"
    assert json.loads(mine.read_text()) == [0, 1, 2]
    # The bad entry is gone: the next run reuses the recomputed result.
    assert run(project).returncode == 0
    assert runs(project)[-1]["steps"]["preprocessing"]["cached_from"] == record["id"]


def test_steps_outside_steps_are_refused_when_their_cache_was_edited(project: Path) -> None:
    assert run(project).returncode == 0
    first = runs(project)[-1]
    total = run_dir(project, first) / "steps" / "training" / "outputs" / "total.json"
    os.chmod(total, 0o644)
    total.write_text("99.0")
    r = run(project, "--steps", "evaluation", "--no-cache")
    assert r.returncode == 1
    record = runs(project)[-1]
    assert record["steps"]["evaluation"]["state"] == "skipped"
    error = record["steps"]["training"]["error"]
    assert error["ename"] == "NotCached" and "no longer matches" in error["message"]
    assert record["metrics"] == {}


def test_the_output_says_why_a_step_ran_again(project: Path) -> None:
    assert run(project).returncode == 0
    r = run(project, "-p", "factor=3.0")
    assert r.returncode == 0, r.stderr
    record = runs(project)[-1]
    assert record["steps"]["preprocessing"]["state"] == "cached"
    assert record["steps"]["training"]["reason"] == "parameter `factor` changed"
    assert re.search(r"… training +running \(parameter `factor` changed\)", r.stderr), r.stderr
    r = run(project, "--no-cache")
    assert "running (--no-cache)" in r.stderr


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf"])
def test_step_timeout_must_be_a_positive_number(project: Path, value: str) -> None:
    r = run(project, f"--step-timeout={value}")
    assert r.returncode == 2
    assert "positive number of seconds" in r.stderr and "Traceback" not in r.stderr
    assert not (project / ".nb2prod" / "runs").exists()


def test_a_read_only_runs_folder_is_a_clear_error(project: Path) -> None:
    with mounted_tmpfs(project / ".nb2prod" / "runs", "ro,size=64k"):
        r = run(project)
    assert r.returncode == 2
    assert "cannot write" in r.stderr and ".nb2prod/runs" in r.stderr
    assert "NB2PROD_HOME" in r.stderr and "Traceback" not in r.stderr


def test_a_read_only_cache_is_a_warning_not_a_failure(project: Path) -> None:
    with mounted_tmpfs(project / ".nb2prod" / "cache", "ro,size=64k"):
        r = run(project)
        assert r.returncode == 0, r.stderr
    record = runs(project)[-1]
    assert record["status"] == "succeeded"
    assert {s["state"] for s in record["steps"].values()} == {"succeeded"}
    assert "not cached for later runs" in r.stderr and "Traceback" not in r.stderr
    assert record["warnings"] and "not cached for later runs" in record["warnings"][0]


def test_a_full_disk_fails_the_run_with_one_message_and_a_valid_record(
    tmp_path: Path,
) -> None:
    cells = [
        ("size = 1000  # characters the step writes", ["parameters"]),
        ("blob = 'x' * size", ["preprocessing"]),
        ("n = len(blob)", ["training"]),
        ("score = float(n)", ["evaluation", "metrics"]),
    ]
    write_notebook(tmp_path / "notebooks" / "big.ipynb", cells)
    assert run_cli("export", "notebooks/big.ipynb", cwd=tmp_path).returncode == 0
    home = tmp_path / "home"
    with mounted_tmpfs(home, "size=1m"):
        r = run_cli(
            "run", "pipelines/big", "--no-track", "-p", "size=3000000",
            cwd=tmp_path, env={"CI": "true", "NB2PROD_HOME": str(home)},
        )  # fmt: skip
        assert r.returncode == 1
        assert "No space left on device while writing" in r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
        records = list(home.glob("runs/*/run.json"))
        assert len(records) == 1
        record = json.loads(records[0].read_text())  # valid JSON
        leftovers = [p.name for p in home.rglob("*") if p.name.endswith(".tmp")]
    assert record["status"] == "failed"
    assert record["steps"]["preprocessing"]["state"] == "failed"
    assert "No space left on device" in record["steps"]["preprocessing"]["error"]["message"]
    assert record["steps"]["training"]["state"] == "skipped"
    assert not leftovers


def test_a_failed_step_is_one_line_live_and_detailed_once_in_the_summary(tmp_path: Path) -> None:
    cells = [
        ("data = [1, 2]", ["preprocessing"]),
        ("raise ValueError('bad data' + chr(10) + 'second ' + 'line')", ["training"]),
    ]
    write_notebook(tmp_path / "notebooks" / "bad.ipynb", cells)
    assert run_cli("export", "notebooks/bad.ipynb", cwd=tmp_path).returncode == 0
    r = run_cli("run", "pipelines/bad", "--no-track", cwd=tmp_path, env={"CI": "true"})
    assert r.returncode == 1
    out = r.stdout + r.stderr
    live = [line for line in r.stderr.splitlines() if "✗ training" in line]
    assert len(live) == 1 and live[0].endswith("failed in " + live[0].split("failed in ")[1])
    assert "ValueError: bad data" in live[0]
    assert out.count("second line") == 1  # in the summary, not in the live line
    assert "step training failed in notebook cell 2" in out


def test_the_summary_time_includes_logging_to_mlflow(project: Path) -> None:
    store = project / "store"
    store.mkdir()
    r = run_cli(
        "run", "pipelines/tiny", cwd=project,
        env={"CI": "true", "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "logging to MLflow…" in r.stderr and "logged to MLflow in" in r.stderr
    record = runs(project)[-1]
    tracking = record["tracking"]
    assert tracking["state"] == "done" and tracking["ok"] and tracking["duration"] > 0
    headline = next(line for line in r.stdout.splitlines() if ": succeeded in " in line)
    match = re.search(r"succeeded in ([0-9.]+)s \((steps [^)]*)\)", headline)
    assert match, headline
    parts = dict(p.rsplit(" ", 1) for p in match.group(2).split(", "))
    assert set(parts) <= {"steps", "MLflow", "start-up"} and "MLflow" in parts
    # The parts add up to the total the user waited (each is rounded to 0.1 s).
    summed = sum(float(v.rstrip("s")) for v in parts.values())
    assert abs(float(match.group(1)) - summed) <= 0.2, headline


def test_sigterm_while_logging_to_mlflow_stops_at_once_and_keeps_the_record(
    project: Path,
) -> None:
    # A tracking "server" that accepts connections and never answers: logging hangs there.
    import signal
    import socket
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    env = {
        **os.environ,
        "CI": "true",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [*nb2prod_command(), "run", "pipelines/tiny"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        state = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = runs(project) if (project / ".nb2prod" / "runs").exists() else []
            state = ((found[-1].get("tracking") or {}).get("state")) if found else None
            if state == "logging":
                break
            time.sleep(0.05)
        assert state == "logging", "the run never reached its MLflow phase"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 130, err
    record = runs(project)[-1]
    assert record["status"] == "succeeded"  # the steps' results are complete and kept
    assert record["tracking"]["state"] == "done" and not record["tracking"]["ok"]
    assert "interrupted" in record["tracking"]["error"]
    assert "Traceback" not in out + err


def test_a_deep_temporary_folder_does_not_stop_kernels(project: Path, tmp_path: Path) -> None:
    # Kernels' Unix sockets live in a temporary folder; under a $TMPDIR too deep for a socket
    # path (108 bytes) they failed to start with "ipc path ... longer than 107 characters".
    deep = tmp_path / ("t" * 60) / ("u" * 60)
    deep.mkdir(parents=True)
    for fork in ("1", "0"):
        r = run(project, "--no-cache", env={"TMPDIR": str(deep), "NB2PROD_FORK_KERNELS": fork})
        assert r.returncode == 0, r.stdout + r.stderr
    assert [record["status"] for record in runs(project)] == ["succeeded", "succeeded"]
    assert not list(deep.glob("nb2prod-kernels-*"))
