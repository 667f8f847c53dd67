"""The environment a version is exported in: what each step imports, as installed distributions.

Each step module's top-level imports are resolved to the distributions that provide them
(``importlib.metadata.packages_distributions``); the version folder gets them per step in
``pipeline.yaml`` and pinned in ``requirements.txt`` (with nb2prod, papermill and ipykernel,
which run the steps), with the Python version. Standard-library modules and the project's own
modules belong to no distribution and are left out.
"""

from __future__ import annotations

import ast
import platform
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, version

from ..version_folder import EnvironmentSpec

RUNNERS = ("nb2prod", "papermill", "ipykernel")  # what runs every step, whatever it imports


def top_level_imports(module: str) -> set[str]:
    """Top-level names of the absolute imports in a step module's text."""
    try:
        tree = ast.parse(module)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def capture(step_modules: dict[str, str]) -> EnvironmentSpec:
    """The environment of this interpreter for steps with these module texts (by step)."""
    providers = packages_distributions()
    packages: dict[str, tuple[str, ...]] = {}
    for step, text in step_modules.items():
        dists = {
            dist
            for name in top_level_imports(text) - set(sys.stdlib_module_names)
            for dist in providers.get(name, ())
        }
        dists.discard("nb2prod")  # its version is part of every cache key already
        packages[step] = tuple(sorted(dists, key=str.lower))
    pins = {}
    for dist in sorted({d for ds in packages.values() for d in ds} | set(RUNNERS)):
        try:
            pins[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return EnvironmentSpec(platform.python_version(), packages, pins)
