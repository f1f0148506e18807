/**
 * Inspection of a teacher and a student whose tokenizers differ: each model runs on its own
 * tokens of the same text, and the two are compared exactly on the spans where both
 * tokenizations have a token boundary (core/spanAlignment.ts): each model's log-probability
 * of the span's text, their difference, k1 and k3; and beside them ULD's distance on the span
 * (a cross-vocabulary approximation, labelled so). Per-token divergences need one vocabulary:
 * the result's rows are the student's tokens inside spans, each with its own model's values
 * and its span's k1–k3 (the editor paints and hovers them); `spans` holds the comparison.
 */
import { ModelLoadError, UsageError } from '../core/errors';
import { alignSpans, mergedRow, sortedL1, tokenLogps, type TokenLogits } from '../core/spanAlignment';
import { summarize, type ModelValues, type TokenRow } from '../core/tokenRows';
import { METRIC_KEYS, shownMetric } from '../core/metricKeys';
import type { AlignedSpan } from '../core/spanAlignment';
import type { TextTokenizer } from '../models/tokenizer';
import { halfToFloat32 } from '../models/safetensors';
import type { LoadedModel } from '../models/modelPool';
import type { Logits } from '../models/languageModel';
import type { InspectRequest, InspectResult } from '../shared/protocol';
import type { RunControl } from './inspectEngine';
import { refuseTokenCount } from './tokenCount';
import { modelReport } from './modelReport';

/** One model's pass over its tokens: its logits rows and log p(token i | tokens < i) at T = 1 (token 0: NaN). */
interface TokenPass extends TokenLogits {
  logp: Float64Array;
}

function tokenPass(logits: Logits, ids: number[]): TokenPass {
  const rows =
    logits.type === 'float16' ? halfToFloat32(logits.data as Uint16Array) : (logits.data as Float32Array);
  const pass = { rows, vocab: logits.vocab };
  return { ...pass, logp: tokenLogps(pass, ids) };
}

export async function inspectAcrossTokenizers(
  req: InspectRequest,
  teacher: LoadedModel,
  student: LoadedModel,
  loadMs: number,
  c: RunControl,
): Promise<InspectResult> {
  const t0 = performance.now() - loadMs;
  const check = c.checkCancelled ?? (() => {});
  if (req.layers)
    throw new UsageError('the layer view needs a teacher and a student that share one tokenizer');
  if (req.options.temperature !== 1)
    throw new UsageError(
      `comparing across tokenizers uses each model's own log-probabilities at temperature 1, not ${req.options.temperature}`,
    );
  const t1 = performance.now();
  const encT = teacher.tokenizer.encode(req.text);
  const encS = student.tokenizer.encode(req.text);
  const tokenizeMs = performance.now() - t1;
  for (const [who, enc, m] of [
    ['teacher', encT, teacher],
    ['student', encS, student],
  ] as const) {
    if (!enc.exactSpans)
      throw new ModelLoadError(
        `the ${who}'s tokenizer normalises the text, so its tokens cannot be placed on the text exactly; comparing across tokenizers needs both placed exactly`,
        who,
      );
    refuseTokenCount(enc.ids, req.maxTokens, (id) => m.tokenizer.tokenText(id));
    if (enc.ids.length > m.lm.model.contextLength)
      throw new UsageError(
        `the text is ${enc.ids.length} of the ${who}'s tokens, more than its context (${m.lm.model.contextLength}); comparing across tokenizers takes one window for now: select less text`,
      );
  }
  check();
  c.onProgress?.('teacher forward pass', 0);
  let t = performance.now();
  const teacherPass = tokenPass(await teacher.lm.forward(encT.ids), encT.ids);
  const teacherMs = performance.now() - t;
  check();
  c.onProgress?.('student forward pass', 0.5);
  t = performance.now();
  const studentPass = tokenPass(await student.lm.forward(encS.ids), encS.ids);
  const studentMs = performance.now() - t;
  t = performance.now();
  const spans = alignSpans(
    req.text,
    { spans: encT.spans, logp: teacherPass.logp },
    { spans: encS.spans, logp: studentPass.logp },
  );
  // ULD on each span's merged rows: a cross-vocabulary approximation beside the exact numbers
  for (const span of spans)
    span.uld = sortedL1(
      mergedRow(teacherPass, teacherPass.logp, span.teacherFirst, span.teacherTokens),
      mergedRow(studentPass, studentPass.logp, span.studentFirst, span.studentTokens),
    );
  for (const span of spans) {
    span.teacherPieces = pieces(teacher.tokenizer, encT.ids, span.teacherFirst, span.teacherTokens);
    span.studentPieces = pieces(student.tokenizer, encS.ids, span.studentFirst, span.studentTokens);
  }
  const rows = studentRows(spans, studentPass, encS, student.tokenizer, req.options.topK);
  const metricsMs = performance.now() - t;
  return {
    ids: encS.ids,
    rows,
    summary: summarize(rows, shownMetric(req.metric, true)),
    teacher: modelReport(teacher),
    student: modelReport(student),
    windows: [[0, encS.ids.length]],
    exactSpans: true,
    messages: [
      ...new Set([...teacher.lm.info.messages, ...student.lm.info.messages]),
      `the teacher and the student tokenize differently (${encT.ids.length} and ${encS.ids.length} tokens): compared exactly on ${spans.length} spans, between the places where both tokenizations start a token; per-token divergences need one vocabulary, so each student token shows its span's k1–k3`,
    ],
    spans,
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
}

function pieces(tokenizer: TextTokenizer, ids: number[], first: number, count: number): string[] {
  return ids.slice(first, first + count).map((id) => tokenizer.tokenText(id));
}

/**
 * A row per student token inside a span: the student's own values at that token (exact), the
 * span's k1–k3 (exact), every per-token divergence and the teacher's values NaN.
 */
function studentRows(
  spans: AlignedSpan[],
  pass: TokenPass,
  enc: { ids: number[]; spans: [number, number][] },
  tokenizer: TextTokenizer,
  topK: number,
): TokenRow[] {
  const unknown: ModelValues = { p: NaN, logp: NaN, rank: NaN, entropy: NaN, top: [] };
  const rows: TokenRow[] = [];
  spans.forEach((span, k) => {
    const k2 = 0.5 * span.logRatio * span.logRatio;
    for (let i = span.studentFirst; i < span.studentFirst + span.studentTokens; i++) {
      const metrics = Object.fromEntries(METRIC_KEYS.map((m) => [m, NaN])) as Record<
        (typeof METRIC_KEYS)[number],
        number
      >;
      metrics.k1 = span.k1;
      metrics.k2 = k2;
      metrics.k3 = span.k3;
      rows.push({
        ...metrics,
        index: i,
        target: enc.ids[i],
        text: tokenizer.tokenText(enc.ids[i]),
        start: enc.spans[i][0],
        end: enc.spans[i][1],
        hard: false,
        argmaxAgree: false,
        teacher: unknown,
        student: ownValues(pass, i, enc.ids[i], topK, tokenizer),
        span: k,
      });
    }
  });
  return rows;
}

/** One model's own values at token i (predicted by row i − 1), at T = 1, in float64. */
function ownValues(
  pass: TokenPass,
  i: number,
  id: number,
  topK: number,
  tokenizer: TextTokenizer,
): ModelValues {
  const V = pass.vocab;
  const at = (i - 1) * V;
  const logZ = pass.logp[i] - pass.rows[at + id]; // log p(id) = z_id − logZ
  let entropy = 0;
  let rank = 1;
  for (let v = 0; v < V; v++) {
    const lp = pass.rows[at + v] + logZ;
    entropy -= Math.exp(lp) * lp;
    if (pass.rows[at + v] > pass.rows[at + id]) rank++;
  }
  // the k largest logits, by insertion into a short sorted list (a full sort is V log V per token)
  const best: number[] = [];
  for (let v = 0; v < V; v++) {
    const z = pass.rows[at + v];
    if (best.length === topK && z <= pass.rows[at + best[topK - 1]]) continue;
    let j = Math.min(best.length, topK - 1);
    while (j > 0 && pass.rows[at + best[j - 1]] < z) j--;
    best.splice(j, 0, v);
    if (best.length > topK) best.pop();
  }
  const top = best.map((v) => ({
    id: v,
    text: tokenizer.tokenText(v),
    p: Math.exp(pass.rows[at + v] + logZ),
  }));
  return { p: Math.exp(pass.logp[i]), logp: pass.logp[i], rank, entropy, top };
}
