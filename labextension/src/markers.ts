/**
 * Cell markers: each cell shows its pipeline role at a glance.
 *
 * A cell that starts a step gets a coloured bar on its left edge and a chip (`TRAIN · xgboost`)
 * in its header; an untagged cell of the step above gets a lighter bar of that step's colour;
 * parameters, setup, gates and serving cells get their own bar and chip; skip cells are dimmed,
 * with a struck chip. The colours come from style/roles.css, keyed by the grammar's hues.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';
import { IDisposable } from '@lumino/disposable';

import { cellMarkers, ICellMarker, roleHue, roleLabel } from './grammar';

const CHIPS_CLASS = 'nb2prod-CellChips';

/**
 * The tags of a cell model, as strings.
 */
export function cellTags(model: ICellModel): string[] {
  const tags = model.getMetadata('tags');
  return Array.isArray(tags)
    ? tags.filter((t): t is string => typeof t === 'string')
    : [];
}

/**
 * Keeps the markers of one notebook's cells up to date.
 */
export class CellMarkers implements IDisposable {
  constructor(panel: NotebookPanel) {
    this._panel = panel;
    void panel.context.ready.then(() => {
      if (this._disposed) {
        return;
      }
      const cells = panel.content.model?.cells;
      if (!cells) {
        return;
      }
      cells.changed.connect(this._onCellsChanged, this);
      for (const model of cells) {
        model.metadataChanged.connect(this._onMetadataChanged, this);
      }
      this.schedule();
    });
    panel.content.modelChanged.connect(() => this.schedule(), this);
    panel.disposed.connect(() => this.dispose());
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    const cells = this._panel.content.model?.cells;
    if (cells) {
      cells.changed.disconnect(this._onCellsChanged, this);
      for (const model of cells) {
        model.metadataChanged.disconnect(this._onMetadataChanged, this);
      }
    }
    if (this._frame) {
      cancelAnimationFrame(this._frame);
    }
  }

  /**
   * Recompute the markers on the next animation frame.
   */
  schedule(): void {
    if (this._disposed || this._frame) {
      return;
    }
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.update();
    });
  }

  /**
   * Recompute and apply every cell's marker now.
   */
  update(): void {
    if (this._disposed) {
      return;
    }
    const widgets = this._panel.content.widgets;
    const markers = cellMarkers(
      widgets.map(w => ({ type: w.model.type, tags: cellTags(w.model) }))
    );
    widgets.forEach((cell, i) => applyMarker(cell, markers[i]));
  }

  private _onCellsChanged(
    sender: unknown,
    change: IObservableList.IChangedArgs<ICellModel>
  ): void {
    for (const model of change.newValues) {
      model.metadataChanged.disconnect(this._onMetadataChanged, this);
      model.metadataChanged.connect(this._onMetadataChanged, this);
    }
    this.schedule();
  }

  private _onMetadataChanged(
    sender: ICellModel,
    change: { key: string }
  ): void {
    if (change.key === 'tags') {
      this.schedule();
    }
  }

  private _panel: NotebookPanel;
  private _disposed = false;
  private _frame = 0;
}

/**
 * The words a screen reader says for a marker.
 */
export function markerDescription(marker: ICellMarker): string {
  const parts: string[] = [];
  switch (marker.kind) {
    case 'start':
      parts.push(`starts pipeline step ${marker.step}`);
      break;
    case 'member':
      parts.push(`in pipeline step ${marker.step}`);
      break;
    case 'parameters':
    case 'setup':
    case 'gates':
    case 'serving':
    case 'skip':
      parts.push(`pipeline role ${marker.kind}`);
      break;
  }
  if (marker.metrics) {
    parts.push('metrics');
  }
  if (marker.unknown.length) {
    parts.push(`unknown tags ${marker.unknown.join(', ')}`);
  }
  return parts.join('; ');
}

/**
 * Show a marker on a cell.
 */
export function applyMarker(cell: Cell, marker: ICellMarker): void {
  const node = cell.node;
  const marked =
    marker.kind !== 'none' || marker.metrics || marker.unknown.length > 0;
  if (!marked) {
    if (node.dataset.nb2prodKind !== undefined) {
      delete node.dataset.nb2prodKind;
      delete node.dataset.nb2prodHue;
      delete node.dataset.nb2prodStep;
      node.classList.remove('nb2prod-mod-marked', 'nb2prod-mod-chips');
      node.querySelector(`.${CHIPS_CLASS}`)?.remove();
    }
    return;
  }
  node.classList.add('nb2prod-mod-marked');
  node.dataset.nb2prodKind = marker.kind;
  node.dataset.nb2prodHue = marker.role ? roleHue(marker.role) : 'none';
  if (marker.step) {
    node.dataset.nb2prodStep = marker.step;
  } else {
    delete node.dataset.nb2prodStep;
  }
  // The chips go into the cell's header, which exists once the cell has rendered.
  void cell.ready.then(() => renderChips(cell, marker));
}

function renderChips(cell: Cell, marker: ICellMarker): void {
  if (cell.isDisposed) {
    return;
  }
  const header = cell.node.querySelector(':scope > .jp-CellHeader');
  if (!header) {
    return;
  }
  const chips: { text: string; hue: string; kind: string }[] = [];
  if (marker.label && marker.role) {
    chips.push({
      text: marker.label,
      hue: roleHue(marker.role),
      kind: marker.kind
    });
  }
  if (marker.metrics) {
    chips.push({
      text: roleLabel('metrics'),
      hue: roleHue('metrics'),
      kind: 'metrics'
    });
  }
  for (const tag of marker.unknown) {
    chips.push({ text: `unknown tag: ${tag}`, hue: 'warn', kind: 'unknown' });
  }
  let box = header.querySelector<HTMLElement>(`:scope > .${CHIPS_CLASS}`);
  cell.node.classList.toggle('nb2prod-mod-chips', chips.length > 0);
  if (!chips.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = document.createElement('div');
    box.className = CHIPS_CLASS;
    header.appendChild(box);
  }
  box.setAttribute('aria-label', `Pipeline: ${markerDescription(marker)}`);
  box.setAttribute('role', 'note');
  const key = JSON.stringify(chips);
  if (box.dataset.key === key) {
    return;
  }
  box.dataset.key = key;
  box.replaceChildren(
    ...chips.map(chip => {
      const span = document.createElement('span');
      span.className = 'nb2prod-Chip';
      span.dataset.nb2prodHue = chip.hue;
      span.dataset.nb2prodKind = chip.kind;
      span.textContent = chip.text;
      return span;
    })
  );
}
