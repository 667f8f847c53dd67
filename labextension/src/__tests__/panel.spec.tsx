/**
 * The cell links of the Pipeline panel, rendered from structured cell ranges.
 */
import * as React from 'react';

import { IPlan, IPlanCell, IStep } from '../api';
import { CellLinks, dataReads } from '../panel';
import { IPanelActions } from '../tokens';

// The panel's widgets and icon are not rendered here; @jupyterlab/ui-components is ESM that
// this jest setup does not transform.
jest.mock('@jupyterlab/ui-components', () => ({
  Button: () => null,
  LabIcon: class {},
  ReactWidget: class {},
  UseSignal: () => null
}));

const cell = (index: number, type: string): IPlanCell => ({
  index,
  id: `c${index}`,
  type,
  tags: [],
  role: '',
  step: null,
  metrics: false,
  summary: ''
});

// Cells 0–9: code, except 5 (Markdown).
const plan = {
  cells: Array.from({ length: 10 }, (_, i) =>
    cell(i, i === 5 ? 'markdown' : 'code')
  )
} as IPlan;

const actions = {} as IPanelActions;

// react-dom ships no types here (@types/react-dom is not a dependency).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup(element: React.ReactElement): string;
};

const render = (cells: number[]) =>
  renderToStaticMarkup(
    <CellLinks plan={plan} cells={cells} actions={actions} />
  );

describe('CellLinks', () => {
  it('links a single cell', () => {
    expect(render([3])).toBe(
      '<span class="nb2prod-CellLinks">cell ' +
        '<a href="#" class="nb2prod-CellLink" aria-label="Go to cell 4">4</a></span>'
    );
  });

  it('links each range, bridging Markdown cells', () => {
    expect(render([4, 6, 8, 9, 1])).toBe(
      '<span class="nb2prod-CellLinks">cells ' +
        '<a href="#" class="nb2prod-CellLink" aria-label="Go to cells 2">2</a>, ' +
        '<a href="#" class="nb2prod-CellLink" aria-label="Go to cells 5–7">5–7</a>, ' +
        '<a href="#" class="nb2prod-CellLink" aria-label="Go to cells 9–10">9–10</a></span>'
    );
  });
});

describe('dataReads', () => {
  const step = (data?: IStep['data']) => ({ name: 's', data }) as IStep;

  it('names each file, and the parameter that points at it', () => {
    expect(
      dataReads(
        step([
          { path: 'data/train.csv', cell: 1, parameter: 'train_path' },
          { path: 'data/labels.json', cell: 2, parameter: null }
        ])
      )
    ).toBe('data/train.csv (parameter train_path), data/labels.json');
  });

  it('is empty for a step that reads no file, or a plan from before', () => {
    expect(dataReads(step([]))).toBe('');
    expect(dataReads(step(undefined))).toBe('');
  });
});
