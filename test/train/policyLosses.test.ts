/**
 * The on-policy methods' pieces against independent references: the rollout side (rewards,
 * returns, length normalisation, whitening over valid tokens, the mix's importance weight)
 * against hand-derived numbers; the policy-gradient losses (on-policy, MiniLLM with its PPO
 * clip and single-step term), built as the training graph builds them and run in float64,
 * against a plain float64 reference for the value and central finite differences of that
 * reference for the gradient; at θ = θ_old the on-policy gradient is −A·∇log q (the detach
 * points: A, w and log q_old carry no gradient); masked rows get none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/onnx/graphBuilder';
import { lossGradientSession } from './lossGraph';
import { buildPolicyLoss, type PolicyLossOptions } from '../../src/train/losses';
import {
  miniLlmAdvantages,
  mixImportanceWeight,
  onPolicyAdvantages,
  whiten,
} from '../../src/train/advantages';
import { gaussian, rng } from '../reference/kdReference';

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('MiniLLM advantages: scaled and clipped rewards, discounted returns from t, length-normalised, whitened over valid tokens only', () => {
  // completion 1: log p − log q = 0.5, −1, 0 → r = 1, −2, 0 (÷ 0.5); completion 2: −2 → r = −4
  const completions = [
    { logpTeacher: [-1, -2, -0.5], oldLogpStudent: [-1.5, -1, -0.5] },
    { logpTeacher: [-3], oldLogpStudent: [-1] },
  ];
  const o = { rewardScaling: 0.5, rewardClip: 100, gamma: 0.5, from: 't' as const };
  const a = miniLlmAdvantages(completions, o);
  assert.deepEqual(a.rewards, [[1, -2, 0], [-4]]);
  // R_2 = 0, R_1 = −2 + 0.5·0 = −2, R_0 = 1 + 0.5·(−2) = 0; R = −4
  assert.deepEqual(a.returns, [[0, -2, 0], [-4]]);
  // ÷ remaining tokens (3, 2, 1; 1): 0, −1, 0; −4. Mean −1.25, unbiased variance 10.75 / 3
  const sd = Math.sqrt(10.75 / 3 + 1e-8);
  const expected = [[1.25 / sd, 0.25 / sd, 1.25 / sd], [-2.75 / sd]];
  a.advantages
    .flat()
    .forEach((v, i) => assert.ok(close(v, expected.flat()[i]), `${v} vs ${expected.flat()[i]}`));
  // whitening over the B × T grid with padding zeros (LMOps) would give other numbers
  const padded = whiten([
    [0, -1, 0],
    [-4, 0, 0],
  ]);
  assert.ok(Math.abs(padded[1][0] - a.advantages[1][0]) > 0.1);

  // the reward clip; the paper's variant: Σ_{t' > t} r_t' / (n − t − 1), 0 at the last token
  assert.deepEqual(miniLlmAdvantages(completions, { ...o, rewardClip: 1.5 }).rewards, [[1, -1.5, 0], [-1.5]]);
  const paper = miniLlmAdvantages(completions, { ...o, from: 't+1' });
  assert.deepEqual(paper.returns, [[-2, 0, 0], [0]]);
  // before whitening: −2/2, 0/1, 0, 0 → mean −0.25, unbiased variance 0.75 / 3
  const sd2 = Math.sqrt(0.75 / 3 + 1e-8);
  [-0.75 / sd2, 0.25 / sd2, 0.25 / sd2, 0.25 / sd2].forEach((v, i) =>
    assert.ok(close(paper.advantages.flat()[i], v), `paper ${i}`),
  );
});

test('on-policy advantages and the mix importance weight', () => {
  assert.deepEqual(onPolicyAdvantages([{ logpTeacher: [-1, -3], oldLogpStudent: [-2, -1] }]), [[1, -2]]);
  // q = 0.5, p = 0.1, α = 0.2: w = 0.5 / (0.2·0.1 + 0.8·0.5) = 0.5 / 0.42
  assert.ok(close(mixImportanceWeight(Math.log(0.5), Math.log(0.1), 0.2), 0.5 / 0.42));
  assert.equal(mixImportanceWeight(Math.log(0.3), Math.log(0.9), 0), 1, 'no mixing: w = 1');
});

// ---- the losses ----

const M = 6;
const V = 7;
const MASK = [1, 1, 0, 1, 1, 1];
/** the pre-training term's rows (disjoint from the completion rows in a run; overlapping here does not matter) */
const PT_MASK = [0, 0, 1, 0, 1, 1];

function logSoftmax(z: number[], T: number): number[] {
  const s = z.map((v) => v / T);
  const m = Math.max(...s);
  const lse = m + Math.log(s.reduce((a, v) => a + Math.exp(v - m), 0));
  return s.map((v) => v - lse);
}

interface Batch {
  zs: number[][];
  zt: number[][];
  ys: number[];
  old: number[];
  adv: number[];
  w: number[];
}

/** The loss written from its definition, in float64. */
function referenceLoss(b: Batch, o: PolicyLossOptions, withWeights: boolean): number {
  let total = 0;
  let count = 0;
  for (let i = 0; i < M; i++) {
    if (!MASK[i]) continue;
    count++;
    const ls = logSoftmax(b.zs[i], o.temperature);
    const ratio = Math.exp(ls[b.ys[i]] - b.old[i]);
    if (o.kind === 'onpolicy') {
      total += -ratio * b.adv[i];
      continue;
    }
    const rho = ratio * (withWeights ? b.w[i] : 1);
    const clipped = Math.min(Math.max(rho, 1 - o.clip), 1 + o.clip);
    total += Math.max(-b.adv[i] * rho, -b.adv[i] * clipped);
    if (o.singleStep) {
      const lp = logSoftmax(b.zt[i], o.temperature);
      total += ls.reduce((a, l, v) => a + Math.exp(l) * (l - lp[v]), 0);
    }
  }
  let loss = total / Math.max(1, count);
  if (o.pretrain) {
    // the plain-text rows (PT_MASK): (1 − r)·mean(−log q_y) + r·mean(−Σ p log q), at T = 1
    let ce = 0;
    let softCe = 0;
    let n = 0;
    for (let i = 0; i < M; i++) {
      if (!PT_MASK[i]) continue;
      n++;
      const lq = logSoftmax(b.zs[i], 1);
      const lp = logSoftmax(b.zt[i], 1);
      ce += -lq[b.ys[i]];
      softCe += -lp.reduce((a, l, v) => a + Math.exp(l) * lq[v], 0);
    }
    const r = o.pretrain.kdRatio;
    loss += o.pretrain.coef * ((1 - r) * (ce / n) + r * (softCe / n));
  }
  return loss;
}

async function graphLossAndGradient(
  b: Batch,
  o: PolicyLossOptions,
  withWeights: boolean,
): Promise<{ loss: number; grad: Float64Array }> {
  const g = new GraphBuilder('policy');
  const student = g.input('student', 'float32', [M, V]);
  const teacher = g.input('teacher', 'float32', [M, V]);
  const loss = buildPolicyLoss(
    g,
    {
      student,
      teacher,
      targets: g.input('targets', 'int64', [M, 1]),
      mask: g.input('mask', 'float32', [M]),
      oldLogp: g.input('old', 'float32', [M]),
      advantages: g.input('adv', 'float32', [M]),
      weights: withWeights ? g.input('w', 'float32', [M]) : undefined,
      ptMask: o.pretrain ? g.input('pt', 'float32', [M]) : undefined,
      rows: M,
      vocab: V,
    },
    o,
  );
  const session = await lossGradientSession(g, loss, student, M, V);
  const f64 = (v: number[], dims: number[]) => new ort.Tensor('float64', Float64Array.from(v), dims);
  const feeds: Record<string, ort.Tensor> = {
    student: f64(b.zs.flat(), [M, V]),
    teacher: f64(b.zt.flat(), [M, V]),
    targets: new ort.Tensor('int64', BigInt64Array.from(b.ys.map(BigInt)), [M, 1]),
    mask: f64(MASK, [M]),
    old: f64(b.old, [M]),
    adv: f64(b.adv, [M]),
  };
  if (withWeights) feeds.w = f64(b.w, [M]);
  feeds.pt = f64(PT_MASK, [M]);
  // an input the graph does not read (the teacher without the single-step term) is not fed
  for (const name of Object.keys(feeds)) if (!session.inputNames.includes(name)) delete feeds[name];
  const out = await session.run(feeds);
  await session.release();
  return { loss: Number(out.loss.data[0]), grad: out.grad.data as Float64Array };
}

/** A batch whose ratios range on both sides of the clip interval. */
function batch(seed: number, T: number): Batch {
  const r = rng(seed);
  const zs = Array.from({ length: M }, () => Array.from({ length: V }, () => 1.5 * gaussian(r)));
  const zt = Array.from({ length: M }, () => Array.from({ length: V }, () => 2 * gaussian(r)));
  const ys = [3, 0, 5, 2, 6, 1];
  // θ_old a little away from θ: ratios from about 0.55 to 1.8
  const old = ys.map((y, i) => logSoftmax(zs[i], T)[y] + [0.6, -0.5, 0.2, -0.3, 0.45, 0.1][i]);
  const adv = [1.3, -0.7, 0.4, 0.9, -1.6, -0.2];
  const w = [0.6, 1.4, 1, 1.1, 0.9, 1.3];
  return { zs, zt, ys, old, adv, w };
}

const CASES: [PolicyLossOptions, boolean][] = [
  [{ kind: 'onpolicy', temperature: 1, clip: 0, singleStep: false }, false],
  [{ kind: 'onpolicy', temperature: 0.9, clip: 0, singleStep: false }, false],
  [{ kind: 'minillm', temperature: 1, clip: 0.2, singleStep: false }, false],
  [{ kind: 'minillm', temperature: 1, clip: 0.2, singleStep: true }, true],
  [{ kind: 'minillm', temperature: 1.2, clip: 0.1, singleStep: true }, true],
  [
    { kind: 'minillm', temperature: 1, clip: 0.2, singleStep: true, pretrain: { kdRatio: 0.5, coef: 1 } },
    true,
  ],
  [
    { kind: 'minillm', temperature: 1, clip: 0.2, singleStep: true, pretrain: { kdRatio: 0.2, coef: 0.7 } },
    true,
  ],
];

test('policy losses: value and logit gradient agree with the float64 reference and its finite differences', async () => {
  for (const [o, withWeights] of CASES) {
    const label = JSON.stringify(o) + (withWeights ? ' with w' : '');
    const b = batch(5, o.temperature);
    const { loss, grad } = await graphLossAndGradient(b, o, withWeights);
    const ref = referenceLoss(b, o, withWeights);
    assert.ok(close(loss, ref, 1e-10), `${label}: loss ${loss} vs reference ${ref}`);
    const h = 1e-6;
    let maxErr = 0;
    let maxGrad = 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < V; j++) {
        const at = (d: number) => {
          const zs = b.zs.map((row) => [...row]);
          zs[i][j] += d;
          return referenceLoss({ ...b, zs }, o, withWeights);
        };
        const fd = (at(h) - at(-h)) / (2 * h);
        maxErr = Math.max(maxErr, Math.abs(fd - grad[i * V + j]));
        maxGrad = Math.max(maxGrad, Math.abs(fd));
      }
    assert.ok(maxErr < 1e-7, `${label}: max |gradient − finite difference| = ${maxErr}`);
    assert.ok(maxGrad > 1e-3, `${label}: the gradient is not trivially zero`);
    // row 2 is masked out of the completion rows (and is a pre-training row when there is that term)
    if (!o.pretrain)
      assert.ok(
        grad.slice(2 * V, 3 * V).every((v) => v === 0),
        `${label}: the masked row gets no gradient`,
      );
  }
  // the clip is exercised: some ratio·w lies outside [1 − ε, 1 + ε] with the gradient cut there
  const b = batch(5, 1);
  const rho = b.ys.map((y, i) => Math.exp(logSoftmax(b.zs[i], 1)[y] - b.old[i]) * b.w[i]);
  assert.ok(rho.some((v, i) => MASK[i] && v < 0.8) && rho.some((v, i) => MASK[i] && v > 1.2), rho.join(', '));
});

test('on the first pass (θ = θ_old) the on-policy gradient is −A·∇log q(y): no gradient through A or log q_old', async () => {
  const o: PolicyLossOptions = { kind: 'onpolicy', temperature: 1, clip: 0, singleStep: false };
  const b = batch(9, 1);
  b.old = b.ys.map((y, i) => logSoftmax(b.zs[i], 1)[y]);
  const { grad } = await graphLossAndGradient(b, o, false);
  const n = MASK.reduce((a, m) => a + m, 0);
  for (let i = 0; i < M; i++) {
    const q = logSoftmax(b.zs[i], 1).map(Math.exp);
    for (let j = 0; j < V; j++) {
      // ∂(−A·log q_y)/∂z_j = −A·(1[j = y] − q_j), averaged over the n valid tokens
      const expected = MASK[i] ? (-b.adv[i] * ((j === b.ys[i] ? 1 : 0) - q[j])) / n : 0;
      assert.ok(Math.abs(grad[i * V + j] - expected) < 1e-12, `row ${i}, logit ${j}`);
    }
  }
});
