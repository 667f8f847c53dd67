/**
 * The role control of the cell toolbar: one compact dropdown with the cell's pipeline role.
 *
 * Picking a role rewrites the cell's tags in one undoable metadata edit. Picking a role that
 * takes a name ("Training…") asks for the name inline, validated against the grammar.
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
}

interface IAsking {
  value: string;
  role: string;
  label: string;
  text: string;
}

/**
 * The dropdown (or, while asking for a step name, the name input).
 */
export function RoleControl(props: IRoleControlProps): JSX.Element {
  const { model } = props;
  const [tags, setTags] = React.useState<string[]>(() => cellTags(model));
  const [asking, setAsking] = React.useState<IAsking | null>(null);
  const inputRef = React.useRef<HTMLInputElement>(null);
  const selectRef = React.useRef<HTMLSelectElement | null>(null);

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

  React.useEffect(() => {
    if (asking) {
      inputRef.current?.focus();
    }
  }, [asking !== null]);

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

  const problem = asking ? nameProblem(asking.text) : null;
  const stopAsking = () => {
    setAsking(null);
    selectRef.current?.focus();
  };
  const commit = () => {
    if (asking && !problem) {
      setCellRole(model, { role: asking.role, name: asking.text });
      stopAsking();
    }
  };

  // The dropdown stays while the name is asked for: the cell toolbar keeps the focus inside
  // itself only when it moves between its own items.
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
        onChange={e => {
          const picked = options.find(o => o.value === e.target.value);
          if (!picked) {
            return;
          }
          if (picked.askName && picked.role) {
            setAsking({
              value: picked.value,
              role: picked.role,
              label: picked.label.replace('…', ''),
              text: ''
            });
            return;
          }
          setAsking(null);
          setCellRole(model, { role: picked.role });
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
      {asking && (
        <>
          <input
            ref={inputRef}
            className="jp-mod-styled nb2prod-RoleControl-name"
            aria-label={`${asking.label} step name`}
            aria-invalid={problem !== null}
            aria-describedby="nb2prod-role-name-help"
            placeholder="step name"
            title={
              problem ?? 'Press Enter to set the step name, Escape to cancel'
            }
            value={asking.text}
            spellCheck={false}
            onChange={e => setAsking({ ...asking, text: e.target.value })}
            onKeyDown={e => {
              e.stopPropagation();
              if (e.key === 'Enter') {
                e.preventDefault();
                commit();
              } else if (e.key === 'Escape') {
                e.preventDefault();
                stopAsking();
              }
            }}
          />
          <button
            className="jp-Button jp-mod-styled jp-mod-accept nb2prod-RoleControl-button"
            aria-label="Set step name"
            disabled={problem !== null}
            onClick={commit}
          >
            OK
          </button>
          <button
            className="jp-Button jp-mod-styled jp-mod-reject nb2prod-RoleControl-button"
            aria-label="Cancel"
            onClick={stopAsking}
          >
            ✕
          </button>
          <span
            id="nb2prod-role-name-help"
            className="nb2prod-RoleControl-help"
            role="status"
          >
            {problem ?? ''}
          </span>
        </>
      )}
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
    this.addClass('nb2prod-RoleControlWidget');
    if (cell.model.type !== 'code') {
      this.hide();
    }
  }

  render(): JSX.Element {
    return <RoleControl model={this._model} />;
  }

  private _model: ICellModel;
}
