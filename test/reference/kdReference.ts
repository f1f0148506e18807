/**
 * An independent float64 reference of docs/metrics.md, written straight from the definitions
 * with plain loops (no shared code with src/): used to check the engine's numbers.
 */
export function softmax(z: number[], T = 1): number[] {
  const m = Math.max(...z.map((v) => v / T));
  const e = z.map((v) => Math.exp(v / T - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** KL(a‖b) with 0·log 0 = 0 */
export function kl(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) if (a[i] > 0) s += a[i] * (Math.log(a[i]) - Math.log(b[i]));
  return s;
}

export function entropy(a: number[]): number {
  let s = 0;
  for (const v of a) if (v > 0) s -= v * Math.log(v);
  return s;
}

export function gjsd(p: number[], q: number[], beta: number): number {
  if (beta === 0) return kl(p, q);
  if (beta === 1) return kl(q, p);
  const m = p.map((v, i) => beta * v + (1 - beta) * q[i]);
  return beta * kl(p, m) + (1 - beta) * kl(q, m);
}

export function akl(p: number[], q: number[], mu = 0.5): number {
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  let cum = 0;
  let gh = 0;
  let gt = 0;
  let inHead = true;
  order.forEach((i, k) => {
    cum += p[i];
    if (k > 0 && cum > mu) inHead = false;
    if (inHead) gh += Math.abs(p[i] - q[i]);
    else gt += Math.abs(p[i] - q[i]);
  });
  if (gh + gt === 0) return 0;
  return (gh / (gh + gt)) * kl(p, q) + (gt / (gh + gt)) * kl(q, p);
}

export interface RefRow {
  fkl: number;
  rkl: number;
  jeffreys: number;
  jsd: number;
  gjsd: number;
  tvd: number;
  skl: number;
  srkl: number;
  akl: number;
  tckd: number;
  nckd: number;
  uncertainty: number;
  k1: number;
  k2: number;
  k3: number;
  pY: number;
  qY: number;
  logpY1: number;
  logqY1: number;
  rankT: number;
  rankS: number;
  entT: number;
  entS: number;
}

export function referenceRow(
  zt: number[],
  zs: number[],
  y: number,
  o: { T?: number; beta?: number; alpha?: number; mu?: number } = {},
): RefRow {
  const T = o.T ?? 1;
  const beta = o.beta ?? 0.5;
  const alpha = o.alpha ?? 0.1;
  const p = softmax(zt, T);
  const q = softmax(zs, T);
  const fkl = kl(p, q);
  const rkl = kl(q, p);
  const m = p.map((v, i) => 0.5 * (v + q[i]));
  const pY = p[y];
  const qY = q[y];
  const bp = [pY, 1 - pY];
  const bq = [qY, 1 - qY];
  const rest = (a: number[]) => {
    const r = a.filter((_, i) => i !== y);
    const s = r.reduce((x, v) => x + v, 0);
    return r.map((v) => v / s);
  };
  const logR = Math.log(pY) - Math.log(qY);
  const r = pY / qY;
  return {
    fkl,
    rkl,
    jeffreys: 0.5 * (fkl + rkl),
    jsd: 0.5 * kl(p, m) + 0.5 * kl(q, m),
    gjsd: gjsd(p, q, beta),
    tvd: 0.5 * p.reduce((s, v, i) => s + Math.abs(v - q[i]), 0),
    skl: kl(
      p,
      p.map((v, i) => alpha * v + (1 - alpha) * q[i]),
    ),
    srkl: kl(
      q,
      p.map((v, i) => (1 - alpha) * v + alpha * q[i]),
    ),
    akl: akl(p, q, o.mu ?? 0.5),
    tckd: kl(bp, bq),
    nckd: kl(rest(p), rest(q)),
    uncertainty: 1 - pY,
    k1: -logR,
    k2: 0.5 * logR * logR,
    k3: r - 1 - Math.log(r),
    pY,
    qY,
    logpY1: Math.log(softmax(zt)[y]),
    logqY1: Math.log(softmax(zs)[y]),
    rankT: 1 + zt.filter((v) => v > zt[y]).length,
    rankS: 1 + zs.filter((v) => v > zs[y]).length,
    entT: entropy(p),
    entS: entropy(q),
  };
}

/** Deterministic pseudo-random numbers (mulberry32) so failures reproduce: test inputs, not reference values. */
export { seededRandom as rng } from '../../src/core/random';

export { gaussian } from '../../src/core/random';

/** log-softmax of row `row` of logits laid out [rows, V], at `id`, of the logits divided by T, in float64. */
export function logSoftmaxAt(data: ArrayLike<number>, row: number, V: number, id: number, T = 1): number {
  const z = Array.from({ length: V }, (_, v) => data[row * V + v] / T);
  const m = Math.max(...z);
  return z[id] - m - Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
}
