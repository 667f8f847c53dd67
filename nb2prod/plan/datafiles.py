"""The data files each step reads, so that a changed file is never served from the cache.

A step's cache key covers its code, parameters and upstream outputs; a file it reads itself
(``pd.read_csv("data/train.csv")``) is invisible to all three. This pass finds such files in
two ways: literal paths given to common readers, and string parameters whose value names an
existing file or folder (or is given to a reader). Paths are as the notebook names them,
relative to the notebook's folder, where steps run. A file some cell of the notebook writes is
not an input but a product of the pipeline, and is left out.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..version_folder import REMOTE_PREFIXES
from .model import CellPlan, StepPlan
from .params import Parameter
from .problems import ProblemLog

# Calls whose first argument (or the keyword) names a file they read, by their module's name.
READERS = {"numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "joblib.load"}
PATH_KEYWORDS = ("filepath_or_buffer", "path", "path_or_buf", "io", "fname", "file", "filename")
# Method names that write their path argument: to_csv, save, savetxt, dump, write_text...
WRITER_PREFIXES = ("to_", "save", "dump", "write", "makedirs", "mkdir")
# Conventional aliases, for cells that use a module imported elsewhere or by a notebook magic.
DEFAULT_ALIASES = {"pd": "pandas", "np": "numpy", "Path": "pathlib.Path"}


@dataclass(frozen=True)
class DataRead:
    """A file or folder a step reads: ``path`` as the notebook names it (the parameter's value
    when ``parameter`` names one), read in cell ``cell`` (an index)."""

    path: str
    cell: int
    parameter: str | None = None

    @property
    def remote(self) -> bool:
        return self.path.startswith(REMOTE_PREFIXES)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "cell": self.cell, "parameter": self.parameter}


def find_data_reads(
    notebook: Path,
    cells: list[CellPlan],
    steps: dict[str, StepPlan],
    parameters: dict[str, Parameter],
    log: ProblemLog,
) -> None:
    """Fill each step's ``data`` with the files it reads; warn about remote ones."""
    folder = notebook.parent
    aliases = dict(DEFAULT_ALIASES)
    for c in cells:
        if c.analysis is not None and c.analysis.tree is not None:
            aliases.update(_aliases(c.analysis.tree))
    written = set()
    found: dict[str, list[DataRead]] = {name: [] for name in steps}
    for c in cells:
        tree = c.analysis.tree if c.analysis is not None else None
        if tree is None:
            continue
        reads, writes = _calls(tree, aliases, parameters)
        written |= writes
        if c.role == "step" and c.step in found:
            found[c.step] += [DataRead(path, c.index, param) for path, param in reads]
    for name, step in steps.items():
        for p in sorted(step.parameters):
            value = parameters[p].value if p in parameters else None
            if isinstance(value, str) and value and _names_existing(folder, value):
                cell = _first_reader(cells, name, p)
                found[name].append(DataRead(value, cell, p))
        kept: dict[tuple[str, str | None], DataRead] = {}
        for read in found[name]:
            local = not read.remote
            if local and (read.path in written or not _names_existing(folder, read.path)):
                continue  # made by the pipeline, or not there to fingerprint: not an input
            kept.setdefault((read.path, read.parameter), read)
        step.data = sorted(kept.values(), key=lambda r: (r.cell, r.path))
        for read in step.data:
            if read.remote:
                log.report(
                    "remote-data",
                    f"step `{name}` reads {read.path}, which nb2prod cannot fingerprint: its "
                    "cached result is reused while the URL stays the same, even if the data "
                    "behind it changed.",
                    "run with --no-cache when the remote data changes, or copy it to a local "
                    "file the step reads.",
                    cell=read.cell,
                    severity="warning",
                    key=f"{name}:{read.path}",
                )


def _names_existing(folder: Path, value: str) -> bool:
    if "\0" in value or len(value) > 4096 or value.startswith(REMOTE_PREFIXES):
        return False
    try:
        return (folder / value).exists()
    except OSError:
        return False


def _first_reader(cells: list[CellPlan], step: str, name: str) -> int:
    for c in cells:
        if c.step == step and c.role == "step" and c.analysis and name in c.analysis.reads:
            return c.index
    return next(c.index for c in cells if c.step == step and c.role == "step")


def _aliases(tree: ast.Module) -> dict[str, str]:
    """``import pandas as pd`` -> {"pd": "pandas"}; ``from pathlib import Path`` too."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _path_arg(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in PATH_KEYWORDS), None)


def _reads_mode(call: ast.Call, position: int) -> bool:
    """``open(path)``, ``open(path, "rb")``: a mode without w, a, x or +."""
    mode = call.args[position] if len(call.args) > position else None
    mode = mode or next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return True
    return (
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and not set("wax+") & set(mode.value)
    )


def _read_target(call: ast.Call, aliases: dict[str, str]) -> ast.expr | None:
    """The expression naming the file ``call`` reads, if it is a known reader."""
    func = _dotted(call.func, aliases) or ""
    if func.startswith("pandas.read_") or func in READERS:
        return _path_arg(call)
    if func in ("open", "io.open"):
        return _path_arg(call) if _reads_mode(call, 1) else None
    if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Call):
        inner = call.func.value
        if _dotted(inner.func, aliases) == "pathlib.Path":
            method = call.func.attr
            if method in ("read_text", "read_bytes") or (method == "open" and _reads_mode(call, 0)):
                return _path_arg(inner)
    return None


def _calls(
    tree: ast.Module, aliases: dict[str, str], parameters: dict[str, Parameter]
) -> tuple[list[tuple[str, str | None]], set[str]]:
    """(path, parameter) pairs the cell reads, and the literal paths it writes."""
    reads: list[tuple[str, str | None]] = []
    writes: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _read_target(node, aliases)
        if target is not None:
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                reads.append((target.value, None))
            elif isinstance(target, ast.Name) and target.id in parameters:
                value = parameters[target.id].value
                if isinstance(value, str) and value:
                    reads.append((value, target.id))
            continue
        func = _dotted(node.func, aliases) or ""
        name = node.func.attr if isinstance(node.func, ast.Attribute) else func.rpartition(".")[2]
        opened_for_writing = func in ("open", "io.open") and not _reads_mode(node, 1)
        if opened_for_writing or name.startswith(WRITER_PREFIXES):
            args: list[ast.expr] = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call):
                args += node.func.value.args  # Path("out.csv").write_text(...)
            # Anywhere in the target: `to_csv(os.path.join(out_dir, "x.csv"))` writes into
            # out_dir, so a folder parameter the pipeline writes to is not one of its inputs.
            for part in (sub for arg in args for sub in ast.walk(arg)):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    writes.add(part.value)
                elif isinstance(part, ast.Name) and part.id in parameters:
                    value = parameters[part.id].value
                    if isinstance(value, str):
                        writes.add(value)
    return reads, writes
