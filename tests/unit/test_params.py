"""Parameters: literal values with help text, exactly as they will be in config.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nb2prod.errors import CellRef
from nb2prod.export.writer import export_notebook
from nb2prod.plan.params import parse_parameters

from conftest import write_notebook

REF = CellRef(0, "p")


def test_literals_types_and_help() -> None:
    params, problems = parse_parameters(
        "import os\n"
        "n: int = 3  # number of folds\n"
        "rate = -0.5\n"
        "name = 'x'  # the name\n"
        "flag = True\n"
        "nothing = None\n"
        "items = [1, 'a', [2.5]]\n"
        "opts = {'a': {'b': [1]}, 2: None}\n",
        REF,
    )
    assert problems == []
    got = [(p.name, p.value, p.type, p.help) for p in params]
    assert got == [
        ("n", 3, "int", "number of folds"),
        ("rate", -0.5, "float", ""),
        ("name", "x", "str", "the name"),
        ("flag", True, "bool", ""),
        ("nothing", None, "null", ""),
        ("items", [1, "a", [2.5]], "list", ""),
        ("opts", {"a": {"b": [1]}, 2: None}, "dict", ""),
    ]


def test_non_literals_and_statements_are_problems() -> None:
    params, problems = parse_parameters(
        "a = 1 + 1\nb = some_function()\nc = (1, 2)\nd = {1, 2}\nprint('x')\ne, f = 1, 2\ng = 4\n",
        REF,
    )
    assert [p.name for p in params] == ["g"]
    assert [p.code for p in problems] == [
        "non-literal-parameter",
        "non-literal-parameter",
        "non-literal-parameter",
        "non-literal-parameter",
        "parameter-statement",
        "parameter-statement",
    ]
    assert all(p.cell == REF and p.fix for p in problems)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=values)
def test_values_round_trip_through_config_yaml(tmp_path_factory, value: object) -> None:  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("rt")
    nb = write_notebook(
        tmp / "nb.ipynb",
        [(f"value = {value!r}  # any value", ["parameters"]), ("out = value", ["training"])],
    )
    result = export_notebook(nb, out=tmp / "p")
    config = yaml.safe_load((result.path / "config.yaml").read_text("utf-8"))
    assert config == {"value": value}
    assert type(config["value"]) is type(value)
    assert repr(config["value"]) == repr(value)  # exact: -0.0, 1e-300, big ints, unicode
