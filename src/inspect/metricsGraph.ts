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
  /** How many top entries per model to return (top-k display). */
  topK: number;
  /** AKL's head mass μ */
  mu: number;
  /** how many of the boundary bucket's tokens to return: AKL_MEMBERS + 1, or the vocabulary when smaller */
  aklMembers: number;
}

/**
 * AKL's head search: tokens are bucketed by how far their log-probability is below the top,
 * AKL_BUCKETS_PER_NAT buckets per nat, the last bucket holding everything further down; the
 * boundary bucket's AKL_MEMBERS + 1 largest tokens come back to finish the head exactly.
 */
export const AKL_BUCKETS_PER_NAT = 256;
export const AKL_BUCKETS = 4096;
export const AKL_MEMBERS = 128;

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
  'rank_t', // #{j : z_j > z_y}, teacher (int32)
  'rank_s',
  'top_t_val', // [T,K] log p, descending
  'top_t_idx', // [T,K] int64
  'top_s_val', // [T,K] log q
  'top_s_idx',
  'lognt_t', // log Σ_{j≠y} p_j = log(1 − p_y), summed directly (exact when p_y ≈ 1)
  'lognt_s', // log Σ_{j≠y} q_j
  'nckd', // KL(p̂ ‖ q̂) over the non-target tokens, renormalised, summed directly
  'akl_found', // 1 when some bucket's cumulative p exceeds μ (else the head is every token)
  'akl_mass_before', // Σ p over the buckets before the boundary bucket
  'akl_diff_before', // Σ |p − q| over them
  'akl_member_u', // [T, M+1] the boundary bucket's largest u = log p + log S, descending; −∞ past its end
  'akl_member_p', // [T, M+1] their p
  'akl_member_diff', // [T, M+1] their |p − q|
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
  // the row maximum of float32 logits is found before the cast (half the bytes to read)
  const rawTeacherMax =
    o.logitsType === 'float32' ? g.op1('ReduceMax', [tl, lastAxis], { keepdims: 1 }) : undefined;
  const rowMax = (z: string, raw: string) =>
    o.logitsType === 'float32' && o.temperature === 1
      ? g.op1('Cast', [raw === tl ? rawTeacherMax! : g.op1('ReduceMax', [raw, lastAxis], { keepdims: 1 })], {
          to: 11,
        })
      : g.op1('ReduceMax', [z, lastAxis], { keepdims: 1 });
  const logSoftmax = (z: string, raw: string) => {
    const u = g.op1('Sub', [z, rowMax(z, raw)]);
    const e = g.op1('Exp', [u]);
    const sum = g.op1('ReduceSum', [e, lastAxis], { keepdims: 1 });
    return { u, e, logS: g.op1('Log', [sum]), prob: g.op1('Div', [e, sum]) };
  };
  const { u: ut, e: et, logS: logSt, prob: p } = logSoftmax(zt, tl);
  const { u: us, e: es, logS: logSs, prob: q } = logSoftmax(zs, sl);
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
  const absDiff = g.op1('Abs', [diff]);
  out('l1', g.op1('ReduceSum', [absDiff, lastAxis], { keepdims: 0 }));

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
    // counted in int32 (half the bytes of int64; a vocabulary is far below 2^31)
    return g.op1('ReduceSum', [g.op1('Cast', [g.op1('Greater', [z, zy])], { to: 6 }), lastAxis], {
      keepdims: 0,
    });
  };
  // float32 logits are compared as they are (4 bytes a value, and exact); others after the cast
  out('rank_t', rank(o.logitsType === 'float32' ? tl : zt1), 'int32');
  out('rank_s', rank(o.logitsType === 'float32' ? sl : zs1), 'int32');
  const k = g.ints([o.topK]);
  // float32 logits are sorted as they are (the order of z/T is the order of z; half the
  // bytes), their float64 u gathered at the indices found
  const topOf = (u: string, raw: string): [string, string] => {
    if (o.logitsType !== 'float32')
      return g.op('TopK', [u, k], { axis: -1, largest: 1, sorted: 1 }, 2) as [string, string];
    const [, idx] = g.op('TopK', [raw, k], { axis: -1, largest: 1, sorted: 1 }, 2);
    return [g.op1('GatherElements', [u, idx], { axis: 1 }), idx];
  };
  const [tu, ti] = topOf(ut, tl);
  const [su, si] = topOf(us, sl);
  out('top_t_val', g.op1('Sub', [tu, logSt]), 'float64', ['T', o.topK]);
  out('top_t_idx', ti, 'int64', ['T', o.topK]);
  out('top_s_val', g.op1('Sub', [su, logSs]), 'float64', ['T', o.topK]);
  out('top_s_idx', si, 'int64', ['T', o.topK]);

  // AKL's head (docs/metrics.md): sorted by p descending, the leading tokens whose cumulative
  // p ≤ μ, at least one. Found without sorting the vocabulary:
  //   1. bucket b_j = min(⌊(max z − z_j)·R/T⌋, B − 1): how far below the top each token's log p
  //      is (monotone in p; equal logits share a bucket)
  //   2. per bucket Σ p and Σ |p − q| (scatter-add), and their sums over the buckets before it
  //   3. the boundary bucket b* is the first whose cumulative mass exceeds μ: the buckets before
  //      it are in the head, it is partly
  //   4. its largest tokens, sorted (TopK: equal values in index order), go to the caller,
  //      which adds them one at a time while the mass stays ≤ μ
  // int32 bucket numbers: half the bytes of int64 for the scatters and the comparison below.
  // Any bucketing that is monotone in z and gives equal logits one bucket is exact; float32
  // logits are bucketed as they are, (max z − z)·R/T rounded in float32 (rounding is monotone)
  const [depth, depthType] =
    o.logitsType === 'float32'
      ? [
          g.op1('Mul', [g.op1('Sub', [rawTeacherMax!, tl]), g.scalar(AKL_BUCKETS_PER_NAT / o.temperature)]),
          'float32' as const,
        ]
      : [g.op1('Mul', [ut, g.scalar(-AKL_BUCKETS_PER_NAT, 'float64')]), 'float64' as const];
  const buckets = g.op1('Cast', [g.op1('Min', [depth, g.scalar(AKL_BUCKETS - 1, depthType)])], { to: 6 });
  const rows = g.op1('Slice', [g.op1('Shape', [ut]), g.ints([0]), g.ints([1])]);
  const perBucketShape = g.op1('Concat', [rows, g.ints([AKL_BUCKETS])], { axis: 0 });
  const zerosPerBucket = g.op1('ConstantOfShape', [perBucketShape], {
    value: { dataType: 11, dims: [1], doubleData: [0] },
  });
  const perBucket = (values: string) =>
    g.op1('ScatterElements', [zerosPerBucket, buckets, values], { axis: 1, reduction: 'add' });
  const massPerBucket = perBucket(p);
  const massBefore = g.op1('CumSum', [massPerBucket, g.constant([1], 'int64', [], 'axis')], { exclusive: 1 });
  const diffBefore = g.op1('CumSum', [perBucket(absDiff), g.constant([1], 'int64', [], 'axis')], {
    exclusive: 1,
  });
  const exceeds = g.op1(
    'Cast',
    [g.op1('Greater', [g.op1('Add', [massBefore, massPerBucket]), g.scalar(o.mu, 'float64')])],
    { to: 6 },
  ); // int32
  const boundary = g.op1('ArgMax', [exceeds], { axis: 1, keepdims: 1, select_last_index: 0 }); // first bucket over μ, [T,1] int64
  out('akl_found', g.op1('ReduceMax', [exceeds, lastAxis], { keepdims: 0 }), 'int32');
  out('akl_mass_before', flat(g.op1('GatherElements', [massBefore, boundary], { axis: 1 })));
  out('akl_diff_before', flat(g.op1('GatherElements', [diffBefore, boundary], { axis: 1 })));
  const inBoundary = g.op1('Equal', [buckets, g.op1('Cast', [boundary], { to: 6 })]);
  // the order of p is the order of the logits: float32 logits are sorted as they are (half the bytes)
  const order = o.logitsType === 'float32' ? tl : ut;
  const orderType = o.logitsType === 'float32' ? 'float32' : 'float64';
  const [orderInBoundary, memberIdx] = g.op(
    'TopK',
    [g.op1('Where', [inBoundary, order, g.scalar(-Infinity, orderType)]), g.ints([o.aklMembers])],
    { axis: -1, largest: 1, sorted: 1 },
    2,
  );
  // −∞ marks the places past the bucket's last token (tokens whose logit is −∞ have p = 0)
  const memberU = g.op1('Where', [
    g.op1('IsInf', [orderInBoundary], { detect_positive: 0 }),
    g.scalar(-Infinity, 'float64'),
    g.op1('GatherElements', [ut, memberIdx], { axis: 1 }),
  ]);
  const members: (number | string)[] = ['T', o.aklMembers];
  out('akl_member_u', memberU, 'float64', members);
  out('akl_member_p', g.op1('GatherElements', [p, memberIdx], { axis: 1 }), 'float64', members);
  out('akl_member_diff', g.op1('GatherElements', [absDiff, memberIdx], { axis: 1 }), 'float64', members);
  return g.encode().model;
}
