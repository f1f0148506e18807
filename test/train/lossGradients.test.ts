/**
 * Every training loss, built as the training graph builds it and run in float64, against
 * kd-spec's definitions computed independently in plain float64 JavaScript
 * (test/reference/kdReference.ts): the loss values, and the gradient with respect to the
 * student's logits against central finite differences of that reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/onnx/graphBuilder';
import { addGradients } from '../../src/train/autodiff';
import { GraphShapes } from '../../src/train/graphShapes';
import { buildLoss, LOSS_KEYS, resolvedLossOptions, type LossOptions } from '../../src/train/losses';
import { gaussian, referenceRow, rng } from '../reference/kdReference';

const M = 6;
const V = 9;
const MASK = [1, 1, 0, 1, 1, 1];

/** The batch loss of kd-spec from the reference rows. */
function referenceLoss(zt: number[][], zs: number[][], ys: number[], o: LossOptions): number {
  const r = resolvedLossOptions(o);
  const valid = MASK.map((m, i) => (m ? i : -1)).filter((i) => i >= 0);
  const rows = zt.map((z, i) => referenceRow(z, zs[i], ys[i], { T: r.temperature, beta: r.beta, alpha: r.alpha, mu: r.mu }));
  const mean = (f: (i: number) => number, idx = valid) => (idx.length ? idx.reduce((s, i) => s + f(i), 0) / idx.length : 0);
  const ce = mean((i) => -referenceRow(zt[i], zs[i], ys[i]).logqY1);
  if (r.key === 'ce') return ce;
  let kd: number;
  if (r.key === 'dkd') kd = mean((i) => r.alpha * rows[i].tckd + r.beta * rows[i].nckd);
  else if (r.key === 'atkd') {
    const u = valid.map((i) => rows[i].uncertainty).sort((a, b) => a - b);
    const median = u[Math.floor((u.length - 1) / 2)]; // lower median
    const hard = valid.filter((i) => rows[i].uncertainty >= median);
    const easy = valid.filter((i) => rows[i].uncertainty < median);
    kd = r.alpha * mean((i) => rows[i].nckd, easy) + (1 - r.alpha) * (mean((i) => rows[i].tckd, hard) + mean((i) => rows[i].nckd, hard));
  } else kd = mean((i) => rows[i][r.key as 'fkl']);
  if (r.scaleByT2) kd *= r.temperature ** 2;
  return (1 - r.kdRatio) * ce + r.kdRatio * kd;
}

async function graphLossAndGradient(zt: number[][], zs: number[][], ys: number[], o: LossOptions): Promise<{ loss: number; grad: Float64Array }> {
  const g = new GraphBuilder('loss');
  const student = g.input('student', 'float32', [M, V]);
  const teacher = g.input('teacher', 'float32', [M, V]);
  const targets = g.input('targets', 'int64', [M, 1]);
  const mask = g.input('mask', 'float32', [M]);
  const loss = buildLoss(g, { student, teacher, targets, mask, rows: M, vocab: V }, o);
  const grads = addGradients(g, new GraphShapes(g, {}), loss, [student]);
  g.rename(loss, 'loss');
  g.output('loss', 'float32', []);
  g.rename(grads.get(student)!, 'grad');
  g.output('grad', 'float32', [M, V]);
  g.promoteToFloat64();
  const session = await ort.InferenceSession.create(g.encode().model);
  const f64 = (rows: number[][]) => new ort.Tensor('float64', Float64Array.from(rows.flat()), [M, V]);
  const out = await session.run({
    student: f64(zs),
    teacher: f64(zt),
    targets: new ort.Tensor('int64', BigInt64Array.from(ys.map(BigInt)), [M, 1]),
    mask: new ort.Tensor('float64', Float64Array.from(MASK), [M]),
  });
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

test('every loss: value and logit gradient agree with the float64 reference and its finite differences', async () => {
  const r = rng(11);
  const zt = Array.from({ length: M }, () => Array.from({ length: V }, () => 2 * gaussian(r)));
  const zs = Array.from({ length: M }, () => Array.from({ length: V }, () => 1.5 * gaussian(r)));
  zt[4][2] += 12; // one confident teacher row, so easy and hard rows differ
  const ys = [3, 0, 5, 2, 2, 8];
  for (const o of CASES) {
    const label = JSON.stringify(o);
    const { loss, grad } = await graphLossAndGradient(zt, zs, ys, o);
    const ref = referenceLoss(zt, zs, ys, o);
    assert.ok(Math.abs(loss - ref) <= 1e-9 * Math.max(1, Math.abs(ref)), `${label}: loss ${loss} vs reference ${ref}`);
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
        const fd = (referenceLoss(zt, plus, ys, o) - referenceLoss(zt, minus, ys, o)) / (2 * h);
        maxErr = Math.max(maxErr, Math.abs(fd - grad[i * V + j]));
        maxGrad = Math.max(maxGrad, Math.abs(fd));
      }
    }
    assert.ok(maxErr < 1e-7, `${label}: max |gradient − finite difference| = ${maxErr}`);
    assert.ok(maxGrad > 1e-3, `${label}: the gradient is not trivially zero`);
    // the masked row gets no gradient
    assert.ok(grad.slice(2 * V, 3 * V).every((v) => v === 0), `${label}: masked rows get no gradient`);
  }
});
