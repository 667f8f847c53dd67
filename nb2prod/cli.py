"""The ``nb2prod`` command line.

Only click and the standard library load at start-up; each command imports what it needs, so
``nb2prod --help`` answers instantly. Exit codes: 0 success, 1 a check or step failed, 2 bad
input or usage, 3 a run succeeded but could not be tracked, 4 every step succeeded but a gate
failed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._version import __version__

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Turn nb2prod's input errors into a one-paragraph message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import Nb2prodError

        try:
            return func(*args, **kwargs)
        except Nb2prodError as exc:
            click.echo(f"nb2prod: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("nb2prod: interrupted.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they were declared, which reads as a workflow


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nb2prod")
def main() -> None:
    """Turn a tagged notebook into a versioned, parameterized pipeline.

    \b
    Typical use:
      nb2prod inspect notebooks/churn.ipynb     # what would be exported
      nb2prod export notebooks/churn.ipynb      # write pipelines/churn/vN
      nb2prod run pipelines/churn               # run it, tracked in MLflow
      nb2prod check notebooks/churn.ipynb       # in CI: is the export current?
      nb2prod compile pipelines/churn --target kfp   # or airflow: run it on an engine

    \b
    Exit codes: 0 success, 1 a check or step failed, 2 bad input or usage,
    3 a run succeeded but could not be tracked, 4 a gate failed, 130 interrupted.
    """


notebook_arg = click.argument(
    "notebook", type=click.Path(dir_okay=False, path_type=Path), metavar="NB"
)
out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,  # the version folder's default, resolved in the command (--help imports none)
    show_default="pipelines",
    help="Folder that holds the pipelines.",
)


@main.command()
@notebook_arg
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (schema in docs).")
@_friendly
def inspect(notebook: Path, as_json: bool) -> None:
    """Show the pipeline NB defines: steps, data flow, parameters, problems.

    Exits with 2 when the notebook has errors that would block export.
    """
    from .plan.planner import inspect_notebook
    from .plan.report import plan_text

    plan = inspect_notebook(notebook)
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(plan_text(plan))
    if plan.errors:
        sys.exit(2)


@main.command()
@notebook_arg
@click.option("--name", help="Pipeline name (default: the notebook's file name made safe).")
@out_option
@click.option(
    "--pin-env",
    is_flag=True,
    help="Make a new version when the installed libraries differ from the latest version's "
    "requirements.txt, even if the notebook did not change.",
)
@_friendly
def export(notebook: Path, name: str | None, out: Path | None, pin_env: bool) -> None:
    """Export NB to OUT/<name>/vN.

    An unchanged notebook writes nothing and reports the current version; a changed one writes
    the next version and leaves earlier ones untouched.
    """
    from .export.writer import export_notebook
    from .version_folder import PIPELINES

    result = export_notebook(notebook, name=name, out=out or PIPELINES, pin_env=pin_env)
    for p in result.plan.problems:
        click.echo(f"warning: {p.render(str(notebook))}", err=True)
    if result.created:
        steps = ", ".join(s.name for s in result.plan.steps)
        click.echo(f"Exported {result.name} v{result.version} -> {result.path} ({steps})")
    else:
        click.echo(f"Up to date: {result.name} v{result.version} ({result.path})")


@main.command()
@click.argument(
    "notebooks",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="NB...",
)
@click.option("--name", help="Pipeline name, when it differs from the one found under --out.")
@out_option
@_friendly
def check(notebooks: tuple[Path, ...], name: str | None, out: Path | None) -> None:
    """Fail (exit 1) when NB no longer matches its latest exported version.

    For CI and pre-commit. Writes nothing.
    """
    from .export.writer import check_notebook
    from .version_folder import PIPELINES

    out = out or PIPELINES
    failed = False
    for notebook in notebooks:
        result = check_notebook(notebook, out=out, name=name)
        if result.latest is None:
            failed = True
            click.echo(
                f"{notebook}: never exported to {out / result.name}. "
                f"Fix: nb2prod export {notebook} --out {out}",
                err=True,
            )
        elif result.edited:
            failed = True
            edited = "; ".join(str(e) for e in result.edited)
            click.echo(
                f"{notebook}: {result.name} v{result.latest} was edited by hand: {edited}. "
                f"This is not a change to the notebook. Fix: restore {result.path} from version "
                f"control, or copy the change into the notebook and run nb2prod export "
                f"{notebook} --out {out}.",
                err=True,
            )
        elif result.up_to_date:
            click.echo(f"{notebook}: up to date with {result.name} v{result.latest}")
        else:
            failed = True
            changed = ", ".join(result.changed_files)
            click.echo(
                f"{notebook}: changed since {result.name} v{result.latest} ({changed} would "
                f"differ). Fix: nb2prod export {notebook} --out {out}, then commit the new "
                "version.",
                err=True,
            )
    if failed:
        sys.exit(1)


def _positive_seconds(value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(
            f"{value:g} is not a positive number of seconds. Fix: e.g. --step-timeout 600, or "
            "leave it out for no limit."
        )
    return value


def _parameter_options(func: F) -> F:
    """``-p KEY=VALUE`` and ``-f FILE``, the same for every command that runs steps."""
    func = click.option(
        "-f",
        "--params-file",
        "files",
        multiple=True,
        metavar="FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML file of parameter values layered over config.yaml (repeatable).",
    )(func)
    return click.option(
        "-p",
        "--param",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a parameter; the value is read as YAML (3, 0.5, true, [1, 2]).",
    )(func)


@main.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@_parameter_options
@click.option(
    "--steps", metavar="S,...", help="Run only these steps; upstream results come from the cache."
)
@click.option("--no-cache", is_flag=True, help="Run every step, even unchanged ones.")
@click.option(
    "--step-timeout",
    type=float,
    metavar="SECONDS",
    callback=lambda ctx, param, value: _positive_seconds(value),
    help="Stop a step that runs longer (a positive number of seconds).",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write a JUnit XML report, one test case per step.",
)
@click.option("--no-track", is_flag=True, help="Do not log to MLflow.")
@click.option(
    "--strict-env",
    is_flag=True,
    help="Refuse to run (exit 2) when installed libraries differ from the version's "
    "requirements.txt.",
)
@click.option(
    "--gate",
    "gates",
    multiple=True,
    metavar="EXPR",
    help="Another gate to check after the steps, e.g. 'accuracy >= 0.97' (repeatable).",
)
@click.option(
    "--baseline",
    default="champion",
    show_default=True,
    metavar="champion|previous|vN|RUN",
    help="The run the gates compare with: the champion, the previous successful run, a "
    "version's newest successful run, or a run id.",
)
@click.option(
    "--require-baseline",
    is_flag=True,
    help="A gate that needs a baseline fails when there is none (default: 'no baseline').",
)
@click.option(
    "--promote",
    is_flag=True,
    help="When every gate passes, make this run the champion (MLflow registry alias "
    "'champion'; a local record without tracking).",
)
@_friendly
def run(
    pipeline: Path,
    assignments: tuple[str, ...],
    files: tuple[Path, ...],
    steps: str | None,
    no_cache: bool,
    step_timeout: float | None,
    junit: Path | None,
    no_track: bool,
    strict_env: bool,
    gates: tuple[str, ...],
    baseline: str,
    require_baseline: bool,
    promote: bool,
) -> None:
    """Run PIPELINE (pipelines/<name> for the latest version, or .../vN) with papermill.

    Each step runs in a fresh kernel, in DAG order, independent steps side by side. Results go
    to .nb2prod/runs/<run-id>/ and to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db).

    \b
    After the steps, the gates (the notebook's `gates` cell and --gate) are checked against
    the baseline.

    \b
    Exit codes: 0 success, 1 a step failed, 2 bad input or usage,
    3 the run succeeded but could not be tracked, 4 every step succeeded but a gate failed,
    130 interrupted.
    """
    import os
    import time

    started = time.monotonic()
    from .tracking.worker import TrackingWorker

    # Before anything else: MLflow's import in the worker is the floor of every tracked run.
    tracker = None if no_track else TrackingWorker()
    try:
        from .pipeline import load_pipeline
        from .run.progress import Progress

        spec = load_pipeline(pipeline)
        progress = Progress([s.name for s in spec.steps])
    except BaseException:
        if tracker is not None:
            tracker.close()
        raise
    from .run.ci_reports import append_github_summary, write_junit
    from .run.runner import run_pipeline
    from .run.summary import run_text

    result = run_pipeline(
        spec,
        files=files,
        assignments=assignments,
        steps=steps.split(",") if steps else None,
        no_cache=no_cache,
        step_timeout=step_timeout,
        track=not no_track,
        observer=progress,
        handle_signals=True,
        tracker=tracker,
        strict_env=strict_env,
        gates=gates,
        baseline=baseline,
        promote=promote,
        require_baseline=require_baseline,
    )
    total = _seconds_since_start(time.monotonic() - started)
    click.echo(run_text(result.record, result.path, total), err=result.exit_code not in (0,))
    if junit is not None:
        write_junit(result.record, junit)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_github_summary(result.record, Path(summary))
    if result.exit_code != 130:
        _auto_gc(spec.name)
    global _leave_at_once
    _leave_at_once = True
    sys.exit(result.exit_code)


def _seconds_since_start(fallback: float) -> float:
    """Wall time since this process started, Python's own start-up included: what the user
    waited for. ``fallback``: the command's own time, should the process table not tell."""
    try:
        import time

        import psutil

        return max(fallback, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - a nicety; without it the total is a little short
        return fallback


@main.command()
@click.argument("pipeline", required=False)
@click.option("-n", "--limit", default=10, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly
def runs(pipeline: str | None, limit: int, as_json: bool) -> None:
    """List recent runs (of PIPELINE, if given): status, duration, size, version, key
    metrics."""
    from .run.retention import human_size
    from .run_index import list_runs, run_size, runs_home

    # The REST API's reader too: a run whose process was killed shows as interrupted.
    home = runs_home()
    rows = list_runs(home, pipeline, limit)
    for r in rows:
        r["size_bytes"] = run_size(home, r["id"])
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No runs yet. Start one with: nb2prod run pipelines/<name>")
        return
    for r in rows:
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
            for k, v in list((r.get("metrics") or {}).items())[:3]
        )
        duration = r.get("duration")
        shown = "" if not isinstance(duration, (int, float)) else f"{duration:6.1f}s"
        version = f"v{r.get('version')}"
        size = human_size(r["size_bytes"])
        click.echo(
            f"{r['id']}  {r.get('pipeline')} {version:<4} {r['status']:<11} {shown:>7} "
            f"{size:>9}  {metrics}"
        )


@main.command()
@click.argument("pipeline", required=False)
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    metavar="N",
    help="Keep the newest N runs of each pipeline.",
)
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Remove only runs that started more than DAYS days ago (and are not in the newest N).",
)
@click.option(
    "--include-cached",
    is_flag=True,
    help="Also remove runs holding the only copy of a cached result, and forget those results.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@_friendly
def gc(
    pipeline: str | None, keep: int, older_than: float | None, include_cached: bool, dry_run: bool
) -> None:
    """Remove old run folders (of PIPELINE, if given): all but the newest N of each pipeline.

    Never removes a run that is still running, nor the only copy of a result the cache still
    reuses (unless --include-cached). Prints what goes and the space freed. With
    NB2PROD_KEEP_RUNS=N, `nb2prod run` applies --keep N to its pipeline after each run.
    """
    from .run import retention
    from .run_index import runs_home

    home = runs_home()
    plan = retention.plan(
        home, pipeline, keep=keep, older_than_days=older_than, include_cached=include_cached
    )
    if not plan.known:
        _no_such_pipeline(pipeline or "", plan.pipeline or "", home, plan.pipelines)
    result = None if dry_run else retention.apply(plan)
    for line in retention.report(plan, result):
        click.echo(line)
    if result is not None and result.errors:
        sys.exit(1)


def _no_such_pipeline(given: str, name: str, home: Path, known: list[str]) -> None:
    """Unless PIPELINE names a pipeline folder (with no runs yet), stop with exit code 2."""
    from .errors import Nb2prodError
    from .run_folder import runs_dir
    from .version_folder import PIPELINES

    if name not in ("", ".", "..") and (Path(given).is_dir() or (PIPELINES / name).is_dir()):
        return
    fix = (
        f"name one of {', '.join(known)} (see nb2prod runs)"
        if known
        else "run nb2prod gc in the folder the runs were started in, or set NB2PROD_HOME"
    )
    raise Nb2prodError(
        f"no pipeline `{name}`: it has no runs in {runs_dir(home)} and no folder "
        f"{PIPELINES / name}. Fix: {fix}."
    )


def _auto_gc(pipeline: str) -> None:
    """``NB2PROD_KEEP_RUNS=N``: ``nb2prod gc PIPELINE --keep N`` after a run; never fails it."""
    from .run.retention import KEEP_ENV

    value = os.environ.get(KEEP_ENV, "").strip()
    if not value:
        return
    if not value.isdigit():
        click.echo(
            f"warning: {KEEP_ENV}={value!r} is not a number of runs to keep; no old runs were "
            "removed. Fix: set it to a whole number such as 20, or unset it.",
            err=True,
        )
        return
    try:
        from .run import retention
        from .run_index import runs_home

        plan = retention.plan(runs_home(), pipeline, keep=int(value))
        if plan.remove:
            result = retention.apply(plan)
            for line in retention.report(plan, result):
                click.echo(f"{KEEP_ENV}: {line}", err=True)
    except Exception as exc:  # noqa: BLE001 - retention must never fail the run it follows
        click.echo(f"warning: removing old runs ({KEEP_ENV}={value}) failed: {exc}", err=True)


@main.command()
@click.argument("pipeline")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-track", is_flag=True, help="Read only the local record, not MLflow.")
@_friendly
def champion(pipeline: str, as_json: bool, no_track: bool) -> None:
    """Show the champion of PIPELINE (pipelines/<name>, or just <name>): the run that
    `nb2prod run --promote` last promoted, from the MLflow registry (alias 'champion') when it
    has one, else from the local record."""
    from .gates.champion import read_champion
    from .run_index import pipeline_name, runs_home

    name = pipeline_name(pipeline)
    home = runs_home()
    local = read_champion(home, name) if name else None
    registry = None
    if not no_track and name:
        from .tracking.mlflow_log import Tracker

        reply = Tracker(models=False).find_baseline("champion", "champion", name)
        registry = reply.get("baseline")
        if reply.get("error"):
            click.echo(f"warning: MLflow could not be asked ({reply['error']})", err=True)
    if local is None and registry is None:
        click.echo(
            f"Pipeline `{name}` has no champion yet. Fix: promote a run whose gates pass: "
            f"nb2prod run pipelines/{name} --promote",
            err=True,
        )
        sys.exit(1)
    found = {"pipeline": name, "local": local, "mlflow": registry}
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    current = registry or local or {}
    version = current.get("version")
    click.echo(
        f"champion of {name}: run {current.get('run_id')}"
        + (f", v{version}" if version is not None else "")
        + (f", promoted {local['promoted_at']}" if local and local.get("promoted_at") else "")
    )
    if registry is not None:
        click.echo(f"  MLflow run {registry.get('mlflow_run_id')} (registry alias 'champion')")
    if local and local.get("models"):
        shown = ", ".join(f"{k} version {v}" for k, v in local["models"].items())
        click.echo(f"  models: {shown}")
    if registry and local and registry.get("run_id") != local.get("run_id"):
        click.echo(
            f"  note: the local record names run {local.get('run_id')}; MLflow's alias wins."
        )
    for key, value in (current.get("metrics") or {}).items():
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
        click.echo(f"  {key} = {shown}")


@main.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly
def versions(pipeline: Path, as_json: bool) -> None:
    """List the versions of PIPELINE (pipelines/<name>, or just <name>)."""
    from .export.versions import list_versions, resolve_pipeline

    rows = list_versions(resolve_pipeline(pipeline, "nb2prod versions {}"))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    for r in rows:
        edited = f"  EDITED BY HAND: {'; '.join(r.edited)}" if r.edited else ""
        click.echo(
            f"v{r.version:<4} {r.created_at:<21} notebook {r.notebook_sha256[:12]}  "
            f"{len(r.steps)} steps ({', '.join(r.steps)}), {len(r.parameters)} parameters"
            f"{edited}"
        )


@main.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.argument("version_a", metavar="vA")
@click.argument("version_b", metavar="vB")
@_friendly
def diff(pipeline: Path, version_a: str, version_b: str) -> None:
    """Show what changed between two versions of PIPELINE (pipelines/<name>, or just <name>):
    steps, parameters, code."""
    from .export.versions import diff_versions, resolve_pipeline

    usage = f"nb2prod diff {{}} {version_a} {version_b}"
    click.echo(diff_versions(resolve_pipeline(pipeline, usage), version_a, version_b), nl=False)


@main.command()
@click.argument("runs", nargs=-1, metavar="A B [C...]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/cli.md).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write a self-contained web page with the tables and a chart of each metric "
    "over the pipeline's runs.",
)
@_friendly
def compare(runs: tuple[str, ...], as_json: bool, html_file: Path | None) -> None:
    """Compare runs: parameters that differ, metrics with deltas against A, gate results,
    and which steps' code changed between their versions.

    \b
    Each run is a run id, pipelines/<name>/vN (its newest successful run),
    pipelines/<name> (the newest successful run of the latest version) or
    champion (the champion of the pipeline the others name).
    """
    from .compare.resolve import resolve_runs
    from .compare.tables import build_comparison
    from .run_folder import runs_home

    home = runs_home()
    comparison = build_comparison(home, resolve_runs(home, runs))
    if html_file is not None:
        from .compare.html import write_html

        write_html(html_file, home, comparison)
    if as_json:
        click.echo(json.dumps(comparison.to_json(), indent=2, ensure_ascii=False))
    else:
        from .compare.text import comparison_text

        click.echo(comparison_text(comparison), nl=False)
        if html_file is not None:
            click.echo(f"\nWrote {html_file}")


# --- beyond one machine: engines run `step` and `track`; `compile` and `sweep` feed them --------
@main.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.argument("step_name", metavar="STEP")
@click.option(
    "--run-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run folder: upstream steps' folders are read from it, this step's written to it.",
)
@_parameter_options
@click.option(
    "--step-timeout",
    type=float,
    metavar="SECONDS",
    callback=lambda ctx, param, value: _positive_seconds(value),
    help="Stop the step if it runs longer (a positive number of seconds).",
)
@_friendly
def step(
    pipeline: Path,
    step_name: str,
    run_dir: Path,
    assignments: tuple[str, ...],
    files: tuple[Path, ...],
    step_timeout: float | None,
) -> None:
    """Run one STEP of PIPELINE (pipelines/<name>[/vN]) in a fresh kernel, in RUN_DIR.

    Upstream steps' results are read from RUN_DIR/steps/<step>/ (where earlier `nb2prod step`
    calls left them); this step's folder and record (steps/<STEP>/step.json) are written
    there. It is what every engine task runs (`nb2prod compile`); `nb2prod track RUN_DIR`
    logs the assembled run to MLflow. Not cached: engines cache.

    \b
    Exit codes: 0 success, 1 the step failed, 2 bad input (such as a missing upstream step).
    """
    from .pipeline import load_pipeline
    from .run.single import run_single_step

    spec = load_pipeline(pipeline)
    result = run_single_step(
        spec, step_name, run_dir, files=files, assignments=assignments, step_timeout=step_timeout
    )
    click.echo(result.text(), err=result.exit_code != 0)
    sys.exit(result.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@_friendly
def track(run_dir: Path) -> None:
    """Log RUN_DIR, a run folder assembled by `nb2prod step` calls, to MLflow.

    Logged as `nb2prod run` logs its own runs (a parent run, one nested run per step, metrics,
    models, executed notebooks), to MLFLOW_TRACKING_URI, else ./mlflow.db. RUN_DIR/run.json is
    written from the steps' records first.

    \b
    Exit codes: 0 logged, 2 bad input, 3 MLflow could not be reached or refused the run.
    """
    from .run.assemble import track_run_folder

    result = track_run_folder(run_dir)
    click.echo(result.text(), err=result.exit_code != 0)
    sys.exit(result.exit_code)


@main.command(name="compile")
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option("--target", required=True, metavar="kfp|airflow", help="The engine to compile for.")
@click.option(
    "--image",
    metavar="IMAGE",
    help="The image the steps run in (default: nb2prod-<name>:vN, built from the Dockerfile "
    "written beside).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write (default: build/<name>-vN-<target>/).",
)
@_friendly
def compile_(pipeline: Path, target: str, image: str | None, out: Path | None) -> None:
    """Compile PIPELINE (pipelines/<name>[/vN]) for Kubeflow Pipelines or Airflow.

    kfp: pipeline.py (KFP v2 DSL) and pipeline.yaml (compiled by kfp, ready to upload);
    airflow: dag.py (Airflow 3). Both: a Dockerfile from the version's requirements.txt and a
    README with the commands to submit. The version folder itself is never touched.
    """
    from .compile import check_target, compile_version
    from .pipeline import load_pipeline

    check_target(target)
    spec = load_pipeline(pipeline)
    click.echo(compile_version(spec, target, out=out, image=image).text())


@main.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option(
    "-p",
    "--param",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2,...",
    help="A parameter and the values to try (repeatable; the sweep is every combination).",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    metavar="N",
    help="Runs at a time on this machine (default: the number of cores).",
)
@click.option(
    "--cluster",
    metavar="tcp://HOST:8786",
    help="Run on this Dask cluster instead (needs nb2prod[dask]; the project folder must be "
    "at the same path on every worker).",
)
@click.option(
    "--sort",
    "sort_by",
    metavar="[-]METRIC",
    help="Sort the table by a metric (-METRIC: highest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per point.")
@click.option("--no-track", is_flag=True, help="Do not log to MLflow.")
@_friendly
def sweep(
    pipeline: Path,
    grid: tuple[str, ...],
    parallel: int | None,
    cluster: str | None,
    sort_by: str | None,
    as_json: bool,
    no_track: bool,
) -> None:
    """Run PIPELINE once per combination of parameter values, locally or on a Dask cluster.

    Each point is a whole `nb2prod run`; steps upstream of the swept parameters are computed
    once and shared through the cache. Each run is tagged with the sweep's id in MLflow.

    \b
    Exit codes: 0 every point succeeded, 1 a point failed, 2 bad input or usage,
    3 every point succeeded but one could not be tracked, 130 interrupted.
    """
    from .sweep import sweep_command

    sys.exit(
        sweep_command(
            pipeline,
            grid,
            parallel=parallel,
            cluster=cluster,
            sort_by=sort_by,
            as_json=as_json,
            track=not no_track,
        )
    )


@main.command()
@click.argument("target", metavar="RUN_ID|champion|PIPELINE")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--pipeline", default=None, help="For `champion`: whose (when there are several).")
@_friendly
def serve(target: str, port: int, host: str, pipeline: str | None) -> None:
    """Serve a run's serving model with MLflow's scoring server (POST /invocations).

    \b
    TARGET is one of:
      RUN_ID          an nb2prod run (`nb2prod runs` lists them), or an MLflow run id
      champion        the pipeline's champion in the MLflow registry (--pipeline NAME
                      when there are several pipelines)
      pipelines/x     the newest successful run of a pipeline (or of .../vN)
    """
    from .run_index import runs_home
    from .serving.serve import curl_example, resolve, run_server

    found = resolve(target, pipeline, runs_home())
    click.echo(f"Serving {found.what}: {found.uri}")
    click.echo(f"  POST http://{host}:{port}/invocations (MLflow's scoring server; Ctrl-C stops)")
    click.echo(f"  try: {curl_example(found, host, port)}")
    sys.stdout.flush()
    sys.exit(run_server(found, host, port))


if __name__ == "__main__":  # pragma: no cover
    main()


_leave_at_once = False  # set by `run` once every result is written and printed


def console_main() -> None:
    """The ``nb2prod`` command. After a run it leaves with ``os._exit``: everything is on disk
    and printed by then, and tearing down papermill, MLflow and ZeroMQ's kernel channels would
    add ~0.4 s to every run for nothing."""
    try:
        main()
    except SystemExit as exc:
        if _leave_at_once:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise
