"""The serving model built from a hand-made run folder: the pyfunc model, its example, the skew
check and its comparison (MLflow for real, no kernel, no nb2prod subprocess)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2prod.pipeline import PipelineSpec
from nb2prod.run_folder import outputs_dir, serving_example_dir
from nb2prod.serving.outcome import ServingOutcome, summary_line
from nb2prod.serving.skew import compare
from nb2prod.version_folder import ServingNeed, ServingSpec, StepSpec

MODULE = """# serving module
import numpy as np


def _scaled(raw):
    return (raw[features].to_numpy() - center) * factor


def predict(raw):
    return _scaled(raw).sum(axis=1) > threshold
"""


def _step(vdir: Path, name: str, role: str, outputs: tuple[str, ...] = ()) -> StepSpec:
    return StepSpec(name, role, vdir / f"steps/{name}.py", (), outputs, (), ())


def _spec(
    tmp: Path, callers: tuple[str, ...] = ("evaluation",), example: bool = True
) -> PipelineSpec:
    vdir = tmp / "pipelines/p/v1"
    (vdir / "steps").mkdir(parents=True)
    (vdir / "steps/serving.py").write_text(MODULE)
    (vdir / "requirements.txt").write_text("numpy==2.0.0\npandas==2.2.0\n")
    serving = ServingSpec(
        function="predict",
        module="steps/serving.py",
        cell=3,
        args=("raw",),
        needs=(
            ServingNeed("center", "training"),
            ServingNeed("factor", "parameter"),
            ServingNeed("features", "parameter"),
            ServingNeed("threshold", "training"),
        ),
        callers=callers,
        example=ServingNeed("X", "preprocessing") if example else None,
    )
    steps = (
        _step(vdir, "preprocessing", "preprocessing", ("X",)),
        _step(vdir, "training", "training", ("center", "threshold")),
        _step(vdir, "evaluation", "evaluation"),
    )
    return PipelineSpec("p", 1, vdir, "p.ipynb", "0" * 64, steps, serving=serving)


def _data(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "name": [f"r{i}" for i in range(n)]},
        index=range(100, 100 + n),
    )


def _run_folder(tmp: Path, record: bool = True, output_change: bool = False) -> Path:
    run = tmp / "run"
    for step in ("preprocessing", "training", "evaluation"):
        outputs_dir(run, step).mkdir(parents=True)
    X = _data()
    X.to_pickle(outputs_dir(run, "preprocessing") / "X.pkl")
    center = np.array([0.1, -0.2])
    np.save(outputs_dir(run, "training") / "center.npy", center)
    (outputs_dir(run, "training") / "threshold.json").write_text("0.25")
    (run / "config.yaml").write_text("factor: 2.0\nfeatures: [a, b]\nother: 1\n")
    if record:
        folder = serving_example_dir(run, "evaluation")
        folder.mkdir(parents=True)
        expected = ((X[["a", "b"]].to_numpy() - center) * 2.0).sum(axis=1) > 0.25
        if output_change:
            expected = expected.copy()
            expected[[3, 7]] = ~expected[[3, 7]]
        with open(folder / "input.pkl", "wb") as fh:
            pickle.dump({"args": [X], "kwargs": {}}, fh)
        with open(folder / "output.pkl", "wb") as fh:
            pickle.dump(expected, fh)
    return run


PARAMS = {"factor": 2.0, "features": ["a", "b"], "other": 1}


def test_model_from_a_recorded_call_serves_what_the_function_returned(tmp_path: Path) -> None:
    import mlflow.pyfunc

    from nb2prod.serving.build import build, check

    spec, run = _spec(tmp_path), _run_folder(tmp_path)
    result = build(spec, run, PARAMS)
    assert result.model_dir == run / "serving/model"
    assert result.example is not None and result.example.origin == "evaluation"
    assert check(result) is None
    model = mlflow.pyfunc.load_model(str(result.model_dir))
    served = model.predict(_data().iloc[:4])
    assert served.tolist() == result.example.output[:4].tolist()
    meta = model.metadata
    assert [c["name"] for c in meta.signature.inputs.to_dict()] == ["a", "b", "name"]
    reqs = (result.model_dir / "requirements.txt").read_text().split()
    assert reqs[0].startswith("mlflow==") and reqs[1:] == ["numpy==2.0.0", "pandas==2.2.0"]
    artifacts = sorted(p.name for p in (result.model_dir / "artifacts").iterdir())
    assert artifacts == ["need-center.npy", "need-threshold.json", "parameters.json", "serving.py"]


def test_a_recorded_output_the_model_does_not_give_is_skew_naming_the_rows(tmp_path: Path) -> None:
    from nb2prod.serving.build import build, check

    spec, run = _spec(tmp_path), _run_folder(tmp_path, output_change=True)
    message = check(build(spec, run, PARAMS))
    assert message is not None
    assert message.startswith("2 of 20 rows differ; first differing rows: index 103: expected")
    assert "index 107" in message


def test_without_a_recorded_call_the_example_is_the_head_of_serving_example(tmp_path: Path) -> None:
    from nb2prod.serving.build import build, check

    spec, run = _spec(tmp_path), _run_folder(tmp_path, record=False)
    result = build(spec, run, PARAMS)
    assert result.example is not None
    assert result.example.origin == "X from preprocessing" and result.example.rows == 5
    assert check(result) is None


def test_no_example_at_all_warns_and_still_saves_a_model(tmp_path: Path) -> None:
    from nb2prod.serving.build import build, check

    spec = _spec(tmp_path, callers=(), example=False)
    result = build(spec, _run_folder(tmp_path, record=False), PARAMS)
    assert result.example is None and "no input example" in result.warnings[0]
    assert check(result) is None
    assert (result.model_dir / "MLmodel").is_file()


def test_a_need_that_cannot_be_loaded_is_named(tmp_path: Path) -> None:
    from nb2prod.serving.build import build, check

    spec, run = _spec(tmp_path), _run_folder(tmp_path)
    (outputs_dir(run, "training") / "center.npy").unlink()
    (outputs_dir(run, "training") / "center.pkl").write_bytes(
        b"\x80\x05\x95\x18\x00\x00\x00\x00\x00\x00\x00\x8c\x08__main__\x94\x8c\x03Foo\x94\x93\x94."
    )
    with pytest.raises(Exception, match="serving need `center` .*an output of step training"):
        check(build(spec, run, PARAMS))


def test_compare_is_exact_nan_equal_and_index_insensitive() -> None:
    s = pd.Series([1.0, np.nan, 3.0], index=["x", "y", "z"])
    assert compare(s, np.array([1.0, np.nan, 3.0])) is None
    assert compare(s, pd.DataFrame({"v": [1.0, np.nan, 3.0]})) is None
    skew = compare(s, [1.0, np.nan, 3.0000001])
    assert skew is not None and skew.differing == 1
    assert skew.describe() == (
        "1 of 3 rows differ; first differing rows: index 'z': expected 3.0, served 3.0000001"
    )
    assert compare(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]])).first[0].label == 1
    assert compare(np.array(["a", None]), ["a", None]) is None
    assert "shape" in compare([1, 2, 3], [1, 2]).describe()


def test_outcome_json_and_summary_line() -> None:
    outcome = ServingOutcome(
        "predict", "predict(raw)", "serving/model", "evaluation", 100, "none", "ok"
    )
    data = outcome.to_json()
    assert data["skew"] == "none" and "error" not in data
    assert ServingOutcome.from_json(data) == outcome
    line = summary_line({"serving": data, "tracking": None})
    assert line == (
        "serving: predict(raw) saved as serving/model, no training/serving skew on 100 rows "
        "(input example from evaluation)"
    )
