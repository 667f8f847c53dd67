"""nb2prod.run.record: the typed run record, and the one way it changes (record, write, notify)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nb2prod.errors import Nb2prodError
from nb2prod.run.kernels import KernelDied, StepTimeout
from nb2prod.run.record import RunData, RunRecord, StepError, StepRecord

# run.json's keys, as the CLI, the REST API, the lab extension and the tracker read them.
RUN_KEYS = [
    "schema_version", "id", "pipeline", "version", "version_dir", "notebook", "notebook_sha256",
    "nb2prod_version", "git_commit", "status", "pid", "started_at", "finished_at", "duration",
    "params", "overrides", "steps", "metrics", "error", "warnings", "environment", "tracking",
]  # fmt: skip
STEP_KEYS = [
    "role", "state", "depends_on", "params", "started_at", "duration", "cached_from", "notebook",
    "outputs", "metrics", "models", "model_uris", "error", "data",
]  # fmt: skip


def _data() -> RunData:
    return RunData(
        id="20261126-194404-123abcd",
        pipeline="tiny",
        version=1,
        version_dir="pipelines/tiny/v1",
        notebook="notebooks/tiny.ipynb",
        notebook_sha256="0" * 64,
        nb2prod_version="0",
        git_commit=None,
        pid=1,
        params={"n": 3},
        overrides={},
        steps={
            "prep": StepRecord("preprocessing", "queued", [], {"n": 3}),
            "train": StepRecord("training", "queued", ["prep"], {}),
        },
        tracking={"state": "pending"},
    )


def _record(tmp_path: Path) -> tuple[RunRecord, list[tuple[str, str, dict[str, Any]]]]:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    record = RunRecord(tmp_path / "run.json", _data(), lambda *event: seen.append(event))
    return record, seen


def _on_disk(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "run.json").read_text())
    return data


def test_the_record_is_on_disk_from_the_start_with_the_schema_readers_expect(
    tmp_path: Path,
) -> None:
    record, seen = _record(tmp_path)
    data = _on_disk(tmp_path)
    assert list(data) == RUN_KEYS
    assert list(data["steps"]["prep"]) == STEP_KEYS
    assert data["status"] == "running" and data["schema_version"] == 1
    assert data == record.to_json() and seen == []


def test_a_change_is_written_and_told_with_the_same_content(tmp_path: Path) -> None:
    record, seen = _record(tmp_path)
    record.change("prep", "running", reason="no earlier run", started_at="t0", notebook="nb")
    record.change("prep", "succeeded", duration=1.5, outputs={"df": "ab"}, metrics={"acc": 0.9})
    disk = _on_disk(tmp_path)["steps"]["prep"]
    assert [e[:2] for e in seen] == [("running", "prep"), ("succeeded", "prep")]
    assert seen[-1][2] == disk
    assert disk["state"] == "succeeded" and disk["reason"] == "no earlier run"
    assert disk["outputs"] == {"df": "ab"} and disk["started_at"] == "t0"
    with pytest.raises(TypeError):  # only StepRecord's fields exist
        record.change("prep", "failed", colour="red")


def test_errors_are_values_that_become_json_only_when_written(tmp_path: Path) -> None:
    record, seen = _record(tmp_path)
    record.change("prep", "failed", error=StepError.internal(OSError(28, "No space left")))
    record.change("train", "skipped", error=StepError.skipped("prep"))
    steps = _on_disk(tmp_path)["steps"]
    assert steps["prep"]["error"]["message"].startswith("nb2prod could not run the step: ")
    assert "no space left on device" in steps["prep"]["error"]["message"]
    assert steps["train"]["error"] == {
        "cell": None,
        "ename": "Skipped",
        "evalue": "prep did not succeed",
        "message": "not run because step prep did not succeed",
    }
    assert seen[-1][2]["error"] == steps["train"]["error"]


def test_execution_errors_name_the_cell_that_raised(tmp_path: Path) -> None:
    notebook = tmp_path / "executed.ipynb"
    cell = {
        "cell_type": "code",
        "metadata": {"title": "cell 4"},
        "source": ["1 / 0"],
        "outputs": [{"output_type": "error", "ename": "ZeroDivisionError"}],
    }
    notebook.write_text(json.dumps({"cells": [cell]}))

    class Raised(Exception):
        ename, evalue, traceback = "ZeroDivisionError", "division by zero", ["line"]

    error = StepError.from_execution(Raised(), notebook).to_json()
    assert error["cell"] == "cell 4" and error["source"] == "1 / 0"
    assert error["message"] == "ZeroDivisionError: division by zero"
    assert error["traceback"] == ["line"]
    timeout = StepError.from_execution(StepTimeout("step took longer than 1s"), notebook)
    assert timeout.ename == "Timeout" and timeout.cell is None
    died = StepError.from_execution(KernelDied("exit code -9"), notebook)
    assert "the kernel died (exit code -9)" in died.message
    interrupted = StepError.interrupted("cell 4").to_json()
    assert interrupted["ename"] == "Interrupted" and interrupted["cell"] == "cell 4"
    assert "source" not in interrupted


def test_finish_merges_metrics_in_step_order_and_keeps_write_errors(tmp_path: Path) -> None:
    record, _ = _record(tmp_path)
    record.change("prep", "succeeded", metrics={"a": 1, "b": 1})
    record.change("train", "succeeded", metrics={"b": 2})
    record.warn("step train is not cached for later runs")
    record.write_error = "no space left on device while writing run.json."
    record.finish("failed", 2.0, final=True)
    data = _on_disk(tmp_path)
    assert data["metrics"] == {"a": 1, "b": 2}
    assert data["status"] == "failed" and data["duration"] == 2.0 and data["finished_at"]
    assert data["error"] == "no space left on device while writing run.json."
    assert data["warnings"] == ["step train is not cached for later runs"]


def test_tracking_phase_changes_are_recorded_and_told(tmp_path: Path) -> None:
    record, seen = _record(tmp_path)
    record.track("tracking", {"state": "logging"})
    record.track("tracked", {"state": "done", "ok": True}, models={"train": {"m": "uri"}})
    data = _on_disk(tmp_path)
    assert data["tracking"] == {"state": "done", "ok": True}
    assert data["steps"]["train"]["model_uris"] == {"m": "uri"}
    assert [e[0] for e in seen] == ["tracking", "tracked"]


def test_an_observer_that_fails_never_fails_the_run(tmp_path: Path) -> None:
    def broken(*event: Any) -> None:
        raise RuntimeError("display gone")

    record = RunRecord(tmp_path / "run.json", _data(), broken)
    record.change("prep", "running")
    assert _on_disk(tmp_path)["steps"]["prep"]["state"] == "running"


def test_an_unwritable_run_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(Nb2prodError, match="Fix: free space or permissions"):
        RunRecord(tmp_path / "missing" / "run.json", _data())
