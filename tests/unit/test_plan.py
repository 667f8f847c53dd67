"""Planning: steps, data flow between them, hoisting, the DAG, and every reported problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from nb2prod.plan.planner import Plan, inspect_notebook


def plan_of(make_nb, cells) -> Plan:  # type: ignore[no-untyped-def]
    return inspect_notebook(make_nb(cells))


def codes(plan: Plan) -> list[str]:
    return [p.code for p in plan.problems]


def inputs(plan: Plan, step: str) -> dict[str, str]:
    return {i.name: i.step for i in plan.step(step).inputs.values()}


def test_untagged_cells_join_the_step_above_and_before_first_step_are_unassigned(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            "import math",
            ("a = 1", ["preprocessing"]),
            "b = a + 1",
            ("c = b * 2", ["training"]),
            "d = c",
        ],
    )
    assert [(s.name, s.cells) for s in plan.steps] == [
        ("preprocessing", [1, 2]),
        ("training", [3, 4]),
    ]
    assert plan.unassigned == [0]
    assert inputs(plan, "training") == {"b": "preprocessing"}
    assert plan.step("preprocessing").outputs == {"b"}
    assert plan.edges == [("preprocessing", "training")]
    assert plan.problems == []


def test_mutation_makes_the_mutating_step_the_producer(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            (
                "from sklearn.linear_model import LinearRegression\n"
                "model = LinearRegression()\nX = [[1], [2]]\ny = [1, 2]",
                ["preprocessing"],
            ),
            ("model.fit(X, y)", ["training"]),
            ("score = model.score(X, y)", ["evaluation"]),
        ],
    )
    assert inputs(plan, "evaluation") == {
        "model": "training",
        "X": "preprocessing",
        "y": "preprocessing",
    }
    assert plan.step("training").outputs == {"model"}
    assert ("training", "evaluation") in plan.edges


def test_subscript_and_attribute_mutation_across_steps(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("cfg = {}\nclass Box: pass\nbox = Box()", ["preprocessing"]),
            ("cfg['lr'] = 0.1\nbox.size = 3", ["training"]),
            ("out = (cfg, box)", ["evaluation"]),
        ],
    )
    assert inputs(plan, "evaluation") == {"cfg": "training", "box": "training"}
    # The class is hoisted so the pickled instance can be loaded downstream.
    assert any("class Box" in h.code for h in plan.step("evaluation").hoisted.values())


def test_mutation_through_an_alias_updates_the_original(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("data = [1, 2]\nview = data", ["preprocessing"]),
            ("view.append(3)", ["training"]),
            ("total = sum(data)", ["evaluation"]),
        ],
    )
    assert inputs(plan, "evaluation") == {"data": "training"}
    training = plan.step("training")
    assert {i.name for i in training.inputs.values()} == {"view", "data"}
    # Loaded once and aliased, so the in-place change reaches both names.
    aliased = [i for i in training.inputs.values() if i.alias_of]
    assert len(aliased) == 1


def test_function_reading_globals_is_hoisted_with_its_needs(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("import numpy as np\n\ndef scale(x):\n    return np.asarray(x) * factor", ["setup"]),
            ("factor = 2.0  # multiplier", ["parameters"]),
            ("raw = [1, 2, 3]", ["preprocessing"]),
            ("scaled = scale(raw)", ["training"]),
        ],
    )
    training = plan.step("training")
    codes_hoisted = [h.code for h in training.hoisted.values()]
    assert "import numpy as np" in codes_hoisted
    assert any(c.startswith("def scale") for c in codes_hoisted)
    assert training.parameters == {"factor"}
    assert inputs(plan, "training") == {"raw": "preprocessing"}
    assert "np" not in {i for i in training.inputs}


def test_imports_anywhere_are_hoisted_even_below_their_use(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("x = math.sqrt(4)", ["preprocessing"]),
            ("import math", ["skip"]),
            ("import math\ny = x", ["training"]),
        ],
    )
    # The skip cell's import does not count; the training cell's import is hoisted upward.
    assert "import math" in plan.step("preprocessing").hoisted
    assert plan.errors == []


def test_function_defined_in_one_step_used_in_another_is_hoisted(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            (
                "def clean(rows):\n    return [r for r in rows if r is not None]\n"
                "rows = clean([1, None])",
                ["preprocessing"],
            ),
            ("more = clean([None, 2])", ["training"]),
        ],
    )
    assert not plan.step("training").inputs
    assert any(h.code.startswith("def clean") for h in plan.step("training").hoisted.values())


def test_calling_a_function_with_global_statement_defines_that_global(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("def load():\n    global table\n    table = [1, 2]", ["setup"]),
            ("load()", ["preprocessing"]),
            ("n = len(table)", ["training"]),
        ],
    )
    assert inputs(plan, "training") == {"table": "preprocessing"}
    assert plan.errors == []


def test_setup_side_effects_run_in_every_later_step(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("import random\nrandom.seed(0)\nSEED = 7", ["setup"]),
            ("a = random.random()", ["preprocessing"]),
            ("b = a + SEED", ["training"]),
        ],
    )
    for step in plan.steps:
        assert "random.seed(0)" in step.hoisted
    assert "SEED = 7" in plan.step("training").hoisted
    assert "SEED = 7" not in plan.step("preprocessing").hoisted


def test_independent_steps_have_no_edge(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("data = list(range(10))", ["preprocessing"]),
            ("a = sum(data)", ["training:model_a"]),
            ("b = max(data)", ["training:model_b"]),
            ("best = max(a, b)", ["evaluation"]),
        ],
    )
    assert ("model_a", "model_b") not in plan.edges
    assert set(plan.step("evaluation").depends_on) == {"model_a", "model_b"}
    assert [s.name for s in plan.steps] == ["preprocessing", "model_a", "model_b", "evaluation"]


def test_metrics_cell_names_and_final_dict(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("y = [1, 0]\np = [1, 1]", ["evaluation"]),
            (
                "acc = sum(a == b for a, b in zip(y, p)) / len(y)\n{'acc_pct': acc * 100}",
                ["metrics"],
            ),
        ],
    )
    [m] = plan.step("evaluation").metrics
    assert m.names == ("acc",) and m.last == "_"


def test_kale_tags(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("import statistics", ["imports"]),
            ("def mean(xs):\n    return statistics.mean(xs) * scale", ["functions"]),
            ("scale = 1.0", ["pipeline-parameters"]),
            ("xs = [1, 2, 3]", ["block:load"]),
            ("m = mean(xs)", ["block:compute", "prev:load"]),
            ("print(m)", ["pipeline-metrics"]),
            ("xs2 = xs", ["block:load"]),  # Kale: the same block name continues the block
        ],
    )
    assert [s.name for s in plan.steps] == ["load", "compute"]
    assert plan.step("load").cells == [3, 6]
    assert plan.step("compute").role == "step"
    assert plan.step("compute").parameters == {"scale"}
    assert plan.step("compute").metrics[0].names == ("m",)
    assert plan.errors == []


def test_kale_prev_adds_an_edge_without_data(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("open('f.txt', 'w').write('x')", ["block:write"]),
            ("text = open('f.txt').read()", ["block:read", "prev:write"]),
        ],
    )
    assert plan.edges == [("write", "read")]


# --- problems -----------------------------------------------------------------------------------
def only(plan: Plan, code: str):  # type: ignore[no-untyped-def]
    found = [p for p in plan.problems if p.code == code]
    assert found, f"no {code} in {codes(plan)}"
    return found[0]


def test_unknown_tag_suggests_closest(make_nb) -> None:
    p = only(plan_of(make_nb, [("x = 1", ["trainig"])]), "unknown-tag")
    assert "`training`" in p.fix and p.cell is not None and p.cell.index == 0 and p.cell.id == "c0"


def test_unsafe_step_name(make_nb) -> None:
    p = only(plan_of(make_nb, [("x = 1", ["training:My Model"])]), "unsafe-name")
    assert "training:my_model" in p.fix


def test_two_roles_on_one_cell(make_nb) -> None:
    only(plan_of(make_nb, [("x = 1", ["training", "evaluation"])]), "conflicting-tags")
    only(plan_of(make_nb, [("x = 1", ["skip", "training"])]), "conflicting-tags")


def test_duplicate_step_name(make_nb) -> None:
    plan = plan_of(
        make_nb, [("x = 1", ["training"]), ("y = x", ["evaluation"]), ("z = y", ["training"])]
    )
    assert only(plan, "duplicate-step").cell.index == 2


def test_one_name_with_two_roles_reads_correctly(make_nb) -> None:
    plan = plan_of(make_nb, [("x = 1", ["training:model"]), ("y = x", ["evaluation:model"])])
    p = only(plan, "duplicate-step")
    assert "is already a training step (from cell 1), so it cannot also be an evaluation step" in (
        p.message
    )


def test_name_only_in_skip_cell(make_nb) -> None:
    p = only(
        plan_of(make_nb, [("sample = 3", ["skip"]), ("n = sample", ["training"])]), "skip-only-name"
    )
    assert p.variable == "sample" and p.cell.index == 1 and "cell 1" in p.message


def test_name_defined_nowhere(make_nb) -> None:
    p = only(plan_of(make_nb, [("n = undefined_thing + 1", ["training"])]), "undefined-name")
    assert p.variable == "undefined_thing"


def test_name_from_unassigned_cell(make_nb) -> None:
    p = only(
        plan_of(make_nb, [("data = [1]", []), ("n = len(data)", ["training"])]), "unassigned-name"
    )
    assert "setup" in p.fix and p.variable == "data"


def test_dependency_against_notebook_order(make_nb) -> None:
    p = only(plan_of(make_nb, [("a = b + 1", ["preprocessing"]), ("b = 2", ["training"])]), "order")
    assert p.variable == "b" and p.cell.index == 0


def test_non_literal_parameter(make_nb) -> None:
    p = only(
        plan_of(make_nb, [("n = 2 * 3", ["parameters"]), ("x = n", ["training"])]),
        "non-literal-parameter",
    )
    assert p.variable == "n"


def test_tuple_parameter_is_refused(make_nb) -> None:
    only(
        plan_of(make_nb, [("shape = (1, 2)", ["parameters"]), ("x = shape", ["training"])]),
        "non-literal-parameter",
    )


def test_syntax_error(make_nb) -> None:
    p = only(plan_of(make_nb, [("x = (", ["training"])]), "syntax-error")
    assert p.severity == "error"


def test_syntax_error_in_skip_cell_is_only_a_warning(make_nb) -> None:
    plan = plan_of(make_nb, [("x = (", ["skip"]), ("y = 1", ["training"])])
    assert only(plan, "syntax-error").severity == "warning" and plan.errors == []


def test_reserved_name(make_nb) -> None:
    only(plan_of(make_nb, [("nb2prod_run_dir = 1", ["training"])]), "reserved-name")
    only(plan_of(make_nb, [("nb2prod = 'mine'", ["training"])]), "reserved-name")
    # Importing nb2prod (for nb2prod.log_metric) is what the generated code does too.
    plan = plan_of(make_nb, [("import nb2prod\nnb2prod.log_metric('a', 1.0)", ["training"])])
    assert plan.errors == []


def test_no_steps(make_nb) -> None:
    only(plan_of(make_nb, ["x = 1"]), "no-steps")


def test_metrics_outside_step(make_nb) -> None:
    only(
        plan_of(make_nb, [("acc = 1.0", ["metrics"]), ("x = 1", ["training"])]),
        "metrics-outside-step",
    )


def test_deleted_name(make_nb) -> None:
    p = only(
        plan_of(make_nb, [("a = 1\ndel a", ["preprocessing"]), ("b = a", ["training"])]),
        "undefined-name",
    )
    assert "deleted" in p.message


def test_unknown_prev(make_nb) -> None:
    only(plan_of(make_nb, [("a = 1", ["block:a", "prev:nothere"])]), "unknown-step")


def test_cycle_between_steps(make_nb) -> None:
    plan = plan_of(
        make_nb,
        [
            ("a = 1", ["block:one"]),
            ("b = a", ["block:two"]),
            ("a2 = b", ["block:one"]),
            ("c = a2", ["block:two"]),
        ],
    )
    only(plan, "cycle")


def test_foreign_tags_are_ignored(make_nb) -> None:
    plan = plan_of(
        make_nb, [("x = 1", ["training", "hide-input", "remove-output", "limit:nvidia.com/gpu:1"])]
    )
    assert plan.problems == []


def test_problem_render_names_file_cell_and_fix(make_nb, tmp_path: Path) -> None:
    plan = plan_of(make_nb, [("x = 1", ["trainig"])])
    text = plan.problems[0].render(str(plan.notebook.path))
    assert text.startswith(str(plan.notebook.path) + ", cell 1 (id c0): unknown tag `trainig`.")
    assert "Fix: use `training`." in text


@pytest.mark.parametrize(
    "nb",
    sorted(Path(__file__).resolve().parents[2].glob("notebooks/*.ipynb")),
    ids=lambda p: p.stem,
)
def test_examples_plan_without_errors(nb: Path) -> None:
    plan = inspect_notebook(nb)
    assert plan.errors == [], [p.render(str(nb)) for p in plan.errors]
    assert len(plan.steps) >= 3
