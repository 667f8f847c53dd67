"""``steps/serving.py``: the notebook's serving function as a plain module.

Not a step: nothing runs it with papermill. It holds the imports, helpers and setup lines the
function needs, in notebook order, then the function. The names it reads from the run (step
outputs, parameters) are not defined here: the serving model sets them on the module before it
calls the function, from the run folder's files.
"""

from __future__ import annotations

import json

from .._version import __version__
from ..errors import Nb2prodError
from ..plan.serving import ServingPlan
from ..version_folder import PARAMETER
from .imports import ImportLine, format_imports


def render_serving_module(
    serving: ServingPlan,
    pipeline: str,
    version: int,
    notebook: str,
    header: str,
    first_party: frozenset[str],
) -> str:
    """The module's text; refused when it would not compile (it always should)."""
    needs = [
        f"#   {name}: parameter" if src == PARAMETER else f"#   {name}: output of step {src}"
        for name, src in serving.needs
    ]
    lines = [
        f"# Serving function of pipeline {pipeline} v{version}, exported by nb2prod {__version__}",
        f"# from {json.dumps(notebook, ensure_ascii=False)}, cell {serving.cell + 1}.",
        f"# {header}",
        "#",
        f"# `{serving.function}` is the production entry point. The serving model sets these names",
        "# on this module from the run before it calls the function:",
        *(needs or ["#   (none)"]),
    ]
    imports = [ImportLine(h.code) for h in serving.code if h.is_import]
    if imports:
        lines += ["", format_imports(imports, first_party).rstrip("\n")]
    if serving.needs:  # placeholders, so the module reads as complete code (and lints clean)
        lines += ["", *(f"{name} = None  # set from the run" for name, _ in serving.needs)]
    for h in serving.code:
        if not h.is_import:
            origin = "nb2prod" if h.cell < 0 else f"cell {h.cell + 1}"
            lines += ["", "", f"# {origin}", h.code.rstrip("\n")]
    text = "\n".join(lines) + "\n"
    try:
        compile(text, "steps/serving.py", "exec")
    except SyntaxError as exc:  # pragma: no cover - the cells were parsed before
        raise Nb2prodError(
            f"steps/serving.py would not compile ({exc.msg}, line {exc.lineno}). Fix: report "
            "this as an nb2prod bug, with the serving cell."
        ) from exc
    return text
