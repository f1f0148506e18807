/**
 * The layer view of one analysed window, from the teacher's and the student's layer passes
 * (models/builder/layerView.ts). Hidden states are in the Hugging Face convention: entry 0 the
 * embeddings, entry l the output of layer l, the last after the final norm (the model's own
 * output). Per row (row r is position r, which predicts token r + 1):
 *
 *   student entry l   klToTeacherFinal = KL(p_final ‖ q_l), q_l the student's lens at l
 *   teacher entry l   klToFinal        = KL(p_l ‖ p_final)
 *   argmaxFinal       argmax of the lens at l = argmax of the model's own final distribution
 *   settles           the first entry k from which every later entry's argmax is the final one
 *
 * Across the two models, over the window's positions (width-independent):
 *
 *   CKA(i, j) = ⟨K_i, L_j⟩_F / (‖K_i‖_F·‖L_j‖_F),  K_i = X_i X_iᵀ and L_j = Y_j Y_jᵀ the Gram
 *               matrices of the student's entry i and the teacher's entry j, columns centred
 *               over the positions (linear CKA, Kornblith et al. 2019)
 *
 * and, where the widths are equal, per-row cosine similarity of mapped entries: student entry
 * j ↔ teacher entry round(j·L_T/L_S).
 */
import type { LayerForward } from '../models/languageModel';
import type { LayerView } from '../shared/protocol';
import { mappedTeacherEntry } from '../core/layerMapping';

export function layerView(teacher: LayerForward, student: LayerForward, rows: number): LayerView {
  const N = teacher.logits.length;
  const perEntry = (f: LayerForward) =>
    Array.from({ length: f.states }, (_, l) => {
      const kl: number[] = [];
      const argmaxFinal: boolean[] = [];
      for (let r = 0; r < rows; r++) {
        kl.push(f.lensKl[l * N + r]);
        argmaxFinal.push(f.lensArgmax[l * N + r] === f.lensArgmax[(f.states - 1) * N + r]);
      }
      return { kl, argmaxFinal };
    });
  const settles = (entries: { argmaxFinal: boolean[] }[]) =>
    Array.from({ length: rows }, (_, r) => {
      let k = entries.length - 1;
      while (k > 0 && entries[k - 1].argmaxFinal[r]) k--;
      return k;
    });
  const s = perEntry(student);
  const t = perEntry(teacher);

  // linear CKA from the centred Gram matrices: N² numbers per entry, whatever the widths
  const gram = (f: LayerForward, l: number) => f.gram.subarray(l * N * N, (l + 1) * N * N);
  const frobenius = (f: LayerForward) =>
    Array.from({ length: f.states }, (_, l) => Math.sqrt(gram(f, l).reduce((a, v) => a + v * v, 0)));
  const sNorm = frobenius(student);
  const tNorm = frobenius(teacher);
  const cka = Array.from({ length: student.states }, (_, i) => {
    const K = gram(student, i);
    return Array.from({ length: teacher.states }, (_, j) => {
      const Lg = gram(teacher, j);
      let inner = 0;
      for (let k = 0; k < K.length; k++) inner += K[k] * Lg[k];
      const denominator = sNorm[i] * tNorm[j];
      return denominator > 0 ? inner / denominator : 0;
    });
  });

  let cosine: LayerView['cosine'];
  if (student.width === teacher.width) {
    const D = student.width;
    cosine = Array.from({ length: student.states }, (_, j) => {
      const m = mappedTeacherEntry(j, student.states - 1, teacher.states - 1);
      const values: number[] = [];
      for (let r = 0; r < rows; r++) {
        const a = student.hidden.subarray((j * N + r) * D, (j * N + r + 1) * D);
        const b = teacher.hidden.subarray((m * N + r) * D, (m * N + r + 1) * D);
        let ab = 0;
        let aa = 0;
        let bb = 0;
        for (let i = 0; i < D; i++) {
          ab += a[i] * b[i];
          aa += a[i] * a[i];
          bb += b[i] * b[i];
        }
        values.push(aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0);
      }
      return { student: j, teacher: m, values };
    });
  }
  return {
    rows,
    positions: N,
    student: s.map((e) => ({ klToTeacherFinal: e.kl, argmaxFinal: e.argmaxFinal })),
    teacher: t.map((e) => ({ klToFinal: e.kl, argmaxFinal: e.argmaxFinal })),
    studentSettles: settles(s),
    teacherSettles: settles(t),
    cka,
    ...(cosine ? { cosine } : {}),
  };
}
