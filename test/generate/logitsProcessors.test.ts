/**
 * The logits processors against values derived by hand from Hugging Face's definitions
 * (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
 * TopPLogitsWarper, MinPLogitsWarper, in generate's order), and sampled frequencies against
 * the processed distribution (a χ² test over seeded draws).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  argmax,
  DEFAULT_SAMPLING,
  drawToken,
  probabilities,
  processLogits,
  samplingProblems,
  type SamplingOptions,
} from '../../src/generate/logitsProcessors';
import { seededRandom } from '../../src/core/random';

const o = (x: Partial<SamplingOptions>): SamplingOptions => ({ ...DEFAULT_SAMPLING, ...x });
const kept = (scores: Float64Array) =>
  [...scores].map((v, i) => (v === -Infinity ? -1 : i)).filter((i) => i >= 0);

test('each processor as Hugging Face defines it, on hand-checked rows', () => {
  const z = [2, -1, 0.5, 3, -2];
  // repetition penalty 2 on tokens 0 and 1 (token 1 twice: penalised once): 2/2 = 1, −1·2 = −2
  assert.deepEqual(
    [...processLogits(z, [1, 0, 1], o({ repetitionPenalty: 2, greedy: true }))],
    [1, -2, 0.5, 3, -2],
  );
  // temperature 2 halves every score
  assert.deepEqual([...processLogits(z, [], o({ temperature: 2 }))], [1, -0.5, 0.25, 1.5, -1]);
  // top-k 2 keeps 3 and 2 (ids 3, 0); a tie with the k-th value stays
  assert.deepEqual(kept(processLogits(z, [], o({ topK: 2 }))), [0, 3]);
  assert.deepEqual(kept(processLogits([1, 2, 2, 0], [], o({ topK: 2 }))), [1, 2]);
  assert.deepEqual(kept(processLogits([1, 2, 1, 0], [], o({ topK: 2 }))), [0, 1, 2]);
  // top-p: probabilities of z (ascending: ids 4, 1, 2, 0, 3)
  const p = z.map((v) => Math.exp(v) / z.reduce((s, w) => s + Math.exp(w), 0));
  // cumulative from the least likely: p4, p4+p1, +p2 = 0.0046, 0.0170, 0.0726, …; top-p 0.95
  // removes those with cumulative ≤ 0.05: ids 4 and 1
  const cum = [p[4], p[4] + p[1], p[4] + p[1] + p[2]];
  assert.ok(cum[1] <= 0.05 && cum[2] > 0.05, `cumulative ${cum}`);
  assert.deepEqual(kept(processLogits(z, [], o({ topP: 0.95 }))), [0, 2, 3]);
  // a tiny top-p keeps only the most likely token
  assert.deepEqual(kept(processLogits(z, [], o({ topP: 1e-9 }))), [3]);
  // min-p 0.2: keep p ≥ 0.2·p3, i.e. z ≥ 3 + log 0.2 = 1.39: ids 0 and 3
  assert.deepEqual(kept(processLogits(z, [], o({ minP: 0.2 }))), [0, 3]);
  // the order: temperature before min-p (at T = 4 the least likely has p = 0.0965 ≥ 0.2·0.3369)
  assert.deepEqual(kept(processLogits(z, [], o({ minP: 0.2, temperature: 4 }))), [0, 1, 2, 3, 4]);
  // top-k before top-p: after top-k 3 (ids 0, 2, 3) the renormalised mass of id 2 is 0.0566, so
  // top-p 0.9 (remove cumulative ≤ 0.1) drops id 2 only
  assert.deepEqual(kept(processLogits(z, [], o({ topK: 3, topP: 0.9 }))), [0, 3]);
  // greedy: argmax after the penalty, warpers ignored
  assert.equal(argmax(processLogits(z, [3], o({ greedy: true, repetitionPenalty: 3, topK: 1 }))), 0);
  assert.deepEqual(samplingProblems(o({ temperature: 0 })), [
    '--temperature must be greater than 0 (use --greedy for argmax decoding)',
  ]);
});

test('sampled frequencies follow the processed distribution (χ², 60,000 seeded draws)', () => {
  const r = seededRandom(3);
  const z = Array.from({ length: 12 }, () => 3 * (r() - 0.5));
  for (const options of [
    o({}),
    o({ temperature: 0.7, topK: 8, topP: 0.9 }),
    o({ minP: 0.1, repetitionPenalty: 1.3 }),
  ]) {
    const probs = probabilities(processLogits(z, [2, 5], options));
    const n = 60000;
    const counts = new Array(z.length).fill(0);
    const rng = seededRandom(11);
    for (let i = 0; i < n; i++) counts[drawToken(probs, rng)]++;
    let chi2 = 0;
    let df = -1;
    probs.forEach((pi, i) => {
      if (pi === 0) return assert.equal(counts[i], 0, 'a removed token is never drawn');
      chi2 += (counts[i] - n * pi) ** 2 / (n * pi);
      df++;
    });
    // the 99.9% quantile of χ² with ≤ 11 degrees of freedom is below 32
    assert.ok(chi2 < 32, `χ² = ${chi2.toFixed(1)} with ${df} degrees of freedom`);
  }
  // the same seed gives the same draws
  const a = Array.from(
    { length: 20 },
    (
      (rng) => () =>
        drawToken([0.2, 0.3, 0.5], rng)
    )(seededRandom(5)),
  );
  const b = Array.from(
    { length: 20 },
    (
      (rng) => () =>
        drawToken([0.2, 0.3, 0.5], rng)
    )(seededRandom(5)),
  );
  assert.deepEqual(a, b);
});
