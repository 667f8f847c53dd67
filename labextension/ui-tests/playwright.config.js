/**
 * Playwright configuration for nb2prod's UI tests: galata's defaults, run in Debian's
 * Chromium (/usr/bin/chromium; Playwright's own browser download is not used).
 *
 * Two servers: JupyterLab (the galata suite) and, when the `notebook` package is installed,
 * Jupyter Notebook 7 (a smaller suite checking that the extension loads there too).
 *
 * With NB2PROD_UI_BENCH=1 only the benchmark runs (bench_export.spec.ts, driven by
 * benchmarks/bench_lab_export.py), against JupyterLab alone; the normal suite never runs it.
 */
const { spawnSync } = require('child_process');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const labPort = process.env.NB2PROD_UI_PORT || '8899';
const notebookPort = process.env.NB2PROD_UI_NOTEBOOK_PORT || '8898';
const bench = process.env.NB2PROD_UI_BENCH === '1';
const hasNotebook7 =
  !bench &&
  spawnSync('jupyter', ['notebook', '--version'], { encoding: 'utf-8' })
    .status === 0;
if (!hasNotebook7 && !bench) {
  console.warn(
    'nb2prod UI tests: Jupyter Notebook 7 is not installed; only the JupyterLab suite runs.'
  );
}

const use = {
  ...baseConfig.use,
  viewport: { width: 1280, height: 800 },
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium'
  },
  video: 'off',
  trace: 'off'
};

function server(app, port) {
  return {
    command: `jupyter ${app} --config jupyter_server_test_config.py`,
    url: `http://localhost:${port}/${app === 'lab' ? 'lab' : 'tree'}`,
    timeout: 120 * 1000,
    reuseExistingServer: false,
    stdout: process.env.NB2PROD_UI_SERVER_LOG ? 'pipe' : 'ignore',
    stderr: 'pipe',
    env: {
      ...process.env,
      NB2PROD_UI_PORT: port,
      JUPYTERLAB_GALATA_ROOT_DIR: ''
    }
  };
}

module.exports = {
  ...baseConfig,
  reporter: [['list'], ['html', { open: 'never' }]],
  timeout: 90 * 1000,
  // The UI suite shares the machine with other work: give each expectation room.
  expect: { timeout: 15 * 1000 },
  workers: 1,
  retries: 0,
  projects: [
    bench
      ? {
          name: 'bench',
          testMatch: 'bench_export.spec.ts',
          timeout: 600 * 1000,
          use: { ...use, baseURL: `http://localhost:${labPort}` }
        }
      : {
          name: 'jupyterlab',
          testMatch: 'nb2prod.spec.ts',
          use: { ...use, baseURL: `http://localhost:${labPort}` }
        },
    ...(hasNotebook7
      ? [
          {
            name: 'notebook7',
            testMatch: 'notebook7.spec.ts',
            use: { ...use, baseURL: `http://localhost:${notebookPort}` }
          }
        ]
      : [])
  ],
  webServer: [
    server('lab', labPort),
    ...(hasNotebook7 ? [server('notebook', notebookPort)] : [])
  ]
};
