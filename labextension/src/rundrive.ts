/**
 * Read-only drives, so that the Lab opens files nb2prod wrote like any document, without
 * letting anyone edit them and without JupyterLab writing `.ipynb_checkpoints/` beside them.
 *
 * - `nb2prod-runs:ID/STEP.ipynb`: a step's executed notebook. Run folders live under
 *   `.nb2prod/`, which the contents API does not serve (it is hidden); the server answers each
 *   step's executed notebook at `GET /nb2prod/runs/ID/notebook?step=S`.
 * - `nb2prod-runs:ID/STEP.html`: a step's HTML report (`GET /nb2prod/runs/ID/report?step=S`),
 *   for JupyterLab's HTML viewer.
 * - `nb2prod-view:PATH`: a file of an exported version (`pipeline.yaml`, `README.md`), read
 *   through the contents API and marked not writable. JupyterLab creates a checkpoint of every
 *   writable file it opens, which would put `.ipynb_checkpoints/` inside an immutable version.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { Nb2prodAPI } from './api';

export const RUN_DRIVE_NAME = 'nb2prod-runs';
export const VIEW_DRIVE_NAME = 'nb2prod-view';

/**
 * The drive path of a step's executed notebook.
 */
export function runNotebookPath(runId: string, step: string): string {
  return `${RUN_DRIVE_NAME}:${runId}/${step}.ipynb`;
}

/**
 * The drive path of a step's HTML report.
 */
export function runReportPath(runId: string, step: string): string {
  return `${RUN_DRIVE_NAME}:${runId}/${step}.html`;
}

/**
 * The read-only drive path of a file (relative to the server's root).
 */
export function viewPath(path: string): string {
  return `${VIEW_DRIVE_NAME}:${path}`;
}

/**
 * Which run and step an executed step notebook belongs to.
 */
export interface IExecutedStep {
  runId: string;
  step: string;
}

/**
 * A run id, as the runner makes them (nb2prod/runner.py's RUN_ID_RE).
 */
const RUN_ID = '[0-9]{8}-[0-9]{6}-[0-9]{3}[0-9a-f]{4}';
const STEP = '[A-Za-z_][A-Za-z0-9_]*';
const DRIVE_PATH = new RegExp(
  `^${RUN_DRIVE_NAME}:(${RUN_ID})/(${STEP})\\.ipynb$`
);
const RUN_FOLDER_PATH = new RegExp(
  `(?:^|/)runs/(${RUN_ID})/steps/(${STEP})/notebook\\.ipynb$`
);

/**
 * The run and step of an executed step notebook, from its path: opened from the Pipeline panel
 * (`nb2prod-runs:ID/STEP.ipynb`) or from the run folder itself
 * (`.nb2prod/runs/ID/steps/STEP/notebook.ipynb`). `null` for any other notebook.
 */
export function executedStepOf(path: string): IExecutedStep | null {
  const match = DRIVE_PATH.exec(path) ?? RUN_FOLDER_PATH.exec(path);
  return match ? { runId: match[1], step: match[2] } : null;
}

/**
 * A fixed modification time for files that never change: JupyterLab compares it before
 * saving, and a time that moved would ask "File Changed… Overwrite?".
 */
const NEVER_MODIFIED = new Date(0).toISOString();

function readOnly(): Promise<never> {
  return Promise.reject(
    new Error(
      'This file is read-only: nb2prod wrote it (an executed step notebook or a file of an exported version).'
    )
  );
}

/**
 * What both drives share: nothing can be written, and checkpoints are never made.
 */
abstract class ReadOnlyDriveBase implements Contents.IDrive {
  constructor(serverSettings: ServerConnection.ISettings) {
    this.serverSettings = serverSettings;
  }

  abstract readonly name: string;
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

  abstract get(
    localPath: string,
    options?: Contents.IFetchOptions
  ): Promise<Contents.IModel>;

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
    return { id: 'none', last_modified: NEVER_MODIFIED };
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

export class RunNotebookDrive extends ReadOnlyDriveBase {
  constructor(serverSettings: ServerConnection.ISettings) {
    super(serverSettings);
    this._api = new Nb2prodAPI(serverSettings);
  }

  readonly name = RUN_DRIVE_NAME;

  async get(
    localPath: string,
    options?: Contents.IFetchOptions
  ): Promise<Contents.IModel> {
    const match = /^([^/]+)\/([^/]+)\.ipynb$/.exec(localPath);
    const now = NEVER_MODIFIED;
    const report = /^([^/]+)\/([^/]+)\.html$/.exec(localPath);
    if (report) {
      const [, runId, step] = report;
      return {
        name: `${step}.html`,
        path: localPath,
        type: 'file',
        writable: false,
        created: now,
        last_modified: now,
        mimetype: 'text/html',
        content:
          options?.content === false
            ? null
            : await this._api.runReport(runId, step),
        format: 'text'
      };
    }
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
        : await this._api.runNotebook(runId, step);
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

  private _api: Nb2prodAPI;
}

/**
 * Files of the server's root, read-only: `nb2prod-view:pipelines/churn/v3/pipeline.yaml`.
 */
export class ReadOnlyDrive extends ReadOnlyDriveBase {
  /**
   * @param contents The application's contents manager (its default drive reads the files).
   */
  constructor(contents: Contents.IManager) {
    super(contents.serverSettings);
    this._contents = contents;
  }

  readonly name = VIEW_DRIVE_NAME;

  async get(
    localPath: string,
    options?: Contents.IFetchOptions
  ): Promise<Contents.IModel> {
    const model = await this._contents.get(localPath, options);
    return { ...model, path: localPath, writable: false };
  }

  getDownloadUrl(localPath: string): Promise<string> {
    return this._contents.getDownloadUrl(localPath);
  }

  private _contents: Contents.IManager;
}
