/**
 * Scoring sampled continuations with both models: every generated token gets the inspection's
 * row (all metrics, from both full distributions at its position) and the quantities that
 * only make sense on samples (docs/metrics.md, "Sampled text"):
 *
 *   r_t = log p(y_t) − log q(y_t)                 MiniLLM's per-token reward (T = 1)
 *   R_t = Σ_{s ≥ t} r_s                           its return to the end
 *   R̄_t = R_t / (n − t)                           length-normalised over the n − t tokens left
 *   k1 = −r_t, k3 = e^{r_t} − 1 − r_t             estimators of KL(q‖p) when y_t ~ q
 *   void: p(y_t) < threshold                      the student wrote where the teacher has no mass
 *
 * and per continuation Σ r_t, Σ k1, Σ k3, the exact Σ_t KL(q_t‖p_t), length, finish, and the
 * share of distinct 2- and 3-grams; over the continuations, means with standard errors.
 */
import { UsageError } from '../core/errors';
import { markHard, type MetricOptions } from '../core/tokenRows';
import type { LanguageModel } from '../models/languageModel';
import type { TextTokenizer } from '../models/tokenizer';
import { MetricsRunner, type RowSource } from '../inspect/metricsRunner';
import { ContinuationText } from './continuationText';
import type {
  MeanWithError,
  Sample,
  SampledTokenRow,
  SampleSummary,
  ScoredSample,
} from '../shared/generation';

export type {
  MeanWithError,
  SampledTokenRow,
  SampleSummary,
  ScoredSample,
  SequenceValues,
} from '../shared/generation';

export interface ScoringOptions {
  metrics: MetricOptions;
  /** a token the teacher gives less probability than this is void */
  voidThreshold: number;
}

function distinct(ids: number[], n: number): number {
  const grams = ids.length - n + 1;
  if (grams <= 0) return 0;
  const seen = new Set<string>();
  for (let i = 0; i < grams; i++) seen.add(ids.slice(i, i + n).join(','));
  return seen.size / grams;
}

export async function scoreSamples(
  teacher: LanguageModel,
  student: LanguageModel,
  tokenizer: TextTokenizer,
  samples: Sample[],
  o: ScoringOptions,
  runner: MetricsRunner,
  checkCancelled: () => void = () => {},
): Promise<ScoredSample[]> {
  if (
    teacher.vocabSize !== undefined &&
    student.vocabSize !== undefined &&
    teacher.vocabSize !== student.vocabSize
  )
    throw new UsageError(
      `the teacher has ${teacher.vocabSize} tokens and the student ${student.vocabSize}: scoring needs one vocabulary`,
    );
  const scored: ScoredSample[] = [];
  for (const sample of samples) {
    checkCancelled();
    const continuation = sample.ids.slice(sample.promptTokens);
    // both models read the prompt and the continuation; position t − 1 predicts token t
    const [tl, sl] = [await teacher.forward(sample.ids), await student.forward(sample.ids)];
    if (tl.type !== sl.type)
      throw new UsageError('the teacher and the student give logits of different types');
    // each token's span in the continuation's text as it reads after the prompt
    const text = new ContinuationText(tokenizer, sample.ids.slice(0, sample.promptTokens));
    const offsets = continuation.map((_, i) => text.of(continuation.slice(0, i)).length);
    const sources: RowSource[] = continuation.map((id, i) => ({
      position: sample.promptTokens + i - 1,
      target: id,
      index: sample.promptTokens + i,
      text: tokenizer.tokenText(id),
      start: offsets[i],
      end: i + 1 < offsets.length ? offsets[i + 1] : sample.text.length,
    }));
    const rows = await runner.rows(
      tl.data,
      sl.data,
      tl.type,
      tl.vocab,
      sources,
      o.metrics,
      (id) => tokenizer.tokenText(id),
      checkCancelled,
    );
    markHard(rows);
    // rewards, then returns from the end
    const rewards = rows.map((r) => r.teacher.logp - r.student.logp);
    const returns = new Array<number>(rows.length);
    for (let t = rows.length - 1, acc = 0; t >= 0; t--) returns[t] = acc += rewards[t];
    const sampledRows: SampledTokenRow[] = rows.map((r, t) => ({
      ...r,
      logpTeacher: r.teacher.logp,
      logpStudent: r.student.logp,
      logRatio: rewards[t],
      reward: rewards[t],
      return: returns[t],
      normalizedReturn: returns[t] / (rows.length - t),
      void: Math.exp(r.teacher.logp) < o.voidThreshold,
    }));
    const sum = (f: (r: SampledTokenRow) => number) => sampledRows.reduce((a, r) => a + f(r), 0);
    scored.push({
      ...sample,
      rows: sampledRows,
      sequence: {
        logRatio: sum((r) => r.logRatio),
        reverseKl: sum((r) => r.rkl),
        // at T = 1 like the rewards (the rows' own k1–k3 follow the metrics' temperature)
        k1: sum((r) => -r.reward),
        k3: sum((r) => Math.expm1(r.reward) - r.reward),
        length: rows.length,
        finish: sample.finish,
        distinct2: distinct(continuation, 2),
        distinct3: distinct(continuation, 3),
        voidTokens: sampledRows.filter((r) => r.void).length,
      },
    });
  }
  return scored;
}

/** Means and standard errors of the per-continuation values. */
export function summarizeSamples(samples: ScoredSample[]): SampleSummary {
  const n = samples.length;
  const stat = (f: (s: ScoredSample) => number): MeanWithError => {
    const xs = samples.map(f);
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    if (n < 2) return { mean, standardError: null };
    const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
    return { mean, standardError: Math.sqrt(variance / n) };
  };
  return {
    samples: n,
    logRatio: stat((s) => s.sequence.logRatio),
    reverseKl: stat((s) => s.sequence.reverseKl),
    k1: stat((s) => s.sequence.k1),
    k3: stat((s) => s.sequence.k3),
    length: stat((s) => s.sequence.length),
    distinct2: stat((s) => s.sequence.distinct2),
    distinct3: stat((s) => s.sequence.distinct3),
    voidTokens: stat((s) => s.sequence.voidTokens),
  };
}
