/**
 * The state behind the Pipeline panel and the commands: the current notebook, its plan from
 * the server (refreshed as the notebook changes), and the runs started from it.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { PromiseDelegate } from '@lumino/coreutils';
import { Debouncer, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IPlan, IProblem, IRun, isFinished, Nb2prodAPI } from './api';
import { executedStepOf, IExecutedStep } from './rundrive';
import { IExportedVersion, latestExported } from './runview';
import { IExecutedState, IRunState } from './tokens';

/**
 * How long the notebook must stay unchanged before it is inspected again.
 */
export const INSPECT_DELAY_MS = 500;

/**
 * How often a running run's record is read.
 */
export const POLL_INTERVAL_MS = 1000;

/**
 * How many reads of a run's record may fail in a row before the run is given up.
 */
export const POLL_FAILURES = 5;

/**
 * Who is told what {@link PipelineModel.followRun} reads (the notifications of the Run flow).
 */
export interface IRunFollower {
  /**
   * A record of the run was read (after the model has it); the last one is finished.
   */
  onRecord(record: IRun): void;
  /**
   * The record could not be read {@link POLL_FAILURES} times in a row: the run is given up.
   */
  onLost(error: string): void;
}

/**
 * The notebook JSON the server needs to inspect it: no outputs (they can be large, and the
 * plan never depends on them).
 */
export function inspectContent(content: any): any {
  if (!content || !Array.isArray(content.cells)) {
    return content;
  }
  return {
    ...content,
    cells: content.cells.map((cell: any) =>
      cell.cell_type === 'code'
        ? { ...cell, outputs: [], execution_count: null }
        : cell
    )
  };
}

/**
 * The model of the Pipeline panel.
 */
export class PipelineModel {
  constructor(api: Nb2prodAPI, tracker: INotebookTracker) {
    this.api = api;
    this._tracker = tracker;
    this._debouncer = new Debouncer(() => this.inspectNow(), INSPECT_DELAY_MS);
    tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  /**
   * The server API.
   */
  readonly api: Nb2prodAPI;

  /**
   * Emitted whenever anything below changes.
   */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * The notebook the panel shows (the current one of the tracker).
   */
  get panel(): NotebookPanel | null {
    return this._panel;
  }

  /**
   * The plan of the notebook, as last inspected.
   */
  get plan(): IPlan | null {
    return this._plan;
  }

  /**
   * Why the last inspection failed, if it did.
   */
  get error(): string | null {
    return this._error;
  }

  /**
   * Whether an inspection is under way.
   */
  get loading(): boolean {
    return this._loading;
  }

  /**
   * The run and step, when the notebook is a step's executed notebook (read-only: it is not
   * inspected, exported or run).
   */
  get executed(): IExecutedState | null {
    return this._executed;
  }

  /**
   * The errors (not the warnings) of the plan.
   */
  get errors(): IProblem[] {
    return (this._plan?.problems ?? []).filter(p => p.severity === 'error');
  }

  /**
   * Why Export is not possible right now, or `null` when it is.
   */
  get exportBlocker(): string | null {
    if (!this._panel) {
      return 'Open a notebook to export it.';
    }
    if (this._executed) {
      return executedBlocker(this._executed, 'Export');
    }
    const n = this.errors.length;
    if (n > 0) {
      const first = this.errors[0];
      return (
        `Export is disabled: the notebook has ${n} error${n > 1 ? 's' : ''}. ` +
        `First: ${first.message} Fix: ${first.fix} (See the Pipeline panel.)`
      );
    }
    return null;
  }

  /**
   * Why Run is not possible right now, or `null` when it is.
   */
  get runBlocker(): string | null {
    return this._executed ? executedBlocker(this._executed, 'Run') : null;
  }

  /**
   * The latest version exported from the current notebook: `undefined` while it is looked up,
   * `null` when there is none (or the lookup failed: see {@link exportedError}).
   */
  get exported(): IExportedVersion | null | undefined {
    return this._exported;
  }

  /**
   * Why the exported versions could not be listed, if they could not.
   */
  get exportedError(): string | null {
    return this._exportedError;
  }

  /**
   * Why Compile is not possible right now, or `null` when it is. When the versions could not
   * be listed, Compile stays possible: it lists them again and says what went wrong.
   */
  get compileBlocker(): string | null {
    if (!this._panel) {
      return 'Open a notebook to compile its pipeline.';
    }
    if (this._executed) {
      return executedBlocker(this._executed, 'Compile');
    }
    if (this._exported === undefined) {
      return 'Looking for the pipeline exported from this notebook…';
    }
    if (this._exported === null && this._exportedError === null) {
      return (
        `Compile is disabled: ${this._panel.context.path} has not been exported yet. ` +
        'Export it first: an engine runs an exported pipeline version.'
      );
    }
    return null;
  }

  /**
   * Look up the latest version exported from the current notebook again (after an export,
   * or when the notebook is renamed).
   */
  async refreshExported(): Promise<void> {
    const panel = this._panel;
    const seq = ++this._exportedSeq;
    if (!panel || this._executed) {
      this._exported = null;
      this._exportedError = null;
      this._changed.emit();
      return;
    }
    try {
      const found = latestExported(
        await this.api.pipelines(),
        panel.context.path
      );
      if (seq === this._exportedSeq) {
        this._exported = found;
        this._exportedError = null;
      }
    } catch (reason) {
      if (seq === this._exportedSeq) {
        this._exported = null;
        this._exportedError =
          reason instanceof Error ? reason.message : String(reason);
      }
    } finally {
      if (seq === this._exportedSeq) {
        this._changed.emit();
      }
    }
  }

  /**
   * The run of the current notebook (the last one started from it), if any.
   */
  get run(): IRunState | null {
    const path = this._panel?.context.path;
    return path ? (this._runs.get(path) ?? null) : null;
  }

  /**
   * The last run started from the notebook at `path`.
   */
  runOf(path: string): IRunState | null {
    return this._runs.get(path) ?? null;
  }

  /**
   * Record a run of the notebook at `path`.
   */
  setRun(path: string, run: IRunState): void {
    this._runs.set(path, run);
    this._changed.emit();
  }

  /**
   * Inspect the notebook again after it stays unchanged for {@link INSPECT_DELAY_MS}.
   */
  scheduleInspect(): void {
    void this._debouncer.invoke();
  }

  /**
   * Inspect the current notebook now (its unsaved content).
   */
  async inspectNow(): Promise<void> {
    const panel = this._panel;
    const seq = ++this._seq;
    if (!panel || !panel.content.model || this._executed) {
      return;
    }
    this._loading = true;
    this._changed.emit();
    try {
      const plan = await this.api.inspect(
        panel.context.path,
        inspectContent(panel.content.model.toJSON())
      );
      if (seq === this._seq) {
        this._plan = plan;
        this._error = null;
      }
    } catch (reason) {
      if (seq === this._seq) {
        this._error = reason instanceof Error ? reason.message : String(reason);
      }
    } finally {
      if (seq === this._seq) {
        this._loading = false;
        this._changed.emit();
      }
    }
  }

  /**
   * Read the record of `run` (a run of the notebook at `path`) every
   * {@link POLL_INTERVAL_MS}, from {@link POLL_INTERVAL_MS} from now, until it is finished or
   * lost. Each record goes into the run's state (and the panel's, unless a newer run of the
   * notebook took over), then to `follower`.
   *
   * @returns A promise that resolves when following ends.
   */
  followRun(
    path: string,
    run: IRunState,
    follower: IRunFollower
  ): Promise<void> {
    const ended = new PromiseDelegate<void>();
    let failures = 0;
    // Errors are counted here, never thrown to the poll: it would back off.
    const poll = new Poll({
      name: `nb2prod:run:${run.id}`,
      auto: false,
      standby: 'never',
      frequency: { interval: POLL_INTERVAL_MS, backoff: false },
      factory: async () => {
        let record: IRun;
        try {
          record = await this.api.run(run.id);
          failures = 0;
        } catch (reason) {
          failures++;
          if (failures >= POLL_FAILURES) {
            run.error = `Lost track of run ${run.id}: ${String(reason)}`;
            this.setRun(path, run);
            poll.dispose();
            follower.onLost(run.error);
          }
          return;
        }
        run.record = record;
        // A newer run of the same notebook takes over the panel; this one only notifies.
        if (this.runOf(path)?.id === run.id) {
          this.setRun(path, run);
        }
        if (isFinished(record)) {
          poll.dispose();
        }
        follower.onRecord(record);
      }
    });
    this._polls.add(poll);
    poll.disposed.connect(() => {
      this._polls.delete(poll);
      ended.resolve();
    });
    // The first read comes one interval after the start, as every other.
    void poll.schedule({ interval: POLL_INTERVAL_MS, phase: 'started' });
    return ended.promise;
  }

  dispose(): void {
    this._polls.forEach(poll => poll.dispose());
    this._debouncer.dispose();
    this._tracker.currentChanged.disconnect(this._onCurrentChanged, this);
    Signal.clearData(this);
  }

  private _onCurrentChanged(): void {
    const panel = this._tracker.currentWidget;
    if (panel === this._panel) {
      return;
    }
    if (this._panel) {
      this._panel.context.model.contentChanged.disconnect(
        this._onContentChanged,
        this
      );
      this._panel.context.pathChanged.disconnect(this._onContentChanged, this);
      this._panel.context.pathChanged.disconnect(this._onPathChanged, this);
    }
    this._panel = panel;
    this._plan = null;
    this._error = null;
    this._seq++;
    this._loading = false;
    const executed = panel ? executedStepOf(panel.context.path) : null;
    this._executed = executed ? { ...executed, record: null } : null;
    this._exported = undefined;
    this._exportedError = null;
    this._changed.emit();
    if (this._executed) {
      void this._readExecutedRun(this._executed);
    }
    void this.refreshExported();
    if (panel) {
      // A renamed notebook may have been exported under its new path (or not).
      panel.context.pathChanged.connect(this._onPathChanged, this);
      void panel.context.ready.then(() => {
        if (this._panel !== panel) {
          return;
        }
        panel.context.model.contentChanged.connect(
          this._onContentChanged,
          this
        );
        panel.context.pathChanged.connect(this._onContentChanged, this);
        void this.inspectNow();
      });
      panel.disposed.connect(() => {
        if (this._panel === panel) {
          this._onCurrentChanged();
        }
      });
    }
  }

  private _onContentChanged(): void {
    this.scheduleInspect();
  }

  private _onPathChanged(): void {
    void this.refreshExported();
  }

  /**
   * Read the run record of an executed step notebook, for the panel's links back to it.
   */
  private async _readExecutedRun(executed: IExecutedState): Promise<void> {
    try {
      const record = await this.api.run(executed.runId);
      if (this._executed === executed) {
        executed.record = record;
        this._changed.emit();
      }
    } catch {
      // The panel says what it can from the path alone.
    }
  }

  private _tracker: INotebookTracker;
  private _debouncer: Debouncer;
  private _polls = new Set<Poll>();
  private _panel: NotebookPanel | null = null;
  private _plan: IPlan | null = null;
  private _error: string | null = null;
  private _loading = false;
  private _seq = 0;
  private _runs = new Map<string, IRunState>();
  private _executed: IExecutedState | null = null;
  private _exported: IExportedVersion | null | undefined = undefined;
  private _exportedError: string | null = null;
  private _exportedSeq = 0;
  private _changed = new Signal<this, void>(this);
}

/**
 * Why `action` is not offered on an executed step notebook.
 */
export function executedBlocker(
  executed: IExecutedStep,
  action: 'Export' | 'Run' | 'Compile'
): string {
  return (
    `${action} is disabled: this is the executed notebook of step ${executed.step} of run ` +
    `${executed.runId}, a read-only record of that run. ${action} the source notebook instead.`
  );
}
