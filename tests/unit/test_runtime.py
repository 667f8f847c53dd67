"""Tests of nb2prod.runtime: the run-folder contract every exported step relies on.

Everything runs against real files in a temporary folder; the subprocess tests
run real interpreters, because "what a fresh kernel sees" is the point.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nb2prod.runtime as rt

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_context_leaks() -> Iterator[None]:
    """Each test starts and ends without a current step."""
    rt.end_step()
    yield
    rt.end_step()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder with step 'prep' as the current step."""
    folder = tmp_path / "run"
    rt.start_step(folder, "prep")
    return folder


def outputs(run_dir: Path, step: str = "prep") -> list[str]:
    """All file names in a step's outputs folder, hidden temporary files included."""
    return sorted(os.listdir(run_dir / "steps" / step / "outputs"))


def roundtrip(name: str, value: Any) -> tuple[Path, Any]:
    path = rt.save(name, value)
    return path, rt.load(name, step="prep")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----------------------------------------------------------------------- import


def test_import_does_not_load_heavy_libraries(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        import nb2prod.runtime
        heavy = {"pandas", "numpy", "yaml", "pyarrow", "cloudpickle", "sklearn"}
        loaded = sorted(heavy & set(sys.modules))
        assert not loaded, loaded
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------- context


def test_start_step_creates_outputs_and_replaces_context(tmp_path: Path) -> None:
    assert rt.current_step() is None
    rt.start_step(tmp_path / "run", "prep")
    assert (tmp_path / "run" / "steps" / "prep" / "outputs").is_dir()
    rt.start_step(str(tmp_path / "run"), "training")
    assert rt.current_step() == ((tmp_path / "run").absolute(), "training")
    rt.save("x", 1)
    assert (tmp_path / "run" / "steps" / "training" / "outputs" / "x.json").is_file()
    assert outputs(tmp_path / "run", "prep") == []


def test_save_and_load_need_a_context() -> None:
    with pytest.raises(rt.RuntimeContextError, match="start_step"):
        rt.save("x", 1)
    with pytest.raises(rt.RuntimeContextError, match="start_step"):
        rt.load("x", step="prep")
    with pytest.raises(rt.RuntimeContextError, match="start_step"):
        rt.param("C", ...)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a\\b"])
def test_names_that_would_escape_the_folder_are_rejected(run_dir: Path, name: str) -> None:
    with pytest.raises(ValueError, match="file name"):
        rt.save(name, 1)


# ---------------------------------------------------------------------- formats


def test_dataframe_with_index_name_and_categorical_is_pickle(run_dir: Path) -> None:
    df = pd.DataFrame(
        {
            "age": [31, 45, 27],
            "income": [0.1, 2.5, float("nan")],
            "city": ["Paris", "Zürich", "東京"],
            "segment": pd.Categorical(["b", "a", "b"], categories=["b", "a"], ordered=True),
            "joined": pd.to_datetime(["2020-01-01", "2021-06-30", None]),
        },
        index=pd.Index([10, 20, 30], name="customer_id"),
    )
    path, loaded = roundtrip("X_train", df)
    assert path == run_dir / "steps" / "prep" / "outputs" / "X_train.pkl"
    assert loaded.equals(df)
    assert list(loaded.dtypes) == list(df.dtypes)
    assert loaded.index.name == "customer_id"
    assert list(loaded["segment"].cat.categories) == ["b", "a"]
    assert loaded["segment"].cat.ordered


def test_dataframe_with_int_column_names_is_pickle(run_dir: Path) -> None:
    df = pd.DataFrame(np.arange(6.0).reshape(3, 2))
    path, loaded = roundtrip("features", df)
    assert path.name == "features.pkl"
    assert loaded.equals(df)
    assert list(loaded.columns) == [0, 1]


@pytest.mark.parametrize(
    "df",
    [
        pd.DataFrame({"a": pd.Series(["x", 1], dtype=object)}),  # pyarrow refuses
        pd.DataFrame({"a": pd.Series(["x", float("nan")], dtype=object)}),  # NaN -> None
        pd.DataFrame({"a": [[1, 2], [3]]}),  # lists would come back as arrays
        pd.DataFrame({"t": pd.to_datetime(["2020-01-01"]).astype("datetime64[s]")}),
        pd.DataFrame({"v": [1, 2]}, index=pd.date_range("2024-01-01", periods=2, freq="D")),
        pd.DataFrame({"c": pd.Categorical([1, 2, 1])}),  # comes back as int64
        pd.DataFrame({"z": [1 + 2j, 3j]}),
        pd.DataFrame([[1, 2]], columns=["a", "a"]),  # duplicate names
    ],
    ids=["mixed", "nan-in-object", "lists", "seconds", "freq", "int-categories", "complex", "dup"],
)
def test_dataframes_parquet_would_have_altered_are_exact(run_dir: Path, df: pd.DataFrame) -> None:
    path, loaded = roundtrip("df", df)
    assert path.suffix == ".pkl"
    assert loaded.equals(df)
    assert list(loaded.dtypes) == list(df.dtypes)
    assert getattr(loaded.index, "freq", None) == getattr(df.index, "freq", None)
    assert outputs(run_dir) == ["df.pkl"]


def test_series_is_pickle(run_dir: Path) -> None:
    series = pd.Series([1, 0, 1], name="target", index=pd.Index([3, 4, 5], name="id"))
    path, loaded = roundtrip("y_train", series)
    assert path.suffix == ".pkl"
    assert loaded.equals(series)
    assert loaded.name == "target" and loaded.index.name == "id"


@pytest.mark.parametrize(
    "array",
    [
        np.linspace(0.0, 1.0, 12).reshape(3, 4),
        np.arange(10, dtype=np.int32),
        np.array([True, False]),
        np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        np.array(3.5),
        np.array(["a", "βγ"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
    ],
    ids=["float2d", "int32", "bool", "fortran", "0d", "unicode", "datetime"],
)
def test_ndarray_is_npy(run_dir: Path, array: np.ndarray) -> None:
    path, loaded = roundtrip("arr", array)
    assert path.name == "arr.npy"
    assert type(loaded) is np.ndarray
    assert loaded.dtype == array.dtype
    assert np.array_equal(loaded, array)


def test_object_ndarray_is_pickle(run_dir: Path) -> None:
    array = np.array([1, "two", None], dtype=object)
    path, loaded = roundtrip("arr", array)
    assert path.suffix == ".pkl"
    assert loaded.dtype == object and list(loaded) == [1, "two", None]


def test_masked_array_keeps_its_type(run_dir: Path) -> None:
    array = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    path, loaded = roundtrip("arr", array)
    assert path.suffix == ".pkl"
    assert type(loaded) is np.ma.MaskedArray
    assert loaded.mask.tolist() == [False, True]


@pytest.mark.parametrize(
    "value",
    [
        {"layers": [64, 32], "opts": {"dropout": 0.1, "name": "mlp", "flags": [True, None]}},
        [0.1, 1e-300, 5e-324, -0.0, 1.7976931348623157e308, float("inf"), float("-inf")],
        "ünïcødé ✓ 東京 🚀",
        2**70,
        None,
        True,
        [],
        {},
    ],
    ids=["nested", "floats", "unicode", "bigint", "none", "bool", "empty-list", "empty-dict"],
)
def test_pure_json_values_are_json(run_dir: Path, value: Any) -> None:
    path, loaded = roundtrip("v", value)
    assert path.name == "v.json"
    assert same_json(loaded, value)


def test_json_nan_round_trips(run_dir: Path) -> None:
    path, loaded = roundtrip("v", {"score": float("nan")})
    assert path.suffix == ".json"
    assert math.isnan(loaded["score"])


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        [1, (2, 3)],
        {1: "int key"},
        np.float64(0.5),
        {"x": np.int64(3)},
        10**5000,  # beyond the int/str digit limit, so json cannot write it
    ],
    ids=["tuple", "nested-tuple", "int-key", "np-scalar", "np-in-dict", "huge-int"],
)
def test_almost_json_values_are_pickled_exactly(run_dir: Path, value: Any) -> None:
    path, loaded = roundtrip("v", value)
    assert path.suffix == ".pkl"
    assert loaded == value
    assert type(loaded) is type(value)


def test_tuple_stays_a_tuple(run_dir: Path) -> None:
    _, loaded = roundtrip("shape", (3, 4))
    assert loaded == (3, 4) and isinstance(loaded, tuple)


def test_fitted_sklearn_estimator(run_dir: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    path, loaded = roundtrip("model", model)
    assert path.name == "model.pkl"
    assert type(loaded) is LogisticRegression
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_lambda_and_closure_use_cloudpickle(run_dir: Path) -> None:
    offset = 10

    def add_offset(x: int) -> int:
        return x + offset

    path, loaded = roundtrip("square", lambda x: x * x)
    assert path.name == "square.cpkl"
    assert loaded(7) == 49
    path, loaded = roundtrip("shift", add_offset)
    assert path.suffix == ".cpkl"
    assert loaded(1) == 11


def _numbers() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    "make_value",
    [_numbers, threading.Lock, lambda: {"lock": threading.Lock()}],
    ids=["generator", "lock", "dict-with-lock"],
)
def test_unsaveable_value_raises_and_leaves_nothing(run_dir: Path, make_value: Any) -> None:
    value = make_value()
    with pytest.raises(rt.OutputNotSaveableError) as info:
        rt.save("stream", value)
    message = str(info.value)
    assert "'stream'" in message and "'prep'" in message
    assert type(value).__name__ in message
    assert "re-create it in the step that reads it" in message
    assert "\n" not in message
    assert outputs(run_dir) == []


def test_open_file_is_not_saveable(run_dir: Path, tmp_path: Path) -> None:
    with open(tmp_path / "data.txt", "w") as handle:
        with pytest.raises(rt.OutputNotSaveableError, match="'handle'.*TextIOWrapper"):
            rt.save("handle", handle)
    assert outputs(run_dir) == []


def test_failed_save_keeps_the_previous_value(run_dir: Path) -> None:
    rt.save("x", [1, 2])
    with pytest.raises(rt.OutputNotSaveableError):
        rt.save("x", threading.Lock())
    assert outputs(run_dir) == ["x.json"]
    assert rt.load("x", step="prep") == [1, 2]


def test_overwriting_with_another_type_leaves_one_file(run_dir: Path) -> None:
    df = pd.DataFrame({"a": [1.0, 2.0]})
    values: list[tuple[Any, str]] = [
        (df, "x.pkl"),
        ({"a": 1}, "x.json"),
        (np.zeros(3), "x.npy"),
        ((1, 2), "x.pkl"),
        (lambda: 5, "x.cpkl"),
        ("back to json", "x.json"),
    ]
    rt.save("other", 1)
    for value, file_name in values:
        path = rt.save("x", value)
        assert path.name == file_name
        assert outputs(run_dir) == sorted(["other.json", file_name])
        assert rt.output_path(run_dir, "prep", "x") == path
    assert rt.load("x", step="prep") == "back to json"


def test_output_path(run_dir: Path) -> None:
    assert rt.output_path(run_dir, "prep", "nothing") is None
    assert rt.output_path(run_dir, "never_ran", "x") is None
    path = rt.save("x", 1.5)
    assert rt.output_path(run_dir, "prep", "x") == path
    assert rt.output_path(str(run_dir), "prep", "x") == path


def test_load_from_another_step(run_dir: Path) -> None:
    rt.save("X_train", np.arange(4))
    rt.start_step(run_dir, "training")
    assert np.array_equal(rt.load("X_train", step="prep"), np.arange(4))


def test_load_missing_input(run_dir: Path) -> None:
    rt.save("y_train", [1, 0])
    rt.start_step(run_dir, "training")
    with pytest.raises(rt.InputMissingError) as info:
        rt.load("X_train", step="prep")
    message = str(info.value)
    assert "'X_train'" in message and "'prep'" in message and "'training'" in message
    assert str(run_dir) in message
    assert "run step 'prep' first" in message
    assert "y_train" in message  # what the producing step did save
    with pytest.raises(rt.InputMissingError, match="has not run"):
        rt.load("X_train", step="never_ran")


def test_main_class_unpickles_where_it_is_defined(tmp_path: Path) -> None:
    """Plain pickle refers to __main__.Scaler, which each kernel defines itself."""
    run = str(tmp_path / "run")
    class_def = textwrap.dedent(
        """
        class Scaler:
            def __init__(self, factor):
                self.factor = factor
            def __eq__(self, other):
                return type(other) is Scaler and other.factor == self.factor
        """
    )
    header = "import nb2prod.runtime as rt\n"

    saved = run_python(
        header + class_def + f"rt.start_step({run!r}, 'prep')\n"
        "print(rt.save('scaler', Scaler(3)).name)\n",
        tmp_path,
    )
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "scaler.pkl"

    loaded = run_python(
        header + class_def + f"rt.start_step({run!r}, 'training')\n"
        "assert rt.load('scaler', step='prep') == Scaler(3)\n",
        tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr

    without_class = run_python(
        header + f"rt.start_step({run!r}, 'training')\n"
        "try:\n"
        "    rt.load('scaler', step='prep')\n"
        "except rt.InputNotLoadableError as exc:\n"
        "    print(exc)\n",
        tmp_path,
    )
    assert without_class.returncode == 0, without_class.stderr
    assert "'scaler'" in without_class.stdout and "Scaler" in without_class.stdout
    assert "define that class" in without_class.stdout


def test_main_function_is_stored_by_value(tmp_path: Path) -> None:
    """A function from a notebook cell loads in a step that does not define it."""
    run = str(tmp_path / "run")
    saved = run_python(
        "import nb2prod.runtime as rt\n"
        "factor = 3\n"
        "def scale(x):\n"
        "    return x * factor\n"
        f"rt.start_step({run!r}, 'prep')\n"
        "print(rt.save('scale', scale).name)\n",
        tmp_path,
    )
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "scale.cpkl"
    loaded = run_python(
        "import nb2prod.runtime as rt\n"
        f"rt.start_step({run!r}, 'training')\n"
        "assert rt.load('scale', step='prep')(2) == 6\n",
        tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr


def test_no_temporary_files_are_left(run_dir: Path) -> None:
    rt.save("a", pd.DataFrame({"a": [1]}))
    rt.save("b", pd.DataFrame({1: [1]}))
    rt.save("c", np.ones(2))
    rt.save("d", {"k": "v"})
    rt.log_metrics({"m": 1.0})
    leftovers = [p for p in (run_dir / "steps").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


# ------------------------------------------------------------------- parameters


def write_config(run_dir: Path, text: str) -> None:
    (run_dir / "config.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def test_param_explicit_value_wins(run_dir: Path) -> None:
    write_config(run_dir, "C: 1.0\n")
    assert rt.param("C", 0.5) == 0.5
    assert rt.param("C", None) is None
    assert rt.param("missing_but_injected", [1]) == [1]


def test_param_reads_config_yaml(run_dir: Path) -> None:
    write_config(
        run_dir,
        """
        C: 0.25
        max_iter: 100
        features: [age, income]
        nested: {a: 1}
        nothing: null
        """,
    )
    assert rt.param("C", ...) == 0.25
    assert rt.param("max_iter", ...) == 100
    assert rt.param("features", ...) == ["age", "income"]
    assert rt.param("nothing", ...) is None
    rt.param("nested", ...)["a"] = 2  # mutating a returned value ...
    assert rt.param("nested", ...) == {"a": 1}  # ... does not change the next one


def test_config_is_parsed_once_per_context(run_dir: Path) -> None:
    write_config(run_dir, "C: 1\n")
    assert rt.param("C", ...) == 1
    write_config(run_dir, "C: 2\n")
    assert rt.param("C", ...) == 1
    rt.start_step(run_dir, "prep")
    assert rt.param("C", ...) == 2


def test_param_missing_key(run_dir: Path) -> None:
    write_config(run_dir, "C: 1\n")
    with pytest.raises(rt.ParameterMissingError) as info:
        rt.param("max_iter", ...)
    message = str(info.value)
    assert "'max_iter'" in message and "'prep'" in message
    assert "papermill -p max_iter VALUE" in message
    assert "config.yaml" in message and "\n" not in message


def test_param_without_config_file(run_dir: Path) -> None:
    with pytest.raises(rt.ParameterMissingError, match="'C'.*no config.yaml"):
        rt.param("C", ...)


@pytest.mark.parametrize("text", ["- a\n- b\n", "C: [unclosed\n"], ids=["list", "invalid"])
def test_bad_config_file(run_dir: Path, text: str) -> None:
    write_config(run_dir, text)
    with pytest.raises(rt.ConfigFileError, match="config.yaml"):
        rt.param("C", ...)


def test_empty_config_file_means_no_parameters(run_dir: Path) -> None:
    write_config(run_dir, "")
    with pytest.raises(rt.ParameterMissingError, match="has no 'C' entry"):
        rt.param("C", ...)


# ---------------------------------------------------------------------- metrics


def test_log_metrics_filters_and_merges(run_dir: Path) -> None:
    logged = rt.log_metrics(
        {
            "acc": 0.9,
            "n_rows": 120,
            "np_f1": np.float64(0.75),
            "np_count": np.int64(4),
            "np_f32": np.float32(0.5),
            "np_0d": np.asarray(2.5),
            "is_good": True,
            "np_flag": np.bool_(False),
            "label": "x",
            "values": [1.0],
            "array": np.array([1.0]),
            "none": None,
            "val loss (%)": 1.5,
        }
    )
    assert logged == {
        "acc": 0.9,
        "n_rows": 120,
        "np_f1": 0.75,
        "np_count": 4,
        "np_f32": 0.5,
        "np_0d": 2.5,
        "val loss (%)": 1.5,
    }
    assert all(type(v) in (int, float) for v in logged.values())
    assert type(logged["np_count"]) is int and type(logged["np_f1"]) is float

    assert rt.log_metrics({"acc": 0.95, "loss": 0.1}) == {"acc": 0.95, "loss": 0.1}
    metrics_file = run_dir / "steps" / "prep" / "metrics.json"
    expected = dict(logged, acc=0.95, loss=0.1)
    assert json.loads(metrics_file.read_text()) == expected
    assert metrics_file.read_text() == json.dumps(expected, sort_keys=True, indent=2) + "\n"
    assert rt.read_metrics(run_dir, "prep") == expected


def test_log_metrics_with_nothing_numeric_writes_nothing(run_dir: Path) -> None:
    assert rt.log_metrics({"name": "x", "flag": True}) == {}
    assert not (run_dir / "steps" / "prep" / "metrics.json").exists()
    assert rt.read_metrics(run_dir, "prep") == {}


def test_log_metrics_without_context_does_nothing(tmp_path: Path) -> None:
    assert rt.log_metrics({"acc": 0.9}) == {}
    assert list(tmp_path.iterdir()) == []


def test_log_cell_metrics_logs_names_and_final_dict(run_dir: Path) -> None:
    final = {"rf_accuracy": np.float64(0.8), "note": "text", 3: 1.0}
    assert (
        rt.log_cell_metrics({"f1": 0.5, "rf_accuracy": 0.1, "model": object()}, last=final) is final
    )
    assert rt.log_cell_metrics({"n": 7}) is None
    assert rt.log_cell_metrics({}, last=42) == 42  # a bare scalar has no name to log it under
    assert rt.read_metrics(run_dir, "prep") == {"f1": 0.5, "rf_accuracy": 0.8, "3": 1.0, "n": 7}


def test_log_cell_metrics_without_context(tmp_path: Path) -> None:
    assert rt.log_cell_metrics({"acc": 1.0}, last={"b": 2.0}) == {"b": 2.0}
    assert list(tmp_path.iterdir()) == []


def test_log_metric_without_context_prints_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt, "_warned_no_context", False)  # as in a fresh process
    rt.log_metric("acc", 0.9)
    rt.log_metric("loss", 0.1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "nb2prod.log_metric: not running inside a pipeline step, so metric 'acc' is not "
        "logged (it is logged when the exported pipeline runs).\n"
    )


def test_log_metric_with_context(run_dir: Path) -> None:
    rt.log_metric("acc", np.float64(0.5))
    rt.log_metric("epochs", 3)
    assert rt.read_metrics(run_dir, "prep") == {"acc": 0.5, "epochs": 3}
    with pytest.raises(TypeError, match="'label'"):
        rt.log_metric("label", "good")
    with pytest.raises(TypeError, match="'converged'"):
        rt.log_metric("converged", True)
    assert rt.read_metrics(run_dir, "prep") == {"acc": 0.5, "epochs": 3}


# ------------------------------------------------------------------- properties


def same_json(a: Any, b: Any) -> bool:
    """Exact equality for JSON values: same types all the way down, -0.0 != 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is list:
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

#: Every code point, lone surrogates included (they need JSON's \\u escapes).
any_text = st.text(st.characters(exclude_categories=()))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_property_json_values_round_trip_exactly(tmp_path: Path, value: Any) -> None:
    rt.start_step(tmp_path / "run", "prep")
    path, loaded = roundtrip("value", value)
    assert path.suffix == ".json"
    assert same_json(loaded, value)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=any_text)
@example(text="\ud800 lone surrogate \udfff")
@example(text="")
def test_property_any_string_round_trips(tmp_path: Path, text: str) -> None:
    rt.start_step(tmp_path / "run", "prep")
    path, loaded = roundtrip("text", text)
    assert path.suffix == ".json"
    assert loaded == text
