/**
 * The inspection engine: text → tokens → teacher and student forward passes → rows.
 * Models come from a ModelPool (kept loaded across requests, bounded); the engine owns the
 * metrics sessions. It runs inside the model process for the editor and in-process for the CLI.
 */
import { errorForRole, ModelLoadError, UsageError } from '../core/errors';
import { markHard, summarize, type TokenRow } from '../core/tokenRows';
import { planWindows } from '../core/windows';
import { ModelPool, type LoadedModel } from '../models/modelPool';
import type { InspectRequest, InspectResult, LayerView } from '../shared/protocol';
import { MetricsRunner, type RowSource } from './metricsRunner';
import { layerView } from './layerView';
import { parseServedTeacher } from '../models/servedTeacher';
import { inspectWithServedTeacher } from './servedInspect';
import { refuseTokenCount } from './tokenCount';
import { modelReport } from './modelReport';
import { inspectAcrossTokenizers } from './acrossTokenizers';

/** What a refusal of a pair with different tokenizers adds: where such a pair can be compared. */
const ACROSS_TOKENIZERS_HINT =
  ' (ask with acrossTokenizers, as the editor and distill-lens inspect do, to compare such a pair exactly on the spans where both tokenizations have a boundary)';

export interface RunControl {
  onProgress?: (message: string, fraction?: number) => void;
  /** throws (e.g. CancelledError) when the request was cancelled */
  checkCancelled?: () => void;
}

export class InspectEngine {
  /** one metrics runner per device the models run on */
  private metrics = new Map<string, MetricsRunner>();

  /** `models` is shared with distillation in the model process, so a teacher is loaded once. */
  constructor(readonly models: ModelPool = new ModelPool()) {}

  /** How many metrics sessions are open (memory tests). */
  get metricsSessions(): number {
    return [...this.metrics.values()].reduce((n, r) => n + r.openSessions, 0);
  }

  async inspect(req: InspectRequest, c: RunControl = {}): Promise<InspectResult> {
    const t0 = performance.now();
    if (req.text.trim().length === 0)
      throw new UsageError('the text is empty: select or pass some text to analyse');
    // a teacher served by vLLM or SGLang: its top K per position, metrics over buckets
    const served = parseServedTeacher(req.teacher);
    if (served) return inspectWithServedTeacher(req, served, this.models, c);
    if (req.teacherTopK !== undefined)
      throw new UsageError(
        `--teacher-top-k is for a served teacher (openai+http://host:port/v1#model); ${req.teacher} runs here and gives its whole distribution`,
      );
    // once one model has failed, the other one's loading is no longer news: its progress is
    // not shown and the error comes at once (it keeps loading into the pool for the next request)
    let failed = false;
    const load = {
      device: req.device,
      allowRemote: req.allowRemote,
      dtype: req.dtype,
      hubCacheDir: req.hubCacheDir,
      onProgress: (m: string) => {
        if (!failed) c.onProgress?.(m);
      },
      checkCancelled: c.checkCancelled,
    };
    const acquiring = [
      // the layer view: the teacher's lens against its own final, the student's against the teacher's
      this.models
        .acquire(req.teacher, { ...load, layerView: req.layers ? 'self' : undefined })
        .catch((e) => Promise.reject(errorForRole(e, 'teacher'))),
      this.models
        .acquire(req.student, { ...load, layerView: req.layers ? 'input' : undefined })
        .catch((e) => Promise.reject(errorForRole(e, 'student'))),
    ];
    let held;
    try {
      held = await Promise.all(acquiring);
    } catch (e) {
      failed = true;
      // a lease that still arrives is given back when it does
      for (const a of acquiring)
        void a.then(
          (lease) => lease.release(),
          () => undefined,
        );
      throw e;
    }
    try {
      return await this.analyse(req, held[0].model, held[1].model, t0, c);
    } finally {
      for (const lease of held) await lease.release();
    }
  }

  private async analyse(
    req: InspectRequest,
    teacher: LoadedModel,
    student: LoadedModel,
    t0: number,
    c: RunControl,
  ): Promise<InspectResult> {
    const check = c.checkCancelled ?? (() => {});
    const loadMs = performance.now() - t0;
    check();
    const tv = teacher.lm.vocabSize ?? teacher.tokenizer.vocabSize;
    const sv = student.lm.vocabSize ?? student.tokenizer.vocabSize;
    // a pair that tokenizes differently: compared on exact spans where the caller asks for it
    const across = ACROSS_TOKENIZERS_HINT;
    if (tv !== sv) {
      if (req.acrossTokenizers) return inspectAcrossTokenizers(req, teacher, student, loadMs, c);
      throw new ModelLoadError(
        `teacher vocabulary ${tv} (${req.teacher}) ≠ student vocabulary ${sv} (${req.student}): choose a teacher and student that share one tokenizer${across}`,
      );
    }

    const t1 = performance.now();
    const enc = teacher.tokenizer.encode(req.text);
    const studentIds = student.tokenizer.encode(req.text).ids;
    const tokenizeMs = performance.now() - t1;
    if (studentIds.length !== enc.ids.length || studentIds.some((id, i) => id !== enc.ids[i])) {
      if (req.acrossTokenizers) return inspectAcrossTokenizers(req, teacher, student, loadMs, c);
      throw new ModelLoadError(
        `the teacher's and student's tokenizers split this text differently (${enc.ids.length} vs ${studentIds.length} tokens): choose models that share one tokenizer${across}`,
      );
    }
    const ids = enc.ids;
    const outside = ids.findIndex((id) => id >= tv);
    if (outside >= 0) {
      const at = enc.spans[outside];
      throw new ModelLoadError(
        `the tokenizer gives token id ${ids[outside]} (${JSON.stringify(req.text.slice(at[0], at[1]))} at character ${at[0]}) but the models' vocabulary has ${tv} entries: the tokenizer.json does not belong to these models`,
      );
    }
    refuseTokenCount(ids, req.maxTokens, (id) => teacher.tokenizer.tokenText(id));
    const context = Math.min(
      teacher.lm.model.contextLength,
      student.lm.model.contextLength,
      req.window ?? Infinity,
    );
    const windows = planWindows(ids.length, context);

    const metricsDevice = teacher.lm.info.device;
    let runner = this.metrics.get(metricsDevice);
    if (!runner) this.metrics.set(metricsDevice, (runner = new MetricsRunner(metricsDevice)));
    const fullRowSplitsBefore = runner.fullRowAklSplits;

    const rows: TokenRow[] = [];
    let layers: LayerView | undefined;
    let teacherMs = 0;
    let studentMs = 0;
    let metricsMs = 0;
    const decode = (id: number) => teacher.tokenizer.tokenText(id);
    for (const [w, win] of windows.entries()) {
      check();
      const windowIds = ids.slice(win.start, win.end);
      c.onProgress?.(
        `teacher forward pass${windows.length > 1 ? ` (window ${w + 1}/${windows.length})` : ''}`,
        w / windows.length,
      );
      let t = performance.now();
      const teacherLayers = req.layers ? await teacher.lm.forwardLayers(windowIds) : undefined;
      const tl = teacherLayers?.logits ?? (await teacher.lm.forward(windowIds));
      teacherMs += performance.now() - t;
      check();
      c.onProgress?.('student forward pass', (w + 0.4) / windows.length);
      t = performance.now();
      const studentLayers = req.layers ? await student.lm.forwardLayers(windowIds, tl) : undefined;
      const sl = studentLayers?.logits ?? (await student.lm.forward(windowIds));
      studentMs += performance.now() - t;
      check();
      // the layer view of the first window (its rows are positions 0 … n − 2)
      if (teacherLayers && studentLayers && w === 0)
        layers = layerView(teacherLayers, studentLayers, windowIds.length - 1);
      if (tl.type !== sl.type)
        throw new ModelLoadError(
          `teacher logits are ${tl.type} but student logits are ${sl.type}: use models of one precision`,
        );
      c.onProgress?.('metrics', (w + 0.8) / windows.length);
      t = performance.now();
      const sources: RowSource[] = [];
      for (let i = win.scoreFrom; i < win.end; i++) {
        sources.push({
          index: i,
          target: ids[i],
          position: i - 1 - win.start,
          text: req.text.slice(enc.spans[i][0], enc.spans[i][1]),
          start: enc.spans[i][0],
          end: enc.spans[i][1],
        });
      }
      rows.push(
        ...(await runner.rows(tl.data, sl.data, tl.type, tl.vocab, sources, req.options, decode, check)),
      );
      metricsMs += performance.now() - t;
    }
    markHard(rows);
    const summary = summarize(rows, req.metric);
    const messages = [...new Set([...teacher.lm.info.messages, ...student.lm.info.messages])];
    const windowNotice =
      windows.length > 1
        ? `the text (${ids.length} tokens) is longer than the context (${context}): analysed in ${windows.length} overlapping windows`
        : undefined;
    if (!enc.exactSpans) messages.push('this tokenizer normalises text, so token spans are approximate');
    if (layers && windows.length > 1)
      messages.push(
        `the layer view covers the first window (${layers.positions} tokens) of ${ids.length}: CKA compares the states of one window's positions`,
      );
    return {
      ids,
      rows,
      summary,
      teacher: modelReport(teacher),
      student: modelReport(student),
      windows: windows.map((w) => [w.start, w.end]),
      exactSpans: enc.exactSpans,
      messages,
      windowNotice,
      ...(layers ? { layers } : {}),
      timings: {
        loadMs,
        tokenizeMs,
        teacherMs,
        studentMs,
        metricsMs,
        aklFullRowSplits: runner.fullRowAklSplits - fullRowSplitsBefore,
        totalMs: performance.now() - t0,
      },
    };
  }

  /** Releases the metrics sessions and every model of the pool. */
  async dispose(): Promise<void> {
    for (const r of this.metrics.values()) await r.release();
    this.metrics.clear();
    await this.models.dispose();
  }
}
