/**
 * The inspection engine: text → tokens → teacher and student forward passes → rows.
 * Owns the ONNX Runtime sessions (kept open across requests). It runs inside the model
 * process for the editor and in-process for the CLI.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelLoadError } from '../models/modelErrors';
import { resolveModel } from '../models/modelSource';
import { TextTokenizer } from '../models/tokenizer';
import { markHard, summarize, type MetricOptions, type Summary, type TokenRow } from '../core/tokenRows';
import type { MetricKey } from '../core/metricKeys';
import { UsageError } from '../core/errors';
export { CancelledError } from '../core/errors';
import { planWindows } from '../core/windows';
import { LanguageModel } from './languageModel';
import { MetricsRunner, type RowSource } from './metricsRunner';
import { chooseProviders, type Device } from './device';

export interface InspectRequest {
  teacher: string;
  student: string;
  text: string;
  options: MetricOptions;
  metric: MetricKey;
  device: Device;
  /** hard cap on the text's token count */
  maxTokens: number;
  /** window length for long texts (default: the smaller model context) */
  window?: number;
  allowRemote?: boolean;
  hubCacheDir?: string;
}

export interface ModelReport {
  name: string;
  folder: string;
  device: string;
  vocab: number;
  contextLength: number;
}

export interface Timings {
  loadMs: number;
  tokenizeMs: number;
  teacherMs: number;
  studentMs: number;
  metricsMs: number;
  totalMs: number;
}

export interface InspectResult {
  ids: number[];
  rows: TokenRow[];
  summary: Summary;
  teacher: ModelReport;
  student: ModelReport;
  /** windows used: [first position, end position) of each */
  windows: [number, number][];
  exactSpans: boolean;
  messages: string[];
  timings: Timings;
}

export interface RunControl {
  onProgress?: (message: string, fraction?: number) => void;
  /** throws (e.g. CancelledError) when the request was cancelled */
  checkCancelled?: () => void;
}

interface LoadedModel {
  lm: LanguageModel;
  tokenizer: TextTokenizer;
}

export class InspectEngine {
  private models = new Map<string, Promise<LoadedModel>>();
  /** tokenizers by file content: a teacher and student with one tokenizer parse it once */
  private tokenizers = new Map<string, TextTokenizer>();
  private metrics = new Map<string, MetricsRunner>();

  constructor(private readonly o: { cacheDir?: string; threads?: number } = {}) {}

  private load(spec: string, req: InspectRequest, c: RunControl): Promise<LoadedModel> {
    const key = `${spec}|${req.device}`;
    let m = this.models.get(key);
    if (!m) {
      m = (async () => {
        const resolved = await resolveModel(spec, { allowRemote: req.allowRemote, cacheDir: req.hubCacheDir, onProgress: (msg) => c.onProgress?.(msg) });
        c.onProgress?.(`loading ${spec}`);
        // ONNX Runtime loads on its own threads while this thread parses the tokenizer
        const opening = LanguageModel.open(resolved, req.device, { cacheDir: this.o.cacheDir, threads: this.o.threads, onProgress: (msg) => c.onProgress?.(msg) });
        opening.catch(() => {}); // awaited below; a tokenizer error must not leave it unhandled
        const tokenizer = this.tokenizerFor(resolved.folder);
        return { lm: await opening, tokenizer };
      })();
      this.models.set(key, m);
      m.catch(() => this.models.delete(key)); // a failed load is retried next time
    }
    return m;
  }

  private tokenizerFor(folder: string): TextTokenizer {
    const h = crypto.createHash('sha256');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      const file = path.join(folder, f);
      if (fs.existsSync(file)) h.update(fs.readFileSync(file));
      h.update('\0');
    }
    const key = h.digest('hex');
    let t = this.tokenizers.get(key);
    if (!t) this.tokenizers.set(key, (t = TextTokenizer.fromFolder(folder)));
    return t;
  }

  async inspect(req: InspectRequest, c: RunControl = {}): Promise<InspectResult> {
    const check = c.checkCancelled ?? (() => {});
    const t0 = performance.now();
    if (req.text.trim().length === 0) throw new UsageError('the text is empty: select or pass some text to analyse');
    const [teacher, student] = await Promise.all([this.load(req.teacher, req, c), this.load(req.student, req, c)]);
    const loadMs = performance.now() - t0;
    check();
    const tv = teacher.lm.vocabSize ?? teacher.tokenizer.vocabSize;
    const sv = student.lm.vocabSize ?? student.tokenizer.vocabSize;
    if (tv !== sv) {
      throw new ModelLoadError(`teacher vocabulary ${tv} (${req.teacher}) ≠ student vocabulary ${sv} (${req.student}): choose a teacher and student that share one tokenizer`);
    }

    const t1 = performance.now();
    const enc = teacher.tokenizer.encode(req.text);
    const studentIds = student.tokenizer.encode(req.text).ids;
    const tokenizeMs = performance.now() - t1;
    if (studentIds.length !== enc.ids.length || studentIds.some((id, i) => id !== enc.ids[i])) {
      throw new ModelLoadError(`the teacher's and student's tokenizers split this text differently (${enc.ids.length} vs ${studentIds.length} tokens): choose models that share one tokenizer`);
    }
    const ids = enc.ids;
    const outside = ids.findIndex((id) => id >= tv);
    if (outside >= 0) {
      const at = enc.spans[outside];
      throw new ModelLoadError(
        `the tokenizer gives token id ${ids[outside]} (${JSON.stringify(req.text.slice(at[0], at[1]))} at character ${at[0]}) but the models' vocabulary has ${tv} entries: the tokenizer.json does not belong to these models`,
      );
    }
    if (ids.length > req.maxTokens) {
      throw new UsageError(`the text has ${ids.length} tokens, more than the limit of ${req.maxTokens}: analyse a shorter part or raise the limit (--max-tokens / distillLens.maxTokens)`);
    }
    if (ids.length < 2) {
      throw new UsageError(`the text gives a single token (${JSON.stringify(teacher.tokenizer.tokenText(ids[0] ?? 0))}), and the first token has no prediction: select more text`);
    }
    const context = Math.min(teacher.lm.model.contextLength, student.lm.model.contextLength, req.window ?? Infinity);
    const windows = planWindows(ids.length, context);

    const choice = chooseProviders(teacher.lm.info.device);
    const runnerKey = choice.providers.join(',');
    let runner = this.metrics.get(runnerKey);
    if (!runner) this.metrics.set(runnerKey, (runner = new MetricsRunner(choice.providers)));

    const rows: TokenRow[] = [];
    let teacherMs = 0;
    let studentMs = 0;
    let metricsMs = 0;
    const decode = (id: number) => teacher.tokenizer.tokenText(id);
    for (const [w, win] of windows.entries()) {
      check();
      const windowIds = ids.slice(win.start, win.end);
      c.onProgress?.(`teacher forward pass${windows.length > 1 ? ` (window ${w + 1}/${windows.length})` : ''}`, w / windows.length);
      let t = performance.now();
      const tl = await teacher.lm.forward(windowIds);
      teacherMs += performance.now() - t;
      check();
      c.onProgress?.('student forward pass', (w + 0.4) / windows.length);
      t = performance.now();
      const sl = await student.lm.forward(windowIds);
      studentMs += performance.now() - t;
      check();
      if (tl.type !== sl.type) throw new ModelLoadError(`teacher logits are ${tl.type} but student logits are ${sl.type}: use models of one precision`);
      c.onProgress?.('metrics', (w + 0.8) / windows.length);
      t = performance.now();
      const sources: RowSource[] = [];
      for (let i = win.scoreFrom; i < win.end; i++) {
        sources.push({ index: i, target: ids[i], position: i - 1 - win.start, text: req.text.slice(enc.spans[i][0], enc.spans[i][1]), start: enc.spans[i][0], end: enc.spans[i][1] });
      }
      rows.push(...(await runner.rows(tl.data, sl.data, tl.type, tl.vocab, sources, req.options, decode, check)));
      metricsMs += performance.now() - t;
    }
    markHard(rows);
    const summary = summarize(rows, req.metric);
    const report = (m: LoadedModel, v: number): ModelReport => ({ name: m.lm.model.name, folder: m.lm.model.folder, device: m.lm.info.device, vocab: v, contextLength: m.lm.model.contextLength });
    const messages = [...new Set([...teacher.lm.info.messages, ...student.lm.info.messages])];
    if (windows.length > 1) messages.push(`the text (${ids.length} tokens) is longer than the context (${context}): analysed in ${windows.length} overlapping windows`);
    if (!enc.exactSpans) messages.push('this tokenizer normalises text, so token spans are approximate');
    return {
      ids,
      rows,
      summary,
      teacher: report(teacher, tv),
      student: report(student, sv),
      windows: windows.map((w) => [w.start, w.end]),
      exactSpans: enc.exactSpans,
      messages,
      timings: { loadMs, tokenizeMs, teacherMs, studentMs, metricsMs, totalMs: performance.now() - t0 },
    };
  }

  async dispose(): Promise<void> {
    for (const m of this.models.values()) await (await m.catch(() => undefined))?.lm.release();
    for (const r of this.metrics.values()) await r.release();
    this.models.clear();
    this.metrics.clear();
  }
}
