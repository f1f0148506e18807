/**
 * The ULD loss across vocabularies (src/train/uldLoss.ts), built as the training graph builds it
 * and run in float64, against an independent float64 reference written from the definition
 * (Boizard et al. 2024 with GOLD's "bayesian" chain-rule merge): the loss value, and its
 * gradient with respect to the student's logits against central finite differences of the
 * reference. And the teacher's side (merged rows, sorted, cut or padded, tail, span log P)
 * against the same reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/onnx/graphBuilder';
import { lossGradientSession } from './lossGraph';
import { buildUldLoss } from '../../src/train/uldLoss';
import {
  uldGroupFeeds,
  uldTeacherRows,
  UldTeacherTargets,
  type TextWindow,
} from '../../src/train/acrossTokenizers';
import type { LanguageModel } from '../../src/models/languageModel';
import { gaussian, rng, softmax } from '../reference/kdReference';
import type { UldSettings } from '../../src/shared/protocol';

const B = 2;
const L = 5;
const M = B * L;
const VS = 7;
/** targets of each row (row i of window b predicts token i + 1), and which count */
const YS = [3, 0, 5, 2, 6, 1, 4, 4, 0, 2];
const MASK = [1, 1, 1, 1, 0, 1, 1, 1, 1, 0];
/** per window: groups as (first student token, count) */
const GROUPS: [number, number][][] = [
  [
    [1, 1],
    [2, 2],
    [4, 1],
  ],
  [
    [1, 3],
    [4, 1],
  ],
];

/** Descending sort, zero-padded or cut to n. */
const sortedTo = (row: number[], n: number) =>
  Array.from({ length: n }, (_, r) => [...row].sort((a, b) => b - a)[r] ?? 0);

/** The reference loss: w_uld · mean over groups of Σ|sort(merged student) − sort(teacher)| (padded) + w_ce · CE. */
function referenceLoss(zs: number[][], teacherRows: number[][], w: UldSettings): number {
  const q = zs.map((z) => softmax(z));
  let uld = 0;
  let groups = 0;
  GROUPS.forEach((list, b) =>
    list.forEach(([first, count]) => {
      const last = first + count - 1;
      // chain rule: the row predicting the last token, times the earlier tokens' probabilities
      let scale = 1;
      for (let i = first; i < last; i++) scale *= q[b * L + i - 1][YS[b * L + i - 1]];
      const merged = q[b * L + last - 1].map((v) => v * scale);
      const t = teacherRows[groups];
      const n = Math.max(VS, t.length);
      const a = sortedTo(merged, n);
      const c = sortedTo(t, n);
      uld += a.reduce((s, v, r) => s + Math.abs(v - c[r]), 0);
      groups++;
    }),
  );
  let ce = 0;
  let count = 0;
  MASK.forEach((m, i) => {
    if (!m) return;
    ce -= Math.log(q[i][YS[i]]);
    count++;
  });
  return w.weight * (uld / groups) + w.ceWeight * (ce / count);
}

async function graphLossAndGradient(
  zs: number[][],
  teacherRows: number[][],
  w: UldSettings,
): Promise<{ loss: number; grad: Float64Array }> {
  const g = new GraphBuilder('uld');
  const student = g.input('student', 'float32', [M, VS]);
  const targets = g.input('targets', 'int64', [M, 1]);
  const mask = g.input('mask', 'float32', [M]);
  const loss = buildUldLoss(g, { student, targets, mask, rows: M, vocab: VS, batch: B, seqLen: L }, w);
  const session = await lossGradientSession(g, loss, student, M, VS);
  // the teacher's side as the product lays it out, from the reference's sorted rows
  let k = 0;
  const windows = GROUPS.map(
    (list) =>
      ({
        groups: list.map(([first, count]) => ({ studentFirst: first, studentTokens: count })),
      }) as unknown as TextWindow,
  );
  const rows = GROUPS.map((list) => {
    const sorted = new Float32Array(list.length * VS);
    const tail = new Float64Array(list.length);
    list.forEach((_, j) => {
      const t = teacherRows[k++];
      const s = sortedTo(t, Math.max(VS, t.length));
      sorted.set(s.slice(0, VS), j * VS);
      tail[j] = s.slice(VS).reduce((a, b) => a + b, 0);
    });
    return { sorted, tail, spanLogp: new Float64Array(list.length) };
  });
  const feeds: Record<string, ort.Tensor> = {
    student: new ort.Tensor('float64', Float64Array.from(zs.flat()), [M, VS]),
    targets: new ort.Tensor('int64', BigInt64Array.from(YS.map(BigInt)), [M, 1]),
    mask: new ort.Tensor('float64', Float64Array.from(MASK), [M]),
  };
  for (const [name, t] of Object.entries(uldGroupFeeds(windows, rows, L, VS)))
    feeds[name] =
      t.type === 'int64'
        ? new ort.Tensor('int64', t.data as BigInt64Array, t.dims)
        : new ort.Tensor('float64', Float64Array.from(t.data as Float32Array), t.dims);
  const out = await session.run(feeds);
  await session.release();
  return { loss: Number(out.loss.data[0]), grad: out.grad.data as Float64Array };
}

for (const VT of [5, 11]) {
  test(`ULD + CE across vocabularies (student ${VS}, teacher ${VT}): value and logit gradient agree with the float64 reference`, async () => {
    const r = rng(VT);
    const zs = Array.from({ length: M }, () => Array.from({ length: VS }, () => 1.5 * gaussian(r)));
    // unnormalised teacher rows, as merged rows are (probability times earlier tokens' probabilities)
    const teacherRows = GROUPS.flat().map(() => {
      const p = softmax(Array.from({ length: VT }, () => 2 * gaussian(r)));
      const scale = 0.2 + 0.8 * r();
      return p.map((v) => v * scale);
    });
    for (const w of [
      { weight: 1.5, ceWeight: 1 },
      { weight: 1, ceWeight: 0 },
    ]) {
      const label = `V_T ${VT}, weights ${JSON.stringify(w)}`;
      const { loss, grad } = await graphLossAndGradient(zs, teacherRows, w);
      const ref = referenceLoss(zs, teacherRows, w);
      // the teacher rows travel as float32, as in training: agreement to float32 resolution
      assert.ok(
        Math.abs(loss - ref) <= 1e-7 * Math.max(1, ref),
        `${label}: loss ${loss} vs reference ${ref}`,
      );
      assert.ok(ref > 1e-2, `${label}: the reference loss is not trivially small`);
      const h = 1e-6;
      let maxErr = 0;
      let maxGrad = 0;
      for (let i = 0; i < M; i++)
        for (let j = 0; j < VS; j++) {
          const plus = zs.map((row) => [...row]);
          const minus = zs.map((row) => [...row]);
          plus[i][j] += h;
          minus[i][j] -= h;
          const fd = (referenceLoss(plus, teacherRows, w) - referenceLoss(minus, teacherRows, w)) / (2 * h);
          maxErr = Math.max(maxErr, Math.abs(fd - grad[i * VS + j]));
          maxGrad = Math.max(maxGrad, Math.abs(fd));
        }
      assert.ok(maxErr < 1e-7, `${label}: max |gradient − finite difference| = ${maxErr}`);
      assert.ok(maxGrad > 1e-3, `${label}: the gradient is not trivially zero`);
      // rows no group reads and no target counts: window 0's last row
      if (w.ceWeight === 0)
        assert.ok(
          grad.slice(4 * VS, 5 * VS).every((v) => v === 0),
          `${label}: a row no group reads gets no gradient`,
        );
    }
  });
}

test("the teacher's side: merged rows by the chain rule, sorted, cut or padded to the student's vocabulary, the tail and the span log P", () => {
  const r = rng(5);
  const VT = 9;
  const teacherIds = [0, 4, 7, 1, 8, 2];
  const n = teacherIds.length;
  const zt = Array.from({ length: n }, () => Array.from({ length: VT }, () => 2 * gaussian(r)));
  const groups = [
    { start: 0, end: 1, teacherFirst: 1, teacherTokens: 1, studentFirst: 1, studentTokens: 1 },
    { start: 1, end: 4, teacherFirst: 2, teacherTokens: 3, studentFirst: 2, studentTokens: 1 },
    { start: 4, end: 5, teacherFirst: 5, teacherTokens: 1, studentFirst: 3, studentTokens: 2 },
  ];
  const w = { teacherIds, groups } as unknown as TextWindow;
  for (const studentVocab of [4, 12]) {
    const got = uldTeacherRows(w, { rows: Float32Array.from(zt.flat()), vocab: VT }, studentVocab);
    // the reference from float32-rounded logits, as the product reads them
    const p = zt.map((z) => softmax(Array.from(Float32Array.from(z))));
    groups.forEach((g, k) => {
      const last = g.teacherFirst + g.teacherTokens - 1;
      let scale = 1;
      let logP = 0;
      for (let i = g.teacherFirst; i <= last; i++) {
        logP += Math.log(p[i - 1][teacherIds[i]]);
        if (i < last) scale *= p[i - 1][teacherIds[i]];
      }
      const sorted = p[last - 1].map((v) => v * scale).sort((a, b) => b - a);
      for (let j = 0; j < studentVocab; j++) {
        const want = sorted[j] ?? 0;
        const have = got.sorted[k * studentVocab + j];
        assert.ok(
          Math.abs(have - want) <= 1e-7 * Math.max(want, 1e-30) + 1e-12,
          `group ${k} rank ${j}: ${have} vs ${want}`,
        );
      }
      const tail = sorted.slice(studentVocab).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(got.tail[k] - tail) <= 1e-12, `group ${k} tail ${got.tail[k]} vs ${tail}`);
      assert.ok(
        Math.abs(got.spanLogp[k] - logP) <= 1e-9,
        `group ${k} span log P ${got.spanLogp[k]} vs ${logP}`,
      );
    });
    if (studentVocab > VT)
      assert.equal(
        got.tail.reduce((a, b) => a + b, 0),
        0,
      );
  }
});

test("the teacher's rows of a window are computed once, also when the cache is full (the last few are kept)", async () => {
  let forwards = 0;
  const V = 6;
  const teacher = {
    forward: async (ids: number[]) => {
      forwards++;
      return { data: new Float32Array(ids.length * V), type: 'float32', length: ids.length, vocab: V };
    },
  } as unknown as LanguageModel;
  const window = (i: number) =>
    ({
      teacherIds: [0, 1, 2],
      groups: [{ start: 0, end: 1, teacherFirst: 1, teacherTokens: 2, studentFirst: 1, studentTokens: 1 }],
      source: `w${i}`,
    }) as unknown as TextWindow;
  const windows = Array.from({ length: 4 }, (_, i) => window(i));
  // no room in the cache: each window's rows still come from one pass while they are recent
  const targets = new UldTeacherTargets(teacher, 4, 0);
  for (const w of windows) await targets.rows(w);
  for (const w of windows) await targets.rows(w);
  assert.equal(forwards, 4);
  const sorted = (await targets.rows(windows[0])).sorted;
  // uniform logits: the merged row is 1/6 · 1/6 in every entry
  assert.ok(sorted.every((v) => Math.abs(v - 1 / 36) < 1e-7));
});
