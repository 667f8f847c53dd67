/**
 * What the panel and notifications say about a run, from its record (run.json as
 * `GET /nb2prod/runs/ID` answers it), and which pipeline Run preselects.
 */
import { IPipeline, IRun, IRunStep, isFinished, trackingPhase } from '../api';
import { executedStepOf, runNotebookPath } from '../rundrive';
import {
  latestExported,
  preferredPipeline,
  runHeadline,
  runPhase,
  stepStateView,
  trackingLine
} from '../runview';

const step = (state: IRunStep['state'], more: Partial<IRunStep> = {}) =>
  ({
    state,
    duration: null,
    error: null,
    notebook: null,
    metrics: {},
    ...more
  }) as IRunStep;

const run = (more: Partial<IRun>): IRun => ({
  id: '20261126-101010-1234abc',
  pipeline: 'iris',
  version: 3,
  status: 'succeeded',
  duration: 5.6,
  steps: { training: step('succeeded', { duration: 5.6 }) },
  metrics: {},
  active: true,
  ...more
});

describe('the tracking phase', () => {
  it('is over only when MLflow logging is', () => {
    const pending = run({ tracking: { state: 'pending' } });
    const logging = run({
      tracking: { state: 'logging', started_at: '2026-11-26T10:00:00Z' }
    });
    const done = run({
      tracking: { state: 'done', duration: 3.1, ok: true, run_id: 'abc' }
    });
    expect([pending, logging, done].map(trackingPhase)).toEqual([
      'pending',
      'logging',
      'done'
    ]);
    expect([pending, logging, done].map(isFinished)).toEqual([
      false,
      false,
      true
    ]);
    expect([pending, logging, done].map(runPhase)).toEqual([
      'tracking',
      'tracking',
      'done'
    ]);
  });

  it('treats an untracked run as over when its steps are', () => {
    expect(isFinished(run({ tracking: null }))).toBe(true);
    expect(
      isFinished(run({ status: 'running', tracking: { state: 'pending' } }))
    ).toBe(false);
  });

  it('reads records from servers without phases', () => {
    // The result alone: done. Nothing yet, while the process still runs: logging.
    expect(trackingPhase(run({ tracking: { ok: true, run_id: 'x' } }))).toBe(
      'done'
    );
    expect(trackingPhase(run({ tracking: undefined, active: true }))).toBe(
      'logging'
    );
    expect(trackingPhase(run({ tracking: undefined, active: false }))).toBe(
      'none'
    );
  });

  it('does not wait for ever on a run killed while logging', () => {
    const killed = run({ tracking: { state: 'logging' }, active: false });
    expect(trackingPhase(killed)).toBe('lost');
    expect(isFinished(killed)).toBe(true);
    expect(trackingLine(killed)?.text).toContain('ended before logging');
  });
});

describe('the run headline', () => {
  it('shows the logging phase, then the time the user waited', () => {
    const started = '2026-11-26T10:00:00Z';
    const logging = run({
      tracking: { state: 'logging', started_at: started }
    });
    expect(runHeadline(logging, Date.parse(started) + 2100)).toBe(
      'iris v3: steps succeeded in 5.6s; logging to MLflow… 2.1s'
    );
    expect(runHeadline(logging, null)).toBe(
      'iris v3: steps succeeded in 5.6s; logging to MLflow…'
    );
    const done = run({
      tracking: { state: 'done', duration: 3.1, ok: true, run_id: 'abc' }
    });
    expect(runHeadline(done)).toBe(
      'iris v3 succeeded in 8.7s (steps 5.6s, MLflow 3.1s)'
    );
    expect(runHeadline(run({ tracking: null }))).toBe(
      'iris v3 succeeded in 5.6s'
    );
    expect(runHeadline(run({ status: 'running', tracking: null }))).toBe(
      'iris v3: running…'
    );
  });

  it('names the failing step', () => {
    const failed = run({
      status: 'failed',
      tracking: null,
      steps: {
        training: step('failed', {
          error: {
            cell: 'cell 3',
            ename: 'ZeroDivisionError',
            evalue: 'division by zero',
            message: 'ZeroDivisionError: division by zero'
          }
        })
      }
    });
    expect(runHeadline(failed)).toBe(
      'iris v3 failed in 5.6s: step training: ZeroDivisionError: division by zero'
    );
  });

  it('says when tracking failed', () => {
    const done = run({
      tracking: { state: 'done', ok: false, error: 'no server at http://x' }
    });
    expect(trackingLine(done)).toEqual({
      ok: false,
      text: 'Not tracked in MLflow: no server at http://x'
    });
  });
});

describe('step states', () => {
  it('shows a step that never ran as "not run", not as a failure', () => {
    const skipped = step('skipped', {
      error: {
        cell: null,
        ename: 'Skipped',
        evalue: 'training did not succeed',
        message: 'not run because step training did not succeed'
      }
    });
    expect(stepStateView(skipped, true)).toEqual({
      kind: 'notrun',
      symbol: '–',
      text: 'not run',
      detail: 'step training did not succeed'
    });
    expect(stepStateView(step('skipped'), true).detail).toBe('');
    expect(stepStateView(step('queued'), true).text).toBe('not run');
    expect(stepStateView(step('queued'), false).text).toBe('queued');
  });

  it('marks failures and successes', () => {
    expect(stepStateView(step('succeeded', { duration: 1.2 }), true)).toEqual({
      kind: 'succeeded',
      symbol: '✓',
      text: '1.2s',
      detail: ''
    });
    const failed = stepStateView(
      step('failed', {
        error: { cell: 'cell 3', ename: 'E', evalue: 'v', message: '' }
      }),
      true
    );
    expect(failed).toEqual({
      kind: 'failed',
      symbol: '✗',
      text: 'failed',
      detail: 'E: v (in cell 3)'
    });
  });
});

describe('the pipeline Run preselects', () => {
  const pipeline = (name: string, ...notebooks: string[]): IPipeline => ({
    name,
    path: `pipelines/${name}`,
    latest: notebooks.length,
    versions: notebooks.map((notebook, k) => ({
      version: k + 1,
      path: `pipelines/${name}/v${k + 1}`,
      created_at: `2026-11-2${k}T10:00:00`,
      notebook,
      steps: [],
      parameters: []
    }))
  });
  const pipelines = [
    pipeline('aaa', 'other.ipynb'),
    pipeline('churn', 'nb/churn.ipynb'),
    pipeline('churn_v2', 'nb/old.ipynb', 'nb/churn.ipynb')
  ];

  it('is the one exported from the notebook, its latest export first', () => {
    expect(preferredPipeline(pipelines, 'nb/churn.ipynb')).toBe(2);
    expect(preferredPipeline(pipelines, 'other.ipynb')).toBe(0);
  });

  it('is none for a notebook never exported (never an unrelated one)', () => {
    expect(preferredPipeline(pipelines, 'nb/new.ipynb')).toBe(-1);
    expect(preferredPipeline([], 'nb/new.ipynb')).toBe(-1);
  });

  it('is the first without a notebook', () => {
    expect(preferredPipeline(pipelines, null)).toBe(0);
    expect(preferredPipeline([], null)).toBe(-1);
  });

  it('gives Compile the latest version exported from the notebook', () => {
    const found = latestExported(pipelines, 'nb/churn.ipynb');
    expect(found?.pipeline).toBe('churn_v2');
    expect(found?.version.path).toBe('pipelines/churn_v2/v2');
    expect(latestExported(pipelines, 'nb/old.ipynb')?.version.path).toBe(
      'pipelines/churn_v2/v1'
    );
    expect(latestExported(pipelines, 'nb/new.ipynb')).toBeNull();
    expect(latestExported([], 'nb/churn.ipynb')).toBeNull();
  });
});

describe('executed step notebooks', () => {
  it('are recognised by their path, from the panel or the run folder', () => {
    const id = '20261122-103217-4628efa';
    expect(executedStepOf(runNotebookPath(id, 'training'))).toEqual({
      runId: id,
      step: 'training'
    });
    expect(
      executedStepOf(`.nb2prod/runs/${id}/steps/load_data/notebook.ipynb`)
    ).toEqual({ runId: id, step: 'load_data' });
    expect(
      executedStepOf(`work/home/runs/${id}/steps/eval/notebook.ipynb`)
    ).toEqual({ runId: id, step: 'eval' });
  });

  it('are not any other notebook', () => {
    expect(executedStepOf('notebooks/churn.ipynb')).toBeNull();
    expect(executedStepOf('runs/not-an-id/steps/a/notebook.ipynb')).toBeNull();
    expect(
      executedStepOf('.nb2prod/runs/20261122-103217-4628efa/notebook.ipynb')
    ).toBeNull();
  });
});
