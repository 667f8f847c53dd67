/**
 * The model follows a run: it reads the record every POLL_INTERVAL_MS until the run is
 * finished, or gives it up after POLL_FAILURES failed reads in a row.
 */
import { IRun, Nb2prodAPI } from '../api';
import {
  IRunFollower,
  PipelineModel,
  POLL_FAILURES,
  POLL_INTERVAL_MS
} from '../model';
import { runNotebookPath } from '../rundrive';
import { IRunState } from '../tokens';

const tracker = {
  currentWidget: null,
  currentChanged: { connect: () => true, disconnect: () => true }
};

const record = (status: IRun['status'], more: Partial<IRun> = {}): IRun => ({
  id: 'r1',
  pipeline: 'churn',
  version: 1,
  status,
  steps: {},
  metrics: {},
  tracking: null,
  ...more
});

function setUp(reads: (() => Promise<IRun>)[]) {
  const run = jest.fn();
  reads.forEach(read => run.mockImplementationOnce(read));
  const api = { run } as unknown as Nb2prodAPI;
  const model = new PipelineModel(api, tracker as any);
  const state: IRunState = {
    id: 'r1',
    pipeline: 'pipelines/churn/v1',
    record: null,
    error: null
  };
  model.setRun('churn.ipynb', state);
  const seen: string[] = [];
  const follower: IRunFollower = {
    onRecord: r => seen.push(`record ${r.status}`),
    onLost: error => seen.push(`lost ${error}`)
  };
  return { model, run, state, seen, follower };
}

describe('PipelineModel.followRun', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  it('reads every interval until the run is finished', async () => {
    const { model, run, state, seen, follower } = setUp([
      async () => record('running'),
      async () => record('succeeded')
    ]);
    let done = false;
    const following = model
      .followRun('churn.ipynb', state, follower)
      .then(() => {
        done = true;
      });
    await jest.advanceTimersByTimeAsync(POLL_INTERVAL_MS - 1);
    expect(run).toHaveBeenCalledTimes(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledTimes(1);
    expect(seen).toEqual(['record running']);
    expect(model.runOf('churn.ipynb')?.record?.status).toBe('running');
    expect(done).toBe(false);
    await jest.advanceTimersByTimeAsync(POLL_INTERVAL_MS);
    await following;
    expect(seen).toEqual(['record running', 'record succeeded']);
    expect(state.record?.status).toBe('succeeded');
    await jest.advanceTimersByTimeAsync(10 * POLL_INTERVAL_MS);
    expect(run).toHaveBeenCalledTimes(2);
    expect(run).toHaveBeenCalledWith('r1');
  });

  it('keeps following while MLflow logging goes on', async () => {
    const logging = record('succeeded', {
      tracking: { state: 'logging' },
      active: true
    });
    const { model, run, state, seen, follower } = setUp([
      async () => logging,
      async () => record('succeeded', { tracking: { state: 'done' } })
    ]);
    const following = model.followRun('churn.ipynb', state, follower);
    await jest.advanceTimersByTimeAsync(2 * POLL_INTERVAL_MS);
    await following;
    expect(run).toHaveBeenCalledTimes(2);
    expect(seen).toEqual(['record succeeded', 'record succeeded']);
  });

  it('gives up after failed reads in a row, not before', async () => {
    const fail = async (): Promise<IRun> => {
      throw new Error('offline');
    };
    const failures = Array(POLL_FAILURES - 1).fill(fail);
    const { model, run, state, seen, follower } = setUp([
      ...failures,
      async () => record('running'),
      ...failures,
      fail
    ]);
    const following = model.followRun('churn.ipynb', state, follower);
    await jest.advanceTimersByTimeAsync(2 * POLL_FAILURES * POLL_INTERVAL_MS);
    await following;
    expect(run).toHaveBeenCalledTimes(2 * POLL_FAILURES);
    expect(seen).toEqual([
      'record running',
      'lost Lost track of run r1: Error: offline'
    ]);
    expect(model.runOf('churn.ipynb')?.error).toBe(
      'Lost track of run r1: Error: offline'
    );
  });

  it('leaves the panel to a newer run of the notebook', async () => {
    const { model, state, seen, follower } = setUp([
      async () => record('succeeded')
    ]);
    const newer: IRunState = { ...state, id: 'r2' };
    const following = model.followRun('churn.ipynb', state, follower);
    model.setRun('churn.ipynb', newer);
    await jest.advanceTimersByTimeAsync(POLL_INTERVAL_MS);
    await following;
    expect(seen).toEqual(['record succeeded']);
    expect(state.record?.status).toBe('succeeded');
    expect(model.runOf('churn.ipynb')).toBe(newer);
  });

  it('stops following when disposed', async () => {
    const { model, run, state, follower } = setUp([]);
    const following = model.followRun('churn.ipynb', state, follower);
    model.dispose();
    await following;
    await jest.advanceTimersByTimeAsync(5 * POLL_INTERVAL_MS);
    expect(run).toHaveBeenCalledTimes(0);
  });
});

describe('PipelineModel.compileBlocker', () => {
  const pipelines = [
    {
      name: 'churn',
      path: 'pipelines/churn',
      latest: 1,
      versions: [
        {
          version: 1,
          path: 'pipelines/churn/v1',
          created_at: '2026-11-26T10:00:00Z',
          notebook: 'nb/churn.ipynb',
          steps: [],
          parameters: []
        }
      ]
    }
  ];
  const signal = () => ({ connect: () => true, disconnect: () => true });
  const panelAt = (path: string) => ({
    context: {
      path,
      ready: new Promise(() => undefined), // never inspected here
      pathChanged: signal()
    },
    disposed: signal()
  });
  const withPanel = (path: string | null, listing: () => Promise<any>) => {
    const api = {
      pipelines: jest.fn(listing),
      inspect: jest.fn(),
      run: jest.fn(() => new Promise(() => undefined))
    } as unknown as Nb2prodAPI;
    const model = new PipelineModel(api, {
      currentWidget: path === null ? null : panelAt(path),
      currentChanged: signal()
    } as any);
    return { model, api };
  };
  const settled = () => new Promise(resolve => setTimeout(resolve, 0));

  it('allows Compile once the notebook has an exported version', async () => {
    const { model } = withPanel('nb/churn.ipynb', async () => pipelines);
    expect(model.compileBlocker).toBe(
      'Looking for the pipeline exported from this notebook…'
    );
    await settled();
    expect(model.exported?.version.path).toBe('pipelines/churn/v1');
    expect(model.compileBlocker).toBeNull();
  });

  it('says why not for a notebook never exported, until it is', async () => {
    let listed: any[] = [];
    const { model, api } = withPanel('nb/new.ipynb', async () => listed);
    await settled();
    expect(model.exported).toBeNull();
    expect(model.compileBlocker).toMatch(
      /^Compile is disabled: nb\/new\.ipynb has not been exported yet\. Export it first/
    );
    listed = [
      {
        ...pipelines[0],
        versions: [{ ...pipelines[0].versions[0], notebook: 'nb/new.ipynb' }]
      }
    ];
    await model.refreshExported(); // what Export does once it succeeds
    expect(model.compileBlocker).toBeNull();
    expect(api.pipelines).toHaveBeenCalledTimes(2);
  });

  it('leaves Compile possible when the versions cannot be listed', async () => {
    const { model } = withPanel('nb/churn.ipynb', async () => {
      throw new Error('503 Service Unavailable');
    });
    await settled();
    expect(model.exportedError).toBe('503 Service Unavailable');
    expect(model.compileBlocker).toBeNull(); // Compile itself says what is wrong
  });

  it('is blocked without a notebook, and on an executed step notebook', async () => {
    expect(withPanel(null, async () => pipelines).model.compileBlocker).toBe(
      'Open a notebook to compile its pipeline.'
    );
    const executed = withPanel(
      runNotebookPath('20261122-103217-4628efa', 'training'),
      async () => pipelines
    );
    await settled();
    expect(executed.model.compileBlocker).toMatch(
      /^Compile is disabled: this is the executed notebook of step training/
    );
    expect(executed.api.pipelines).not.toHaveBeenCalled();
  });
});
