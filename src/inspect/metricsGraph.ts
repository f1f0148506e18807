/**
 * The fused metrics graph: teacher and student logits in, one small row of numbers per
 * position out. Runs in ONNX Runtime next to the models so that the full-vocabulary
 * reductions are vectorised and the T×V arrays never reach JavaScript loops.
 * Everything after the input cast is float64, as docs/metrics.md ("Numerics") asks.
 *
 * The caller feeds rows in chunks of a few positions so that the float64 intermediates stay
 * in cache and the allocator reuses them (measured: whole-text runs were dominated by page
 * faults on fresh T×V buffers).
 */
import { GraphBuilder, type ElemType } from '../onnx/graphBuilder';

export interface MetricsGraphOptions {
  /** Element type of the logits the models produce. */
  logitsType: ElemType;
  temperature: number;
  /** gjsd β; 0 and 1 are answered with fkl and rkl by the caller, 0.5 with jsd. */
  beta: number;
  /** skl / srkl α. */
  alpha: number;
  /** How many top entries per model to return (top-k display and the AKL head search). */
  topK: number;
}

/** Names of the graph's outputs, each [T] unless noted. */
export const METRIC_OUTPUTS = [
  'ent_t', // H(p)
  'ent_s', // H(q)
  'cross_pq', // Σ p log q
  'cross_qp', // Σ q log p
  'sum_slogs', // Σ (p+q) log(p+q)
  'gjsd_p', // Σ p log(βp+(1−β)q)   (only meaningful when 0<β<1, β≠0.5)
  'gjsd_q', // Σ q log(βp+(1−β)q)
  'skl_p', // Σ p log(αp+(1−α)q)
  'srkl_q', // Σ q log((1−α)p+αq)
  'l1', // Σ |p − q|
  'logp_y', // log p_y at T
  'logq_y', // log q_y at T
  'nll_t', // −log p_y at T = 1
  'nll_s', // −log q_y at T = 1
  'rank_t', // #{j : z_j > z_y}, teacher (int64)
  'rank_s',
  'top_t_val', // [T,K] log p, descending
  'top_t_idx', // [T,K] int64
  'top_s_val', // [T,K] log q
  'top_s_idx',
  'q_at_top_t', // [T,K] log q at the teacher's top indices (for AKL)
  'lognt_t', // log Σ_{j≠y} p_j = log(1 − p_y), summed directly (exact when p_y ≈ 1)
  'lognt_s', // log Σ_{j≠y} q_j
  'nckd', // KL(p̂ ‖ q̂) over the non-target tokens, renormalised, summed directly
] as const;

export function buildMetricsGraph(o: MetricsGraphOptions): Uint8Array {
  const g = new GraphBuilder('distill_lens_metrics');
  const tl = g.input('teacher_logits', o.logitsType, ['T', 'V']);
  const sl = g.input('student_logits', o.logitsType, ['T', 'V']);
  const y = g.input('targets', 'int64', ['T']);
  const y2 = g.op1('Unsqueeze', [y, g.ints([1])]); // [T,1]

  const toDouble = (x: string) => (o.logitsType === 'float64' ? x : g.op1('Cast', [x], { to: 11 }));
  const zt1 = toDouble(tl);
  const zs1 = toDouble(sl);
  const invT = g.scalar(1 / o.temperature, 'float64');
  const zt = o.temperature === 1 ? zt1 : g.op1('Mul', [zt1, invT]);
  const zs = o.temperature === 1 ? zs1 : g.op1('Mul', [zs1, invT]);
  // Softmax by hand: ONNX Runtime's float64 LogSoftmax kernel is several times slower than
  // these vectorised element-wise kernels.
  const lastAxis = g.ints([-1]);
  // u = z − max and log S = log Σ exp(u), so log p = u − log S; log p itself is never
  // materialised (two T×V passes saved): Σ p·log p = Σ p·u − log S because Σ p = 1.
  const logSoftmax = (z: string) => {
    const u = g.op1('Sub', [z, g.op1('ReduceMax', [z, lastAxis], { keepdims: 1 })]);
    const e = g.op1('Exp', [u]);
    const sum = g.op1('ReduceSum', [e, lastAxis], { keepdims: 1 });
    return { u, e, logS: g.op1('Log', [sum]), prob: g.op1('Div', [e, sum]) };
  };
  const { u: ut, e: et, logS: logSt, prob: p } = logSoftmax(zt);
  const { u: us, e: es, logS: logSs, prob: q } = logSoftmax(zs);
  const flat = (x: string) => g.op1('Squeeze', [x, g.ints([1])]); // [T,1] → [T]
  const logStFlat = flat(logSt);
  const logSsFlat = flat(logSs);

  // Row-wise Σ a·b. (A batched MatMul [T,1,V]·[T,V,1] measured 2× slower than Mul + ReduceSum.)
  const dot = (a: string, b: string) => g.op1('ReduceSum', [g.op1('Mul', [a, b]), lastAxis], { keepdims: 0 });
  const out = (
    name: string,
    value: string,
    type: ElemType = 'float64',
    dims: (number | string)[] = ['T'],
  ) => {
    g.rename(value, name);
    g.output(name, type, dims);
  };

  const entT = g.op1('Sub', [logStFlat, dot(p, ut)]);
  out('ent_t', entT);
  out('ent_s', g.op1('Sub', [logSsFlat, dot(q, us)]));
  out('cross_pq', g.op1('Sub', [dot(p, us), logSsFlat]));
  out('cross_qp', g.op1('Sub', [dot(q, ut), logStFlat]));
  const s = g.op1('Add', [p, q]);
  out('sum_slogs', dot(s, g.op1('Log', [s])));
  const diff = g.op1('Sub', [p, q]);
  // log(w·p + (1−w)·q) = log(q + w·(p − q)): two passes instead of three
  const mixLog = (wp: number) =>
    g.op1('Log', [g.op1('Add', [q, g.op1('Mul', [diff, g.scalar(wp, 'float64')])])]);
  if (o.beta > 0 && o.beta < 1 && o.beta !== 0.5) {
    const lmb = mixLog(o.beta);
    out('gjsd_p', dot(p, lmb));
    out('gjsd_q', dot(q, lmb));
  } else {
    const zero = g.op1('Mul', [entT, g.scalar(0, 'float64')]); // [T] zeros, not used by the caller
    out('gjsd_p', zero);
    out('gjsd_q', g.op1('Identity', [zero]));
  }
  out('skl_p', dot(p, mixLog(o.alpha)));
  out('srkl_q', dot(q, mixLog(1 - o.alpha)));
  out('l1', g.op1('ReduceL1', [diff, lastAxis], { keepdims: 0 }));

  const gather = (x: string) =>
    g.op1('Squeeze', [g.op1('GatherElements', [x, y2], { axis: 1 }), g.ints([1])]);
  const logpY = g.op1('Sub', [gather(ut), logStFlat]);
  const logqY = g.op1('Sub', [gather(us), logSsFlat]);
  out('logp_y', logpY);
  out('logq_y', logqY);

  // The non-target tokens on their own, summed directly rather than as 1 − p_y or fkl minus
  // the target's term: when the teacher is nearly sure (p_y = 1 − 1e−17) those differences
  // round to 0 and the "dark knowledge" among the other tokens would vanish.
  //   N_t = Σ_{j≠y} exp(u_j)                   (u = z − max z, the target's entry set to 0)
  //   log(1 − p_y) = log N_t − log S_t
  //   nckd = Σ_{j≠y} p̂_j (log p̂_j − log q̂_j) = Σ_{j≠y} e_j (u_j − v_j) / N_t − log N_t + log N_s
  const zeroAtTarget = g.op1('Mul', [g.op1('Cast', [y2], { to: 11 }), g.scalar(0, 'float64')]); // [T,1] zeros
  const withoutTarget = (e: string) => g.op1('ScatterElements', [e, y2, zeroAtTarget], { axis: 1 });
  const eNonT = withoutTarget(et);
  const sumNonT = g.op1('ReduceSum', [eNonT, lastAxis], { keepdims: 0 });
  const sumNonS = g.op1('ReduceSum', [withoutTarget(es), lastAxis], { keepdims: 0 });
  const logNonT = g.op1('Log', [sumNonT]);
  const logNonS = g.op1('Log', [sumNonS]);
  out('lognt_t', g.op1('Sub', [logNonT, logStFlat]));
  out('lognt_s', g.op1('Sub', [logNonS, logSsFlat]));
  const weighted = g.op1('Div', [dot(eNonT, g.op1('Sub', [ut, us])), sumNonT]);
  out('nckd', g.op1('Add', [g.op1('Sub', [weighted, logNonT]), logNonS]));
  const nllAtOne = (z1: string, logY: string) =>
    o.temperature === 1
      ? g.op1('Neg', [logY])
      : g.op1('Sub', [g.op1('ReduceLogSumExp', [z1, lastAxis], { keepdims: 0 }), gather(z1)]);
  out('nll_t', nllAtOne(zt1, logpY));
  out('nll_s', nllAtOne(zs1, logqY));
  // Rank on the raw logits: softmax is monotone, so the order is the same at any T.
  const rank = (z: string) => {
    const zy = g.op1('GatherElements', [z, y2], { axis: 1 });
    return g.op1('ReduceSum', [g.op1('Cast', [g.op1('Greater', [z, zy])], { to: 7 }), lastAxis], {
      keepdims: 0,
    });
  };
  // float32 logits are compared as they are (4 bytes a value, and exact); others after the cast
  out('rank_t', rank(o.logitsType === 'float32' ? tl : zt1), 'int64');
  out('rank_s', rank(o.logitsType === 'float32' ? sl : zs1), 'int64');
  const k = g.ints([o.topK]);
  const [tu, ti] = g.op('TopK', [ut, k], { axis: -1, largest: 1, sorted: 1 }, 2);
  const [su, si] = g.op('TopK', [us, k], { axis: -1, largest: 1, sorted: 1 }, 2);
  out('top_t_val', g.op1('Sub', [tu, logSt]), 'float64', ['T', o.topK]);
  out('top_t_idx', ti, 'int64', ['T', o.topK]);
  out('top_s_val', g.op1('Sub', [su, logSs]), 'float64', ['T', o.topK]);
  out('top_s_idx', si, 'int64', ['T', o.topK]);
  out('q_at_top_t', g.op1('Sub', [g.op1('GatherElements', [us, ti], { axis: 1 }), logSs]), 'float64', [
    'T',
    o.topK,
  ]);
  return g.encode().model;
}
