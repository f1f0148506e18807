/**
 * AKL's head/tail split on a full probability row, for rows whose head is longer than the
 * top list the metrics graph returns (nearly flat distributions). Exact, in O(V): entries
 * are bucketed by the high bits of their float64 representation (monotone in p), the
 * buckets walked from the top, and only the bucket where the cumulative mass crosses μ is
 * sorted.
 */
const hiWords = new Uint32Array(2);
const asDouble = new Float64Array(hiWords.buffer);
const BUCKETS = 1 << 16;
// reused across calls; only touched buckets are reset
const counts = new Int32Array(BUCKETS);
const mass = new Float64Array(BUCKETS);
const diff = new Float64Array(BUCKETS);

/** Monotone key of a probability in (0, 1]: 11 exponent bits and 5 mantissa bits. */
function bucketKey(p: number): number {
  asDouble[0] = p;
  return hiWords[1] >>> 15; // little-endian: word 1 holds sign, exponent and top mantissa bits
}

export function aklWeightsFullRow(
  p: Float64Array,
  q: Float64Array,
  mu: number,
): { wHead: number; wTail: number } {
  const V = p.length;
  let l1 = 0;
  const keys = new Int32Array(V);
  const distinct: number[] = [];
  for (let i = 0; i < V; i++) {
    const d = Math.abs(p[i] - q[i]);
    l1 += d;
    if (!(p[i] > 0)) {
      keys[i] = -1;
      continue;
    }
    const k = (keys[i] = bucketKey(p[i]));
    if (counts[k]++ === 0) distinct.push(k);
    mass[k] += p[i];
    diff[k] += d;
  }
  distinct.sort((a, b) => b - a);
  let cum = 0;
  let gHead = 0;
  let first = true;
  for (const k of distinct) {
    if (cum + mass[k] <= mu) {
      // the whole bucket fits in the head
      cum += mass[k];
      gHead += diff[k];
      first = false;
      continue;
    }
    // the boundary bucket: its entries one by one, largest first (ties in index order)
    const members: number[] = [];
    for (let i = 0; i < V; i++) if (keys[i] === k) members.push(i);
    const values = Float64Array.from(members, (i) => p[i])
      .sort()
      .reverse();
    // how many of the bucket's entries join the head, then which ones
    let take = 0;
    for (const v of values) {
      if (!first && cum + v > mu) break;
      cum += v;
      take++;
      first = false;
    }
    if (take > 0) {
      const cutoff = values[take - 1];
      let atCutoff = values.subarray(0, take).filter((v) => v === cutoff).length;
      for (const i of members) {
        if (p[i] > cutoff || (p[i] === cutoff && atCutoff-- > 0)) gHead += Math.abs(p[i] - q[i]);
      }
    }
    break;
  }
  for (const k of distinct) {
    counts[k] = 0;
    mass[k] = 0;
    diff[k] = 0;
  }
  const gTail = Math.max(0, l1 - gHead);
  const total = gHead + gTail;
  if (total === 0) return { wHead: 0, wTail: 0 };
  return { wHead: gHead / total, wTail: gTail / total };
}
