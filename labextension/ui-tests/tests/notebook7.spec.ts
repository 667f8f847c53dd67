/**
 * nb2prod in Jupyter Notebook 7: the same extension loads (markers, the cell toolbar
 * dropdown, the toolbar buttons, the Pipeline panel) and talks to the same server.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import { runFromPalette } from './helpers';

test('the extension works in Notebook 7', async ({ page, request }) => {
  const name = `nb7-${Date.now()}.ipynb`;
  const content = JSON.parse(
    fs.readFileSync(
      path.resolve(__dirname, '..', 'notebooks', 'iris.ipynb'),
      'utf-8'
    )
  );
  const put = await request.put(`/api/contents/${name}`, {
    data: { type: 'notebook', format: 'json', content }
  });
  expect(put.ok()).toBe(true);
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(String(e)));

  await page.goto(`/notebooks/${name}`);
  const cells = page.locator('.jp-Notebook .jp-Cell');
  await expect(cells.nth(5).locator('.nb2prod-Chip')).toHaveText(
    'TRAIN · logreg',
    {
      timeout: 30 * 1000
    }
  );
  await expect(cells.nth(4)).toHaveAttribute('data-nb2prod-kind', 'skip');
  await expect(
    page.getByRole('button', { name: 'Export pipeline' })
  ).toBeVisible();

  await cells.nth(6).locator('.jp-InputPrompt').click();
  await expect(
    cells.nth(6).getByRole('combobox', { name: 'Pipeline role of this cell' })
  ).toHaveValue('evaluation');

  // The panel lives in the left sidebar; the palette command shows it.
  await page.keyboard.press('Escape');
  await runFromPalette(page, 'Show Pipeline Panel');
  const panel = page.locator('#nb2prod-pipeline-panel');
  await expect(panel).toBeVisible();
  // The server's first inspection pays its imports: a busy machine takes a while.
  await expect(panel.locator('.nb2prod-PipelinePanel-body')).toHaveAttribute(
    'data-plan',
    'ready',
    { timeout: 60 * 1000 }
  );
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);

  expect(errors.filter(e => /nb2prod/i.test(e))).toEqual([]);
  await request.delete(`/api/contents/${name}`);
});
