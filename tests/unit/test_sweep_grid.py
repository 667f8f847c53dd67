"""nb2prod.sweep.grid: `-p KEY=V1,V2,...` into typed values, and the grid of every combination."""

from __future__ import annotations

from typing import Any

import pytest

from nb2prod.errors import Nb2prodError
from nb2prod.sweep.grid import MAX_POINTS, parse_grid, split_values

DEFAULTS: dict[str, Any] = {
    "C": 1.0,
    "max_iter": 500,
    "fit_intercept": True,
    "solver": "lbfgs",
    "cols": ["a"],
    "extra": {"k": 1},
    "seed": None,
}


def error(*texts: str) -> str:
    with pytest.raises(Nb2prodError) as caught:
        parse_grid(texts, DEFAULTS)
    message = caught.value.message
    assert "\n" not in message and "Fix:" in message  # one paragraph, with the fix
    return message


def test_the_grid_is_every_combination_the_last_parameter_fastest() -> None:
    grid = parse_grid(["C=0.01,0.1,1", "max_iter=100,200"], DEFAULTS)
    assert grid.names == ["C", "max_iter"] and grid.size == 6
    assert grid.points() == [
        {"C": 0.01, "max_iter": 100},
        {"C": 0.01, "max_iter": 200},
        {"C": 0.1, "max_iter": 100},
        {"C": 0.1, "max_iter": 200},
        {"C": 1.0, "max_iter": 100},
        {"C": 1.0, "max_iter": 200},
    ]


def test_values_are_read_for_the_type_of_the_default() -> None:
    grid = parse_grid(
        ["C=1,2.5", "fit_intercept=true,false", "solver=lbfgs,saga,1", "seed=null,7"], DEFAULTS
    )
    values = {a.name: a.values for a in grid.axes}
    # A whole number for a float parameter is a float, as `C: 1.0` in config.yaml says.
    assert values["C"] == (1.0, 2.5) and all(type(v) is float for v in values["C"])
    assert values["fit_intercept"] == (True, False)
    assert values["solver"] == ("lbfgs", "saga", "1")  # texts as written
    assert values["seed"] == (None, 7)  # a null default takes any value


def test_lists_mappings_and_texts_with_commas_split_outside_brackets_and_quotes() -> None:
    grid = parse_grid(["cols=[a,b],[c], []", 'solver="a,b",don\'t', "extra={k: 2},{}"], DEFAULTS)
    values = {a.name: a.values for a in grid.axes}
    assert values["cols"] == (["a", "b"], ["c"], [])
    assert values["solver"] == ("a,b", "don't")  # a quote counts only where a value starts
    assert values["extra"] == ({"k": 2}, {})
    assert split_values(' "x,y" , [1, [2, 3]] ,z') == ['"x,y"', "[1, [2, 3]]", "z"]


def test_a_value_given_twice_is_one_point() -> None:
    assert parse_grid(["C=1,1.0,0.5"], DEFAULTS).axes[0].values == (1.0, 0.5)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("max_iter=100,ten", "-p 'max_iter=100,ten': `ten` is not a whole number"),
        ("max_iter=1.5", "`1.5` is not a whole number, as parameter `max_iter` is (default 500"),
        ("C=0.1,big", "`big` is not a number, as parameter `C` is"),
        ("fit_intercept=yes please", "not true or false"),
        ("cols=a", "`a` is not a list"),
        ("Cc=0.1,1", "unknown parameter `Cc`. Fix: did you mean `C`?"),
        ("alpha=1", "unknown parameter `alpha`. Fix: choose from `C`, `max_iter`"),
        ("C=", "no values for parameter `C`"),
        ("C=0.1,,1", "value 2 of `C` is empty"),
        ("cols=[a,b", "a bracket is not closed"),
        ("C=.inf", "must be a finite number"),
        ("C", "expected KEY=V1,V2,..."),
    ],
)
def test_bad_values_are_refused_naming_the_parameter_the_value_and_the_fix(
    text: str, said: str
) -> None:
    assert said in error(text)


def test_the_fix_shows_values_of_the_parameters_type() -> None:
    assert "e.g. -p 'max_iter=500,1000'" in error("max_iter=ten")
    assert "e.g. -p 'fit_intercept=true,false'" in error("fit_intercept=2")


def test_no_parameter_a_repeated_one_and_a_huge_grid_are_refused() -> None:
    assert "needs at least one parameter" in error()
    assert "parameter `C` is given twice" in error("C=1", "C=2")
    big = ",".join(str(i) for i in range(MAX_POINTS + 1))
    assert f"the sweep has {MAX_POINTS + 1} points" in error(f"max_iter={big}")
