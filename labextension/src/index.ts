/**
 * nb2prod's JupyterLab (and Notebook 7) extension.
 *
 * - a role dropdown in each code cell's toolbar, and role markers on the cells;
 * - the Pipeline panel in the left sidebar;
 * - the commands Export to Pipeline and Run Pipeline, in the notebook toolbar, the File menu
 *   (both declared in schema/plugin.json) and the command palette;
 * - Compile Pipeline for Kubeflow Pipelines / for Airflow, in the palette and the panel.
 *
 * It talks only to the nb2prod server extension (`/nb2prod/...`), never to the kernel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, IToolbarWidgetRegistry } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Menu } from '@lumino/widgets';

// These modules are needed as soon as the plugin activates: the markers, the cell toolbar
// factory and the panel are all registered at once.
/* eslint-disable jupyter/prefer-lazy-imports */
import { COMPILE_TARGETS, isCompileTarget, Nb2prodAPI } from './api';
import { goToCell } from './goto';
import { IRoleChoice, nameProblem, roleOptions, roleTitle } from './grammar';
import { pipelineIcon } from './icons';
import { CellMarkers } from './markers';
import { PipelineModel } from './model';
import { PipelinePanel } from './panel';
import { RoleControlWidget, setCellRole, undoable } from './rolecontrol';
import {
  executedStepOf,
  ReadOnlyDrive,
  RunNotebookDrive,
  runNotebookPath,
  runReportPath,
  viewPath
} from './rundrive';
import { CommandIDs } from './tokens';
/* eslint-enable jupyter/prefer-lazy-imports */

/**
 * A command without arguments.
 */
const NO_ARGS = { args: { type: 'object' as const, properties: {} } };

export { CommandIDs };

const PALETTE_CATEGORY = 'Pipeline';

/**
 * The plugin.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nb2prod:plugin',
  description:
    'Tag cells with pipeline roles, see the pipeline, export it and run it.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IToolbarWidgetRegistry, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const { commands, shell } = app;
    const api = new Nb2prodAPI(app.serviceManager.serverSettings);
    const model = new PipelineModel(api, tracker);

    // Role markers on every notebook's cells. An executed step notebook never starts a
    // kernel: it is a record of a run (this runs before its context asks for one).
    const onNotebook = (panel: NotebookPanel): CellMarkers => {
      if (executedStepOf(panel.context.path)) {
        panel.sessionContext.kernelPreference = {
          ...panel.sessionContext.kernelPreference,
          shouldStart: false,
          canStart: false,
          autoStartDefault: false
        };
      }
      return new CellMarkers(panel); // disposed with the panel
    };
    tracker.forEach(onNotebook);
    tracker.widgetAdded.connect((sender, panel) => onNotebook(panel));

    // The role dropdown of the cell toolbar (its place is declared in schema/plugin.json).
    toolbarRegistry?.addFactory<Cell>(
      'Cell',
      'nb2prod-role',
      cell => new RoleControlWidget(cell)
    );

    const current = (): NotebookPanel | null => tracker.currentWidget;

    // Executed step notebooks and the files of exported versions open read-only, from drives
    // of their own (see rundrive.ts).
    app.serviceManager.contents.addDrive(
      new RunNotebookDrive(app.serviceManager.serverSettings)
    );
    app.serviceManager.contents.addDrive(
      new ReadOnlyDrive(app.serviceManager.contents)
    );
    const open = (args: {
      path: string;
      factory?: string;
      kernelPreference?: { shouldStart: boolean; canStart: boolean };
    }) =>
      commands.execute('docmanager:open', args).catch(reason => {
        // docmanager shows its own error dialog; nothing must escape as an uncaught error.
        console.warn(`nb2prod: could not open ${args.path}`, reason);
        return null;
      });
    // Files nb2prod wrote (a version's, a compile's) open read-only, from the read-only drive:
    // nobody edits them by accident, and JupyterLab writes no checkpoint beside them.
    const openReadOnly = (path: string, factory?: string) =>
      void open({ path: viewPath(path), factory }).then(lockEditor);
    const openRunNotebook = (runId: string, step: string) =>
      open({
        path: runNotebookPath(runId, step),
        factory: 'Notebook',
        kernelPreference: { shouldStart: false, canStart: false }
      });
    // A command run from a button or a link: its errors are reported, never left uncaught.
    const run = (command: string) =>
      void commands.execute(command).catch(reason => {
        console.error(`nb2prod: ${command} failed`, reason);
      });

    // The Pipeline panel.
    const showPanel = () => {
      if (!panelWidget.isAttached) {
        shell.add(panelWidget, 'left', { rank: 650 });
      }
      shell.activateById(panelWidget.id);
    };
    const panelWidget = new PipelinePanel(model, {
      goToCell: ref => {
        const panel = model.panel;
        if (panel) {
          void goToCell(app, panel, ref);
        }
      },
      openRunNotebook: (runId, step) => void openRunNotebook(runId, step),
      openRunReport: (runId, step) =>
        void open({ path: runReportPath(runId, step), factory: 'HTML Viewer' }),
      openFile: path => void open({ path }),
      export: () => run(CommandIDs.exportPipeline),
      run: () => run(CommandIDs.runPipeline),
      compileMenu: anchor => {
        const box = anchor.getBoundingClientRect();
        compileMenu.open(box.left, box.bottom);
      },
      refresh: () => {
        void model.inspectNow();
        void model.refreshExported();
      },
      showTagReference: () => run(CommandIDs.tagReference),
      label: command =>
        command === 'compile'
          ? 'Compile Pipeline'
          : commands.label(
              command === 'export'
                ? CommandIDs.exportPipeline
                : CommandIDs.runPipeline
            )
    });
    shell.add(panelWidget, 'left', { rank: 650 });
    restorer?.add(panelWidget, 'nb2prod-pipeline');

    commands.addCommand(CommandIDs.exportPipeline, {
      label: 'Export to Pipeline…',
      caption: () =>
        model.exportBlocker ??
        'Save the notebook and export it as a new pipeline version',
      icon: args => (args.toolbar ? pipelineIcon : undefined),
      isEnabled: () => model.exportBlocker === null,
      describedBy: NO_ARGS,
      execute: async () => {
        const panel = current();
        if (panel && model.exportBlocker === null) {
          const { exportNotebook } = await import('./export');
          await exportNotebook(app, model, panel, { openReadOnly });
        }
      }
    });

    commands.addCommand(CommandIDs.runPipeline, {
      label: 'Run Pipeline…',
      caption: () =>
        model.runBlocker ??
        'Run an exported version of the pipeline, with parameter overrides',
      isEnabled: () => model.runBlocker === null,
      describedBy: NO_ARGS,
      execute: async () => {
        if (model.runBlocker !== null) {
          return;
        }
        const { runPipeline } = await import('./run');
        await runPipeline(
          app,
          model,
          current()?.context.path ?? null,
          showPanel
        );
      }
    });

    // Compile for an engine: one command, its target an argument (palette entries and the
    // panel's menu each pass one).
    commands.addCommand(CommandIDs.compile, {
      label: args => compileCommandLabel(args as any),
      caption: args =>
        model.compileBlocker ??
        `Compile the notebook's latest exported pipeline version for ` +
          `${isCompileTarget(args.target) ? COMPILE_TARGETS[args.target].engine : 'an engine'}, ` +
          'into build/ (the version itself is not changed)',
      isEnabled: args =>
        isCompileTarget(args.target) && model.compileBlocker === null,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            target: {
              type: 'string',
              enum: Object.keys(COMPILE_TARGETS),
              description: 'The engine: kfp (Kubeflow Pipelines) or airflow'
            },
            menu: {
              type: 'boolean',
              description: "Label the item for the panel's Compile menu"
            }
          },
          required: ['target']
        }
      },
      execute: async args => {
        const notebook = current()?.context.path;
        const target = args.target;
        if (!notebook || !isCompileTarget(target) || model.compileBlocker) {
          return;
        }
        const { compilePipeline } = await import('./compile');
        await compilePipeline(model, notebook, target, {
          openReadOnly,
          showFolder: path =>
            void commands
              .execute('filebrowser:go-to-path', { path: `${path}/` })
              .catch(reason =>
                console.warn(`nb2prod: could not show ${path}`, reason)
              ),
          export: () => run(CommandIDs.exportPipeline)
        });
      }
    });
    const compileMenu = new Menu({ commands });
    compileMenu.title.label = 'Compile Pipeline';
    compileMenu.addClass('nb2prod-CompileMenu');
    for (const target of Object.keys(COMPILE_TARGETS)) {
      compileMenu.addItem({
        command: CommandIDs.compile,
        args: { target, menu: true }
      });
    }

    commands.addCommand(CommandIDs.showPanel, {
      label: 'Show Pipeline Panel',
      caption: 'Show the pipeline the current notebook defines',
      describedBy: NO_ARGS,
      execute: showPanel
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Pipeline Outline',
      caption: 'Inspect the current notebook again',
      isEnabled: () => current() !== null,
      describedBy: NO_ARGS,
      execute: () => model.inspectNow()
    });

    commands.addCommand(CommandIDs.tagReference, {
      label: 'Pipeline Tag Reference',
      caption: 'Every pipeline tag and what it does',
      describedBy: NO_ARGS,
      execute: async () => {
        const { showTagReference } = await import('./reference');
        await showTagReference();
      }
    });

    commands.addCommand(CommandIDs.setRole, {
      label: args => roleCommandLabel(args as any),
      caption: 'Set the pipeline role of the selected code cells',
      describedBy: {
        args: {
          type: 'object',
          properties: {
            role: {
              type: 'string',
              description: 'A role of nb2prod/grammar.json, or "" for none'
            },
            name: { type: 'string', description: 'The step name, if any' },
            askName: {
              type: 'boolean',
              description: 'Ask for the step name'
            }
          }
        }
      },
      isEnabled: () => current() !== null,
      execute: async args => {
        const panel = current();
        if (!panel) {
          return;
        }
        const role = (args.role as string) || null;
        let name = (args.name as string | undefined) ?? null;
        if (role && args.askName && !name) {
          const { askName } = await import('./export');
          name = await askName({
            title: `${roleTitle(role)} Step`,
            label: 'Step name',
            hint: `The cell starts the step ${role}:NAME.`,
            accept: 'Set',
            initial: '',
            check: nameProblem
          });
          if (!name) {
            return;
          }
        }
        setSelectedRoles(panel, { role, name });
      }
    });

    // Palette entries, one per choice of the dropdown.
    if (palette) {
      for (const command of [
        CommandIDs.exportPipeline,
        CommandIDs.runPipeline,
        CommandIDs.showPanel,
        CommandIDs.refresh,
        CommandIDs.tagReference
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
      for (const target of Object.keys(COMPILE_TARGETS)) {
        palette.addItem({
          command: CommandIDs.compile,
          args: { target },
          category: PALETTE_CATEGORY
        });
      }
      for (const option of roleOptions()) {
        palette.addItem({
          command: CommandIDs.setRole,
          args: { role: option.role ?? '', askName: option.askName },
          category: PALETTE_CATEGORY
        });
      }
    }

    // The same choices in the code cells' context menu.
    const roleMenu = new Menu({ commands });
    roleMenu.title.label = 'Pipeline Role';
    for (const option of roleOptions()) {
      roleMenu.addItem({
        command: CommandIDs.setRole,
        args: { role: option.role ?? '', askName: option.askName, menu: true }
      });
    }
    app.contextMenu.addItem({
      type: 'submenu',
      submenu: roleMenu,
      selector: '.jp-Notebook .jp-CodeCell',
      rank: 12
    });

    model.changed.connect(() => {
      commands.notifyCommandChanged(CommandIDs.exportPipeline);
      commands.notifyCommandChanged(CommandIDs.runPipeline);
      commands.notifyCommandChanged(CommandIDs.compile);
      commands.notifyCommandChanged(CommandIDs.refresh);
    });
    tracker.currentChanged.connect(() => {
      commands.notifyCommandChanged(CommandIDs.setRole);
    });
  }
};

/**
 * Make a file editor read-only (its drive already refuses to save it): nobody edits an
 * exported version by accident. Once its document is loaded, as the file editor applies its
 * settings until then.
 */
function lockEditor(widget: unknown): void {
  const doc = widget as {
    context?: { ready: Promise<void> };
    content?: { editor?: { setOption?(name: string, value: unknown): void } };
  } | null;
  const lock = () => doc?.content?.editor?.setOption?.('readOnly', true);
  lock();
  void doc?.context?.ready.then(lock);
}

/**
 * The label of the compile command for its arguments: in the panel's Compile menu, the engine
 * and the file it gets; elsewhere (the palette), the whole action.
 */
function compileCommandLabel(args: {
  target?: unknown;
  menu?: boolean;
}): string {
  if (!isCompileTarget(args.target)) {
    return 'Compile Pipeline';
  }
  const { engine, main } = COMPILE_TARGETS[args.target];
  return args.menu ? `${engine} (${main})` : `Compile Pipeline for ${engine}`;
}

/**
 * The label of the set-role command for its arguments.
 */
function roleCommandLabel(args: {
  role?: string;
  askName?: boolean;
  menu?: boolean;
}): string {
  const title = args.role ? roleTitle(args.role) : '';
  if (args.menu) {
    return args.role ? `${title}${args.askName ? ' (named)…' : ''}` : 'None';
  }
  if (!args.role) {
    return 'Clear Cell Pipeline Role';
  }
  return `Set Cell Role: ${title}${args.askName ? ' (named)…' : ''}`;
}

/**
 * Set the role of every selected code cell (or the active one) in one undoable edit.
 */
function setSelectedRoles(panel: NotebookPanel, choice: IRoleChoice): void {
  const notebook = panel.content;
  const cells = notebook.widgets.filter(
    (cell, i) =>
      cell.model.type === 'code' &&
      (notebook.isSelectedOrActive(cell) || i === notebook.activeCellIndex)
  );
  const shared = notebook.model?.sharedModel;
  const apply = () => cells.forEach(cell => setCellRole(cell.model, choice));
  if (shared) {
    undoable(shared, apply);
  } else {
    apply();
  }
}

export default plugin;
