"""`nb2prod compile --target airflow`: golden files, determinism, dag.py's own logic, refusals.

Airflow is not installed here (it cannot share an environment with kfp): dag.py is read with
``ast``, and its helpers that need no Airflow are run alone. tests/engines/
test_airflow_dag.py runs the DAG itself in an Airflow venv. To accept an intended change of
the golden files: ``NB2PROD_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_compile_airflow.py``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from compile_helpers import KALE_CELLS, export_cells, export_example, fix_environment
from hypothesis import given, settings
from hypothesis import strategies as st

from nb2prod.compile import compile_version
from nb2prod.errors import Nb2prodError
from nb2prod.run.overrides import parse_assignment

from conftest import tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "compile"


@pytest.fixture(autouse=True)
def _fixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fix_environment(monkeypatch)


def compiled(project: Path, example: str, **options: Any) -> tuple[Path, dict[str, str]]:
    if example == "kale":
        spec = export_cells(project, "kale", KALE_CELLS)
    else:
        spec = export_example(project, example)
    out = project / "build" / f"{spec.name}-v1-airflow"
    result = compile_version(spec, "airflow", out=out, **options)
    assert result.out == out and result.files == tuple(sorted(p.name for p in out.iterdir()))
    return out, {rel: data.decode() for rel, data in tree(out).items()}


@pytest.mark.parametrize("example", ["breast_cancer", "wine_models", "kale"])
def test_compiled_files_match_golden(tmp_path: Path, example: str) -> None:
    _, got = compiled(tmp_path, example)
    expected_dir = GOLDEN / example / "airflow"
    if os.environ.get("NB2PROD_UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for rel, text in got.items():
            (expected_dir / rel).write_text(text)
    expected = {rel: data.decode() for rel, data in tree(expected_dir).items()}
    assert (
        sorted(got)
        == sorted(expected)
        == [
            "Dockerfile",
            "Dockerfile.dockerignore",
            "README.md",
            "dag.py",
        ]
    )
    for rel in expected:
        assert got[rel] == expected[rel], rel
    for rel, text in got.items():
        # Nothing of this machine (the project's place, the time) in what is shipped.
        assert str(tmp_path) not in text and os.getcwd() not in text, rel
        assert "2026-01-01T" not in text and "SOURCE_DATE_EPOCH" not in text, rel


def test_the_same_version_compiles_to_the_same_bytes_wherever_the_project_is(
    tmp_path: Path,
) -> None:
    out, first = compiled(tmp_path / "a", "kale")
    shutil.rmtree(out)
    _, again = compiled(tmp_path / "a", "kale")
    _, elsewhere = compiled(tmp_path / "b" / "deeper", "kale")
    assert again == first and elsewhere == first


def dag_module(source: str) -> ast.Module:
    return ast.parse(source, filename="dag.py")


def calls(module: ast.Module, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


def test_dag_py_declares_typed_params_a_task_per_step_and_the_edges(tmp_path: Path) -> None:
    _, files = compiled(tmp_path, "wine_models")
    module = dag_module(files["dag.py"])
    params = {}
    for call in calls(module, "DAG"):
        declared = next(k.value for k in call.keywords if k.arg == "params")
        assert isinstance(declared, ast.Dict)
        for key, value in zip(declared.keys, declared.values, strict=True):
            assert isinstance(key, ast.Constant) and isinstance(value, ast.Call)
            kinds = {k.arg: ast.literal_eval(k.value) for k in value.keywords}
            params[key.value] = (ast.literal_eval(value.args[0]), kinds.get("type"))
    assert params == {
        "test_size": (0.3, "number"),
        "random_state": (0, "integer"),
        "stratify": (True, "boolean"),
        "features_to_drop": (["proline"], "array"),
        "rf_params": ({"n_estimators": 100, "max_depth": 5}, "object"),
        "gb_n_estimators": (50, "integer"),
        "gb_learning_rate": (0.1, "number"),
        "average": ("macro", "string"),
        "mlflow_tracking_uri": ("", "string"),
    }
    # One task per step with the parameters that step uses, in config.yaml's order.
    steps = {}
    for call in calls(module, "override"):
        task_id = next(ast.literal_eval(k.value) for k in call.keywords if k.arg == "task_id")
        steps[task_id] = call
    assert list(steps) == [
        "prepare",
        "random_forest",
        "gradient_boosting",
        "compare",
        "nb2prod-track",
    ]
    text = files["dag.py"]
    assert '("random_forest", ["random_state", "rf_params"])' in text
    assert '("compare", ["average"])' in text
    assert (
        "    [prepare_task, random_forest_task, gradient_boosting_task] >> compare_task\n" in text
    )
    assert "    prepare_task >> random_forest_task\n" in text


def test_dag_py_is_lint_clean(tmp_path: Path) -> None:
    out, _ = compiled(tmp_path, "kale")
    for args in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", "--isolated"]
            + ["--line-length", "100", "--target-version", "py310"]
            + (["--select", "E,F,W,I,B,UP"] if args == ["check"] else [])
            + ["dag.py"],
            cwd=out,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_kale_tags_become_a_pod_override_with_secrets_by_name(tmp_path: Path) -> None:
    _, files = compiled(tmp_path, "kale")
    module = dag_module(files["dag.py"])
    pods = {}
    for call in calls(module, "override"):
        task_id = next(ast.literal_eval(k.value) for k in call.keywords if k.arg == "task_id")
        config = next((k.value for k in call.keywords if k.arg == "executor_config"), None)
        if isinstance(config, ast.Call):
            pods[task_id] = {k.arg: ast.literal_eval(k.value) for k in config.keywords}
    assert pods == {
        "load": {
            "image": "python:3.11-slim",
            "limits": {"cpu": "500m", "memory": "4Gi", "nvidia.com/gpu": "1"},
            "secrets": [
                ("api.keys", "token", "API_TOKEN"),
                ("db-credentials", "password", "DB_PASSWORD"),
            ],
            "labels": {"tier": "batch"},
            "annotations": {"example.com/owner": "data team: fraud"},
        },
        "train": {"image": "nb2prod-kale:v1"},
    }
    assert "# cache:disabled: nothing to map" in files["dag.py"]
    assert (
        "kubectl create secret generic db-credentials --from-literal=password=..."
        in (files["README.md"])
    )


def test_image_option_sets_the_image_of_untagged_steps(tmp_path: Path) -> None:
    _, files = compiled(tmp_path, "kale", image="registry.example.com/ml/kale:1.2")
    assert 'pod_override(image="registry.example.com/ml/kale:1.2")' in files["dag.py"]
    assert "-t registry.example.com/ml/kale:1.2 ." in files["README.md"]
    assert '    image="python:3.11-slim",\n' in files["dag.py"]  # the step's own tag


HOSTILE = "x\"); import os; os.system(\"echo pwned\") #\n''' \\ é 🙂"


def test_values_from_the_notebook_reach_dag_py_only_as_literals(tmp_path: Path) -> None:
    """A default or help text that looks like code stays a string in dag.py: parsing the file
    gives back exactly the notebook's values, and no call the generator did not write."""
    cells = [
        (f"label = {HOSTILE!r}  # help \"quoted\" ''' {{braces}} `ticks`", ["parameters"]),
        ("n = 1e-05", ["parameters"]),
        ("y = label * 2\nz = n", ["step:load"]),
    ]
    spec = export_cells(tmp_path, "hostile", cells)
    out = tmp_path / "build" / "x"
    compile_version(spec, "airflow", out=out)
    text = (out / "dag.py").read_text(encoding="utf-8")
    module = dag_module(text)
    params = next(k.value for k in calls(module, "DAG")[0].keywords if k.arg == "params")
    assert isinstance(params, ast.Dict)
    label = params.values[0]
    assert isinstance(label, ast.Call)
    assert ast.literal_eval(label.args[0]) == HOSTILE
    assert ast.literal_eval(params.values[1].args[0]) == 1e-05  # type: ignore[attr-defined]
    assert not calls(module, "system")


# --- dag.py's helpers, run alone (they need no Airflow) ------------------------------------------
def dag_helpers(tmp_path: Path, runs: Path) -> dict[str, Any]:
    """yaml_value and run_folder from a generated dag.py, RUNS set to ``runs``."""
    out, files = compiled(tmp_path, "breast_cancer")
    module = dag_module(files["dag.py"])
    names = {"yaml_value", "run_folder", "UNPRINTABLE"}
    wanted = [
        node
        for node in module.body
        if isinstance(node, ast.FunctionDef)
        and node.name in names
        or isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", None) in names
    ]
    namespace: dict[str, Any] = {}
    exec("import hashlib, json, re\nfrom pathlib import Path", namespace)  # noqa: S102
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "dag.py", "exec"), namespace)  # noqa: S102
    namespace.update(RUNS=runs, DAG_ID="breast_cancer_v1")
    return namespace


PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_parameter_values_reach_nb2prod_step_exactly(tmp_path: Path) -> None:
    """What a task passes as `-p KEY=VALUE` is read back by nb2prod as the same value, type
    included: 1e-05 stays a float (YAML would read it as text), "true" and "1.0" stay text."""
    yaml_value = dag_helpers(tmp_path, tmp_path / "runs")["yaml_value"]
    for value in [1e-05, 1e20, -0.0, 2.5e-300, "true", "1.0", "null", "a: b", "- x", "", "é🙂"]:
        assert parse_assignment(f"k={yaml_value(value)}") == ("k", value), value
    assert parse_assignment(f"k={yaml_value([1, 1e-05, {'a': None}])}")[1] == [
        1,
        1e-05,
        {"a": None},
    ]

    @settings(max_examples=100, deadline=None)
    @given(PLAIN)
    def roundtrip(value: Any) -> None:
        got = parse_assignment(f"k={yaml_value(value)}")[1]
        assert json.dumps(got) == json.dumps(value)  # 0.0 and -0.0, 1 and True, told apart
        if isinstance(value, float):
            assert math.copysign(1, got) == math.copysign(1, value)

    roundtrip()


def test_each_dag_run_gets_a_folder_of_its_own_inside_the_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_folder = dag_helpers(tmp_path, runs)["run_folder"]
    ids = [
        "manual__2026-11-26T22:59:57.165964+00:00",
        "manual__2026-11-26T22_59_57.165964_00_00",
        "scheduled__2026-01-01",
        "..",
        "../../etc",
        "a/b",
        "a_b",
        ".hidden",
    ]
    folders = [run_folder(i) for i in ids]
    assert len(set(folders)) == len(ids)
    for folder in folders:
        assert folder.parent == runs / "breast_cancer_v1" and not folder.name.startswith(".")
    assert run_folder("scheduled__2026-01-01").name == "scheduled__2026-01-01"  # already safe


# --- refusals ------------------------------------------------------------------------------------
def refused(tmp_path: Path, cells: list, **options: Any) -> str:
    spec = export_cells(tmp_path, "bad", cells)
    with pytest.raises(Nb2prodError) as caught:
        compile_version(spec, "airflow", out=tmp_path / "build" / "x", **options)
    assert not (tmp_path / "build").exists()
    message = str(caught.value)
    assert "Fix:" in message and "\n" not in message
    return message


def test_a_malformed_resource_is_refused_and_nothing_written(tmp_path: Path) -> None:
    cells = [("x = 1", ["parameters"]), ("y = x", ["step:load", "limit:gpu:two"])]
    message = refused(tmp_path, cells)
    assert "`limit:gpu:two`" in message and "step 'load'" in message


def test_a_parameter_named_like_the_dags_tracking_param_is_refused(tmp_path: Path) -> None:
    cells = [("mlflow_tracking_uri = 'x'", ["parameters"]), ("y = mlflow_tracking_uri", ["step:a"])]
    message = refused(tmp_path, cells)
    assert "'mlflow_tracking_uri'" in message and "rename the parameter" in message


def test_a_bad_image_option_is_refused(tmp_path: Path) -> None:
    cells = [("x = 1", ["parameters"]), ("y = x", ["step:a"])]
    message = refused(tmp_path, cells, image="Bad Image")
    assert "--image" in message


def test_generating_never_imports_airflow(tmp_path: Path) -> None:
    compiled(tmp_path, "breast_cancer")
    assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]
