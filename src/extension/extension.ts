/**
 * Extension entry point. Activation only registers commands: the model process (and ONNX
 * Runtime) starts on the first analysis. The editor surfaces come with the next issue.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { RuntimeClient } from '../runtime/runtimeClient';
import { DEFAULT_METRIC_OPTIONS } from '../core/tokenRows';

let client: RuntimeClient | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Distill Lens', { log: true });
  context.subscriptions.push(log);
  const runtime = () => (client ??= new RuntimeClient({ script: path.join(context.extensionPath, 'dist', 'runtime.js'), log: (l) => log.info(l) }));
  context.subscriptions.push(
    vscode.commands.registerCommand('distillLens.analyzeSelection', async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor) return;
      const cfg = vscode.workspace.getConfiguration('distillLens');
      const text = editor.document.getText(editor.selection.isEmpty ? undefined : editor.selection);
      try {
        const result = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: 'Distill Lens', cancellable: true },
          (progress, token) => {
            const abort = new AbortController();
            token.onCancellationRequested(() => abort.abort());
            return runtime().inspect(
              { teacher: cfg.get('teacher', ''), student: cfg.get('student', ''), text, options: DEFAULT_METRIC_OPTIONS, metric: 'fkl', device: cfg.get('device', 'cpu'), maxTokens: 8192 },
              { signal: abort.signal, onProgress: (message) => progress.report({ message }) },
            );
          },
        );
        log.info(`analysed ${result.rows.length} tokens: mean fkl ${result.summary.mean.fkl}`);
        vscode.window.showInformationMessage(`Distill Lens: ${result.rows.length} tokens, mean forward KL ${result.summary.mean.fkl.toFixed(4)}`);
      } catch (e) {
        vscode.window.showErrorMessage(`Distill Lens: ${(e as Error).message}`);
      }
    }),
    { dispose: () => void client?.dispose() },
  );
}

export function deactivate(): Promise<void> | undefined {
  return client?.dispose();
}
