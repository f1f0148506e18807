/**
 * Every metric of docs/metrics.md, computed by the engine's metrics graph (through the same path
 * as `distill-lens metrics`), against hand-derived values from the spec's worked examples
 * and an independent float64 reference, plus the invariants the spec lists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricsFromLogits } from '../../src/cli/metricsCommand';
import { MetricsRunner } from '../../src/inspect/metricsRunner';
import {
  DEFAULT_METRIC_OPTIONS,
  lowerMedian,
  type MetricOptions,
  type TokenRow,
} from '../../src/core/tokenRows';
import { gaussian, referenceRow, rng } from '../reference/kdReference';

async function engineRows(
  teacher: number[][],
  student: number[][],
  targets: number[],
  o: Partial<MetricOptions> = {},
): Promise<TokenRow[]> {
  const V = teacher[0].length;
  const { rows } = await metricsFromLogits(
    {
      teacher: Float64Array.from(teacher.flat()),
      student: Float64Array.from(student.flat()),
      targets,
      vocab: V,
    },
    { ...DEFAULT_METRIC_OPTIONS, ...o },
    'fkl',
  );
  return rows;
}

const close = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (±${tol})`);

test('worked example 1 of docs/metrics.md (zt = [2, 1, 0], zs = [0.5, 1, 0])', async () => {
  const zt = [2, 1, 0];
  const zs = [0.5, 1, 0];
  const [row] = await engineRows([zt], [zs], [0]);
  // the spec's printed values (6 decimals)
  const expected = {
    fkl: 0.270525,
    rkl: 0.266542,
    jeffreys: 0.268534,
    jsd: 0.065599,
    tvd: 0.358045,
    skl: 0.214949,
    srkl: 0.213139,
  };
  for (const [k, v] of Object.entries(expected)) close(row[k as keyof typeof expected], v, 1e-6, k);
  close(row.teacher.entropy, 0.832396, 1e-6, 'H(p)');
  close(row.teacher.p, 0.665241, 1e-6, 'p_y');
  close(row.student.p, 0.307196, 1e-6, 'q_y');
  const [b01] = await engineRows([zt], [zs], [0], { beta: 0.1 });
  close(b01.gjsd, 0.024101, 1e-6, 'gjsd β=0.1');
  const [b09] = await engineRows([zt], [zs], [0], { beta: 0.9 });
  close(b09.gjsd, 0.023823, 1e-6, 'gjsd β=0.9');
});

test('worked example 2 of docs/metrics.md: generalised JSD across β and T', async () => {
  const zt = [Math.log(0.9), Math.log(0.1)];
  const zs = [Math.log(0.1), Math.log(0.9)];
  const cases: [number, number, number][] = [
    [0, 1, 1.75778],
    [0.1, 1, 0.146311],
    [0.5, 1, 0.368064],
    [1, 1, 1.75778],
    [0, 2, 0.549306],
    [0.5, 2, 0.130812],
  ];
  for (const [beta, T, value] of cases) {
    const [row] = await engineRows([zt], [zs], [0], { beta, temperature: T });
    close(row.gjsd, value, 1e-6, `gjsd β=${beta} T=${T}`);
  }
});

test('all metrics agree with the float64 reference on random logits (1e-6 absolute)', async () => {
  const r = rng(7);
  for (const [V, scale, T, beta, alpha] of [
    [7, 1, 1, 0.5, 0.1],
    [50, 3, 1, 0.3, 0.2],
    [300, 6, 2, 0.7, 0.05],
    [1000, 0.05, 0.7, 0.5, 0.1], // nearly flat: the AKL head is longer than the graph's top list
  ]) {
    const n = 12;
    const teacher = Array.from({ length: n }, () => Array.from({ length: V }, () => scale * gaussian(r)));
    const student = teacher.map((row) => row.map((v) => v + scale * 0.5 * gaussian(r)));
    const targets = Array.from({ length: n }, (_, i) => (i * 13 + 1) % V);
    const rows = await engineRows(teacher, student, targets, { temperature: T, beta, alpha });
    rows.forEach((row, i) => {
      const ref = referenceRow(teacher[i], student[i], targets[i], { T, beta, alpha });
      for (const k of [
        'fkl',
        'rkl',
        'jeffreys',
        'jsd',
        'gjsd',
        'tvd',
        'skl',
        'srkl',
        'akl',
        'tckd',
        'nckd',
        'uncertainty',
        'k1',
        'k2',
        'k3',
      ] as const) {
        close(row[k], ref[k], 1e-6 * Math.max(1, Math.abs(ref[k])), `${k} (V=${V}, row ${i})`);
      }
      close(row.teacher.p, ref.pY, 1e-9, 'p_y');
      close(row.student.p, ref.qY, 1e-9, 'q_y');
      close(row.teacher.logp, ref.logpY1, 1e-9, 'teacher logp at T=1');
      close(row.student.logp, ref.logqY1, 1e-9, 'student logp at T=1');
      assert.equal(row.teacher.rank, ref.rankT, 'teacher rank');
      assert.equal(row.student.rank, ref.rankS, 'student rank');
      close(row.teacher.entropy, ref.entT, 1e-9, 'H(p)');
      close(row.student.entropy, ref.entS, 1e-9, 'H(q)');
    });
  }
});

test('invariants: non-negative, DKD identity, jsd ≤ log 2, Pinsker, gjsd endpoints', async () => {
  const r = rng(11);
  const V = 64;
  const n = 40;
  const teacher = Array.from({ length: n }, () => Array.from({ length: V }, () => 4 * gaussian(r)));
  const student = Array.from({ length: n }, () => Array.from({ length: V }, () => 4 * gaussian(r)));
  const targets = Array.from({ length: n }, (_, i) => (i * 7) % V);
  const at = (beta: number) => engineRows(teacher, student, targets, { beta });
  const [b0, b5, b1] = await Promise.all([at(0), at(0.5), at(1)]);
  b5.forEach((row, i) => {
    for (const k of [
      'fkl',
      'rkl',
      'jeffreys',
      'jsd',
      'gjsd',
      'tvd',
      'skl',
      'srkl',
      'akl',
      'tckd',
      'nckd',
      'k2',
      'k3',
    ] as const)
      assert.ok(row[k] >= 0, `${k} < 0`);
    close(row.fkl, row.tckd + (1 - row.teacher.p) * row.nckd, 1e-9, 'fkl = tckd + (1 − p_y)·nckd');
    assert.ok(row.jsd <= Math.log(2) + 1e-12, 'jsd ≤ log 2');
    assert.ok(row.tvd <= Math.sqrt(row.fkl / 2) + 1e-12, 'tvd ≤ sqrt(fkl/2)');
    close(b0[i].gjsd, row.fkl, 1e-12, 'gjsd(β=0) = fkl');
    close(row.gjsd, row.jsd, 1e-12, 'gjsd(β=0.5) = jsd');
    close(b1[i].gjsd, row.rkl, 1e-12, 'gjsd(β=1) = rkl');
  });
  // hard = uncertainty ≥ lower median (torch.median)
  const median = lowerMedian(b5.map((row) => row.uncertainty));
  b5.forEach((row) => assert.equal(row.hard, row.uncertainty >= median));
});

test('identical teacher and student give zero divergences', async () => {
  const r = rng(3);
  const logits = Array.from({ length: 5 }, () => Array.from({ length: 100 }, () => 5 * gaussian(r)));
  const rows = await engineRows(logits, logits, [1, 2, 3, 4, 5]);
  for (const row of rows) {
    for (const k of [
      'fkl',
      'rkl',
      'jeffreys',
      'jsd',
      'gjsd',
      'tvd',
      'skl',
      'srkl',
      'akl',
      'tckd',
      'nckd',
      'k1',
      'k2',
      'k3',
    ] as const)
      close(row[k], 0, 1e-12, k);
    assert.equal(row.argmaxAgree, true);
  }
});

test('lower median follows torch.median (lower middle for even counts)', () => {
  assert.equal(lowerMedian([4, 1, 3, 2]), 2);
  assert.equal(lowerMedian([5, 1, 3]), 3);
});

test('top-k lists the most probable tokens in order, with probabilities at T', async () => {
  const zt = [0, 3, 1, 2, -1];
  const [row] = await engineRows([zt], [zt], [0], { topK: 3, temperature: 2 });
  assert.deepEqual(
    row.teacher.top.map((t) => t.id),
    [1, 3, 2],
  );
  const p = Math.exp(3 / 2) / zt.reduce((s, v) => s + Math.exp(v / 2), 0);
  close(row.teacher.top[0].p, p, 1e-12, 'top probability at T = 2');
});

/** Rows from the metrics runner itself, with float32 or float64 logits, and how many needed the full-row AKL split. */
async function runnerRows(teacher: number[][], student: number[][], type: 'float32' | 'float64') {
  const runner = new MetricsRunner();
  try {
    const V = teacher[0].length;
    const Data = type === 'float32' ? Float32Array : Float64Array;
    const sources = teacher.map((_, i) => ({ position: i, target: i, index: i, text: '', start: 0, end: 0 }));
    const rows = await runner.rows(
      Data.from(teacher.flat()),
      Data.from(student.flat()),
      type,
      V,
      sources,
      DEFAULT_METRIC_OPTIONS,
      String,
    );
    return { rows, fullRow: runner.fullRowAklSplits };
  } finally {
    await runner.release();
  }
}

test('AKL head/tail split: short and long heads settled in the graph, ties in index order, crowded buckets on the full row', async () => {
  const r = rng(5);
  const V = 2000;
  // the student puts a spike on one token, which makes fkl and rkl differ
  const studentRows = (n: number, width: number) =>
    Array.from({ length: n }, (_, i) =>
      Array.from({ length: width }, (_, j) => 2 * gaussian(r) + (j === 10 + i ? 9 : 0)),
    );
  const cases: { what: string; teacher: number[][]; inGraph: boolean }[] = [
    // peaked: a head of one or a few tokens
    {
      what: 'peaked',
      teacher: Array.from({ length: 6 }, () => Array.from({ length: V }, () => 4 * gaussian(r))),
      inGraph: true,
    },
    // nearly flat: a head of about 1000 tokens spread over many buckets
    {
      what: 'nearly flat',
      teacher: Array.from({ length: 6 }, () => Array.from({ length: V }, () => 0.05 * gaussian(r))),
      inGraph: true,
    },
    // logits from three values: hundreds of equal probabilities at the boundary, which the
    // head takes in index order (as a stable sort does); too many for the graph's list
    {
      what: 'ties',
      teacher: Array.from({ length: 6 }, (_, i) =>
        Array.from({ length: V }, (_, j) => [0, 2, 4][(j * 7 + i) % 3]),
      ),
      inGraph: false,
    },
    // the boundary bucket is 200 equal tokens, and the head closes after about 80 of them: settled in the graph
    {
      what: 'few ties',
      teacher: Array.from({ length: 6 }, (_, i) =>
        Array.from({ length: V }, (_, j) => (j < 40 + i ? 5 : j < 240 ? 4.6 : gaussian(r))),
      ),
      inGraph: true,
    },
  ];
  for (const c of cases) {
    const student = studentRows(c.teacher.length, V);
    for (const type of ['float64', 'float32'] as const) {
      // references from the values the runner sees (float32-rounded for float32 logits)
      const round = (rows: number[][]) =>
        type === 'float32' ? rows.map((row) => row.map(Math.fround)) : rows;
      const { rows, fullRow } = await runnerRows(c.teacher, student, type);
      let separated = 0;
      rows.forEach((row, i) => {
        const ref = referenceRow(round(c.teacher)[i], round(student)[i], i);
        if (Math.abs(ref.fkl - ref.rkl) > 0.01 * ref.fkl) separated++;
        close(row.akl, ref.akl, 1e-9 * ref.akl, `akl (${c.what}, ${type}, row ${i})`);
      });
      // fkl and rkl differ, so wrong head/tail weights would show
      assert.ok(
        separated >= rows.length / 2,
        `${c.what}: fkl and rkl differ by 1% in ${separated} of ${rows.length} rows`,
      );
      if (c.inGraph) assert.equal(fullRow, 0, `${c.what} (${type}): every head settled in the graph`);
      else
        assert.ok(fullRow > 0, `${c.what} (${type}): the crowded boundary bucket is split on the full row`);
    }
  }
});

test('a nearly sure teacher (logit margin of 40 nats) keeps every digit of the non-target split', async () => {
  const r = rng(17);
  const V = 200;
  const n = 6;
  // the target 40 nats above everything else for the teacher; the student less sure, and its
  // distribution over the other tokens different (KL about 0.1 or more between the renormalised rests)
  const targets = Array.from({ length: n }, (_, i) => (i * 37 + 5) % V);
  const teacher = targets.map((y) => Array.from({ length: V }, (_, j) => (j === y ? 40 : gaussian(r))));
  const student = teacher.map((row, i) => row.map((v, j) => (j === targets[i] ? 12 : v + 0.6 * gaussian(r))));
  const rows = await engineRows(teacher, student, targets);
  rows.forEach((row, i) => {
    // the reference in float64, every sum over the other tokens taken directly
    const softmax = (z: number[]) => {
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const p = softmax(teacher[i]);
    const q = softmax(student[i]);
    const y = targets[i];
    const restP = p.reduce((s, v, j) => (j === y ? s : s + v), 0);
    const restQ = q.reduce((s, v, j) => (j === y ? s : s + v), 0);
    let nckd = 0;
    p.forEach((v, j) => {
      if (j !== y) nckd += (v / restP) * Math.log(v / restP / (q[j] / restQ));
    });
    const tckd = p[y] * Math.log(p[y] / q[y]) + restP * Math.log(restP / restQ);
    assert.ok(restP < 1e-14 && nckd > 0.05, `the case is the hard one (1 − p_y = ${restP}, nckd = ${nckd})`);
    close(row.nckd, nckd, 1e-6 * nckd, `nckd, row ${i}`);
    close(row.uncertainty, restP, 1e-6 * restP, `uncertainty (1 − p_y), row ${i}`);
    close(row.tckd, tckd, 1e-6 * tckd, `tckd, row ${i}`);
    // and the identity fkl = tckd + (1 − p_y)·nckd still holds
    close(row.fkl, row.tckd + row.uncertainty * row.nckd, 1e-9 * row.fkl, `DKD identity, row ${i}`);
  });
});
