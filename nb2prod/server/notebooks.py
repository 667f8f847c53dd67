"""Inspect and export for the REST API: nb2prod's own functions, named in API paths.

Both are CPU work (parsing and analysing every cell), so the handlers run the functions here in
a worker process (:mod:`.work`): they take plain, picklable arguments (the OS path the server
already resolved inside its root, and the API path that names it) and raise :class:`ApiError`.
Notebooks are read through their real OS path but named by their API path, so plans, problems
and messages say ``notebooks/churn.ipynb``, never the server's folder layout.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError, PlanError
from ..version_folder import MANIFEST, PIPELINES, README
from .errors import ApiError
from .paths import inside, relative_to


def _relabel(text: str, os_path: Path, api_path: str) -> str:
    return text.replace(str(os_path), api_path)


def _unusable(exc: Nb2prodError, os_path: Path, api_path: str) -> ApiError:
    return ApiError(422, _relabel(exc.message, os_path, api_path))


def _too_deep(api_path: str) -> ApiError:
    return ApiError(
        422,
        f"{api_path}: its JSON is nested too deeply to read. Fix: re-save it from Jupyter; "
        "no notebook needs that much nesting.",
    )


def check_export_name(name: object) -> str | None:
    """``name`` of ``POST export``, checked by the grammar and worded for a JSON caller."""
    from ..grammar import is_safe_name, make_safe_name

    if name is None:
        return None
    if not isinstance(name, str):
        raise ApiError(
            400, '`name` must be a string. Fix: e.g. {"name": "churn"}, or leave it out.'
        )
    if not is_safe_name(name):
        shown = name if len(name) <= 60 else name[:59] + "…"
        example = json.dumps({"name": make_safe_name(name)})
        raise ApiError(
            422,
            f"`name` {json.dumps(shown)} is not allowed: use lower-case letters, digits and "
            f"underscores, starting with a letter. Fix: e.g. {example}",
        )
    return name


# --- run in a worker process ---------------------------------------------------------------------
def inspect_file(os_path: Path, api_path: str) -> dict[str, Any]:
    """The plan JSON (docs/inspect-json.md) of the saved notebook at ``os_path``."""
    from ..plan.notebook import read_notebook
    from ..plan.planner import build_plan

    try:
        nb = read_notebook(os_path)
        return build_plan(dataclasses.replace(nb, path=Path(api_path))).to_json()
    except Nb2prodError as exc:
        raise _unusable(exc, os_path, api_path) from None
    except RecursionError:
        raise _too_deep(api_path) from None


def inspect_content(content: dict[str, Any], os_path: Path, api_path: str) -> dict[str, Any]:
    """The plan JSON of ``content``, the editor's unsaved notebook (nbformat 4 JSON).

    The path is still checked (by the server), because it names the notebook and the pipeline.
    """
    from ..plan.planner import inspect_notebook_json

    try:
        return inspect_notebook_json(content, api_path).to_json()
    except Nb2prodError as exc:
        raise _unusable(exc, os_path, api_path) from None
    except RecursionError:
        raise _too_deep(api_path) from None


def export_file(root: Path, os_path: Path, api_path: str, name: str | None) -> dict[str, Any]:
    """Export the saved notebook to ``<root>/pipelines/<name>/vN``; see docs/rest-api.md."""
    from ..export.writer import check_name, export_plan
    from ..plan.notebook import read_notebook
    from ..plan.planner import build_plan, problem_json

    out = root / PIPELINES
    try:
        if name is not None:
            check_name(name)
        plan = build_plan(read_notebook(os_path), name)
        # Real, absolute paths: pipeline.yaml records the notebook relative to out's parent,
        # which must not depend on the server process's working directory.
        for target in (out, out / plan.name):
            if target.exists() and not inside(target, root):
                raise ApiError(
                    403,
                    f"{relative_to(target.parent, root) or '.'}/{target.name} links outside the "
                    "server's root folder; nb2prod will not write there. Fix: make it a "
                    "real folder.",
                )
        result = export_plan(plan, out)
    except PlanError as exc:
        raise ApiError(
            422,
            _relabel(exc.message, os_path, api_path),
            problems=[problem_json(p, api_path) for p in exc.problems],
        ) from None
    except Nb2prodError as exc:
        raise _unusable(exc, os_path, api_path) from None
    except RecursionError:
        raise _too_deep(api_path) from None
    version = relative_to(result.path, root) or str(result.path)
    return {
        "name": result.name,
        "version": result.version,
        "path": version,
        "created": result.created,
        "pipeline_yaml": f"{version}/{MANIFEST}",
        "readme": f"{version}/{README}",
        "warnings": [p.render(api_path) for p in result.plan.problems],
    }
