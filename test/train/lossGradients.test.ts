/**
 * Every training loss, built as the training graph builds it and run in float64, against
 * the definitions of docs/metrics.md computed independently in plain float64 JavaScript
 * (test/reference/kdReference.ts): the loss values, and the gradient with respect to the
 * student's logits against central finite differences of that reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/onnx/graphBuilder';
import { addGradients } from '../../src/train/autodiff';
import { GraphShapes } from '../../src/train/graphShapes';
import { lossGradientSession } from './lossGraph';
import { buildLoss, resolvedLossOptions } from '../../src/train/losses';
import { gaussian, referenceRow, rng, softmax } from '../reference/kdReference';
import { teacherBuckets } from '../../src/train/teacherBuckets';
import { LOSS_KEYS, type LossOptions } from '../../src/shared/protocol';

const M = 6;
const V = 9;
const MASK = [1, 1, 0, 1, 1, 1];

/** The batch loss of docs/metrics.md from the reference rows. */
function referenceLoss(zt: number[][], zs: number[][], ys: number[], o: LossOptions, topK?: number): number {
  const r = resolvedLossOptions(o);
  const valid = MASK.map((m, i) => (m ? i : -1)).filter((i) => i >= 0);
  const options = { T: r.temperature, beta: r.beta, alpha: r.alpha, mu: r.mu };
  const rows = zt.map((z, i) => {
    if (!topK) return referenceRow(z, zs[i], ys[i], options);
    // the definitions of docs/metrics.md over the buckets: the teacher's top-k ids (with the target), then the rest
    const b = referenceBuckets(z, zs[i], ys[i], topK, r.temperature);
    return referenceRow(b.p.map(Math.log), b.q.map(Math.log), b.target, { ...options, T: 1 });
  });
  const mean = (f: (i: number) => number, idx = valid) =>
    idx.length ? idx.reduce((s, i) => s + f(i), 0) / idx.length : 0;
  const ce = mean((i) => -referenceRow(zt[i], zs[i], ys[i]).logqY1);
  if (r.key === 'ce') return ce;
  let kd: number;
  if (r.key === 'dkd') kd = mean((i) => r.alpha * rows[i].tckd + r.beta * rows[i].nckd);
  else if (r.key === 'atkd') {
    const u = valid.map((i) => rows[i].uncertainty).sort((a, b) => a - b);
    const median = u[Math.floor((u.length - 1) / 2)]; // lower median
    const hard = valid.filter((i) => rows[i].uncertainty >= median);
    const easy = valid.filter((i) => rows[i].uncertainty < median);
    kd =
      r.alpha * mean((i) => rows[i].nckd, easy) +
      (1 - r.alpha) * (mean((i) => rows[i].tckd, hard) + mean((i) => rows[i].nckd, hard));
  } else kd = mean((i) => rows[i][r.key as 'fkl']);
  if (r.scaleByT2) kd *= r.temperature ** 2;
  return (1 - r.kdRatio) * ce + r.kdRatio * kd;
}

/** The teacher's k most probable ids (ties: smaller id first), the target swapped in for the last when missing, and the rest. */
function referenceBuckets(
  zt: number[],
  zs: number[],
  y: number,
  k: number,
  T: number,
): { ids: number[]; p: number[]; q: number[]; target: number } {
  const p = softmax(zt, T);
  const q = softmax(zs, T);
  const ids = p
    .map((_, i) => i)
    .sort((a, b) => p[b] - p[a] || a - b)
    .slice(0, k + 1);
  if (!ids.slice(0, k).includes(y)) ids[k] = y;
  const rest = (d: number[]) => d.reduce((s, v, i) => (ids.includes(i) ? s : s + v), 0);
  return {
    ids,
    p: [...ids.map((i) => p[i]), rest(p)],
    q: [...ids.map((i) => q[i]), rest(q)],
    target: ids.indexOf(y),
  };
}

async function graphLossAndGradient(
  zt: number[][],
  zs: number[][],
  ys: number[],
  o: LossOptions,
  topK?: number,
): Promise<{ loss: number; grad: Float64Array }> {
  const g = new GraphBuilder('loss');
  const student = g.input('student', 'float32', [M, V]);
  const teacher = g.input('teacher', 'float32', [M, V]);
  const targets = g.input('targets', 'int64', [M, 1]);
  const mask = g.input('mask', 'float32', [M]);
  const buckets = topK
    ? {
        ids: g.input('ids', 'int64', [M, topK + 1]),
        logprobs: g.input('logprobs', 'float32', [M, topK + 2]),
        target: g.input('target', 'int64', [M, 1]),
        k: topK + 1,
      }
    : undefined;
  const loss = buildLoss(g, { student, teacher, targets, mask, rows: M, vocab: V, buckets }, o);
  const session = await lossGradientSession(g, loss, student, M, V);
  const f64 = (rows: number[][]) => new ort.Tensor('float64', Float64Array.from(rows.flat()), [M, V]);
  const feeds: Record<string, ort.Tensor> = {
    student: f64(zs),
    teacher: f64(zt),
    targets: new ort.Tensor('int64', BigInt64Array.from(ys.map(BigInt)), [M, 1]),
    mask: new ort.Tensor('float64', Float64Array.from(MASK), [M]),
  };
  if (topK) {
    // the product's own bucketing, checked against the reference's below
    const b = teacherBuckets(
      Float32Array.from(zt.flat()),
      M,
      V,
      ys,
      topK,
      resolvedLossOptions(o).temperature,
    );
    feeds.ids = new ort.Tensor('int64', b.ids, [M, topK + 1]);
    // float64 log-probabilities from the reference, so the check is not limited by float32
    feeds.logprobs = new ort.Tensor(
      'float64',
      Float64Array.from(
        zt.flatMap((z, i) =>
          referenceBuckets(z, zs[i], ys[i], topK, resolvedLossOptions(o).temperature).p.map(Math.log),
        ),
      ),
      [M, topK + 2],
    );
    feeds.target = new ort.Tensor('int64', b.target, [M, 1]);
  }
  const out = await session.run(feeds);
  await session.release();
  return { loss: Number(out.loss.data[0]), grad: out.grad.data as Float64Array };
}

const CASES: LossOptions[] = [
  ...LOSS_KEYS.map((key) => ({ key, temperature: 1 })),
  ...LOSS_KEYS.filter((k) => k !== 'ce').map((key) => ({ key, temperature: 2 })),
  { key: 'gjsd', temperature: 1, beta: 0.1 },
  { key: 'gjsd', temperature: 1, beta: 0 },
  { key: 'gjsd', temperature: 1, beta: 1 },
  { key: 'skl', temperature: 1, alpha: 0.3 },
  { key: 'srkl', temperature: 1.5, alpha: 0.3 },
  { key: 'akl', temperature: 1, mu: 0.7 },
  { key: 'dkd', temperature: 4, alpha: 1, beta: 8 },
  { key: 'dkd', temperature: 2, scaleByT2: false },
  { key: 'fkl', temperature: 2, scaleByT2: true },
  { key: 'fkl', temperature: 1, kdRatio: 0.3 },
  { key: 'atkd', temperature: 1, alpha: 0.5 },
];

async function checkCases(cases: LossOptions[], topK?: number) {
  const r = rng(11);
  const zt = Array.from({ length: M }, () => Array.from({ length: V }, () => 2 * gaussian(r)));
  const zs = Array.from({ length: M }, () => Array.from({ length: V }, () => 1.5 * gaussian(r)));
  zt[4][2] += 12; // one confident teacher row, so easy and hard rows differ
  const ys = [3, 0, 5, 2, 2, 8];
  for (const o of cases) {
    const label = JSON.stringify(o) + (topK ? ` top-${topK}` : '');
    const { loss, grad } = await graphLossAndGradient(zt, zs, ys, o, topK);
    const ref = referenceLoss(zt, zs, ys, o, topK);
    assert.ok(
      Math.abs(loss - ref) <= 1e-9 * Math.max(1, Math.abs(ref)),
      `${label}: loss ${loss} vs reference ${ref}`,
    );
    assert.ok(ref > 1e-3, `${label}: the reference loss is not trivially small (${ref})`);
    const h = 1e-6;
    let maxErr = 0;
    let maxGrad = 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < V; j++) {
        const plus = zs.map((row) => [...row]);
        const minus = zs.map((row) => [...row]);
        plus[i][j] += h;
        minus[i][j] -= h;
        const fd = (referenceLoss(zt, plus, ys, o, topK) - referenceLoss(zt, minus, ys, o, topK)) / (2 * h);
        maxErr = Math.max(maxErr, Math.abs(fd - grad[i * V + j]));
        maxGrad = Math.max(maxGrad, Math.abs(fd));
      }
    }
    assert.ok(maxErr < 1e-7, `${label}: max |gradient − finite difference| = ${maxErr}`);
    assert.ok(maxGrad > 1e-3, `${label}: the gradient is not trivially zero`);
    // the masked row gets no gradient
    assert.ok(
      grad.slice(2 * V, 3 * V).every((v) => v === 0),
      `${label}: masked rows get no gradient`,
    );
  }
}

test('every loss: value and logit gradient agree with the float64 reference and its finite differences', () =>
  checkCases(CASES));

test('teacher top-k: every loss over the buckets (k ids with the target, then the rest) agrees with the reference', async () => {
  // the bucketing itself: the same ids, target positions and log-probabilities as the reference's
  const r = rng(3);
  const zt = Array.from({ length: M }, () => Array.from({ length: V }, () => 2 * gaussian(r)));
  const ys = [3, 0, 5, 2, 2, 8];
  const b = teacherBuckets(Float32Array.from(zt.flat()), M, V, ys, 3, 1.5);
  zt.forEach((z, i) => {
    const ref = referenceBuckets(Array.from(Float32Array.from(z)), z, ys[i], 3, 1.5);
    assert.deepEqual(Array.from(b.ids.slice(i * 4, i * 4 + 4), Number), ref.ids);
    assert.equal(Number(b.target[i]), ref.target);
    ref.p.forEach((p, j) => assert.ok(Math.abs(b.logprobs[i * 5 + j] - Math.log(p)) < 1e-5));
  });
  await checkCases(
    CASES.filter((o) => o.key !== 'ce'),
    3,
  );
});

test('autodiff refuses operator attributes it has no rule for (Gemm alpha, transA) instead of ignoring them', () => {
  for (const [attrs, message] of [
    [{ alpha: { float: 2 } }, /Gemm with alpha = 2/],
    [{ transA: 1 }, /Gemm with transA = 1/],
  ] as const) {
    const g = new GraphBuilder('gemm');
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [3, 4]);
    const y = g.op1('Gemm', [a, b], attrs);
    const loss = g.op1('ReduceSum', [y], { keepdims: 0 });
    assert.throws(() => addGradients(g, new GraphShapes(g, {}), loss, [a]), message);
  }
});
