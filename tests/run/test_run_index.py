"""One reader for run state: `nb2prod runs` believes what the REST API believes.

A run whose process is killed with -9 cannot finish its record: run.json says `running` for
ever. Readers must report it `interrupted` (its unfinished steps too), and never rewrite it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from nb2prod import run_index

from conftest import TINY_CELLS, nb2prod_command, run_cli, write_notebook

pytestmark = pytest.mark.timeout(300)


def record_of(project: Path) -> dict[str, Any]:
    (path,) = (project / ".nb2prod" / "runs").glob("*/run.json")
    return dict(json.loads(path.read_text()))


def test_a_run_killed_with_sigkill_is_listed_as_interrupted(tmp_path: Path) -> None:
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb", TINY_CELLS)
    assert run_cli("export", "notebooks/tiny.ipynb", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [*nb2prod_command(), "run", "pipelines/tiny", "--no-track", "-p", "delay=60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            runs = list((tmp_path / ".nb2prod" / "runs").glob("*/run.json"))
            record = record_of(tmp_path) if runs else {}
            if record.get("steps", {}).get("training", {}).get("state") == "running":
                break
            assert proc.poll() is None and time.monotonic() < deadline, record
            time.sleep(0.2)
        r = run_cli("runs", cwd=tmp_path)  # while it runs, it is running
        assert r.returncode == 0 and "running" in r.stdout, r.stdout + r.stderr
    finally:
        runner = psutil.Process(proc.pid)
        family = [runner, *runner.children(recursive=True)]  # its kernels would outlive it
        for p in family:
            p.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)
        proc.wait(timeout=10)

    r = run_cli("runs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert f"{record['id']}  tiny v1" in line and " interrupted " in line, line
    r = run_cli("runs", "tiny", "--json", cwd=tmp_path)
    (listed,) = json.loads(r.stdout)
    assert listed["status"] == "interrupted" and listed["active"] is False
    assert f"pid {proc.pid}" in listed["note"]
    assert {n: s["state"] for n, s in listed["steps"].items()} == {
        "preprocessing": "succeeded",
        "training": "interrupted",
        "evaluation": "interrupted",
    }
    assert record_of(tmp_path)["status"] == "running"  # readers report; they never rewrite


def test_reader_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rules without a real run: finished, dead, living, queued and foreign files."""
    home = tmp_path / ".nb2prod"
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = psutil.Process()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(me.create_time()))

    def write(run_id: str, **fields: Any) -> None:
        folder = home / "runs" / run_id
        folder.mkdir(parents=True)
        steps = {"a": {"state": "succeeded"}, "b": {"state": fields.pop("b", "running")}}
        data = {"id": run_id, "pipeline": "p", "version": 1, "steps": steps, **fields}
        (folder / "run.json").write_text(json.dumps(data))

    write("20261122-074521-0000001", status="succeeded", pid=gone.pid, b="succeeded")
    write("20261122-074522-0000002", status="running", pid=gone.pid, started_at=started)
    write("20261122-074523-0000003", status="running", pid=me.pid, started_at=started)
    (home / "runs" / "not-a-run").mkdir()
    (home / "runs" / "not-a-run" / "run.json").write_text("{}")
    (home / "jobs").mkdir()
    queued = {"id": "20261122-074524-0000004", "pipeline": "q", "version": 2, "pid": me.pid}
    (home / "jobs" / "20261122-074524-0000004.json").write_text(
        json.dumps({**queued, "requested_at": time.time()})
    )

    found = run_index.list_runs(home)
    assert [(r["id"][-1], r["status"], r["active"]) for r in found] == [
        ("4", "queued", True),
        ("3", "running", True),
        ("2", "interrupted", False),
        ("1", "succeeded", False),
    ]
    assert found[2]["steps"]["b"]["state"] == "interrupted"
    assert [r["id"][-1] for r in run_index.list_runs(home, "pipelines/p/v1", limit=2)] == ["3", "2"]
    assert run_index.read_run(home, "../../etc/passwd") is None
    assert run_index.read_run(home, "20261122-074521-0000009") is None
    monkeypatch.chdir(tmp_path)
    assert len(run_index.list_runs(run_index.runs_home(), "q")) == 1
