/**
 * The role control of the cell toolbar: one compact dropdown with the cell's pipeline role.
 *
 * Picking a role rewrites the cell's tags in one undoable metadata edit. Picking a role that
 * takes a name ("Training…") asks for the name in the cell's header, validated against the
 * grammar. With the focus on the dropdown, its keys are its own: ↑/↓ and letters change the
 * role, and never reach the notebook's command-mode shortcuts.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { HTMLSelect, ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import {
  applyRole,
  choiceValue,
  IRoleChoice,
  nameProblem,
  roleOptions,
  roleTitle
} from './grammar';
import { cellTags } from './markers';

/**
 * Set a cell's role: one metadata edit, one step of the notebook's undo history (the
 * command-mode Undo, `Z`, reverts it). `ISharedCell.setMetadata` alone is not undoable, so
 * the edit runs in an undoable transaction of the notebook (or of the cell, if standalone).
 */
export function setCellRole(model: ICellModel, choice: IRoleChoice): void {
  const before = cellTags(model);
  const after = applyRole(before, choice);
  if (JSON.stringify(before) === JSON.stringify(after)) {
    return;
  }
  const shared = model.sharedModel;
  const edit = () => {
    if (after.length === 0) {
      shared.deleteMetadata('tags');
    } else {
      shared.setMetadata('tags', after);
    }
  };
  undoable(shared.notebook ?? shared, edit);
}

/**
 * Run `edit` as one step of the undo history of `shared` (a notebook or a cell): undoable, and
 * never merged with the edits just before or after it.
 */
export function undoable(
  shared: { transact(f: () => void, undoable?: boolean): void },
  edit: () => void
): void {
  const manager = (shared as { undoManager?: { stopCapturing?(): void } })
    .undoManager;
  manager?.stopCapturing?.();
  shared.transact(edit, true);
  manager?.stopCapturing?.();
}

interface IRoleControlProps {
  model: ICellModel;
  /**
   * The cell's node: a step name is asked for in its header, above the code, never over it.
   */
  cellNode?: HTMLElement | null;
}

interface IAsking {
  value: string;
  role: string;
  label: string;
}

/**
 * Keys a focused dropdown handles itself (moving through the roles, typing a role's first
 * letter, opening it): none may reach the notebook, whose command-mode shortcuts would
 * otherwise move to another cell (↑/↓) or change this one (`M`, `R`, `A`, `B`…). Escape and
 * Tab keep their meaning, and so do shortcuts with Ctrl, Alt or Meta (save, undo…).
 */
export function ownsKey(event: {
  key: string;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}): boolean {
  if (event.ctrlKey || event.altKey || event.metaKey) {
    return false;
  }
  return event.key !== 'Escape' && event.key !== 'Tab';
}

/**
 * Keys that move through a closed dropdown's options (a keyboard change, not a pick).
 */
const NAVIGATION_KEYS = new Set([
  'ArrowUp',
  'ArrowDown',
  'ArrowLeft',
  'ArrowRight',
  'Home',
  'End',
  'PageUp',
  'PageDown'
]);

/**
 * Move the focus to `element` once the browser is done with the dropdown (closing its list
 * gives the focus back to it, after React has rendered), and again if something took it back.
 */
function focusSoon(element: () => HTMLElement | null): void {
  const focus = () => {
    const node = element();
    if (node && node.isConnected && document.activeElement !== node) {
      node.focus();
    }
  };
  focus();
  requestAnimationFrame(() => {
    focus();
    setTimeout(focus, 50);
  });
}

/**
 * The step name field, asked for in the cell's header: in the page's flow, above the cell's
 * code, so that neither the field nor its error ever covers the code. (The cell toolbar stays
 * as narrow as the dropdown: JupyterLab hides a toolbar that grows over the code.)
 */
export class NameRow {
  constructor(options: NameRow.IOptions) {
    this._options = options;
    const node = (this.node = document.createElement('div'));
    node.className = 'nb2prod-NameRow';
    node.setAttribute('role', 'group');
    node.setAttribute('aria-label', options.label);
    const label = document.createElement('label');
    label.htmlFor = `${options.id}-input`;
    label.className = 'nb2prod-NameRow-label';
    label.textContent = `${options.label}:`;
    const input = (this.input = document.createElement('input'));
    input.id = `${options.id}-input`;
    input.className = 'jp-mod-styled nb2prod-RoleControl-name';
    input.setAttribute('aria-label', options.label);
    input.setAttribute('aria-describedby', `${options.id}-help`);
    input.placeholder = 'step name';
    input.spellcheck = false;
    input.title = 'Press Enter to set the step name, Escape to cancel';
    const ok = (this._ok = this._button('OK', 'Set step name', 'accept'));
    const cancel = this._button('✕', 'Cancel', 'reject');
    ok.addEventListener('click', () => this.commit());
    cancel.addEventListener('click', () => options.onCancel());
    this._help = document.createElement('span');
    this._help.id = `${options.id}-help`;
    this._help.className = 'nb2prod-RoleControl-help';
    this._help.setAttribute('role', 'status');
    input.addEventListener('input', () => this._validate());
    input.addEventListener('keydown', event => {
      // Every key typed here is the name's: none reaches the notebook's shortcuts.
      event.stopPropagation();
      if (event.key === 'Enter') {
        event.preventDefault();
        this.commit();
      } else if (event.key === 'Escape') {
        event.preventDefault();
        options.onCancel();
      }
    });
    node.append(label, input, ok, cancel, this._help);
    this._validate();
  }

  readonly node: HTMLElement;
  readonly input: HTMLInputElement;

  /**
   * Why the name is not valid, or `null`.
   */
  get problem(): string | null {
    return nameProblem(this.input.value);
  }

  /**
   * Add text to the name, as if typed (keys pressed while the dropdown had the focus).
   */
  type(text: string): void {
    this.input.value += text;
    this._validate();
  }

  commit(): void {
    if (this.problem === null) {
      this._options.onCommit(this.input.value);
    }
  }

  private _button(
    text: string,
    label: string,
    kind: 'accept' | 'reject'
  ): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `jp-Button jp-mod-styled jp-mod-${kind} nb2prod-RoleControl-button`;
    button.textContent = text;
    button.setAttribute('aria-label', label);
    return button;
  }

  private _validate(): void {
    const problem = this.problem;
    // No error before anything is typed: an empty field is a question, not a mistake.
    const shown = this.input.value === '' ? null : problem;
    this._help.textContent = shown ?? '';
    this.input.setAttribute('aria-invalid', shown ? 'true' : 'false');
    this._ok.disabled = problem !== null;
  }

  private _options: NameRow.IOptions;
  private _ok: HTMLButtonElement;
  private _help: HTMLElement;
}

export namespace NameRow {
  export interface IOptions {
    /**
     * `Training step name`
     */
    label: string;
    /**
     * A prefix for the ids of its elements (unique in the page).
     */
    id: string;
    onCommit(name: string): void;
    onCancel(): void;
  }
}

/**
 * The dropdown; while a step name is asked for, the name field in the cell's header.
 */
export function RoleControl(props: IRoleControlProps): JSX.Element {
  const { model, cellNode } = props;
  const [tags, setTags] = React.useState<string[]>(() => cellTags(model));
  const [asking, setAsking] = React.useState<IAsking | null>(null);
  const rowRef = React.useRef<NameRow | null>(null);
  const selectRef = React.useRef<HTMLSelectElement | null>(null);
  // Whether the dropdown's last change came from its arrow keys (the user is still moving
  // through the roles: a named role then shows the name field without taking the focus).
  const byKeyboard = React.useRef(false);

  React.useEffect(() => {
    const onChange = (sender: ICellModel, change: { key: string }) => {
      if (change.key === 'tags') {
        setTags(cellTags(model));
      }
    };
    model.metadataChanged.connect(onChange);
    return () => {
      model.metadataChanged.disconnect(onChange);
    };
  }, [model]);

  const stopAsking = () => {
    setAsking(null);
    selectRef.current?.focus();
  };

  // The name field lives in the cell's header while the name is asked for.
  React.useEffect(() => {
    const header = cellNode?.querySelector<HTMLElement>(
      ':scope > .jp-CellHeader'
    );
    if (!asking || !cellNode || !header) {
      return;
    }
    const row = new NameRow({
      label: `${asking.label} step name`,
      id: `nb2prod-role-name-${model.id}`,
      onCommit: name => {
        setCellRole(model, { role: asking.role, name });
        stopAsking();
      },
      onCancel: stopAsking
    });
    rowRef.current = row;
    header.appendChild(row.node);
    cellNode.classList.add('nb2prod-mod-naming');
    if (!byKeyboard.current) {
      focusSoon(() => row.input);
    }
    byKeyboard.current = false;
    return () => {
      rowRef.current = null;
      row.node.remove();
      cellNode.classList.remove('nb2prod-mod-naming');
    };
  }, [asking?.value, cellNode, model]);

  const options = roleOptions();
  const value = choiceValue(tags);
  const colon = value.indexOf(':');
  // A named step (`training:xgboost`) gets its own option showing the name.
  const current =
    colon > 0 && !options.some(o => o.value === value)
      ? {
          value,
          label: `${roleTitle(value.slice(0, colon))}: ${value.slice(colon + 1)}`
        }
      : null;
  const known = options.some(o => o.value === value) || current !== null;

  return (
    <span
      className={`nb2prod-RoleControl${asking ? ' nb2prod-mod-asking' : ''}`}
    >
      <HTMLSelect
        className="nb2prod-RoleControl-select"
        aria-label="Pipeline role of this cell"
        title="Pipeline role of this cell"
        elementRef={element => {
          selectRef.current = element;
        }}
        value={asking ? asking.value : known ? value : ''}
        onKeyDown={e => {
          byKeyboard.current = NAVIGATION_KEYS.has(e.key);
          const row = rowRef.current;
          if (row && e.key.length === 1 && !e.ctrlKey && !e.metaKey) {
            // Typing while the name is asked for goes into the name field.
            e.preventDefault();
            e.stopPropagation();
            row.type(e.key);
            focusSoon(() => row.input);
            return;
          }
          if (row && e.key === 'Enter') {
            e.preventDefault();
            e.stopPropagation();
            focusSoon(() => row.input);
            return;
          }
          if (e.key === 'Escape') {
            // Leave the dropdown (and any name being asked for) for the cell, in command
            // mode: Z (undo) and the other shortcuts work again.
            setAsking(null);
            cellNode?.focus();
            return;
          }
          if (ownsKey(e)) {
            e.stopPropagation();
          }
        }}
        onChange={e => {
          const keyboard = byKeyboard.current;
          const picked = options.find(o => o.value === e.target.value);
          if (!picked) {
            return;
          }
          if (picked.askName && picked.role) {
            byKeyboard.current = keyboard;
            setAsking({
              value: picked.value,
              role: picked.role,
              label: picked.label.replace('…', '')
            });
            return;
          }
          setAsking(null);
          setCellRole(model, { role: picked.role });
        }}
        onMouseDown={() => {
          byKeyboard.current = false;
        }}
      >
        {options.map(o => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
        {current && (
          <option key={current.value} value={current.value}>
            {current.label}
          </option>
        )}
      </HTMLSelect>
    </span>
  );
}

/**
 * The toolbar item: a ReactWidget around {@link RoleControl}, for code cells only.
 */
export class RoleControlWidget extends ReactWidget {
  constructor(cell: Cell) {
    super();
    this._model = cell.model;
    this._cellNode = cell.node;
    this.addClass('nb2prod-RoleControlWidget');
    if (cell.model.type !== 'code') {
      this.hide();
    }
  }

  render(): JSX.Element {
    return <RoleControl model={this._model} cellNode={this._cellNode} />;
  }

  private _model: ICellModel;
  private _cellNode: HTMLElement;
}
