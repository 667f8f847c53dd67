/**
 * nb2prod in JupyterLab, driven as a user would, in a real Chromium: tag cells from the cell
 * toolbar, watch the Pipeline panel follow, export, run, and jump to a problem's cell.
 *
 * The server is the real nb2prod server extension; runs are real papermill runs tracked to a
 * SQLite MLflow store in the server's temporary root (see jupyter_server_test_config.py).
 */
import { expect, test } from '@jupyterlab/galata';

import {
  cell,
  cellTags,
  openNotebook,
  openPanel,
  pickRole,
  screenshotPath
} from './helpers';

test.use({ autoGoto: true });

test('the extension is active and adds its panel, commands and toolbar buttons', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris.ipynb');
  const toolbar = page.locator('.jp-NotebookPanel-toolbar');
  await expect(
    toolbar.getByRole('button', { name: 'Export pipeline' })
  ).toBeVisible();
  await expect(
    toolbar.getByRole('button', { name: 'Run pipeline' })
  ).toBeVisible();
  await page.getByRole('menuitem', { name: 'File' }).click();
  await expect(
    page.getByRole('menuitem', { name: /Export to Pipeline/ })
  ).toBeVisible();
  await expect(
    page.getByRole('menuitem', { name: /Run Pipeline/ })
  ).toBeVisible();
  await page.keyboard.press('Escape');
  await openPanel(page);
});

test('tag cells from the cell toolbar and watch the Pipeline panel follow', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris_untagged.ipynb');
  const panel = await openPanel(page);

  // An untagged notebook: the panel says how to tag.
  await expect(
    panel.getByText(/pick its role in the cell toolbar dropdown/)
  ).toBeVisible();

  await pickRole(page, 1, 'Setup');
  await pickRole(page, 2, 'Parameters');
  await pickRole(page, 3, 'Preprocessing');
  await pickRole(page, 4, 'Skip');

  // A named step: "Training…" asks for the name inline, validated against the grammar.
  const fit = await pickRole(page, 5, 'Training…');
  const name = fit.getByRole('textbox', { name: 'Training step name' });
  await expect(name).toBeFocused();
  await name.fill('Log Reg');
  await expect(fit.getByText(/lower-case letters/)).toBeVisible();
  await expect(
    fit.getByRole('button', { name: 'Set step name' })
  ).toBeDisabled();
  await name.fill('logreg');
  await name.press('Enter');
  await expect(fit.locator('.nb2prod-Chip')).toHaveText('TRAIN · logreg');

  await pickRole(page, 6, 'Evaluation');
  await pickRole(page, 7, 'Metrics');

  // The tags are the grammar's, and another tool's tag stays.
  expect(await cellTags(page, 5)).toEqual(['training:logreg']);
  expect(await cellTags(page, 7)).toEqual(['metrics', 'hide-input']);

  // Roles at a glance: chips, bars (data attributes), the dimmed skip cell.
  await expect(cell(page, 1).locator('.nb2prod-Chip')).toHaveText('SETUP');
  await expect(cell(page, 3).locator('.nb2prod-Chip')).toHaveText('PREP');
  await expect(cell(page, 4)).toHaveAttribute('data-nb2prod-kind', 'skip');
  await expect(cell(page, 7)).toHaveAttribute('data-nb2prod-kind', 'member');
  await expect(cell(page, 7)).toHaveAttribute(
    'data-nb2prod-step',
    'evaluation'
  );
  await expect(cell(page, 7).locator('.nb2prod-Chip')).toHaveText('METRICS');

  // Changing a role is one undoable edit.
  await pickRole(page, 6, 'Skip');
  expect(await cellTags(page, 6)).toEqual(['skip']);
  await page.keyboard.press('Escape');
  await page.keyboard.press('z');
  await expect.poll(() => cellTags(page, 6)).toEqual(['evaluation']);
  await page.keyboard.press('Shift+z');
  await expect.poll(() => cellTags(page, 6)).toEqual(['skip']);
  await page.keyboard.press('z');
  await expect.poll(() => cellTags(page, 6)).toEqual(['evaluation']);

  // The panel's outline follows the notebook.
  const cards = panel.locator('.nb2prod-StepCard');
  await expect(cards).toHaveCount(3);
  await expect(cards.nth(0)).toContainText('preprocessing');
  await expect(cards.nth(0)).toContainText(
    'gives: X_test, X_train, y_test, y_train'
  );
  await expect(cards.nth(1)).toContainText('logreg');
  await expect(cards.nth(1)).toContainText('needs: X_train, y_train');
  await expect(cards.nth(1)).toContainText('gives: model');
  await expect(cards.nth(2)).toContainText('cells 7–8');
  await expect(panel.locator('.nb2prod-Param')).toHaveCount(3);
  await expect(panel.locator('.nb2prod-Param').first()).toContainText(
    'test_size = 0.3'
  );

  // Clicking a step's cells jumps to them.
  await cards.nth(1).getByRole('link', { name: 'Go to cell 6' }).click();
  await expect(cell(page, 5)).toHaveClass(/jp-mod-active/);

  await page.screenshot({ path: screenshotPath('tagging.png') });
});

test('export, then run with an override, and see every step succeed', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(150 * 1000);
  await page.setViewportSize({ width: 1280, height: 1000 });
  await openNotebook(page, tmpPath, 'iris.ipynb');
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);

  await test.step('export', async () => {
    await page
      .locator('.jp-NotebookPanel-toolbar')
      .getByRole('button', { name: 'Export pipeline' })
      .click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.getByLabel('Pipeline name')).toHaveValue('iris');
    await dialog.getByRole('button', { name: 'Export' }).click();
    const toast = page.locator('.jp-Notification-Toast-success').filter({
      hasText: 'Exported iris v1 → pipelines/iris/v1'
    });
    await expect(toast).toBeVisible();
    await expect(
      toast.getByRole('button', { name: 'Open pipeline.yaml' })
    ).toBeVisible();
    await expect(
      toast.getByRole('button', { name: 'Open README' })
    ).toBeVisible();
    await page.waitForTimeout(800); // the toast's entrance animation
    await page.screenshot({ path: screenshotPath('export.png') });

    // Exporting an unchanged notebook writes nothing.
    await page.getByRole('menuitem', { name: 'File' }).click();
    await page.getByRole('menuitem', { name: /Export to Pipeline/ }).click();
    await page
      .locator('.jp-Dialog')
      .getByRole('button', { name: 'Export' })
      .click();
    const upToDate = page
      .locator('.jp-Notification-Toast-info')
      .filter({ hasText: 'Up to date: iris v1' });
    await expect(upToDate).toBeVisible();
    await upToDate.getByRole('button', { name: 'Open README' }).click();
    await expect(page.getByRole('tab', { name: /README\.md/ })).toBeVisible();
    await page.notebook.activate('iris.ipynb');
  });

  await test.step('run', async () => {
    await panel.getByRole('button', { name: /Run Pipeline/ }).click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog.locator('#nb2prod-run-version')).toHaveValue('1');
    const C = dialog.locator('[data-param="C"]');
    await expect(C).toHaveValue('1.0');
    // Invalid input is caught before submit.
    const maxIter = dialog.locator('[data-param="max_iter"]');
    await maxIter.fill('2.5');
    await expect(dialog.getByText('Enter a whole number.')).toBeVisible();
    await expect(dialog.getByRole('button', { name: 'Run' })).toBeDisabled();
    await maxIter.fill('300');
    await C.fill('0.5');
    await dialog.locator('.jp-Dialog-content').screenshot({
      path: screenshotPath('run-form.png')
    });
    await dialog.getByRole('button', { name: 'Run' }).click();

    const run = panel.locator('.nb2prod-Run');
    await expect(run).toHaveAttribute('data-status', 'succeeded', {
      timeout: 90 * 1000
    });
    const states = panel.locator('.nb2prod-StepCard .nb2prod-StepState');
    await expect(states).toHaveCount(3);
    for (let i = 0; i < 3; i++) {
      await expect(states.nth(i)).toContainText('✓');
    }
    await expect(run.locator('.nb2prod-Metrics')).toContainText('accuracy');
    await expect(run.locator('.nb2prod-Tracking')).toContainText(
      /experiment iris, run [0-9a-f]{32}/,
      {
        timeout: 30 * 1000
      }
    );
    await expect(
      page.getByRole('alert').filter({ hasText: /iris v1 succeeded in/ })
    ).toBeVisible();
    await panel.screenshot({ path: screenshotPath('run-panel.png') });
  });
});

test('a failing step shows its exception and opens its executed notebook', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(120 * 1000);
  await openNotebook(page, tmpPath, 'failing.ipynb');
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(2);
  await page.getByRole('menuitem', { name: 'File' }).click();
  await page.getByRole('menuitem', { name: /Export to Pipeline/ }).click();
  await page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Export' })
    .click();
  await expect(
    page.getByText('Exported failing v1 → pipelines/failing/v1')
  ).toBeVisible();

  await panel.getByRole('button', { name: /Run Pipeline/ }).click();
  await page.locator('.jp-Dialog').getByRole('button', { name: 'Run' }).click();
  const run = panel.locator('.nb2prod-Run');
  await expect(run).toHaveAttribute('data-status', 'failed', {
    timeout: 90 * 1000
  });
  const training = panel.locator('.nb2prod-StepCard[data-step="training"]');
  await expect(training.locator('.nb2prod-StepState')).toContainText('✗');
  await expect(training).toContainText('ZeroDivisionError');
  await training.getByRole('link', { name: 'Open executed notebook' }).click();
  await expect(
    page.getByRole('tab', { name: /training\.ipynb/ })
  ).toBeVisible();
  await expect(
    page
      .locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')
      .filter({ hasText: 'ZeroDivisionError' })
      .first()
  ).toBeVisible();
});

test('a problem shows in the panel, links to its cell, and disables Export', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'skip_only.ipynb');
  const panel = await openPanel(page);
  const problem = panel.locator('.nb2prod-Problem.nb2prod-mod-error');
  await expect(problem).toContainText(
    'cell 4 (id train): reads `threshold`, which is only set in cell 3, a `skip` cell that the pipeline never runs. Fix: remove the `skip` tag from cell 3, or set `threshold` in a step.'
  );
  await expect(
    panel.getByText('Export is disabled until this error is fixed.')
  ).toBeVisible();

  // The toolbar's Export button is disabled and says why.
  const exportButton = page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'Export pipeline' });
  await expect(exportButton).toBeDisabled();
  await expect(
    page.locator('.jp-NotebookPanel-toolbar [data-command="nb2prod:export"]')
  ).toHaveAttribute('title', /Export is disabled: the notebook has 1 error/);

  // Clicking the problem scrolls to the cell and selects it.
  await cell(page, 0)
    .locator('.jp-InputPrompt, .jp-MarkdownOutput')
    .first()
    .click();
  await problem.getByRole('link').click();
  await expect(cell(page, 3)).toHaveClass(/jp-mod-active/);
  await expect(cell(page, 3)).toBeInViewport();
  await page.screenshot({ path: screenshotPath('problem.png') });

  // Fixing it (the skip cell becomes part of the step) re-enables Export.
  await pickRole(page, 2, '—');
  await expect(problem).toHaveCount(0);
  await expect(exportButton).toBeEnabled();
});

test('roles can be set from the context menu and, by keyboard, from the palette', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris_untagged.ipynb');

  await cell(page, 3).locator('.jp-InputPrompt').click({ button: 'right' });
  await page
    .locator('.lm-Menu-item[data-type="submenu"]', { hasText: 'Pipeline Role' })
    .click();
  await page
    .getByRole('menuitem', { name: 'Preprocessing', exact: true })
    .click();
  expect(await cellTags(page, 3)).toEqual(['preprocessing']);

  await cell(page, 5).locator('.jp-InputPrompt').click();
  await page.keyboard.press('Control+Shift+c');
  await page.keyboard.type('Set Cell Role: Training (named)');
  await page.keyboard.press('Enter');
  const dialog = page.locator('.jp-Dialog');
  await expect(
    dialog.getByRole('textbox', { name: 'Step name' })
  ).toBeFocused();
  await page.keyboard.type('Bad Name');
  await expect(dialog.getByText(/lower-case letters/)).toBeVisible();
  await dialog.getByRole('textbox').fill('xgb');
  await page.keyboard.press('Enter');
  await expect.poll(() => cellTags(page, 5)).toEqual(['training:xgb']);
  await expect(cell(page, 5).locator('.nb2prod-Chip')).toHaveText(
    'TRAIN · xgb'
  );
});
