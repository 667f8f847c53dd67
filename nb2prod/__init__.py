"""nb2prod: from a tagged notebook to a versioned, parameterized pipeline.

The public API is imported lazily so that ``import nb2prod`` (and the CLI's ``--help``) stays
instant; heavy libraries load only in the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .export.writer import ExportResult
    from .plan.planner import Plan
    from .run.runner import RunResult

__all__ = ["__version__", "export_notebook", "inspect_notebook", "log_metric", "run_pipeline"]


def inspect_notebook(path: Any, name: str | None = None) -> Plan:
    """Plan the pipeline of the notebook at ``path`` (see :class:`nb2prod.plan.planner.Plan`)."""
    from .plan.planner import inspect_notebook as _inspect

    return _inspect(path, name)


def export_notebook(path: Any, name: str | None = None, out: Any = None) -> ExportResult:
    """Export the notebook at ``path`` to ``out/<name>/vN`` (``out`` defaults to ``pipelines``)."""
    from .export.writer import export_notebook as _export

    return _export(path, name=name, **({} if out is None else {"out": out}))


def run_pipeline(path: Any, params: dict[str, Any] | None = None, **options: Any) -> RunResult:
    """Run the pipeline at ``path`` (``pipelines/<name>`` or ``.../vN``); see nb2prod.run.runner."""
    from .run.runner import run_pipeline as _run

    return _run(path, params, **options)


def log_metric(name: str, value: Any) -> None:
    """Log a metric from notebook code: recorded in a pipeline run, a no-op interactively."""
    from .runtime import log_metric as _log_metric

    _log_metric(name, value)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds the REST API (enabled by jupyter-config/server-config)."""
    return [{"module": "nb2prod.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the wheel."""
    return [{"src": "labextension", "dest": "nb2prod"}]
