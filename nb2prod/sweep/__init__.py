"""``nb2prod sweep``: a grid of whole runs, locally or on a Dask cluster."""

from __future__ import annotations

from pathlib import Path


def sweep_command(
    pipeline: Path,
    grid: tuple[str, ...],
    *,
    parallel: int | None,
    cluster: str | None,
    sort_by: str | None,
    as_json: bool,
    track: bool,
) -> int:
    """Run the sweep, print its table (or JSON); the exit code."""
    raise NotImplementedError
