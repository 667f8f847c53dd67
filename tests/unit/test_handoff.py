"""Hand-off of values between steps: exact round trips, the fast formats, hashing once.

A DataFrame goes to pickle protocol 5 (exact by construction, as fast as uncompressed Arrow
IPC and far faster than Parquet with its read-back check), an array to ``.npy`` (large ones
load memory-mapped, copy-on-write, as plain ndarrays), and every output is hashed while it is
written so that the runner does not read it a second time. ``.parquet`` files written by
earlier releases still load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nb2prod.runtime as rt
from nb2prod.run import cache
from nb2prod.run_folder import digest_path, read_digest


@pytest.fixture(autouse=True)
def _no_context_leaks() -> Iterator[None]:
    rt.end_step()
    yield
    rt.end_step()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    rt.start_step(folder, "prep")
    return folder


def roundtrip(name: str, value: Any) -> tuple[Path, Any]:
    path = rt.save(name, value)
    return path, rt.load(name, step="prep")


def same_index(saved: pd.Index, loaded: pd.Index) -> None:
    assert type(loaded) is type(saved)
    assert loaded.names == saved.names
    assert loaded.dtype == saved.dtype
    assert loaded.equals(saved)
    assert getattr(loaded, "freq", None) == getattr(saved, "freq", None)
    if isinstance(saved, pd.MultiIndex):
        assert [lv.dtype for lv in loaded.levels] == [lv.dtype for lv in saved.levels]


def assert_same_frame(saved: pd.DataFrame, loaded: Any) -> None:
    """What pipeline code can tell apart: type, shape, index, columns, dtypes, values, attrs."""
    assert type(loaded) is type(saved)
    assert loaded.shape == saved.shape
    same_index(saved.index, loaded.index)
    same_index(saved.columns, loaded.columns)
    assert list(loaded.dtypes) == list(saved.dtypes)
    for s_dtype, l_dtype in zip(saved.dtypes, loaded.dtypes, strict=True):
        if isinstance(s_dtype, pd.CategoricalDtype):
            same_index(s_dtype.categories, l_dtype.categories)
            assert l_dtype.ordered == s_dtype.ordered
    assert loaded.equals(saved)
    assert loaded.attrs == saved.attrs
    assert loaded.flags.allows_duplicate_labels == saved.flags.allows_duplicate_labels
    # Object columns: the very types of their values, not only equality (1 == 1.0 == True).
    for position, dtype in enumerate(saved.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            assert [type(v) for v in loaded.iloc[:, position]] == [
                type(v) for v in saved.iloc[:, position]
            ]


def _attrs_frame() -> pd.DataFrame:
    df = pd.DataFrame({"a": [1, 2]})
    df.attrs = {"source": "survey", "version": 3}
    return df


TRICKY_FRAMES = {
    "int-column-names": pd.DataFrame(np.arange(6.0).reshape(3, 2)),
    "mixed-column-names": pd.DataFrame([[1, 2, 3]], columns=["a", 1, (2, "b")]),
    "duplicate-columns": pd.DataFrame([[1, 2.5]], columns=["a", "a"]),
    "multiindex-rows": pd.DataFrame(
        {"v": [1.0, 2.0, 3.0]},
        index=pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1)], names=["k", "n"]),
    ),
    "multiindex-columns": pd.DataFrame(
        [[1, 2], [3, 4]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])
    ),
    "categorical": pd.DataFrame(
        {
            "s": pd.Categorical(["b", "a", "b"], categories=["b", "a"], ordered=True),
            "i": pd.Categorical([3, 1, 3]),
        }
    ),
    "tz-aware": pd.DataFrame(
        {"t": pd.date_range("2024-03-30", periods=3, freq="h", tz="Europe/Paris")},
        index=pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"),
    ),
    "second-resolution": pd.DataFrame(
        {"t": pd.to_datetime(["2020-01-01", None]).astype("datetime64[s]")}
    ),
    "object-mixed": pd.DataFrame(
        {"o": pd.Series(["x", 1, 2.5, None, float("nan"), True, [1, 2], {"k": 1}], dtype=object)}
    ),
    "strings-and-nulls": pd.DataFrame({"s": pd.Series(["a", None, "東京"], dtype="string")}),
    "nullable-ints": pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")}),
    "attrs": _attrs_frame(),
    "empty": pd.DataFrame(),
    "empty-with-columns": pd.DataFrame({"a": pd.Series([], dtype="float32"), "b": []}),
    "named-index": pd.DataFrame({"a": [1, 2]}, index=pd.Index(["r1", "r2"], name="row")),
    "period-interval": pd.DataFrame(
        {
            "p": pd.period_range("2024-01", periods=2, freq="M"),
            "iv": pd.IntervalIndex.from_breaks([0, 1, 2]),
        }
    ),
    "complex-timedelta": pd.DataFrame({"z": [1 + 2j, 3j], "d": pd.to_timedelta([1, 2], "s")}),
}


@pytest.mark.parametrize("df", TRICKY_FRAMES.values(), ids=TRICKY_FRAMES.keys())
def test_tricky_frames_round_trip_exactly(run_dir: Path, df: pd.DataFrame) -> None:
    path, loaded = roundtrip("df", df)
    assert path.suffix == ".pkl"
    assert_same_frame(df, loaded)


def test_subclass_of_dataframe_keeps_its_type(run_dir: Path) -> None:
    series = pd.Series([1.5, 2.5], name="y", index=pd.Index([7, 8], name="id"))
    _, loaded = roundtrip("y", series)
    assert type(loaded) is pd.Series and loaded.name == "y" and loaded.index.name == "id"
    assert loaded.equals(series)


def test_large_frame_takes_the_fast_path(run_dir: Path) -> None:
    """About 40 MB: pickle protocol 5, no Parquet, no second write, digest while writing."""
    n = 400_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {f"f{i}": rng.normal(size=n) for i in range(10)}
        | {
            "cat": pd.Categorical(rng.choice(["x", "y", "z"], n)),
            "when": pd.date_range("2020-01-01", periods=n, freq="s", tz="UTC"),
            "label": pd.Series(rng.integers(0, 1000, n)).astype(str),
        }
    )
    path, loaded = roundtrip("big", df)
    assert path.name == "big.pkl"
    assert sorted(os.listdir(path.parent)) == ["big.pkl"]
    assert_same_frame(df, loaded)
    assert read_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    rows=st.integers(0, 6),
    names=st.lists(
        st.one_of(st.text(max_size=3), st.integers(-3, 3), st.none(), st.floats(allow_nan=False)),
        min_size=0,
        max_size=4,
    ),
)
def test_property_frames_round_trip_exactly(
    tmp_path: Path, data: st.DataObject, rows: int, names: list[Any]
) -> None:
    rt.start_step(tmp_path / "run", "prep")
    kinds = {
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "int": st.integers(-(2**63), 2**63 - 1),
        "text": st.text(max_size=4),
        "object": st.one_of(st.none(), st.integers(), st.text(max_size=3), st.booleans()),
        "bool": st.booleans(),
    }
    columns: dict[int, pd.Series] = {}
    for position in range(len(names)):
        kind = data.draw(st.sampled_from(sorted(kinds)))
        values = data.draw(st.lists(kinds[kind], min_size=rows, max_size=rows))
        dtype = {"object": object, "int": "int64", "float": "float64", "bool": bool}.get(kind)
        columns[position] = pd.Series(values, dtype=dtype)
    df = pd.DataFrame(columns, index=pd.RangeIndex(rows)) if columns else pd.DataFrame()
    if columns:
        df.columns = pd.Index(names, dtype=object)
    df.attrs = data.draw(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    path, loaded = roundtrip("df", df)
    assert path.suffix == ".pkl"
    assert_same_frame(df, loaded)


# ------------------------------------------------------------------------------ arrays

ARRAYS = {
    "float2d": np.linspace(0.0, 1.0, 12).reshape(3, 4),
    "int8": np.arange(-5, 5, dtype=np.int8),
    "uint64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "float16": np.array([0.5, np.inf, np.nan], dtype=np.float16),
    "complex": np.array([1 + 2j], dtype=np.complex64),
    "bool": np.array([True, False]),
    "0-d": np.array(3.5),
    "empty": np.zeros((0, 3)),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
    "non-contiguous": np.arange(20.0).reshape(4, 5)[::2, ::3],
    "unicode": np.array(["a", "βγ"]),
    "bytes": np.array([b"a", b"bc"]),
    "datetime": np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
    "timedelta": np.array([1, 2], dtype="timedelta64[ms]"),
    "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", ">f8")]),
    "big-endian": np.arange(4, dtype=">i4"),
}


@pytest.mark.parametrize("array", ARRAYS.values(), ids=ARRAYS.keys())
def test_arrays_round_trip_exactly(run_dir: Path, array: np.ndarray) -> None:
    path, loaded = roundtrip("arr", array)
    assert path.name == "arr.npy"
    assert type(loaded) is np.ndarray
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert np.ascontiguousarray(loaded).tobytes() == np.ascontiguousarray(array).tobytes()
    assert loaded.flags.writeable
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        assert loaded.flags.f_contiguous


def test_object_array_is_pickled(run_dir: Path) -> None:
    array = np.array([1, "two", None, [3]], dtype=object)
    path, loaded = roundtrip("arr", array)
    assert path.suffix == ".pkl"
    assert loaded.dtype == object and list(loaded) == list(array)


@settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_property_arrays_round_trip_exactly(tmp_path: Path, array: np.ndarray) -> None:
    rt.start_step(tmp_path / "run", "prep")
    path, loaded = roundtrip("arr", array)
    assert path.suffix == ".npy"
    assert type(loaded) is np.ndarray
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert loaded.tobytes() == array.tobytes()  # bit for bit: NaN payloads, -0.0, NaT


def test_large_array_is_mapped_but_behaves_like_an_ordinary_ndarray(run_dir: Path) -> None:
    array = np.asfortranarray(np.arange(600_000, dtype=np.float64).reshape(1000, 600))
    path, loaded = roundtrip("big", array)
    assert path.stat().st_size >= rt.MMAP_MIN_BYTES
    assert type(loaded) is np.ndarray and not isinstance(loaded, np.memmap)
    assert isinstance(loaded.base, np.memmap)  # mapped, not read
    assert loaded.flags.writeable and loaded.flags.f_contiguous
    assert np.array_equal(loaded, array)
    assert repr(loaded).startswith("array(")
    # The step may change it as in the notebook; the saved file never changes.
    loaded[0, 0] = -1.0
    loaded *= 2
    assert loaded[0, 0] == -2.0
    again = rt.load("big", step="prep")
    assert again[0, 0] == 0.0 and np.array_equal(again, array)
    # Results of operations and pickles are plain arrays holding the data, not the mapping.
    assert type(loaded + 1) is np.ndarray and type(loaded[1:]) is np.ndarray
    assert type(pickle.loads(pickle.dumps(loaded))) is np.ndarray
    # Passed on by a later step: still .npy (``type(value) is np.ndarray``).
    assert rt.save("again", loaded).suffix == ".npy"


def test_a_memmap_saved_by_the_user_round_trips(run_dir: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.arange(5.0))
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    _, loaded = roundtrip("m", mapped)
    assert np.array_equal(loaded, np.arange(5.0))


# ------------------------------------------------------------------------ older formats


def test_parquet_written_by_earlier_releases_still_loads(run_dir: Path) -> None:
    df = pd.DataFrame({"a": [1.5, 2.5], "s": ["x", "y"]}, index=pd.Index([3, 4], name="id"))
    target = run_dir / "steps" / "prep" / "outputs" / "old.parquet"
    df.to_parquet(target, engine="pyarrow")
    loaded = rt.load("old", step="prep")
    assert loaded.equals(df) and loaded.index.name == "id"
    # No digest for it: the runner hashes the file itself.
    assert cache.output_hashes(run_dir, "prep", ("old",)) == {
        "old": hashlib.sha256(target.read_bytes()).hexdigest()
    }


def test_saving_again_replaces_an_old_parquet_file(run_dir: Path) -> None:
    outputs = run_dir / "steps" / "prep" / "outputs"
    pd.DataFrame({"a": [1]}).to_parquet(outputs / "x.parquet", engine="pyarrow")
    path = rt.save("x", pd.DataFrame({"a": [2]}))
    assert sorted(os.listdir(outputs)) == ["x.pkl"]
    assert rt.load("x", step="prep")["a"].tolist() == [2]
    assert path == outputs / "x.pkl"


# ---------------------------------------------------------------------- hashing once


@pytest.mark.parametrize(
    "value",
    [pd.DataFrame({"a": [1.0]}), np.ones(3), {"k": [1, 2]}, (1, 2), lambda: 1],
    ids=["frame", "array", "json", "pickle", "cloudpickle"],
)
def test_the_digest_written_with_an_output_is_its_sha256(run_dir: Path, value: Any) -> None:
    path = rt.save("x", value)
    assert read_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_hashes_reuse_the_digest(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = rt.save("x", np.arange(10))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()

    def must_not_hash(path: Path) -> str:
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(cache, "file_sha256", must_not_hash)
    assert cache.output_hashes(run_dir, "prep", ("x", "missing")) == {"x": expected}


def test_a_digest_that_no_longer_fits_its_file_is_ignored(run_dir: Path) -> None:
    path = rt.save("x", np.arange(10))
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other content, newer mtime
    path.write_bytes(bytes(data))
    assert read_digest(path) is None
    assert cache.output_hashes(run_dir, "prep", ("x",)) == {
        "x": hashlib.sha256(bytes(data)).hexdigest()
    }


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"sha256": 1, "file": []}'])
def test_a_broken_digest_is_ignored(run_dir: Path, content: bytes) -> None:
    path = rt.save("x", [1, 2])
    digest = digest_path(path)
    os.chmod(digest, 0o644)
    digest.write_bytes(content)
    assert read_digest(path) is None
    assert cache.output_hashes(run_dir, "prep", ("x",)) == {
        "x": hashlib.sha256(path.read_bytes()).hexdigest()
    }


def test_saving_under_another_format_removes_the_old_digest(run_dir: Path) -> None:
    old = rt.save("x", np.ones(2))
    new = rt.save("x", {"now": "json"})
    assert not digest_path(old).exists()
    assert read_digest(new) == hashlib.sha256(new.read_bytes()).hexdigest()
    assert sorted(os.listdir(new.parent)) == ["x.json"]


def test_outputs_folder_holds_only_outputs(run_dir: Path) -> None:
    for name, value in {"a": pd.DataFrame({"a": [1]}), "b": np.ones(2), "c": 1}.items():
        rt.save(name, value)
    outputs = run_dir / "steps" / "prep" / "outputs"
    assert sorted(os.listdir(outputs)) == ["a.pkl", "b.npy", "c.json"]
    digests = sorted(os.listdir(run_dir / "steps" / "prep" / "digests"))
    assert digests == ["a.pkl.sha256", "b.npy.sha256", "c.json.sha256"]


def test_a_failed_flush_while_hashing_fails_the_save(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux reports a write-back error to one fsync only: the one beside the hashing."""
    import errno

    calls = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(rt.NoSpaceError):
        rt.save("x", np.ones(3))
    assert os.listdir(run_dir / "steps" / "prep" / "outputs") == []
    assert rt.output_path(run_dir, "prep", "x") is None
