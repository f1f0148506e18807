/**
 * AKL's head/tail split on a full probability row, for rows whose head is longer than the
 * top list the metrics graph returns (nearly flat distributions). Exact, in O(V): entries
 * are bucketed by the high bits of their float64 representation (monotone in p), the
 * buckets walked from the top, and only the bucket where the cumulative mass crosses μ is
 * sorted.
 */
const hiWords = new Uint32Array(2);
const asDouble = new Float64Array(hiWords.buffer);

/** Monotone 16-bit key of a probability in (0, 1]: exponent and 5 mantissa bits. */
function bucketKey(p: number): number {
  asDouble[0] = p;
  return hiWords[1] >>> 15; // sign 0, 11 exponent bits, 5 mantissa bits
}

export function aklWeightsFullRow(p: Float64Array, q: Float64Array, mu: number): { wHead: number; wTail: number } {
  const V = p.length;
  let l1 = 0;
  const counts = new Map<number, number>();
  const mass = new Map<number, number>();
  const diff = new Map<number, number>();
  for (let i = 0; i < V; i++) {
    const d = Math.abs(p[i] - q[i]);
    l1 += d;
    if (p[i] <= 0) continue;
    const k = bucketKey(p[i]);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    mass.set(k, (mass.get(k) ?? 0) + p[i]);
    diff.set(k, (diff.get(k) ?? 0) + d);
  }
  const keys = [...counts.keys()].sort((a, b) => b - a);
  let cum = 0;
  let gHead = 0;
  let first = true;
  for (const k of keys) {
    const m = mass.get(k)!;
    if (cum + m <= mu) {
      // the whole bucket fits in the head (all its entries are in it)
      cum += m;
      gHead += diff.get(k)!;
      first = false;
      continue;
    }
    // the boundary bucket: sort its entries and continue one by one
    const members: number[] = [];
    for (let i = 0; i < V; i++) if (p[i] > 0 && bucketKey(p[i]) === k) members.push(i);
    members.sort((a, b) => p[b] - p[a] || a - b);
    const sortedP = members.map((i) => p[i]);
    const qAt = members.map((i) => q[i]);
    // reuse the list rule with the mass already in the head as a prefix
    for (let j = 0; j < sortedP.length; j++) {
      cum += sortedP[j];
      if (!first && cum > mu) break;
      gHead += Math.abs(sortedP[j] - qAt[j]);
      first = false;
    }
    break;
  }
  const gTail = Math.max(0, l1 - gHead);
  const total = gHead + gTail;
  if (total === 0) return { wHead: 0, wTail: 0 };
  return { wHead: gHead / total, wTail: gTail / total };
}
