"""The environment a run meets, against the one its version was exported in.

The installed version of each distribution a step imports joins that step's cache key, so an
upgraded library re-runs the steps that use it instead of serving their old results. Every
difference from the version's ``requirements.txt`` (and its Python version) is recorded in
run.json, printed in the summary and tagged in MLflow; ``--strict-env`` refuses to run with
any, before anything runs.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..errors import Nb2prodError
from ..pipeline import PipelineSpec


@dataclass(frozen=True)
class EnvironmentCheck:
    python: str
    installed: dict[str, str | None]  # every pinned distribution -> its installed version
    differences: list[str] = field(default_factory=list)  # in words, one per difference
    requirements: list[str] = field(default_factory=list)  # the version's pins

    def step_versions(self, spec: PipelineSpec, step: str) -> dict[str, str]:
        """What joins ``step``'s cache key: the installed version of each distribution it
        imports (``"missing"`` for one that is not installed)."""
        if spec.environment is None:
            return {}
        names = spec.environment.packages.get(step, ())
        return {n: self.installed.get(n) or "missing" for n in names}

    def to_json(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "differences": list(self.differences),
            "requirements": list(self.requirements),
        }


def check_environment(spec: PipelineSpec, strict: bool = False) -> EnvironmentCheck | None:
    """None for a version exported before nb2prod recorded its environment. ``strict``: raise
    Nb2prodError (exit 2) listing every difference."""
    env = spec.environment
    if env is None:
        if strict:
            raise Nb2prodError(
                f"--strict-env: {spec.name} v{spec.version} was exported before nb2prod recorded "
                "the environment, so there is nothing to check against. Fix: export the notebook "
                "again with `nb2prod export --pin-env`, or run without --strict-env."
            )
        return None
    python = platform.python_version()
    installed: dict[str, str | None] = {}
    differences = []
    if python != env.python:
        differences.append(f"Python {python} installed, exported with {env.python}")
    for name, pinned in sorted(env.pins.items(), key=lambda kv: kv[0].lower()):
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            installed[name] = None
        if installed[name] is None:
            differences.append(f"{name} not installed, exported with {pinned}")
        elif installed[name] != pinned:
            differences.append(f"{name} {installed[name]} installed, exported with {pinned}")
    if strict and differences:
        listed = "".join(f"\n  {d}" for d in differences)
        raise Nb2prodError(
            f"--strict-env: the environment differs from {spec.name} v{spec.version}'s "
            f"requirements.txt:{listed}\nFix: `pip install -r {spec.path / 'requirements.txt'}`, "
            "or export again with `nb2prod export --pin-env` to make a version for this "
            "environment."
        )
    return EnvironmentCheck(python, installed, differences, env.requirements())
