"""Reading an exported pipeline version back: manifest, steps and default parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Nb2prodError
from .export import VERSION_DIR, read_manifest, read_version_yaml, versions


@dataclass(frozen=True)
class StepSpec:
    name: str
    role: str
    module: Path
    inputs: tuple[tuple[str, str], ...]  # (name, producing step)
    outputs: tuple[str, ...]
    parameters: tuple[str, ...]
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    version: int
    path: Path  # the version folder
    notebook: str
    notebook_sha256: str
    steps: tuple[StepSpec, ...]  # in run order
    defaults: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> StepSpec:
        return next(s for s in self.steps if s.name == name)

    def downstream(self, names: set[str]) -> set[str]:
        """``names`` and every step that depends on them, directly or not."""
        out = set(names)
        for s in self.steps:
            if set(s.depends_on) & out:
                out.add(s.name)
        return out

    def upstream(self, names: set[str]) -> set[str]:
        out = set(names)
        for s in reversed(self.steps):
            if s.name in out:
                out.update(s.depends_on)
        return out


def resolve_version(path: Path) -> Path:
    """``pipelines/<name>`` -> its latest ``vN``; ``pipelines/<name>/vN`` as it is."""
    if VERSION_DIR.match(path.name):
        if (path / "pipeline.yaml").is_file():
            return path
        raise Nb2prodError(
            f"{path}: no such pipeline version. Fix: list the versions with "
            f"`nb2prod versions {path.parent}`."
        )
    found = versions(path)
    if not found:
        raise Nb2prodError(
            f"{path}: no exported pipeline here. Fix: pass pipelines/<name> (or .../vN) after "
            "running `nb2prod export NOTEBOOK`."
        )
    return path / f"v{found[-1]}"


def load_pipeline(path: Path) -> PipelineSpec:
    vdir = resolve_version(path)
    m: dict[str, Any] = read_manifest(vdir)
    try:
        steps = tuple(
            StepSpec(
                name=str(s["name"]),
                role=str(s["role"]),
                module=vdir / str(s["module"]),
                inputs=tuple((str(i["name"]), str(i["from"])) for i in s.get("inputs", [])),
                outputs=tuple(str(o) for o in s.get("outputs", [])),
                parameters=tuple(str(p) for p in s.get("parameters", [])),
                depends_on=tuple(str(d) for d in s.get("depends_on", [])),
            )
            for s in m["steps"]
        )
        order = [str(n) for n in m["dag"]["order"]]
        steps = tuple(sorted(steps, key=lambda s: order.index(s.name)))
        source = m["source"]
        assert isinstance(source, dict)
        name, version = str(m["name"]), int(str(m["version"]))
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise Nb2prodError(
            f"{vdir / 'pipeline.yaml'}: is not a complete nb2prod manifest ({exc!r}). Fix: "
            "restore it from version control, or export the notebook again."
        ) from None
    defaults = read_version_yaml(vdir, "config.yaml")
    for s in steps:
        if not s.module.is_file():
            raise Nb2prodError(f"{s.module}: step module is missing. Fix: export again.")
    return PipelineSpec(
        name=name,
        version=version,
        path=vdir,
        notebook=str(source.get("notebook", "")),
        notebook_sha256=str(source.get("sha256", "")),
        steps=steps,
        defaults=defaults,
    )
