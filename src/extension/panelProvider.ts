/**
 * The side panel (a webview view in the Distill Lens activity-bar container). Strict
 * content security policy with a nonce, no remote content, local resources limited to the
 * extension's dist/ and media/, and every message from the webview validated.
 */
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { modelDisplayName } from './settings';
import {
  parseFromPanel,
  type BaselineView,
  type PanelAnalysis,
  type RowDetails,
  type ToPanel,
} from '../shared/panelProtocol';
import { summarize } from '../core/tokenRows';
import { METRIC_KEYS, type MetricKey } from '../core/metricKeys';
import type { DocumentAnalysis, PlacedRow } from '../core/analysisState';
import type { DistillationRunner } from './distillationRunner';
import {
  acrossTokenizerSpans,
  analysisMetric,
  type AnalysisController,
  type StoredAnalysis,
} from './analysisController';
import type { AlignedSpan } from '../core/spanAlignment';
import type { ContinuationController, ContinuationRun } from './continuations';

export class PanelProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'distillLens.panel';
  private view?: vscode.WebviewView;
  /** the document the panel shows and its analysis */
  private shown?: { uri: vscode.Uri; analysis: StoredAnalysis };
  /** or the continuations it shows (the active editor is a continuation document) */
  private shownRun?: ContinuationRun;
  private readonly disposables: vscode.Disposable[] = [];
  /** messages the panel received, newest last (for tests and the log) */
  readonly received: string[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: AnalysisController,
    private readonly runner: DistillationRunner,
    private readonly continuations: ContinuationController,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      continuations.onDidChange((run) => this.onRunChange(run)),
      { dispose: () => clearTimeout(this.samplesPending) },
      runner.onDidChange(() => this.post({ type: 'showTraining', training: runner.training })),
      // edits fire this on every keystroke: the panel gets the text and rows once typing pauses
      controller.onDidChange((e) => this.updateSoon(e.byEdit ? 400 : 150)),
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
        else if (m.type === 'revealSampleToken') {
          if (m.samplesId === this.shownRun?.version)
            void this.continuations.reveal(this.shownRun, m.sample, m.index);
        } else if (m.type === 'chooseMetric')
          void vscode.workspace
            .getConfiguration('distillLens')
            .update('metric', m.metric, vscode.ConfigurationTarget.Global);
        else if (m.type === 'chooseColoring')
          void vscode.workspace
            .getConfiguration('distillLens')
            .update('colorBy', m.colorBy, vscode.ConfigurationTarget.Global);
        // row indices name rows of one version of the analysis: once the rows changed, they are ignored
        else if (m.analysisId !== this.shown?.analysis.placed.version)
          this.log.debug(
            `ignored ${m.type} for rows ${m.analysisId} (now ${this.shown?.analysis.placed.version})`,
          );
        else if (m.type === 'revealRow') void this.reveal(m.index);
        else if (m.type === 'selectRow') {
          const details = this.details(m.index);
          if (details) this.post({ type: 'rowDetails', details });
        }
      }),
      view.onDidChangeVisibility(() => {
        if (!view.visible) return;
        this.update();
        this.post({ type: 'showTraining', training: this.runner.training });
      }),
    );
  }

  /** Whether the panel's view is on screen. */
  get visible(): boolean {
    return this.view?.visible ?? false;
  }

  /** What the panel currently shows (for tests). */
  get state(): {
    uri?: string;
    rows: number;
    baseline: boolean;
    training?: string;
    samples?: string;
    /** the layer view's rows, and how many of them are rows of the shown heatmap */
    layers?: { rows: number; shown: number; before: boolean };
    /** a served teacher's support ("top-20+rest") */
    teacherSupport?: string;
    /** a pair whose tokenizers differ: the spans compared and each model's tokens in them */
    acrossTokenizers?: PanelAnalysis['acrossTokenizers'];
  } {
    const layers = this.shown && panelLayers(this.shown.analysis).layers;
    return {
      ...(layers
        ? {
            layers: {
              rows: layers.view.rows,
              shown: layers.rowIndex.filter((i) => i >= 0).length,
              before: !!layers.before,
            },
          }
        : {}),
      teacherSupport: this.shown?.analysis.parts[0]?.result.teacherSupport,
      ...(this.shown ? acrossTokenizersView(this.shown.analysis) : {}),
      samples: this.shownRun?.uri.toString(),
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
  private samplesPending?: NodeJS.Timeout;

  /** A streaming continuation changes ~20 times a second: the panel follows it every 250 ms, and at once when it ends. */
  private onRunChange(run: ContinuationRun): void {
    if (vscode.window.activeTextEditor?.document.uri.toString() !== run.uri.toString()) return;
    if (run.status !== 'sampling') {
      clearTimeout(this.samplesPending);
      this.samplesPending = undefined;
      this.update();
    } else
      this.samplesPending ??= setTimeout(() => {
        this.samplesPending = undefined;
        this.update();
      }, 250);
  }

  /** After a pause: edits fire on every key, and the panel follows once typing stops for a moment. */
  private updateSoon(delayMs = 150): void {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.update(), delayMs);
  }

  /** Sends the active document's analysis (kept when another kind of editor gets focus). */
  update(): void {
    clearTimeout(this.pending);
    const editor = vscode.window.activeTextEditor;
    if (editor) {
      const a = this.controller.get(editor.document.uri);
      this.shown = a ? { uri: editor.document.uri, analysis: a } : undefined;
      this.shownRun = this.continuations.get(editor.document.uri);
      this.highlighted = -1;
    }
    if (!this.view?.visible) return; // sent when it becomes visible
    this.post({
      type: 'showSamples',
      samples: this.shownRun ? this.continuations.panelSamples(this.shownRun) : null,
    });
    const settings = this.controller.currentSettings();
    // a pair whose tokenizers differ is shown by a metric defined on its spans
    const metric = this.shown ? analysisMetric(this.shown.analysis, settings) : settings.metric;
    const analysis = this.shown ? this.panelAnalysis(this.shown, metric) : null;
    this.post({
      type: 'showAnalysis',
      analysis,
      metric,
      colorBy: settings.colorBy,
      fixedMax: settings.colorScaleMaximum,
    });
  }

  /** The analysis as the panel draws it: spans and one metric per row, the rest on request. */
  private panelAnalysis(s: { uri: vscode.Uri; analysis: StoredAnalysis }, metric: MetricKey): PanelAnalysis {
    const a = s.analysis;
    const rows = a.placed.rows;
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === s.uri.toString());
    const text = doc?.getText() ?? a.documentText;
    const spans = new Array<number>(2 * rows.length);
    rows.forEach((r, i) => {
      spans[2 * i] = r.start;
      spans[2 * i + 1] = r.end;
    });
    const fresh = rows.map((_, i) => i).filter((i) => !rows[i].stale);
    const worst = [...fresh]
      .sort((x, y) => rows[y].row[metric] - rows[x].row[metric])
      .slice(0, 10)
      .map((i) => ({
        index: i,
        text: rows[i].row.text,
        value: rows[i].row[metric],
        teacherP: rows[i].row.teacher.p,
        studentP: rows[i].row.student.p,
      }));
    return {
      id: a.placed.version,
      text,
      from: a.placed.firstStart ?? 0,
      spans,
      values: rows.map((r) => Number(r.row[metric].toPrecision(6))),
      stale: rows.flatMap((r, i) => (r.stale ? [i] : [])),
      metric,
      summary: summarize(
        fresh.map((i) => rows[i].row),
        metric,
      ),
      worst,
      baseline: a.baseline
        ? baselineView(rows, a.baseline.placed, metric, modelDisplayName(a.baseline.settings.student))
        : undefined,
      teacher: modelDisplayName(a.settings.teacher),
      student: modelDisplayName(a.settings.student),
      modelPaths: `teacher: ${a.settings.teacher}\nstudent: ${a.settings.student}`,
      ...(a.parts[0]?.result.teacherSupport ? { teacherSupport: a.parts[0].result.teacherSupport } : {}),
      ...acrossTokenizersView(a),
      ...panelLayers(a),
      documentName: s.uri.path.split('/').pop() ?? s.uri.toString(),
    };
  }

  /** Everything about row `index` of the shown analysis, with the previous student's numbers. */
  private details(index: number): RowDetails | undefined {
    const s = this.shown;
    const r = s?.analysis.placed.rows[index];
    if (!s || !r) return undefined;
    const before = s.analysis.baseline?.placed.sameToken(r);
    return {
      analysisId: s.analysis.placed.version,
      index,
      row: { ...r.row, start: r.start, end: r.end },
      before:
        before && !before.stale
          ? (Object.fromEntries(METRIC_KEYS.map((k) => [k, before.row[k]])) as Record<MetricKey, number>)
          : null,
      stale: r.stale,
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
    if (!this.view?.visible) return;
    // a selected token (also what revealRow sets) is identified by its start, a cursor by its position
    const sel = e.selections[0];
    const offset = e.textEditor.document.offsetAt(sel.isEmpty ? sel.active : sel.start);
    const index = this.shown.analysis.placed.indexAt(offset);
    // the same token again (typing inside it, moving within it): nothing to send
    if (index === this.highlighted) return;
    this.highlighted = index;
    this.post({ type: 'highlightRow', index: index < 0 ? null : index, details: this.details(index) });
  }

  private highlighted = -1;

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

/** The previous student's values per row and the before/after numbers of the comparison. */
function baselineView(
  rows: PlacedRow[],
  earlier: DocumentAnalysis,
  metric: MetricKey,
  student: string,
): BaselineView {
  const values = rows.map((r) => {
    const b = r.stale ? undefined : earlier.sameToken(r);
    return b && !b.stale ? b.row[metric] : null;
  });
  const matched = rows.map((_, i) => i).filter((i) => values[i] !== null);
  const change = (i: number) => rows[i].row[metric] - values[i]!;
  const mean = (f: (i: number) => number) =>
    matched.reduce((sum, i) => sum + f(i), 0) / Math.max(1, matched.length);
  const byChange = [...matched].sort((x, y) => change(x) - change(y));
  const entry = (i: number) => ({ index: i, text: rows[i].row.text, change: change(i) });
  return {
    student,
    values: values.map((v) => (v === null ? null : Number(v.toPrecision(6)))),
    meanBefore: mean((i) => values[i]!),
    meanAfter: mean((i) => rows[i].row[metric]),
    fell: matched.filter((i) => change(i) < 0).length,
    rose: matched.filter((i) => change(i) > 0).length,
    fixedMost: byChange
      .filter((i) => change(i) < 0)
      .slice(0, 5)
      .map(entry),
    brokeMost: byChange
      .filter((i) => change(i) > 0)
      .reverse()
      .slice(0, 5)
      .map(entry),
  };
}

/** The layer view of the analysis's part that has one (Analyze Layers of Selection), its rows mapped to the panel's. */
function panelLayers(a: StoredAnalysis): Pick<PanelAnalysis, 'layers'> {
  const part = a.parts.find((p) => p.result.layers);
  if (!part) return {};
  const view = part.result.layers!;
  const shown = new Map(a.placed.rows.map((r, i) => [r.row, i]));
  const rows = part.result.rows.slice(0, view.rows);
  // the previous student's layer view of the same text (after Use as Student and Re-analyse)
  const before = a.baseline?.parts.find((p) => p.result.layers)?.result.layers;
  return {
    layers: {
      view,
      tokens: rows.map((r) => r.text),
      rowIndex: rows.map((r) => shown.get(r) ?? -1),
      ...(before ? { before } : {}),
    },
  };
}

/** A pair whose tokenizers differ: how many places both tokenizations start a token, of each model's tokens. */
function acrossTokenizersView(a: StoredAnalysis): Pick<PanelAnalysis, 'acrossTokenizers'> {
  const spans = acrossTokenizerSpans(a);
  if (spans === undefined) return {};
  const count = (pick: (s: AlignedSpan) => number) =>
    a.parts.reduce((n, p) => n + (p.result.spans ?? []).reduce((m, s) => m + pick(s), 0), 0);
  return {
    acrossTokenizers: {
      spans,
      teacherTokens: count((s) => s.teacherTokens),
      studentTokens: count((s) => s.studentTokens),
    },
  };
}
