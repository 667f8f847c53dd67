"""From ``nb2prod compare``'s arguments to run records.

An argument is a run id, ``pipelines/<name>/vN`` (that version's newest successful run),
``pipelines/<name>`` or ``<name>`` (the newest successful run of the latest version), or
``champion`` (the champion of the pipeline the other arguments name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Nb2prodError
from ..gates.champion import champion_path, read_champion
from ..run_folder import RUN_ID_RE, run_dir, runs_dir
from ..run_index import list_runs, pipeline_name, read_run
from ..version_folder import PIPELINES, VERSION_DIR, versions

CHAMPION = "champion"
SUCCEEDED = "succeeded"
ACCEPTS = (
    "a run id (as `nb2prod runs` lists them), pipelines/<name>/vN (that version's newest "
    "successful run), pipelines/<name> or just <name> (the newest successful run of its latest "
    "version), or `champion` (the champion of the pipeline the other arguments name)"
)
NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class ComparedRun:
    """One compared run: the argument that named it, and its record as a reader believes it."""

    argument: str
    source: str  # how the argument was read: "run", "newest successful run of v2", "champion"
    record: dict[str, Any] = field(repr=False)
    folder: Path

    @property
    def id(self) -> str:
        return str(self.record.get("id", ""))

    @property
    def pipeline(self) -> str:
        return str(self.record.get("pipeline") or "")


def successful_runs(home: Path, pipeline: str) -> list[dict[str, Any]]:
    """Every successful run of ``pipeline`` in ``home``, oldest first."""
    rows = [r for r in list_runs(home, pipeline, NO_LIMIT) if r.get("status") == SUCCEEDED]
    return sorted(rows, key=lambda r: str(r.get("id", "")))


def _error(argument: str, why: str) -> Nb2prodError:
    return Nb2prodError(
        f"compare: `{argument}` {why}. Fix: pass {ACCEPTS}; `nb2prod runs` lists the runs."
    )


def _latest_version(argument: str, name: str, runs: list[dict[str, Any]]) -> int | None:
    """The pipeline folder's latest exported version; without the folder, the newest run's."""
    for folder in (Path(argument), PIPELINES / name):
        found = versions(folder)
        if found and folder.name == name:
            return found[-1]
    numbers = [r["version"] for r in runs if isinstance(r.get("version"), int)]
    return max(numbers) if numbers else None


def _from_pipeline(home: Path, argument: str) -> ComparedRun:
    name = pipeline_name(argument)
    last = argument.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    pinned = VERSION_DIR.match(last)
    runs = successful_runs(home, name) if name else []
    if not runs:
        raise _error(
            argument, f"names no run: pipeline `{name}` has no successful run in {runs_dir(home)}"
        )
    version = int(pinned.group(1)) if pinned else _latest_version(argument, name, runs)
    of_version = [r for r in runs if r.get("version") == version]
    if not of_version:
        shown = ", ".join(sorted({f"v{r.get('version')}" for r in runs}))
        raise _error(
            argument,
            f"names no run: `{name}` v{version} has no successful run (runs of {shown} succeeded)",
        )
    record = of_version[-1]
    source = f"newest successful run of v{version}"
    return ComparedRun(argument, source, record, run_dir(home, str(record["id"])))


def _from_id(home: Path, argument: str) -> ComparedRun:
    record = read_run(home, argument)
    if record is None:
        raise _error(argument, f"names no run: there is no run folder {run_dir(home, argument)}")
    return ComparedRun(argument, "run", record, run_dir(home, argument))


def _champion(home: Path, others: list[ComparedRun]) -> ComparedRun:
    names = sorted({r.pipeline for r in others})
    if len(names) != 1:
        why = (
            "alone does not say which pipeline's champion"
            if not names
            else f"is ambiguous: the other arguments name runs of {', '.join(names)}"
        )
        raise Nb2prodError(
            f"compare: `champion` {why}. Fix: compare the champion with runs of one pipeline, "
            "e.g. nb2prod compare champion pipelines/<name>."
        )
    name = names[0]
    data = read_champion(home, name)
    run_id = data.get("run_id") if data else None
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise Nb2prodError(
            f"compare: pipeline `{name}` has no champion ({champion_path(home, name)} is "
            f"{'missing' if data is None else 'not a champion record'}). Fix: promote a run "
            f"with nb2prod run pipelines/{name} --promote, or compare runs by id."
        )
    record = read_run(home, run_id)
    if record is None:
        raise Nb2prodError(
            f"compare: the champion of `{name}` is run {run_id}, whose folder "
            f"{run_dir(home, run_id)} is gone (removed by nb2prod gc?). Fix: compare runs by "
            "id, or promote a new champion."
        )
    return ComparedRun(CHAMPION, CHAMPION, record, run_dir(home, run_id))


def resolve_runs(home: Path, arguments: Sequence[str]) -> list[ComparedRun]:
    """The run each argument names, in the order given; an Nb2prodError for one naming none."""
    if len(arguments) < 2:
        raise Nb2prodError(
            f"compare: needs at least two runs to compare, got {len(arguments)}. Fix: pass two "
            f"or more, each {ACCEPTS}."
        )
    found: dict[int, ComparedRun] = {}
    for i, argument in enumerate(arguments):
        if argument == CHAMPION:
            continue
        if RUN_ID_RE.fullmatch(argument):
            found[i] = _from_id(home, argument)
        else:
            found[i] = _from_pipeline(home, argument)
    champions = [i for i, a in enumerate(arguments) if a == CHAMPION]
    if champions:
        champion = _champion(home, list(found.values()))
        found.update({i: champion for i in champions})
    return [found[i] for i in range(len(arguments))]
