/**
 * Turns per-position reductions (from the fused metrics graph) into the rows and summary
 * of docs/metrics.md. Pure TypeScript on numbers: no ONNX Runtime, no vscode.
 */
import type { MetricKey } from './metricKeys';
import { METRIC_KEYS } from './metricKeys';
import { aklWeightsFromBoundary, type AklBoundary } from './aklHead';

export interface MetricOptions {
  temperature: number;
  /** gjsd β */
  beta: number;
  /** skl / srkl α */
  alpha: number;
  /** AKL head mass μ */
  mu: number;
  /** how many top tokens per model each row lists */
  topK: number;
}

export const DEFAULT_METRIC_OPTIONS: MetricOptions = {
  temperature: 1,
  beta: 0.5,
  alpha: 0.1,
  mu: 0.5,
  topK: 5,
};

/** The reductions the metrics graph returns for one position (all natural logs). */
export interface PositionReductions {
  entT: number; // H(p)
  entS: number; // H(q)
  crossPQ: number; // Σ p log q
  crossQP: number; // Σ q log p
  sumSLogS: number; // Σ (p+q) log(p+q)
  gjsdP: number; // Σ p log(βp+(1−β)q)
  gjsdQ: number; // Σ q log(βp+(1−β)q)
  sklP: number; // Σ p log(αp+(1−α)q)
  srklQ: number; // Σ q log((1−α)p+αq)
  l1: number; // Σ |p − q|
  logpY: number; // log p_y at T
  logqY: number; // log q_y at T
  logNonTargetT: number; // log Σ_{j≠y} p_j = log(1 − p_y), summed directly
  logNonTargetS: number; // log Σ_{j≠y} q_j
  nckd: number; // KL(p̂ ‖ q̂) over the non-target tokens, summed directly
  nllT: number; // −log p_y at T = 1
  nllS: number; // −log q_y at T = 1
  rankT: number; // 0-based count of strictly more probable tokens
  rankS: number;
  /** teacher's top entries, descending: log p, id */
  topT: { logp: number; id: number }[];
  /** student's top entries, descending: log q, id */
  topS: { logq: number; id: number }[];
  /** where AKL's head ends (metrics graph) */
  aklHead: AklBoundary;
}

export interface TopToken {
  id: number;
  text: string;
  p: number;
}

export interface ModelValues {
  /** probability of the target at T */
  p: number;
  /** log-probability of the target at T = 1 */
  logp: number;
  /** 1-based rank of the target */
  rank: number;
  /** entropy at T */
  entropy: number;
  top: TopToken[];
}

export type MetricValues = Record<MetricKey, number>;

export interface TokenRow extends MetricValues {
  /** index of this row's target in the token id sequence */
  index: number;
  target: number;
  /** decoded text of the target token */
  text: string;
  /** UTF-16 span of the token in the analysed text */
  start: number;
  end: number;
  hard: boolean;
  argmaxAgree: boolean;
  teacher: ModelValues;
  student: ModelValues;
  /**
   * A pair whose tokenizers differ: the index in the result's `spans` of the span holding this
   * student token. k1–k3 are then the span's (exact), every other metric NaN, and the teacher's
   * values NaN: per-token distributions need one vocabulary.
   */
  span?: number;
}

const LOG2 = Math.log(2);
const nonNegative = (x: number) => (x < 0 ? 0 : x); // KL ≥ 0; cancellation can leave −1e−16

export interface RowContext {
  index: number;
  target: number;
  text: string;
  start: number;
  end: number;
  decode: (id: number) => string;
  /** full-row AKL split; called only when the graph's boundary bucket does not settle the head */
  aklFallback: () => { wHead: number; wTail: number };
}

/** Builds one row (without `hard`, which needs all rows) from a position's reductions. */
export function rowFromReductions(r: PositionReductions, o: MetricOptions, c: RowContext): TokenRow {
  const fkl = nonNegative(-r.entT - r.crossPQ);
  const rkl = nonNegative(-r.entS - r.crossQP);
  const jsd = nonNegative(LOG2 - 0.5 * (r.entT + r.entS) - 0.5 * r.sumSLogS);
  let gjsd: number;
  if (o.beta === 0) gjsd = fkl;
  else if (o.beta === 1) gjsd = rkl;
  else if (o.beta === 0.5) gjsd = jsd;
  else gjsd = nonNegative(o.beta * (-r.entT - r.gjsdP) + (1 - o.beta) * (-r.entS - r.gjsdQ));
  const skl = nonNegative(-r.entT - r.sklP);
  const srkl = nonNegative(-r.entS - r.srklQ);
  const tvd = 0.5 * r.l1;

  const pY = Math.exp(r.logpY);
  const qY = Math.exp(r.logqY);
  // 1 − p_y from its own sum over the other tokens (not 1 − p_y, which rounds to 0 when
  // the teacher is nearly sure): every digit of the dark knowledge kept; 1 − q_y enters
  // through its log below
  const uP = Math.exp(r.logNonTargetT);
  const xlogxy = (x: number, lx: number, ly: number) => (x === 0 ? 0 : x * (lx - ly));
  const tckd = nonNegative(xlogxy(pY, r.logpY, r.logqY) + xlogxy(uP, r.logNonTargetT, r.logNonTargetS));
  // summed over the non-target tokens directly in the metrics graph (docs/metrics.md)
  const nckd = uP === 0 ? 0 : nonNegative(r.nckd);

  const w = aklWeightsFromBoundary(r.aklHead, r.l1, o.mu) ?? c.aklFallback();
  const akl = w.wHead * fkl + w.wTail * rkl;

  const logR = r.logpY - r.logqY;
  const top = (entries: { lp: number; id: number }[]) =>
    entries.slice(0, o.topK).map((e) => ({ id: e.id, text: c.decode(e.id), p: Math.exp(e.lp) }));
  return {
    index: c.index,
    target: c.target,
    text: c.text,
    start: c.start,
    end: c.end,
    fkl,
    rkl,
    jeffreys: 0.5 * (fkl + rkl),
    jsd,
    gjsd,
    tvd,
    skl,
    srkl,
    akl,
    tckd,
    nckd,
    uncertainty: uP,
    hard: false,
    k1: -logR,
    k2: 0.5 * logR * logR,
    k3: Math.expm1(logR) - logR,
    argmaxAgree: r.topT[0]?.id === r.topS[0]?.id,
    teacher: {
      p: pY,
      logp: -r.nllT,
      rank: r.rankT + 1,
      entropy: r.entT,
      top: top(r.topT.map((t) => ({ lp: t.logp, id: t.id }))),
    },
    student: {
      p: qY,
      logp: -r.nllS,
      rank: r.rankS + 1,
      entropy: r.entS,
      top: top(r.topS.map((t) => ({ lp: t.logq, id: t.id }))),
    },
  };
}

/** torch.median: the lower middle value for an even count. */
export function lowerMedian(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** Marks hard rows: uncertainty ≥ the lower median over the analysed rows. */
export function markHard(rows: TokenRow[]): void {
  const median = lowerMedian(rows.map((r) => r.uncertainty));
  for (const r of rows) r.hard = r.uncertainty >= median;
}

export interface Summary {
  rows: number;
  mean: Record<MetricKey, number>;
  teacherPerplexity: number;
  studentPerplexity: number;
  hardFraction: number;
  argmaxAgreement: number;
  /** the metric the worst list is sorted by */
  metric: MetricKey;
  /** row indices (into rows) of the worst rows by `metric`, worst first */
  worst: number[];
}

export function summarize(rows: TokenRow[], metric: MetricKey, worstCount = 10): Summary {
  const n = rows.length;
  const mean = {} as Record<MetricKey, number>;
  for (const k of METRIC_KEYS) mean[k] = n ? rows.reduce((s, r) => s + r[k], 0) / n : NaN;
  const meanNll = (pick: (r: TokenRow) => number) => (n ? -rows.reduce((s, r) => s + pick(r), 0) / n : NaN);
  const order = rows.map((_, i) => i).sort((a, b) => rows[b][metric] - rows[a][metric]);
  return {
    rows: n,
    mean,
    teacherPerplexity: Math.exp(meanNll((r) => r.teacher.logp)),
    studentPerplexity: Math.exp(meanNll((r) => r.student.logp)),
    hardFraction: n ? rows.filter((r) => r.hard).length / n : NaN,
    argmaxAgreement: n ? rows.filter((r) => r.argmaxAgree).length / n : NaN,
    metric,
    worst: order.slice(0, worstCount),
  };
}
