/**
 * The Compile flow: which version it compiles, what its notification says, and what the
 * notification's buttons open; the server's message when the server refuses.
 */
import { Notification } from '@jupyterlab/apputils';

import { ICompileResult, IPipeline, Nb2prodAPI } from '../api';
import {
  compileActions,
  compileMessage,
  compilePipeline,
  ICompileActions,
  mainFile
} from '../compile';
import { PipelineModel } from '../model';

jest.mock('@jupyterlab/apputils', () => ({
  Notification: {
    emit: jest.fn(() => 'toast-1'),
    update: jest.fn(),
    error: jest.fn(),
    warning: jest.fn()
  }
}));

const notify = Notification as jest.Mocked<typeof Notification>;

const result = (more: Partial<ICompileResult> = {}): ICompileResult => ({
  target: 'kfp',
  out: 'build/churn-v2-kfp',
  files: ['Dockerfile', 'README.md', 'pipeline.py', 'pipeline.yaml'],
  next_steps: ['python build/churn-v2-kfp/pipeline.py --local'],
  pipeline: 'churn',
  version: 2,
  version_dir: 'pipelines/churn/v2',
  ...more
});

const pipelines: IPipeline[] = [
  {
    name: 'churn',
    path: 'pipelines/churn',
    latest: 2,
    versions: [1, 2].map(v => ({
      version: v,
      path: `pipelines/churn/v${v}`,
      created_at: `2026-11-2${v}T10:00:00Z`,
      notebook: 'nb/churn.ipynb',
      steps: [],
      parameters: []
    }))
  }
];

function setUp(api: Partial<Record<keyof Nb2prodAPI, jest.Mock>>) {
  const model = { api } as unknown as PipelineModel;
  const seen: string[] = [];
  const actions: ICompileActions = {
    openReadOnly: (path, factory) => seen.push(`open ${path} ${factory ?? ''}`),
    showFolder: path => seen.push(`show ${path}`),
    export: () => seen.push('export')
  };
  return { model, actions, seen };
}

beforeEach(() => {
  jest.clearAllMocks();
});

describe('what a compile says', () => {
  it('names the version, the engine and the folder', () => {
    expect(compileMessage(result())).toBe(
      'Compiled churn v2 for Kubeflow Pipelines → build/churn-v2-kfp/'
    );
    expect(
      compileMessage(
        result({ target: 'airflow', out: 'build/churn-v2-airflow' })
      )
    ).toBe('Compiled churn v2 for Airflow → build/churn-v2-airflow/');
  });

  it("opens each engine's main file, when it was written", () => {
    expect(mainFile(result())).toBe('build/churn-v2-kfp/pipeline.py');
    expect(
      mainFile(
        result({
          target: 'airflow',
          out: 'build/churn-v2-airflow',
          files: ['Dockerfile', 'README.md', 'dag.py']
        })
      )
    ).toBe('build/churn-v2-airflow/dag.py');
    expect(mainFile(result({ files: ['Dockerfile'] }))).toBeNull();
  });

  it('offers the main file and the folder', () => {
    const { actions, seen } = setUp({});
    const buttons = compileActions(result(), actions);
    expect(buttons.map(b => b.label)).toEqual([
      'Open pipeline.py',
      'Show Folder'
    ]);
    buttons.forEach(b => b.callback(new MouseEvent('click')));
    expect(seen).toEqual([
      'open build/churn-v2-kfp/pipeline.py ',
      'show build/churn-v2-kfp'
    ]);
    const bare = compileActions(result({ files: ['pipeline.yaml'] }), actions);
    expect(bare.map(b => b.label)).toEqual(['Show Folder']);
  });
});

describe('the Compile flow', () => {
  it("compiles the notebook's latest version and says where the files went", async () => {
    const compile = jest.fn().mockResolvedValue(result());
    const { model, actions } = setUp({
      pipelines: jest.fn().mockResolvedValue(pipelines),
      compile
    });
    const answer = await compilePipeline(
      model,
      'nb/churn.ipynb',
      'kfp',
      actions
    );
    expect(answer).toEqual(result());
    expect(compile).toHaveBeenCalledWith('pipelines/churn/v2', 'kfp');
    expect(notify.emit).toHaveBeenCalledWith(
      'Compiling churn v2 for Kubeflow Pipelines…',
      'in-progress',
      { autoClose: false }
    );
    expect(notify.update).toHaveBeenCalledTimes(1);
    const update = notify.update.mock.calls[0][0];
    expect(update).toMatchObject({
      id: 'toast-1',
      type: 'success',
      message: 'Compiled churn v2 for Kubeflow Pipelines → build/churn-v2-kfp/'
    });
    expect(update.actions?.map(a => a.label)).toEqual([
      'Open pipeline.py',
      'Show Folder'
    ]);
  });

  it("shows the server's one-paragraph message when it refuses", async () => {
    const message =
      'pipelines/churn/v2: step training asks for limit:gpu:two, but two is not an ' +
      'amount. Fix: tag it limit:nvidia.com/gpu:2 and export again.';
    const { model, actions } = setUp({
      pipelines: jest.fn().mockResolvedValue(pipelines),
      compile: jest.fn().mockRejectedValue(new Error(message))
    });
    expect(
      await compilePipeline(model, 'nb/churn.ipynb', 'airflow', actions)
    ).toBeNull();
    expect(notify.update).toHaveBeenCalledWith({
      id: 'toast-1',
      message: `Compile for Airflow failed: ${message}`,
      type: 'error',
      autoClose: false
    });
  });

  it('offers Export, and compiles nothing, for a notebook never exported', async () => {
    const compile = jest.fn();
    const { model, actions, seen } = setUp({
      pipelines: jest.fn().mockResolvedValue(pipelines),
      compile
    });
    expect(
      await compilePipeline(model, 'nb/new.ipynb', 'kfp', actions)
    ).toBeNull();
    expect(compile).not.toHaveBeenCalled();
    expect(notify.emit).not.toHaveBeenCalled();
    const [text, options] = notify.warning.mock.calls[0];
    expect(text).toMatch(/^nb\/new\.ipynb has not been exported yet/);
    expect(options?.actions?.map(a => a.label)).toEqual(['Export…']);
    options!.actions![0].callback(new MouseEvent('click'));
    expect(seen).toEqual(['export']);
  });

  it('says so when the pipelines cannot be listed', async () => {
    const compile = jest.fn();
    const { model, actions } = setUp({
      pipelines: jest
        .fn()
        .mockRejectedValue(new Error('503 Service Unavailable')),
      compile
    });
    expect(
      await compilePipeline(model, 'nb/churn.ipynb', 'kfp', actions)
    ).toBeNull();
    expect(compile).not.toHaveBeenCalled();
    expect(notify.error).toHaveBeenCalledWith(
      'Could not list the pipelines: 503 Service Unavailable',
      { autoClose: false }
    );
  });
});
