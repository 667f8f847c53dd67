"""A sweep's grid: ``-p KEY=V1,V2,...`` read into typed values, and their cartesian product.

Values are split on commas outside brackets, braces and quotes, so a list or mapping parameter
takes YAML flow values (``-p 'cols=[a,b],[c]'`` tries ``["a", "b"]`` then ``["c"]``) and a text
may hold a comma when quoted (``-p 'label="a,b",c'``). Each value is read for the type of the
parameter's default in config.yaml: an int must be a whole number, a float any number (``1``
becomes ``1.0``), a bool ``true`` or ``false``, a text is taken as written (quotes only to hold
a comma or to be empty), a list or mapping is YAML; a parameter whose default is ``null`` takes
any YAML value. Every value is then checked as ``nb2prod run -p`` checks it
(:func:`nb2prod.run.overrides.check_override`). Problems are :class:`Nb2prodError` (exit 2),
found before anything runs.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Nb2prodError
from ..run.overrides import check_override, parse_assignment

#: A grid larger than this is refused: it is almost always a typo (a value list pasted twice),
#: and each point is a whole run.
MAX_POINTS = 10_000

_KIND = {bool: "true or false", int: "a whole number", float: "a number", list: "a list"}
_KIND.update({dict: "a mapping", str: "a text"})
_CLOSE = {"[": "]", "{": "}"}


@dataclass(frozen=True)
class Axis:
    """One swept parameter and the values to try, in the order given."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Grid:
    axes: tuple[Axis, ...]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.axes]

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    def points(self) -> list[dict[str, Any]]:
        """Every combination, the last parameter varying fastest (as written on the command
        line, like nested loops)."""
        return [
            dict(zip(self.names, combo, strict=True))
            for combo in itertools.product(*(a.values for a in self.axes))
        ]


def _shell(text: str) -> str:
    return f"'{text}'" if "'" not in text else json.dumps(text)


def _example(key: str, default: Any) -> str:
    """A ``-p`` of two values of the parameter's type, for the Fix of a message."""
    if isinstance(default, bool):
        values = "true,false"
    elif isinstance(default, int):
        values = f"{default},{default * 2 or 1}"
    elif isinstance(default, float):
        values = f"{default!r},{default * 2 or 1.0!r}"
    elif isinstance(default, str):
        values = f"{default or 'a'},other"
    elif isinstance(default, (list, dict)):
        values = f"{json.dumps(default)},{'[]' if isinstance(default, list) else '{}'}"
    else:
        values = "null,1"
    return f"-p {_shell(f'{key}={values}')}"


def split_values(raw: str) -> list[str]:
    """``raw`` split on the commas outside brackets, braces and quotes; each piece stripped.

    A quote counts only where YAML reads one, at the start of a value (``don't`` is plain
    text). Raises ValueError naming what is left open."""
    pieces: list[str] = []
    expected: list[str] = []  # closing brackets awaited, innermost last
    quote: str | None = None
    start = 0
    before = ","  # the last character other than a space: where a value may start
    for i, ch in enumerate(raw):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"" and before in ",[{:":
            quote = ch
        elif ch in _CLOSE:
            expected.append(_CLOSE[ch])
        elif expected and ch == expected[-1]:
            expected.pop()
        elif ch == "," and not expected:
            pieces.append(raw[start:i].strip())
            start = i + 1
        if not ch.isspace():
            before = ch
    if quote is not None:
        raise ValueError(f"a quote ({quote}) is not closed")
    if expected:
        raise ValueError(f"a bracket is not closed (expected `{expected[-1]}`)")
    pieces.append(raw[start:].strip())
    return pieces


def _typed(key: str, piece: str, default: Any) -> Any:
    """``piece`` read for the type of ``default``; raises TypeError when it is not of it."""
    if isinstance(default, str) and piece[:1] not in ("'", '"'):
        return piece  # a text as written: `-p label=1,x` tries "1" and "x"
    value = parse_assignment(f"{key}={piece}")[1]
    if isinstance(default, float) and type(value) is int:
        return float(value)  # `-p C=1,10` means 1.0 and 10.0, as config.yaml's type says
    if default is not None and value is not None:
        if isinstance(default, bool) or isinstance(value, bool):
            ok = type(value) is type(default)
        elif isinstance(default, float):
            ok = type(value) is float
        else:
            ok = type(value) is type(default)
        if not ok:
            raise TypeError
    return value


def _axis(text: str, defaults: dict[str, Any]) -> Axis:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        name = key if key in defaults else next(iter(defaults), None)
        example = _example(name, defaults[name]) if name is not None else "-p C=0.1,1"
        raise Nb2prodError(
            f"-p {_shell(text)}: expected KEY=V1,V2,... (a parameter and the values to try). "
            f"Fix: e.g. {example}"
        )
    origin = f"-p {_shell(text)}"
    check_override(defaults, key, defaults.get(key), origin)  # an unknown name, suggested
    default = defaults[key]
    if not raw.strip():
        raise Nb2prodError(
            f"{origin}: no values for parameter `{key}`. Fix: list the values to try, "
            f"separated by commas, e.g. {_example(key, default)}"
        )
    try:
        pieces = split_values(raw)
    except ValueError as exc:
        raise Nb2prodError(
            f"{origin}: the values of `{key}` cannot be split on commas: {exc}. Fix: close it, "
            f"or quote a value holding a comma, e.g. {_example(key, default)}"
        ) from None
    values: dict[str, Any] = {}  # by JSON text: 1.0 and 1 are one value, true and 1 two
    for n, piece in enumerate(pieces, 1):
        if not piece:
            raise Nb2prodError(
                f"{origin}: value {n} of `{key}` is empty. Fix: remove the extra comma (an empty "
                'text is written "").'
            )
        try:
            value = _typed(key, piece, default)
        except TypeError:
            kind = _KIND.get(type(default), "a value")
            raise Nb2prodError(
                f"{origin}: `{piece}` is not {kind}, as parameter `{key}` is (default "
                f"{json.dumps(default)} in config.yaml). Fix: give values of that type, "
                f"separated by commas, e.g. {_example(key, default)}"
            ) from None
        check_override(defaults, key, value, origin)  # not finite, not plain
        values.setdefault(json.dumps(value, sort_keys=True), value)
    return Axis(key, tuple(values.values()))


def parse_grid(texts: Sequence[str], defaults: dict[str, Any]) -> Grid:
    """The grid the ``-p`` options describe, checked against the version's ``defaults``."""
    if not texts:
        names = ", ".join(f"`{k}`" for k in defaults) or "none"
        example = _example(*next(iter(defaults.items()))) if defaults else "-p KEY=V1,V2"
        raise Nb2prodError(
            f"a sweep needs at least one parameter and its values (this pipeline's parameters: "
            f"{names}). Fix: add one or more, e.g. {example}"
        )
    axes: list[Axis] = []
    for text in texts:
        axis = _axis(text, defaults)  # a ParameterError (unknown, not finite) is an Nb2prodError
        if axis.name in [a.name for a in axes]:
            raise Nb2prodError(
                f"-p {_shell(text)}: parameter `{axis.name}` is given twice. Fix: list all its "
                f"values in one option, e.g. {_example(axis.name, defaults[axis.name])}"
            )
        axes.append(axis)
    grid = Grid(tuple(axes))
    if grid.size > MAX_POINTS:
        sizes = " x ".join(f"{len(a.values)} ({a.name})" for a in axes)
        raise Nb2prodError(
            f"the sweep has {grid.size} points ({sizes}), more than {MAX_POINTS}; each point is "
            "a whole run. Fix: try fewer values, or split the sweep into several."
        )
    return grid
