/**
 * `inspect` with the layer view: the per-row logit-lens values, where each model settles, the
 * CKA matrix and the cosine of mapped layers, against a float64 computation from the family
 * reference's hidden states (CKA there in its feature-space form ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F),
 * not the Gram form the engine uses).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mappedTeacherEntry, meanMappedCka } from '../../src/core/layerMapping';
import type { InspectResult } from '../../src/shared/protocol';
import { inspectOnce } from '../helpers';
import type { ReferenceLayers } from '../reference/gpt2Reference';
import { llamaCheckpoint, type RandomCheckpoint } from '../models/randomCheckpoints';

const TEXT = 'export interface Foo { bar: number; baz: string }\nconst x = 1;';

/** inspect --layers of TEXT with a fresh pool (and build cache). */
const inspectLayers = (teacher: string, student: string): Promise<InspectResult> =>
  inspectOnce({ teacher, student, text: TEXT, layers: true });

/** The hidden states and lenses of the reference on `ids`. */
function layersOf(model: RandomCheckpoint, ids: number[]): ReferenceLayers {
  const out: ReferenceLayers = { states: [], lens: [] };
  model.reference(ids, out);
  return out;
}

const logSoftmax = (z: Float64Array) => {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
  return z.map((v) => v - lse);
};
const kl = (a: Float64Array, b: Float64Array) => a.reduce((s, la, v) => s + Math.exp(la) * (la - b[v]), 0);
const argmax = (z: Float64Array) => z.indexOf(Math.max(...z));

/** Linear CKA in feature space: ‖Y_cᵀX_c‖²_F / (‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F), columns centred. */
function ckaFeatures(X: Float64Array[], Y: Float64Array[]): number {
  const centre = (M: Float64Array[]) => {
    const mean = M[0].map((_, i) => M.reduce((a, r) => a + r[i], 0) / M.length);
    return M.map((r) => r.map((v, i) => v - mean[i]));
  };
  const cross = (A: Float64Array[], B: Float64Array[]) => {
    let s = 0;
    for (let i = 0; i < A[0].length; i++)
      for (let j = 0; j < B[0].length; j++) {
        let d = 0;
        for (let n = 0; n < A.length; n++) d += A[n][i] * B[n][j];
        s += d * d;
      }
    return s;
  };
  const [x, y] = [centre(X), centre(Y)];
  return cross(y, x) / Math.sqrt(cross(x, x) * cross(y, y));
}

test('inspect --layers: logit lens, settling layers, CKA and mapped-layer cosine agree with a float64 computation', async () => {
  const teacher = llamaCheckpoint(4, 21);
  const student = llamaCheckpoint(2, 22);
  const r = await inspectLayers(teacher.folder, student.folder);
  const v = r.layers!;
  assert.ok(v, 'the layer view is in the result');
  const ids = r.ids;
  const rows = ids.length - 1;
  assert.equal(v.rows, rows);
  assert.equal(v.positions, ids.length);
  const T = layersOf(teacher, ids);
  const S = layersOf(student, ids);
  assert.deepEqual([v.student.length, v.teacher.length], [3, 5], 'L + 1 entries each');
  const teacherFinal = T.lens[4].map(logSoftmax);
  for (let t = 0; t < rows; t++) {
    const settle = (entries: Float64Array[][]) => {
      const final = argmax(entries[entries.length - 1][t]);
      let k = entries.length - 1;
      while (k > 0 && argmax(entries[k - 1][t]) === final) k--;
      return k;
    };
    for (let l = 0; l < 3; l++) {
      const expected = kl(teacherFinal[t], logSoftmax(S.lens[l][t]));
      assert.ok(
        Math.abs(v.student[l].klToTeacherFinal[t] - expected) < 1e-4 * (1 + expected),
        `student ${l} row ${t}`,
      );
    }
    for (let l = 0; l < 5; l++) {
      const expected = kl(logSoftmax(T.lens[l][t]), teacherFinal[t]);
      assert.ok(
        Math.abs(v.teacher[l].klToFinal[t] - expected) < 1e-4 * (1 + expected),
        `teacher ${l} row ${t}`,
      );
    }
    assert.equal(v.studentSettles[t], settle(S.lens), `student settles, row ${t}`);
    assert.equal(v.teacherSettles[t], settle(T.lens), `teacher settles, row ${t}`);
    // the student's last entry against the teacher's final is the row's forward KL (T = 1)
    assert.ok(Math.abs(v.student[2].klToTeacherFinal[t] - r.rows[t].fkl) < 1e-4 * (1 + r.rows[t].fkl));
  }
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 5; j++) {
      const expected = ckaFeatures(S.states[i], T.states[j]);
      assert.ok(Math.abs(v.cka[i][j] - expected) < 1e-5, `CKA(${i}, ${j}) ${v.cka[i][j]} vs ${expected}`);
    }
  // equal widths: student entry j against teacher entry round(j·4/2)
  assert.deepEqual(
    v.cosine!.map((c) => [c.student, c.teacher]),
    [
      [0, 0],
      [1, 2],
      [2, 4],
    ],
  );
  for (const c of v.cosine!)
    for (let t = 0; t < rows; t++) {
      const a = S.states[c.student][t];
      const b = T.states[c.teacher][t];
      const dot = a.reduce((s, x, i) => s + x * b[i], 0);
      const expected = dot / Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(c.values[t] - expected) < 1e-5, `cosine ${c.student}↔${c.teacher} row ${t}`);
    }
  assert.equal(mappedTeacherEntry(1, 3, 12), 4);
});

test("the mapped layers' mean CKA: student layers 1…3 with teacher layers 2, 3, 5 of 5 (round(j·5/3))", () => {
  // entry (i, j) = i + j/10, so each picked entry is readable from its value
  const cka = Array.from({ length: 4 }, (_, i) => Array.from({ length: 6 }, (_, j) => i + j / 10));
  assert.ok(Math.abs(meanMappedCka(cka) - (1.2 + 2.3 + 3.5) / 3) < 1e-12);
});

test('inspect --layers of a model against itself: CKA 1 on the diagonal, cosine 1, no lens KL at the output', async () => {
  const model = llamaCheckpoint(2, 23);
  const r = await inspectLayers(model.folder, model.folder);
  const v = r.layers!;
  v.cka.forEach((row, i) => assert.ok(Math.abs(row[i] - 1) < 1e-9, `CKA(${i}, ${i}) = ${row[i]}`));
  for (const c of v.cosine!) assert.ok(c.values.every((x) => Math.abs(x - 1) < 1e-6));
  // KL(p ‖ p) = 0 up to the float32 lens (Σ p log p − Σ p z + logsumexp z)
  assert.ok(v.student[2].klToTeacherFinal.every((x) => Math.abs(x) < 1e-4));
  assert.deepEqual(v.studentSettles, v.teacherSettles);
});
