/**
 * Run pipeline: choose an exported version, edit parameter overrides in a form generated from
 * its config, start the run on the server, and follow it until it ends.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import {
  IParameter,
  IPipeline,
  IPipelineVersion,
  IRun,
  IRunOptions,
  isFinished
} from './api';
import { formatJSONValue } from './format';
import { baselineChoices, readBaseline, runOutcome } from './gates';
import { PipelineModel } from './model';
import { fieldKind, initialText, parseField, readForm } from './paramform';
import { preferredPipeline, runHeadline, runPhase } from './runview';
import { CommandIDs, IRunState } from './tokens';

/**
 * What the run form gives back.
 */
export interface IRunRequest {
  version: IPipelineVersion;
  pipeline: IPipeline;
  overrides: { [name: string]: unknown };
  /**
   * The baseline and promotion asked for.
   */
  options: IRunOptions;
  /**
   * Why a field is not valid, by parameter name (`baseline` for the baseline's run id).
   */
  errors: { [name: string]: string };
}

interface IFormState {
  pipeline: number;
  version: number;
  texts: { [name: string]: string };
  /**
   * A value of {@link baselineChoices}.
   */
  baseline: string;
  /**
   * The run id typed when `baseline` is `run`.
   */
  baselineRun: string;
  promote: boolean;
}

/**
 * A new form's gate options: the champion as baseline, no promotion.
 */
export const GATE_DEFAULTS = {
  baseline: 'champion',
  baselineRun: '',
  promote: false
};

/**
 * The baseline key of {@link IRunRequest.errors}: no parameter can be called that (a
 * parameter name is a Python identifier).
 */
export const BASELINE_FIELD = '-baseline';

/**
 * The run dialog's body: pipeline and version pickers, then one field per parameter.
 */
export class RunForm
  extends ReactWidget
  implements Dialog.IBodyWidget<IRunRequest>
{
  constructor(pipelines: IPipeline[], initial: IFormState) {
    super();
    this.addClass('nb2prod-RunForm');
    this._pipelines = pipelines;
    this._state = initial;
  }

  getValue(): IRunRequest {
    const pipeline = this._pipelines[this._state.pipeline];
    const version = versionOf(pipeline, this._state.version);
    const { overrides, errors } = readForm(
      version.parameters,
      this._state.texts
    );
    const baseline = readBaseline(
      this._state.baseline,
      this._state.baselineRun
    );
    if (!baseline.ok) {
      errors[BASELINE_FIELD] = baseline.error;
    }
    const options: IRunOptions = {
      // The server's default is the champion: send it only when another was chosen.
      baseline:
        baseline.ok && baseline.value !== 'champion'
          ? baseline.value
          : undefined,
      promote: this._state.promote
    };
    return { pipeline, version, overrides, options, errors };
  }

  /**
   * The form's current state (to show it again after a failed submit).
   */
  get state(): IFormState {
    return this._state;
  }

  render(): JSX.Element {
    return (
      <RunFormView
        pipelines={this._pipelines}
        initial={this._state}
        onChange={state => {
          this._state = state;
          const { errors } = this.getValue();
          const accept = this.node
            .closest('.jp-Dialog-content')
            ?.querySelector<HTMLButtonElement>('button.jp-mod-accept');
          if (accept) {
            accept.disabled = Object.keys(errors).length > 0;
          }
        }}
      />
    );
  }

  private _pipelines: IPipeline[];
  private _state: IFormState;
}

function versionOf(pipeline: IPipeline, version: number): IPipelineVersion {
  return (
    pipeline.versions.find(v => v.version === version) ??
    pipeline.versions[pipeline.versions.length - 1]
  );
}

function RunFormView(props: {
  pipelines: IPipeline[];
  initial: IFormState;
  onChange: (state: IFormState) => void;
}): JSX.Element {
  const { pipelines, onChange } = props;
  const [state, setState] = React.useState<IFormState>(props.initial);
  const update = (next: IFormState) => {
    setState(next);
    onChange(next);
  };
  const pipeline = pipelines[state.pipeline];
  const version = versionOf(pipeline, state.version);
  const versions = [...pipeline.versions].sort((a, b) => b.version - a.version);
  return (
    <div className="nb2prod-RunForm-body">
      <div className="nb2prod-RunForm-row">
        <label htmlFor="nb2prod-run-pipeline">Pipeline</label>
        <select
          id="nb2prod-run-pipeline"
          className="jp-mod-styled nb2prod-RunForm-select"
          value={state.pipeline}
          onChange={e => {
            const index = Number(e.target.value);
            update({
              ...state,
              pipeline: index,
              version: pipelines[index].latest,
              texts: {},
              // Another pipeline has other versions to compare with.
              baseline: state.baseline.startsWith('v')
                ? 'champion'
                : state.baseline
            });
          }}
        >
          {pipelines.map((p, k) => (
            <option key={p.name} value={k}>
              {p.name}
            </option>
          ))}
        </select>
      </div>
      <div className="nb2prod-RunForm-row">
        <label htmlFor="nb2prod-run-version">Version</label>
        <select
          id="nb2prod-run-version"
          className="jp-mod-styled nb2prod-RunForm-select"
          value={version.version}
          onChange={e =>
            update({ ...state, version: Number(e.target.value), texts: {} })
          }
        >
          {versions.map(v => (
            <option key={v.version} value={v.version}>
              v{v.version}
              {v.version === pipeline.latest ? ' (latest)' : ''}
              {v.created_at ? ` · ${v.created_at.slice(0, 10)}` : ''}
            </option>
          ))}
        </select>
      </div>
      <div className="nb2prod-RunForm-steps nb2prod-muted">
        {version.path}: {version.steps.map(s => s.name).join(' → ')}
        {version.notebook && <> · exported from {version.notebook}</>}
      </div>
      <fieldset className="nb2prod-RunForm-params">
        <legend>Parameters</legend>
        {version.parameters.length === 0 && (
          <p className="nb2prod-muted">This pipeline has no parameters.</p>
        )}
        {version.parameters.map(param => (
          <ParamField
            key={`${version.path}/${param.name}`}
            param={param}
            text={state.texts[param.name] ?? initialText(param)}
            onText={text =>
              update({
                ...state,
                texts: { ...state.texts, [param.name]: text }
              })
            }
          />
        ))}
      </fieldset>
      <p className="nb2prod-muted">
        Only the values you change are passed as overrides.
      </p>
      <GateFields pipeline={pipeline} state={state} update={update} />
    </div>
  );
}

/**
 * The baseline the gates compare with, and whether a run that passes them is promoted.
 */
function GateFields(props: {
  pipeline: IPipeline;
  state: IFormState;
  update: (state: IFormState) => void;
}): JSX.Element {
  const { pipeline, state, update } = props;
  const baseline = readBaseline(state.baseline, state.baselineRun);
  const error = baseline.ok ? null : baseline.error;
  return (
    <fieldset className="nb2prod-RunForm-gates">
      <legend>Quality gates</legend>
      <div className="nb2prod-RunForm-row">
        <label htmlFor="nb2prod-run-baseline">Baseline</label>
        <select
          id="nb2prod-run-baseline"
          className="jp-mod-styled nb2prod-RunForm-select"
          value={state.baseline}
          aria-describedby="nb2prod-run-baseline-help"
          onChange={e => update({ ...state, baseline: e.target.value })}
        >
          {baselineChoices(pipeline.versions).map(c => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      </div>
      {state.baseline === 'run' && (
        <div
          className={`nb2prod-RunForm-param${error ? ' nb2prod-mod-invalid' : ''}`}
        >
          <label htmlFor="nb2prod-run-baseline-id">Baseline run id</label>
          <input
            id="nb2prod-run-baseline-id"
            className="jp-mod-styled"
            type="text"
            value={state.baselineRun}
            placeholder="20261122-074521-604c3f1"
            spellCheck={false}
            aria-invalid={error !== null}
            aria-describedby="nb2prod-run-baseline-help"
            onChange={e => update({ ...state, baselineRun: e.target.value })}
          />
        </div>
      )}
      <div
        id="nb2prod-run-baseline-help"
        className={`nb2prod-RunForm-help${error ? ' nb2prod-mod-invalid' : ''}`}
        role={error ? 'alert' : undefined}
      >
        {error ??
          'Gates written against `baseline` compare with this run; without one they are reported "no baseline".'}
      </div>
      <div className="nb2prod-RunForm-check">
        <input
          id="nb2prod-run-promote"
          type="checkbox"
          checked={state.promote}
          onChange={e => update({ ...state, promote: e.target.checked })}
        />
        <label htmlFor="nb2prod-run-promote">Promote if gates pass</label>
      </div>
      <div className="nb2prod-RunForm-help">
        The run becomes the pipeline&apos;s champion when every gate passes; a
        failed gate never moves it.
      </div>
    </fieldset>
  );
}

function ParamField(props: {
  param: IParameter;
  text: string;
  onText: (text: string) => void;
}): JSX.Element {
  const { param, text, onText } = props;
  const kind = fieldKind(param.type);
  const id = `nb2prod-param-${param.name}`;
  const parsed = parseField(param, text);
  const error = parsed.ok ? null : parsed.error;
  const helpId = `${id}-help`;
  const common = {
    id,
    'aria-describedby': helpId,
    'aria-invalid': error !== null,
    'data-param': param.name
  };
  let input: JSX.Element;
  switch (kind) {
    case 'bool':
      input = (
        <input
          {...common}
          type="checkbox"
          checked={text === 'true'}
          onChange={e => onText(e.target.checked ? 'true' : 'false')}
        />
      );
      break;
    case 'int':
    case 'float':
      input = (
        <input
          {...common}
          className="jp-mod-styled"
          type="number"
          step={kind === 'int' ? 1 : 'any'}
          value={text}
          onChange={e => onText(e.target.value)}
        />
      );
      break;
    case 'str':
      input = (
        <input
          {...common}
          className="jp-mod-styled"
          type="text"
          value={text}
          spellCheck={false}
          onChange={e => onText(e.target.value)}
        />
      );
      break;
    default:
      input = (
        <textarea
          {...common}
          className="jp-mod-styled nb2prod-RunForm-json"
          rows={2}
          value={text}
          spellCheck={false}
          onChange={e => onText(e.target.value)}
          onKeyDown={e => {
            // Enter adds a line here; it must not submit the dialog.
            if (e.key === 'Enter') {
              e.stopPropagation();
            }
          }}
        />
      );
  }
  return (
    <div
      className={`nb2prod-RunForm-param${error ? ' nb2prod-mod-invalid' : ''}`}
    >
      <label htmlFor={id}>
        <code>{param.name}</code>{' '}
        <span className="nb2prod-muted">
          {param.type} · default {formatJSONValue(param.value, param.type)}
        </span>
      </label>
      {input}
      <div
        id={helpId}
        className="nb2prod-RunForm-help"
        role={error ? 'alert' : undefined}
      >
        {error ?? param.help}
      </div>
    </div>
  );
}

/**
 * The notebook is not exported: say so, and offer Export (or, when there are pipelines,
 * choosing another one deliberately). Answers what the user chose.
 */
async function askNotExported(
  notebook: string,
  others: number
): Promise<'export' | 'other' | 'cancel'> {
  const other = Dialog.createButton({
    label: 'Run Another Pipeline…',
    caption: 'Choose one of the exported pipelines',
    accept: false
  });
  const body = document.createElement('div');
  body.className = 'nb2prod-NotExported';
  body.textContent =
    `${notebook} has not been exported yet, so there is no pipeline of it to run. ` +
    'Export it first: each export is a pipeline version you can run.';
  const result = await showDialog({
    title: 'Not Exported Yet',
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton(),
      ...(others > 0 ? [other] : []),
      Dialog.okButton({ label: 'Export…' })
    ]
  });
  if (result.button.accept) {
    return 'export';
  }
  return result.button.label === other.label ? 'other' : 'cancel';
}

/**
 * A finished run's notification: failed gates warn (the model got worse; nothing crashed).
 */
export function notificationType(
  record: IRun
): 'success' | 'warning' | 'error' {
  const outcome = runOutcome(record);
  return outcome === 'succeeded'
    ? 'success'
    : outcome === 'gates-failed'
      ? 'warning'
      : 'error';
}

/**
 * One line about a run, for notifications.
 */
export const runSummary = runHeadline;

/**
 * The whole Run flow.
 *
 * @param notebook The path of the notebook the run is started from (its panel shows it).
 */
export async function runPipeline(
  app: JupyterFrontEnd,
  model: PipelineModel,
  notebook: string | null,
  showPanel: () => void
): Promise<void> {
  let pipelines: IPipeline[];
  try {
    pipelines = (await model.api.pipelines()).filter(
      p => p.versions.length > 0
    );
  } catch (reason) {
    Notification.error(`Could not list the pipelines: ${String(reason)}`);
    return;
  }
  let index = preferredPipeline(pipelines, notebook);
  if (index < 0 && notebook !== null) {
    const choice = await askNotExported(notebook, pipelines.length);
    if (choice === 'export') {
      await app.commands.execute(CommandIDs.exportPipeline);
      return;
    }
    if (choice === 'cancel') {
      return;
    }
    index = 0;
  }
  if (index < 0) {
    Notification.warning(
      'No exported pipeline yet. Open a notebook and export it first.',
      { autoClose: 8000 }
    );
    return;
  }
  let state: IFormState = {
    pipeline: index,
    version: pipelines[index].latest,
    texts: {},
    ...GATE_DEFAULTS
  };
  let request: IRunRequest;
  for (;;) {
    const body = new RunForm(pipelines, state);
    const result = await showDialog({
      title: 'Run Pipeline',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'select'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    request = result.value;
    state = body.state;
    if (Object.keys(request.errors).length === 0) {
      break;
    }
  }
  let id: string;
  try {
    id = await model.api.startRun(
      request.version.path,
      request.overrides,
      request.options
    );
  } catch (reason) {
    Notification.error(
      `Could not start the run: ${reason instanceof Error ? reason.message : String(reason)}`,
      { autoClose: false }
    );
    return;
  }
  const key = notebook ?? request.version.notebook;
  const run: IRunState = {
    id,
    pipeline: request.version.path,
    record: null,
    error: null
  };
  model.setRun(key, run);
  showPanel();
  const notification = Notification.emit(
    `Running ${request.pipeline.name} v${request.version.version}…`,
    'in-progress',
    { autoClose: false }
  );
  await followRun(model, key, run, notification, showPanel);
}

/**
 * Follow a run (the model reads its record every second until it ends, updating the
 * panel: see `PipelineModel.followRun`) and keep its notification in step: its phase while it
 * runs, then the outcome.
 */
export async function followRun(
  model: PipelineModel,
  key: string,
  run: IRunState,
  notification: string,
  showPanel: () => void
): Promise<void> {
  let lastPhase = '';
  await model.followRun(key, run, {
    onLost: error => {
      Notification.update({
        id: notification,
        message: error,
        type: 'error',
        autoClose: false
      });
    },
    // The panel and the notification change together, from the same record: "steps
    // succeeded; logging to MLflow…" until tracking is over, then the outcome.
    onRecord: record => {
      if (isFinished(record)) {
        Notification.update({
          id: notification,
          message: runSummary(record),
          type: notificationType(record),
          autoClose: notificationType(record) === 'success' ? 8000 : false,
          actions: [{ label: 'Show in Pipeline panel', callback: showPanel }]
        });
        return;
      }
      const phase = runPhase(record);
      if (phase !== lastPhase) {
        lastPhase = phase;
        Notification.update({
          id: notification,
          message: runHeadline(record, null),
          type: 'in-progress',
          autoClose: false
        });
      }
    }
  });
}
