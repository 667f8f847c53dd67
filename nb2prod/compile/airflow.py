"""``nb2prod compile --target airflow``: a version as an Airflow 3 DAG, ``dag.py``.

Every step is a task that runs ``nb2prod step`` (a list-form subprocess: no shell, so no
parameter value is ever read as a command) in a run folder that the tasks of one DAG run share;
a last task runs ``nb2prod track`` when the DAG run's ``mlflow_tracking_uri`` is set. The DAG's
params are config.yaml's, typed. Kale's pod tags become a KubernetesExecutor ``pod_override``,
built only where the ``kubernetes`` client is installed, so the file imports everywhere.

Only text is generated here: Airflow is never imported. Beside ``dag.py`` go the image's
``Dockerfile`` (see :func:`nb2prod.compile.common.dockerfile`) and a README with the commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from ..version_folder import CONFIG, config_help
from . import CompileResult
from .airflow_text import dag_text, readme_text
from .common import (
    StepSettings,
    default_image,
    dockerfile,
    dockerignore,
    param_kinds,
    project_root,
    step_settings,
    version_relpath,
    write_outputs,
)

#: What a KubernetesExecutor pod runs a task with (``python -m
#: airflow.sdk.execution_time.execute_workload``): the image needs it beside the pipeline's own
#: requirements. The Task SDK talks to any Airflow 3 API server of its major version.
TASK_SDK = "apache-airflow-task-sdk>=1.3,<2"
TRACKING = "mlflow_tracking_uri"  # the DAG param that turns tracking on


def compile_airflow(spec: PipelineSpec, out: Path, image: str | None) -> CompileResult:
    """Write ``dag.py``, ``Dockerfile`` (and its ``.dockerignore``) and ``README.md`` for
    ``spec`` to ``out``; nothing when the version's tags or defaults cannot be compiled."""
    _check_names(spec)
    settings = step_settings(spec, image)
    kinds = param_kinds(spec)
    root = project_root(spec)
    where = _relative(out, root)  # out, as a path from the project root
    tag = image or default_image(spec)
    helps = _config_help(spec)
    files = {
        "dag.py": dag_text(
            spec,
            version_relpath(spec),
            _relative(root, out),
            _params(spec, kinds, helps),
            {name: _pod(s) for name, s in settings.items()},
        ),
        "Dockerfile": dockerfile(
            spec, location=f"{where}/Dockerfile", extra_requirements=(TASK_SDK,), image=image
        ),
        "Dockerfile.dockerignore": dockerignore(spec),
        "README.md": readme_text(spec, where, tag, settings, _example_conf(spec, kinds)),
    }
    names = write_outputs(out, files)
    dag_id = dag_id_of(spec)
    return CompileResult(
        "airflow",
        out,
        names,
        next_steps=(
            f"python {where}/dag.py   # test it here with dag.test() (Airflow installed)",
            f"cp {where}/dag.py $AIRFLOW_HOME/dags/{dag_id}.py   # then trigger it: "
            f"airflow dags trigger {dag_id} ({where}/README.md)",
        ),
    )


def _check_names(spec: PipelineSpec) -> None:
    """The DAG's own param may not be a parameter's name too: refused (exit 2) before anything
    is written."""
    if TRACKING in spec.defaults:
        raise Nb2prodError(
            f"{spec.path}: the parameter {TRACKING!r} has the name of the DAG param that turns "
            "tracking on. Nothing was written. Fix: rename the parameter in the notebook's "
            f"parameters cell, then `nb2prod export {spec.notebook}` and compile again."
        )


def dag_id_of(spec: PipelineSpec) -> str:
    return f"{spec.name}_v{spec.version}"


def _relative(path: Path, start: Path) -> str:
    """``path`` from ``start``, POSIX, never absolute: the files stay the same bytes wherever the
    project lies."""
    rel = Path(os.path.relpath(Path(os.path.abspath(path)), Path(os.path.abspath(start))))
    return rel.as_posix()


# --- params -------------------------------------------------------------------------------------
#: a parameter's kind (common.param_kind) -> the JSON schema type of its Airflow Param
_SCHEMA = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def _params(
    spec: PipelineSpec, kinds: dict[str, str], helps: dict[str, str]
) -> list[tuple[str, Any, str | None, str]]:
    """``(name, default, JSON schema type or None for any, description)`` per parameter."""
    out = []
    for name, kind in kinds.items():
        default = spec.defaults[name]
        if kind in _SCHEMA:
            schema: str | None = _SCHEMA[kind]
        elif isinstance(default, list):
            schema = "array"
        elif isinstance(default, dict):
            schema = "object"
        else:  # None: nb2prod takes any value for it, as scikit-learn's "unset"
            schema = None
        out.append((name, default, schema, helps.get(name, "")))
    return out


def _config_help(spec: PipelineSpec) -> dict[str, str]:
    """The help text of each parameter, from the comments of the version's config.yaml."""
    return config_help((spec.path / CONFIG).read_text(encoding="utf-8"))


def _example_conf(spec: PipelineSpec, kinds: dict[str, str]) -> dict[str, Any]:
    """A ``--conf`` for the README: the first parameter at its default, and tracking on."""
    conf: dict[str, Any] = {name: spec.defaults[name] for name in list(kinds)[:1]}
    conf["mlflow_tracking_uri"] = "http://mlflow.example.com:5000"
    return conf


# --- pods ---------------------------------------------------------------------------------------
def _pod(s: StepSettings) -> dict[str, Any]:
    """The keyword arguments of dag.py's ``pod_override(...)`` for one step, empty ones left
    out: what Kale's tags (and --image) ask of the step's Kubernetes pod."""
    limits = dict(s.limits)
    if s.accelerator is not None:
        resource, count = s.accelerator
        limits[resource] = count
    pod: dict[str, Any] = {"image": s.image}
    if limits:
        pod["limits"] = dict(sorted(limits.items()))
    if s.secrets:
        pod["secrets"] = [(ref.name, ref.key, ref.env) for ref in s.secrets]
    if s.labels:
        pod["labels"] = s.labels
    if s.annotations:
        pod["annotations"] = s.annotations
    return pod


__all__ = ["TASK_SDK", "compile_airflow", "dag_id_of"]
