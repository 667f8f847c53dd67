"""What every compile target shares: a version's per-step engine settings (Kale 2.x tags),
checked; its parameters' kinds; its image's Dockerfile; and writing the output folder whole.

Standard library and the shared modules only: generators stay free of the engines' packages.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .._version import __version__
from ..errors import Nb2prodError
from ..pipeline import PipelineSpec
from ..version_folder import REMOTE_PREFIXES, StepSpec, is_version_dir


@dataclass(frozen=True)
class SecretRef:
    """The key ``key`` of the Kubernetes Secret ``name``, as the environment variable ``env``:
    a reference by name only; the value never leaves the cluster."""

    name: str
    key: str
    env: str


@dataclass(frozen=True)
class StepSettings:
    """A step's Kale 2.x engine tags (``StepSpec.engine``), validated."""

    image: str  # its `image:` tag, else --image, else default_image(spec)
    limits: dict[str, str]  # Kubernetes resource limits other than accelerators: cpu, memory...
    accelerator: tuple[str, str] | None  # e.g. ("nvidia.com/gpu", "1")
    secrets: tuple[SecretRef, ...]
    annotations: dict[str, str]
    labels: dict[str, str]
    cache: bool  # False for cache:disabled


# --- Kubernetes grammar (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/
# quantity/ and the names of resources, labels and images), as regexes: no kubernetes import. ---
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# Limits are never negative, so the optional sign is `+` only.
QUANTITY = re.compile(rf"\+?{_NUMBER}(?:Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?[0-9]+)?")
WHOLE = re.compile(r"[0-9]+")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
# An extended resource (an accelerator): a domain-qualified name such as nvidia.com/gpu.
EXTENDED_RESOURCE = re.compile(
    rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})+/[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
KNOWN_ACCELERATORS = ("nvidia.com/gpu", "amd.com/gpu", "intel.com/gpu", "google.com/tpu")
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_IMAGE_PART}(?:/{_IMAGE_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_SUGGEST = {"gpu": "nvidia.com/gpu", "gpus": "nvidia.com/gpu", "mem": "memory", "ram": "memory"}


def default_image(spec: PipelineSpec) -> str:
    """The image ``docker build`` of the Dockerfile written beside is tagged with."""
    # Image names allow single (or double) underscores between letters and digits only.
    name = re.sub(r"_+", "_", spec.name).strip("_") or "pipeline"
    return f"nb2prod-{name}:v{spec.version}"


def project_root(spec: PipelineSpec) -> Path:
    """The folder holding ``pipelines/``: what the notebook's and data files' paths are
    relative to, the build context of the image and its ``/project``."""
    return spec.path.resolve().parents[2]


def version_relpath(spec: PipelineSpec) -> str:
    """``pipelines/<name>/vN``, as `nb2prod step` takes it from the project root."""
    return spec.path.resolve().relative_to(project_root(spec)).as_posix()


# --- a step's engine settings ---------------------------------------------------------------------
def _bad_tag(spec: PipelineSpec, step: StepSpec, tag: str, what: str, fix: str) -> Nb2prodError:
    return Nb2prodError(
        f"{spec.path}: step {step.name!r} has the tag `{tag}` ({spec.notebook}), but {what}. "
        f"Nothing was written. Fix: {fix} in the notebook, then `nb2prod export {spec.notebook}` "
        "and compile the new version."
    )


def _resource_fix(name: str) -> str:
    guess = _SUGGEST.get(name.lower()) or next(
        iter(difflib.get_close_matches(name, STANDARD_RESOURCES + KNOWN_ACCELERATORS, n=1)), None
    )
    known = ", ".join(STANDARD_RESOURCES + KNOWN_ACCELERATORS[:1])
    hint = f"did you mean {guess}? " if guess else ""
    return f"{hint}use a Kubernetes resource ({known} or another vendor's DOMAIN/NAME)"


def _limits(
    spec: PipelineSpec, step: StepSpec, raw: Any
) -> tuple[dict[str, str], tuple[str, str] | None]:
    if raw is None:
        return {}, None
    if not isinstance(raw, dict):
        raise _bad_tag(spec, step, "limit:...", "it is not a map of resources", "re-tag the step")
    limits: dict[str, str] = {}
    accelerators: list[tuple[str, str]] = []
    for name, amount in sorted(raw.items()):
        tag = f"limit:{name}:{amount}"
        if not isinstance(name, str) or not isinstance(amount, str):
            raise _bad_tag(spec, step, tag, "it is not RESOURCE:AMOUNT", "write limit:cpu:2")
        if name in STANDARD_RESOURCES:
            if not QUANTITY.fullmatch(amount):
                raise _bad_tag(
                    spec,
                    step,
                    tag,
                    f"{amount!r} is not a Kubernetes quantity",
                    f"write a number with an optional unit, e.g. limit:{name}:"
                    + ("500m or limit:cpu:2" if name == "cpu" else "4Gi"),
                )
            limits[name] = amount
        elif EXTENDED_RESOURCE.fullmatch(name):
            if not WHOLE.fullmatch(amount) or int(amount) == 0:
                raise _bad_tag(
                    spec,
                    step,
                    tag,
                    f"{amount!r} is not a whole number of {name} (accelerators come whole)",
                    f"write a positive whole number, e.g. limit:{name}:1",
                )
            accelerators.append((name, str(int(amount))))
        else:
            raise _bad_tag(
                spec, step, tag, f"{name!r} is not a Kubernetes resource", _resource_fix(name)
            )
    if len(accelerators) > 1:
        names = " and ".join(a for a, _ in accelerators)
        raise _bad_tag(
            spec,
            step,
            f"limit:{accelerators[1][0]}:{accelerators[1][1]}",
            f"it asks for two kinds of accelerator ({names}); a step's pod gets one",
            "keep one accelerator limit on the step",
        )
    return limits, (accelerators[0] if accelerators else None)


def _secrets(spec: PipelineSpec, step: StepSpec, raw: Any) -> tuple[SecretRef, ...]:
    found = []
    for item in raw or []:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item.get(k) for k in ("name", "key", "env")
        ):
            raise _bad_tag(
                spec, step, "secret:...", "it is not SECRET:KEY:ENV_VAR", "re-tag the step"
            )
        found.append(SecretRef(item["name"], item["key"], item["env"]))
    envs = [s.env for s in found]
    twice = sorted({e for e in envs if envs.count(e) > 1})
    if twice:
        raise _bad_tag(
            spec,
            step,
            f"secret:...:{twice[0]}",
            f"two secrets set the environment variable {twice[0]}",
            "give each secret its own variable",
        )
    return tuple(sorted(found, key=lambda s: (s.env, s.name, s.key)))


def _metadata(spec: PipelineSpec, step: StepSpec, kind: str, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise _bad_tag(spec, step, f"{kind}:...", "it is not KEY:VALUE", "re-tag the step")
    for key, value in raw.items():
        tag = f"{kind}:{key}:{value}"
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.fullmatch(name) or len(prefix) > 253:
            raise _bad_tag(
                spec,
                step,
                tag,
                f"{key!r} is not a Kubernetes {kind} key (at most 63 characters after the "
                "optional DOMAIN/)",
                f"shorten the {kind}'s name",
            )
        if kind == "label" and not _LABEL_VALUE.fullmatch(value):
            raise _bad_tag(
                spec,
                step,
                tag,
                f"{value!r} is not a Kubernetes label value (at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit)",
                "shorten the label's value, or use an annotation: for free text",
            )
    return dict(sorted(raw.items()))


def check_image(image: str, where: str) -> str:
    """``image`` if it is a container image reference; else Nb2prodError naming ``where``."""
    if not IMAGE.fullmatch(image) or len(image) > 255:
        raise Nb2prodError(
            f"{where}: {image!r} is not a container image reference. Nothing was written. "
            "Fix: give one like registry.example.com/team/image:tag (lower-case name)."
        )
    return image


def step_settings(spec: PipelineSpec, image: str | None) -> dict[str, StepSettings]:
    """Each step's engine settings, by step name in run order. Raises Nb2prodError (exit 2)
    naming the step, the tag and the fix when a tag names a malformed resource or value."""
    default = check_image(image, "--image") if image else default_image(spec)
    out = {}
    for step in spec.steps:
        engine = step.engine
        own = engine.get("image")
        if own is not None and (not isinstance(own, str) or not IMAGE.fullmatch(own)):
            raise _bad_tag(
                spec,
                step,
                f"image:{own}",
                f"{own!r} is not a container image reference",
                "write image:REGISTRY/NAME:TAG (lower-case name)",
            )
        limits, accelerator = _limits(spec, step, engine.get("limit"))
        out[step.name] = StepSettings(
            image=own or default,
            limits=limits,
            accelerator=accelerator,
            secrets=_secrets(spec, step, engine.get("secret")),
            annotations=_metadata(spec, step, "annotation", engine.get("annotation")),
            labels=_metadata(spec, step, "label", engine.get("label")),
            cache=step.cache,
        )
    return out


# --- parameters -----------------------------------------------------------------------------------
def param_kind(value: Any) -> str:
    """How an engine passes a parameter: int, float, bool and str as themselves; lists, dicts
    and None as JSON text (engines turn a list's ints into floats), decoded in the task."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def param_kinds(spec: PipelineSpec) -> dict[str, str]:
    """Each parameter's kind ("int", "float", "bool", "str" or "json"), in config.yaml's order.
    Raises Nb2prodError for a default an engine cannot carry (a float that is not finite)."""
    kinds = {}
    for name, value in spec.defaults.items():
        bad = [v for v in _leaves(value) if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise Nb2prodError(
                f"{spec.path}: the parameter {name!r} defaults to {value!r}; engines pass "
                "parameters as JSON, which has no infinity or NaN. Nothing was written. Fix: "
                "give it a finite default in the notebook's parameters cell (use None for "
                "'no limit'), then export and compile the new version."
            )
        kinds[name] = param_kind(value)
    return kinds


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def json_default(value: Any) -> str:
    """A json-kind parameter's default, as the text the engine passes."""
    return json.dumps(value, sort_keys=False, ensure_ascii=False)


# --- the image ------------------------------------------------------------------------------------
WHEELS = "build/wheels"  # where the Dockerfile looks for an nb2prod wheel (relative to the project)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._@+=,/-]+")
_QUOTABLE_PATH = re.compile(r"[^\x00-\x1f\x7f$\\\"*?\[\]]+")


@dataclass(frozen=True)
class DataCopy:
    """A data file or folder a step reads, as the image gets it."""

    path: str  # relative to the project root (as the notebook wrote it when not copied)
    steps: tuple[str, ...]
    note: str = ""  # why it is not copied


def data_copies(spec: PipelineSpec) -> tuple[DataCopy, ...]:
    """The local data files the steps read, relative to the project root (where the notebook's
    folder is), sorted; remote ones (s3://...) are read at run time and not listed; those that
    cannot be copied into the image (absolute, or outside the project) come with a note."""
    notebook_dir = PurePosixPath(spec.notebook).parent
    readers: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for step in spec.steps:
        for data in step.data:
            if data.path.startswith(REMOTE_PREFIXES):
                continue
            if os.path.isabs(data.path) or data.path.startswith("~"):
                key, note = data.path, "absolute: provide it in the image or mount it"
            else:
                rel = os.path.normpath((notebook_dir / data.path).as_posix())
                key = PurePosixPath(rel).as_posix()
                note = (
                    "outside the project folder (the build context): provide it in the image "
                    "or mount it"
                    if key == ".." or key.startswith("../")
                    else ""
                )
            if not note and not _QUOTABLE_PATH.fullmatch(key):
                note = "its name has characters a Dockerfile COPY cannot take: rename it"
            readers.setdefault(key, []).append(step.name)
            if note:
                notes[key] = note
    return tuple(DataCopy(k, tuple(readers[k]), notes.get(k, "")) for k in sorted(readers))


def _copy(path: str) -> str:
    """``COPY path path`` (a file, or a folder's contents to the same folder)."""
    if _PLAIN_PATH.fullmatch(path):
        return f"COPY {path} {path}"
    quoted = json.dumps(path, ensure_ascii=False)
    return f"COPY [{quoted}, {quoted}]"


def python_minor(spec: PipelineSpec) -> str:
    """The version's Python as major.minor (the image's base), from its recorded environment."""
    env = spec.environment
    found = re.match(r"([0-9]+)\.([0-9]+)", env.python) if env else None
    if env is None or found is None:
        raise Nb2prodError(
            f"{spec.path} was exported before nb2prod recorded its environment (Python "
            "version and pinned requirements.txt), so no image can be built for it. Nothing "
            f"was written. Fix: export the notebook again (`nb2prod export {spec.notebook}`) "
            "and compile the new version."
        )
    return f"{found[1]}.{found[2]}"


def dockerfile(
    spec: PipelineSpec,
    *,
    location: str = "Dockerfile",
    extra_requirements: tuple[str, ...] = (),
    image: str | None = None,
) -> str:
    """The image every step of ``spec`` runs in: the version's Python, its pinned requirements
    installed at build time (``extra_requirements``, such as the engine's own package, too),
    the version folder and the data files its steps read at the same paths under /project.

    ``location``: the Dockerfile's path relative to the project root, for the build command.
    """
    python = python_minor(spec)
    version = version_relpath(spec)
    notebook_dir = PurePosixPath(spec.notebook).parent.as_posix()
    tag = image or default_image(spec)
    extra = "".join(f" {_shell_word(r)}" for r in extra_requirements)
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# The image the steps of pipeline {spec.name} v{spec.version} run in. Generated by "
        f"nb2prod {__version__}",
        "# (`nb2prod compile`): do not edit, compile again. Build it from the project root (the",
        "# folder holding pipelines/), which is the build context:",
        f"#   docker build -f {location} -t {tag} .",
        "# nb2prod itself is not on PyPI: put the wheel of the nb2prod version that",
        f"# {version}/requirements.txt pins into {WHEELS}/ first, e.g.",
        f"#   pip wheel --no-deps -w {WHEELS} PATH/TO/nb2prod-source",
        "# Everything is installed here, at build time, from pinned versions: a step installs",
        "# nothing when it runs.",
        f"FROM python:{python}-slim",
        "ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        "WORKDIR /project",
        f"# `{WHEELS[:-1]}[s]` is a pattern: when that folder is absent, nothing comes from it.",
        f"COPY {version}/requirements.txt {WHEELS[:-1]}[s] /tmp/install/",
        "RUN pip install --no-cache-dir --find-links /tmp/install -r /tmp/install/requirements.txt"
        f"{extra} \\",
        "    && rm -rf /tmp/install",
        "# The version, and the data its steps read, at the paths they have in the project; steps",
        "# run in the notebook's folder, as in `nb2prod run`.",
        f"COPY {version}/ {version}/",
    ]
    for copy in data_copies(spec):
        readers = ", ".join(copy.steps)
        if copy.note:
            lines.append(f"# Not copied, read by {readers}: {json.dumps(copy.path)} ({copy.note})")
        else:
            lines.append(_copy(copy.path))
    if notebook_dir not in ("", "."):
        lines.append(f"RUN mkdir -p {_shell_word(notebook_dir)}")
    return "\n".join(lines) + "\n"


def dockerignore(spec: PipelineSpec) -> str:
    """``Dockerfile.dockerignore`` (read by BuildKit beside the Dockerfile): the build context
    is the whole project, but only what the image copies is sent."""
    lines = [
        "# Generated by nb2prod: send only what the Dockerfile beside copies from the project.",
        "*",
        f"!{version_relpath(spec)}/",
        f"!{WHEELS}/",
    ]
    lines += [f"!{c.path}" for c in data_copies(spec) if not c.note]
    return "\n".join(lines) + "\n"


def _shell_word(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- writing --------------------------------------------------------------------------------------
def check_out(out: Path, names: Iterable[str]) -> None:
    """Refuse (Nb2prodError) an ``out`` that writing ``names`` there must not replace: inside
    a version folder, a file, or a folder holding other files than a compile writes."""
    target = Path(os.path.abspath(out))
    version = next((p for p in [target, *target.parents] if is_version_dir(p)), None)
    if version is not None:
        raise Nb2prodError(
            f"--out {out} is inside the version folder {version}, which is immutable once "
            "exported. Nothing was written. Fix: pass an --out outside pipelines/<name>/vN "
            "(the default is build/<name>-vN-<target>/)."
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise Nb2prodError(
            f"--out {out} is a file. Nothing was written. Fix: pass a folder that does not "
            "exist yet, or the folder an earlier compile wrote."
        )
    # Python's and JupyterLab's own litter (opening pipeline.py in Lab writes a checkpoint)
    ours = {PurePosixPath(n).parts[0] for n in names} | {"__pycache__", ".ipynb_checkpoints"}
    others = sorted(p.name for p in target.iterdir() if p.name not in ours)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise Nb2prodError(
            f"--out {out} already holds files nb2prod compile did not write ({shown}), and "
            "compiling replaces the whole folder. Nothing was written. Fix: pass a new or "
            "empty folder as --out, or move those files away."
        )


def write_outputs(out: Path, files: dict[str, str]) -> tuple[str, ...]:
    """Write ``files`` (relative name -> text) as the folder ``out``: all of them or none
    (written to a temporary sibling, then moved into place). A folder already at ``out`` is
    replaced only when it holds nothing but what a compile writes (:func:`check_out`).
    Returns the sorted names."""
    names = tuple(sorted(files))
    for name in names:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise ValueError(f"not a relative file name: {name!r}")  # a generator's bug
    check_out(out, names)
    target = Path(os.path.abspath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old: Path | None = None
    try:
        for name in names:
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[name], encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the folder from the image build
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "out")
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not target.exists() and (old / "out").exists():
            os.replace(old / "out", target)  # put the earlier output back
        raise Nb2prodError(
            f"--out {out}: cannot write there ({exc.strerror or exc}). Nothing was written. "
            "Fix: free space or fix the permissions, or pass another --out."
        ) from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return names
