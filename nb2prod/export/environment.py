"""The environment a version is exported in: what each step imports, as installed distributions.

Each step module's top-level imports are resolved to the distributions that provide them (as
``importlib.metadata.packages_distributions`` would, for the names needed only); the version
folder gets them per step in ``pipeline.yaml`` and pinned in ``requirements.txt`` (with
nb2prod, papermill and ipykernel, which run the steps), with the Python version. Modules of
the standard library and of the project itself belong to no distribution and are left out.
"""

from __future__ import annotations

import ast
import platform
import sys
from importlib.metadata import PackageNotFoundError, distributions, version

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


def providers(names: set[str]) -> dict[str, set[str]]:
    """The distributions that provide each of the top-level module ``names``.

    ``packages_distributions()`` answers the same for every module of every distribution,
    building a path object for each file each RECORD lists: 0.3 s here, ten times an export.
    Only the names the steps import matter, so a distribution without ``top_level.txt`` has
    its RECORD searched as text for them.
    """
    found: dict[str, set[str]] = {name: set() for name in names}
    for dist in distributions():
        top = dist.read_text("top_level.txt")
        if top is not None:
            provided = set(top.split()) & names
        else:
            record = "\n" + (dist.read_text("RECORD") or "")
            provided = {n for n in names if f"\n{n}/" in record or f"\n{n}.py," in record}
        for name in provided if dist.name else ():
            found[name].add(dist.name)
    return found


def capture(step_modules: dict[str, str]) -> EnvironmentSpec:
    """The environment of this interpreter for steps with these module texts (by step)."""
    imports = {
        step: top_level_imports(text) - set(sys.stdlib_module_names)
        for step, text in step_modules.items()
    }
    provided = providers({name for names in imports.values() for name in names})
    packages: dict[str, tuple[str, ...]] = {}
    for step, names in imports.items():
        dists = {dist for name in names for dist in provided[name]}
        dists.discard("nb2prod")  # its version is part of every cache key already
        packages[step] = tuple(sorted(dists, key=str.lower))
    pins = {}
    for dist in sorted({d for ds in packages.values() for d in ds} | set(RUNNERS)):
        try:
            pins[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return EnvironmentSpec(platform.python_version(), packages, pins)
