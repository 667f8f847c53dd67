"""The text of ``pipeline.py``: a version as a Kubeflow Pipelines v2 program (KFP DSL).

One lightweight component per step runs ``nb2prod step`` in a run folder of its own, made of
its upstream steps' folders (``Dataset`` artifacts), and hands on its own folder and its
metrics (a ``Metrics`` artifact); a last component, when the pipeline parameter
``mlflow_tracking_uri`` is set, assembles every step's folder and runs ``nb2prod track``.

KFP serialises each component function's source alone, so component bodies inline every value
they need; parameters reach them one by one (dicts built in the pipeline break kfp.local), and
lists, dicts and None travel as JSON text (protobuf turns their ints into floats).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .._version import __version__
from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from .common import StepSettings, json_default, version_relpath

# Pipeline parameters nb2prod adds to the version's own.
TRACKING = "mlflow_tracking_uri"
PROJECT = "nb2prod_project"
PROJECT_IN_IMAGE = "/project"  # the Dockerfile's WORKDIR
# Component arguments nb2prod adds: a step's outputs, and each upstream step's folder.
STEP_OUT = "step_folder"
METRICS_OUT = "metrics"
# Names pipeline.py defines or imports at module level: a step keeps its name as its
# component's unless it is one of these (then it gets a `_step` suffix).
MODULE_NAMES = frozenset(
    {"argparse", "compiler", "dsl", "json", "kubernetes", "main", "pipeline", "sys", "track"}
    | {"HERE", "IMAGE", "KINDS", "PROJECT", "TASKS", "Path", "run_locally", "parse_value"}
)
PY_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "json": "str"}


@dataclass(frozen=True)
class Names:
    """The names pipeline.py gives the steps, their tasks and arguments."""

    component: dict[str, str]  # step -> component function
    task: dict[str, str]  # step -> KFP task name (what kfp.local names its output folders)

    @staticmethod
    def of(spec: PipelineSpec) -> Names:
        component = {
            s.name: (s.name if s.name not in MODULE_NAMES else f"{s.name}_step") for s in spec.steps
        }
        # kfp names a task after its component: lower case, runs of other characters as `-`.
        task = {s: re.sub(r"[^a-z0-9]+", "-", c.lower()).strip("-") for s, c in component.items()}
        return Names(component, task)


def upstream_arg(step: str) -> str:
    return f"{step}_folder"


def check_names(spec: PipelineSpec) -> None:
    """A parameter may not take a name nb2prod gives a pipeline parameter or a component
    argument: refused (exit 2) with the fix, before anything is written."""
    taken = {TRACKING: "the tracking URI", PROJECT: "the project folder"}
    taken |= {STEP_OUT: "a step's output folder", METRICS_OUT: "a step's metrics"}
    taken |= {upstream_arg(s.name): f"step {s.name}'s folder" for s in spec.steps}
    for name in spec.defaults:
        if name in taken:
            raise Nb2prodError(
                f"{spec.path}: the parameter {name!r} has the name the Kubeflow pipeline gives "
                f"{taken[name]}. Nothing was written. Fix: rename the parameter in the "
                f"notebook's parameters cell, then `nb2prod export {spec.notebook}` and compile "
                "the new version."
            )


def py(value: object) -> str:
    """A Python literal of a parameter value (str, int, float or bool)."""
    if isinstance(value, str):
        if '"' in value and "'" not in value:
            return repr(value)  # single quotes, as ruff and black write it
        return json.dumps(value, ensure_ascii=False)  # also a valid Python string literal
    return repr(value)


def _default(value: object, kind: str) -> str:
    return py(json_default(value) if kind == "json" else value)


def _values(params: list[str], kinds: dict[str, str], indent: str) -> Iterator[str]:
    """``values = {...}``: a component's parameters by name, JSON ones decoded."""
    items = [f"{py(p)}: json.loads({p})" if kinds[p] == "json" else f"{py(p)}: {p}" for p in params]
    yield from _wrapped("values = {", items, "}", indent, literal=True)


def _wrapped(
    head: str, items: list[str], tail: str, indent: str, literal: bool = False
) -> Iterator[str]:
    """``head`` + items + ``tail`` as ruff (and black) format it in 100 columns: on one line,
    else (a call's arguments) the items on one line of their own, else one item a line."""
    joined = ", ".join(items)
    if len(f"{indent}{head}{joined}{tail}") <= 100:
        yield f"{indent}{head}{joined}{tail}"
        return
    yield f"{indent}{head}"
    if not literal and len(f"{indent}    {joined}") <= 100:
        yield f"{indent}    {joined}"
    else:
        for item in items:
            yield f"{indent}    {item},"
    yield f"{indent}{tail}"


def _component_head(name: str, image: str, args: list[str]) -> Iterator[str]:
    base = "IMAGE" if image == "" else py(image)
    yield f"@dsl.component(base_image={base}, install_kfp_package=False)"
    yield f"def {name}("
    for arg in args:
        yield f"    {arg},"
    yield "):"


def _step_component(
    spec: PipelineSpec, step_name: str, kinds: dict[str, str], names: Names, image: str
) -> Iterator[str]:
    step = spec.step(step_name)
    version = version_relpath(spec)
    args = [f"{PROJECT}: str"]
    args += [f"{upstream_arg(u)}: dsl.Input[dsl.Dataset]" for u in step.depends_on]
    args += [f"{p}: {PY_TYPES[kinds[p]]}" for p in step.parameters]
    args += [f"{STEP_OUT}: dsl.Output[dsl.Dataset]", f"{METRICS_OUT}: dsl.Output[dsl.Metrics]"]
    yield from _component_head(names.component[step.name], image, args)
    yield f'    """Step {step.name} ({step.role}): `nb2prod step` in a run folder of its own."""'
    params = list(step.parameters)
    yield "    import json"
    yield "    import shutil"
    yield "    import subprocess"
    yield "    import sys"
    yield "    import tempfile"
    yield "    from pathlib import Path"
    if params:
        yield ""
        yield "    import yaml"
    yield ""
    yield "    with tempfile.TemporaryDirectory() as work:"
    yield '        run = Path(work, "run")'
    for up in step.depends_on:
        yield f'        shutil.copytree({upstream_arg(up)}.path, run / "steps" / {py(up)})'
    command = ["sys.executable", '"-m"', '"nb2prod"', '"step"', py(version), py(step.name)]
    command += ['"--run-dir"', "str(run)"]
    if params:
        yield from _values(params, kinds, "        ")
        yield '        params = Path(work, "params.yaml")'
        yield "        # sort_keys=False: a dict parameter keeps its keys' order, as in config.yaml"
        yield "        params.write_text(yaml.safe_dump(values, sort_keys=False))"
        command += ['"-f"', "str(params)"]
    yield from _wrapped("command = [", command, "]", "        ", literal=True)
    yield f"        subprocess.run(command, cwd={PROJECT}, check=True)  # logs: the task's"
    yield f'        folder = run / "steps" / {py(step.name)}'
    yield f"        shutil.copytree(folder, {STEP_OUT}.path)"
    yield '        found = folder / "metrics.json"  # {metric: number}, if the step logs any'
    yield (
        "        for name, value in (json.loads(found.read_text()) if found.exists() else {})"
        ".items():"
    )
    yield f"            {METRICS_OUT}.log_metric(name, float(value))"


def _track_component(spec: PipelineSpec) -> Iterator[str]:
    args = [f"{PROJECT}: str", f"{TRACKING}: str"]
    args += [f"{upstream_arg(s.name)}: dsl.Input[dsl.Dataset]" for s in spec.steps]
    yield from _component_head("track", "", args)
    yield '    """The steps\' folders as one run folder, logged to MLflow by `nb2prod track`."""'
    yield "    import os"
    yield "    import shutil"
    yield "    import subprocess"
    yield "    import sys"
    yield "    import tempfile"
    yield "    from pathlib import Path"
    yield ""
    yield "    with tempfile.TemporaryDirectory() as work:"
    yield '        run = Path(work, "run")'
    for s in spec.steps:
        yield f'        shutil.copytree({upstream_arg(s.name)}.path, run / "steps" / {py(s.name)})'
    yield "        # run.json is made of the steps' records (step.json): what each ran with."
    yield f"        env = dict(os.environ, MLFLOW_TRACKING_URI={TRACKING})"
    yield '        command = [sys.executable, "-m", "nb2prod", "track", str(run)]'
    yield f"        subprocess.run(command, cwd={PROJECT}, env=env, check=True)"


def _settings_lines(var: str, s: StepSettings) -> Iterator[str]:
    """Kale's tags of a step, applied to its task."""
    if not s.cache:
        yield f"    {var}.set_caching_options(False)  # cache:disabled"
    for resource, amount in s.limits.items():
        yield f"    {var}.set_{resource}_limit({py(amount)})"
    if s.accelerator:
        kind, count = s.accelerator
        yield f"    {var}.set_accelerator_type({py(kind)}).set_accelerator_limit({py(count)})"
    for secret in s.secrets:
        env = f"{{{py(secret.key)}: {py(secret.env)}}}"
        yield from _wrapped(
            "kubernetes.use_secret_as_env(",
            [var, f"secret_name={py(secret.name)}", f"secret_key_to_env={env}"],
            ")",
            "    ",
        )
    for key, value in s.annotations.items():
        yield from _wrapped(
            "kubernetes.add_pod_annotation(", [var, py(key), py(value)], ")", "    "
        )
    for key, value in s.labels.items():
        yield from _wrapped("kubernetes.add_pod_label(", [var, py(key), py(value)], ")", "    ")


def needs_kubernetes(settings: dict[str, StepSettings]) -> bool:
    """Whether a step's tags need kfp-kubernetes (secrets, pod annotations or labels)."""
    return any(s.secrets or s.annotations or s.labels for s in settings.values())


def pipeline_name(spec: PipelineSpec) -> str:
    """KFP's pipeline name: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", f"{spec.name}-v{spec.version}".lower()).strip("-")


def render_pipeline(
    spec: PipelineSpec,
    settings: dict[str, StepSettings],
    kinds: dict[str, str],
    image: str,
    project: str | None,
    location: str,
) -> str:
    """pipeline.py. ``image``: the steps' image unless a step names its own; ``project``: the
    project root relative to pipeline.py (None when it was written outside the project);
    ``location``: the folder pipeline.py is in, as the user names it from the project root."""
    names = Names.of(spec)
    version = version_relpath(spec)
    kube = needs_kubernetes(settings)
    lines = [
        f'"""Pipeline {spec.name} v{spec.version} for Kubeflow Pipelines (KFP v2).',
        "",
        f"From {version}, exported from {spec.notebook}. Generated by nb2prod {__version__}",
        "(`nb2prod compile --target kfp`): do not edit; export and compile again.",
        "",
        "Each step is a component running `nb2prod step` in the image built from the Dockerfile",
        "beside; the steps' folders pass between them as Dataset artifacts, their metrics as",
        "Metrics. When the parameter mlflow_tracking_uri is set, a last task logs the run to",
        "MLflow with `nb2prod track`. README.md beside says how to build, test and submit.",
        "",
        "Compile pipeline.yaml again; run the pipeline here, under kfp.local, and print the",
        "metrics of its steps:",
        "",
        f"    python {location}/pipeline.py",
        f"    python {location}/pipeline.py --local [-p KEY=VALUE]... [--mlflow-tracking-uri URI]",
        '"""',
        "",
        "import argparse",
        "import json",
        "import re",
        "import sys",
        "from pathlib import Path",
        "",
        "from kfp import compiler, dsl, kubernetes  # kubernetes: the kfp-kubernetes package"
        if kube
        else "from kfp import compiler, dsl",
    ]
    lines += [
        "",
        f"IMAGE = {py(image)}  # built from the Dockerfile beside (or `--image` at compile)",
        "HERE = Path(__file__).resolve().parent",
        "# The project (the folder holding pipelines/): in the image, /project; here, as compiled.",
        f"PROJECT = {'None' if project is None else f'HERE / {py(project)}'}",
        "# Parameters and how `--local -p KEY=VALUE` reads them (json: text holding JSON).",
    ]
    kinds_items = [f"{py(p)}: {py(k)}" for p, k in kinds.items()]
    lines += _wrapped("KINDS = {", kinds_items, "}", "", literal=True)
    lines.append("# Step -> its task's name (kfp.local's output folders are named after it).")
    tasks_items = [f"{py(s)}: {py(t)}" for s, t in names.task.items()]
    lines += _wrapped("TASKS = {", tasks_items, "}", "", literal=True)
    for step in spec.steps:
        own = settings[step.name].image
        lines += ["", ""]
        lines += _step_component(spec, step.name, kinds, names, "" if own == image else own)
    lines += ["", ""]
    lines += _track_component(spec)
    lines += ["", ""]
    description = f"{spec.name} v{spec.version}, exported by nb2prod from {spec.notebook}"
    lines += _wrapped(
        "@dsl.pipeline(",
        [f"name={py(pipeline_name(spec))}", f"description={py(description)}"],
        ")",
        "",
    )
    lines.append("def pipeline(")
    for p, k in kinds.items():
        lines.append(f"    {p}: {PY_TYPES[k]} = {_default(spec.defaults[p], k)},")
    lines.append(f'    {TRACKING}: str = "",')
    lines.append(f"    {PROJECT}: str = {py(PROJECT_IN_IMAGE)},")
    lines.append("):")
    for step in spec.steps:
        var = f"{step.name}_task"
        call = [f"{PROJECT}={PROJECT}"]
        call += [f'{upstream_arg(u)}={u}_task.outputs["{STEP_OUT}"]' for u in step.depends_on]
        call += [f"{p}={p}" for p in step.parameters]
        lines += _wrapped(f"{var} = {names.component[step.name]}(", call, ")", "    ")
        lines += _settings_lines(var, settings[step.name])
    lines.append(f'    with dsl.If({TRACKING} != "", name="tracking"):')
    call = [f"{PROJECT}={PROJECT}", f"{TRACKING}={TRACKING}"]
    call += [f'{upstream_arg(s.name)}={s.name}_task.outputs["{STEP_OUT}"]' for s in spec.steps]
    lines += _wrapped("track_task = track(", call, ")", "        ")
    lines.append("        track_task.set_caching_options(False)  # logging is never skipped")
    lines += ["", ""]
    lines += _MAIN.splitlines()
    return "\n".join(lines) + "\n"


# The same for every pipeline: compile, or run locally and print the metrics.
_MAIN = '''\
def parse_value(key: str, text: str) -> object:
    """`-p KEY=VALUE`'s value, read as YAML (as `nb2prod run -p` reads it), typed for KEY."""
    import yaml

    kind = KINDS[key]
    value = yaml.safe_load(text) if text.strip() else ""
    if kind == "json":
        return json.dumps(value)
    if kind == "str":
        return text if not isinstance(value, str) else value
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind in ("int", "float") and type(value).__name__ == kind:
        return value
    raise ValueError(f"-p {key}={text}: the value of {key} must be of type {kind}")


def run_locally(arguments: dict, project: Path, outputs: Path) -> int:
    """Run the pipeline under kfp.local in this Python (no Docker), then print each step's
    metrics from its output folder. The exit code: 1 when a task failed (its log says why)."""
    import warnings

    from kfp import local

    # Every step "uses a custom base image": here it runs in this Python, on purpose.
    warnings.filterwarnings("ignore", "You may be attemping to run a task", RuntimeWarning)
    outputs.mkdir(parents=True, exist_ok=True)
    before = set(outputs.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(outputs))
    try:
        pipeline(**arguments, nb2prod_project=str(project))
    except RuntimeError as exc:  # kfp.local's "finished with status FAILURE", in colours
        print(re.sub(r"\\x1b\\[[0-9;]*m", "", f"{exc} Its log is above."), file=sys.stderr)
        return 1
    (run,) = set(outputs.iterdir()) - before
    for step, task in TASKS.items():
        found = run / task / "step_folder" / "metrics.json"
        values = json.loads(found.read_text()) if found.exists() else {}
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        print(f"{step}: {shown or 'no metrics'}")
    print(f"Outputs: {run}")
    return 0


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--local", action="store_true", help="run the pipeline here, under kfp.local")
    add("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter")
    add("--mlflow-tracking-uri", default="", metavar="URI", help="log the run to MLflow there")
    add("--project", type=Path, default=PROJECT, metavar="DIR", help="the project's folder")
    add("--outputs", type=Path, metavar="DIR", help="kfp.local's pipeline root")
    args = parser.parse_args(argv)
    if not args.local:
        compiler.Compiler().compile(pipeline, str(HERE / "pipeline.yaml"))
        print(f"Compiled {HERE / 'pipeline.yaml'}")
        return 0
    if args.project is None:
        parser.error("--local needs --project DIR, the folder holding pipelines/")
    arguments = {"mlflow_tracking_uri": args.mlflow_tracking_uri}
    for assignment in args.param:
        key, sep, text = assignment.partition("=")
        if not sep or key not in KINDS:
            parser.error(f"-p {assignment}: expected KEY=VALUE, KEY one of {', '.join(KINDS)}")
        try:
            arguments[key] = parse_value(key, text)
        except ValueError as exc:
            parser.error(str(exc))
    project = args.project.resolve()
    return run_locally(arguments, project, args.outputs or project / ".nb2prod" / "kfp-local")


if __name__ == "__main__":
    sys.exit(main())'''
