/**
 * Which teacher layer a student layer is compared with (the layer view's cosine, feature
 * distillation's auto pairs) and the CKA of those pairs. Hidden states in the Hugging Face
 * convention: entry 0 the embeddings, entry l the output of layer l.
 */

/** The teacher's entry mapped to the student's entry j: round(j·L_T/L_S). */
export function mappedTeacherEntry(j: number, studentLayers: number, teacherLayers: number): number {
  return Math.round((j * teacherLayers) / studentLayers);
}

/** The mean CKA of student entries 1 … L_S with their mapped teacher entries, from the (L_S + 1) × (L_T + 1) matrix. */
export function meanMappedCka(cka: number[][]): number {
  const [LS, LT] = [cka.length - 1, cka[0].length - 1];
  let sum = 0;
  for (let j = 1; j <= LS; j++) sum += cka[j][mappedTeacherEntry(j, LS, LT)];
  return sum / LS;
}
