/**
 * AKL's head/tail split (docs/metrics.md): the head is the leading tokens by p, descending,
 * whose cumulative p ≤ μ, at least one; w_h = g_h / (g_h + g_t) with g = Σ |p − q| over each.
 */

/** What the metrics graph returns about a row's head (see metricsGraph.ts, step 4 of AKL). */
export interface AklBoundary {
  /** some bucket's cumulative mass exceeds μ; otherwise every token is in the head */
  found: boolean;
  /** Σ p and Σ |p − q| over the buckets wholly in the head */
  massBefore: number;
  diffBefore: number;
  /** the boundary bucket's largest tokens, descending by p (u = −∞ past the bucket's end) */
  members: { u: number; p: number; diff: number }[];
}

/**
 * Finishes the head from the boundary bucket: its tokens join one at a time while the mass
 * stays ≤ μ. Null when the returned tokens run out before the head closes (a bucket with
 * more tokens than were returned, or sums that rounded differently): the caller then uses
 * the full row.
 */
export function aklWeightsFromBoundary(
  b: AklBoundary,
  l1: number,
  mu: number,
): { wHead: number; wTail: number } | null {
  let gHead: number;
  if (!b.found) {
    gHead = l1; // the whole vocabulary fits in the head
  } else {
    let mass = b.massBefore;
    gHead = b.diffBefore;
    let first = b.massBefore === 0; // no token is in the head yet: the first always joins
    let closed = false;
    for (const m of b.members) {
      if (m.u === -Infinity) {
        // the bucket is used up: no later token can join once the mass exceeds μ (the first
        // token alone can); otherwise the sums rounded differently from the graph's
        closed = mass > mu;
        break;
      }
      if (!first && mass + m.p > mu) {
        closed = true;
        break;
      }
      mass += m.p;
      gHead += m.diff;
      first = false;
    }
    if (!closed) return null;
  }
  const gTail = Math.max(0, l1 - gHead);
  const total = gHead + gTail;
  if (total === 0) return { wHead: 0, wTail: 0 };
  return { wHead: gHead / total, wTail: gTail / total };
}

/**
 * The same split on a full probability row, for the rare rows the graph's boundary bucket
 * does not settle. Exact, in O(V): entries
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
