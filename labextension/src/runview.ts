/**
 * What the panel and the notifications say about a run, and which pipeline a run starts
 * from: pure functions of the REST API's answers, kept free of React so that they can be
 * tested on their own.
 */
import {
  hasEnded,
  IPipeline,
  IPipelineVersion,
  IRun,
  IRunStep,
  isFinished,
  totalDuration,
  trackingPhase
} from './api';
import { formatDuration } from './format';
import { failedGates, runOutcome } from './gates';
import { servingFailure } from './serving';

/**
 * How a step's state shows: a kind (its style), a symbol (never alone: the text says the
 * same), the text, and the detail (the exception, or why the step did not run).
 */
export interface IStepStateView {
  kind:
    | 'queued'
    | 'running'
    | 'cached'
    | 'succeeded'
    | 'failed'
    | 'interrupted'
    | 'notrun';
  symbol: string;
  text: string;
  detail: string;
}

/**
 * The view of a step's state. A step that never ran (`skipped`: not selected, or an upstream
 * step failed; or still `queued` when the run is over) reads "not run", not as a failure.
 */
export function stepStateView(
  state: IRunStep,
  runEnded: boolean
): IStepStateView {
  const error = state.error;
  const detail = error
    ? `${error.message || `${error.ename}: ${error.evalue}`}${error.cell ? ` (in ${error.cell})` : ''}`
    : '';
  switch (state.state) {
    case 'queued':
      return runEnded
        ? { kind: 'notrun', symbol: '–', text: 'not run', detail }
        : { kind: 'queued', symbol: '', text: 'queued', detail: '' };
    case 'running':
      return { kind: 'running', symbol: '', text: 'running', detail: '' };
    case 'cached':
      return { kind: 'cached', symbol: '', text: 'cached', detail: '' };
    case 'succeeded':
      return {
        kind: 'succeeded',
        symbol: '✓',
        text: formatDuration(state.duration),
        detail: ''
      };
    case 'skipped':
      return {
        kind: 'notrun',
        symbol: '–',
        text: 'not run',
        // The runner says "not run because step X did not succeed": the text says "not run".
        detail: (error?.message ?? '').replace(/^not run because /, '')
      };
    case 'interrupted':
      return { kind: 'interrupted', symbol: '✗', text: 'interrupted', detail };
    default:
      return { kind: 'failed', symbol: '✗', text: 'failed', detail };
  }
}

/**
 * Where a run stands, for the panel: `running` (steps), `tracking` (the steps are over, the
 * results are being logged to MLflow) or `done`.
 */
export type RunPhase = 'running' | 'tracking' | 'done';

export function runPhase(run: IRun): RunPhase {
  if (!hasEnded(run)) {
    return 'running';
  }
  return isFinished(run) ? 'done' : 'tracking';
}

/**
 * Seconds since an ISO time, or `null`.
 */
function secondsSince(iso: string | undefined, now: number): number | null {
  const t = iso ? Date.parse(iso) : NaN;
  return isFinite(t) ? Math.max(0, (now - t) / 1000) : null;
}

/**
 * The durations of a finished run: the total the user waited, and its parts.
 */
function took(run: IRun): string {
  const total = totalDuration(run);
  if (total === null) {
    return '';
  }
  const mlflow = run.tracking?.duration;
  if (mlflow === undefined || mlflow === null) {
    return ` in ${formatDuration(total)}`;
  }
  return ` in ${formatDuration(total)} (steps ${formatDuration(run.duration)}, MLflow ${formatDuration(mlflow)})`;
}

/**
 * One line about a run, as it stands: the panel's status line and the notification's text.
 *
 * @param now The time, for how long MLflow logging has taken so far; `null` leaves it out
 * (a notification is not updated every second).
 */
export function runHeadline(
  run: IRun,
  now: number | null = Date.now()
): string {
  const name = `${run.pipeline} v${run.version}`;
  switch (runPhase(run)) {
    case 'running':
      return run.status === 'queued' ? `${name}: queued` : `${name}: running…`;
    case 'tracking': {
      const steps = run.duration ? ` in ${formatDuration(run.duration)}` : '';
      const since =
        now === null ? null : secondsSince(run.tracking?.started_at, now);
      return (
        `${name}: steps ${run.status}${steps}; logging to MLflow…` +
        (since !== null ? ` ${formatDuration(since)}` : '')
      );
    }
    default: {
      const failed = Object.entries(run.steps).find(
        ([, s]) => s.state === 'failed'
      );
      if (run.status === 'failed' && failed) {
        return `${name} failed${took(run)}: step ${failed[0]}: ${failed[1].error?.message ?? ''}`;
      }
      // Every step succeeded, but the serving model could not be logged or gave other
      // answers than the function did inside the run (training/serving skew).
      const serving = run.status === 'failed' ? servingFailure(run) : null;
      if (serving) {
        return `${name} failed${took(run)}: ${serving}`;
      }
      if (runOutcome(run) === 'gates-failed') {
        const gates = failedGates(run);
        const which = gates.length === 1 ? 'a gate' : `${gates.length} gates`;
        return `${name}: steps succeeded${took(run)}, but ${which} failed: ${gates.join('; ')}`;
      }
      const passed = run.gates?.status === 'passed' ? '; gates passed' : '';
      return `${name} ${run.status}${took(run)}${passed}`;
    }
  }
}

/**
 * What the run's MLflow line says once tracking is over (`null` when there is nothing to say).
 */
export function trackingLine(run: IRun): { ok: boolean; text: string } | null {
  const phase = trackingPhase(run);
  const tracking = run.tracking;
  if (phase === 'lost') {
    return {
      ok: false,
      text: "Not tracked in MLflow: the run's process ended before logging finished."
    };
  }
  if (phase !== 'done' || !tracking) {
    return null;
  }
  if (tracking.error) {
    return { ok: false, text: `Not tracked in MLflow: ${tracking.error}` };
  }
  return null;
}

/**
 * The pipeline exported from `notebook` (its latest export if several are), or -1 when none
 * was: another pipeline is never preselected for a notebook, it would run the wrong code.
 * Without a notebook, the first pipeline.
 */
export function preferredPipeline(
  pipelines: IPipeline[],
  notebook: string | null
): number {
  if (notebook === null) {
    return pipelines.length ? 0 : -1;
  }
  let best = -1;
  let bestDate = '';
  pipelines.forEach((p, k) => {
    for (const v of p.versions) {
      if (v.notebook === notebook && (best < 0 || v.created_at > bestDate)) {
        best = k;
        bestDate = v.created_at ?? '';
      }
    }
  });
  return best;
}

/**
 * A pipeline version and the name of its pipeline.
 */
export interface IExportedVersion {
  pipeline: string;
  version: IPipelineVersion;
}

/**
 * The latest version exported from `notebook` (a path relative to the server's root), or
 * `null` when it was never exported: what Compile compiles.
 */
export function latestExported(
  pipelines: IPipeline[],
  notebook: string
): IExportedVersion | null {
  let best: IExportedVersion | null = null;
  for (const pipeline of pipelines) {
    for (const version of pipeline.versions) {
      if (
        version.notebook === notebook &&
        (best === null ||
          (version.created_at ?? '') > (best.version.created_at ?? ''))
      ) {
        best = { pipeline: pipeline.name, version };
      }
    }
  }
  return best;
}
