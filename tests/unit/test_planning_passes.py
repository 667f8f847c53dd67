"""The planner's passes one at a time (nb2prod.plan), above all the run order on ties."""

from __future__ import annotations

import random
from collections.abc import Sequence

from nb2prod.plan import model
from nb2prod.plan import planner as plan_module
from nb2prod.plan.checks import analyse_cells, check_mlflow_overrides, read_parameters
from nb2prod.plan.dataflow import name_tables, trace_data_flow
from nb2prod.plan.metrics import metrics_cell
from nb2prod.plan.model import Input, Roles, StepPlan
from nb2prod.plan.notebook import Notebook, notebook_from_json
from nb2prod.plan.ordering import RunOrder, dependencies, order_steps, run_order
from nb2prod.plan.problems import ProblemLog
from nb2prod.plan.roles import assign_roles

from conftest import notebook_json

Spec = str | tuple[str, list[str]]


def notebook(cells: Sequence[Spec]) -> Notebook:
    return notebook_from_json(notebook_json(cells), "nb.ipynb")


def roles_of(cells: Sequence[Spec]) -> tuple[Notebook, Roles, ProblemLog]:
    nb = notebook(cells)
    log = ProblemLog(nb)
    roles = assign_roles(nb, log)
    analyse_cells(nb, roles.cells, log)
    return nb, roles, log


def codes(log: ProblemLog) -> list[str]:
    return [p.code for p in log.problems]


# --- ordering -------------------------------------------------------------------------------


def reference_order(first: dict[str, int], deps: dict[str, set[str]]) -> RunOrder:
    """The planner's order before graphlib: of the steps ready, the first in the notebook; when
    a cycle blocks all that are left, the first of them."""
    result = RunOrder([], [])
    done: set[str] = set()
    pending = sorted(first, key=first.__getitem__)
    while pending:
        ready = [n for n in pending if deps[n] <= done]
        if not ready:
            result.blocked.append(list(pending))
            ready = [pending[0]]
        result.order.append(ready[0])
        done.add(ready[0])
        pending.remove(ready[0])
    return result


def test_ready_steps_run_in_notebook_order_not_in_the_order_they_became_ready() -> None:
    # c becomes ready after a, d right away; b only after c. Ties go to the first in the notebook.
    first = {"a": 0, "b": 3, "c": 5, "d": 7, "e": 9}
    deps = {"a": set(), "b": {"c"}, "c": {"a"}, "d": set(), "e": {"a"}}
    assert run_order(first, deps) == RunOrder(["a", "c", "b", "d", "e"], [])


def test_a_step_waits_for_a_producer_further_down() -> None:
    first = {"late": 8, "early": 1, "middle": 4}
    deps = {"early": {"late"}, "middle": set(), "late": set()}
    assert run_order(first, deps).order == ["middle", "late", "early"]


def test_a_cycle_releases_its_first_step_and_says_which_steps_were_blocked() -> None:
    first = {"one": 0, "two": 1, "free": 2, "after": 3}
    deps = {"one": {"two"}, "two": {"one"}, "free": set(), "after": {"two"}}
    assert run_order(first, deps) == RunOrder(
        ["free", "one", "two", "after"], [["one", "two", "after"]]
    )


def test_two_separate_cycles_are_each_reported() -> None:
    first = {"a": 0, "b": 1, "c": 2, "d": 3}
    deps = {"a": {"b"}, "b": {"a"}, "c": {"d", "b"}, "d": {"c"}}
    assert run_order(first, deps) == RunOrder(
        ["a", "b", "c", "d"], [["a", "b", "c", "d"], ["c", "d"]]
    )


def test_run_order_is_the_order_before_graphlib_on_random_graphs() -> None:
    rng = random.Random(10)
    for _ in range(400):
        names = [f"s{i}" for i in range(rng.randint(1, 8))]
        positions = rng.sample(range(50), len(names))
        first = dict(zip(names, positions, strict=True))
        back_edges = rng.random() < 0.3  # sometimes against notebook order: cycles
        deps = {
            n: {m for m in names if m != n and (back_edges or first[m] < first[n])} for n in names
        }
        deps = {n: {m for m in d if rng.random() < 0.3} for n, d in deps.items()}
        assert run_order(first, deps) == reference_order(first, deps), (first, deps)


def test_order_steps_sets_depends_on_and_edges_and_reports_a_cycle() -> None:
    log = ProblemLog(notebook(["a = 1", "b = 2", "c = 3"]))
    one = StepPlan("one", "step", cells=[0], inputs={"b": Input("b", "two")})
    two = StepPlan("two", "step", cells=[1], inputs={"a": Input("a", "one")})
    three = StepPlan("three", "step", cells=[2], prev=["two", "one"])
    ordering = order_steps({"one": one, "two": two, "three": three}, log)
    assert [s.name for s in ordering.steps] == ["one", "two", "three"]
    assert three.depends_on == ["one", "two"]  # in notebook order, not tag order
    assert ordering.edges == [("two", "one"), ("one", "two"), ("one", "three"), ("two", "three")]
    assert codes(log) == ["cycle"]
    assert log.problems[0].cell is not None and log.problems[0].cell.index == 0


def test_dependencies_check_prev_tags() -> None:
    log = ProblemLog(notebook(["a = 1", "b = 2"]))
    one = StepPlan("one", "step", cells=[0], prev=["one", "nowhere", "two"])
    two = StepPlan("two", "step", cells=[1])
    deps = dependencies({"one": one, "two": two}, log)
    assert deps == {"one": {"two"}, "two": set()}  # its own name is ignored
    assert codes(log) == ["unknown-step", "order"]


# --- problems -------------------------------------------------------------------------------


def test_problem_log_dedupes_and_mutes_follow_on_problems_of_undetermined_cells() -> None:
    log = ProblemLog(notebook(["a = 1", "b = 2", "c = 3"]))
    log.undetermined.add(1)
    log.report("undefined-name", "m", "f", 0, "x")
    log.report("undefined-name", "m", "f", 0, "x")  # the same again
    log.report("undefined-name", "m", "f", 2, "x", cause=1)  # caused by an undetermined cell
    log.report("syntax-error", "m", "f", 1)  # not a follow-on problem: reported
    log.report("unused-parameter", "m", "f", 2, "p", severity="warning")
    log.report("duplicate-step", "m", "f", 2)
    assert codes(log) == ["undefined-name", "syntax-error", "unused-parameter", "duplicate-step"]
    ordered = [(p.code, p.cell.index if p.cell else None) for p in log.in_report_order()]
    assert ordered == [
        ("undefined-name", 0),
        ("syntax-error", 1),
        ("duplicate-step", 2),
        ("unused-parameter", 2),
    ]


# --- roles ----------------------------------------------------------------------------------


def test_roles_untagged_cells_join_the_step_above() -> None:
    _, roles, log = roles_of(
        ["import os", ("a = 1", ["preprocessing"]), "b = a", "#md notes", ("c = b", ["training"])]
    )
    assert [(c.role, c.step) for c in roles.cells] == [
        ("unassigned", None),
        ("step", "preprocessing"),
        ("step", "preprocessing"),
        ("markdown", None),
        ("step", "training"),
    ]
    assert {n: s.cells for n, s in roles.steps.items()} == {
        "preprocessing": [1, 2],
        "training": [4],
    }
    assert log.problems == []


def test_roles_an_unknown_tag_leaves_its_cell_and_the_untagged_ones_after_it_undetermined() -> None:
    _, roles, log = roles_of(
        [("a = 1", ["preprocessing"]), ("b = a", ["Trainign"]), "c = b", ("d = c", ["evaluation"])]
    )
    assert log.undetermined == {1, 2}
    assert codes(log) == ["unknown-tag"]
    assert roles.steps["evaluation"].cells == [3]


def test_roles_kale_blocks_continue_and_engine_tags_apply_to_their_step() -> None:
    _, roles, log = roles_of(
        [
            ("a = 1", ["block:load", "limit:cpu:2"]),
            ("b = a", ["block:"]),
            ("c = b", ["block:fit", "prev:load"]),
        ]
    )
    assert roles.steps["load"].cells == [0, 1]
    assert roles.steps["load"].engine == {"limit": {"cpu": "2"}}
    assert roles.steps["fit"].prev == ["load"]
    assert log.problems == []


# --- checks ---------------------------------------------------------------------------------


def test_parameters_are_read_once_and_duplicates_reported() -> None:
    nb, roles, log = roles_of([("n = 1\nm = 2", ["parameters"]), ("n = 3", ["parameters"])])
    parameters = read_parameters(nb, roles.cells, log)
    assert list(parameters) == ["n", "m"]
    assert parameters["n"].cell.index == 0
    assert codes(log) == ["duplicate-parameter"]


def test_mlflow_override_in_a_step_is_reported() -> None:
    nb, roles, log = roles_of(
        [("import mlflow as m\nm.set_experiment('x')\nx = 1", ["training"]), "mlflow = 1"]
    )
    check_mlflow_overrides(nb, roles.cells, log)
    assert codes(log) == ["mlflow-override"]


# --- data flow ------------------------------------------------------------------------------


def test_data_flow_finds_inputs_outputs_parameters_and_hoists() -> None:
    nb, roles, log = roles_of(
        [
            ("n = 3", ["parameters"]),
            ("import math", ["setup"]),
            ("data = list(range(n))", ["preprocessing"]),
            ("total = math.fsum(data)", ["training"]),
        ]
    )
    parameters = read_parameters(nb, roles.cells, log)
    trace_data_flow(roles.cells, roles.steps, parameters, log)
    pre, train = roles.steps["preprocessing"], roles.steps["training"]
    assert pre.parameters == {"n"} and pre.outputs == {"data"}
    assert train.inputs == {"data": Input("data", "preprocessing")}
    assert list(train.hoisted) == ["import math"]
    assert train.data_names == {"total"} and train.defines == {"total"}
    assert log.problems == []


def test_name_tables_record_what_skip_cells_and_later_cells_set() -> None:
    _, roles, _ = roles_of(
        [("x = y", ["training"]), ("y = 1", ["skip"]), "z = 2", "import os", ("os.sep", ["skip"])]
    )
    tables = name_tables(roles.cells)
    assert tables.skip_writes == {"y": 1}
    assert tables.first_data == {"x": 0, "z": 2}
    assert list(tables.first_define) == ["os"]
    assert tables.step_reads == {"training": {"y"}}
    assert tables.step_binds == {"training": {"x", "z", "os"}}  # untagged cells join it
    assert {"y", "os"} <= tables.all_reads


def test_metrics_cell_names_and_last_expression() -> None:
    _, roles, _ = roles_of([("acc = 0.9\nloss = 0.1\n{'acc': acc}", ["training", "metrics"])])
    cell = roles.cells[0]
    assert cell.analysis is not None
    assert metrics_cell(cell, cell.analysis) == model.MetricsCell(0, ("acc", "loss"), "_")


# --- the driver -----------------------------------------------------------------------------


def test_plan_module_still_offers_the_types_other_modules_import() -> None:
    assert plan_module.StepPlan is StepPlan
    assert plan_module.Hoist is model.Hoist
    assert plan_module.MetricsCell is model.MetricsCell
    assert plan_module.CellPlan is model.CellPlan
