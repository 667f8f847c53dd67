/**
 * What the panel, the run form and the notifications say about quality gates (issue 13):
 * metrics against the baseline, a mark per gate, the gates' outcome, and the run form's
 * baseline choice. Pure functions of the REST API's answers, testable without React.
 */
import {
  hasEnded,
  IGateResult,
  IPipelineVersion,
  IRun,
  IRunBaseline,
  IRunGates
} from './api';
import { formatMetric } from './format';

/**
 * A metric of a run beside the baseline's value of it.
 */
export interface IMetricRow {
  name: string;
  value: number;
  /**
   * The baseline's value, or `null` when there is no baseline or it lacks the metric.
   */
  baseline: number | null;
  /**
   * `value - baseline`, or `null`.
   */
  delta: number | null;
}

/**
 * The run's metrics, each with its change against the baseline's.
 */
export function metricRows(run: IRun): IMetricRow[] {
  const base = run.baseline?.metrics ?? {};
  return Object.entries(run.metrics ?? {}).map(([name, value]) => {
    const b = base[name];
    const baseline = typeof b === 'number' ? b : null;
    const delta =
      baseline !== null && typeof value === 'number' ? value - baseline : null;
    return { name, value, baseline, delta };
  });
}

/**
 * How a gate's result shows: its style, a symbol (never alone: the text says the same) and
 * the text.
 */
export interface IGateMark {
  kind: 'passed' | 'failed' | 'nobaseline';
  symbol: string;
  text: string;
}

export function gateMark(result: IGateResult): IGateMark {
  switch (result.status) {
    case 'passed':
      return { kind: 'passed', symbol: '✓', text: 'pass' };
    case 'failed':
      return { kind: 'failed', symbol: '✗', text: 'fail' };
    default:
      return { kind: 'nobaseline', symbol: '–', text: 'no baseline' };
  }
}

/**
 * A gate's value and threshold, as the panel's gate table shows them: `0.93 < 0.94`.
 */
export function gateNumbers(result: IGateResult): string {
  const value = result.value === null ? '–' : formatMetric(result.value);
  if (result.threshold === null) {
    return value;
  }
  return `${value} vs ${formatMetric(result.threshold)}`;
}

/**
 * The gates' outcome in one line: `Gates passed (3)`, `Gates failed: 1 of 3`, with those
 * that had no baseline counted apart.
 */
export function gatesSummary(gates: IRunGates): {
  kind: 'passed' | 'failed' | 'notchecked';
  text: string;
} {
  const n = gates.results.length;
  const failed = gates.results.filter(r => r.status === 'failed').length;
  const open = gates.results.filter(r => r.status === 'no baseline').length;
  const noBaseline = open ? `, ${open} without a baseline` : '';
  if (gates.status === 'not checked') {
    return { kind: 'notchecked', text: 'Gates not checked' };
  }
  if (gates.status === 'failed') {
    return {
      kind: 'failed',
      text: `Gates failed: ${failed} of ${n}${noBaseline}`
    };
  }
  return {
    kind: 'passed',
    text: `Gates passed (${n - open} of ${n}${noBaseline})`
  };
}

/**
 * What the promotion did, or `null` when none was asked for.
 */
export function promotionLine(gates: IRunGates): string | null {
  if (!gates.promote) {
    return null;
  }
  const models = Object.entries(gates.promoted?.models ?? {});
  if (gates.promoted) {
    const names = models.map(([name, v]) => `${name} v${v}`).join(', ');
    return `Promoted to champion${names ? `: ${names}` : ''}.`;
  }
  return gates.status === 'failed'
    ? 'Not promoted: a gate failed, the champion stays.'
    : 'Not promoted.';
}

/**
 * Which run the gates compared with, in one line.
 */
export function baselineLine(
  baseline: IRunBaseline | null | undefined
): string {
  if (!baseline) {
    return 'No baseline: gates on `baseline` were not checked.';
  }
  if (baseline.run_id === null && baseline.mlflow_run_id === null) {
    return `No baseline found (${baseline.requested}): gates on \`baseline\` were not checked.`;
  }
  const parts = [baseline.source];
  if (baseline.version !== null) {
    parts.push(`v${baseline.version}`);
  }
  const id = baseline.run_id ?? baseline.mlflow_run_id;
  return `Compared with ${parts.join(', ')}: run ${id}`;
}

/**
 * How a run ended, gates included. A run whose steps all succeeded but whose gates failed
 * is `gates-failed`: a worse model, not a crash.
 */
export type RunOutcome =
  | 'queued'
  | 'running'
  | 'succeeded'
  | 'gates-failed'
  | 'failed'
  | 'interrupted';

export function runOutcome(run: IRun): RunOutcome {
  if (!hasEnded(run)) {
    return run.status;
  }
  const crashed = Object.values(run.steps).some(
    s => s.state === 'failed' || s.state === 'interrupted'
  );
  if (
    !crashed &&
    run.status !== 'interrupted' &&
    run.gates?.status === 'failed'
  ) {
    return 'gates-failed';
  }
  return run.status as RunOutcome;
}

/**
 * The failed gates' expressions.
 */
export function failedGates(run: IRun): string[] {
  return (run.gates?.results ?? [])
    .filter(r => r.status === 'failed')
    .map(r => r.expr);
}

/**
 * A run id as the runner makes them (nb2prod/run_folder.py's RUN_ID_RE).
 */
const RUN_ID = /^[0-9]{8}-[0-9]{6}-[0-9]{3}[0-9a-f]{4}$/;

/**
 * The run form's baseline choices: the champion (the default), the previous run, the newest
 * run of each version, or a run id typed in (`run`).
 */
export function baselineChoices(
  versions: readonly IPipelineVersion[]
): { value: string; label: string }[] {
  const byNewest = [...versions].sort((a, b) => b.version - a.version);
  return [
    { value: 'champion', label: 'Champion (default)' },
    { value: 'previous', label: 'Previous run' },
    ...byNewest.map(v => ({
      value: `v${v.version}`,
      label: `Newest run of v${v.version}`
    })),
    { value: 'run', label: 'A run id…' }
  ];
}

/**
 * The baseline a form asks for, from its choice and (for `run`) the typed run id.
 */
export function readBaseline(
  choice: string,
  runId: string
): { ok: true; value: string } | { ok: false; error: string } {
  if (choice !== 'run') {
    return { ok: true, value: choice };
  }
  const id = runId.trim();
  if (!RUN_ID.test(id)) {
    return {
      ok: false,
      error:
        'Enter a run id, like 20261122-074521-604c3f1 (nb2prod runs lists them).'
    };
  }
  return { ok: true, value: id };
}
