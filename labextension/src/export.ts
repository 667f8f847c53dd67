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
 * are: the dialog's accept button stays disabled, and Enter does nothing, while the name is
 * not valid, and a safe name is suggested.
 */
export class NameBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor(options: NameBody.IOptions) {
    super();
    this.addClass('nb2prod-NameBody');
    this._check = options.check ?? nameProblem;
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
    this._suggest = document.createElement('button');
    this._suggest.type = 'button';
    this._suggest.className =
      'jp-Button jp-mod-styled jp-mod-reject nb2prod-NameBody-suggest';
    this._suggest.hidden = true;
    this._suggest.addEventListener('click', () => {
      this._input.value = this._suggest.dataset.name ?? '';
      // As if typed: the dialog re-checks the field's validity on input events.
      this._input.dispatchEvent(new Event('input', { bubbles: true }));
      this._input.focus();
    });
    const hint = document.createElement('div');
    hint.className = 'nb2prod-muted';
    hint.textContent = options.hint;
    this.node.append(label, this._input, hint, this._help, this._suggest);
    this._initialError = options.error;
  }

  getValue(): string {
    return this._input.value.trim();
  }

  /**
   * Why the name is not valid, or `null`.
   */
  get problem(): string | null {
    return this._check(this.getValue());
  }

  handleEvent(event: Event): void {
    if (event.target !== this._input) {
      return;
    }
    if (event.type === 'input') {
      this._validate();
    } else if (
      event.type === 'keydown' &&
      (event as KeyboardEvent).key === 'Enter' &&
      this.problem !== null
    ) {
      // The dialog would accept on Enter: an invalid name is not accepted.
      event.preventDefault();
      event.stopPropagation();
    }
  }

  protected onAfterAttach(): void {
    // On the window, in the capture phase: before the dialog's own listeners (on the document
    // and the dialog), which check the input's validity and handle Enter.
    window.addEventListener('input', this, true);
    window.addEventListener('keydown', this, true);
    this._validate(this._initialError);
    this._input.focus();
    this._input.select();
  }

  protected onBeforeDetach(): void {
    window.removeEventListener('input', this, true);
    window.removeEventListener('keydown', this, true);
  }

  private _validate(error: string | null = null): void {
    const problem = error ?? this.problem;
    this._help.textContent = problem ?? '';
    this._input.setAttribute('aria-invalid', problem ? 'true' : 'false');
    this._input.setCustomValidity(problem ?? '');
    const value = this.getValue();
    const safe = value ? makeSafeName(value, 'step') : '';
    const suggest = problem !== null && safe !== '' && safe !== value;
    this._suggest.hidden = !suggest;
    this._suggest.dataset.name = safe;
    this._suggest.textContent = suggest ? `Use ${safe}` : '';
    this._suggest.setAttribute('aria-label', `Use the name ${safe}`);
    const accept = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('button.jp-mod-accept');
    if (accept) {
      accept.disabled = problem !== null;
    }
  }

  private _check: (name: string) => string | null;
  private _initialError: string | null;
  private _input: HTMLInputElement;
  private _help: HTMLElement;
  private _suggest: HTMLButtonElement;
}

export namespace NameBody {
  export interface IOptions {
    label: string;
    value: string;
    hint: string;
    error: string | null;
    /**
     * Why a name is not valid (default: the grammar's rules for names).
     */
    check?: (name: string) => string | null;
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
  check?: (name: string) => string | null;
}): Promise<string | null> {
  const check = options.check ?? nameProblem;
  let value = options.initial;
  let error: string | null = null;
  for (;;) {
    const result = await showDialog({
      title: options.title,
      body: new NameBody({
        label: options.label,
        hint: options.hint,
        value,
        error,
        check
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
    error = check(value);
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
 * A User Timing mark of the export flow (`nb2prod:export:NAME`), read by
 * benchmarks/bench_lab_export.py to split a round trip into its phases.
 */
function mark(name: string): void {
  try {
    performance.mark(`nb2prod:export:${name}`);
  } catch {
    // No User Timing here (tests): nothing to record.
  }
}

/**
 * Whether saving the notebook now would ask "File Changed… Overwrite?": the file on disk is
 * not the one the editor loaded (JupyterLab's own check before saving: the hash when the
 * server gives one, else a modification time more than 0.5 s later).
 */
async function savingWouldAsk(
  app: JupyterFrontEnd,
  panel: NotebookPanel
): Promise<boolean> {
  const known = panel.context.contentsModel;
  if (!known) {
    return false;
  }
  try {
    const disk = await app.serviceManager.contents.get(panel.context.path, {
      content: false,
      hash: true
    });
    if (known.hash && disk.hash) {
      return known.hash !== disk.hash;
    }
    return (
      Date.parse(disk.last_modified) > Date.parse(known.last_modified) + 500
    );
  } catch {
    return true; // let the save itself find out, with nothing else on screen
  }
}

/**
 * Save the notebook if it has unsaved changes. `false` when it was not saved: the user
 * cancelled JupyterLab's "File Changed" dialog, or the save failed (JupyterLab says why).
 */
async function save(panel: NotebookPanel): Promise<boolean> {
  if (!panel.context.model.dirty) {
    return true;
  }
  try {
    await panel.context.save();
    return true;
  } catch {
    // ModalCancelError: the user chose Cancel; any other error JupyterLab has shown already.
    return false;
  }
}

/**
 * What the export flow asks of the application.
 */
export interface IExportActions {
  /**
   * Open a file of an exported version read-only (`factory`: a widget factory's name).
   */
  openReadOnly(path: string, factory?: string): void;
}

/**
 * The whole Export flow for a notebook.
 *
 * The save of unsaved changes runs while the name dialog is shown, so its time is hidden
 * behind the user's reading; only when the save would ask a question of its own (the file
 * changed on disk) does it run first, so that two dialogs never compete for the focus.
 */
export async function exportNotebook(
  app: JupyterFrontEnd,
  model: PipelineModel,
  panel: NotebookPanel,
  actions: IExportActions
): Promise<IExportResult | null> {
  mark('start');
  const path = panel.context.path;
  let saving: Promise<boolean> | null = null;
  if (panel.context.model.dirty) {
    mark('save-start');
    if (await savingWouldAsk(app, panel)) {
      if (!(await save(panel))) {
        return null;
      }
    } else {
      saving = save(panel);
    }
  }
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
  if (saving !== null) {
    const saved = await saving;
    mark('saved');
    if (!saved) {
      return null;
    }
  }
  if (name === null) {
    return null;
  }
  let result: IExportResult;
  mark('request');
  try {
    result = await model.api.export(path, name);
  } catch (reason) {
    mark('response');
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
  mark('response');
  Private.lastNames.set(path, name);
  void model.refreshExported(); // Compile is possible from now on
  Notification.emit(
    exportMessage(result),
    result.created ? 'success' : 'info',
    {
      autoClose: 10000,
      actions: [
        {
          label: 'Open pipeline.yaml',
          caption: 'Open the manifest, read-only (versions are immutable)',
          callback: () => actions.openReadOnly(result.pipeline_yaml, 'Editor')
        },
        {
          label: 'Open README',
          caption: 'Open the generated README, rendered',
          callback: () =>
            actions.openReadOnly(result.readme, 'Markdown Preview')
        }
      ]
    }
  );
  mark('notified');
  return result;
}

namespace Private {
  /**
   * The name each notebook was last exported under, in this session.
   */
  export const lastNames = new Map<string, string>();
}
