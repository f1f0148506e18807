/**
 * What Hugging Face's `generate` does to one row of logits before it picks a token, in its
 * order: the repetition penalty (a processor, also in greedy decoding), then, when sampling,
 * the warpers temperature → top-k → top-p → min-p (min_tokens_to_keep = 1). A removed token's
 * score is −∞. Computed in float64 on the model's logits.
 *
 *   repetition penalty r: for every token already in the sequence (prompt included),
 *                         z ← z·r if z < 0, else z / r
 *   temperature T:        z ← z / T
 *   top-k k:              remove z < (the k-th largest z)            (ties with it stay)
 *   top-p P:              sort ascending; remove the tokens whose cumulative probability
 *                         (from the least likely up) is ≤ 1 − P; the most likely always stays
 *   min-p m:              remove p < m·max p; the most likely always stays
 *
 * Ties in the sorts of top-p are taken in token-id order (a stable sort); torch.sort does not
 * promise an order for them.
 */
import type { Rng } from '../core/random';
import type { SamplingOptions } from '../shared/generation';

export type { SamplingOptions };

export const DEFAULT_SAMPLING: SamplingOptions = {
  greedy: false,
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
};

/** Checks the options as `generate` does, with the flag names in the messages. */
export function samplingProblems(o: SamplingOptions): string[] {
  const problems: string[] = [];
  if (!o.greedy && !(o.temperature > 0))
    problems.push('--temperature must be greater than 0 (use --greedy for argmax decoding)');
  if (!(Number.isInteger(o.topK) && o.topK >= 0))
    problems.push('--top-k must be a whole number ≥ 0 (0 turns it off)');
  if (!(o.topP > 0 && o.topP <= 1)) problems.push('--top-p must be in (0, 1]');
  if (!(o.minP >= 0 && o.minP <= 1)) problems.push('--min-p must be in [0, 1]');
  if (!(o.repetitionPenalty > 0)) problems.push('--repetition-penalty must be greater than 0');
  return problems;
}

/** log-sum-exp of the finite scores, for probabilities exp(z − lse). */
export function logSumExp(z: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i] > max) max = z[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < z.length; i++) sum += Math.exp(z[i] - max);
  return max + Math.log(sum);
}

/** The processed scores of one row; `previous` is every token id of the sequence so far. */
export function processLogits(
  logits: ArrayLike<number>,
  previous: ArrayLike<number>,
  o: SamplingOptions,
): Float64Array {
  const z = Float64Array.from(logits);
  const V = z.length;
  if (o.repetitionPenalty !== 1) {
    const seen = new Set<number>();
    for (let i = 0; i < previous.length; i++) seen.add(previous[i]);
    for (const id of seen) {
      if (id < 0 || id >= V) continue;
      z[id] = z[id] < 0 ? z[id] * o.repetitionPenalty : z[id] / o.repetitionPenalty;
    }
  }
  if (o.greedy) return z;
  if (o.temperature !== 1) for (let i = 0; i < V; i++) z[i] /= o.temperature;
  if (o.topK > 0 && o.topK < V) {
    // the k-th largest score: everything strictly below it goes
    const kth = Float64Array.from(z).sort()[V - o.topK];
    for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
  }
  if (o.topP < 1) {
    const lse = logSumExp(z);
    // ascending by score, equal scores in id order
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => z[a] - z[b] || a - b);
    let cumulative = 0;
    const remove: number[] = [];
    for (let r = 0; r < V - 1; r++) {
      // the last (most likely) token always stays
      cumulative += Math.exp(z[order[r]] - lse);
      if (cumulative <= 1 - o.topP) remove.push(order[r]);
      else break;
    }
    for (const i of remove) z[i] = -Infinity;
  }
  if (o.minP > 0) {
    const lse = logSumExp(z);
    let best = 0;
    for (let i = 1; i < V; i++) if (z[i] > z[best]) best = i;
    const threshold = o.minP * Math.exp(z[best] - lse);
    for (let i = 0; i < V; i++) if (i !== best && Math.exp(z[i] - lse) < threshold) z[i] = -Infinity;
  }
  return z;
}

/** softmax of processed scores (removed tokens get 0). */
export function probabilities(scores: Float64Array): Float64Array {
  const lse = logSumExp(scores);
  return scores.map((v) => Math.exp(v - lse));
}

/** The first index of the largest score (torch.argmax). */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** One draw from `probs` by inverse CDF with a seeded uniform, so CPU runs repeat exactly. */
export function drawToken(probs: ArrayLike<number>, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < probs.length; i++) total += probs[i];
  const u = rng() * total;
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last; // u rounded to the very top of the total
}
