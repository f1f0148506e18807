/** The extension's one model process, started on first use (activation stays cheap). */
import * as vscode from 'vscode';
import { RuntimeClient } from '../host/runtimeClient';

export class RuntimeHost implements vscode.Disposable {
  private client?: RuntimeClient;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get(): RuntimeClient {
    if (!this.client) {
      this.log.info('starting the model process');
      this.client = new RuntimeClient({
        script: this.context.asAbsolutePath('dist/runtime.js'),
        log: (line) => this.log.info(`[model process] ${line}`),
      });
    }
    return this.client;
  }

  dispose(): void {
    void this.client?.dispose();
  }
}
