/**
 * The serving function in the Lab (issue 14): the panel's serving line after inspect, with a
 * link per need to where it comes from, and the line on the logged serving model after a run.
 * The fixtures follow the contract of `inspect --json`'s `serving` and `run.json`'s `serving`.
 */
import * as React from 'react';

import {
  IPlan,
  IPlanCell,
  IProblem,
  IRun,
  IRunServing,
  IServing,
  IStep
} from '../api';
import { ProblemsView, ServingRunLine, ServingView } from '../panel';
import { runHeadline } from '../runview';
import {
  exampleLine,
  servingRunView,
  servingSummary,
  servingView
} from '../serving';
import { IPanelActions } from '../tokens';

jest.mock('@jupyterlab/ui-components', () => ({
  Button: () => null,
  LabIcon: class {},
  ReactWidget: class {},
  UseSignal: () => null
}));

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup(element: React.ReactElement): string;
};

// As nb2prod/plan/serving.py words it: the needs by name.
const SUMMARY =
  'predict(raw) uses features (parameter), model from training, scaler from preprocessing';

// inspect --json's `serving`: needs as pipeline.yaml sorts them (by name).
const serving = (more: Partial<IServing> = {}): IServing => ({
  function: 'predict',
  args: ['raw'],
  cell: 15,
  needs: [
    { name: 'features', from: 'parameter' },
    { name: 'model', from: 'training' },
    { name: 'scaler', from: 'preprocessing' }
  ],
  callers: ['evaluation'],
  example: { name: 'X_train', from: 'preprocessing' },
  summary: SUMMARY,
  ...more
});

const cell = (index: number): IPlanCell => ({
  index,
  id: `c${index}`,
  type: 'code',
  tags: [],
  role: '',
  step: null,
  metrics: false,
  summary: ''
});

const step = (name: string, cells: number[]): IStep => ({
  name,
  role: name,
  module: `steps/${name}.py`,
  cells,
  inputs: [],
  outputs: [],
  parameters: [],
  metrics: [],
  depends_on: []
});

const plan = (s: IServing | null | undefined): IPlan => ({
  schema_version: 1,
  notebook: 'churn.ipynb',
  name: 'churn',
  parameters: [
    { name: 'features', value: ['a'], type: 'list', help: '', cell: 1 }
  ],
  steps: [
    step('preprocessing', [3, 4]),
    step('training', [6]),
    step('evaluation', [9, 10])
  ],
  dag: {
    order: ['preprocessing', 'training', 'evaluation'],
    edges: []
  },
  cells: Array.from({ length: 17 }, (_, i) => cell(i)),
  unassigned: [],
  problems: [],
  serving: s
});

// run.json's `serving`, as docs/running.md describes it.
const runServing = (more: Partial<IRunServing> = {}): IRunServing => ({
  function: 'predict',
  signature: 'predict(raw)',
  model: 'serving/model',
  example_from: 'evaluation',
  rows: 100,
  skew: 'none',
  status: 'ok',
  ...more
});

const run = (more: Partial<IRun> = {}): IRun => ({
  id: '20261127-061500-1230abc',
  pipeline: 'churn',
  version: 2,
  status: 'succeeded',
  duration: 3,
  steps: {
    training: {
      state: 'succeeded',
      duration: 1,
      error: null,
      notebook: null,
      metrics: {}
    }
  },
  metrics: {},
  tracking: {
    state: 'done',
    ok: true,
    run_id: '0a1b2c',
    serving_model: 'models:/m-77'
  },
  serving: runServing(),
  ...more
});

const SKEW_ERROR =
  'training/serving skew: predict(raw) returned different results when served (the MLflow ' +
  'model serving/model) than in step evaluation, on the same input: row 3: 1 != 0. Fix: ...';

const text = (html: string) =>
  html
    .replace(/<[^>]+>/g, '')
    .replace(/&#x27;/g, "'")
    .replace(/\s+/g, ' ')
    .trim();

describe('the serving line after inspect', () => {
  it('builds the CLI line', () => {
    expect(servingSummary(serving())).toBe(SUMMARY);
    expect(servingSummary(serving({ needs: [], args: ['a', 'b'] }))).toBe(
      'predict(a, b) uses nothing from the steps'
    );
  });

  it('says where each need comes from, and which cell a click goes to', () => {
    const view = servingView(plan(serving()))!;
    expect(view.signature).toBe('predict(raw)');
    expect(view.summary).toBe(SUMMARY);
    expect(view.needs).toEqual([
      { name: 'features', step: null, text: '(parameter)', cell: 1 },
      { name: 'model', step: 'training', text: 'from training', cell: 6 },
      {
        name: 'scaler',
        step: 'preprocessing',
        text: 'from preprocessing',
        cell: 3
      }
    ]);
  });

  it('prefers the server words, and builds them for a server that sends none', () => {
    expect(
      servingView(plan(serving({ summary: 'as the CLI says' })))!.summary
    ).toBe('as the CLI says');
    expect(servingView(plan(serving({ summary: '' })))!.summary).toBe(SUMMARY);
  });

  it('is absent without a serving function (and from older servers)', () => {
    expect(servingView(plan(null))).toBeNull();
    expect(servingView(plan(undefined))).toBeNull();
  });

  it('says where the input example comes from', () => {
    expect(exampleLine(serving())).toBe(
      'input example: the first call of predict in evaluation'
    );
    expect(exampleLine(serving({ callers: [] }))).toBe(
      'input example: the first rows of X_train from preprocessing'
    );
    expect(exampleLine(serving({ callers: [], example: null }))).toBeNull();
  });

  it('renders the line in the serving role, each need a link to its cell', () => {
    const html = renderToStaticMarkup(
      <ServingView plan={plan(serving())} actions={{} as IPanelActions} />
    );
    expect(text(html)).toContain(SUMMARY);
    expect(html).toContain(
      '<span class="nb2prod-Chip" data-nb2prod-hue="green">SERVING</span>'
    );
    expect(html).toContain('data-nb2prod-hue="green"');
    expect(html).toContain(`aria-label="serving: ${SUMMARY}"`);
    expect(html).toContain(
      'aria-label="Serving function predict(raw) (go to cell 16)"'
    );
    expect(html).toContain(
      'aria-label="scaler from preprocessing (go to cell 4)"'
    );
    expect(html).toContain('aria-label="features (parameter) (go to cell 2)"');
    expect(
      renderToStaticMarkup(
        <ServingView plan={plan(null)} actions={{} as IPanelActions} />
      )
    ).toBe('');
    const bare = renderToStaticMarkup(
      <ServingView
        plan={plan(serving({ needs: [], summary: '' }))}
        actions={{} as IPanelActions}
      />
    );
    expect(text(bare)).toContain('predict(raw) uses nothing from the steps');
  });
});

describe('serving problems', () => {
  it('show like every problem: the CLI text, a link to the cell, Export blocked', () => {
    const problem: IProblem = {
      code: 'serving-unknown-name',
      severity: 'error',
      message: 'predict reads `encoder`, which no step produces',
      fix: 'produce it in a step, or make it a parameter',
      cell: { index: 15, id: 'c15' },
      variable: 'encoder',
      text:
        'cell 16: serving function predict reads `encoder`, which no step produces. ' +
        'Fix: produce it in a step, or make it a parameter.'
    };
    const html = renderToStaticMarkup(
      <ProblemsView
        problems={[problem]}
        errors={1}
        actions={{} as IPanelActions}
      />
    );
    expect(html).toContain('Export is disabled until this error is fixed.');
    expect(html).toContain(
      `aria-label="error: ${problem.text} (go to cell 16)"`
    );
    expect(text(html)).toContain(problem.text);
  });
});

describe('the serving line after a run', () => {
  it('says the model is logged, the skew check passed, and how to serve it', () => {
    expect(servingRunView(run())).toEqual({
      kind: 'ok',
      text:
        "predict(raw) logged as model 'serving', no training/serving skew on 100 rows " +
        '(input example from evaluation).',
      command: 'nb2prod serve 20261127-061500-1230abc',
      model: 'models:/m-77'
    });
    const html = renderToStaticMarkup(<ServingRunLine run={run()} />);
    expect(text(html)).toBe(
      "SERVING predict(raw) logged as model 'serving', no training/serving skew on 100 rows " +
        '(input example from evaluation). (models:/m-77) Serve it: nb2prod serve ' +
        '20261127-061500-1230abc'
    );
    expect(html).toContain('data-serving="ok"');
    expect(html).not.toContain('role="alert"');
  });

  it('words an untracked run, one row, a fallback example and a reused model', () => {
    const view = servingRunView(
      run({
        tracking: null,
        serving: runServing({
          rows: 1,
          example_from: 'X_train from preprocessing',
          reused_from: '20261126-101010-0000001'
        })
      })
    )!;
    expect(view.text).toBe(
      'predict(raw) saved as serving/model, no training/serving skew on 1 row (input ' +
        'example from X_train from preprocessing) (reused from run 20261126-101010-0000001).'
    );
    expect(view.model).toBeNull();
    expect(view.command).toBe('nb2prod serve 20261127-061500-1230abc');
  });

  it('says so when there was no input example to check', () => {
    const view = servingRunView(
      run({
        serving: runServing({ rows: null, example_from: null, skew: null })
      })
    )!;
    expect(view.kind).toBe('unchecked');
    expect(view.text).toBe(
      "predict(raw) logged as model 'serving', no input example, so no skew check."
    );
    expect(view.command).toBe('nb2prod serve 20261127-061500-1230abc');
  });

  it('shows the skew error instead, and no command to serve a skewed model', () => {
    const skewed = run({
      status: 'failed',
      serving: runServing({
        skew: 'found',
        status: 'failed',
        error: SKEW_ERROR
      })
    });
    expect(servingRunView(skewed)).toEqual({
      kind: 'skew',
      text: SKEW_ERROR,
      command: null,
      model: null
    });
    const html = renderToStaticMarkup(<ServingRunLine run={skewed} />);
    expect(html).toContain('role="alert"');
    expect(html).toContain('data-serving="skew"');
    expect(html).not.toContain('nb2prod serve');
    // Every step succeeded: the run's line says why it failed.
    expect(runHeadline(skewed, null)).toBe(
      `churn v2 failed in 3.0s: ${SKEW_ERROR}`
    );
  });

  it('shows why the model could not be built', () => {
    const error =
      'the serving model of predict(raw) could not be built or loaded (KeyError: scaler).';
    const failed = run({
      status: 'failed',
      serving: runServing({
        status: 'failed',
        model: undefined,
        rows: undefined,
        skew: null,
        error
      })
    });
    expect(servingRunView(failed)).toMatchObject({
      kind: 'failed',
      text: `No serving model: ${error}`,
      command: null
    });
    expect(runHeadline(failed, null)).toBe(`churn v2 failed in 3.0s: ${error}`);
  });

  it('is absent on runs without a serving model', () => {
    expect(servingRunView(run({ serving: null }))).toBeNull();
    expect(servingRunView(run({ serving: undefined }))).toBeNull();
    expect(
      renderToStaticMarkup(<ServingRunLine run={run({ serving: null })} />)
    ).toBe('');
  });
});
