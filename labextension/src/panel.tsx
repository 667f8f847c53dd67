/**
 * The Pipeline panel (left sidebar): the pipeline the current notebook defines right now.
 *
 * Top to bottom: the Export, Run and Compile buttons with the count of problems beside them; problems
 * and the last run's outcome (metrics, MLflow), where the default panel height shows them;
 * then parameters with their defaults; each step as a card (role chip and name, its cells, what
 * it needs and gives, what it runs after, and its run state once there is a run); the cells in
 * no step. Every cell reference and problem is a link that scrolls to the cell and selects it.
 * On an executed step notebook (read-only), it says so and links back to the run's notebook.
 */
import {
  Button,
  caretDownEmptyIcon,
  ReactWidget,
  UseSignal
} from '@jupyterlab/ui-components';
import * as React from 'react';

import {
  hasEnded,
  IGate,
  IPlan,
  IProblem,
  IRun,
  IRunGates,
  IRunStep,
  IStep
} from './api';
import {
  cellRangeList,
  cellRangesWord,
  cellRangeText,
  formatDelta,
  formatMetric,
  formatValue,
  problemCount
} from './format';
import {
  baselineLine,
  gateMark,
  gateNumbers,
  gatesSummary,
  metricRows,
  promotionLine,
  runOutcome
} from './gates';
import { roleHue, roleLabel } from './grammar';
import { pipelineIcon } from './icons';
import { PipelineModel } from './model';
import { runHeadline, runPhase, stepStateView, trackingLine } from './runview';
import { servingRunView, servingView, USES_NOTHING } from './serving';
import { IExecutedState, IPanelActions, IRunState } from './tokens';

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

const PROBLEMS_ID = 'nb2prod-panel-problems';

/**
 * Scroll a section of the panel into view and move the focus there (for keyboard users).
 */
function showSection(id: string): void {
  const section = document.getElementById(id);
  if (section) {
    section.scrollIntoView({ block: 'start' });
    section.focus({ preventScroll: true });
  }
}

/**
 * The plan's problems, without "no steps yet" (the empty state says how to start instead).
 */
function shownProblems(plan: IPlan): IProblem[] {
  return plan.steps.length === 0
    ? plan.problems.filter(p => p.code !== 'no-steps')
    : plan.problems;
}

function PanelBody(props: IBodyProps): JSX.Element {
  const { model, actions } = props;
  const panel = model.panel;
  const plan = model.plan;
  const blocker = model.exportBlocker;
  const runBlocker = model.runBlocker;
  const compileBlocker = model.compileBlocker;
  const exported = model.exported;
  const run = model.run;
  const executed = model.executed;
  const problems = plan && !executed ? shownProblems(plan) : [];
  const errors = problems.filter(p => p.severity === 'error').length;
  // For tests and styles: where the panel stands with the current notebook.
  const state = !panel
    ? 'none'
    : executed
      ? 'executed'
      : model.loading || (!plan && !model.error)
        ? 'loading'
        : plan
          ? 'ready'
          : 'error';
  return (
    <div className="nb2prod-PipelinePanel-body" data-plan={state}>
      <header className="nb2prod-PipelinePanel-header">
        <div className="nb2prod-PipelinePanel-bar">
          <h2 className="nb2prod-PipelinePanel-title">
            Pipeline
            {plan && !executed && (
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
              aria-describedby={
                blocker !== null ? 'nb2prod-export-blocker' : undefined
              }
              onClick={() => actions.export()}
            >
              Export
            </Button>
            <Button
              small
              className="nb2prod-RunButton"
              disabled={!panel || runBlocker !== null}
              title={runBlocker ?? 'Run an exported version of the pipeline'}
              aria-label={actions.label('run')}
              aria-describedby={
                runBlocker !== null ? 'nb2prod-run-blocker' : undefined
              }
              onClick={() => actions.run()}
            >
              Run
            </Button>
            <Button
              small
              className="nb2prod-CompileButton"
              disabled={compileBlocker !== null}
              title={
                compileBlocker ??
                (exported
                  ? `Compile ${exported.pipeline} v${exported.version.version} for Kubeflow Pipelines or Airflow`
                  : 'Compile the exported pipeline for Kubeflow Pipelines or Airflow')
              }
              aria-label={actions.label('compile')}
              aria-haspopup="menu"
              aria-describedby={
                compileBlocker !== null ? 'nb2prod-compile-blocker' : undefined
              }
              onClick={e => actions.compileMenu(e.currentTarget)}
            >
              Compile
              <caretDownEmptyIcon.react
                tag="span"
                className="nb2prod-CompileButton-caret"
                aria-hidden="true"
              />
            </Button>
            <Button
              small
              minimal
              className="nb2prod-RefreshButton"
              disabled={!panel || executed !== null}
              title="Inspect the notebook again"
              aria-label="Refresh the pipeline outline"
              onClick={() => actions.refresh()}
            >
              ⟳
            </Button>
          </div>
        </div>
        {blocker !== null && (
          <span id="nb2prod-export-blocker" className="nb2prod-sr-only">
            {blocker}
          </span>
        )}
        {runBlocker !== null && (
          <span id="nb2prod-run-blocker" className="nb2prod-sr-only">
            {runBlocker}
          </span>
        )}
        {compileBlocker !== null && (
          <span id="nb2prod-compile-blocker" className="nb2prod-sr-only">
            {compileBlocker}
          </span>
        )}
        {problems.length > 0 && (
          <p className="nb2prod-PipelinePanel-status">
            <a
              href="#"
              className={`nb2prod-ProblemCount nb2prod-mod-${errors ? 'error' : 'warning'}`}
              aria-label={`${problemCount(problems)}: show the problems`}
              onClick={preventing(() => showSection(PROBLEMS_ID))}
            >
              {problemCount(problems)}
            </a>
            {errors > 0 && (
              <span className="nb2prod-muted">
                {' '}
                · Export needs {errors === 1 ? 'it' : 'them'} fixed
              </span>
            )}
          </p>
        )}
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
      {executed && <ExecutedView executed={executed} actions={actions} />}
      {panel && !executed && model.error && (
        <div className="nb2prod-Message nb2prod-mod-error" role="alert">
          Could not inspect the notebook: {model.error}{' '}
          <a
            href="#"
            className="nb2prod-Message-action"
            onClick={preventing(() => actions.refresh())}
          >
            Try again
          </a>
        </div>
      )}
      {problems.length > 0 && (
        <ProblemsView problems={problems} errors={errors} actions={actions} />
      )}
      {panel && run && !executed && <RunView run={run} actions={actions} />}
      {panel && plan && !executed && (
        <PlanView plan={plan} run={run} actions={actions} />
      )}
    </div>
  );
}

/**
 * The panel on an executed step notebook: what it is, and the way back to its run.
 */
function ExecutedView(props: {
  executed: IExecutedState;
  actions: IPanelActions;
}): JSX.Element {
  const { executed, actions } = props;
  const record = executed.record;
  const state = record?.steps[executed.step];
  const view = state ? stepStateView(state, hasEnded(record!)) : null;
  return (
    <section
      className="nb2prod-Section nb2prod-Executed"
      aria-label="Executed step notebook"
    >
      <h3 className="nb2prod-Section-title">Executed step notebook</h3>
      <p className="nb2prod-Executed-what">
        Read-only: step <code>{executed.step}</code> of run{' '}
        <code>{executed.runId}</code>
        {record && (
          <>
            {' '}
            ({record.pipeline} v{record.version})
          </>
        )}
        , as papermill executed it. It is a record of that run: it cannot be
        saved, exported or run.
      </p>
      {view && (
        <p>
          <span className="nb2prod-muted">Step state: </span>
          <span className={`nb2prod-StepState nb2prod-mod-${view.kind}`}>
            {view.symbol && <span aria-hidden="true">{view.symbol} </span>}
            {view.text}
          </span>
        </p>
      )}
      {record?.notebook && (
        <p>
          <a
            href="#"
            className="nb2prod-Executed-source"
            onClick={preventing(() => actions.openFile(record.notebook!))}
          >
            Open the source notebook ({record.notebook})
          </a>{' '}
          <span className="nb2prod-muted">to change, export or run it.</span>
        </p>
      )}
      {record?.version_dir && (
        <p className="nb2prod-muted">
          Pipeline version: <code>{record.version_dir}</code>
        </p>
      )}
    </section>
  );
}

function preventing(f: () => void): (e: React.MouseEvent) => void {
  return e => {
    e.preventDefault();
    f();
  };
}

/**
 * A step's (or the unassigned) cells as links, one per range: `cells 4–7, 9`.
 */
export function CellLinks(props: {
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
  const ranges = cellRangeList(cells, bridge);
  if (ranges.length === 0) {
    return <span className="nb2prod-CellLinks">no cells</span>;
  }
  const word = cellRangesWord(ranges);
  return (
    <span className="nb2prod-CellLinks">
      {word}{' '}
      {ranges.map((range, k) => {
        const part = cellRangeText(range);
        const index = range.first;
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

/**
 * The plan's problems, each a link to its cell.
 */
export function ProblemsView(props: {
  problems: IProblem[];
  errors: number;
  actions: IPanelActions;
}): JSX.Element {
  const { problems, errors, actions } = props;
  return (
    <section
      id={PROBLEMS_ID}
      className="nb2prod-Section"
      aria-label="Problems"
      tabIndex={-1}
    >
      <h3 className="nb2prod-Section-title">Problems</h3>
      {errors > 0 && (
        <p className="nb2prod-ExportBlocked">
          Export is disabled until{' '}
          {errors === 1 ? 'this error is' : `these ${errors} errors are`} fixed.
        </p>
      )}
      <ul className="nb2prod-Problems">
        {problems.map((p, k) => (
          <ProblemItem key={k} problem={p} actions={actions} />
        ))}
      </ul>
    </section>
  );
}

function PlanView(props: {
  plan: IPlan;
  run: IRunState | null;
  actions: IPanelActions;
}): JSX.Element {
  const { plan, run, actions } = props;
  const noSteps = plan.steps.length === 0;
  const runEnded = run?.record ? hasEnded(run.record) : false;
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
      {(plan.gates ?? []).length > 0 && (
        <GatesView plan={plan} gates={plan.gates!} actions={actions} />
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
              runEnded={runEnded}
              runId={run?.id ?? null}
              actions={actions}
            />
          ))}
        </section>
      )}
      {plan.serving && <ServingView plan={plan} actions={actions} />}
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
    </>
  );
}

/**
 * The notebook's quality gates: each comparison, its help, and a link to its line's cell.
 */
export function GatesView(props: {
  plan: IPlan;
  gates: IGate[];
  actions: IPanelActions;
}): JSX.Element {
  const { plan, gates, actions } = props;
  return (
    <section className="nb2prod-Section" aria-label="Gates">
      <h3 className="nb2prod-Section-title">
        Gates
        <span className="nb2prod-muted nb2prod-Section-aside">
          {' '}
          checked after every run
        </span>
      </h3>
      <ul className="nb2prod-Params nb2prod-Gates">
        {gates.map((g, k) => (
          <li key={k} className="nb2prod-Param nb2prod-Gate">
            <a
              href="#"
              className="nb2prod-Gate-expr"
              aria-label={`Gate ${g.expr} (go to cell ${g.cell + 1}, line ${g.line})`}
              onClick={preventing(() =>
                actions.goToCell({
                  index: g.cell,
                  id: plan.cells[g.cell]?.id ?? null
                })
              )}
            >
              <code>{g.expr}</code>
            </a>
            {g.help && <div className="nb2prod-Param-help">{g.help}</div>}
          </li>
        ))}
      </ul>
    </section>
  );
}

/**
 * The notebook's serving function: what it uses and where each comes from, each a link to
 * its cell, and where the serving model's input example comes from.
 */
export function ServingView(props: {
  plan: IPlan;
  actions: IPanelActions;
}): JSX.Element | null {
  const { plan, actions } = props;
  const view = servingView(plan);
  if (!view) {
    return null;
  }
  const cell = plan.serving!.cell;
  const goTo = (index: number) =>
    preventing(() =>
      actions.goToCell({ index, id: plan.cells[index]?.id ?? null })
    );
  return (
    <section className="nb2prod-Section" aria-label="Serving">
      <h3 className="nb2prod-Section-title">
        Serving
        <span className="nb2prod-muted nb2prod-Section-aside">
          {' '}
          logged as a model with every run
        </span>
      </h3>
      <article
        className="nb2prod-Serving"
        data-nb2prod-hue={roleHue('serving')}
        aria-label={`serving: ${view.summary}`}
      >
        <div className="nb2prod-StepCard-header">
          <RoleChip role="serving" />
          <span className="nb2prod-Serving-summary">
            <a
              href="#"
              className="nb2prod-Serving-function"
              aria-label={`Serving function ${view.signature} (go to cell ${cell + 1})`}
              onClick={goTo(cell)}
            >
              <code>{view.signature}</code>
            </a>
            {view.needs.length > 0 ? ' uses ' : ` ${USES_NOTHING}`}
            {view.needs.map((need, k) => (
              <React.Fragment key={need.name}>
                {k > 0 && ', '}
                <code className="nb2prod-Serving-need">{need.name}</code>{' '}
                {need.cell === null ? (
                  <span>{need.text}</span>
                ) : (
                  <a
                    href="#"
                    className="nb2prod-Serving-source"
                    aria-label={`${need.name} ${need.text} (go to cell ${need.cell + 1})`}
                    onClick={goTo(need.cell)}
                  >
                    {need.text}
                  </a>
                )}
              </React.Fragment>
            ))}
          </span>
        </div>
        {view.example && (
          <div className="nb2prod-StepCard-line nb2prod-muted">
            {view.example}
          </div>
        )}
      </article>
    </section>
  );
}

/**
 * After a run: the serving model it logged, its skew check, and the command that serves it.
 */
export function ServingRunLine(props: { run: IRun }): JSX.Element | null {
  const view = servingRunView(props.run);
  if (!view) {
    return null;
  }
  const problem = view.kind === 'skew' || view.kind === 'failed';
  return (
    <p
      className={`nb2prod-ServingRun nb2prod-mod-${view.kind}`}
      data-serving={view.kind}
      role={problem ? 'alert' : undefined}
    >
      <RoleChip role="serving" /> {view.text}
      {view.model && (
        <span className="nb2prod-muted">
          {' '}
          (<code>{view.model}</code>)
        </span>
      )}
      {view.command && (
        <>
          {' '}
          Serve it:{' '}
          <code className="nb2prod-ServingRun-command">{view.command}</code>
        </>
      )}
    </p>
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
        3. Put tunable values in a Parameters cell, helpers in Setup, the
        function that serves predictions in Serving, and exploration in Skip.
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
  runEnded: boolean;
  runId: string | null;
  actions: IPanelActions;
}): JSX.Element {
  const { step, state, runEnded, runId, actions } = props;
  const view = stepStateView(state, runEnded);
  const notebookOf = state.notebook_path ?? state.notebook;
  const showNotebook =
    (view.kind === 'failed' || view.kind === 'interrupted') &&
    runId !== null &&
    notebookOf;
  return (
    <span
      className={`nb2prod-StepState nb2prod-mod-${view.kind}`}
      role={view.kind === 'running' ? 'status' : undefined}
      title={view.kind === 'cached' ? 'Reused from an earlier run' : undefined}
    >
      {view.kind === 'running' && (
        <span className="nb2prod-Spinner" aria-hidden="true" />
      )}
      {view.symbol && <span aria-hidden="true">{view.symbol}</span>} {view.text}
      {view.kind === 'succeeded' && (
        <span className="nb2prod-sr-only"> succeeded</span>
      )}
      {view.detail && (
        <>
          {' '}
          <span className="nb2prod-StepError">{view.detail}</span>
        </>
      )}
      {showNotebook && (
        <a
          href="#"
          className="nb2prod-StepNotebook"
          onClick={preventing(() => actions.openRunNotebook(runId, step))}
        >
          Open executed notebook
        </a>
      )}
      {runId !== null && state.report && (
        <>
          {' '}
          <a
            href="#"
            className="nb2prod-StepReport"
            aria-label={`Open the report of step ${step}`}
            onClick={preventing(() => actions.openRunReport(runId, step))}
          >
            Open report
          </a>
        </>
      )}
    </span>
  );
}

/**
 * The data files a step reads, on one line: `data/train.csv (parameter train_path)`.
 */
export function dataReads(step: IStep): string {
  return (step.data ?? [])
    .map(d => (d.parameter ? `${d.path} (parameter ${d.parameter})` : d.path))
    .join(', ');
}

function StepCard(props: {
  plan: IPlan;
  step: IStep;
  state: IRunStep | null;
  runEnded: boolean;
  runId: string | null;
  actions: IPanelActions;
}): JSX.Element {
  const { plan, step, state, runEnded, runId, actions } = props;
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
      {(step.data ?? []).length > 0 && (
        <div className="nb2prod-StepCard-line">
          <span className="nb2prod-muted">reads:</span> {dataReads(step)}
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
            runEnded={runEnded}
            runId={runId}
            actions={actions}
          />
        </div>
      )}
    </article>
  );
}

function RunView(props: {
  run: IRunState;
  actions: IPanelActions;
}): JSX.Element {
  const { run, actions } = props;
  const record: IRun | null = run.record;
  const metrics = record ? metricRows(record) : [];
  const compared = metrics.some(m => m.baseline !== null);
  const tracking = record?.tracking;
  // A run whose gates failed is not a crash: it shows as such (see runOutcome).
  const status = record ? runOutcome(record) : 'queued';
  const phase = record ? runPhase(record) : 'running';
  const problem = record ? trackingLine(record) : null;
  return (
    <section
      className="nb2prod-Section nb2prod-Run"
      aria-label="Run"
      data-status={status}
      data-phase={phase}
      aria-busy={phase !== 'done'}
    >
      <h3 className="nb2prod-Section-title">Run</h3>
      <p
        className={`nb2prod-Run-status nb2prod-mod-${phase === 'done' ? status : 'running'}`}
        role="status"
        aria-live="polite"
      >
        {phase !== 'done' && (
          <span className="nb2prod-Spinner" aria-hidden="true" />
        )}
        {record ? runHeadline(record) : `${run.pipeline}: starting…`}
        <span className="nb2prod-muted"> (run {run.id})</span>
      </p>
      {run.error && (
        <p className="nb2prod-Message nb2prod-mod-error">{run.error}</p>
      )}
      {record &&
        Object.entries(record.steps)
          .filter(([, s]) => s.state === 'failed')
          .map(([name, s]) => (
            <p key={name} className="nb2prod-Message nb2prod-mod-error">
              Step {name} failed: {s.error?.message ?? ''}{' '}
              {(s.notebook_path ?? s.notebook) && (
                <a
                  href="#"
                  className="nb2prod-Message-action"
                  onClick={preventing(() =>
                    actions.openRunNotebook(run.id, name)
                  )}
                >
                  Open executed notebook
                </a>
              )}
              {s.report && (
                <>
                  {' '}
                  <a
                    href="#"
                    className="nb2prod-Message-action"
                    onClick={preventing(() =>
                      actions.openRunReport(run.id, name)
                    )}
                  >
                    Open report
                  </a>
                </>
              )}
            </p>
          ))}
      {metrics.length > 0 && (
        <table className="nb2prod-Metrics" aria-label="Metrics">
          <thead>
            <tr>
              <th scope="col">metric</th>
              <th scope="col">value</th>
              {compared && <th scope="col">Δ baseline</th>}
            </tr>
          </thead>
          <tbody>
            {metrics.map(m => (
              <tr key={m.name} data-metric={m.name}>
                <td>
                  <code>{m.name}</code>
                </td>
                <td className="nb2prod-Metrics-value">
                  {formatMetric(m.value)}
                </td>
                {compared && (
                  <td
                    className="nb2prod-Metrics-value nb2prod-Metrics-delta"
                    title={
                      m.baseline !== null
                        ? `baseline ${formatMetric(m.baseline)}`
                        : 'not in the baseline'
                    }
                  >
                    {formatDelta(m.delta)}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {record?.gates && phase === 'done' && (
        <GateResults gates={record.gates} record={record} />
      )}
      {record && phase === 'done' && <ServingRunLine run={record} />}
      {phase === 'done' && tracking && tracking.run_id && (
        <p className="nb2prod-Tracking">
          MLflow: experiment <code>{tracking.experiment}</code>, run{' '}
          <code className="nb2prod-Tracking-run">{tracking.run_id}</code>
          {tracking.uri && (
            <span className="nb2prod-muted"> ({tracking.uri})</span>
          )}
        </p>
      )}
      {problem && (
        <p className="nb2prod-Message nb2prod-mod-warning">{problem.text}</p>
      )}
      {record?.dir && (
        <p className="nb2prod-muted nb2prod-Run-dir">
          Run folder: <code>{record.dir}</code>
        </p>
      )}
    </section>
  );
}

/**
 * A run's gates: the outcome, the baseline, a mark per gate, and what promotion did.
 */
export function GateResults(props: {
  gates: IRunGates;
  record: IRun;
}): JSX.Element {
  const { gates, record } = props;
  const summary = gatesSummary(gates);
  const promotion = promotionLine(gates);
  const needsBaseline = gates.results.some(
    r => r.baseline !== null || r.status === 'no baseline'
  );
  return (
    <div className="nb2prod-GateResults" data-gates={summary.kind}>
      <p className={`nb2prod-Gates-status nb2prod-mod-${summary.kind}`}>
        {summary.text}
      </p>
      {(needsBaseline || record.baseline) && (
        <p className="nb2prod-muted nb2prod-Gates-baseline">
          {baselineLine(record.baseline)}
        </p>
      )}
      {gates.results.length > 0 && (
        <table className="nb2prod-Metrics nb2prod-GateTable" aria-label="Gates">
          <thead>
            <tr>
              <th scope="col">gate</th>
              <th scope="col">value vs threshold</th>
              <th scope="col">result</th>
            </tr>
          </thead>
          <tbody>
            {gates.results.map((r, k) => {
              const mark = gateMark(r);
              return (
                <tr
                  key={k}
                  className="nb2prod-GateResult"
                  data-gate={mark.kind}
                >
                  <td>
                    <code>{r.expr}</code>
                    {r.origin === 'command line' && (
                      <span className="nb2prod-muted"> (run option)</span>
                    )}
                    {r.reason && (
                      <div className="nb2prod-Param-help">{r.reason}</div>
                    )}
                  </td>
                  <td className="nb2prod-Metrics-value">{gateNumbers(r)}</td>
                  <td className={`nb2prod-GateMark nb2prod-mod-${mark.kind}`}>
                    <span aria-hidden="true">{mark.symbol} </span>
                    {mark.text}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {promotion && (
        <p className="nb2prod-muted nb2prod-Gates-promotion">{promotion}</p>
      )}
    </div>
  );
}
