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
import {
  alignSpans,
  mergedRow,
  sortedL1,
  SPECIAL_TOKEN_ROOM,
  textPieces,
  tokenLogps,
  type TokenLogits,
} from '../core/spanAlignment';
import { summarize, type ModelValues, type TokenRow } from '../core/tokenRows';
import { METRIC_KEYS, shownMetric } from '../core/metricKeys';
import type { TextTokenizer } from '../models/tokenizer';
import type { AlignedSpan } from '../core/spanAlignment';
import type { LoadedModel } from '../models/modelPool';
import { float32Logits, type Logits } from '../models/languageModel';
import type { InspectRequest, InspectResult } from '../shared/protocol';
import type { RunControl } from './inspectEngine';
import { refuseTokenCount } from './tokenCount';
import { modelReport } from './modelReport';

/** One model's pass over its tokens: its logits rows and log p(token i | tokens < i) at T = 1 (token 0: NaN). */
interface TokenPass extends TokenLogits {
  logp: Float64Array;
}

function tokenPass(logits: Logits, ids: number[]): TokenPass {
  const pass = { rows: float32Logits(logits), vocab: logits.vocab };
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
  let tokenizeMs = performance.now() - t1;
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
  }
  // a text longer than either model's context: pieces cut where the student starts a token,
  // each read from its own start (its first span has less context than in the whole text)
  const [contextT, contextS] = [teacher.lm.model.contextLength, student.lm.model.contextLength];
  const pieces: [number, number][] =
    encT.ids.length <= contextT && encS.ids.length <= contextS
      ? [[0, req.text.length]]
      : textPieces(
          encS.spans,
          contextS - SPECIAL_TOKEN_ROOM,
          (a, b) =>
            teacher.tokenizer.encode(req.text.slice(a, b)).ids.length <= contextT &&
            student.tokenizer.encode(req.text.slice(a, b)).ids.length <= contextS,
          () => new UsageError("a single token of the text does not fit the models' context"),
        );

  const ids: number[] = [];
  const windows: [number, number][] = [];
  const spans: AlignedSpan[] = [];
  const rows: TokenRow[] = [];
  let [teacherTokens, teacherMs, studentMs, metricsMs] = [0, 0, 0, 0];
  for (const [k, [a, b]] of pieces.entries()) {
    check();
    const text = req.text.slice(a, b);
    let t = performance.now();
    const pieceT = pieces.length === 1 ? encT : teacher.tokenizer.encode(text);
    const pieceS = pieces.length === 1 ? encS : student.tokenizer.encode(text);
    tokenizeMs += pieces.length === 1 ? 0 : performance.now() - t;
    const part = pieces.length > 1 ? `piece ${k + 1}/${pieces.length}: ` : '';
    c.onProgress?.(`${part}teacher forward pass`, k / pieces.length);
    t = performance.now();
    const teacherPass = tokenPass(await teacher.lm.forward(pieceT.ids), pieceT.ids);
    teacherMs += performance.now() - t;
    check();
    c.onProgress?.(`${part}student forward pass`, (k + 0.5) / pieces.length);
    t = performance.now();
    const studentPass = tokenPass(await student.lm.forward(pieceS.ids), pieceS.ids);
    studentMs += performance.now() - t;
    t = performance.now();
    const pieceSpans = alignSpans(
      text,
      { spans: pieceT.spans, logp: teacherPass.logp },
      { spans: pieceS.spans, logp: studentPass.logp },
    );
    for (const span of pieceSpans) {
      // ULD on each span's merged rows: a cross-vocabulary approximation beside the exact numbers
      span.uld = sortedL1(
        mergedRow(teacherPass, teacherPass.logp, span.teacherFirst, span.teacherTokens),
        mergedRow(studentPass, studentPass.logp, span.studentFirst, span.studentTokens),
      );
      span.teacherPieces = tokenTexts(teacher.tokenizer, pieceT.ids, span.teacherFirst, span.teacherTokens);
      span.studentPieces = tokenTexts(student.tokenizer, pieceS.ids, span.studentFirst, span.studentTokens);
    }
    const pieceRows = studentRows(pieceSpans, studentPass, pieceS, student.tokenizer, req.options.topK);
    // offsets into the whole text, indices into the pieces' tokens one after the other
    for (const span of pieceSpans) {
      span.start += a;
      span.end += a;
      span.studentFirst += ids.length;
      span.teacherFirst += teacherTokens;
    }
    for (const row of pieceRows) {
      row.start += a;
      row.end += a;
      row.index += ids.length;
      row.span! += spans.length;
    }
    windows.push([ids.length, ids.length + pieceS.ids.length]);
    ids.push(...pieceS.ids);
    teacherTokens += pieceT.ids.length;
    spans.push(...pieceSpans);
    rows.push(...pieceRows);
    metricsMs += performance.now() - t;
  }
  return {
    ids,
    rows,
    summary: summarize(rows, shownMetric(req.metric, true)),
    teacher: modelReport(teacher),
    student: modelReport(student),
    windows,
    exactSpans: true,
    messages: [
      ...new Set([...teacher.lm.info.messages, ...student.lm.info.messages]),
      `the teacher and the student tokenize differently (${encT.ids.length} and ${encS.ids.length} tokens): compared exactly on ${spans.length} spans, between the places where both tokenizations start a token; per-token divergences need one vocabulary, so each student token shows its span's k1–k3`,
    ],
    ...(pieces.length > 1
      ? {
          windowNotice: `the text is longer than a model's context (teacher ${contextT}, student ${contextS} tokens): compared in ${pieces.length} pieces, cut where the student starts a token, each read from its own start`,
        }
      : {}),
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

function tokenTexts(tokenizer: TextTokenizer, ids: number[], first: number, count: number): string[] {
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
