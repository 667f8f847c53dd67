"""Inspect and export for the REST API: nb2prod's own functions, named in API paths.

Both are CPU work (parsing and analysing every cell), so the handlers run them in a worker
thread. Notebooks are read through their real OS path but named by their API path, so plans,
problems and messages say ``notebooks/churn.ipynb``, never the server's folder layout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError, PlanError
from .errors import ApiError
from .paths import Root, inside

PIPELINES = "pipelines"  # exports go to <root>/pipelines/<name>/vN, as `nb2prod export` does


def _relabel(text: str, os_path: Path, api_path: str) -> str:
    return text.replace(str(os_path), api_path)


def _unusable(exc: Nb2prodError, os_path: Path, api_path: str) -> ApiError:
    return ApiError(422, _relabel(exc.message, os_path, api_path))


def inspect(root: Root, api_path: object, content: object = None) -> dict[str, Any]:
    """The plan JSON (docs/inspect-json.md) of the saved notebook, or of ``content``.

    ``content`` is the editor's unsaved notebook (nbformat 4 JSON); the path is still checked,
    because it names the notebook and the pipeline.
    """
    from ..notebook import read_notebook
    from ..plan import build_plan, inspect_notebook_json

    os_path = root.resolve(api_path)
    label = str(api_path)
    try:
        if content is not None:
            if not isinstance(content, dict):
                raise ApiError(400, "`content` must be a notebook (a JSON object).")
            return inspect_notebook_json(content, label).to_json()
        nb = read_notebook(os_path)
    except Nb2prodError as exc:
        raise _unusable(exc, os_path, label) from None
    return build_plan(dataclasses.replace(nb, path=Path(label))).to_json()


def export(root: Root, api_path: object, name: object = None) -> dict[str, Any]:
    """Export the saved notebook to ``<root>/pipelines/<name>/vN``; see docs/rest-api.md."""
    from ..export import check_name, export_plan
    from ..notebook import read_notebook
    from ..plan import build_plan, problem_json

    if name is not None and not isinstance(name, str):
        raise ApiError(400, '`name` must be a string. Fix: e.g. "churn", or leave it out.')
    os_path = root.resolve(api_path)
    label = str(api_path)
    out = root.path / PIPELINES
    try:
        if name is not None:
            check_name(name)
        plan = build_plan(read_notebook(os_path), name)
        # Real, absolute paths: pipeline.yaml records the notebook relative to out's parent,
        # which must not depend on the server process's working directory.
        for target in (out, out / plan.name):
            if target.exists() and not inside(target, root.path):
                raise ApiError(
                    403,
                    f"{root.relative(target.parent) or '.'}/{target.name} links outside the "
                    "server's root folder; nb2prod will not write there. Fix: make it a "
                    "real folder.",
                )
        result = export_plan(plan, out)
    except PlanError as exc:
        raise ApiError(
            422,
            _relabel(exc.message, os_path, label),
            problems=[problem_json(p, label) for p in exc.problems],
        ) from None
    except Nb2prodError as exc:
        raise _unusable(exc, os_path, label) from None
    version = root.relative(result.path) or str(result.path)
    return {
        "name": result.name,
        "version": result.version,
        "path": version,
        "created": result.created,
        "pipeline_yaml": f"{version}/pipeline.yaml",
        "readme": f"{version}/README.md",
        "warnings": [p.render(label) for p in result.plan.problems],
    }
