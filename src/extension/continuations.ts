/**
 * Continue with Student / Teacher / the Mix, and Compare Continuations. The text before the
 * cursor is the prompt. The model process samples (src/generate), streaming each token: it
 * appears at once in a read-only document (scheme distill-lens-sample) beside the editor.
 * When both models have scored the continuation, each generated token is painted by
 * log p − log q (green: the teacher likes it more than the student does; red: less; void
 * tokens underlined), the usual hover gains the sampled-token values, and the panel shows the
 * sequence values and the per-token chart. Compare runs the teacher and then the student with
 * the same seed and shows both in VS Code's diff editor, painted on one scale.
 */
import * as vscode from 'vscode';
import { CancelledError } from '../core/errors';
import { formatNumber } from '../core/formatNumber';
import type { SampleReport, SampleRequest } from '../shared/generation';
import type { PanelSamples } from '../shared/panelProtocol';
import {
  layoutContinuations,
  logRatioClass,
  logRatioScale,
  placeSampleTokens,
  sampleHoverMarkdown,
  type ContinuationLayout,
  type PlacedSampleToken,
  type Writer,
} from '../report/continuationDocument';
import { HeatDecorations, type PaintedToken } from './heatDecorations';
import type { AnalysisController } from './analysisController';
import type { RuntimeHost } from './runtimeHost';
import {
  modelDisplayName,
  readSamplingSettings,
  readSettings,
  type SamplingSettings,
  type Settings,
} from './settings';

export const SAMPLE_SCHEME = 'distill-lens-sample';

/** Characters before the cursor sent as the prompt at most; the model process keeps the tokens that fit. */
const PROMPT_CHARS = 64_000;

/** Continuation documents kept (closing one forgets it; the oldest go first beyond this). */
const KEPT_RUNS = 24;

/** One Continue with … run and the document that shows it. */
export interface ContinuationRun {
  uri: vscode.Uri;
  from: Writer;
  status: 'sampling' | 'done' | 'cancelled' | 'failed';
  /** the prompt sent; the report's (maybe cut) prompt once it comes */
  prompt: string;
  /** per continuation, the tokens' text as they streamed in (the report's exact text replaces it) */
  streamed: string[];
  streamedTokens: number;
  report?: SampleReport;
  layout: ContinuationLayout;
  placed: PlacedSampleToken[];
  /** runs painted on one colour scale (a comparison's two sides) */
  peers: ContinuationRun[];
  settings: Settings;
  sampling: SamplingSettings;
  /** changes with every update (the panel's token indices name one version) */
  version: number;
}

let versions = 0;
let documents = 0;

export class ContinuationController implements vscode.Disposable {
  private readonly runs = new Map<string, ContinuationRun>();
  private readonly contentChanged = new vscode.EventEmitter<vscode.Uri>();
  private readonly changed = new vscode.EventEmitter<ContinuationRun>();
  /** fires when a run streams a token, is scored, or ends */
  readonly onDidChange = this.changed.event;
  readonly decorations = new HeatDecorations();
  private readonly voidType = vscode.window.createTextEditorDecorationType({
    textDecoration: 'underline wavy var(--vscode-editorError-foreground)',
    overviewRulerColor: new vscode.ThemeColor('editorError.foreground'),
    overviewRulerLane: vscode.OverviewRulerLane.Right,
  });
  private readonly contextType = vscode.window.createTextEditorDecorationType({ opacity: '0.6' });
  readonly statusBar = vscode.window.createStatusBarItem(
    'distillLens.sampleLegend',
    vscode.StatusBarAlignment.Right,
    99,
  );
  private readonly disposables: vscode.Disposable[] = [];
  private pendingContent = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly runtime: RuntimeHost,
    private readonly analyses: AnalysisController,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.statusBar.name = 'Distill Lens sample legend';
    this.statusBar.command = 'distillLens.openPanel';
    this.disposables.push(
      this.contentChanged,
      this.changed,
      this.decorations,
      this.voidType,
      this.contextType,
      this.statusBar,
      vscode.workspace.registerTextDocumentContentProvider(SAMPLE_SCHEME, {
        onDidChange: this.contentChanged.event,
        provideTextDocumentContent: (uri) =>
          this.runs.get(uri.toString())?.layout.text ??
          'This continuation is no longer kept. Run Distill Lens: Continue with Student again.',
      }),
      vscode.languages.registerHoverProvider(
        { scheme: SAMPLE_SCHEME },
        { provideHover: (d, p) => this.hover(d, p) },
      ),
      vscode.window.onDidChangeVisibleTextEditors(() => this.repaint()),
      vscode.window.onDidChangeActiveTextEditor(() => this.repaint()),
      // the editor reloads the document's text after each change: paint what it now shows
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document.uri.scheme === SAMPLE_SCHEME) this.repaint();
      }),
      vscode.workspace.onDidCloseTextDocument((d) => {
        const run = this.runs.get(d.uri.toString());
        if (run && run.status !== 'sampling') this.runs.delete(d.uri.toString());
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('distillLens')) this.repaint();
      }),
    );
  }

  get(uri: vscode.Uri): ContinuationRun | undefined {
    return this.runs.get(uri.toString());
  }

  /**
   * Samples continuations of the text before the cursor from `from` and shows them in a new
   * document beside the editor. Resolves with the run (also when cancelled or failed).
   * `signal` cancels as the notification's Cancel button does (for callers without one).
   */
  async continueWith(from: Writer, signal?: AbortSignal): Promise<ContinuationRun | undefined> {
    const prompt = this.promptAtCursor();
    if (prompt === undefined) return undefined;
    const run = this.newRun(from, prompt);
    await vscode.window.showTextDocument(run.uri, {
      viewColumn: vscode.ViewColumn.Beside,
      preview: false,
      preserveFocus: true,
    });
    await this.withProgress(
      `continuing with ${writerName(from, run.sampling.mixAlpha)}`,
      (progress, cancelled) => this.sample(run, progress, cancelled),
      signal,
    );
    return run;
  }

  /**
   * The teacher's and the student's continuations of the same prompt with the same seed, side
   * by side in the diff editor (teacher on the left), both painted on one colour scale.
   */
  async compare(): Promise<{ teacher: ContinuationRun; student: ContinuationRun } | undefined> {
    const prompt = this.promptAtCursor();
    if (prompt === undefined) return undefined;
    const [teacher, student] = await this.compareRuns(
      this.newRun('teacher', prompt),
      this.newRun('student', prompt),
      'teacher ↔ student',
      ['teacher: ', 'student: '],
    );
    return { teacher, student };
  }

  /**
   * The continuations of the text before the cursor by the student before a distillation run
   * and the one it wrote, from the same seed, in the diff editor (before on the left), each
   * painted by log p − log q against the teacher on one scale.
   */
  async compareStudents(
    before: string,
    after: string,
  ): Promise<{ before: ContinuationRun; after: ContinuationRun } | undefined> {
    const prompt = this.promptAtCursor();
    if (prompt === undefined) return undefined;
    const [a, b] = await this.compareRuns(
      this.newRun('student', prompt, { student: before, name: 'Student before' }),
      this.newRun('student', prompt, { student: after, name: 'Student after' }),
      'student before ↔ after distillation',
      ['before: ', 'after: '],
    );
    return { before: a, after: b };
  }

  /** Two runs side by side in the diff editor, on one colour scale, sampled one after the other. */
  private async compareRuns(
    left: ContinuationRun,
    right: ContinuationRun,
    title: string,
    prefixes: [string, string],
  ): Promise<[ContinuationRun, ContinuationRun]> {
    left.peers = right.peers = [left, right];
    await vscode.commands.executeCommand(
      'vscode.diff',
      left.uri,
      right.uri,
      `Continuations: ${title} (seed ${left.sampling.seed})`,
      { viewColumn: vscode.ViewColumn.Beside, preview: false, preserveFocus: true },
    );
    await this.withProgress(`comparing continuations (${title})`, async (progress, signal) => {
      await this.sample(left, progress, signal, prefixes[0]);
      if (left.status === 'done') await this.sample(right, progress, signal, prefixes[1]);
      else right.status = left.status;
      this.update(right);
    });
    return [left, right];
  }

  /**
   * One continuation of `prompt` by the student folder `student`, scored by the teacher, with
   * the sampling settings (one sample); no document. Throws CancelledError when `signal` aborts.
   */
  async sampleOnce(
    prompt: string,
    student: string,
    signal: AbortSignal,
    onProgress?: (message: string) => void,
  ): Promise<SampleReport> {
    const sampling = { ...readSamplingSettings(), samples: 1 };
    const request = sampleRequest({ ...readSettings(), student }, sampling, prompt, 'student');
    const report = await this.runtime.get().sample(request, {
      signal,
      onProgress: (message) => onProgress?.(message),
    });
    for (const m of report.messages) this.log.warn(m);
    return report;
  }

  /** The text before the cursor of the active editor (its last PROMPT_CHARS characters), or a warning. */
  private promptAtCursor(): string | undefined {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      vscode.window.showWarningMessage(
        'Distill Lens: open a text editor and put the cursor where the text should go on.',
      );
      return undefined;
    }
    const doc = editor.document;
    const end = doc.offsetAt(editor.selection.active);
    let start = Math.max(0, end - PROMPT_CHARS);
    // a long text is cut at a line start, not inside a word
    if (start > 0) {
      const line = doc.getText(new vscode.Range(doc.positionAt(start), doc.positionAt(end))).indexOf('\n');
      if (line >= 0) start += line + 1;
    }
    const prompt = doc.getText(new vscode.Range(doc.positionAt(start), doc.positionAt(end)));
    if (prompt.trim().length === 0) {
      vscode.window.showWarningMessage(
        'Distill Lens: there is no text before the cursor to continue. Put the cursor after some text.',
      );
      return undefined;
    }
    return prompt;
  }

  private newRun(from: Writer, prompt: string, o: { student?: string; name?: string } = {}): ContinuationRun {
    const sampling = readSamplingSettings();
    const name = o.name ?? { student: 'Student', teacher: 'Teacher', mix: 'Mix' }[from];
    const uri = vscode.Uri.from({ scheme: SAMPLE_SCHEME, path: `/${name} continuation ${++documents}` });
    const run: ContinuationRun = {
      uri,
      from,
      status: 'sampling',
      prompt,
      streamed: Array.from({ length: sampling.samples }, () => ''),
      streamedTokens: 0,
      layout: layoutContinuations(prompt, Array<string>(sampling.samples).fill('')),
      placed: [],
      peers: [],
      settings: o.student ? { ...readSettings(), student: o.student } : readSettings(),
      sampling,
      version: ++versions,
    };
    run.peers = [run];
    this.runs.set(uri.toString(), run);
    // the oldest closed-over runs go first: memory stays bounded however many are made
    for (const key of this.runs.keys()) {
      if (this.runs.size <= KEPT_RUNS) break;
      if (this.runs.get(key)!.status !== 'sampling') this.runs.delete(key);
    }
    return run;
  }

  private async withProgress(
    title: string,
    task: (progress: vscode.Progress<{ message?: string }>, signal: AbortSignal) => Promise<void>,
    external?: AbortSignal,
  ): Promise<void> {
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Distill Lens: ${title}`, cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        external?.addEventListener('abort', () => abort.abort());
        await task(progress, abort.signal);
      },
    );
  }

  /** Samples one run in the model process, streaming tokens into its document; never throws. */
  private async sample(
    run: ContinuationRun,
    progress: vscode.Progress<{ message?: string }>,
    signal: AbortSignal,
    prefix = '',
  ): Promise<void> {
    const request = sampleRequest(run.settings, run.sampling, run.prompt, run.from);
    const total = run.sampling.maxNewTokens * run.sampling.samples;
    try {
      const report = await this.runtime.get().sample(request, {
        signal,
        onProgress: (message) => progress.report({ message: prefix + message }),
        onToken: ({ sample, token }) => {
          run.streamed[sample] += token.text;
          run.streamedTokens++;
          progress.report({ message: `${prefix}${run.streamedTokens} of at most ${total} tokens` });
          this.updateSoon(run);
        },
      });
      run.report = report;
      run.prompt = report.prompt;
      run.status = 'done';
      for (const m of report.messages) {
        this.log.warn(m);
        vscode.window.showWarningMessage(`Distill Lens: ${m}`);
      }
      this.log.info(
        `${report.samples.length} continuation(s) from ${run.from} of a ${report.samples[0]?.promptTokens ?? 0}-token prompt: mean Σ log p/q ${formatNumber(report.summary.logRatio.mean)}, ${report.samples.reduce((n, x) => n + x.sequence.voidTokens, 0)} void tokens`,
      );
    } catch (e) {
      run.status = e instanceof CancelledError ? 'cancelled' : 'failed';
      if (run.status === 'failed') this.analyses.reportError(e);
      else {
        this.log.info(`sampling cancelled after ${run.streamedTokens} tokens`);
        vscode.window.setStatusBarMessage(
          `$(circle-slash) Distill Lens: sampling cancelled after ${run.streamedTokens} tokens (kept, not scored)`,
          5000,
        );
      }
    }
    this.update(run);
  }

  private updateSoon(run: ContinuationRun): void {
    const key = run.uri.toString();
    if (this.pendingContent.has(key)) return;
    // at most ~20 document updates a second, however fast tokens come
    this.pendingContent.set(
      key,
      setTimeout(() => {
        this.pendingContent.delete(key);
        this.update(run);
      }, 50),
    );
  }

  /** Lays the run's text out again, places its scored tokens, and tells the editor and the panel. */
  private update(run: ContinuationRun): void {
    const key = run.uri.toString();
    clearTimeout(this.pendingContent.get(key));
    this.pendingContent.delete(key);
    const texts = run.report ? run.report.samples.map((x) => x.text) : run.streamed;
    run.layout = layoutContinuations(run.prompt, texts);
    run.placed = run.report ? placeSampleTokens(run.report, run.layout) : [];
    run.version = ++versions;
    this.contentChanged.fire(run.uri);
    this.changed.fire(run);
    this.repaint();
  }

  /** Paints every visible continuation document whose text is the run's current text. */
  repaint(): void {
    const settings = readSettings();
    this.decorations.useStyle(settings.decorationStyle);
    for (const editor of vscode.window.visibleTextEditors) {
      const run = this.runs.get(editor.document.uri.toString());
      if (!run) continue;
      // until the editor has read the new text, offsets would land on the old one
      const current = editor.document.getText() === run.layout.text;
      const tokens: PaintedToken[] = [];
      const voids: vscode.Range[] = [];
      const doc = editor.document;
      if (current && run.report) {
        const scale = logRatioScale(run.peers.flatMap((p) => (p.report ? [p.report] : [])));
        for (const t of run.placed) {
          const row = run.report.samples[t.sample].rows[t.index];
          const cls = logRatioClass(row.logRatio, scale);
          if (cls) tokens.push({ cls, start: t.start, end: t.end });
          if (row.void) voids.push(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end)));
        }
      }
      this.decorations.paint(editor, 'log p − log q', tokens);
      editor.setDecorations(this.voidType, voids);
      editor.setDecorations(
        this.contextType,
        current
          ? [[0, run.layout.promptEnd] as [number, number], ...run.layout.rulers].map(
              ([a, b]) => new vscode.Range(doc.positionAt(a), doc.positionAt(b)),
            )
          : [],
      );
    }
    this.updateStatusBar();
  }

  private updateStatusBar(): void {
    const editor = vscode.window.activeTextEditor;
    const run = editor && this.runs.get(editor.document.uri.toString());
    if (!run) {
      this.statusBar.hide();
      return;
    }
    const voids = run.report?.samples.reduce((n, s) => n + s.sequence.voidTokens, 0) ?? 0;
    const scale = run.report ? logRatioScale(run.peers.flatMap((p) => (p.report ? [p.report] : []))) : 0;
    this.statusBar.text =
      run.status === 'sampling'
        ? `$(loading~spin) sampling: ${run.streamedTokens} tokens`
        : run.report
          ? `$(flame) log p − log q ±${formatNumber(scale)}${voids ? ` · ${voids} void` : ''}`
          : `$(circle-slash) ${run.status}`;
    this.statusBar.tooltip = run.report
      ? `Distill Lens: each generated token coloured by log p − log q, from −${formatNumber(scale)} (red: the teacher gives it less than the student) to +${formatNumber(scale)} (green: more). Wavy underline: void (the teacher gives it less than ${run.sampling.voidThreshold}). Click to open the panel.`
      : `Distill Lens: the continuation is ${run.status}; its tokens are coloured once both models have scored it.`;
    this.statusBar.show();
  }

  private hover(doc: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const run = this.runs.get(doc.uri.toString());
    if (!run?.report || doc.getText() !== run.layout.text) return undefined;
    const offset = doc.offsetAt(position);
    const hit = run.placed.find((t) => t.start <= offset && offset < t.end);
    if (!hit) return undefined;
    const md = new vscode.MarkdownString(
      sampleHoverMarkdown(run.report.samples[hit.sample].rows[hit.index], {
        from: run.from,
        sample: hit.sample,
        samples: run.report.samples.length,
        voidThreshold: run.sampling.voidThreshold,
        metric: readSettings().metric,
        options: run.settings.options,
      }) +
        `\n\n*teacher: ${modelDisplayName(run.settings.teacher)} · student: ${modelDisplayName(run.settings.student)}*`,
    );
    md.isTrusted = false;
    md.supportHtml = false;
    return new vscode.Hover(md, new vscode.Range(doc.positionAt(hit.start), doc.positionAt(hit.end)));
  }

  /** The run as the panel draws it. */
  panelSamples(run: ContinuationRun): PanelSamples {
    const r = run.report;
    return {
      id: run.version,
      documentName: run.uri.path.slice(1),
      writer: writerName(run.from, run.sampling.mixAlpha),
      teacher: modelDisplayName(run.settings.teacher),
      student: modelDisplayName(run.settings.student),
      status: run.status,
      streamed: run.streamedTokens,
      summary: r?.summary,
      continuations: (r?.samples ?? []).map((s) => ({
        sequence: s.sequence,
        texts: s.rows.map((row) => row.text),
        logRatio: s.rows.map((row) => row.logRatio),
        returns: s.rows.map((row) => row.return),
        void: s.rows.map((row) => row.void),
      })),
    };
  }

  /** Selects generated token `index` of continuation `sample` in the run's document. */
  async reveal(run: ContinuationRun, sample: number, index: number): Promise<void> {
    const t = run.placed.find((p) => p.sample === sample && p.index === index);
    if (!t) return;
    const editor =
      vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === run.uri.toString()) ??
      (await vscode.window.showTextDocument(run.uri, { preview: false }));
    const range = new vscode.Range(editor.document.positionAt(t.start), editor.document.positionAt(t.end));
    editor.selection = new vscode.Selection(range.start, range.end);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  dispose(): void {
    for (const t of this.pendingContent.values()) clearTimeout(t);
    for (const d of this.disposables) d.dispose();
  }
}

function writerName(from: Writer, alpha: number): string {
  return from === 'mix' ? `the mix α·teacher + (1 − α)·student, α = ${alpha}` : `the ${from}`;
}

/** What the model process is asked for: the prompt, who writes, the sampling settings, the models. */
function sampleRequest(s: Settings, sampling: SamplingSettings, prompt: string, from: Writer): SampleRequest {
  return {
    teacher: s.teacher,
    student: s.student,
    prompt,
    from,
    mixAlpha: sampling.mixAlpha,
    sampling: sampling.sampling,
    maxNewTokens: sampling.maxNewTokens,
    samples: sampling.samples,
    seed: sampling.seed,
    stop: sampling.stop,
    voidThreshold: sampling.voidThreshold,
    metrics: s.options,
    device: s.device,
    dtype: s.dtype,
    allowRemote: s.allowRemoteModels,
    hubCacheDir: s.hubCacheDir,
    keepPromptEnd: true,
    maxPromptTokens: s.maxTokens,
  };
}
