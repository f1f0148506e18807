/**
 * Metrics when only the teacher's most probable tokens are known: a teacher served by an
 * inference engine returns, per prompt position, its top K ids with their log-probabilities
 * and the log-probability of the actual token (vLLM's prompt_logprobs, SGLang's
 * input_top_logprobs). The student runs here and gives its full row. Per position:
 *
 *   buckets   the teacher's listed ids, the target (its own bucket whether listed or not), and
 *             one bucket "rest" for every other id of the vocabulary
 *   p_b       exp(log p_b) for each listed id and the target;  p_rest = 1 − Σ_listed p_b
 *   q_b       softmax(z_S)_b;  q_rest = Σ over the unlisted ids, summed directly
 *
 * Every distribution metric is then the metric of these two (K + 2)-bucket distributions,
 * computed exactly (float64) by the same formulas as the full-vocabulary ones
 * (rowFromReductions). What that means for each (docs/metrics.md, "A served teacher"):
 *
 *   exact          log p_y and log q_y, k1–k3, tckd, uncertainty (1 − p_y), the student's rank
 *   lower bounds   fkl, rkl, jeffreys, jsd, gjsd, tvd, skl, srkl, nckd: merging outcomes can
 *                  only lower an f-divergence (data-processing inequality), and the mixtures
 *                  of gjsd/skl/srkl merge with them
 *   neither        akl (its head/tail weights are taken over the buckets), the teacher's entropy
 *                  (the rest bucket's entropy is missing), the teacher's rank when the target is
 *                  unlisted and the server does not say it (NaN)
 *
 * Only temperature 1: the server's log-probabilities are the model's own (T = 1), and the rest
 * bucket's mass at another temperature would need the logits it merges.
 */
import {
  rowFromReductions,
  type MetricOptions,
  type PositionReductions,
  type RowContext,
  type TokenRow,
} from './tokenRows';
import type { AklBoundary } from './aklHead';

/** One prompt position as a served teacher gives it (log-probabilities at T = 1). */
export interface ServedTeacherRow {
  /** log p of the actual next token */
  targetLogp: number;
  /** its 1-based rank in the teacher's whole vocabulary, when the server says it (vLLM does) */
  targetRank?: number;
  /** the teacher's most probable ids, each with its log p (any order; sorted here) */
  top: { id: number; logp: number }[];
}

/** An AKL boundary that settles nothing, so the caller's full split (over the buckets) is used. */
const UNSETTLED: AklBoundary = { found: true, massBefore: 0, diffBefore: 0, members: [] };

export interface BucketedPosition {
  reductions: PositionReductions;
  /** AKL's head/tail weights over the buckets */
  akl: { wHead: number; wTail: number };
  /** the bucket distributions (listed ids, then the target if unlisted, then the rest) */
  p: Float64Array;
  q: Float64Array;
}

/**
 * The reductions of one position over the buckets. `student` is the student's logits row at
 * T = 1 (length V), `target` the next token's id; `o` gives β, α, μ and how many top tokens.
 */
export function bucketedPosition(
  teacher: ServedTeacherRow,
  student: ArrayLike<number>,
  target: number,
  o: MetricOptions,
): BucketedPosition {
  if (o.temperature !== 1)
    throw new RangeError(`a served teacher's log-probabilities are at temperature 1, not ${o.temperature}`);
  const V = student.length;
  const listed = [...teacher.top].sort((a, b) => b.logp - a.logp || a.id - b.id);
  const ids = listed.map((t) => t.id);
  const logp = listed.map((t) => t.logp);
  if (!ids.includes(target)) {
    ids.push(target);
    logp.push(teacher.targetLogp);
  }
  const n = ids.length;

  // the student's row: log-softmax at T = 1 in float64
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (student[v] > max) max = student[v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(student[v] - max);
  const logZ = max + Math.log(sum);
  const isListed = new Set(ids);
  let qRest = 0;
  let rankS = 0;
  const zY = student[target];
  let nonTargetS = 0;
  const topS: { logq: number; id: number }[] = []; // the student's top entries, descending
  for (let v = 0; v < V; v++) {
    const qv = Math.exp(student[v] - logZ);
    if (!isListed.has(v)) qRest += qv;
    if (v !== target) nonTargetS += qv;
    if (student[v] > zY) rankS++;
    if (topS.length < o.topK || student[v] - logZ > topS[topS.length - 1].logq) {
      topS.push({ logq: student[v] - logZ, id: v });
      topS.sort((a, b) => b.logq - a.logq || a.id - b.id);
      if (topS.length > o.topK) topS.pop();
    }
  }

  // the bucket distributions: listed ids (and the target), then the rest
  const p = new Float64Array(n + 1);
  const q = new Float64Array(n + 1);
  let listedP = 0;
  for (let b = 0; b < n; b++) {
    p[b] = Math.exp(logp[b]);
    q[b] = Math.exp(student[ids[b]] - logZ);
    listedP += p[b];
  }
  // a server's rounding can make the listed mass exceed 1 by a hair: the rest is then empty;
  // so it is when every id is listed (what is left of 1 is rounding, not mass)
  p[n] = n >= V ? 0 : Math.max(0, 1 - listedP);
  q[n] = qRest;

  // Σ over the buckets of the terms every metric is built from (tokenRows.ts)
  const y = ids.indexOf(target);
  const xlogy = (x: number, z: number) => (x === 0 ? 0 : x * Math.log(z));
  const { beta, alpha } = o;
  const r = {
    entT: 0,
    entS: 0,
    crossPQ: 0,
    crossQP: 0,
    sumSLogS: 0,
    gjsdP: 0,
    gjsdQ: 0,
    sklP: 0,
    srklQ: 0,
    l1: 0,
    nckd: 0,
  };
  const pNonTarget = -Math.expm1(teacher.targetLogp);
  const qNonTarget = nonTargetS;
  for (let b = 0; b <= n; b++) {
    const [pb, qb] = [p[b], q[b]];
    r.entT -= xlogy(pb, pb);
    r.entS -= xlogy(qb, qb);
    r.crossPQ += xlogy(pb, qb);
    r.crossQP += xlogy(qb, pb);
    r.sumSLogS += xlogy(pb + qb, pb + qb);
    const m = beta * pb + (1 - beta) * qb;
    r.gjsdP += xlogy(pb, m);
    r.gjsdQ += xlogy(qb, m);
    r.sklP += xlogy(pb, alpha * pb + (1 - alpha) * qb);
    r.srklQ += xlogy(qb, (1 - alpha) * pb + alpha * qb);
    r.l1 += Math.abs(pb - qb);
    // KL(p̂ ‖ q̂) over the non-target buckets, each distribution renormalised
    if (b !== y && pb > 0) r.nckd += (pb / pNonTarget) * Math.log(pb / pNonTarget / (qb / qNonTarget));
  }

  const top = listed.map((t) => ({ logp: t.logp, id: t.id }));
  const reductions: PositionReductions = {
    ...r,
    logpY: teacher.targetLogp,
    logqY: zY - logZ,
    // 1 − p_y from p_y's logarithm (exact however close p_y is to 1); the student's by its sum
    logNonTargetT: Math.log(-Math.expm1(teacher.targetLogp)),
    logNonTargetS: Math.log(nonTargetS),
    nllT: -teacher.targetLogp,
    nllS: logZ - zY,
    rankT: teacher.targetRank !== undefined ? teacher.targetRank - 1 : listedRank(listed, target),
    rankS,
    topT: top,
    topS,
    aklHead: UNSETTLED,
  };
  return { reductions, akl: aklOverBuckets(p, q, o.mu), p, q };
}

/** The target's 0-based rank among the listed ids, or NaN when it is not listed. */
function listedRank(listed: { id: number; logp: number }[], target: number): number {
  const i = listed.findIndex((t) => t.id === target);
  return i >= 0 ? i : NaN;
}

/** AKL's split on the bucket distributions: the head is the leading buckets by p with cumulative p ≤ μ (at least one). */
function aklOverBuckets(p: Float64Array, q: Float64Array, mu: number): { wHead: number; wTail: number } {
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
  let mass = 0;
  let gHead = 0;
  let gTail = 0;
  let inHead = true;
  order.forEach((b, k) => {
    mass += p[b];
    if (k > 0 && mass > mu) inHead = false;
    if (inHead) gHead += Math.abs(p[b] - q[b]);
    else gTail += Math.abs(p[b] - q[b]);
  });
  const total = gHead + gTail;
  return total === 0 ? { wHead: 0, wTail: 0 } : { wHead: gHead / total, wTail: gTail / total };
}

/** One row of the analysis from a served teacher's position and the student's logits row. */
export function bucketedRow(
  teacher: ServedTeacherRow,
  student: ArrayLike<number>,
  o: MetricOptions,
  c: Omit<RowContext, 'aklFallback'>,
): TokenRow {
  const { reductions, akl } = bucketedPosition(teacher, student, c.target, o);
  return rowFromReductions(reductions, o, { ...c, aklFallback: () => akl });
}
