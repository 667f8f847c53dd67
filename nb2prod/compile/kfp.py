"""``nb2prod compile --target kfp``: a version as a Kubeflow Pipelines v2 pipeline.

Writes ``pipeline.py`` (:mod:`.kfp_source`), ``pipeline.yaml`` compiled from it by kfp's own
compiler (``python pipeline.py``, in a subprocess: kfp is never imported here), the image's
``Dockerfile`` (and its ``Dockerfile.dockerignore``) and a README with the commands to build,
test and submit, all or nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from .._version import __version__
from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from . import CompileResult
from .common import (
    WHEELS,
    StepSettings,
    check_out,
    default_image,
    dockerfile,
    dockerignore,
    json_default,
    param_kinds,
    project_root,
    step_settings,
    version_relpath,
    write_outputs,
)
from .kfp_source import (
    PROJECT,
    PROJECT_IN_IMAGE,
    TRACKING,
    check_names,
    needs_kubernetes,
    pipeline_name,
    py,
    render_pipeline,
)

FILES = ("Dockerfile", "Dockerfile.dockerignore", "README.md", "pipeline.py", "pipeline.yaml")
# What kfp's PipelineTask accepts (narrower than Kubernetes: no exponents, no decimal memory).
KFP_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?")
KFP_MEMORY = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?")
_SMALLER = {"Ei": "Pi", "Pi": "Ti", "Ti": "Gi", "Gi": "Mi", "Mi": "Ki"}


def _installed(module: str, fix: str, spec: PipelineSpec) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise Nb2prodError(
            f"{spec.path}: compiling for Kubeflow Pipelines needs the {module} package, which is "
            f"not installed in this Python ({sys.executable}). Nothing was written. Fix: {fix}, "
            "then compile again."
        )


def _memory_hint(amount: str) -> str:
    """A whole-number way to write ``amount`` that kfp accepts, if there is an obvious one."""
    found = re.fullmatch(r"([0-9]*\.[0-9]+)(Ei|Pi|Ti|Gi|Mi)", amount)
    if found:
        scaled = float(found[1]) * 1024
        if scaled.is_integer():
            return f" (e.g. {int(scaled)}{_SMALLER[found[2]]})"
    return ""


def _check_kfp_limits(spec: PipelineSpec, settings: dict[str, StepSettings]) -> None:
    """Kubernetes quantities kfp's task API refuses, refused here with the way to write them."""
    for step, s in settings.items():
        for resource, amount in s.limits.items():
            tag = f"limit:{resource}:{amount}"
            if resource == "cpu" and not KFP_CPU.fullmatch(amount):
                problem, fix = (
                    "Kubeflow Pipelines takes cpu as a number or millicores",
                    "2, 0.5 or 500m",
                )
            elif resource == "memory" and not KFP_MEMORY.fullmatch(amount):
                problem = "Kubeflow Pipelines takes memory as a whole number with a unit"
                fix = "4Gi or 512Mi" + _memory_hint(amount)
            elif resource not in ("cpu", "memory"):
                problem, fix = f"Kubeflow Pipelines cannot set a {resource} limit", "drop the tag"
            else:
                continue
            raise Nb2prodError(
                f"{spec.path}: step {step!r} has the tag `{tag}` ({spec.notebook}), but "
                f"{problem}. Nothing was written. Fix: write it as {fix} in the notebook, then "
                f"`nb2prod export {spec.notebook}` and compile the new version."
            )


def _where(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` (POSIX), or None when it is not inside it."""
    resolved = Path(os.path.abspath(path))
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return None


def _compile_yaml(source: str, spec: PipelineSpec) -> str:
    """pipeline.yaml, as `python pipeline.py` compiles it with kfp's own compiler."""
    with tempfile.TemporaryDirectory(prefix="nb2prod-kfp-") as work:
        script = Path(work, "pipeline.py")
        script.write_text(source, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=300
        )
        compiled = Path(work, "pipeline.yaml")
        if done.returncode != 0 or not compiled.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Nb2prodError(
                f"{spec.path}: kfp's compiler refused the generated pipeline: {tail[0]} Nothing "
                "was written. Fix: check that kfp (and kfp-kubernetes) are at 2.17 or later "
                "(`pip install 'nb2prod[kfp]'`); if they are, report this as an nb2prod bug."
            )
        return compiled.read_text(encoding="utf-8")


def compile_kfp(spec: PipelineSpec, out: Path, image: str | None) -> CompileResult:
    """Write ``spec`` as a KFP v2 pipeline to ``out``. Raises Nb2prodError (exit 2), having
    written nothing, for a malformed tag, a clash of names, an ``out`` that cannot be
    replaced, or kfp missing."""
    settings = step_settings(spec, image)  # checks --image and each step's tags first
    _check_kfp_limits(spec, settings)
    kinds = param_kinds(spec)
    check_names(spec)
    check_out(out, FILES)
    _installed("kfp", "pip install 'nb2prod[kfp]'", spec)
    if needs_kubernetes(settings):
        why = "(a step has secret:, annotation: or label: tags)"
        _installed("kfp.kubernetes", f"pip install kfp-kubernetes {why}", spec)
    root = project_root(spec)
    where = _where(out, root)
    location = where if where is not None else "<out>"
    project = None if where is None else os.path.relpath(root, root / where).replace(os.sep, "/")
    steps_image = image or default_image(spec)
    source = render_pipeline(spec, settings, kinds, steps_image, project, location)
    files = {
        "pipeline.py": source,
        "pipeline.yaml": _compile_yaml(source, spec),
        "Dockerfile": dockerfile(
            spec,
            location=f"{location}/Dockerfile",
            extra_requirements=(f"kfp=={metadata.version('kfp')}",),
            image=steps_image,
        ),
        "Dockerfile.dockerignore": dockerignore(spec),
        "README.md": readme(spec, settings, kinds, steps_image, location, where is not None),
    }
    names = write_outputs(out, files)
    return CompileResult(
        target="kfp",
        out=out,
        files=names,
        next_steps=(
            f"python {location}/pipeline.py --local   # test it here, under kfp.local",
            f"docker build -f {location}/Dockerfile -t {steps_image} .   # from the project root",
            f"then upload {location}/pipeline.yaml to Kubeflow Pipelines ({location}/README.md)",
        ),
    )


def _value(value: object, kind: str) -> str:
    return _cell(f"`{json_default(value)}`" if kind == "json" else f"`{value!r}`")


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a `|` would end the cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def readme(
    spec: PipelineSpec,
    settings: dict[str, StepSettings],
    kinds: dict[str, str],
    image: str,
    location: str,
    inside: bool,
) -> str:
    version = version_relpath(spec)
    name = pipeline_name(spec)
    project = "" if inside else " --project PATH/TO/PROJECT"
    lines = [
        f"# {spec.name} v{spec.version} on Kubeflow Pipelines",
        "",
        f"Generated by nb2prod {__version__} from `{version}` (notebook `{spec.notebook}`) by",
        f"`nb2prod compile {version} --target kfp`. Do not edit: export and compile again.",
        "",
        "| file | what it is |",
        "| --- | --- |",
        "| `pipeline.py` | the pipeline in the KFP v2 DSL: one component per step, each running "
        "`nb2prod step`; step folders pass as `Dataset` artifacts, metrics as `Metrics` |",
        f"| `pipeline.yaml` | compiled from it by kfp {metadata.version('kfp')} "
        "(`python pipeline.py` compiles it again): what you upload |",
        f"| `Dockerfile` | the image the steps run in, `{image}`: the version's pinned "
        "requirements, installed at build time, and the version folder at `/project` |",
        "| `Dockerfile.dockerignore` | keeps the build context to what the image copies |",
        "",
        "## Steps",
        "",
        "| step | after | parameters | on the cluster |",
        "| --- | --- | --- | --- |",
    ]
    for step in spec.steps:
        after = ", ".join(step.depends_on) or "-"
        params = ", ".join(step.parameters) or "-"
        engine = _cell(_engine_text(settings[step.name], image))
        lines.append(f"| `{step.name}` | {after} | {params} | {engine} |")
    lines += [
        "",
        "## Parameters",
        "",
        "Pipeline parameters, typed from `config.yaml` (lists, dicts and None as JSON text):",
        "",
        "| name | type | default |",
        "| --- | --- | --- |",
    ]
    for p, k in kinds.items():
        lines.append(
            f"| `{p}` | {'JSON text' if k == 'json' else k} | {_value(spec.defaults[p], k)} |"
        )
    lines += [
        f'| `{TRACKING}` | str | `""`: not tracked; else the MLflow tracking URI the last task '
        "logs the run to, as `nb2prod run` logs its own |",
        f"| `{PROJECT}` | str | `{PROJECT_IN_IMAGE}`: where the image holds the project |",
        "",
        "## 1. Test it here, before you submit",
        "",
        "`--local` runs the pipeline with `kfp.local` (the `SubprocessRunner`, in this Python: no",
        "cluster, no Docker), one task at a time, and prints each step's metrics. Run it from the",
        "project root (the folder holding `pipelines/`):",
        "",
        "```",
        f"python {location}/pipeline.py --local{project}",
        f"python {location}/pipeline.py --local{project} -p KEY=VALUE "
        "--mlflow-tracking-uri sqlite:///mlflow.db",
        "```",
        "",
        "## 2. Build and push the image",
        "",
        "nb2prod is not on PyPI: put the wheel of the nb2prod version",
        f"`{version}/requirements.txt` pins into `{WHEELS}/` first. Then, from the project root:",
        "",
        "```",
        f"pip wheel --no-deps -w {WHEELS} PATH/TO/nb2prod-source",
        f"docker build -f {location}/Dockerfile -t REGISTRY/{image} .",
        f"docker push REGISTRY/{image}",
        "```",
        "",
        f"The pipeline names the image `{image}`; under another name, compile again with",
        f"`nb2prod compile {version} --target kfp --image REGISTRY/{image}`.",
        "",
        "## 3. Submit",
        "",
        "With the KFP SDK:",
        "",
        "```python",
        "import kfp",
        "",
        'client = kfp.Client(host="https://KFP-HOST/pipeline")',
        "client.create_run_from_pipeline_package(",
        f'    "{location}/pipeline.yaml",',
        f"    arguments={{{_example_arguments(spec, kinds)}}},",
        f'    run_name="{name}",',
        ")",
        "```",
        "",
        "Or in the Kubeflow Pipelines UI: *Pipelines* > *Upload pipeline*, choose `pipeline.yaml`,",
        "then *Create run* and fill in the parameters.",
        "",
        "## Notes",
        "",
        "- Secrets are referenced by name: the cluster must hold each Kubernetes Secret named in",
        "  the table above (`kubectl create secret generic NAME --from-literal=KEY=...`); no",
        "  value is in these files.",
        "- KFP reuses a task's earlier result when its image and inputs are unchanged; steps",
        "  tagged `cache:disabled` always run, and so does the tracking task. Data files are",
        "  copied into the image: when they change, build it under a new tag.",
        "- A step tagged `image:` runs in that image, which must hold what the Dockerfile installs",
        "  and copies (build it `FROM` this image). `--local` runs every step in this Python.",
        "- `nb2prod_project` is `/project` on the cluster; `--local` sets it to the project here.",
    ]
    return "\n".join(lines) + "\n"


def _engine_text(s: StepSettings, image: str) -> str:
    parts = [f"image `{s.image}`"] if s.image != image else []
    parts += [f"{r} limit {a}" for r, a in s.limits.items()]
    if s.accelerator:
        parts.append(f"{s.accelerator[1]} x {s.accelerator[0]}")
    parts += [f"env {x.env} from secret `{x.name}` key `{x.key}`" for x in s.secrets]
    parts += [f"annotation `{k}`" for k in s.annotations]
    parts += [f"label `{k}={v}`" for k, v in s.labels.items()]
    if not s.cache:
        parts.append("never cached")
    return "; ".join(parts) or "-"


def _example_arguments(spec: PipelineSpec, kinds: dict[str, str]) -> str:
    """A parameter as it is passed at submit time, and the tracking URI."""
    shown = []
    for p, k in list(kinds.items())[:1]:
        value = spec.defaults[p]
        shown.append(f"{py(p)}: {py(json_default(value) if k == 'json' else value)}")
    shown.append(f'"{TRACKING}": "http://MLFLOW-HOST:5000"')
    return ", ".join(shown)
