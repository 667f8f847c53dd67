"""The run folder's one module: its layout, its one atomic writer, and the listing built on it."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import nb2prod.runtime as rt
from nb2prod import run_folder as rf
from nb2prod import run_index

RUN_A = "20261122-074521-0000001"
RUN_B = "20261122-074522-0000002"


# --- layout ----------------------------------------------------------------------------------
def test_layout_of_a_home(tmp_path: Path) -> None:
    home = tmp_path / ".nb2prod"
    run = rf.run_dir(home, RUN_A)
    assert rf.runs_dir(home) == home / "runs"
    assert run == home / "runs" / RUN_A
    assert rf.record_path(run) == run / "run.json"
    assert rf.config_path(run) == run / "config.yaml"
    assert rf.reserve_path(run) == run / ".reserve"
    assert rf.step_dir(run, "train") == run / "steps" / "train"
    assert rf.outputs_dir(run, "train") == run / "steps" / "train" / "outputs"
    assert rf.metrics_path(run, "train") == run / "steps" / "train" / "metrics.json"
    assert rf.models_dir(run, "train") == run / "steps" / "train" / "models"
    assert rf.notebook_path(run, "train") == run / "steps" / "train" / "notebook.ipynb"
    cache = rf.cache_dir(home, "churn")
    assert cache == home / "cache" / "churn"
    assert rf.cache_entry(cache, "train", "ab12") == cache / "train" / "ab12.json"
    assert rf.job_path(home, RUN_A) == home / "jobs" / f"{RUN_A}.json"
    assert rf.job_path(home, RUN_A, ".log") == home / "jobs" / f"{RUN_A}.log"


def test_runs_home_follows_nb2prod_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NB2PROD_HOME", raising=False)
    assert rf.runs_home() == Path(".nb2prod")
    assert rf.runs_home(tmp_path) == tmp_path / ".nb2prod"
    monkeypatch.setenv("NB2PROD_HOME", "elsewhere")
    assert rf.runs_home(tmp_path) == tmp_path / "elsewhere"
    monkeypatch.setenv("NB2PROD_HOME", str(tmp_path / "abs"))
    assert rf.runs_home(Path("/ignored")) == tmp_path / "abs"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\0b"])
def test_step_names_that_leave_their_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cannot be used as a file name"):
        rf.step_dir(tmp_path, name)


def test_run_ids(tmp_path: Path) -> None:
    from nb2prod.run.runner import new_run_id

    assert rf.RUN_ID_RE.fullmatch(new_run_id())
    assert not rf.RUN_ID_RE.fullmatch("../../etc/passwd")


def test_one_name_for_each_contract_the_steps_rely_on() -> None:
    """Exported steps see these through nb2prod.runtime; old versions need their values."""
    import nb2prod.export.codegen
    import nb2prod.run.runner

    assert rf.RUN_DIR_PARAM == "nb2prod_run_dir" == nb2prod.export.codegen.RUN_DIR_PARAM
    assert nb2prod.run.runner.RUN_DIR_PARAM is rf.RUN_DIR_PARAM
    assert rt.step_dir is rf.step_dir and rt.outputs_dir is rf.outputs_dir
    assert rt.metrics_path is rf.metrics_path
    assert rt.NoSpaceError is rf.NoSpaceError and rt.RuntimeStepError is rf.RuntimeStepError
    assert issubclass(rt.InputMissingError, rf.RuntimeStepError)
    assert (rt.CONFIG_FILENAME, rt.METRICS_FILENAME) == ("config.yaml", "metrics.json")
    assert run_index.runs_home is rf.runs_home and run_index.RUN_ID_RE is rf.RUN_ID_RE


def test_import_needs_only_the_standard_library(tmp_path: Path) -> None:
    code = (  # modules loaded at start-up (.pth files) do not count
        "import sys; before = set(sys.modules); import nb2prod.run_folder; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "extra = sorted(new - set(sys.stdlib_module_names) - {'nb2prod'}); "
        "assert not extra, extra"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr


# --- the writer ------------------------------------------------------------------------------
def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_results_are_written_read_only(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    rf.write_bytes_atomic(target, b"[1]")
    assert target.read_bytes() == b"[1]"
    assert not stat.S_IMODE(target.stat().st_mode) & 0o222
    rf.write_bytes_atomic(target, b"[2]")  # a rename replaces even a read-only file
    assert target.read_bytes() == b"[2]"
    assert not _leftovers(tmp_path)


def test_records_stay_writable(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    rf.write_record(target, '{"status": "running"}\n')
    rf.write_record(target, '{"status": "succeeded"}\n')
    assert json.loads(target.read_text("utf-8")) == {"status": "succeeded"}
    assert stat.S_IMODE(target.stat().st_mode) & 0o200
    assert not _leftovers(tmp_path)


def test_only_durable_writes_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    rf.write_record(tmp_path / "run.json", "{}")
    assert not synced
    rf.write_bytes_atomic(tmp_path / "out.json", b"{}")
    assert len(synced) == 2  # the file, then its folder


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    rf.write_bytes_atomic(target, b"old")

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        rf.write_atomic(target, fail)
    assert target.read_bytes() == b"old"
    assert not _leftovers(tmp_path)


def test_a_full_disk_is_a_no_space_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"

    def full(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(rf.NoSpaceError) as info:
        rf.write_atomic(target, full, read_only=False, durable=False)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert str(info.value).startswith(f"No space left on device while writing {target}.")
    assert "NB2PROD_HOME" in str(info.value)
    assert not target.exists() and not _leftovers(tmp_path)


def test_the_runtime_writes_through_it(tmp_path: Path) -> None:
    rt.start_step(tmp_path, "train")
    try:
        path = rt.save("data", [1, 2])
        rt.log_metrics({"score": 0.5})
    finally:
        rt.end_step()
    assert path == rf.outputs_dir(tmp_path, "train") / "data.json"
    for written in (path, rf.metrics_path(tmp_path, "train")):
        assert not stat.S_IMODE(written.stat().st_mode) & 0o222, written


# --- the listing -----------------------------------------------------------------------------
def _finished_run(home: Path, run_id: str, pipeline: str) -> None:
    folder = rf.run_dir(home, run_id)
    folder.mkdir(parents=True)
    data = {"id": run_id, "pipeline": pipeline, "status": "succeeded", "steps": {}, "pid": 0}
    rf.write_record(rf.record_path(folder), json.dumps(data))


def test_runs_are_listed_from_the_layout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _finished_run(home, RUN_A, "churn")
    _finished_run(home, RUN_B, "other")
    rf.runs_dir(home).joinpath("not-a-run").mkdir()
    rf.record_path(rf.runs_dir(home) / "not-a-run").write_text("{}")
    listed = run_index.list_runs(home)
    assert [r["id"] for r in listed] == [RUN_B, RUN_A]  # newest first, foreign folders left out
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]
    assert [r["id"] for r in run_index.list_runs(home, "pipelines/churn/v1")] == [RUN_A]
    assert [r["id"] for r in run_index.list_runs(home, limit=1)] == [RUN_B]
    assert run_index.read_run(home, "../" + RUN_A) is None
