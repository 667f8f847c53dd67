/**
 * The nb2prod REST API under `/nb2prod/`, typed.
 *
 * The shapes follow `nb2prod inspect --json` (docs/inspect-json.md) and the run record
 * `run.json` (docs/running.md).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { APIError, requestAPI } from './request';

/**
 * A parameter of the plan.
 */
export interface IParameter {
  name: string;
  value: unknown;
  type: string;
  help: string;
  cell?: number;
  used_by?: string[];
}

/**
 * A step of the plan.
 */
export interface IStep {
  name: string;
  role: string;
  module: string;
  cells: number[];
  inputs: { name: string; from: string }[];
  outputs: string[];
  parameters: string[];
  metrics: string[];
  depends_on: string[];
  /** Data files the step reads; their fingerprints join its cache key. */
  data?: IDataRead[];
}

/**
 * A data file a step reads: as the notebook names it, the 0-based cell that reads it, and the
 * parameter whose value names it.
 */
export interface IDataRead {
  path: string;
  cell: number;
  parameter: string | null;
}

/**
 * A cell of the plan.
 */
export interface IPlanCell {
  index: number;
  id: string | null;
  type: string;
  tags: string[];
  role: string;
  step: string | null;
  metrics: boolean;
  summary: string;
}

/**
 * A problem of the plan.
 */
export interface IProblem {
  code: string;
  severity: 'error' | 'warning';
  message: string;
  fix: string;
  cell: { index: number; id: string | null } | null;
  variable: string | null;
  text: string;
}

/**
 * A quality gate of the plan: one line of the notebook's `gates` cell.
 */
export interface IGate {
  /**
   * The comparison as written, without its comment: `f1 >= baseline - 0.01`.
   */
  expr: string;
  metric: string;
  op: string;
  /**
   * The right side as written: `0.95`, `baseline - 0.01`.
   */
  threshold: string;
  uses_baseline: boolean;
  help: string;
  /**
   * The 0-based index of the `gates` cell, and the 1-based line in it.
   */
  cell: number;
  line: number;
}

/**
 * A name the serving function reads that the run produces: a step's output (`from` is the
 * step) or a parameter (`from` is `parameter`).
 */
export interface IServingNeed {
  name: string;
  from: string;
}

/**
 * The notebook's serving function (issue 14): the one function its `serving` cell defines,
 * the production entry point that every run logs as an MLflow model.
 */
export interface IServing {
  function: string;
  args: string[];
  /**
   * The 0-based index of the `serving` cell.
   */
  cell: number;
  needs: IServingNeed[];
  /**
   * The steps that call the function; their first call is the model's input example.
   */
  callers: string[];
  /**
   * The step output whose first rows are the input example when no step calls the function.
   */
  example: IServingNeed | null;
  /**
   * The CLI's line: `predict(raw) uses scaler from preprocessing, model from training, ...`.
   */
  summary: string;
}

/**
 * The plan of a notebook: `nb2prod inspect --json`.
 */
export interface IPlan {
  schema_version: number;
  notebook: string;
  name: string;
  parameters: IParameter[];
  steps: IStep[];
  dag: { order: string[]; edges: [string, string][] };
  cells: IPlanCell[];
  unassigned: number[];
  problems: IProblem[];
  /**
   * Absent from servers that predate quality gates.
   */
  gates?: IGate[];
  /**
   * The serving function; `null` when the notebook has none, absent from servers that
   * predate serving.
   */
  serving?: IServing | null;
}

/**
 * The answer of `POST export`.
 */
export interface IExportResult {
  name: string;
  version: number;
  path: string;
  created: boolean;
  pipeline_yaml: string;
  readme: string;
  warnings: (IProblem | string)[];
}

/**
 * The engines `POST compile` writes for (`nb2prod compile --target`).
 */
export type CompileTarget = 'kfp' | 'airflow';

/**
 * Each target's engine, as labels and messages name it, and the file a user opens first; in
 * the order menus list them.
 */
export const COMPILE_TARGETS: {
  readonly [target in CompileTarget]: { engine: string; main: string };
} = {
  kfp: { engine: 'Kubeflow Pipelines', main: 'pipeline.py' },
  airflow: { engine: 'Airflow', main: 'dag.py' }
};

/**
 * Whether `value` is a target the server compiles for.
 */
export function isCompileTarget(value: unknown): value is CompileTarget {
  return (
    typeof value === 'string' &&
    Object.prototype.hasOwnProperty.call(COMPILE_TARGETS, value)
  );
}

/**
 * The answer of `POST compile`: what was written where (`out`, relative to the server's root;
 * `files`, relative to `out`), and the commands to try next.
 */
export interface ICompileResult {
  target: CompileTarget;
  out: string;
  files: string[];
  next_steps: string[];
  pipeline: string;
  version: number;
  /**
   * The version compiled, `pipelines/<name>/vN`.
   */
  version_dir: string;
}

/**
 * One version of an exported pipeline, as `GET pipelines` lists it.
 */
export interface IPipelineVersion {
  version: number;
  path: string;
  created_at: string;
  notebook: string;
  steps: { name: string; role: string; depends_on: string[] }[];
  parameters: IParameter[];
}

/**
 * An exported pipeline, as `GET pipelines` lists it.
 */
export interface IPipeline {
  name: string;
  path: string;
  latest: number;
  versions: IPipelineVersion[];
}

/**
 * A step failure in a run record.
 */
export interface IStepError {
  cell: string | null;
  ename: string;
  evalue: string;
  message: string;
}

/**
 * A step in a run record.
 */
export interface IRunStep {
  role?: string;
  state:
    | 'queued'
    | 'running'
    | 'cached'
    | 'succeeded'
    | 'failed'
    | 'skipped'
    | 'interrupted';
  duration: number | null;
  error: IStepError | null;
  notebook: string | null;
  /**
   * The executed notebook, relative to the server's root (under the hidden run folder).
   */
  notebook_path?: string | null;
  metrics: { [name: string]: number };
  cached_from?: string | null;
  /**
   * The step's HTML report, relative to the run folder, once it is rendered.
   */
  report?: string | null;
  /**
   * The same, relative to the server's root.
   */
  report_path?: string | null;
}

/**
 * The run a run's gates were compared with (`run.json`'s `baseline`).
 */
export interface IRunBaseline {
  /**
   * What was asked for: `champion`, `previous`, `vN` or a run id.
   */
  requested: string;
  run_id: string | null;
  mlflow_run_id: string | null;
  version: number | null;
  /**
   * Where it was found, in words: `champion (MLflow registry)`, `previous run`, `v3`...
   */
  source: string;
  metrics: { [name: string]: number };
}

/**
 * The outcome of one gate after a run.
 */
export interface IGateResult {
  expr: string;
  metric: string;
  op: string;
  help: string;
  origin: 'notebook' | 'command line';
  value: number | null;
  baseline: number | null;
  threshold: number | null;
  status: 'passed' | 'failed' | 'no baseline';
  reason: string | null;
}

/**
 * The gates of a run (`run.json`'s `gates`).
 */
export interface IRunGates {
  status: 'passed' | 'failed' | 'not checked';
  results: IGateResult[];
  promote: boolean;
  /**
   * The model versions the run's promotion registered, when it was promoted.
   */
  promoted: { models: { [name: string]: string } } | null;
}

/**
 * The serving model a run built, and its skew check (`run.json`'s `serving`, docs/running.md).
 */
export interface IRunServing {
  function: string;
  /**
   * `predict(raw)`
   */
  signature?: string;
  /**
   * The MLflow model's folder, relative to the run folder (`serving/model`).
   */
  model?: string | null;
  /**
   * Where the input example came from: the caller step whose first call was recorded,
   * `<name> from <step>` for the first rows of a step output, or `null`.
   */
  example_from: string | null;
  /**
   * The rows of the input example.
   */
  rows?: number | null;
  /**
   * `found`: the served model answered the input example otherwise than the function did in
   * the run; `null` when there was no example to check.
   */
  skew: 'none' | 'found' | null;
  /**
   * A failed serving model fails the run.
   */
  status: 'ok' | 'failed';
  error?: string | null;
  duration?: number | null;
  /**
   * The run whose identical model this (all-cached) run reused.
   */
  reused_from?: string | null;
}

/**
 * What a run is asked to check besides its steps (`POST runs`'s optional fields).
 */
export interface IRunOptions {
  /**
   * `champion` (the server's default), `previous`, `vN` or a run id.
   */
  baseline?: string;
  /**
   * Make the run the champion when every gate passes.
   */
  promote?: boolean;
  /**
   * Gate expressions added to the notebook's own.
   */
  gates?: string[];
}

/**
 * The MLflow side of a run record.
 */
export interface IRunTracking {
  /**
   * Absent from records written before tracking had phases: those hold the result only.
   */
  state?: 'pending' | 'logging' | 'done';
  /**
   * When logging started (ISO 8601), while `state` is `logging`.
   */
  started_at?: string;
  /**
   * How long logging took, in seconds, once `state` is `done`.
   */
  duration?: number | null;
  ok?: boolean;
  uri?: string;
  experiment?: string;
  experiment_id?: string | null;
  run_id?: string | null;
  error?: string | null;
  /**
   * The serving model's MLflow URI, when the run logged one.
   */
  serving_model?: string | null;
}

/**
 * A run record: `run.json`.
 */
export interface IRun {
  id: string;
  pipeline: string;
  version: number;
  version_dir?: string;
  notebook?: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'interrupted';
  duration?: number | null;
  params?: { [name: string]: unknown };
  steps: { [name: string]: IRunStep };
  metrics: { [name: string]: number };
  /**
   * `null` when the run is not tracked; else `pending` (from the start), `logging` (while the
   * results are logged to MLflow, after the steps), then `done` with the tracking result.
   */
  tracking?: IRunTracking | null;
  /**
   * The run folder, relative to the server's root.
   */
  dir?: string;
  /**
   * The run's process still runs (it may still be logging to MLflow after `status` ends).
   */
  active?: boolean;
  /**
   * The run the gates compared with; `null` or absent when none was found or asked for.
   */
  baseline?: IRunBaseline | null;
  /**
   * The gates' results; `null` or absent on runs without gates (and older runs).
   */
  gates?: IRunGates | null;
  /**
   * The serving model the run logged; `null` or absent on runs of notebooks without a
   * serving function (and older runs).
   */
  serving?: IRunServing | null;
}

/**
 * Whether a run's status is final.
 */
export function hasEnded(run: IRun): boolean {
  return !(run.status === 'queued' || run.status === 'running');
}

/**
 * Where a run stands with MLflow.
 *
 * - `none`: not tracked (or not yet known: a queued run);
 * - `pending`, `logging`: tracking has not finished;
 * - `done`: tracking finished (its result says whether it worked);
 * - `lost`: the run's process ended before tracking finished (it was killed).
 *
 * Records from servers that predate tracking phases carry the result alone (`done`), or nothing
 * while their process still logs after the steps (`active`).
 */
export type TrackingPhase = 'none' | 'pending' | 'logging' | 'done' | 'lost';

export function trackingPhase(run: IRun): TrackingPhase {
  const tracking = run.tracking;
  if (tracking === undefined || tracking === null) {
    return tracking === undefined && hasEnded(run) && run.active === true
      ? 'logging'
      : 'none';
  }
  const state = tracking.state ?? 'done';
  if (state === 'done') {
    return 'done';
  }
  return hasEnded(run) && run.active === false ? 'lost' : state;
}

/**
 * Whether a run is over: its steps are done and so is its MLflow logging.
 */
export function isFinished(run: IRun): boolean {
  const phase = trackingPhase(run);
  return hasEnded(run) && phase !== 'pending' && phase !== 'logging';
}

/**
 * The time the user waited for a finished run: the steps, then MLflow logging.
 */
export function totalDuration(run: IRun): number | null {
  if (run.duration === null || run.duration === undefined) {
    return null;
  }
  return run.duration + (run.tracking?.duration ?? 0);
}

/**
 * The REST endpoints of the server extension, relative to `/nb2prod/` (`requestAPI` joins them
 * to the server's base URL). Every URL the extension asks for is built here.
 */
export namespace Endpoints {
  /**
   * `GET` the plan of a saved notebook; without `path`, `POST` one's content.
   */
  export function inspect(path?: string): string {
    return path === undefined
      ? 'inspect'
      : `inspect?path=${encodeURIComponent(path)}`;
  }

  /**
   * `POST` a notebook to export it.
   */
  export const exportNotebook = 'export';

  /**
   * `GET` every exported pipeline.
   */
  export const pipelines = 'pipelines';

  /**
   * `POST` a run to start it.
   */
  export const runs = 'runs';

  /**
   * `GET` the record of a run.
   */
  export function run(id: string): string {
    return `runs/${encodeURIComponent(id)}`;
  }

  /**
   * `GET` the executed notebook of a step of a run.
   */
  export function runNotebook(id: string, step: string): string {
    return `${run(id)}/notebook?step=${encodeURIComponent(step)}`;
  }

  /**
   * `GET` the HTML report of a step of a run.
   */
  export function runReport(id: string, step: string): string {
    return `${run(id)}/report?step=${encodeURIComponent(step)}`;
  }

  /**
   * `POST` a version and a target to compile it for that engine.
   */
  export const compile = 'compile';
}

/**
 * The client of the server extension.
 */
export class Nb2prodAPI {
  constructor(serverSettings: ServerConnection.ISettings) {
    this._settings = serverSettings;
  }

  /**
   * The plan of a notebook; with `content`, of that (unsaved) notebook JSON.
   */
  inspect(path: string, content?: unknown): Promise<IPlan> {
    if (content === undefined) {
      return requestAPI<IPlan>(Endpoints.inspect(path), this._settings);
    }
    return requestAPI<IPlan>(Endpoints.inspect(), this._settings, {
      method: 'POST',
      body: JSON.stringify({ path, content })
    });
  }

  /**
   * Export a (saved) notebook.
   */
  export(path: string, name?: string): Promise<IExportResult> {
    return requestAPI<IExportResult>(Endpoints.exportNotebook, this._settings, {
      method: 'POST',
      body: JSON.stringify(name ? { path, name } : { path })
    });
  }

  /**
   * Every exported pipeline and its versions.
   */
  async pipelines(): Promise<IPipeline[]> {
    const answer = await requestAPI<{ pipelines: IPipeline[] }>(
      Endpoints.pipelines,
      this._settings
    );
    return answer.pipelines ?? [];
  }

  /**
   * Start a run of `pipeline` (`pipelines/<name>/vN`) with parameter overrides, and what it
   * checks besides (only the options given are sent: the server's defaults stay its own).
   */
  async startRun(
    pipeline: string,
    params: { [name: string]: unknown },
    options: IRunOptions = {}
  ): Promise<string> {
    const answer = await requestAPI<{ id: string }>(
      Endpoints.runs,
      this._settings,
      {
        method: 'POST',
        body: JSON.stringify(runBody(pipeline, params, options))
      }
    );
    return answer.id;
  }

  /**
   * The record of a run.
   */
  run(id: string): Promise<IRun> {
    return requestAPI<IRun>(Endpoints.run(id), this._settings);
  }

  /**
   * The executed notebook (its JSON) of a step of a run.
   */
  runNotebook(id: string, step: string): Promise<any> {
    return requestAPI<any>(Endpoints.runNotebook(id, step), this._settings);
  }

  /**
   * The HTML report of a step of a run (its text: it is not JSON).
   */
  async runReport(id: string, step: string): Promise<string> {
    const url = URLExt.join(
      this._settings.baseUrl,
      'nb2prod',
      Endpoints.runReport(id, step)
    );
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {}, this._settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as any);
    }
    const text = await response.text();
    if (!response.ok) {
      let body: any = text;
      try {
        body = JSON.parse(text);
      } catch {
        // An error page: its text is the message.
      }
      throw new APIError(response, body);
    }
    return text;
  }

  /**
   * Compile `pipeline` (`pipelines/<name>/vN`, or `pipelines/<name>` for its latest version)
   * for `target`, into `build/<name>-vN-<target>/` under the server's root.
   */
  compile(pipeline: string, target: CompileTarget): Promise<ICompileResult> {
    return requestAPI<ICompileResult>(Endpoints.compile, this._settings, {
      method: 'POST',
      body: JSON.stringify({ pipeline, target })
    });
  }

  private _settings: ServerConnection.ISettings;
}

/**
 * The body of `POST runs`: the options that are set, and nothing else.
 */
export function runBody(
  pipeline: string,
  params: { [name: string]: unknown },
  options: IRunOptions = {}
): { [key: string]: unknown } {
  const body: { [key: string]: unknown } = { pipeline, params };
  if (options.baseline) {
    body.baseline = options.baseline;
  }
  if (options.promote) {
    body.promote = true;
  }
  if (options.gates && options.gates.length > 0) {
    body.gates = options.gates;
  }
  return body;
}
