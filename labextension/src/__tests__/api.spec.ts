import { ServerConnection } from '@jupyterlab/services';

import {
  COMPILE_TARGETS,
  Endpoints,
  isCompileTarget,
  Nb2prodAPI
} from '../api';
import { requestAPI } from '../request';

jest.mock('../request', () => ({ requestAPI: jest.fn() }));

const request = requestAPI as jest.MockedFunction<typeof requestAPI>;

describe('Endpoints', () => {
  it('builds every REST path under /nb2prod/', () => {
    expect(Endpoints.inspect()).toBe('inspect');
    expect(Endpoints.inspect('dir/My Notebook.ipynb')).toBe(
      'inspect?path=dir%2FMy%20Notebook.ipynb'
    );
    expect(Endpoints.exportNotebook).toBe('export');
    expect(Endpoints.pipelines).toBe('pipelines');
    expect(Endpoints.runs).toBe('runs');
    expect(Endpoints.run('20260101-120000-000abcd')).toBe(
      'runs/20260101-120000-000abcd'
    );
    expect(Endpoints.runNotebook('20260101-120000-000abcd', 'train')).toBe(
      'runs/20260101-120000-000abcd/notebook?step=train'
    );
    expect(Endpoints.compile).toBe('compile');
  });

  it('encodes what it is given', () => {
    expect(Endpoints.run('a/b')).toBe('runs/a%2Fb');
    expect(Endpoints.runNotebook('a b', 's&t')).toBe(
      'runs/a%20b/notebook?step=s%26t'
    );
  });
});

describe('Nb2prodAPI', () => {
  const settings = {} as ServerConnection.ISettings;
  const api = new Nb2prodAPI(settings);

  beforeEach(() => {
    request.mockReset();
  });

  it('asks for the endpoints it builds', async () => {
    request.mockResolvedValue({ pipelines: [], id: 'r1' });
    await api.inspect('n.ipynb');
    await api.inspect('n.ipynb', { cells: [] });
    await api.export('n.ipynb', 'churn');
    await api.pipelines();
    await api.startRun('pipelines/churn/v1', { alpha: 1 });
    await api.run('r1');
    await api.runNotebook('r1', 'train');
    await api.compile('pipelines/churn/v1', 'kfp');
    expect(request.mock.calls.map(call => call[0])).toEqual([
      'inspect?path=n.ipynb',
      'inspect',
      'export',
      'pipelines',
      'runs',
      'runs/r1',
      'runs/r1/notebook?step=train',
      'compile'
    ]);
    expect(request.mock.calls.every(call => call[1] === settings)).toBe(true);
  });

  it('posts the bodies the server expects', async () => {
    request.mockResolvedValue({ id: 'r2' });
    expect(await api.startRun('pipelines/churn/v1', { alpha: 1 })).toBe('r2');
    expect(request.mock.calls[0][2]).toEqual({
      method: 'POST',
      body: JSON.stringify({
        pipeline: 'pipelines/churn/v1',
        params: { alpha: 1 }
      })
    });
    await api.export('n.ipynb');
    expect(request.mock.calls[1][2]).toEqual({
      method: 'POST',
      body: JSON.stringify({ path: 'n.ipynb' })
    });
    await api.compile('pipelines/churn/v1', 'airflow');
    expect(request.mock.calls[2][2]).toEqual({
      method: 'POST',
      body: JSON.stringify({
        pipeline: 'pipelines/churn/v1',
        target: 'airflow'
      })
    });
  });
});

describe('compile targets', () => {
  it('are the engines the server compiles for, and nothing else', () => {
    expect(Object.keys(COMPILE_TARGETS)).toEqual(['kfp', 'airflow']);
    expect(isCompileTarget('kfp')).toBe(true);
    expect(isCompileTarget('airflow')).toBe(true);
    for (const other of ['KFP', 'argo', '', 'toString', '__proto__', 1, null]) {
      expect(isCompileTarget(other)).toBe(false);
    }
  });
});
