"""Reading a notebook file into plain cells, refusing what nb2prod cannot use."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import NotebookError


@dataclass(frozen=True)
class Cell:
    index: int
    id: str | None
    cell_type: str  # "code", "markdown" or "raw"
    source: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Notebook:
    path: Path
    cells: tuple[Cell, ...]
    # Of what the pipeline is made from: each code cell's source and tags, in order. Outputs,
    # execution counts and markdown do not count, so re-running the notebook changes nothing.
    sha256: str
    kernel_name: str


def code_sha256(cells: list[Cell]) -> str:
    payload = [[c.source, list(c.tags)] for c in cells if c.cell_type == "code"]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def _fail(path: Path, what: str, fix: str) -> NotebookError:
    return NotebookError(f"{path}: {what} Fix: {fix}")


def read_notebook(path: str | Path) -> Notebook:
    """Read and validate ``path``. Raises :class:`NotebookError` with a one-paragraph message."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, "no such file.", "check the path.") from None
    except IsADirectoryError:
        raise _fail(path, "is a folder, not a notebook.", "pass an .ipynb file.") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror}).", "check its permissions.") from None
    try:
        text = data.decode("utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise _fail(path, "is not UTF-8 text.", "pass a Jupyter .ipynb file.") from None
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "ends early (truncated)" if truncated else "is not valid JSON"
        raise _fail(
            path,
            f"{what} at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
            "restore it from version control or re-save it from Jupyter.",
        ) from None
    return notebook_from_json(raw, path)


def notebook_from_json(raw: object, path: str | Path) -> Notebook:
    """Validate a notebook already parsed from JSON (e.g. the unsaved one a UI sends).

    ``path`` names the notebook in messages and in the plan; nothing is read from it.
    """
    path = Path(path)
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise _fail(path, "is JSON but not a Jupyter notebook.", "pass an .ipynb file.")
    major = raw.get("nbformat")
    if major != 4:
        raise _fail(
            path,
            f"uses notebook format {major}; nb2prod reads format 4.",
            f"convert it: jupyter nbconvert --to notebook --nbformat 4 {path}",
        )
    import nbformat  # heavy: only here, never at CLI start-up
    from nbformat.v4 import to_notebook_json

    try:
        try:  # what nbformat.reads does after parsing: copy, join list sources, drop transients
            nb = to_notebook_json(raw)
        except (AttributeError, TypeError) as exc:
            raise nbformat.ValidationError(f"missing or malformed key ({exc})") from None
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path) if getattr(exc, "path", None) else "notebook"
        raise _fail(
            path,
            f"is not a valid notebook ({where}: {exc.message}).",
            "re-save it from Jupyter, or run `jupyter nbconvert --to notebook --inplace` on it.",
        ) from None
    meta = nb.get("metadata", {})
    kernelspec = meta.get("kernelspec", {}) or {}
    language = kernelspec.get("language") or (meta.get("language_info", {}) or {}).get("name")
    if language and str(language).lower() != "python":
        raise _fail(
            path,
            f"uses a {language} kernel ({kernelspec.get('name', '?')}); nb2prod exports Python.",
            "use a Python kernel.",
        )
    cells = []
    for i, c in enumerate(nb.cells):
        tags = c.get("metadata", {}).get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _fail(
                path, f"cell {i + 1} has malformed tags.", "tags must be a list of strings."
            )
        cells.append(Cell(i, c.get("id"), c.cell_type, c.source, tuple(tags)))
    return Notebook(
        path=path,
        cells=tuple(cells),
        sha256=code_sha256(cells),
        kernel_name=str(kernelspec.get("name") or "python3"),
    )
