/**
 * What the panel says about the notebook's serving function (issue 14): the function, what it
 * uses and where each comes from, after inspect; the serving model a run logged and its skew
 * check, after a run. Pure functions of the REST API's answers, testable without React.
 */
import { IPlan, IRun, IRunServing, IServing, IServingNeed } from './api';

/**
 * A need's `from` when it is a parameter rather than a step output.
 */
export const PARAMETER = 'parameter';

/**
 * A name the serving function uses, as the panel shows it.
 */
export interface IServingNeedView {
  name: string;
  /**
   * The step that gives it, or `null` for a parameter.
   */
  step: string | null;
  /**
   * Where it comes from, in the CLI's words: `from preprocessing`, `(parameter)`.
   */
  text: string;
  /**
   * The 0-based cell a click goes to: the giving step's first cell, or the parameter's cell
   * (`null` when the plan does not know it).
   */
  cell: number | null;
}

/**
 * The serving function, as the panel shows it.
 */
export interface IServingView {
  /**
   * `predict(raw)`
   */
  signature: string;
  needs: IServingNeedView[];
  /**
   * The whole line: `predict(raw) uses scaler from preprocessing, model from training,
   * features (parameter)` (the server's own words when it sends them).
   */
  summary: string;
  /**
   * Where the serving model's input example comes from, or `null` when nothing gives one.
   */
  example: string | null;
}

/**
 * `predict(raw)`
 */
export function servingSignature(serving: IServing): string {
  return `${serving.function}(${serving.args.join(', ')})`;
}

/**
 * Where a need comes from, in the CLI's words.
 */
export function needSource(need: IServingNeed): string {
  return need.from === PARAMETER ? `(${PARAMETER})` : `from ${need.from}`;
}

/**
 * The serving line as `nb2prod inspect` prints it (nb2prod/plan/serving.py), built from its
 * parts for servers that do not send `summary`.
 */
export function servingSummary(serving: IServing): string {
  const signature = servingSignature(serving);
  if (serving.needs.length === 0) {
    return `${signature} uses nothing from the steps`;
  }
  const needs = serving.needs.map(n => `${n.name} ${needSource(n)}`);
  return `${signature} uses ${needs.join(', ')}`;
}

/**
 * Where the input example of the serving model comes from, in one line.
 */
export function exampleLine(serving: IServing): string | null {
  if (serving.callers.length > 0) {
    const steps = serving.callers.join(', ');
    return `input example: the first call of ${serving.function} in ${steps}`;
  }
  if (serving.example) {
    return `input example: the first rows of ${serving.example.name} ${needSource(serving.example)}`;
  }
  return null;
}

/**
 * The serving function of a plan, as the panel shows it; `null` when the notebook has none.
 */
export function servingView(plan: IPlan): IServingView | null {
  const serving = plan.serving;
  if (!serving) {
    return null;
  }
  // In the server's order (by name), as the CLI's line lists them.
  const needs = serving.needs.map(need => {
    const isParameter = need.from === PARAMETER;
    const cell = isParameter
      ? (plan.parameters.find(p => p.name === need.name)?.cell ?? null)
      : (plan.steps.find(s => s.name === need.from)?.cells[0] ?? null);
    return {
      name: need.name,
      step: isParameter ? null : need.from,
      text: needSource(need),
      cell
    };
  });
  return {
    signature: servingSignature(serving),
    needs,
    summary: serving.summary || servingSummary(serving),
    example: exampleLine(serving)
  };
}

/**
 * How a run's serving model shows after the run.
 *
 * - `ok`: logged, and the logged model answered the recorded input as the function did;
 * - `unchecked`: logged, but no input example was recorded, so nothing was compared;
 * - `skew`: the logged model's answer differs (the run fails: training/serving skew);
 * - `failed`: the model could not be logged or checked.
 */
export interface IServingRunView {
  kind: 'ok' | 'unchecked' | 'skew' | 'failed';
  text: string;
  /**
   * The command that serves the model, once it is logged and checked.
   */
  command: string | null;
  /**
   * Where the model was logged (an MLflow model URI), when known.
   */
  model: string | null;
}

function rowsText(n: number): string {
  return `${n} row${n === 1 ? '' : 's'}`;
}

/**
 * The command that serves a run's model.
 */
export function serveCommand(runId: string): string {
  return `nb2prod serve ${runId}`;
}

/**
 * The one line about a run's serving model; `null` when the run logged none (its notebook has
 * no serving function, or the run is older).
 */
export function servingRunView(run: IRun): IServingRunView | null {
  const serving: IRunServing | null | undefined = run.serving;
  if (!serving) {
    return null;
  }
  const model = serving.model ?? null;
  const error = serving.error ?? null;
  if (serving.skew === 'found') {
    return {
      kind: 'skew',
      text: `Serving model ${serving.function}: ${error ?? 'training/serving skew'}`,
      command: null,
      model
    };
  }
  if (serving.status !== 'ok') {
    return {
      kind: 'failed',
      text: `Serving model ${serving.function} not logged${error ? `: ${error}` : '.'}`,
      command: null,
      model
    };
  }
  const from = serving.example_from
    ? ` (input example from ${serving.example_from})`
    : '';
  if (!serving.rows) {
    return {
      kind: 'unchecked',
      text: `Logged serving model ${serving.function}; skew not checked: no input example was recorded.`,
      command: serveCommand(run.id),
      model
    };
  }
  return {
    kind: 'ok',
    text: `Logged serving model ${serving.function}; skew check passed on ${rowsText(serving.rows)}${from}.`,
    command: serveCommand(run.id),
    model
  };
}

/**
 * Why a run failed when no step did: its serving model (skew, or it could not be logged);
 * `null` otherwise.
 */
export function servingFailure(run: IRun): string | null {
  const view = servingRunView(run);
  if (!view || (view.kind !== 'skew' && view.kind !== 'failed')) {
    return null;
  }
  return run.serving?.error ?? view.text;
}
