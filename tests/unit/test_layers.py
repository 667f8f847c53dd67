"""Imports go one way between the package's rooms (docs/architecture.md), lazy imports included.

Read from the source with ``ast``, so an import inside a function counts as much as one at the
top: a lazy import that goes the wrong way still ties the rooms together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "nb2prod"
SHARED = {
    "_version",
    "errors",
    "gc_tuning",
    "grammar",
    "pipeline",
    "run_folder",
    "run_index",
    "runtime",
    "version_folder",
}
# What each room may import besides itself and the shared modules.
MAY_USE = {
    "shared": set(),
    "gates": set(),
    "plan": {"gates"},
    "export": {"plan"},
    "tracking": {"serving"},
    "serving": set(),
    "run": {"plan", "tracking", "gates", "serving"},
    "catalog": {"plan"},
    "compile": set(),
    "sweep": {"run", "tracking"},
    "compare": {"gates"},
    "widgets": {"catalog", "run", "gates", "serving"},
    "server": {"catalog", "plan", "export", "run", "compile", "gates"},
    "cli": {"plan", "export", "run", "tracking", "compile", "sweep", "gates", "compare", "serving"},
    "__init__": {"plan", "export", "run"},
    "__main__": {"cli"},
}


def room(module: str) -> str:
    """``nb2prod.run.cache`` -> ``run``; ``nb2prod.version_folder`` -> ``shared``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return "shared" if parts[1] in SHARED else parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every nb2prod module ``path`` imports, relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "nb2prod"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "nb2prod":
                continue
            found.add(target)
            if not node.module or target.count(".") == 1 and room(target) != "shared":
                # `from . import x` / `from nb2prod.run import runner`: the names are modules
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts)


def test_every_import_goes_the_way_the_rooms_allow() -> None:
    wrong = []
    for path in sources():
        mine = room(module_name(path))
        allowed = MAY_USE[mine] | {mine, "shared", "__init__"}
        for target in imported(path):
            if room(target) not in allowed:
                wrong.append(f"{path.relative_to(REPO)} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_lazy_and_relative_imports() -> None:
    """The checker itself: a wrong-way import written inside a function is found."""
    runner = PACKAGE / "run" / "runner.py"
    found = imported(runner)
    assert "nb2prod.tracking.worker" in found  # imported inside run_pipeline
    assert "nb2prod.run.record" in found and "nb2prod.pipeline" in found
    assert room("nb2prod.export.codegen") not in MAY_USE["run"] | {"run", "shared"}


def test_every_module_belongs_to_a_room() -> None:
    rooms = {room(module_name(p)) for p in sources()}
    assert rooms <= set(MAY_USE), rooms - set(MAY_USE)
