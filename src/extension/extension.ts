/**
 * Extension entry point. Activation only registers commands, providers and views: the model
 * process (and ONNX Runtime) starts on the first analysis.
 */
import * as vscode from 'vscode';
import { METRIC_KEYS, METRIC_LABELS } from '../core/metricKeys';
import {
  AnalysisController,
  documentChunks,
  paragraphAt,
  SERVED_TEACHER_KEY_SECRET,
  type StoredAnalysis,
} from './analysisController';
import { TokenHoverProvider } from './hoverProvider';
import { PanelProvider } from './panelProvider';
import { RuntimeHost } from './runtimeHost';
import { chooseModel } from './modelPicker';
import { exportReport, exportSamples } from './exportReport';
import { DistillationRunner, type DistillArgs } from './distillationRunner';
import { ContinuationController, type ContinuationRun } from './continuations';
import { DEMO_TEXT } from '../models/builtInModels';

/**
 * What the Analyze commands return: a few numbers, never the analysis itself, because a
 * command run from the palette sends its result to the window (megabytes for a large file).
 */
export interface AnalysisOutcome {
  document: string;
  tokens: number;
}

function outcome(doc: vscode.TextDocument, result: StoredAnalysis | undefined): AnalysisOutcome | undefined {
  return result && { document: doc.uri.toString(), tokens: result.placed.rows.length };
}

/** What the Continue with … commands return (the run itself stays in the controller). */
export interface ContinuationOutcome {
  document: string;
  status: ContinuationRun['status'];
  tokens: number;
}

function continuationOutcome(run: ContinuationRun | undefined): ContinuationOutcome | undefined {
  return run && { document: run.uri.toString(), status: run.status, tokens: run.streamedTokens };
}

/** What tests reach through `extension.exports`. */
export interface DistillLensApi {
  controller: AnalysisController;
  panel: PanelProvider;
  distillation: DistillationRunner;
  continuations: ContinuationController;
  /** the extension's secret storage (a served teacher's API key) */
  secrets: vscode.SecretStorage;
}

export function activate(context: vscode.ExtensionContext): DistillLensApi {
  const log = vscode.window.createOutputChannel('Distill Lens', { log: true });
  const runtime = new RuntimeHost(context, log);
  const controller = new AnalysisController(runtime, log, context.secrets);
  const continuations = new ContinuationController(runtime, controller, log);
  const distillation = new DistillationRunner(controller, runtime, continuations, log);
  const panel = new PanelProvider(context.extensionUri, controller, distillation, continuations, log);
  const activeEditor = () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) vscode.window.showWarningMessage('Distill Lens: open a text editor first.');
    return editor;
  };
  /** The sample the walkthrough opened (Open the Sample Text), while it is open. */
  let sample: vscode.TextDocument | undefined;
  /**
   * The editor a command from the Welcome page acts on: the active text editor, else a
   * visible one, else the walkthrough's sample shown again with all of it selected.
   */
  const editorForCommand = async (): Promise<vscode.TextEditor | undefined> => {
    const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
    if (editor) return editor;
    if (sample && !sample.isClosed) {
      const shown = await vscode.window.showTextDocument(sample, { preview: false });
      shown.selection = new vscode.Selection(
        sample.positionAt(0),
        sample.positionAt(sample.getText().length),
      );
      return shown;
    }
    return activeEditor();
  };
  context.subscriptions.push(
    log,
    runtime,
    controller,
    distillation,
    continuations,
    panel,
    vscode.window.registerWebviewViewProvider(PanelProvider.viewId, panel, {
      webviewOptions: { retainContextWhenHidden: false },
    }),
    // every document, saved or untitled (the walkthrough's sample is untitled)
    vscode.languages.registerHoverProvider('*', new TokenHoverProvider(controller)),
    vscode.commands.registerCommand('distillLens.analyzeSelection', async () => {
      const editor = await editorForCommand();
      if (!editor) return;
      const ranges = editor.selections.every((s) => s.isEmpty)
        ? [paragraphAt(editor.document, editor.selection.active)]
        : editor.selections.filter((s) => !s.isEmpty);
      const result = await controller.analyze(
        editor,
        ranges,
        ranges.length > 1 ? 'analysing the selections' : 'analysing',
      );
      // the walkthrough's step is done when an analysis succeeded, not when the button was pressed
      if (result) void vscode.commands.executeCommand('setContext', 'distillLens.analysed', true);
      return outcome(editor.document, result);
    }),
    // the selection with the layer view (logit lens, CKA): the panel's Layers section, the hover's settling line
    vscode.commands.registerCommand('distillLens.analyzeLayers', async () => {
      const editor = await editorForCommand();
      if (!editor) return;
      const range = editor.selection.isEmpty
        ? paragraphAt(editor.document, editor.selection.active)
        : editor.selection;
      const result = await controller.analyze(editor, [range], 'analysing the layers', { layers: true });
      if (result) void vscode.commands.executeCommand('distillLens.openPanel');
      return outcome(editor.document, result);
    }),
    vscode.commands.registerCommand('distillLens.analyzeDocument', async () => {
      const editor = activeEditor();
      if (!editor) return;
      const result = await controller.analyze(
        editor,
        documentChunks(editor.document),
        `analysing ${editor.document.uri.path.split('/').pop()}`,
      );
      return outcome(editor.document, result);
    }),
    vscode.commands.registerCommand('distillLens.clear', () =>
      controller.clear(vscode.window.activeTextEditor?.document.uri),
    ),
    vscode.commands.registerCommand('distillLens.chooseMetric', async (key?: string) => {
      const metric =
        key && (METRIC_KEYS as readonly string[]).includes(key)
          ? key
          : (
              await vscode.window.showQuickPick(
                METRIC_KEYS.map((k) => ({
                  label: k,
                  description: METRIC_LABELS[k],
                  picked: k === controller.metric,
                })),
                { title: 'Distill Lens: colour by metric' },
              )
            )?.label;
      if (metric)
        await vscode.workspace
          .getConfiguration('distillLens')
          .update('metric', metric, vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand('distillLens.chooseTeacher', () => chooseModel('teacher')),
    vscode.commands.registerCommand('distillLens.chooseStudent', () => chooseModel('student')),
    vscode.commands.registerCommand('distillLens.setServedTeacherApiKey', async () => {
      // kept in the editor's secret storage, never in a settings file; empty removes it
      const key = await vscode.window.showInputBox({
        title: 'Distill Lens: API key of the served teacher',
        prompt:
          'Sent as "Authorization: Bearer …" to the server in distillLens.teacher. Leave empty to remove it.',
        password: true,
        ignoreFocusOut: true,
      });
      if (key === undefined) return;
      if (key.trim()) await context.secrets.store(SERVED_TEACHER_KEY_SECRET, key.trim());
      else await context.secrets.delete(SERVED_TEACHER_KEY_SECRET);
      void vscode.window.showInformationMessage(
        key.trim()
          ? 'Distill Lens: the served teacher’s API key is stored.'
          : 'Distill Lens: the served teacher’s API key is removed.',
      );
    }),
    vscode.commands.registerCommand('distillLens.openSample', async () => {
      // a declaration like the built-in models were trained on, selected and ready to analyse
      const doc = await vscode.workspace.openTextDocument({ language: 'typescript', content: DEMO_TEXT });
      sample = doc;
      const editor = await vscode.window.showTextDocument(doc);
      editor.selection = new vscode.Selection(doc.positionAt(0), doc.positionAt(doc.getText().length));
      return editor;
    }),
    vscode.commands.registerCommand('distillLens.runDistillation', async (args?: DistillArgs) => {
      const record = await distillation.run(args ?? {});
      if (record) void vscode.commands.executeCommand('setContext', 'distillLens.distilled', true);
      return record;
    }),
    vscode.commands.registerCommand('distillLens.continueWithStudent', async () =>
      continuationOutcome(await continuations.continueWith('student')),
    ),
    vscode.commands.registerCommand('distillLens.continueWithTeacher', async () =>
      continuationOutcome(await continuations.continueWith('teacher')),
    ),
    vscode.commands.registerCommand('distillLens.continueWithMix', async () =>
      continuationOutcome(await continuations.continueWith('mix')),
    ),
    vscode.commands.registerCommand('distillLens.compareBeforeAfter', () =>
      distillation.compareBeforeAfter(),
    ),
    vscode.commands.registerCommand('distillLens.compareContinuations', async () => {
      const pair = await continuations.compare();
      return pair && [continuationOutcome(pair.teacher), continuationOutcome(pair.student)];
    }),
    vscode.commands.registerCommand('distillLens.openPanel', () =>
      vscode.commands.executeCommand(`${PanelProvider.viewId}.focus`),
    ),
    vscode.commands.registerCommand(
      'distillLens.exportReport',
      async (format?: 'json' | 'csv' | 'html', target?: vscode.Uri) => {
        const editor = activeEditor();
        const a = editor && controller.get(editor.document.uri);
        const run = editor && continuations.get(editor.document.uri);
        if (!editor || (!a && !run?.report)) {
          vscode.window.showWarningMessage(
            run
              ? 'Distill Lens: this continuation has not been scored (it is still sampling, or was cancelled).'
              : 'Distill Lens: analyse this document first (Distill Lens: Analyze Selection).',
          );
          return;
        }
        const written = a
          ? await exportReport(editor.document, a, format, target)
          : await exportSamples(editor.document, run!.report!, format, target);
        if (written && !target)
          vscode.window.showInformationMessage(`Distill Lens: report written to ${written.fsPath}`);
        return written;
      },
    ),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('distillLens')) return;
      // colours, legend and panel follow metric and scale changes at once; model and
      // metric-option changes apply to the next analysis
      controller.repaint();
      panel.update();
    }),
  );
  return { controller, panel, distillation, continuations, secrets: context.secrets };
}

export function deactivate(): void {}
