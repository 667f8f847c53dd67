/**
 * nb2prod in JupyterLab, driven as a user would, in a real Chromium: tag cells from the cell
 * toolbar, watch the Pipeline panel follow, export, run, and jump to a problem's cell.
 *
 * The server is the real nb2prod server extension; runs are real papermill runs tracked to a
 * SQLite MLflow store in the server's temporary root (see jupyter_server_test_config.py).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import {
  animationsDone,
  cell,
  cellTags,
  cellTypes,
  openNotebook,
  openPanel,
  pickRole,
  runFromPalette,
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
  // The last cell defines the serving function: its own role, in no step.
  await pickRole(page, 8, 'Serving');

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
  await expect(cell(page, 8)).toHaveAttribute('data-nb2prod-kind', 'serving');
  await expect(cell(page, 8).locator('.nb2prod-Chip')).toHaveText('SERVING');

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

  // The serving function: what it uses and where from, in inspect's words; a click on it
  // goes to its cell, a click on a need to the step that gives it.
  const serving = panel.getByRole('region', { name: 'Serving' });
  await expect(serving.locator('.nb2prod-Serving')).toContainText(
    'predict(raw) uses model from logreg'
  );
  await expect(serving.locator('.nb2prod-Chip')).toHaveText('SERVING');
  await serving
    .getByRole('link', { name: 'Serving function predict(raw) (go to cell 9)' })
    .click();
  await expect(cell(page, 8)).toHaveClass(/jp-mod-active/);
  await serving
    .getByRole('link', { name: 'model from logreg (go to cell 6)' })
    .click();
  await expect(cell(page, 5)).toHaveClass(/jp-mod-active/);

  await page.screenshot({ path: screenshotPath('tagging.png') });
});

test('export, then run with an override, and see every step succeed', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(150 * 1000);
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
    await animationsDone(toast);
    await page.screenshot({ path: screenshotPath('export.png') });

    // The files of a version open read-only, and JupyterLab writes no checkpoint into the
    // version folder (an immutable version must stay as exported).
    await toast.getByRole('button', { name: 'Open pipeline.yaml' }).click();
    const yamlTab = page.getByRole('tab', { name: /pipeline\.yaml/ });
    await expect(yamlTab).toBeVisible();
    const editor = page.locator(
      '.jp-FileEditor:not(.lm-mod-hidden) .cm-content'
    );
    await expect(editor).toContainText('name: iris');
    await editor.click();
    await page.keyboard.type('EDITED');
    await expect(editor).not.toContainText('EDITED');
    await expect(
      page
        .locator('.jp-Document:not(.lm-mod-hidden) .jp-ToolbarLabelComponent')
        .filter({ hasText: 'is read-only' })
    ).toBeVisible();

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
    await expect(
      page.locator('.jp-MarkdownViewer .jp-RenderedMarkdown', {
        hasText: 'iris'
      })
    ).toBeVisible();
    for (const file of ['pipeline.yaml', 'README.md']) {
      const checkpoints = await page.request.get(
        `/api/contents/pipelines/iris/v1/${file}/checkpoints`
      );
      expect(await checkpoints.json()).toEqual([]);
    }
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
    // The results are in view in the panel's default size, without scrolling.
    await expect(run.locator('.nb2prod-Metrics')).toBeInViewport();
    await expect(run.locator('.nb2prod-Tracking')).toBeInViewport();
    await panel.screenshot({ path: screenshotPath('run-panel.png') });
  });
});

test('a failing step shows its exception; its executed notebook opens read-only', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(120 * 1000);
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(e.stack ?? String(e)));
  await openNotebook(page, tmpPath, 'failing.ipynb');
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);
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
  // A step that never ran is not a failure: "not run", and why.
  const evaluation = panel.locator(
    '.nb2prod-StepCard[data-step="evaluation"] .nb2prod-StepState'
  );
  await expect(evaluation).toContainText(
    'not run step training did not succeed'
  );
  await expect(evaluation).not.toContainText('✗');
  await expect(evaluation).not.toContainText('skipped');

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

  // The panel says what this notebook is, instead of failing to inspect it.
  const executed = panel.getByRole('region', {
    name: 'Executed step notebook'
  });
  await expect(executed).toContainText(
    /Read-only: step training of run \d{8}-/
  );
  await expect(executed).toContainText('failing v1');
  await expect(panel).not.toContainText('Could not inspect');
  // Export and Run are disabled there, and say why (on hover and to screen readers).
  const exportButton = panel.getByRole('button', {
    name: /Export to Pipeline/
  });
  await expect(exportButton).toBeDisabled();
  await expect(exportButton).toHaveAttribute('title', /read-only record/);
  await expect(exportButton).toHaveAccessibleDescription(/Export is disabled/);
  await expect(
    panel.getByRole('button', { name: /Run Pipeline/ })
  ).toBeDisabled();
  await expect(
    page
      .locator(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar'
      )
      .getByRole('button', { name: 'Export pipeline' })
  ).toBeDisabled();
  // It is a record: no kernel starts for it.
  const sessions = await (await page.request.get('/api/sessions')).json();
  expect(
    sessions.filter((s: any) => /nb2prod-runs|training/.test(s.path))
  ).toEqual([]);

  // Back to the notebook the run came from.
  await executed
    .getByRole('link', { name: /Open the source notebook/ })
    .click();
  await expect(
    page.getByRole('tab', { name: /failing\.ipynb/ })
  ).toHaveAttribute('aria-selected', 'true');
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);
  await expect(exportButton).toBeEnabled();
  // (ipywidgets' manager reads the missing kernel of a notebook without one: not ours.)
  expect(errors.filter(e => /nb2prod/.test(e))).toEqual([]);
});

test('cancelling the save of a notebook changed on disk cancels Export, without errors', async ({
  page,
  tmpPath
}) => {
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(e.stack ?? String(e)));
  await openNotebook(page, tmpPath, 'iris.ipynb');
  await openPanel(page);
  // Unsaved changes here, and a newer file on disk: saving asks "File Changed… Overwrite?".
  await page.evaluate(() => {
    const app = (window as any).jupyterapp;
    const cells = app.shell.currentWidget.content.model.cells;
    cells.get(0).sharedModel.setSource('# edited here');
  });
  const known = await page.evaluate(
    () =>
      (window as any).jupyterapp.shell.currentWidget.context.contentsModel
        .last_modified
  );
  const file = await page.request.get(
    `/api/contents/${tmpPath}/iris.ipynb?content=1`
  );
  const content = (await file.json()).content;
  content.cells[0].source = '# edited elsewhere';
  // Write the file until its time is clearly later (JupyterLab allows 0.5 s).
  await expect
    .poll(
      async () => {
        const put = await page.request.put(
          `/api/contents/${tmpPath}/iris.ipynb`,
          { data: { type: 'notebook', format: 'json', content } }
        );
        const written = Date.parse((await put.json()).last_modified);
        return written - Date.parse(known);
      },
      { timeout: 10 * 1000 }
    )
    .toBeGreaterThan(1000);
  await page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'Export pipeline' })
    .click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('File Changed');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect(errors).toEqual([]);
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
  // Beside Export, the count; the problems themselves in view without scrolling.
  const count = panel.locator(
    '.nb2prod-PipelinePanel-header .nb2prod-ProblemCount'
  );
  await expect(count).toHaveText('1 error');
  await expect(problem).toBeInViewport();
  await count.click();
  await expect(panel.getByRole('region', { name: 'Problems' })).toBeFocused();

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
  await runFromPalette(page, 'Set Cell Role: Training (named)');
  const dialog = page.locator('.jp-Dialog');
  const input = dialog.getByRole('textbox', { name: 'Step name' });
  await expect(input).toBeFocused();
  // Validated as the inline control is: an invalid name cannot be accepted, a safe one is
  // suggested.
  await page.keyboard.type('Feature-Importance');
  await expect(dialog.getByText(/lower-case letters/)).toBeVisible();
  const set = dialog.getByRole('button', { name: 'Set', exact: true });
  await expect(set).toBeDisabled();
  await page.keyboard.press('Enter');
  await expect(input).toHaveValue('Feature-Importance');
  await expect(input).toBeFocused();
  await dialog
    .getByRole('button', { name: 'Use the name feature_importance' })
    .click();
  await expect(input).toHaveValue('feature_importance');
  await expect(set).toBeEnabled();
  await page.keyboard.press('Enter');
  await expect(dialog).toHaveCount(0);
  await expect
    .poll(() => cellTags(page, 5))
    .toEqual(['training:feature_importance']);
  await expect(cell(page, 5).locator('.nb2prod-Chip')).toHaveText(
    'TRAIN · feature_importance'
  );
});

test('with the focus on the role dropdown, the arrow keys and letters change the role, not the cell', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris_untagged.ipynb');
  const before = await cellTypes(page);
  const target = cell(page, 3);
  await target.locator('.jp-InputPrompt').click();
  const select = target.getByRole('combobox', {
    name: 'Pipeline role of this cell'
  });
  await select.focus();
  await page.keyboard.press('ArrowDown');
  await expect.poll(() => cellTags(page, 3)).toEqual(['preprocessing']);
  await expect(select).toBeFocused();
  await expect(target).toHaveClass(/jp-mod-active/);
  // A named role on the way shows its name field, but the arrows keep going.
  await page.keyboard.press('ArrowDown');
  await expect(
    target.getByRole('textbox', { name: 'Preprocessing step name' })
  ).toBeVisible();
  await expect(select).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await expect.poll(() => cellTags(page, 3)).toEqual(['training']);
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowUp');
  await expect.poll(() => cellTags(page, 3)).toEqual(['preprocessing']);
  // A letter picks a role by its first letter; none runs a notebook shortcut (M: Markdown,
  // then A: insert a cell above, R: raw, which match no role after "m").
  await page.keyboard.press('m');
  await expect.poll(() => cellTags(page, 3)).toEqual(['metrics']);
  await page.keyboard.press('a');
  await page.keyboard.press('r');
  await expect(select).toBeFocused();
  expect(await cellTags(page, 3)).toEqual(['metrics']);
  await expect(target).toHaveClass(/jp-mod-active/);
  expect(await cellTypes(page)).toEqual(before);
});

test('a step name typed after the dropdown took the focus back goes into the name field', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris_untagged.ipynb');
  const before = await cellTypes(page);
  const fit = await pickRole(page, 5, 'Training…');
  const name = fit.getByRole('textbox', { name: 'Training step name' });
  await expect(name).toBeFocused();
  // The dropdown's list closing gives it the focus back: what the user types next is still
  // the name, and never a notebook shortcut (A: insert a cell, R: make it raw).
  await fit
    .getByRole('combobox', { name: 'Pipeline role of this cell' })
    .focus();
  await page.keyboard.type('ar');
  await expect(name).toHaveValue('ar');
  await expect(name).toBeFocused();
  expect(await cellTypes(page)).toEqual(before);

  // The error shows above the code, never over it.
  await page.keyboard.type('-x');
  const help = fit.locator('.nb2prod-RoleControl-help');
  await expect(help).toHaveText(/lower-case letters/);
  await expect(name).toHaveAccessibleDescription(/lower-case letters/);
  const helpBox = await help.boundingBox();
  const codeBox = await fit.locator('.jp-InputArea-editor').boundingBox();
  expect(helpBox!.y + helpBox!.height).toBeLessThanOrEqual(codeBox!.y + 1);
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Backspace');
  await expect(help).toBeEmpty();
  await page.keyboard.press('Enter');
  await expect.poll(() => cellTags(page, 5)).toEqual(['training:ar']);
  expect(await cellTypes(page)).toEqual(before);
});

/**
 * A run record, as `GET /nb2prod/runs/ID` answers it.
 */
const RUN_ID = '20261126-101010-1234abc';

function runRecord(
  status: string,
  steps: { [name: string]: { state: string; duration?: number; error?: any } },
  more: { [key: string]: unknown } = {}
): unknown {
  return {
    id: RUN_ID,
    pipeline: 'iris',
    version: 1,
    status,
    duration: null,
    params: {},
    metrics: {},
    tracking: { state: 'pending' },
    dir: `.nb2prod/runs/${RUN_ID}`,
    active: true,
    steps: Object.fromEntries(
      Object.entries(steps).map(([name, s]) => [
        name,
        {
          role: name,
          duration: s.duration ?? null,
          error: s.error ?? null,
          notebook: null,
          notebook_path: null,
          metrics: {},
          state: s.state
        }
      ])
    ),
    ...more
  };
}

/**
 * Answer the REST API's pipelines and runs from the test (the rest stays real), so that a
 * test controls each state a run goes through.
 */
async function mockRuns(
  page: IJupyterLabPageFixture,
  pipelines: unknown[]
): Promise<{ record: unknown; started: number }> {
  const state = { record: null as unknown, started: 0 };
  await page.route(/\/nb2prod\/pipelines(\?.*)?$/, route =>
    route.fulfill({ json: { pipelines } })
  );
  // (Every GET carries a cache-busting query string.)
  await page.route(/\/nb2prod\/runs(\?[^/]*)?$/, route => {
    if (route.request().method() !== 'POST') {
      return route.continue();
    }
    state.started++;
    return route.fulfill({
      status: 202,
      json: { id: RUN_ID, pipeline: 'iris', version: 1 }
    });
  });
  await page.route(new RegExp(`/nb2prod/runs/${RUN_ID}(\\?.*)?$`), route =>
    route.fulfill({ json: state.record })
  );
  return state;
}

function irisPipeline(notebook: string): unknown {
  return {
    name: 'iris',
    path: 'pipelines/iris',
    latest: 1,
    versions: [
      {
        version: 1,
        path: 'pipelines/iris/v1',
        created_at: '2026-11-26T10:00:00+00:00',
        notebook,
        steps: [
          { name: 'preprocessing', role: 'preprocessing', depends_on: [] },
          { name: 'logreg', role: 'training', depends_on: ['preprocessing'] },
          { name: 'evaluation', role: 'evaluation', depends_on: ['logreg'] }
        ],
        parameters: [
          { name: 'C', type: 'float', value: 1, help: '' },
          { name: 'scale', type: 'bool', value: true, help: 'standardize' },
          { name: 'seed', type: 'null', value: null, help: '' }
        ]
      }
    ]
  };
}

test('after the steps, the panel and the notification show MLflow logging, and end together', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris.ipynb');
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);
  const server = await mockRuns(page, [irisPipeline(`${tmpPath}/iris.ipynb`)]);
  const steps = (state: string) => ({
    preprocessing: { state, duration: 1 },
    logreg: { state, duration: 2 },
    evaluation: { state, duration: 2 }
  });
  server.record = runRecord('running', steps('running'));

  await panel.getByRole('button', { name: /Run Pipeline/ }).click();
  const dialog = page.locator('.jp-Dialog');
  // One notation in the form: JSON (true, null), as its fields take it.
  await expect(
    dialog.locator('label[for="nb2prod-param-scale"]')
  ).toContainText('bool · default true');
  await expect(dialog.locator('label[for="nb2prod-param-seed"]')).toContainText(
    'default null'
  );
  await expect(dialog).not.toContainText('True');
  await expect(dialog).not.toContainText('None');
  await expect(dialog).toContainText(`exported from ${tmpPath}/iris.ipynb`);
  await dialog.getByRole('button', { name: 'Run' }).click();

  const run = panel.locator('.nb2prod-Run');
  await expect(run).toHaveAttribute('data-phase', 'running');
  const toast = page.locator('.Toastify__toast').filter({ hasText: 'iris v1' });
  await expect(toast).toContainText('iris v1: running…');

  // The steps are over; the results are being logged to MLflow.
  server.record = runRecord('succeeded', steps('succeeded'), {
    duration: 5,
    metrics: { accuracy: 0.9 },
    tracking: { state: 'logging', started_at: new Date().toISOString() }
  });
  await expect(run).toHaveAttribute('data-phase', 'tracking');
  await expect(run.locator('.nb2prod-Run-status')).toContainText(
    'iris v1: steps succeeded in 5.0s; logging to MLflow…'
  );
  await expect(run.locator('.nb2prod-Spinner')).toBeVisible();
  await expect(toast).toContainText('logging to MLflow…');
  await expect(run.locator('.nb2prod-Tracking')).toHaveCount(0);
  await expect(toast).not.toContainText('(steps');

  // Logging is over: both say so at once, with the time the user waited.
  server.record = runRecord('succeeded', steps('succeeded'), {
    duration: 5,
    metrics: { accuracy: 0.9 },
    active: false,
    tracking: {
      state: 'done',
      duration: 2,
      ok: true,
      uri: 'sqlite:///mlflow.db',
      experiment: 'iris',
      experiment_id: '1',
      run_id: 'a'.repeat(32),
      error: null
    }
  });
  const done = 'iris v1 succeeded in 7.0s (steps 5.0s, MLflow 2.0s)';
  await expect(run.locator('.nb2prod-Run-status')).toContainText(done);
  await expect(run).toHaveAttribute('data-phase', 'done');
  await expect(run.locator('.nb2prod-Tracking')).toContainText(
    `experiment iris, run ${'a'.repeat(32)}`
  );
  await expect(toast).toContainText(done);
  expect(server.started).toBe(1);
});

test('Run on a notebook that was never exported says so and offers Export', async ({
  page,
  tmpPath
}) => {
  await openNotebook(page, tmpPath, 'iris.ipynb');
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);
  // Another notebook's pipeline exists; it must not be preselected for this one.
  const other = irisPipeline('elsewhere/other.ipynb') as any;
  other.name = 'aaa_other';
  other.path = 'pipelines/aaa_other';
  other.versions[0].path = 'pipelines/aaa_other/v1';
  const server = await mockRuns(page, [other]);

  await panel.getByRole('button', { name: /Run Pipeline/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Not Exported Yet');
  await expect(dialog).toContainText(
    `${tmpPath}/iris.ipynb has not been exported yet`
  );
  await dialog.getByRole('button', { name: 'Export…' }).click();
  // Export's own dialog follows.
  await expect(dialog.getByLabel('Pipeline name')).toHaveValue('iris');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);

  // Running another pipeline is still possible, by choice.
  await panel.getByRole('button', { name: /Run Pipeline/ }).click();
  await dialog.getByRole('button', { name: 'Run Another Pipeline…' }).click();
  await expect(dialog.locator('#nb2prod-run-pipeline')).toBeVisible();
  await expect(
    dialog.locator('#nb2prod-run-pipeline option:checked')
  ).toHaveText('aaa_other');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect(server.started).toBe(0);
});

test('compile for Kubeflow Pipelines and Airflow from the panel and the palette; the notification opens the files', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(150 * 1000);
  // A notebook name of its own: the tests share the server's pipelines/ and build/.
  const name = 'iris_engines.ipynb';
  await page.contents.uploadFile(
    path.resolve(__dirname, '..', 'notebooks', 'iris.ipynb'),
    `${tmpPath}/${name}`
  );
  await page.notebook.openByPath(`${tmpPath}/${name}`);
  await page.notebook.activate(name);
  const panel = await openPanel(page);
  await expect(panel.locator('.nb2prod-StepCard')).toHaveCount(3);

  // Nothing to compile before the first export: the button says why.
  const compile = panel.getByRole('button', { name: 'Compile Pipeline' });
  await expect(compile).toBeDisabled();
  await expect(compile).toHaveAttribute('title', /has not been exported yet/);

  await page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'Export pipeline' })
    .click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.getByLabel('Pipeline name')).toHaveValue('iris_engines');
  await dialog.getByRole('button', { name: 'Export' }).click();
  await expect(
    page
      .locator('.jp-Notification-Toast-success')
      .filter({ hasText: 'Exported iris_engines v1' })
  ).toBeVisible();

  // From the panel: a menu of engines.
  await expect(compile).toBeEnabled();
  await compile.click();
  const menu = page.locator('.nb2prod-CompileMenu');
  await expect(
    menu.getByRole('menuitem', { name: 'Airflow (dag.py)' })
  ).toBeVisible();
  await menu
    .getByRole('menuitem', { name: 'Kubeflow Pipelines (pipeline.py)' })
    .click();
  const compiled =
    'Compiled iris_engines v1 for Kubeflow Pipelines → build/iris_engines-v1-kfp/';
  // The notification that said "Compiling…", updated in place.
  const toast = page.getByRole('alert').filter({ hasText: compiled });
  await expect(toast).toBeVisible({ timeout: 60 * 1000 });
  await animationsDone(toast);
  await page.screenshot({ path: screenshotPath('compile.png') });
  await toast.getByRole('button', { name: 'Open pipeline.py' }).click();
  await expect(page.getByRole('tab', { name: /pipeline\.py/ })).toBeVisible();
  await expect(
    page.locator('.jp-FileEditor:not(.lm-mod-hidden) .cm-content')
  ).toContainText('Pipeline iris_engines v1 for Kubeflow Pipelines (KFP v2)');
  // Generated: read-only, and no checkpoint beside it (it would stop the next compile).
  await expect(
    page
      .locator('.jp-Document:not(.lm-mod-hidden) .jp-ToolbarLabelComponent')
      .filter({ hasText: 'is read-only' })
  ).toBeVisible();

  // From the palette, again (the same bytes are written); the folder shows in the browser.
  await page.notebook.activate(name);
  await runFromPalette(page, 'Compile Pipeline for Kubeflow Pipelines');
  const again = page.getByRole('alert').filter({ hasText: compiled }).last();
  await expect(again).toBeVisible({ timeout: 60 * 1000 });
  await again.getByRole('button', { name: 'Show Folder' }).click();
  await expect(page.locator('.jp-FileBrowser .jp-BreadCrumbs')).toContainText(
    'iris_engines-v1-kfp'
  );
  for (const file of ['pipeline.yaml', 'README.md', 'Dockerfile']) {
    await expect(
      page
        .locator('.jp-FileBrowser .jp-DirListing-itemText')
        .getByText(file, { exact: true })
    ).toBeVisible();
  }

  // Airflow, from the palette: its DAG.
  await page.notebook.activate(name);
  await runFromPalette(page, 'Compile Pipeline for Airflow');
  const airflow = page.getByRole('alert').filter({
    hasText:
      'Compiled iris_engines v1 for Airflow → build/iris_engines-v1-airflow/'
  });
  await expect(airflow).toBeVisible({ timeout: 60 * 1000 });
  await airflow.getByRole('button', { name: 'Open dag.py' }).click();
  await expect(page.getByRole('tab', { name: /dag\.py/ })).toBeVisible();
});

test('gates show in the panel; a run promotes, a worse one fails its gates without crashing', async ({
  page,
  tmpPath
}) => {
  test.setTimeout(150 * 1000);
  await openNotebook(page, tmpPath, 'gated.ipynb');
  const panel = await openPanel(page);
  // The gates, under the parameters, with their help.
  const gates = panel.getByRole('region', { name: 'Gates' });
  await expect(gates.locator('.nb2prod-Gate')).toHaveCount(2);
  await expect(gates.locator('.nb2prod-Gate').first()).toContainText(
    'score >= 5'
  );
  await expect(gates).toContainText(
    'no worse than the champion by more than 1'
  );

  await page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'Export pipeline' })
    .click();
  await page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Export' })
    .click();
  await expect(
    page.getByText('Exported gated v1 → pipelines/gated/v1')
  ).toBeVisible();

  const run = panel.locator('.nb2prod-Run');
  const results = run.locator('.nb2prod-GateResult');
  await test.step('the first run has no baseline and is promoted', async () => {
    await panel.getByRole('button', { name: /Run Pipeline/ }).click();
    const dialog = page.locator('.jp-Dialog');
    const baseline = dialog.getByLabel('Baseline', { exact: true });
    await expect(baseline).toHaveValue('champion');
    await expect(baseline.locator('option')).toHaveText([
      'Champion (default)',
      'Previous run',
      'Newest run of v1',
      'A run id…'
    ]);
    // A typed run id is checked before submit.
    await baseline.selectOption('run');
    await dialog.getByLabel('Baseline run id').fill('last week');
    await expect(dialog.getByText(/Enter a run id/)).toBeVisible();
    await expect(dialog.getByRole('button', { name: 'Run' })).toBeDisabled();
    await baseline.selectOption('champion');
    await dialog.getByLabel('Promote if gates pass').check();
    await dialog.getByRole('button', { name: 'Run' }).click();
    await expect(run).toHaveAttribute('data-status', 'succeeded', {
      timeout: 90 * 1000
    });
    await expect(results).toHaveCount(2, { timeout: 30 * 1000 });
    await expect(results.nth(0)).toHaveAttribute('data-gate', 'passed');
    await expect(results.nth(0)).toContainText('✓ pass');
    await expect(results.nth(1)).toHaveAttribute('data-gate', 'nobaseline');
    await expect(run.locator('.nb2prod-Gates-status')).toContainText(
      'Gates passed'
    );
    await expect(run.locator('.nb2prod-Gates-promotion')).toContainText(
      'Promoted to champion'
    );
  });

  await test.step('a worse run fails its gates against the champion', async () => {
    await panel.getByRole('button', { name: /Run Pipeline/ }).click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.locator('[data-param="factor"]').fill('1.0');
    await dialog.getByRole('button', { name: 'Run' }).click();
    // Every step succeeded: not a crash, shown as failed gates.
    await expect(run).toHaveAttribute('data-status', 'gates-failed', {
      timeout: 90 * 1000
    });
    // score 6 instead of 12: above the floor, but 6 below the champion.
    await expect(results.nth(1)).toHaveAttribute('data-gate', 'failed', {
      timeout: 30 * 1000
    });
    await expect(results.nth(1)).toContainText('✗ fail');
    await expect(results.nth(0)).toContainText('✓ pass');
    await expect(run.locator('.nb2prod-Run-status')).toContainText(
      'steps succeeded'
    );
    await expect(
      run.locator('.nb2prod-Metrics tr[data-metric="score"]')
    ).toContainText('−6');
    await expect(run.locator('.nb2prod-Gates-baseline')).toContainText(
      'Compared with champion'
    );
    await expect(
      panel.locator(
        '.nb2prod-StepCard[data-step="evaluation"] .nb2prod-StepState'
      )
    ).toContainText('✓');
    await panel.screenshot({ path: screenshotPath('gates-panel.png') });
  });
});
