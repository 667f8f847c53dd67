/**
 * The Export round trip in a real browser, timed: click Export, accept the name dialog, see
 * the notification. Driven by benchmarks/bench_lab_export.py (NB2PROD_UI_BENCH=1), which
 * generates the notebook and prints the table; never part of the normal UI suite.
 *
 * Every timestamp is taken inside the page (performance.now()), so Playwright's own latency is
 * left out: a capture-phase click listener stamps the clicks, a MutationObserver stamps the
 * dialog and the notification as they appear, and the extension's User Timing marks
 * (`nb2prod:export:*`) split the flow into its phases.
 */
import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

test.use({ autoGoto: true });

const NOTEBOOK = process.env.NB2PROD_BENCH_NOTEBOOK ?? '';
const RUNS = Number(process.env.NB2PROD_BENCH_RUNS ?? '7');
const OUT = process.env.NB2PROD_BENCH_OUT ?? '';

/**
 * What one round trip measured, in milliseconds from the click on Export.
 */
interface ITrip {
  created: boolean;
  dialog: number;
  accept: number;
  notification: number;
  marks: { [name: string]: number };
  request: { total: number; server: number } | null;
}

test('export round trip of a large notebook', async ({ page, tmpPath }) => {
  expect(NOTEBOOK, 'NB2PROD_BENCH_NOTEBOOK: the notebook to export').not.toBe(
    ''
  );
  const name = path.basename(NOTEBOOK);
  await page.contents.uploadFile(NOTEBOOK, `${tmpPath}/${name}`);
  await page.notebook.openByPath(`${tmpPath}/${name}`);
  await page.notebook.activate(name);
  const panel = page.locator('#nb2prod-pipeline-panel');
  if (!(await panel.isVisible())) {
    await page
      .locator('.jp-SideBar [data-id="nb2prod-pipeline-panel"]')
      .click();
  }
  await expect(panel.locator('.nb2prod-StepCard').first()).toBeVisible({
    timeout: 60 * 1000
  });
  const exportButton = page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'Export pipeline' });

  const trips: ITrip[] = [];
  // One untimed warm-up trip: the server's first export pays its imports.
  for (let i = 0; i <= RUNS; i++) {
    const inspected = page.waitForResponse(
      r =>
        r.url().includes('/nb2prod/inspect') && r.request().method() === 'POST'
    );
    // A new line in the last cell: every trip exports (and saves) a real change.
    await page.evaluate(k => {
      const app = (window as any).jupyterapp;
      const cells = app.shell.currentWidget.content.model.cells;
      const last = cells.get(cells.length - 1).sharedModel;
      last.setSource(`${last.getSource()}\nbench_${k} = ${k}`);
    }, i);
    // Let the panel's own inspection of the edit finish first: it is not part of Export.
    await inspected;
    await expect(panel.locator('.nb2prod-PipelinePanel-notebook')).toHaveText(
      /\.ipynb$/,
      { timeout: 30 * 1000 }
    );
    await page.evaluate(() => {
      performance.clearMarks();
      const w = window as any;
      // Earlier trips' notifications do not count.
      document
        .querySelectorAll<HTMLElement>('.Toastify__toast')
        .forEach(t => (t.dataset.nb2prodBenchOld = '1'));
      w.nb2prodBench = { click: 0, dialog: 0, accept: 0, notification: 0 };
      const stamp = () => performance.now();
      w.nb2prodBenchClick = (e: MouseEvent) => {
        const target = e.target as HTMLElement;
        if (target.closest('.jp-NotebookPanel-toolbar [data-command]')) {
          w.nb2prodBench.click = stamp();
        } else if (target.closest('.jp-Dialog button.jp-mod-accept')) {
          w.nb2prodBench.accept = stamp();
        }
      };
      document.addEventListener('click', w.nb2prodBenchClick, true);
      w.nb2prodBenchObserver = new MutationObserver(() => {
        const b = w.nb2prodBench;
        if (!b.dialog && document.querySelector('.jp-Dialog input')) {
          b.dialog = stamp();
        }
        if (
          !b.notification &&
          [
            ...document.querySelectorAll(
              '.Toastify__toast:not([data-nb2prod-bench-old])'
            )
          ].some(t => /Exported .* v\d+|Up to date/.test(t.textContent ?? ''))
        ) {
          b.notification = stamp();
        }
      });
      w.nb2prodBenchObserver.observe(document.body, {
        childList: true,
        subtree: true
      });
    });
    const answer = page.waitForResponse(
      r =>
        r.url().includes('/nb2prod/export') && r.request().method() === 'POST'
    );
    await exportButton.click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.getByRole('button', { name: 'Export' }).click();
    const response = await answer;
    const created = (await response.json()).created === true;
    await expect
      .poll(() =>
        page.evaluate(() => (window as any).nb2prodBench.notification)
      )
      .toBeGreaterThan(0);
    const timing = response.request().timing();
    const trip = await page.evaluate(() => {
      const w = window as any;
      document.removeEventListener('click', w.nb2prodBenchClick, true);
      w.nb2prodBenchObserver.disconnect();
      const b = w.nb2prodBench;
      const marks: { [name: string]: number } = {};
      for (const m of performance.getEntriesByType('mark')) {
        if (m.name.startsWith('nb2prod:export:')) {
          marks[m.name.slice('nb2prod:export:'.length)] = m.startTime - b.click;
        }
      }
      return {
        dialog: b.dialog - b.click,
        accept: b.accept - b.click,
        notification: b.notification - b.click,
        marks
      };
    });
    if (i === 0) {
      continue;
    }
    trips.push({
      created,
      ...trip,
      request:
        timing.responseEnd > 0
          ? {
              total: timing.responseEnd - timing.requestStart,
              server: timing.responseStart - timing.requestStart
            }
          : null
    });
  }
  if (OUT) {
    fs.writeFileSync(OUT, JSON.stringify({ trips }, null, 2));
  }
  console.log(JSON.stringify({ trips }));
});
