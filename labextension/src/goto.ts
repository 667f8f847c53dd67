/**
 * Jump from a cell reference (a problem, a step's cells) to the cell itself.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { NotebookPanel } from '@jupyterlab/notebook';

/**
 * A reference to a notebook cell: its 0-based index when inspected, and its id.
 */
export interface ICellRef {
  index: number;
  id?: string | null;
}

/**
 * The cell's current index: by id when the notebook has ids (cells may have moved since the
 * plan was made), else by position.
 */
export function findCellIndex(panel: NotebookPanel, ref: ICellRef): number {
  const widgets = panel.content.widgets;
  if (ref.id) {
    const byId = widgets.findIndex(w => w.model.id === ref.id);
    if (byId >= 0) {
      return byId;
    }
  }
  return ref.index < widgets.length ? ref.index : -1;
}

/**
 * Show the notebook, scroll to the cell and select it (command mode).
 */
export async function goToCell(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  ref: ICellRef
): Promise<void> {
  const index = findCellIndex(panel, ref);
  if (index < 0) {
    return;
  }
  app.shell.activateById(panel.id);
  const notebook = panel.content;
  notebook.mode = 'command';
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  await notebook.scrollToItem(index, 'center');
  notebook.activeCell?.node.focus();
}
