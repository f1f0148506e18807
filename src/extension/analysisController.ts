/**
 * Runs analyses in the model process and owns what the editor shows for them: per document
 * the placed rows, the decorations of visible editors, the status bar legend, and the panel.
 */
import { parseServedTeacher } from '../models/servedTeacher';
import * as vscode from 'vscode';
import { DocumentAnalysis, EditLog } from '../core/analysisState';
import { METRIC_LABELS, shownMetric, type MetricKey } from '../core/metricKeys';
import { CancelledError, ModelLoadError } from '../core/errors';
import { HeatDecorations, type PaintedToken } from './heatDecorations';
import { changeClass, heatBand, heatRange, maxAbsChange } from '../report/heatmap';
import { modelDisplayName, readSettings, type Settings } from './settings';
import type { RuntimeHost } from './runtimeHost';
import { formatNumber } from '../core/formatNumber';
import type { InspectResult } from '../shared/protocol';

export interface StoredAnalysis {
  placed: DocumentAnalysis;
  /** results of each analysed chunk, with the document offset where its text starts */
  parts: { result: InspectResult; baseOffset: number; text: string }[];
  settings: Settings;
  /** the whole document as it was analysed */
  documentText: string;
  /** the same text analysed with the previous student (after Run Distillation), for before/after */
  baseline?: StoredAnalysis;
}

/** The colours of an analysis: its scale and a colour class per row (of `placed.rows`). */
interface Coloring {
  byChange: boolean;
  range: [number, number];
  classes: string[];
}

/** Lines painted above and below the visible ones (the rest is painted when scrolled near). */
const PAINT_MARGIN_LINES = 120;

/** Texts per Analyze Document request: about 1500 tokens of prose. */
const DOCUMENT_CHUNK_CHARS = 6000;

/** The secret under which Set Served Teacher API Key keeps the key (never in settings files). */
export const SERVED_TEACHER_KEY_SECRET = 'distillLens.servedTeacherApiKey';

export class AnalysisController implements vscode.Disposable {
  private readonly analyses = new Map<string, StoredAnalysis>();
  readonly decorations = new HeatDecorations();
  /** the last error shown to the user (notifications cannot be read back in tests) */
  lastError?: string;
  readonly statusBar = vscode.window.createStatusBarItem(
    'distillLens.legend',
    vscode.StatusBarAlignment.Right,
    100,
  );
  private readonly changed = new vscode.EventEmitter<{ uri?: vscode.Uri; byEdit?: boolean }>();
  /** fires when the analysis of a document changes (`byEdit`: because its text was edited) */
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [];

  /** The served teacher's API key from the secret storage (Set Served Teacher API Key…). */
  async servedTeacherKey(): Promise<string | undefined> {
    return this.secrets?.get(SERVED_TEACHER_KEY_SECRET);
  }

  constructor(
    private readonly runtime: RuntimeHost,
    private readonly log: vscode.LogOutputChannel,
    /** where a served teacher's API key is kept (Set Served Teacher API Key) */
    private readonly secrets?: vscode.SecretStorage,
  ) {
    this.statusBar.name = 'Distill Lens legend';
    this.statusBar.command = 'distillLens.openPanel';
    this.disposables.push(
      this.statusBar,
      this.decorations,
      this.changed,
      vscode.window.onDidChangeVisibleTextEditors(() => this.repaint()),
      vscode.window.onDidChangeActiveTextEditor(() => this.repaint()),
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e)),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => this.onScroll(e)),
      vscode.workspace.onDidCloseTextDocument((d) => this.forget(d.uri)),
    );
  }

  get(uri: vscode.Uri): StoredAnalysis | undefined {
    return this.analyses.get(uri.toString());
  }

  get metric(): MetricKey {
    return readSettings().metric;
  }

  currentSettings(): Settings {
    return readSettings();
  }

  /** Analyses `range` of the editor's document (or the whole document in chunks). */
  async analyze(
    editor: vscode.TextEditor,
    ranges: vscode.Range[],
    title: string,
    o: { quiet?: boolean; layers?: boolean } = {},
  ): Promise<StoredAnalysis | undefined> {
    const settings = readSettings();
    if (!settings.teacher || !settings.student) {
      const missing = !settings.teacher ? 'teacher' : 'student';
      const choose = missing === 'teacher' ? 'Choose Teacher…' : 'Choose Student…';
      this.lastError = `no ${missing} model is set`;
      // not awaited: the command ends now; the button opens the picker whenever it is clicked
      void vscode.window
        .showErrorMessage(`Distill Lens: no ${missing} model is set.`, choose)
        .then((pick) => {
          if (pick)
            void vscode.commands.executeCommand(
              missing === 'teacher' ? 'distillLens.chooseTeacher' : 'distillLens.chooseStudent',
            );
        });
      return undefined;
    }
    const doc = editor.document;
    // blank ranges join the range before them (so a document's last part reaches its end)
    const pieces: { start: number; end: number }[] = [];
    for (const r of ranges) {
      const piece = { start: doc.offsetAt(r.start), end: doc.offsetAt(r.end) };
      const blank = doc.getText(r).trim().length === 0;
      const previous = pieces[pieces.length - 1];
      if (!blank) pieces.push(piece);
      else if (previous && piece.start - previous.end <= 1) previous.end = piece.end;
    }
    if (pieces.length === 0) {
      vscode.window.showWarningMessage(
        'Distill Lens: there is no text to analyse here. Select some text first.',
      );
      return undefined;
    }
    // edits made while the analysis runs: finished parts move with them, a part edited while
    // it was being analysed is analysed again with its new text
    const edits = new EditLog();
    const watch = vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document !== doc) return;
      for (const c of e.contentChanges)
        edits.record({ start: c.rangeOffset, end: c.rangeOffset + c.rangeLength, newLength: c.text.length });
    });
    const textOf = ([start, end]: [number, number]) =>
      doc.getText(new vscode.Range(doc.positionAt(start), doc.positionAt(end)));
    let stored: StoredAnalysis | undefined;
    const results: InspectResult[] = [];
    this.running.add(doc.uri.toString());
    let cancelled = false;
    let skipped = 0;
    try {
      await vscode.window.withProgress(
        {
          // a re-analysis on idle shows in the status bar, not as a notification over the text
          location: o.quiet ? vscode.ProgressLocation.Window : vscode.ProgressLocation.Notification,
          title: `Distill Lens: ${title}`,
          cancellable: true,
        },
        async (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => abort.abort());
          for (const [i, piece] of pieces.entries()) {
            const prefix = pieces.length > 1 ? `part ${i + 1}/${pieces.length}: ` : '';
            // at most three tries when the user keeps typing inside this part
            let done = false;
            for (let attempt = 0; attempt < 3 && !done; attempt++) {
              if (token.isCancellationRequested) throw new CancelledError();
              const range = edits.coverRange(piece.start, piece.end, 0);
              const text = textOf(range);
              const sentAt = edits.length;
              const result = await this.runtime.get().inspect(
                {
                  teacher: settings.teacher,
                  student: settings.student,
                  text,
                  options: settings.options,
                  metric: settings.metric,
                  device: settings.device,
                  maxTokens: settings.maxTokens,
                  allowRemote: settings.allowRemoteModels,
                  dtype: settings.dtype,
                  hubCacheDir: settings.hubCacheDir,
                  ...(o.layers ? { layers: true } : {}),
                  // a pair whose tokenizers differ: compared on spans, each student token painted by its span
                  acrossTokenizers: true,
                  ...(parseServedTeacher(settings.teacher)
                    ? {
                        teacherTopK: settings.servedTeacherTopK,
                        teacherApiKey: await this.servedTeacherKey(),
                      }
                    : {}),
                },
                {
                  signal: abort.signal,
                  onProgress: (message) => progress.report({ message: prefix + message, increment: 0 }),
                },
              );
              const now = edits.mapRange(range[0], range[1], sentAt);
              if (!now || textOf(now) !== text) continue; // edited meanwhile: again, with the new text
              // each part is painted as soon as it is done
              stored = this.commitPart(
                doc,
                stored,
                settings,
                pieces.map((p) => edits.coverRange(p.start, p.end, 0)),
                {
                  result,
                  baseOffset: now[0],
                  text,
                },
              );
              results.push(result);
              done = true;
            }
            if (!done) skipped++; // still being typed in after three tries: said at the end
            progress.report({ increment: 100 / pieces.length });
          }
        },
      );
    } catch (e) {
      if (e instanceof CancelledError) cancelled = true;
      else this.reportError(e);
    } finally {
      watch.dispose();
      this.running.delete(doc.uri.toString());
    }
    this.reportRun(doc, settings, pieces.length, results, cancelled);
    // a re-analysis on idle comes back by itself once typing stops: no warning for it
    if (skipped > 0 && !o.quiet)
      vscode.window.showWarningMessage(
        `Distill Lens: ${skipped} part${skipped > 1 ? 's' : ''} changed every time ${skipped > 1 ? 'they were' : 'it was'} analysed and ${skipped > 1 ? 'are' : 'is'} not coloured; run Analyze Document again when you stop typing.`,
      );
    return cancelled ? undefined : stored;
  }

  /**
   * Adds one analysed part to the document's analysis and repaints. The first part of a run
   * replaces what was there inside the run's ranges; outside them the heatmap stays when it
   * was made with the same models and options (otherwise the numbers would not compare).
   */
  private commitPart(
    doc: vscode.TextDocument,
    stored: StoredAnalysis | undefined,
    settings: Settings,
    runRanges: [number, number][],
    part: StoredAnalysis['parts'][number],
  ): StoredAnalysis {
    if (!stored) {
      const previous = this.analyses.get(doc.uri.toString());
      const sameModels = previous && sameAnalysisSettings(previous.settings, settings);
      const outside = (start: number, end: number) => runRanges.every(([a, b]) => end <= a || start >= b);
      stored = {
        placed: sameModels ? previous.placed.without(runRanges) : new DocumentAnalysis(),
        parts: sameModels
          ? previous.parts.filter((p) => outside(p.baseOffset, p.baseOffset + p.text.length))
          : [],
        settings,
        documentText: doc.getText(),
        baseline: sameModels ? previous.baseline : undefined,
      };
      this.analyses.set(doc.uri.toString(), stored);
    }
    stored.placed.addPart(part.result.rows, part.baseOffset, part.text);
    stored.parts.push(part);
    stored.parts.sort((x, y) => x.baseOffset - y.baseOffset);
    stored.documentText = doc.getText();
    this.repaint();
    this.changed.fire({ uri: doc.uri });
    return stored;
  }

  /** After a run: one log line, the long-text notice once, other messages once each. */
  private reportRun(
    doc: vscode.TextDocument,
    settings: Settings,
    parts: number,
    results: InspectResult[],
    cancelled: boolean,
  ): void {
    // the cancellation is said last, so that no other status bar message hides it
    if (results.length > 0) this.reportResults(doc, settings, parts, results);
    if (cancelled) {
      this.log.info(`analysis cancelled after ${results.length} of ${parts} parts`);
      vscode.window.setStatusBarMessage(
        `$(circle-slash) Distill Lens: analysis cancelled${results.length ? ` (kept ${results.length} of ${parts} parts)` : ''}`,
        5000,
      );
    }
  }

  private reportResults(
    doc: vscode.TextDocument,
    settings: Settings,
    parts: number,
    results: InspectResult[],
  ): void {
    const rows = results.reduce((n, r) => n + r.rows.length, 0);
    const t = results.reduce((n, r) => n + r.timings.totalMs, 0);
    this.log.info(
      `analysed ${rows} tokens of ${doc.uri.toString()} in ${t.toFixed(0)} ms (teacher ${settings.teacher}, student ${settings.student})`,
    );
    // texts longer than the context are normal for long documents: said once, not per part
    const windowed = results.filter((r) => r.windowNotice);
    if (windowed.length > 0) {
      const context = Math.min(
        ...windowed.map((r) => Math.min(r.teacher.contextLength, r.student.contextLength)),
      );
      const notice = `${parts > 1 ? `${windowed.length} of ${results.length} parts were` : 'the text is'} longer than the models' context (${context} tokens): analysed in overlapping windows`;
      this.log.info(notice);
      vscode.window.setStatusBarMessage(`$(info) Distill Lens: ${notice}`, 8000);
    }
    const others = new Set(results.flatMap((r) => r.messages));
    for (const m of others) {
      this.log.warn(m);
      vscode.window.showWarningMessage(`Distill Lens: ${m}`);
    }
  }

  /**
   * Analyses the text of `before` again with the current settings (a new student) and keeps
   * `before` as the baseline, so the panel shows per token what changed.
   */
  async reanalyze(editor: vscode.TextEditor, before: StoredAnalysis): Promise<StoredAnalysis | undefined> {
    const doc = editor.document;
    const ranges =
      doc.getText() === before.documentText
        ? before.parts.map(
            (p) =>
              new vscode.Range(doc.positionAt(p.baseOffset), doc.positionAt(p.baseOffset + p.text.length)),
          )
        : documentChunks(doc);
    // an analysis with the layer view is redone with it, so the panel shows the layers before and after
    const layers = before.parts.some((p) => p.result.layers);
    const after = await this.analyze(editor, ranges, 'analysing with the distilled student', { layers });
    if (after) {
      // the baseline is the analysis with another student: never the new student itself
      const sameStudent = before.settings.student === after.settings.student;
      after.baseline = sameStudent ? before.baseline : { ...before, baseline: undefined };
      this.changed.fire({ uri: doc.uri });
    }
    return after;
  }

  reportError(e: unknown): void {
    const err = e as Error;
    if (err instanceof CancelledError) {
      this.log.info('analysis cancelled');
      vscode.window.setStatusBarMessage('$(circle-slash) Distill Lens: analysis cancelled', 5000);
      return;
    }
    // the message for everyone; the stack only at debug level (Developer: Set Log Level…)
    this.log.error(err?.message ?? String(e));
    if (err?.stack) this.log.debug(err.stack);
    // a model error says which setting it comes from
    const role = err instanceof ModelLoadError ? err.role : undefined;
    const text = role ? `${err.message} (setting distillLens.${role})` : err.message;
    this.lastError = text;
    const actions: string[] = [];
    // only the actions that fit: the model the error is about, or both when it is about the pair
    if (err instanceof ModelLoadError && err.role !== 'student') actions.push('Choose Teacher…');
    if (err instanceof ModelLoadError && err.role !== 'teacher') actions.push('Choose Student…');
    actions.push('Show Log');
    void vscode.window.showErrorMessage(`Distill Lens: ${text}`, ...actions).then((pick) => {
      if (pick === 'Choose Teacher…') void vscode.commands.executeCommand('distillLens.chooseTeacher');
      else if (pick === 'Choose Student…') void vscode.commands.executeCommand('distillLens.chooseStudent');
      else if (pick === 'Show Log') this.log.show();
    });
  }

  clear(uri?: vscode.Uri): void {
    if (uri) this.analyses.delete(uri.toString());
    else this.analyses.clear();
    this.repaint();
    this.changed.fire({ uri });
  }

  private forget(uri: vscode.Uri): void {
    if (this.analyses.delete(uri.toString())) this.changed.fire({ uri });
  }

  private onEdit(e: vscode.TextDocumentChangeEvent): void {
    const a = this.analyses.get(e.document.uri.toString());
    if (!a || e.contentChanges.length === 0) return;
    const edits = e.contentChanges.map((c) => ({
      start: c.rangeOffset,
      end: c.rangeOffset + c.rangeLength,
      newLength: c.text.length,
    }));
    const doc = e.document;
    const textOf = (start: number, end: number) =>
      doc.getText(new vscode.Range(doc.positionAt(start), doc.positionAt(end)));
    a.placed.applyEdits(edits, textOf);
    a.baseline?.placed.applyEdits(edits, textOf);
    // the editor moves the decorations with the text by itself: the stale and dropped tokens
    // are repainted once typing pauses, not on every key
    this.repaintSoon();
    this.changed.fire({ uri: doc.uri, byEdit: true });
    this.scheduleReanalysis(doc);
  }

  private repaintTimer?: NodeJS.Timeout;

  private repaintSoon(): void {
    clearTimeout(this.repaintTimer);
    this.repaintTimer = setTimeout(() => this.repaint(), 120);
  }

  private reanalysisTimers = new Map<string, NodeJS.Timeout>();
  /** documents with an analysis running now (a re-analysis on idle waits for it) */
  private readonly running = new Set<string>();

  /** With distillLens.reanalyze = onIdle: the parts with stale tokens are analysed again once typing pauses. */
  private scheduleReanalysis(doc: vscode.TextDocument): void {
    const key = doc.uri.toString();
    clearTimeout(this.reanalysisTimers.get(key));
    const settings = readSettings();
    if (settings.reanalyze !== 'onIdle') return;
    this.reanalysisTimers.set(
      key,
      setTimeout(() => {
        this.reanalysisTimers.delete(key);
        const a = this.analyses.get(key);
        const editor = vscode.window.visibleTextEditors.find((ed) => ed.document === doc);
        if (!a || !editor || doc.isClosed) return;
        if (this.running.has(key)) return this.scheduleReanalysis(doc); // after the run in progress
        const ranges = a.placed.editedRanges
          .filter(([start, end]) => end > start)
          .map(([start, end]) => new vscode.Range(doc.positionAt(start), doc.positionAt(end)));
        if (ranges.length === 0) return;
        this.log.info(
          `re-analysing ${ranges.length} edited part${ranges.length > 1 ? 's' : ''} of ${key} (distillLens.reanalyze: onIdle)`,
        );
        void this.analyze(editor, ranges, 're-analysing after your edit', { quiet: true });
      }, settings.reanalyzeDelayMs),
    );
  }

  /**
   * What the colours of an analysis show: its scale and a colour class per row (stale rows
   * dimmed), by value or, with a previous student and distillLens.colorBy = change, by change.
   */
  private coloringOf(a: StoredAnalysis, settings: Settings): Coloring {
    const rows = a.placed.rows;
    const metric = analysisMetric(a, settings);
    if (settings.colorBy === 'change' && a.baseline) {
      const baseline = a.baseline.placed;
      const changes = rows.map((r) => {
        const b = r.stale ? undefined : baseline.sameToken(r);
        return b && !b.stale ? r.row[metric] - b.row[metric] : undefined;
      });
      const maxAbs = maxAbsChange(changes);
      return {
        byChange: true,
        range: [-maxAbs, maxAbs],
        classes: rows.map((r, i) => (r.stale ? 'stale' : changeClass(changes[i], maxAbs))),
      };
    }
    const range = heatRange(
      rows.map((r) => r.row[metric]),
      settings.colorScaleMaximum,
    );
    return {
      byChange: false,
      range,
      classes: rows.map((r) => (r.stale ? 'stale' : `heat${heatBand(r.row[metric], range)}`)),
    };
  }

  /** Repaints decorations of every visible editor and the legend (after edits, settings changes). */
  repaint(): void {
    clearTimeout(this.repaintTimer);
    const settings = readSettings();
    this.decorations.useStyle(settings.decorationStyle);
    // once per analysis, however many editors show it
    const colorings = new Map<StoredAnalysis, Coloring>();
    const coloringOf = (a: StoredAnalysis) => {
      if (!colorings.has(a)) colorings.set(a, this.coloringOf(a, settings));
      return colorings.get(a)!;
    };
    for (const editor of vscode.window.visibleTextEditors) this.paintEditor(editor, settings, coloringOf);
    const active = vscode.window.activeTextEditor;
    const a = active && this.analyses.get(active.document.uri.toString());
    this.updateStatusBar(
      settings,
      a && !a.placed.isEmpty ? { analysis: a, coloring: coloringOf(a) } : undefined,
    );
  }

  /** The document range each editor was last painted over (only lines near the visible ones are). */
  private readonly paintedWindows = new WeakMap<vscode.TextEditor, [number, number]>();

  /**
   * Paints the tokens of the lines around the visible ones (PAINT_MARGIN_LINES above and
   * below): the editor's work per repaint stays the same however long the document is.
   */
  private paintEditor(
    editor: vscode.TextEditor,
    settings: Settings,
    coloringOf: (a: StoredAnalysis) => Coloring,
  ): void {
    const doc = editor.document;
    const a = this.analyses.get(doc.uri.toString());
    if (!a) {
      this.paintedWindows.delete(editor);
      this.decorations.paint(editor, settings.metric, []);
      return;
    }
    const metric = analysisMetric(a, settings);
    const visible = editor.visibleRanges;
    const firstLine = Math.max(0, (visible[0]?.start.line ?? 0) - PAINT_MARGIN_LINES);
    const lastLine = Math.min(
      doc.lineCount - 1,
      (visible[visible.length - 1]?.end.line ?? 0) + PAINT_MARGIN_LINES,
    );
    const from = doc.offsetAt(new vscode.Position(firstLine, 0));
    const to = doc.offsetAt(doc.lineAt(lastLine).range.end);
    this.paintedWindows.set(editor, [firstLine, lastLine]);
    const { byChange, classes } = coloringOf(a);
    const tokens: PaintedToken[] = [];
    a.placed.rows.forEach((r, i) => {
      if (r.end >= from && r.start <= to) tokens.push({ cls: classes[i], start: r.start, end: r.end });
    });
    this.decorations.paint(editor, byChange ? `change of ${metric}` : metric, tokens);
  }

  /** Scrolling near the edge of the painted lines paints the lines that come into view. */
  private onScroll(e: vscode.TextEditorVisibleRangesChangeEvent): void {
    const lines = this.paintedWindows.get(e.textEditor);
    const visible = e.visibleRanges;
    if (!lines || visible.length === 0) return;
    const [first, last] = lines;
    const top = visible[0].start.line;
    const bottom = visible[visible.length - 1].end.line;
    const lastLine = e.textEditor.document.lineCount - 1;
    const nearTop = first > 0 && top - first < PAINT_MARGIN_LINES / 2;
    const nearBottom = last < lastLine && last - bottom < PAINT_MARGIN_LINES / 2;
    const settings = readSettings();
    if (nearTop || nearBottom) this.paintEditor(e.textEditor, settings, (a) => this.coloringOf(a, settings));
  }

  /** The legend of the active editor's analysis: what the colours mean, how many tokens are stale, the re-analysis setting. */
  private updateStatusBar(
    settings: Settings,
    shown: { analysis: StoredAnalysis; coloring: Coloring } | undefined,
  ): void {
    if (!shown) {
      this.statusBar.hide();
      return;
    }
    const a = shown.analysis;
    const { byChange, range } = shown.coloring;
    const stale = a.placed.staleCount;
    const scale = `${formatNumber(range[0])}–${formatNumber(range[1])}`;
    const metric = analysisMetric(a, settings);
    this.statusBar.text =
      `$(flame) ${byChange ? `Δ${metric}` : metric} ${scale}` +
      (stale > 0 ? ` · $(history) ${stale} stale` : '');
    const lines = [
      byChange
        ? `Distill Lens: the change of ${METRIC_LABELS[metric]} against ${modelDisplayName(a.baseline!.settings.student)}, from ${scale.replace('–', ' (fell most, green) to ')} (rose most, red).`
        : `Distill Lens: ${METRIC_LABELS[metric]} colours the analysed tokens, from ${formatNumber(range[0])} (light) to ${formatNumber(range[1])} (dark).`,
    ];
    const spans = acrossTokenizerSpans(a);
    if (spans !== undefined)
      lines.push(
        `The teacher and the student tokenize differently: each student token shows the k1–k3 of its span (${spans} spans between the places where both tokenizations start a token)${metric !== settings.metric ? `; ${settings.metric} needs one vocabulary, so ${metric} colours them` : ''}.`,
      );
    if (stale > 0)
      lines.push(
        `${stale} token${stale > 1 ? 's' : ''} after an edit ${stale > 1 ? 'are' : 'is'} out of date (dimmed): the text before ${stale > 1 ? 'them' : 'it'} changed.`,
      );
    lines.push(
      settings.reanalyze === 'onIdle'
        ? `Re-analysis: on idle, ${settings.reanalyzeDelayMs} ms after the last edit (distillLens.reanalyze).`
        : 'Re-analysis: off; run Analyze Selection or Analyze Document, or set distillLens.reanalyze to onIdle.',
    );
    lines.push('Click to open the panel.');
    this.statusBar.tooltip = lines.join('\n');
    this.statusBar.show();
  }

  dispose(): void {
    clearTimeout(this.repaintTimer);
    for (const t of this.reanalysisTimers.values()) clearTimeout(t);
    for (const d of this.disposables) d.dispose();
  }
}

/** Splits a document into ranges of about `DOCUMENT_CHUNK_CHARS`, at blank lines where possible. */
export function documentChunks(doc: vscode.TextDocument, chunkChars = DOCUMENT_CHUNK_CHARS): vscode.Range[] {
  const ranges: vscode.Range[] = [];
  let startLine = 0;
  let chars = 0;
  for (let line = 0; line < doc.lineCount; line++) {
    chars += doc.lineAt(line).text.length + 1;
    const atBreak = doc.lineAt(line).isEmptyOrWhitespace || chars >= 2 * chunkChars;
    if ((chars >= chunkChars && atBreak) || line === doc.lineCount - 1) {
      ranges.push(new vscode.Range(startLine, 0, line, doc.lineAt(line).text.length));
      startLine = line + 1;
      chars = 0;
    }
  }
  return ranges;
}

/** The paragraph around the cursor: the lines between the nearest blank lines. */
export function paragraphAt(doc: vscode.TextDocument, position: vscode.Position): vscode.Range {
  let first = position.line;
  let last = position.line;
  while (first > 0 && !doc.lineAt(first - 1).isEmptyOrWhitespace) first--;
  while (last < doc.lineCount - 1 && !doc.lineAt(last + 1).isEmptyOrWhitespace) last++;
  return new vscode.Range(first, 0, last, doc.lineAt(last).text.length);
}

/** How many spans a pair whose tokenizers differ was compared on; undefined for a pair sharing one tokenizer. */
export function acrossTokenizerSpans(a: StoredAnalysis): number | undefined {
  if (!a.parts.some((p) => p.result.spans)) return undefined;
  return a.parts.reduce((n, p) => n + (p.result.spans?.length ?? 0), 0);
}

/** The metric an analysis is painted by: the setting, or k3 where the tokenizers differ and it needs one vocabulary. */
export function analysisMetric(a: StoredAnalysis, settings: Settings): MetricKey {
  return shownMetric(settings.metric, acrossTokenizerSpans(a) !== undefined);
}

/** Two analyses whose numbers compare: the same models (and files of them) and metric options. */
function sameAnalysisSettings(a: Settings, b: Settings): boolean {
  return (
    a.teacher === b.teacher &&
    a.student === b.student &&
    a.dtype === b.dtype &&
    JSON.stringify(a.options) === JSON.stringify(b.options)
  );
}
