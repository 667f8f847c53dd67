"""The skew check's comparison: the served model's output against the function's own.

Equal means exactly equal values, NaN equal to NaN. MLflow's scoring server answers in JSON and
``mlflow.pyfunc`` may hand back a DataFrame or an array where the function returned a Series,
so containers do not count: DataFrames and Series compare by their values (their index is
shown, never compared), lists and tuples as arrays, and a column vector equals a flat one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHOWN_ROWS = 5  # differing rows a skew message names


@dataclass(frozen=True)
class Difference:
    label: Any  # the row's index label in the expected output (its position otherwise)
    expected: Any
    served: Any


@dataclass(frozen=True)
class Skew:
    rows: int  # rows compared
    differing: int  # how many differ (all of them when the shapes differ)
    first: tuple[Difference, ...]
    why: str = ""  # a shape or length that differs, when it is not row by row

    def describe(self) -> str:
        if self.why:
            return self.why
        shown = "; ".join(
            f"index {_short(d.label)}: expected {_short(d.expected)}, served {_short(d.served)}"
            for d in self.first
        )
        return f"{self.differing} of {self.rows} rows differ; first differing rows: {shown}"


def _values(value: Any) -> Any:
    """The plain numpy values of an output, with the row labels of a pandas one."""
    import numpy as np

    if hasattr(value, "to_numpy") and hasattr(value, "index"):
        return np.asarray(value.to_numpy()), list(value.index)
    if isinstance(value, dict):  # {"predictions": [...]} and column dicts
        return np.asarray([value[k] for k in sorted(value)], dtype=object).T, None
    array = np.asarray(value)
    return (array.reshape(1) if array.ndim == 0 else array), None


def _flat(array: Any) -> Any:
    """A column vector (n, 1) as a flat one (n,)."""
    return array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array


def _row_differs(a: Any, b: Any) -> Any:
    """Per row: whether the rows differ (NaN equal to NaN)."""
    import numpy as np

    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            same = (a == b) | (np.isnan(a.astype(float)) & np.isnan(b.astype(float)))
        except (TypeError, ValueError):
            same = None
        if same is not None:
            same = np.asarray(same)
            return ~same.reshape(len(a), -1).all(axis=1) if same.ndim > 1 else ~same
    out = np.zeros(len(a), dtype=bool)
    for i in range(len(a)):
        out[i] = not _same(a[i], b[i])
    return out


def _same(x: Any, y: Any) -> bool:
    import numpy as np

    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return False
        return all(_same(i, j) for i, j in zip(x.ravel().tolist(), y.ravel().tolist(), strict=True))
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    try:
        return bool(x == y)
    except (TypeError, ValueError):
        return False


def compare(expected: Any, served: Any, index: Any = None) -> Skew | None:
    """None when ``served`` equals ``expected``; otherwise what differs. Rows are named by the
    expected output's index, else by ``index`` (the input's), else by position."""
    a, labels = _values(expected)
    if labels is None and index is not None and len(index) == len(a):
        labels = list(index)
    b, _ = _values(served)
    if a.shape != b.shape:
        a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        return Skew(
            rows=len(a),
            differing=len(a),
            first=(),
            why=f"the function returned shape {a.shape} in the run, the served model {b.shape}",
        )
    differs = _row_differs(a, b) if len(a) else []
    rows = [i for i, d in enumerate(differs) if d]
    if not rows:
        return None
    first = tuple(
        Difference(labels[i] if labels is not None else i, _plain(a[i]), _plain(b[i]))
        for i in rows[:SHOWN_ROWS]
    )
    return Skew(rows=len(a), differing=len(rows), first=first)


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(
        value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."
