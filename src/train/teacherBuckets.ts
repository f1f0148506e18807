/**
 * Teacher top-k for large vocabularies: per position, the teacher's K most probable ids
 * plus the target (or the (K+1)-th id when the target is already among them), their
 * log-probabilities at temperature T under the full softmax, and the remaining mass as one
 * last bucket. Kept per window instead of the [L, V] logits.
 */
export interface TeacherBuckets {
  /** [L, K + 1] token ids */
  ids: BigInt64Array;
  /** [L, K + 2] log-probabilities: the ids', then the rest's */
  logprobs: Float32Array;
  /** [L] the target's position among the ids */
  target: BigInt64Array;
}

/** Smallest mass the rest bucket keeps, so that its logarithm stays finite. */
const MIN_REST = 1e-30;

export function teacherBuckets(
  logits: Float32Array,
  length: number,
  vocab: number,
  targets: number[],
  k: number,
  temperature: number,
): TeacherBuckets {
  const k1 = k + 1;
  const ids = new BigInt64Array(length * k1);
  const logprobs = new Float32Array(length * (k1 + 1));
  const target = new BigInt64Array(length);
  const heapIds = new Int32Array(k1);
  const heapVals = new Float64Array(k1);
  const chosen = new Uint8Array(vocab);
  for (let pos = 0; pos < length; pos++) {
    const row = logits.subarray(pos * vocab, (pos + 1) * vocab);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) if (row[i] > max) max = row[i];
    let sum = 0;
    for (let i = 0; i < vocab; i++) sum += Math.exp((row[i] - max) / temperature);
    const logZ = max / temperature + Math.log(sum);
    // the k + 1 largest by a min-heap (ties: the smaller id first, as a stable sort would)
    let n = 0;
    const less = (a: number, b: number) =>
      heapVals[a] < heapVals[b] || (heapVals[a] === heapVals[b] && heapIds[a] > heapIds[b]);
    const swap = (a: number, b: number) => {
      [heapVals[a], heapVals[b]] = [heapVals[b], heapVals[a]];
      [heapIds[a], heapIds[b]] = [heapIds[b], heapIds[a]];
    };
    const down = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && less(l, m)) m = l;
        if (r < n && less(r, m)) m = r;
        if (m === i) return;
        swap(i, m);
        i = m;
      }
    };
    for (let i = 0; i < vocab; i++) {
      const v = row[i];
      if (n < k1) {
        heapVals[n] = v;
        heapIds[n] = i;
        let c = n++;
        while (c > 0 && less(c, (c - 1) >> 1)) {
          swap(c, (c - 1) >> 1);
          c = (c - 1) >> 1;
        }
      } else if (v > heapVals[0]) {
        heapVals[0] = v;
        heapIds[0] = i;
        down(0);
      }
    }
    const order = Array.from({ length: n }, (_, j) => j).sort(
      (a, b) => heapVals[b] - heapVals[a] || heapIds[a] - heapIds[b],
    );
    const picked = order.map((j) => heapIds[j]);
    const y = targets[pos];
    if (!picked.slice(0, k).includes(y)) picked[k1 - 1] = y;
    let rest = 0;
    for (const id of picked) chosen[id] = 1;
    for (let i = 0; i < vocab; i++) if (!chosen[i]) rest += Math.exp(row[i] / temperature - logZ);
    for (const id of picked) chosen[id] = 0;
    picked.forEach((id, j) => {
      ids[pos * k1 + j] = BigInt(id);
      logprobs[pos * (k1 + 1) + j] = row[id] / temperature - logZ;
    });
    logprobs[pos * (k1 + 1) + k1] = Math.log(Math.max(rest, MIN_REST));
    target[pos] = BigInt(picked.indexOf(y));
  }
  return { ids, logprobs, target };
}
