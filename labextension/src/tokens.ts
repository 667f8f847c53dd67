/**
 * The names the modules of the extension share: command ids, and the shapes of the state
 * the model keeps and the panel shows. Types and constants only, so that any module (lazily
 * loaded ones included) can import it without pulling in another.
 */
import type { IRun } from './api';
import type { ICellRef } from './goto';
import type { IExecutedStep } from './rundrive';

/**
 * The command ids.
 */
export namespace CommandIDs {
  export const exportPipeline = 'nb2prod:export';
  export const runPipeline = 'nb2prod:run';
  export const showPanel = 'nb2prod:show-panel';
  export const refresh = 'nb2prod:refresh';
  export const setRole = 'nb2prod:set-role';
  export const tagReference = 'nb2prod:tag-reference';
  /**
   * Compile the notebook's exported pipeline for an engine: args `{ target: CompileTarget }` (see api.ts).
   */
  export const compile = 'nb2prod:compile';
}

/**
 * A run started from the Lab, and its last known record.
 */
export interface IRunState {
  id: string;
  /**
   * `pipelines/<name>/vN`
   */
  pipeline: string;
  record: IRun | null;
  /**
   * Why the run's record could not be read, if it could not.
   */
  error: string | null;
}

/**
 * An executed step notebook that is open, and what the panel knows of its run.
 */
export interface IExecutedState extends IExecutedStep {
  /**
   * The run's record, once read (`null` until then, or if it could not be read).
   */
  record: IRun | null;
}

/**
 * What the panel asks of the application.
 */
export interface IPanelActions {
  goToCell(ref: ICellRef): void;
  openRunNotebook(runId: string, step: string): void;
  /**
   * Open a step's HTML report (its executed notebook rendered by nbconvert).
   */
  openRunReport(runId: string, step: string): void;
  /**
   * Open a file of the server's root (a run's source notebook).
   */
  openFile(path: string): void;
  export(): void;
  run(): void;
  /**
   * Open the menu of compile targets below `anchor` (the panel's Compile button).
   */
  compileMenu(anchor: HTMLElement): void;
  refresh(): void;
  showTagReference(): void;
  /**
   * The label of a command (so buttons and menus say the same).
   */
  label(command: 'export' | 'run' | 'compile'): string;
}
