/**
 * Inspection with a teacher served by an inference engine (models/servedTeacher.ts): the
 * student runs here as usual; the teacher gives, per position, its top K and the actual
 * token's log-probability. Each row's metrics are over the buckets "the teacher's K ids, the
 * target, the rest" (core/bucketedRows.ts) and the result says so in `teacherSupport`.
 */
import { errorForRole, ModelLoadError, UsageError } from '../core/errors';
import { bucketedRow } from '../core/bucketedRows';
import { markHard, summarize, type TokenRow } from '../core/tokenRows';
import { planWindows } from '../core/windows';
import type { ModelPool } from '../models/modelPool';
import { PROTOCOL_NAMES, ServedTeacher, type ServedTeacherSpec } from '../models/servedTeacher';
import type { InspectRequest, InspectResult } from '../shared/protocol';
import type { RunControl } from './inspectEngine';
import { refuseTokenCount } from './tokenCount';
import { modelReport } from './modelReport';

/** The teacher's tokens per position a served teacher is asked for, unless told (vLLM allows up to 20 by default). */
export const DEFAULT_SERVED_TOP_K = 20;

export async function inspectWithServedTeacher(
  req: InspectRequest,
  spec: ServedTeacherSpec,
  models: ModelPool,
  c: RunControl,
): Promise<InspectResult> {
  const t0 = performance.now();
  const check = c.checkCancelled ?? (() => {});
  if (req.layers)
    throw new UsageError(
      "the layer view needs the teacher's hidden states; a served teacher gives only log-probabilities: use a local teacher for --layers",
    );
  if (req.options.temperature !== 1)
    throw new UsageError(
      `a served teacher's log-probabilities are at temperature 1: --temperature ${req.options.temperature} cannot be computed from them (use 1, or a local teacher)`,
    );
  const k = req.teacherTopK ?? DEFAULT_SERVED_TOP_K;
  // Cancel reaches a request in flight: the run's cancellation is polled and aborts it
  const abort = new AbortController();
  const poll = setInterval(() => {
    try {
      check();
    } catch {
      abort.abort();
    }
  }, 100);
  const lease = await models
    .acquire(req.student, {
      device: req.device,
      allowRemote: req.allowRemote,
      dtype: req.dtype,
      hubCacheDir: req.hubCacheDir,
      onProgress: c.onProgress,
      checkCancelled: c.checkCancelled,
    })
    .catch((e) => Promise.reject(errorForRole(e, 'student')));
  try {
    const student = lease.model;
    // the student's tokenizer reads the legacy protocol's token texts back to ids
    const teacher = new ServedTeacher(spec, {
      apiKey: req.teacherApiKey,
      signal: abort.signal,
      tokenizer: student.tokenizer,
    });
    const loadMs = performance.now() - t0;
    c.onProgress?.(`asking ${teacher.name} which protocol it speaks`);
    const protocol = await teacher.detect();
    const t1 = performance.now();
    const enc = student.tokenizer.encode(req.text);
    const ids = enc.ids;
    const tokenizeMs = performance.now() - t1;
    refuseTokenCount(ids, req.maxTokens, (id) => student.tokenizer.tokenText(id));
    // the teacher must split the text as the student does (checked on the text itself)
    await teacher.checkTokenizer(req.text, ids);
    const vocab = student.lm.vocabSize ?? student.tokenizer.vocabSize;
    const windows = planWindows(ids.length, Math.min(student.lm.model.contextLength, req.window ?? Infinity));

    const rows: TokenRow[] = [];
    let teacherMs = 0;
    let studentMs = 0;
    let metricsMs = 0;
    const decode = (id: number) => student.tokenizer.tokenText(id);
    for (const [w, win] of windows.entries()) {
      check();
      const windowIds = ids.slice(win.start, win.end);
      const of = windows.length > 1 ? ` (window ${w + 1}/${windows.length})` : '';
      c.onProgress?.(`the served teacher's top ${k}${of}`, w / windows.length);
      let t = performance.now();
      const served = await teacher.promptLogprobs(windowIds, k);
      teacherMs += performance.now() - t;
      check();
      c.onProgress?.('student forward pass', (w + 0.4) / windows.length);
      t = performance.now();
      const logits = await student.lm.forward(windowIds);
      studentMs += performance.now() - t;
      if (logits.type !== 'float32')
        throw new ModelLoadError(
          `a served teacher needs the student's logits in float32, not ${logits.type}`,
          'student',
        );
      t = performance.now();
      const V = logits.vocab;
      const data = logits.data as Float32Array;
      for (let i = win.scoreFrom; i < win.end; i++) {
        const position = i - 1 - win.start;
        const row = served[position];
        const outside = row.top.find((e) => e.id >= V);
        if (outside)
          throw new ModelLoadError(
            `${teacher.name} lists token id ${outside.id}, beyond the student's vocabulary of ${V}: the teacher and the student do not share one vocabulary`,
            'teacher',
          );
        rows.push(
          bucketedRow(row, data.subarray(position * V, (position + 1) * V), req.options, {
            index: i,
            target: ids[i],
            text: req.text.slice(enc.spans[i][0], enc.spans[i][1]),
            start: enc.spans[i][0],
            end: enc.spans[i][1],
            decode,
          }),
        );
      }
      metricsMs += performance.now() - t;
    }
    markHard(rows);
    const support = `top-${k}+rest`;
    const messages = [
      ...student.lm.info.messages,
      `the teacher is served (${PROTOCOL_NAMES[protocol]}, its top ${k} per position): the distribution metrics are over the buckets "its ${k} tokens, the target, the rest" (${support}); fkl, rkl, jsd, tvd and the other divergences are lower bounds of the full-vocabulary values, akl and the teacher's entropy approximations; log p, k1–k3, tckd and uncertainty are exact`,
    ];
    if (!enc.exactSpans) messages.push('this tokenizer normalises text, so token spans are approximate');
    return {
      ids,
      rows,
      summary: summarize(rows, req.metric),
      teacher: {
        name: spec.model,
        folder: spec.baseUrl,
        device: 'served',
        vocab,
        contextLength: student.lm.model.contextLength,
        file: `served by ${PROTOCOL_NAMES[protocol]}`,
      },
      student: modelReport(student),
      windows: windows.map((w) => [w.start, w.end]),
      exactSpans: enc.exactSpans,
      messages,
      windowNotice:
        windows.length > 1
          ? `the text (${ids.length} tokens) is longer than the student's context (${windows[0].end}): analysed in ${windows.length} overlapping windows`
          : undefined,
      teacherSupport: support,
      timings: {
        loadMs,
        tokenizeMs,
        teacherMs,
        studentMs,
        metricsMs,
        aklFullRowSplits: 0,
        totalMs: performance.now() - t0,
      },
    };
  } finally {
    clearInterval(poll);
    await lease.release();
  }
}
