"""nb2prod.sweep's pure parts: which steps the points share, the --sort check, the table, and
the tags a run carries into run.json and its MLflow parent run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nb2prod.errors import Nb2prodError
from nb2prod.pipeline import PipelineSpec, StepSpec
from nb2prod.run.record import RunData, RunRecord, StepRecord
from nb2prod.sweep.jobs import shared_steps
from nb2prod.sweep.report import Row, SortKey, parse_sort, sort_rows, table


def step(
    name: str, params: tuple[str, ...], after: tuple[str, ...] = (), **engine: Any
) -> StepSpec:
    return StepSpec(name, "training", Path(f"{name}.py"), (), (), params, after, engine)


def spec(*steps: StepSpec) -> PipelineSpec:
    return PipelineSpec("p", 1, Path("pipelines/p/v1"), "p.ipynb", "0" * 64, steps)


PIPELINE = spec(
    step("load", ("path",)),
    step("split", ("test_size",), ("load",)),
    step("features", ("n_bins",), ("load",)),
    step("train", ("C",), ("split", "features")),
    step("evaluate", (), ("train",)),
)


@pytest.mark.parametrize(
    ("swept", "shared"),
    [
        (["C"], ["load", "split", "features"]),
        (["n_bins"], ["load", "split"]),  # independent of features: shared all the same
        (["C", "test_size"], ["load", "features"]),
        (["path"], []),  # everything downstream of the swept parameter varies
        (["unused"], ["load", "split", "features", "train", "evaluate"]),
    ],
)
def test_the_points_share_the_steps_no_swept_parameter_reaches(
    swept: list[str], shared: list[str]
) -> None:
    assert shared_steps(PIPELINE, swept) == shared


def test_steps_the_cache_may_not_reuse_are_not_shared_nor_what_follows_them() -> None:
    pipeline = spec(
        step("load", ()),
        step("fetch", (), ("load",), cache="disabled"),
        step("clean", (), ("fetch",)),
        step("train", ("C",), ("clean",)),
    )
    assert shared_steps(pipeline, ["C"]) == ["load"]


def row(accuracy: Any, status: str = "succeeded", **params: Any) -> Row:
    metrics = {} if accuracy is None else {"accuracy": accuracy}
    return Row(params, {"id": f"run-{params}", "status": status, "metrics": metrics})


def test_sort_puts_points_without_the_metric_last_in_grid_order() -> None:
    rows = [row(0.8, C=1), row(None, "failed", C=2), row(0.9, C=3), row(float("nan"), C=4)]
    best_first = sort_rows(rows, SortKey("accuracy", descending=True))
    assert [r.params["C"] for r in best_first] == [3, 1, 2, 4]
    lowest_first = sort_rows(rows, SortKey("accuracy", descending=False))
    assert [r.params["C"] for r in lowest_first] == [1, 3, 2, 4]
    assert sort_rows(rows, None) == rows


def test_sort_by_a_metric_the_pipeline_does_not_report_is_refused_with_the_known_ones() -> None:
    assert parse_sort("-accuracy", ["accuracy", "f1"]) == SortKey("accuracy", True)
    assert parse_sort("f1", ["accuracy", "f1"]) == SortKey("f1", False)
    with pytest.raises(Nb2prodError) as caught:
        parse_sort("-acc", ["accuracy", "f1"])
    assert "no metric `acc` (it reports accuracy, f1)" in caught.value.message
    assert "Fix: sort by one of them, e.g. --sort -accuracy" in caught.value.message
    with pytest.raises(Nb2prodError, match="no metric named"):
        parse_sort("-", ["accuracy"])
    # Nothing known before the runs (a dict of metrics, never run): accepted as it is.
    assert parse_sort("-loss", []) == SortKey("loss", True)


def test_the_table_has_a_column_per_parameter_and_per_metric_reported() -> None:
    rows = [
        Row(
            {"C": 0.1, "solver": "saga"},
            {"id": "r1", "status": "succeeded", "metrics": {"f1": 0.5}},
        ),
        Row({"C": 1.0, "solver": "lbfgs"}, {"status": "not run"}),
    ]
    lines = table(rows, ["C", "solver"]).splitlines()
    assert lines[0].split() == ["C", "solver", "status", "run", "f1"]
    assert lines[1].split() == ["0.1", "saga", "succeeded", "r1", "0.5"]
    assert lines[2].split() == ["1.0", "lbfgs", "not", "run", "-", "-"]  # 1.0 stays a float
    assert json.loads(json.dumps(rows[0].to_json("s1"))) == {
        "params": {"C": 0.1, "solver": "saga"},
        "run_id": "r1",
        "status": "succeeded",
        "metrics": {"f1": 0.5},
        "sweep": "s1",
    }


def test_a_runs_tags_are_in_run_json_only_when_given(tmp_path: Path) -> None:
    data = RunData(
        id="20261126-194404-123abcd",
        pipeline="p",
        version=1,
        version_dir="pipelines/p/v1",
        notebook="p.ipynb",
        notebook_sha256=None,
        nb2prod_version="0",
        git_commit=None,
        pid=1,
        params={},
        overrides={},
        steps={"s": StepRecord("training", "queued", [], {})},
    )
    RunRecord(tmp_path / "run.json", data)
    assert "tags" not in json.loads((tmp_path / "run.json").read_text())
    data.tags = {"nb2prod.sweep": "s1"}
    RunRecord(tmp_path / "run.json", data)
    assert json.loads((tmp_path / "run.json").read_text())["tags"] == {"nb2prod.sweep": "s1"}


def test_a_runs_tags_go_on_its_mlflow_parent_run_never_over_nb2prods_own() -> None:
    from nb2prod.tracking.mlflow_log import _Progress, _RunLogger

    record = {
        "id": "r1",
        "pipeline": "p",
        "version": 1,
        "status": "succeeded",
        "steps": {},
        "tags": {"nb2prod.sweep": "s1", "nb2prod.sweep.C": "0.1", "nb2prod.run_id": "forged"},
    }
    tags = _RunLogger(None, _Progress(), Path("."), record)._parent_tags()
    assert tags["nb2prod.sweep"] == "s1" and tags["nb2prod.sweep.C"] == "0.1"
    assert tags["nb2prod.run_id"] == "r1"


def test_a_worker_without_the_project_folder_says_so_without_running(tmp_path: Path) -> None:
    from nb2prod.sweep.jobs import Job, run_job

    job = Job(
        version_dir=str(tmp_path / "elsewhere" / "pipelines" / "p" / "v1"),
        cwd=str(tmp_path / "elsewhere"),
        run_id="20261126-194404-123abcd",
        params={"C": 0.1},
        tags={},
        track=False,
    ).to_json()
    outcome = run_job(job)
    assert outcome["status"] == "error" and outcome["id"] == "20261126-194404-123abcd"
    assert f"the project folder {tmp_path / 'elsewhere'}" in outcome["error"]
    assert "Fix: make the project folder available at the same path" in outcome["error"]
