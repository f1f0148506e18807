/**
 * A served teacher's top K: every metric over the buckets (the K ids, the target, the rest)
 * against the float64 reference applied to the two bucket distributions built here; the exact
 * ones against the full-vocabulary reference; the f-divergences no larger than the full ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketedRow, type ServedTeacherRow } from '../../src/core/bucketedRows';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { gaussian, referenceRow, rng, softmax } from '../reference/kdReference';

const V = 60;
const K = 5;

/** The server's answer for one position: the K most probable ids of the teacher, the target's log p (and rank). */
function served(zt: number[], y: number, withRank: boolean): ServedTeacherRow {
  const p = softmax(zt);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  return {
    targetLogp: Math.log(p[y]),
    ...(withRank ? { targetRank: 1 + order.indexOf(y) } : {}),
    top: order.slice(0, K).map((id) => ({ id, logp: Math.log(p[id]) })),
  };
}

/** The two bucket distributions as log-probabilities (listed ids by p, the target if unlisted, the rest). */
function bucketLogs(zt: number[], zs: number[], y: number): { lp: number[]; lq: number[]; yb: number } {
  const p = softmax(zt);
  const q = softmax(zs);
  const ids = p
    .map((_, i) => i)
    .sort((a, b) => p[b] - p[a])
    .slice(0, K);
  if (!ids.includes(y)) ids.push(y);
  const rest = (a: number[]) => a.reduce((s, v, i) => (ids.includes(i) ? s : s + v), 0);
  return {
    lp: [...ids.map((i) => Math.log(p[i])), Math.log(rest(p))],
    lq: [...ids.map((i) => Math.log(q[i])), Math.log(rest(q))],
    yb: ids.indexOf(y),
  };
}

test('a served teacher top K: each metric over the buckets agrees with the float64 reference; the exact ones are exact, the f-divergences lower bounds', () => {
  const r = rng(11);
  const o = { ...DEFAULT_METRIC_OPTIONS, beta: 0.3 };
  let unlisted = 0;
  for (let trial = 0; trial < 40; trial++) {
    const scale = trial % 4 === 0 ? 8 : 2; // some peaked teachers (p_y near 1)
    const zt = Array.from({ length: V }, () => scale * gaussian(r));
    const zs = zt.map((z) => z / scale + gaussian(r));
    // the target: often the teacher's favourite, sometimes far down its list
    const y = trial % 3 === 0 ? Math.floor(r() * V) : zt.indexOf(Math.max(...zt));
    const withRank = trial % 2 === 0;
    const row = bucketedRow(served(zt, y, withRank), Float32Array.from(zs), o, {
      index: 1,
      target: y,
      text: 'x',
      start: 0,
      end: 1,
      decode: String,
    });
    // the student's logits went through float32
    const zs32 = Array.from(Float32Array.from(zs));
    const { lp, lq, yb } = bucketLogs(zt, zs32, y);
    const onBuckets = referenceRow(lp, lq, yb, { beta: 0.3 });
    const full = referenceRow(zt, zs32, y, { beta: 0.3 });
    if (yb === K) unlisted++;
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) <= 1e-9 * (1 + Math.abs(b)), `trial ${trial} ${what}: ${a} vs ${b}`);
    for (const k of ['fkl', 'rkl', 'jeffreys', 'jsd', 'gjsd', 'tvd', 'skl', 'srkl', 'akl', 'nckd'] as const)
      close(row[k], onBuckets[k], `${k} over the buckets`);
    for (const k of ['tckd', 'uncertainty', 'k1', 'k2', 'k3'] as const) close(row[k], full[k], `${k} exact`);
    close(row.teacher.logp, full.logpY1, 'log p_y');
    close(row.student.logp, full.logqY1, 'log q_y');
    assert.equal(row.student.rank, full.rankS);
    if (withRank || yb < K) assert.equal(row.teacher.rank, full.rankT, `trial ${trial} teacher rank`);
    else assert.ok(Number.isNaN(row.teacher.rank), 'an unlisted target without a served rank has no rank');
    for (const k of ['fkl', 'rkl', 'jsd', 'gjsd', 'tvd', 'skl', 'srkl', 'nckd'] as const)
      assert.ok(row[k] <= full[k] + 1e-12, `trial ${trial}: bucketed ${k} ${row[k]} ≤ full ${full[k]}`);
  }
  assert.ok(unlisted >= 5, `some targets outside the top K (${unlisted})`);
});

test('a served teacher at a temperature other than 1 is refused', () => {
  assert.throws(
    () =>
      bucketedRow(
        served([1, 2, 3, 4, 5, 6], 2, true),
        Float32Array.of(1, 2, 3, 4, 5, 6),
        { ...DEFAULT_METRIC_OPTIONS, temperature: 2 },
        {
          index: 1,
          target: 2,
          text: 'x',
          start: 0,
          end: 1,
          decode: String,
        },
      ),
    /temperature 1, not 2/,
  );
});
