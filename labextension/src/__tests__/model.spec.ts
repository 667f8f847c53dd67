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
