/**
 * Export to pipeline: save the notebook, ask for the pipeline name, export, and say what
 * happened in one notification.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IExportResult, IProblem } from './api';
import { goToCell } from './goto';
import { makeSafeName, nameProblem } from './grammar';
import { PipelineModel } from './model';
import { APIError } from './request';

/**
 * A dialog body asking for a name (a pipeline's, a step's), validated as the grammar's names
 * are.
 */
export class NameBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor(options: NameBody.IOptions) {
    super();
    this.addClass('nb2prod-NameBody');
    const label = document.createElement('label');
    label.textContent = options.label;
    label.htmlFor = 'nb2prod-name-input';
    this._input = document.createElement('input');
    this._input.id = 'nb2prod-name-input';
    this._input.className = 'jp-mod-styled';
    this._input.value = options.value;
    this._input.spellcheck = false;
    this._input.setAttribute('aria-describedby', 'nb2prod-name-help');
    this._help = document.createElement('div');
    this._help.id = 'nb2prod-name-help';
    this._help.className = 'nb2prod-NameBody-help';
    this._help.setAttribute('role', 'status');
    const hint = document.createElement('div');
    hint.className = 'nb2prod-muted';
    hint.textContent = options.hint;
    this.node.append(label, this._input, hint, this._help);
    this._input.addEventListener('input', () => this._validate());
    this._validate(options.error);
  }

  getValue(): string {
    return this._input.value.trim();
  }

  protected onAfterAttach(): void {
    this._input.focus();
    this._input.select();
  }

  private _validate(error: string | null = null): void {
    const problem = error ?? nameProblem(this.getValue());
    this._help.textContent = problem ?? '';
    this._input.setAttribute('aria-invalid', problem ? 'true' : 'false');
  }

  private _input: HTMLInputElement;
  private _help: HTMLElement;
}

export namespace NameBody {
  export interface IOptions {
    label: string;
    value: string;
    hint: string;
    error: string | null;
  }
}

/**
 * Ask for a valid name until the user gives one or cancels.
 */
export async function askName(options: {
  title: string;
  label: string;
  hint: string;
  accept: string;
  initial: string;
}): Promise<string | null> {
  let value = options.initial;
  let error: string | null = null;
  for (;;) {
    const result = await showDialog({
      title: options.title,
      body: new NameBody({
        label: options.label,
        hint: options.hint,
        value,
        error
      }),
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: options.accept })
      ],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    value = result.value;
    error = nameProblem(value);
    if (!error) {
      return value;
    }
  }
}

/**
 * The notification text of an export.
 */
export function exportMessage(result: IExportResult): string {
  return result.created
    ? `Exported ${result.name} v${result.version} → ${result.path}`
    : `Up to date: ${result.name} v${result.version}`;
}

/**
 * Show each problem as an error notification with a button that jumps to its cell.
 */
export function notifyProblems(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  problems: IProblem[]
): void {
  for (const problem of problems) {
    const cell = problem.cell;
    Notification.error(problem.text, {
      autoClose: false,
      actions: cell
        ? [
            {
              label: `Go to cell ${cell.index + 1}`,
              caption: 'Scroll to the cell and select it',
              callback: () => void goToCell(app, panel, cell)
            }
          ]
        : []
    });
  }
}

/**
 * The whole Export flow for a notebook.
 */
export async function exportNotebook(
  app: JupyterFrontEnd,
  model: PipelineModel,
  panel: NotebookPanel
): Promise<IExportResult | null> {
  await panel.context.save();
  const path = panel.context.path;
  const planName = model.panel === panel ? model.plan?.name : undefined;
  const initial =
    Private.lastNames.get(path) ??
    planName ??
    makeSafeName(PathExt.basename(path, PathExt.extname(path)));
  const name = await askName({
    title: 'Export to Pipeline',
    label: 'Pipeline name',
    hint: 'The pipeline is written to pipelines/<name>/vN.',
    accept: 'Export',
    initial
  });
  if (name === null) {
    return null;
  }
  let result: IExportResult;
  try {
    result = await model.api.export(path, name);
  } catch (reason) {
    if (reason instanceof APIError && Array.isArray(reason.body?.problems)) {
      const problems = (reason.body.problems as IProblem[]).filter(
        p => p.severity !== 'warning'
      );
      if (problems.length) {
        notifyProblems(app, panel, problems);
        return null;
      }
    }
    Notification.error(
      `Export failed: ${reason instanceof Error ? reason.message : String(reason)}`,
      { autoClose: false }
    );
    return null;
  }
  Private.lastNames.set(path, name);
  const open = (file: string) =>
    void app.commands.execute('docmanager:open', { path: file });
  Notification.emit(
    exportMessage(result),
    result.created ? 'success' : 'info',
    {
      autoClose: 10000,
      actions: [
        {
          label: 'Open pipeline.yaml',
          callback: () => open(result.pipeline_yaml)
        },
        { label: 'Open README', callback: () => open(result.readme) }
      ]
    }
  );
  return result;
}

namespace Private {
  /**
   * The name each notebook was last exported under, in this session.
   */
  export const lastNames = new Map<string, string>();
}
