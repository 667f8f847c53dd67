/**
 * Compile pipeline: the latest version exported from the notebook, compiled on the server for
 * Kubeflow Pipelines or Airflow (`POST compile`, as `nb2prod compile` in the root folder), with
 * one notification that says where the files went and opens them.
 */
import { Notification } from '@jupyterlab/apputils';

import { COMPILE_TARGETS, CompileTarget, ICompileResult } from './api';
import { PipelineModel } from './model';
import { IExportedVersion, latestExported } from './runview';

/**
 * What the compile flow asks of the application.
 */
export interface ICompileActions {
  /**
   * Open a file the compile wrote, read-only (`factory`: a widget factory's name): it is
   * generated, so a change belongs in the notebook, exported and compiled again.
   */
  openReadOnly(path: string, factory?: string): void;
  /**
   * Show a folder of the server's root in the file browser.
   */
  showFolder(path: string): void;
  /**
   * Start the Export flow.
   */
  export(): void;
}

/**
 * The notification text while a version compiles.
 */
export function compilingMessage(
  exported: IExportedVersion,
  target: CompileTarget
): string {
  const { pipeline, version } = exported;
  return `Compiling ${pipeline} v${version.version} for ${COMPILE_TARGETS[target].engine}…`;
}

/**
 * The notification text of a compile that worked: what, for which engine, and where.
 */
export function compileMessage(result: ICompileResult): string {
  return (
    `Compiled ${result.pipeline} v${result.version} for ` +
    `${COMPILE_TARGETS[result.target].engine} → ${result.out}/`
  );
}

/**
 * The file a user opens first (`pipeline.py`, `dag.py`), relative to the server's root, or
 * `null` when the answer does not list it.
 */
export function mainFile(result: ICompileResult): string | null {
  const main = COMPILE_TARGETS[result.target].main;
  return result.files.includes(main) ? `${result.out}/${main}` : null;
}

/**
 * The notification's buttons for a compile that worked: the main file, and the folder (its
 * README says how to build the image and submit). Two, so that they fit on one line.
 */
export function compileActions(
  result: ICompileResult,
  actions: ICompileActions
): Notification.IAction[] {
  const found: Notification.IAction[] = [];
  const main = mainFile(result);
  if (main) {
    const name = COMPILE_TARGETS[result.target].main;
    found.push({
      label: `Open ${name}`,
      caption: `Open ${main}`,
      callback: () => actions.openReadOnly(main)
    });
  }
  found.push({
    label: 'Show Folder',
    caption: `Show ${result.out}/ in the file browser (README.md: how to submit)`,
    callback: () => actions.showFolder(result.out)
  });
  return found;
}

/**
 * Why a request failed, as the server said it (one paragraph), or the error itself.
 */
function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/**
 * The whole Compile flow for the notebook at `notebook`: find its latest exported version
 * (listed again, so an export from a terminal counts), compile it, and say where the files
 * went, or the server's message. Answers the server's answer, or `null`.
 */
export async function compilePipeline(
  model: PipelineModel,
  notebook: string,
  target: CompileTarget,
  actions: ICompileActions
): Promise<ICompileResult | null> {
  const engine = COMPILE_TARGETS[target].engine;
  let exported: IExportedVersion | null;
  try {
    exported = latestExported(await model.api.pipelines(), notebook);
  } catch (reason) {
    Notification.error(`Could not list the pipelines: ${reasonText(reason)}`, {
      autoClose: false
    });
    return null;
  }
  if (exported === null) {
    Notification.warning(
      `${notebook} has not been exported yet, so there is no pipeline to compile for ` +
        `${engine}. Export it first: an engine runs an exported pipeline version.`,
      {
        autoClose: false,
        actions: [
          {
            label: 'Export…',
            caption: 'Export the notebook as a pipeline version',
            callback: () => actions.export()
          }
        ]
      }
    );
    return null;
  }
  const id = Notification.emit(
    compilingMessage(exported, target),
    'in-progress',
    { autoClose: false }
  );
  let result: ICompileResult;
  try {
    result = await model.api.compile(exported.version.path, target);
  } catch (reason) {
    Notification.update({
      id,
      message: `Compile for ${engine} failed: ${reasonText(reason)}`,
      type: 'error',
      autoClose: false
    });
    return null;
  }
  Notification.update({
    id,
    message: compileMessage(result),
    type: 'success',
    autoClose: 15000,
    actions: compileActions(result, actions)
  });
  return result;
}
