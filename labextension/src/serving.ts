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
   * The whole line: `predict(raw) uses features (parameter), model from training, scaler
   * from preprocessing` (the server's own words when it sends them).
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
 * What the line says of a function that uses no step output or parameter.
 */
export const USES_NOTHING = 'uses nothing from the steps';

/**
 * The serving line as `nb2prod inspect` prints it (nb2prod/plan/serving.py), built from its
 * parts for servers that do not send `summary`.
 */
export function servingSummary(serving: IServing): string {
  const signature = servingSignature(serving);
  if (serving.needs.length === 0) {
    return `${signature} ${USES_NOTHING}`;
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
 * - `ok`: built (and logged, when tracked), and served it answered the recorded input as the
 *   function did inside the run;
 * - `unchecked`: built, but there was no input example to check it on;
 * - `skew`: served, it answers otherwise (the run fails: training/serving skew);
 * - `failed`: it could not be built or loaded (the run fails).
 */
export interface IServingRunView {
  kind: 'ok' | 'unchecked' | 'skew' | 'failed';
  /**
   * In the words of the CLI's summary line (nb2prod/serving/outcome.py), or the run's error.
   */
  text: string;
  /**
   * The command that serves the model, once it is built and checked.
   */
  command: string | null;
  /**
   * The model's MLflow URI, when the run logged it.
   */
  model: string | null;
}

/**
 * The MLflow model name of a run's serving model (`runs:/<id>/serving`).
 */
export const SERVING_MODEL_NAME = 'serving';

const SKEW = 'training/serving skew';

/**
 * The command that serves a run's model.
 */
export function serveCommand(runId: string): string {
  return `nb2prod serve ${runId}`;
}

/**
 * The one line about a run's serving model; `null` when the run has none (its notebook has
 * no serving function, its steps did not all succeed, or the run is older).
 */
export function servingRunView(run: IRun): IServingRunView | null {
  const serving: IRunServing | null | undefined = run.serving;
  if (!serving) {
    return null;
  }
  const shown = serving.signature || serving.function;
  const error = serving.error ?? null;
  if (serving.skew === 'found') {
    return {
      kind: 'skew',
      text: error ?? `${shown}: ${SKEW} found.`,
      command: null,
      model: null
    };
  }
  if (serving.status !== 'ok') {
    return {
      kind: 'failed',
      text: `No serving model: ${error ?? `${shown} could not be built.`}`,
      command: null,
      model: null
    };
  }
  const uri = run.tracking?.ok ? (run.tracking.serving_model ?? null) : null;
  const where = uri
    ? `logged as model '${SERVING_MODEL_NAME}'`
    : `saved as ${serving.model ?? 'serving/model'}`;
  const rows = serving.rows ?? 0;
  const checked = serving.skew === 'none' && rows > 0;
  let check = checked
    ? `no ${SKEW} on ${rows} row${rows === 1 ? '' : 's'}`
    : 'no input example, so no skew check';
  if (checked && serving.example_from) {
    check += ` (input example from ${serving.example_from})`;
  }
  const reused = serving.reused_from
    ? ` (reused from run ${serving.reused_from})`
    : '';
  return {
    kind: checked ? 'ok' : 'unchecked',
    text: `${shown} ${where}, ${check}${reused}.`,
    command: serveCommand(run.id),
    model: uri
  };
}

/**
 * Why a run failed when no step did: its serving model (skew, or it could not be built);
 * `null` otherwise.
 */
export function servingFailure(run: IRun): string | null {
  const view = servingRunView(run);
  if (!view || (view.kind !== 'skew' && view.kind !== 'failed')) {
    return null;
  }
  return run.serving?.error ?? view.text;
}
