/**
 * The Pipeline panel (left sidebar): the pipeline the current notebook defines right now.
 *
 * Top to bottom: parameters with their defaults; each step as a card (role chip and name, its
 * cells, what it needs and gives, what it runs after, and its run state once there is a run);
 * the cells in no step; problems; then the last run's outcome (metrics, MLflow).
 * Every cell reference and problem is a link that scrolls to the cell and selects it.
 */
import { Button, ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IPlan, IProblem, IRun, IRunStep, IStep } from './api';
import {
  cellRanges,
  formatDuration,
  formatMetric,
  formatValue
} from './format';
import { ICellRef } from './goto';
import { roleHue, roleLabel } from './grammar';
import { pipelineIcon } from './icons';
import { IRunState, PipelineModel } from './model';

/**
 * What the panel asks of the application.
 */
export interface IPanelActions {
  goToCell(ref: ICellRef): void;
  openRunNotebook(runId: string, step: string): void;
  export(): void;
  run(): void;
  refresh(): void;
  showTagReference(): void;
  /**
   * The label of a command (so buttons and menus say the same).
   */
  label(command: 'export' | 'run'): string;
}

/**
 * The panel widget.
 */
export class PipelinePanel extends ReactWidget {
  constructor(model: PipelineModel, actions: IPanelActions) {
    super();
    this._model = model;
    this._actions = actions;
    this.id = 'nb2prod-pipeline-panel';
    this.addClass('nb2prod-PipelinePanel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'Pipeline';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Pipeline');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() => <PanelBody model={this._model} actions={this._actions} />}
      </UseSignal>
    );
  }

  private _model: PipelineModel;
  private _actions: IPanelActions;
}

interface IBodyProps {
  model: PipelineModel;
  actions: IPanelActions;
}

function PanelBody(props: IBodyProps): JSX.Element {
  const { model, actions } = props;
  const panel = model.panel;
  const plan = model.plan;
  const blocker = model.exportBlocker;
  const run = model.run;
  return (
    <div className="nb2prod-PipelinePanel-body">
      <header className="nb2prod-PipelinePanel-header">
        <h2 className="nb2prod-PipelinePanel-title">
          Pipeline
          {plan && (
            <span className="nb2prod-PipelinePanel-name">{plan.name}</span>
          )}
        </h2>
        <div className="nb2prod-PipelinePanel-actions">
          <Button
            small
            className="nb2prod-ExportButton"
            disabled={blocker !== null}
            title={
              blocker ??
              'Save the notebook and export it as a new pipeline version'
            }
            aria-label={actions.label('export')}
            onClick={() => actions.export()}
          >
            Export
          </Button>
          <Button
            small
            className="nb2prod-RunButton"
            disabled={!panel}
            title="Run an exported version of the pipeline"
            aria-label={actions.label('run')}
            onClick={() => actions.run()}
          >
            Run
          </Button>
          <Button
            small
            minimal
            className="nb2prod-RefreshButton"
            disabled={!panel}
            title="Inspect the notebook again"
            aria-label="Refresh the pipeline outline"
            onClick={() => actions.refresh()}
          >
            ⟳
          </Button>
        </div>
      </header>
      {panel && (
        <p className="nb2prod-PipelinePanel-notebook" aria-live="polite">
          {panel.context.path}
          {model.loading && <span className="nb2prod-muted"> · updating…</span>}
        </p>
      )}
      {!panel && (
        <p className="nb2prod-PipelinePanel-empty">
          Open a notebook to see the pipeline it defines.
        </p>
      )}
      {panel && model.error && (
        <div className="nb2prod-Problem nb2prod-mod-error" role="alert">
          Could not inspect the notebook: {model.error}{' '}
          <a href="#" onClick={preventing(() => actions.refresh())}>
            Try again
          </a>
        </div>
      )}
      {panel && plan && (
        <PlanView plan={plan} run={run} actions={actions} blocker={blocker} />
      )}
      {panel && run && <RunView run={run} actions={actions} />}
    </div>
  );
}

function preventing(f: () => void): (e: React.MouseEvent) => void {
  return e => {
    e.preventDefault();
    f();
  };
}

function CellLinks(props: {
  plan: IPlan;
  cells: number[];
  actions: IPanelActions;
}): JSX.Element {
  const { plan, cells, actions } = props;
  const isCode = (i: number) => plan.cells[i]?.type === 'code';
  // Markdown and raw cells between two cells of a step do not break a range.
  const bridge = (from: number, to: number) => {
    for (let i = from + 1; i < to; i++) {
      if (isCode(i)) {
        return false;
      }
    }
    return true;
  };
  const text = cellRanges(cells, bridge);
  const word = text.split(' ')[0];
  const parts = text.slice(word.length + 1).split(', ');
  return (
    <span className="nb2prod-CellLinks">
      {word}{' '}
      {parts.map((part, k) => {
        const index = Number(part.split('–')[0]) - 1;
        const id = plan.cells[index]?.id ?? null;
        return (
          <React.Fragment key={part}>
            {k > 0 && ', '}
            <a
              href="#"
              className="nb2prod-CellLink"
              aria-label={`Go to ${word} ${part}`}
              onClick={preventing(() => actions.goToCell({ index, id }))}
            >
              {part}
            </a>
          </React.Fragment>
        );
      })}
    </span>
  );
}

function PlanView(props: {
  plan: IPlan;
  run: IRunState | null;
  actions: IPanelActions;
  blocker: string | null;
}): JSX.Element {
  const { plan, run, actions } = props;
  const noSteps = plan.steps.length === 0;
  const problems = noSteps
    ? plan.problems.filter(p => p.code !== 'no-steps')
    : plan.problems;
  const errors = problems.filter(p => p.severity === 'error').length;
  return (
    <>
      {noSteps && <EmptyState actions={actions} />}
      {plan.parameters.length > 0 && (
        <section className="nb2prod-Section" aria-label="Parameters">
          <h3 className="nb2prod-Section-title">Parameters</h3>
          <ul className="nb2prod-Params">
            {plan.parameters.map(p => (
              <li key={p.name} className="nb2prod-Param">
                <code className="nb2prod-Param-name">{p.name}</code>
                <span className="nb2prod-muted"> = </span>
                <code className="nb2prod-Param-value">
                  {formatValue(p.value, p.type)}
                </code>
                {p.help && <div className="nb2prod-Param-help">{p.help}</div>}
              </li>
            ))}
          </ul>
        </section>
      )}
      {!noSteps && (
        <section className="nb2prod-Section" aria-label="Steps">
          <h3 className="nb2prod-Section-title">
            Steps
            <span className="nb2prod-muted nb2prod-Section-aside">
              {' '}
              run order: {plan.dag.order.join(' → ')}
            </span>
          </h3>
          {plan.steps.map(step => (
            <StepCard
              key={step.name}
              plan={plan}
              step={step}
              state={run?.record?.steps[step.name] ?? null}
              runId={run?.id ?? null}
              actions={actions}
            />
          ))}
        </section>
      )}
      {!noSteps && plan.unassigned.length > 0 && (
        <section className="nb2prod-Section" aria-label="Not in any step">
          <h3 className="nb2prod-Section-title">Not in any step</h3>
          <p className="nb2prod-Unassigned">
            <CellLinks plan={plan} cells={plan.unassigned} actions={actions} />
            <span className="nb2prod-muted">
              {' '}
              (before the first step: only their imports and definitions are
              used)
            </span>
          </p>
        </section>
      )}
      {problems.length > 0 && (
        <section className="nb2prod-Section" aria-label="Problems">
          <h3 className="nb2prod-Section-title">Problems</h3>
          {errors > 0 && (
            <p className="nb2prod-ExportBlocked">
              Export is disabled until{' '}
              {errors === 1 ? 'this error is' : `these ${errors} errors are`}{' '}
              fixed.
            </p>
          )}
          <ul className="nb2prod-Problems">
            {problems.map((p, k) => (
              <ProblemItem key={k} problem={p} actions={actions} />
            ))}
          </ul>
        </section>
      )}
    </>
  );
}

function EmptyState(props: { actions: IPanelActions }): JSX.Element {
  return (
    <section
      className="nb2prod-Section nb2prod-EmptyState"
      aria-label="How to tag"
    >
      <p>
        1. Select a code cell and pick its role in the cell toolbar dropdown (or
        add the tag in the property inspector).
      </p>
      <p>
        2. Start each step with Preprocessing, Training or Evaluation; the
        untagged cells below it join that step.
      </p>
      <p>
        3. Put tunable values in a Parameters cell, helpers in Setup, and
        exploration in Skip.
      </p>
      <p>
        <a
          href="#"
          onClick={preventing(() => props.actions.showTagReference())}
        >
          Read the tag reference
        </a>
      </p>
    </section>
  );
}

function ProblemItem(props: {
  problem: IProblem;
  actions: IPanelActions;
}): JSX.Element {
  const { problem, actions } = props;
  const cell = problem.cell;
  return (
    <li className={`nb2prod-Problem nb2prod-mod-${problem.severity}`}>
      <span className="nb2prod-Problem-severity">{problem.severity}</span>
      {cell ? (
        <a
          href="#"
          className="nb2prod-Problem-text"
          aria-label={`${problem.severity}: ${problem.text} (go to cell ${cell.index + 1})`}
          onClick={preventing(() =>
            actions.goToCell({ index: cell.index, id: cell.id })
          )}
        >
          {problem.text}
        </a>
      ) : (
        <span className="nb2prod-Problem-text">{problem.text}</span>
      )}
    </li>
  );
}

function RoleChip(props: { role: string; text?: string }): JSX.Element {
  return (
    <span className="nb2prod-Chip" data-nb2prod-hue={roleHue(props.role)}>
      {props.text ?? roleLabel(props.role)}
    </span>
  );
}

function StepState(props: {
  step: string;
  state: IRunStep;
  runId: string | null;
  actions: IPanelActions;
}): JSX.Element {
  const { step, state, runId, actions } = props;
  switch (state.state) {
    case 'queued':
      return <span className="nb2prod-StepState nb2prod-muted">queued</span>;
    case 'running':
      return (
        <span className="nb2prod-StepState" role="status">
          <span className="nb2prod-Spinner" aria-hidden="true" />
          running
        </span>
      );
    case 'cached':
      return (
        <span
          className="nb2prod-StepState nb2prod-mod-cached"
          title="Reused from an earlier run"
        >
          cached
        </span>
      );
    case 'succeeded':
      return (
        <span className="nb2prod-StepState nb2prod-mod-succeeded">
          <span aria-hidden="true">✓</span> {formatDuration(state.duration)}
          <span className="nb2prod-sr-only"> succeeded</span>
        </span>
      );
    default: {
      const notebookOf = state.notebook_path ?? state.notebook;
      return (
        <span className={`nb2prod-StepState nb2prod-mod-${state.state}`}>
          <span aria-hidden="true">✗</span> {state.state}
          {state.error && (
            <span className="nb2prod-StepError">
              {state.error.message ||
                `${state.error.ename}: ${state.error.evalue}`}
              {state.error.cell ? ` (in ${state.error.cell})` : ''}
            </span>
          )}
          {runId !== null && notebookOf && (
            <a
              href="#"
              className="nb2prod-StepNotebook"
              onClick={preventing(() => actions.openRunNotebook(runId, step))}
            >
              Open executed notebook
            </a>
          )}
        </span>
      );
    }
  }
}

function StepCard(props: {
  plan: IPlan;
  step: IStep;
  state: IRunStep | null;
  runId: string | null;
  actions: IPanelActions;
}): JSX.Element {
  const { plan, step, state, runId, actions } = props;
  return (
    <article
      className="nb2prod-StepCard"
      data-nb2prod-hue={roleHue(step.role)}
      data-step={step.name}
      aria-label={`Step ${step.name}`}
    >
      <div className="nb2prod-StepCard-header">
        <RoleChip role={step.role} />
        <span className="nb2prod-StepCard-name">{step.name}</span>
        <span className="nb2prod-StepCard-cells">
          <CellLinks plan={plan} cells={step.cells} actions={actions} />
        </span>
      </div>
      {step.inputs.length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">needs:</span>{' '}
          {step.inputs.map(i => i.name).join(', ')}
        </div>
      )}
      {step.outputs.length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">gives:</span>{' '}
          {step.outputs.join(', ')}
        </div>
      )}
      {step.depends_on.length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">after:</span>{' '}
          {step.depends_on.join(', ')}
        </div>
      )}
      {step.parameters.length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">parameters:</span>{' '}
          {step.parameters.join(', ')}
        </div>
      )}
      {step.metrics.length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">metrics:</span>{' '}
          {step.metrics.join(', ')}
        </div>
      )}
      {state && (
        <div className="nb2prod-StepCard-state" aria-live="polite">
          <StepState
            step={step.name}
            state={state}
            runId={runId}
            actions={actions}
          />
        </div>
      )}
    </article>
  );
}

function runTitle(run: IRunState): string {
  const record = run.record;
  if (!record) {
    return `${run.pipeline}: starting…`;
  }
  const name = `${record.pipeline} v${record.version}`;
  switch (record.status) {
    case 'queued':
      return `${name}: queued`;
    case 'running':
      return `${name}: running…`;
    default:
      return `${name}: ${record.status}${record.duration ? ` in ${formatDuration(record.duration)}` : ''}`;
  }
}

function RunView(props: {
  run: IRunState;
  actions: IPanelActions;
}): JSX.Element {
  const { run, actions } = props;
  const record: IRun | null = run.record;
  const metrics = Object.entries(record?.metrics ?? {});
  const tracking = record?.tracking;
  const status = record?.status ?? 'queued';
  return (
    <section
      className="nb2prod-Section nb2prod-Run"
      aria-label="Run"
      data-status={status}
    >
      <h3 className="nb2prod-Section-title">Run</h3>
      <p
        className={`nb2prod-Run-status nb2prod-mod-${status}`}
        role="status"
        aria-live="polite"
      >
        {(status === 'running' || status === 'queued') && (
          <span className="nb2prod-Spinner" aria-hidden="true" />
        )}
        {runTitle(run)}
        <span className="nb2prod-muted"> (run {run.id})</span>
      </p>
      {run.error && (
        <p className="nb2prod-Problem nb2prod-mod-error">{run.error}</p>
      )}
      {record &&
        Object.entries(record.steps)
          .filter(([, s]) => s.state === 'failed')
          .map(([name, s]) => (
            <p key={name} className="nb2prod-Problem nb2prod-mod-error">
              <span>
                Step {name} failed: {s.error?.message ?? ''}{' '}
                {(s.notebook_path ?? s.notebook) && (
                  <a
                    href="#"
                    onClick={preventing(() =>
                      actions.openRunNotebook(run.id, name)
                    )}
                  >
                    Open executed notebook
                  </a>
                )}
              </span>
            </p>
          ))}
      {metrics.length > 0 && (
        <table className="nb2prod-Metrics" aria-label="Metrics">
          <thead>
            <tr>
              <th scope="col">metric</th>
              <th scope="col">value</th>
            </tr>
          </thead>
          <tbody>
            {metrics.map(([name, value]) => (
              <tr key={name}>
                <td>
                  <code>{name}</code>
                </td>
                <td className="nb2prod-Metrics-value">{formatMetric(value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {tracking && tracking.run_id && (
        <p className="nb2prod-Tracking">
          MLflow: experiment <code>{tracking.experiment}</code>, run{' '}
          <code className="nb2prod-Tracking-run">{tracking.run_id}</code>
          {tracking.uri && (
            <span className="nb2prod-muted"> ({tracking.uri})</span>
          )}
        </p>
      )}
      {tracking && tracking.error && (
        <p className="nb2prod-Problem nb2prod-mod-warning">
          Not tracked in MLflow: {tracking.error}
        </p>
      )}
      {record?.dir && (
        <p className="nb2prod-muted nb2prod-Run-dir">
          Run folder: <code>{record.dir}</code>
        </p>
      )}
    </section>
  );
}
