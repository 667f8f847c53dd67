/**
 * A read-only drive of executed step notebooks, so that the Lab opens them like any notebook.
 *
 * Run folders live under `.nb2prod/`, which the contents API does not serve (it is hidden).
 * The server answers each step's executed notebook at `GET /nb2prod/runs/ID/notebook?step=S`;
 * this drive maps `nb2prod-runs:ID/STEP.ipynb` to it.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from './request';

export const RUN_DRIVE_NAME = 'nb2prod-runs';

/**
 * The drive path of a step's executed notebook.
 */
export function runNotebookPath(runId: string, step: string): string {
  return `${RUN_DRIVE_NAME}:${runId}/${step}.ipynb`;
}

function readOnly(): Promise<never> {
  return Promise.reject(
    new Error('Executed notebooks of pipeline runs are read-only.')
  );
}

export class RunNotebookDrive implements Contents.IDrive {
  constructor(serverSettings: ServerConnection.ISettings) {
    this.serverSettings = serverSettings;
  }

  readonly name = RUN_DRIVE_NAME;
  readonly serverSettings: ServerConnection.ISettings;

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    Signal.clearData(this);
  }

  async get(
    localPath: string,
    options?: Contents.IFetchOptions
  ): Promise<Contents.IModel> {
    const match = /^([^/]+)\/([^/]+)\.ipynb$/.exec(localPath);
    const now = new Date().toISOString();
    if (!match) {
      return {
        name: localPath.split('/').pop() ?? '',
        path: localPath,
        type: 'directory',
        writable: false,
        created: now,
        last_modified: now,
        mimetype: '',
        content: options?.content === false ? null : [],
        format: 'json'
      };
    }
    const [, runId, step] = match;
    const content =
      options?.content === false
        ? null
        : await requestAPI<any>(
            `runs/${encodeURIComponent(runId)}/notebook?step=${encodeURIComponent(step)}`,
            this.serverSettings
          );
    return {
      name: `${step}.ipynb`,
      path: localPath,
      type: 'notebook',
      writable: false,
      created: now,
      last_modified: now,
      mimetype: '',
      content,
      format: 'json'
    };
  }

  getDownloadUrl(localPath: string): Promise<string> {
    return readOnly();
  }

  newUntitled(options?: Contents.ICreateOptions): Promise<Contents.IModel> {
    return readOnly();
  }

  delete(localPath: string): Promise<void> {
    return readOnly();
  }

  rename(oldLocalPath: string, newLocalPath: string): Promise<Contents.IModel> {
    return readOnly();
  }

  save(localPath: string): Promise<Contents.IModel> {
    return readOnly();
  }

  copy(localPath: string, toLocalDir: string): Promise<Contents.IModel> {
    return readOnly();
  }

  async createCheckpoint(
    localPath: string
  ): Promise<Contents.ICheckpointModel> {
    return { id: 'none', last_modified: new Date().toISOString() };
  }

  async listCheckpoints(
    localPath: string
  ): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(localPath: string, checkpointID: string): Promise<void> {
    return readOnly();
  }

  async deleteCheckpoint(
    localPath: string,
    checkpointID: string
  ): Promise<void> {
    // Nothing to delete.
  }

  private _isDisposed = false;
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
}
