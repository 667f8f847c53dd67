/**
 * Quality gates in the Lab (issue 13): metrics against the baseline, a mark per gate, the
 * gates' outcome, the run form's baseline choice, and the body of `POST runs`.
 */
import * as React from 'react';

import {
  IGateResult,
  IPipelineVersion,
  IPlan,
  IRun,
  IRunGates,
  IRunStep,
  runBody
} from '../api';
import { formatDelta } from '../format';
import {
  baselineChoices,
  baselineLine,
  gateMark,
  gateNumbers,
  gatesSummary,
  metricRows,
  promotionLine,
  readBaseline,
  runOutcome
} from '../gates';
import { GateResults, GatesView } from '../panel';
import { notificationType } from '../run';
import { runReportPath } from '../rundrive';
import { runHeadline } from '../runview';
import { IPanelActions } from '../tokens';

jest.mock('@jupyterlab/ui-components', () => ({
  Button: () => null,
  LabIcon: class {},
  ReactWidget: class {},
  UseSignal: () => null
}));
jest.mock('@jupyterlab/apputils', () => ({}));

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup(element: React.ReactElement): string;
};

const step = (state: IRunStep['state']): IRunStep => ({
  state,
  duration: 1,
  error: null,
  notebook: null,
  metrics: {}
});

const gate = (more: Partial<IGateResult>): IGateResult => ({
  expr: 'accuracy >= 0.95',
  metric: 'accuracy',
  op: '>=',
  help: '',
  origin: 'notebook',
  value: 0.97,
  baseline: null,
  threshold: 0.95,
  status: 'passed',
  reason: null,
  ...more
});

const gates = (results: IGateResult[], more: Partial<IRunGates> = {}) =>
  ({
    status: results.some(r => r.status === 'failed') ? 'failed' : 'passed',
    results,
    promote: false,
    promoted: null,
    ...more
  }) as IRunGates;

const run = (more: Partial<IRun>): IRun => ({
  id: '20261127-023015-1230abc',
  pipeline: 'churn',
  version: 4,
  status: 'succeeded',
  duration: 2,
  steps: { training: step('succeeded') },
  metrics: { accuracy: 0.93, f1: 0.9, n: 120 },
  tracking: null,
  ...more
});

const baseline = {
  requested: 'champion',
  run_id: '20261126-101010-0000001',
  mlflow_run_id: 'abc123',
  version: 3,
  source: 'champion (MLflow registry)',
  metrics: { accuracy: 0.95, f1: 0.9 }
};

describe('formatDelta', () => {
  it('signs a change and formats it as a metric', () => {
    expect(formatDelta(0.93 - 0.95)).toBe('−0.02');
    expect(formatDelta(0.0125)).toBe('+0.0125');
    expect(formatDelta(3)).toBe('+3');
    expect(formatDelta(0)).toBe('±0');
  });

  it('is empty without a baseline', () => {
    expect(formatDelta(null)).toBe('');
    expect(formatDelta(undefined)).toBe('');
    expect(formatDelta(NaN)).toBe('');
  });
});

describe('metricRows', () => {
  it('puts each metric beside the baseline', () => {
    const rows = metricRows(run({ baseline }));
    expect(rows.map(r => [r.name, r.baseline, formatDelta(r.delta)])).toEqual([
      ['accuracy', 0.95, '−0.02'],
      ['f1', 0.9, '±0'],
      ['n', null, '']
    ]);
  });

  it('has no deltas without a baseline (and on older records)', () => {
    expect(
      metricRows(run({ baseline: null })).every(r => r.delta === null)
    ).toBe(true);
    expect(metricRows(run({})).map(r => r.value)).toEqual([0.93, 0.9, 120]);
  });
});

describe('gate marks', () => {
  it('gives each result a symbol and the words', () => {
    expect(gateMark(gate({}))).toEqual({
      kind: 'passed',
      symbol: '✓',
      text: 'pass'
    });
    expect(gateMark(gate({ status: 'failed' })).text).toBe('fail');
    expect(gateMark(gate({ status: 'no baseline' }))).toEqual({
      kind: 'nobaseline',
      symbol: '–',
      text: 'no baseline'
    });
  });

  it('shows the value against the threshold', () => {
    expect(gateNumbers(gate({ value: 0.93, threshold: 0.94 }))).toBe(
      '0.93 vs 0.94'
    );
    expect(gateNumbers(gate({ value: null, threshold: null }))).toBe('–');
  });
});

describe('gatesSummary', () => {
  it('counts the failed gates and those without a baseline', () => {
    const mixed = gates([
      gate({}),
      gate({ expr: 'f1 >= baseline', status: 'failed' }),
      gate({ expr: 'auc >= baseline', status: 'no baseline' })
    ]);
    expect(gatesSummary(mixed)).toEqual({
      kind: 'failed',
      text: 'Gates failed: 1 of 3, 1 without a baseline'
    });
    expect(gatesSummary(gates([gate({}), gate({})])).text).toBe(
      'Gates passed (2 of 2)'
    );
    expect(gatesSummary(gates([], { status: 'not checked' })).kind).toBe(
      'notchecked'
    );
  });

  it('says what promotion did', () => {
    expect(promotionLine(gates([gate({})]))).toBeNull();
    expect(
      promotionLine(
        gates([gate({})], {
          promote: true,
          promoted: { models: { churn: '7' } }
        })
      )
    ).toBe('Promoted to champion: churn v7.');
    expect(
      promotionLine(gates([gate({ status: 'failed' })], { promote: true }))
    ).toBe('Not promoted: a gate failed, the champion stays.');
  });
});

describe('baselineLine', () => {
  it('names the run compared with, or says there was none', () => {
    expect(baselineLine(baseline)).toBe(
      'Compared with champion (MLflow registry), v3: run 20261126-101010-0000001'
    );
    expect(
      baselineLine({ ...baseline, run_id: null, mlflow_run_id: null })
    ).toBe(
      'No baseline found (champion): gates on `baseline` were not checked.'
    );
    expect(baselineLine(null)).toMatch(/^No baseline/);
  });
});

describe('a run whose gates failed', () => {
  const failedGates = gates([
    gate({ expr: 'accuracy >= 0.95', status: 'failed', value: 0.93 })
  ]);

  it('is not a crash', () => {
    const worse = run({ gates: failedGates });
    expect(runOutcome(worse)).toBe('gates-failed');
    expect(runOutcome({ ...worse, status: 'failed' })).toBe('gates-failed');
    expect(notificationType(worse)).toBe('warning');
    expect(runHeadline(worse, null)).toBe(
      'churn v4: steps succeeded in 2.0s, but a gate failed: accuracy >= 0.95'
    );
  });

  it('is a crash when a step failed too', () => {
    const crashed = run({
      status: 'failed',
      steps: { training: step('failed') },
      gates: failedGates
    });
    expect(runOutcome(crashed)).toBe('failed');
    expect(notificationType(crashed)).toBe('error');
  });

  it('passes quietly otherwise', () => {
    const fine = run({ gates: gates([gate({})]) });
    expect(runOutcome(fine)).toBe('succeeded');
    expect(notificationType(fine)).toBe('success');
    expect(runHeadline(fine, null)).toBe(
      'churn v4 succeeded in 2.0s; gates passed'
    );
    expect(runOutcome(run({ status: 'running' }))).toBe('running');
  });
});

describe('the run form baseline', () => {
  const versions = [1, 3, 2].map(version => ({ version }) as IPipelineVersion);

  it('offers the champion first, then previous, versions and a run id', () => {
    expect(baselineChoices(versions).map(c => c.value)).toEqual([
      'champion',
      'previous',
      'v3',
      'v2',
      'v1',
      'run'
    ]);
  });

  it('checks a typed run id', () => {
    expect(readBaseline('previous', 'ignored')).toEqual({
      ok: true,
      value: 'previous'
    });
    expect(readBaseline('run', ' 20261126-101010-0000001 ')).toEqual({
      ok: true,
      value: '20261126-101010-0000001'
    });
    const bad = readBaseline('run', 'last week');
    expect(bad.ok).toBe(false);
  });

  it('sends only the options that are set', () => {
    expect(runBody('pipelines/churn/v4', { C: 1 })).toEqual({
      pipeline: 'pipelines/churn/v4',
      params: { C: 1 }
    });
    expect(
      runBody(
        'pipelines/churn/v4',
        {},
        { baseline: 'v3', promote: true, gates: ['f1 >= 0.8'] }
      )
    ).toEqual({
      pipeline: 'pipelines/churn/v4',
      params: {},
      baseline: 'v3',
      promote: true,
      gates: ['f1 >= 0.8']
    });
    expect(
      runBody('p', {}, { baseline: undefined, promote: false, gates: [] })
    ).toEqual({ pipeline: 'p', params: {} });
  });
});

describe('the panel', () => {
  it('lists the notebook gates with their help, linked to their cell', () => {
    const plan = { cells: [{ index: 0, id: 'g0' }] } as unknown as IPlan;
    const html = renderToStaticMarkup(
      <GatesView
        plan={plan}
        gates={[
          {
            expr: 'f1 >= baseline - 0.01',
            metric: 'f1',
            op: '>=',
            threshold: 'baseline - 0.01',
            uses_baseline: true,
            help: 'no worse than the champion',
            cell: 0,
            line: 2
          }
        ]}
        actions={{} as IPanelActions}
      />
    );
    expect(html).toContain('<code>f1 &gt;= baseline - 0.01</code>');
    expect(html).toContain('no worse than the champion');
    expect(html).toContain('go to cell 1, line 2');
  });

  it('marks each gate of a run', () => {
    const record = run({
      baseline,
      gates: gates([
        gate({}),
        gate({ expr: 'f1 >= baseline', status: 'failed', reason: 'f1 is NaN' })
      ])
    });
    const html = renderToStaticMarkup(
      <GateResults gates={record.gates!} record={record} />
    );
    expect(html).toContain('data-gates="failed"');
    expect(html).toContain('Gates failed: 1 of 2');
    expect(html).toContain('data-gate="passed"');
    expect(html).toContain('data-gate="failed"');
    expect(html).toContain('f1 is NaN');
    expect(html).toContain('Compared with champion (MLflow registry)');
  });
});

describe('step reports', () => {
  it('open from the run drive', () => {
    expect(runReportPath('20261127-023015-1230abc', 'train')).toBe(
      'nb2prod-runs:20261127-023015-1230abc/train.html'
    );
  });
});
