/**
 * Helpers shared by nb2prod's UI tests: driving the Lab as a user would.
 */
import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';
import { Locator, Page } from '@playwright/test';
import * as path from 'path';

/**
 * Where the screenshots go: docs/images when NB2PROD_UPDATE_DOCS_IMAGES=1 (to refresh the
 * documentation), else the test results (so a normal test run leaves the repository alone).
 */
export function screenshotPath(name: string): string {
  const dir =
    process.env.NB2PROD_UPDATE_DOCS_IMAGES === '1'
      ? path.resolve(__dirname, '..', '..', '..', 'docs', 'images')
      : path.resolve(__dirname, '..', 'test-results', 'screenshots');
  return path.join(dir, name);
}

/**
 * Upload a notebook of ui-tests/notebooks into the test's folder and open it.
 */
export async function openNotebook(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name: string
): Promise<void> {
  await page.contents.uploadFile(
    path.resolve(__dirname, '..', 'notebooks', name),
    `${tmpPath}/${name}`
  );
  await page.notebook.openByPath(`${tmpPath}/${name}`);
  await page.notebook.activate(name);
}

/**
 * The Pipeline panel, opened in the left sidebar.
 */
export async function openPanel(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  const tab = page.locator('.jp-SideBar [data-id="nb2prod-pipeline-panel"]');
  const panel = page.locator('#nb2prod-pipeline-panel');
  if (!(await panel.isVisible())) {
    await tab.click();
  }
  await expect(panel).toBeVisible();
  // The first inspection of a notebook pays the server's imports: a busy machine takes a while.
  await expect(panel.locator('.nb2prod-PipelinePanel-body')).toHaveAttribute(
    'data-plan',
    /^(ready|executed|error|none)$/,
    { timeout: 60 * 1000 }
  );
  return panel;
}

/**
 * The cell at `index` of the current notebook.
 */
export function cell(page: IJupyterLabPageFixture, index: number): Locator {
  return page
    .locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')
    .nth(index);
}

/**
 * Pick a role in the cell toolbar dropdown of the cell at `index`.
 */
export async function pickRole(
  page: IJupyterLabPageFixture,
  index: number,
  label: string
): Promise<Locator> {
  const target = cell(page, index);
  // Select the cell (command mode) by clicking its prompt area: the toolbar shows on it.
  await target.locator('.jp-InputPrompt').click();
  const select = target.getByRole('combobox', {
    name: 'Pipeline role of this cell'
  });
  await expect(select).toBeVisible();
  // As a user's click would, focus the dropdown before picking.
  await select.focus();
  await select.selectOption({ label });
  return target;
}

/**
 * The tags of the cell at `index` of the current notebook, from the notebook model.
 */
export async function cellTags(
  page: IJupyterLabPageFixture,
  index: number
): Promise<string[]> {
  return page.evaluate(i => {
    const app = (window as any).jupyterapp;
    const panel = app.shell.currentWidget;
    return panel.content.widgets[i].model.getMetadata('tags') ?? [];
  }, index);
}

/**
 * Run a command from the command palette, as a user does: open it, wait until its search field
 * has the focus, type, wait for the command to be listed, and press Enter. (Typing before the
 * palette is open loses the keys, or sends them to the notebook.) A page still settling (a
 * notebook taking the focus when its kernel starts) may close the palette: then it starts over.
 */
export async function runFromPalette(page: Page, label: string): Promise<void> {
  const input = page.locator('.lm-CommandPalette-input:visible');
  const item = page
    .locator('.lm-CommandPalette-item.lm-mod-active')
    .filter({ hasText: label });
  await expect(async () => {
    if (!(await input.isVisible())) {
      await page.keyboard.press('Control+Shift+c');
    }
    await expect(input).toBeFocused({ timeout: 3000 });
    await input.fill(label, { timeout: 3000 });
    await expect(item).toBeVisible({ timeout: 3000 });
    await input.press('Enter', { timeout: 3000 });
  }).toPass({ timeout: 60 * 1000 });
  await expect(input).toBeHidden();
}

/**
 * Wait until an element's own animations (a notification's entrance) are over. Not its
 * children's: a notification's progress bar animates until it closes.
 */
export async function animationsDone(locator: Locator): Promise<void> {
  await locator.evaluate(node =>
    Promise.all(node.getAnimations().map(a => a.finished.catch(() => a)))
  );
}

/**
 * The number and types of the current notebook's cells.
 */
export async function cellTypes(
  page: IJupyterLabPageFixture
): Promise<string[]> {
  return page.evaluate(() => {
    const app = (window as any).jupyterapp;
    const panel = app.shell.currentWidget;
    return panel.content.widgets.map((w: any) => w.model.type);
  });
}
