/**
 * The side panel (a webview view in the Distill Lens activity-bar container). Strict
 * content security policy with a nonce, no remote content, local resources limited to the
 * extension's dist/ and media/, and every message from the webview validated.
 */
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { modelDisplayName } from './settings';
import { parseFromPanel, type PanelAnalysis, type ToPanel } from '../shared/panelProtocol';
import { summarize } from '../core/tokenRows';
import { METRIC_KEYS, type MetricKey } from '../core/metricKeys';
import type { DistillationRunner } from './distillationRunner';
import type { AnalysisController, StoredAnalysis } from './analysisController';

export class PanelProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'distillLens.panel';
  private view?: vscode.WebviewView;
  /** the document the panel shows, and its rows in panel order (for reveal) */
  private shown?: { uri: vscode.Uri; analysis: StoredAnalysis };
  private readonly disposables: vscode.Disposable[] = [];
  /** messages the panel received, newest last (for tests and the log) */
  readonly received: string[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: AnalysisController,
    private readonly runner: DistillationRunner,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      runner.onDidChange(() => this.post({ type: 'showTraining', training: runner.training })),
      // edits fire this on every keystroke: the panel gets the text and rows once typing pauses
      controller.onDidChange(() => this.updateSoon()),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateSoon()),
      { dispose: () => clearTimeout(this.pending) },
      vscode.window.onDidChangeTextEditorSelection((e) => this.onSelection(e)),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const webview = view.webview;
    webview.options = {
      enableScripts: true,
      localResourceRoots: [
        vscode.Uri.joinPath(this.extensionUri, 'dist'),
        vscode.Uri.joinPath(this.extensionUri, 'media'),
      ],
    };
    webview.html = this.html(webview);
    this.disposables.push(
      webview.onDidReceiveMessage((raw) => {
        const rows = this.shown?.analysis.placed.rows.length ?? 0;
        const m = parseFromPanel(raw, rows);
        if (!m) {
          this.log.warn(`ignored a malformed message from the panel: ${JSON.stringify(raw)?.slice(0, 200)}`);
          return;
        }
        this.received.push(m.type);
        if (m.type === 'ready') {
          this.update();
          this.post({ type: 'showTraining', training: this.runner.training });
        } else if (m.type === 'useDistilled') void this.runner.useResult();
        else if (m.type === 'chooseMetric')
          void vscode.workspace
            .getConfiguration('distillLens')
            .update('metric', m.metric, vscode.ConfigurationTarget.Global);
        else if (m.type === 'revealRow') void this.reveal(m.index);
      }),
      view.onDidChangeVisibility(() => {
        if (!view.visible) return;
        this.update();
        this.post({ type: 'showTraining', training: this.runner.training });
      }),
    );
  }

  /** What the panel currently shows (for tests). */
  /** Whether the panel's view is on screen. */
  get visible(): boolean {
    return this.view?.visible ?? false;
  }

  get state(): { uri?: string; rows: number; baseline: boolean; training?: string } {
    return {
      uri: this.shown?.uri.toString(),
      rows: this.shown?.analysis.placed.rows.length ?? 0,
      baseline: !!this.shown?.analysis.baseline,
      training: this.runner.training?.status,
    };
  }

  private post(m: ToPanel): void {
    void this.view?.webview.postMessage(m);
  }

  private pending?: NodeJS.Timeout;

  private updateSoon(): void {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.update(), 150);
  }

  /** Sends the active document's analysis (kept when another kind of editor gets focus). */
  update(): void {
    clearTimeout(this.pending);
    const editor = vscode.window.activeTextEditor;
    if (editor) {
      const a = this.controller.get(editor.document.uri);
      this.shown = a ? { uri: editor.document.uri, analysis: a } : undefined;
    }
    if (!this.view?.visible) return; // sent when it becomes visible
    const settings = this.controller.currentSettings();
    this.post({
      type: 'showAnalysis',
      analysis: this.shown ? this.panelAnalysis(this.shown) : null,
      metric: settings.metric,
      fixedMax: settings.colorScaleMaximum,
    });
  }

  private panelAnalysis(s: { uri: vscode.Uri; analysis: StoredAnalysis }): PanelAnalysis {
    const a = s.analysis;
    // rows as placed now (edits drop and shift them), with spans in document offsets
    const rows = a.placed.rows.map((p) => ({ ...p.row, start: p.start, end: p.end }));
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === s.uri.toString());
    let baseline: PanelAnalysis['baseline'];
    if (a.baseline) {
      // the same token in both analyses: same place and same target
      const key = (start: number, end: number, target: number) => `${start}:${end}:${target}`;
      const before = new Map(a.baseline.placed.rows.map((p) => [key(p.start, p.end, p.row.target), p.row]));
      baseline = {
        student: modelDisplayName(a.baseline.settings.student),
        rows: rows.map((r) => {
          const b = before.get(key(r.start, r.end, r.target));
          return b
            ? (Object.fromEntries(METRIC_KEYS.map((k) => [k, b[k]])) as Record<MetricKey, number>)
            : null;
        }),
      };
    }
    return {
      baseline,
      text: doc?.getText() ?? a.documentText,
      rows,
      summary: summarize(rows, a.settings.metric),
      teacher: modelDisplayName(a.settings.teacher),
      student: modelDisplayName(a.settings.student),
      modelPaths: `teacher: ${a.settings.teacher}\nstudent: ${a.settings.student}`,
      documentName: s.uri.path.split('/').pop() ?? s.uri.toString(),
    };
  }

  private async reveal(index: number): Promise<void> {
    if (!this.shown) return;
    const row = this.shown.analysis.placed.rows[index];
    const editor = await vscode.window.showTextDocument(this.shown.uri, {
      preserveFocus: false,
      preview: false,
    });
    const range = new vscode.Range(
      editor.document.positionAt(row.start),
      editor.document.positionAt(row.end),
    );
    editor.selection = new vscode.Selection(range.start, range.end);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private onSelection(e: vscode.TextEditorSelectionChangeEvent): void {
    if (!this.shown || e.textEditor.document.uri.toString() !== this.shown.uri.toString()) return;
    // a selected token (also what revealRow sets) is identified by its start, a cursor by its position
    const sel = e.selections[0];
    const offset = e.textEditor.document.offsetAt(sel.isEmpty ? sel.active : sel.start);
    const rows = this.shown.analysis.placed.rows;
    const hit = this.shown.analysis.placed.rowAt(offset);
    this.post({ type: 'highlightRow', index: hit ? rows.indexOf(hit) : null });
  }

  private html(webview: vscode.Webview): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'panel.css'));
    const csp = [
      `default-src 'none'`,
      `style-src ${webview.cspSource} 'nonce-${nonce}'`,
      `script-src 'nonce-${nonce}'`,
      `font-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en"><head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}" nonce="${nonce}">
<title>Distill Lens</title>
</head><body>
<div id="app"><p class="empty">Run <b>Distill Lens: Analyze Selection</b> to see the token heatmap here.</p></div>
<script nonce="${nonce}" src="${script}"></script>
</body></html>`;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
