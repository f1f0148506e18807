/**
 * The distillation losses of docs/metrics.md ("Training losses") as ONNX subgraphs over logits
 * laid out as rows [M, V] (M = batch × length). Built in float32; the gradient checks
 * promote the whole graph to float64.
 */
import type { GraphBuilder } from '../onnx/graphBuilder';
import type { LossOptions } from '../shared/protocol';

/** The option values a loss actually uses, defaults filled in (for run.json). */
export function resolvedLossOptions(o: LossOptions): Required<LossOptions> {
  const alpha = o.alpha ?? (o.key === 'dkd' ? 1 : o.key === 'atkd' ? 0.2 : 0.1);
  const beta = o.beta ?? (o.key === 'dkd' ? 8 : 0.5);
  return {
    key: o.key,
    temperature: o.temperature,
    alpha,
    beta,
    mu: o.mu ?? 0.5,
    kdRatio: o.kdRatio ?? 1,
    scaleByT2: o.scaleByT2 ?? o.key === 'dkd',
  };
}

export interface LossInputs {
  /** student logits [M, V] (trainable path) */
  student: string;
  /** teacher logits [M, V]; or, with `buckets`, unused */
  teacher: string;
  /**
   * Teacher top-k mode: the teacher is given only as log-probabilities (at the loss
   * temperature) of K chosen ids, always including the target, plus one last bucket for the
   * remaining mass. Every KD loss is then computed over these K + 1 buckets, with the
   * student's probabilities bucketed the same way.
   */
  buckets?: { ids: string; logprobs: string; k: number; target: string };
  /** target ids [M, 1] int64 */
  targets: string;
  /** 1 for a valid target, 0 for padding and prompt tokens: [M] */
  mask: string;
  rows: number;
  vocab: number;
}

/** Smallest positive value used to keep logarithms finite; far below float32's resolution of any loss term. */
const TINY = 1e-30;

/** Builds the batch loss (a scalar): the mean of the per-token term over valid targets. */
export function buildLoss(g: GraphBuilder, x: LossInputs, options: LossOptions): string {
  const o = resolvedLossOptions(options);
  const b = new LossBuilder(g, x);
  const kd = o.key === 'ce' ? undefined : b.kdLoss(o);
  const needCe = o.key === 'ce' || o.kdRatio < 1;
  const ce = needCe ? b.maskedMean(b.crossEntropy()) : undefined;
  if (!kd) return ce!;
  const scaled =
    o.scaleByT2 && o.temperature !== 1 ? g.op1('Mul', [kd, g.scalar(o.temperature * o.temperature)]) : kd;
  if (!ce || o.kdRatio === 1) return scaled;
  return g.op1('Add', [
    g.op1('Mul', [ce, g.scalar(1 - o.kdRatio)]),
    g.op1('Mul', [scaled, g.scalar(o.kdRatio)]),
  ]);
}

/**
 * Masked sums for held-out evaluation: Σ mask·fkl, Σ mask·rkl and Σ mask·nll (T = 1) over
 * the batch, and Σ mask.
 */
export function buildEvalSums(
  g: GraphBuilder,
  x: LossInputs,
): { fkl?: string; rkl?: string; nll: string; count: string } {
  const b = new LossBuilder(g, x);
  const sum = (v: string) => g.op1('ReduceSum', [g.op1('Mul', [v, x.mask]), g.ints([0])], { keepdims: 0 });
  const base = {
    nll: sum(b.crossEntropy()),
    count: g.op1('ReduceSum', [x.mask, g.ints([0])], { keepdims: 0 }),
  };
  if (!x.teacher && !x.buckets) return base; // training from scratch: no teacher to compare with
  const dist = b.distributions(1);
  return {
    ...base,
    fkl: sum(b.rowSum(g.op1('Mul', [dist.p, g.op1('Sub', [dist.lt, dist.ls])]))),
    rkl: sum(b.rowSum(g.op1('Mul', [dist.q, g.op1('Sub', [dist.ls, dist.lt])]))),
  };
}

interface Distributions {
  lt: string;
  ls: string;
  p: string;
  q: string;
}

class LossBuilder {
  private cache = new Map<number, Distributions>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly x: LossInputs,
  ) {}

  private op(t: string, i: string[], a: Record<string, any> = {}): string {
    return this.g.op1(t, i, a);
  }

  private s(v: number): string {
    return this.g.scalar(v);
  }

  /** width of the distributions the KD losses compare: the vocabulary, or K + 1 buckets */
  private get width(): number {
    return this.x.buckets ? this.x.buckets.k + 1 : this.x.vocab;
  }

  /** the target's index in the compared distributions */
  private get target(): string {
    return this.x.buckets ? this.x.buckets.target : this.x.targets;
  }

  private studentLs = new Map<number, string>();

  private studentLogSoftmax(T: number): string {
    let ls = this.studentLs.get(T);
    if (!ls) {
      ls = this.op('LogSoftmax', [T === 1 ? this.x.student : this.op('Div', [this.x.student, this.s(T)])], {
        axis: -1,
      });
      this.studentLs.set(T, ls);
    }
    return ls;
  }

  /** log-softmax of both models at temperature T, and the probabilities */
  distributions(T: number): Distributions {
    const hit = this.cache.get(T);
    if (hit) return hit;
    let d: Distributions;
    const b = this.x.buckets;
    if (b) {
      // the student's mass on the teacher's chosen ids, and on everything else as one bucket
      const { rows, vocab } = this.x;
      const full = this.studentLogSoftmax(T);
      const chosen = this.op('GatherElements', [full, b.ids], { axis: 1 });
      const ones = this.op('ConstantOfShape', [this.g.ints([rows, vocab])], {
        value: { dataType: 1, dims: [1], floatData: [1] },
      });
      const zeros = this.op('ConstantOfShape', [this.g.ints([rows, b.k])], {
        value: { dataType: 1, dims: [1], floatData: [0] },
      });
      const others = this.op('ScatterElements', [ones, b.ids, zeros], { axis: 1 });
      const rest = this.rowSumKeep(this.op('Mul', [this.op('Exp', [full]), others]));
      const ls = this.op('Concat', [chosen, this.op('Log', [this.op('Max', [rest, this.s(TINY)])])], {
        axis: 1,
      });
      d = { lt: b.logprobs, ls, p: this.op('Exp', [b.logprobs]), q: this.op('Exp', [ls]) };
    } else {
      const lt = this.op(
        'LogSoftmax',
        [T === 1 ? this.x.teacher : this.op('Div', [this.x.teacher, this.s(T)])],
        { axis: -1 },
      );
      const ls = this.studentLogSoftmax(T);
      d = { lt, ls, p: this.op('Exp', [lt]), q: this.op('Exp', [ls]) };
    }
    this.cache.set(T, d);
    return d;
  }

  /** Σ over the vocabulary: [M, V] → [M] */
  rowSum(v: string): string {
    return this.op('ReduceSum', [v, this.g.ints([-1])], { keepdims: 0 });
  }

  private rowSumKeep(v: string): string {
    return this.op('ReduceSum', [v, this.g.ints([-1])], { keepdims: 1 });
  }

  /** Σ mask·term / max(Σ mask, 1) */
  maskedMean(term: string, mask = this.x.mask): string {
    const total = this.op('ReduceSum', [this.op('Mul', [term, mask]), this.g.ints([0])], { keepdims: 0 });
    const count = this.op('Max', [
      this.op('ReduceSum', [mask, this.g.ints([0])], { keepdims: 0 }),
      this.s(1),
    ]);
    return this.op('Div', [total, count]);
  }

  /** log(wa·exp(la) + wb·exp(lb)) element-wise, without underflow */
  private mixLog(wa: number, la: string, wb: number, lb: string): string {
    const a = this.op('Unsqueeze', [this.op('Add', [la, this.s(Math.log(wa))]), this.g.ints([-1])]);
    const b = this.op('Unsqueeze', [this.op('Add', [lb, this.s(Math.log(wb))]), this.g.ints([-1])]);
    return this.op('ReduceLogSumExp', [this.op('Concat', [a, b], { axis: -1 }), this.g.ints([-1])], {
      keepdims: 0,
    });
  }

  /** KL(a‖m) per row for log-probabilities la (probabilities pa) and log m */
  private kl(pa: string, la: string, lm: string): string {
    return this.rowSum(this.op('Mul', [pa, this.op('Sub', [la, lm])]));
  }

  crossEntropy(): string {
    const ls = this.studentLogSoftmax(1);
    const picked = this.op('GatherElements', [ls, this.x.targets], { axis: 1 });
    return this.op('Neg', [this.op('Reshape', [picked, this.g.ints([this.x.rows])])]);
  }

  kdLoss(o: Required<LossOptions>): string {
    const d = this.distributions(o.temperature);
    const fkl = () => this.kl(d.p, d.lt, d.ls);
    const rkl = () => this.kl(d.q, d.ls, d.lt);
    const half = (v: string) => this.op('Mul', [v, this.s(0.5)]);
    const gjsd = (beta: number) => {
      if (beta === 0) return fkl();
      if (beta === 1) return rkl();
      const lm = this.mixLog(beta, d.lt, 1 - beta, d.ls);
      return this.op('Add', [
        this.op('Mul', [this.kl(d.p, d.lt, lm), this.s(beta)]),
        this.op('Mul', [this.kl(d.q, d.ls, lm), this.s(1 - beta)]),
      ]);
    };
    switch (o.key) {
      case 'fkl':
        return this.maskedMean(fkl());
      case 'rkl':
        return this.maskedMean(rkl());
      case 'jeffreys':
        return this.maskedMean(half(this.op('Add', [fkl(), rkl()])));
      case 'jsd':
        return this.maskedMean(gjsd(0.5));
      case 'gjsd':
        return this.maskedMean(gjsd(o.beta));
      case 'tvd':
        return this.maskedMean(half(this.rowSum(this.op('Abs', [this.op('Sub', [d.p, d.q])]))));
      case 'skl':
        if (o.alpha === 1) return this.maskedMean(this.op('Mul', [fkl(), this.s(0)]));
        return this.maskedMean(
          o.alpha === 0 ? fkl() : this.kl(d.p, d.lt, this.mixLog(o.alpha, d.lt, 1 - o.alpha, d.ls)),
        );
      case 'srkl':
        if (o.alpha === 1) return this.maskedMean(this.op('Mul', [rkl(), this.s(0)]));
        return this.maskedMean(
          o.alpha === 0 ? rkl() : this.kl(d.q, d.ls, this.mixLog(1 - o.alpha, d.lt, o.alpha, d.ls)),
        );
      case 'akl':
        return this.maskedMean(this.akl(d, o.mu, fkl(), rkl()));
      case 'dkd': {
        const { tckd, nckd } = this.split(d);
        return this.maskedMean(
          this.op('Add', [this.op('Mul', [tckd, this.s(o.alpha)]), this.op('Mul', [nckd, this.s(o.beta)])]),
        );
      }
      case 'atkd':
        return this.atkd(d, o.alpha);
      default:
        throw new Error(`unknown loss ${o.key}`);
    }
  }

  /** AKL: head/tail weights from the teacher's sorted probabilities (docs/metrics.md) */
  private akl(d: Distributions, mu: number, fkl: string, rkl: string): string {
    const { rows } = this.x;
    const vocab = this.width;
    const [sorted, order] = this.g.op(
      'TopK',
      [d.p, this.g.ints([vocab])],
      { axis: -1, largest: 1, sorted: 1 },
      2,
    );
    const cumulative = this.op('CumSum', [sorted, this.g.constant([1], 'int64', [], 'axis')]);
    const first = new Float32Array(vocab);
    first[0] = 1;
    const headSorted = this.op('Max', [
      this.op('Cast', [this.op('LessOrEqual', [cumulative, this.s(mu)])], { to: 1 }),
      this.g.constant(first, 'float32', [1, vocab], 'first'),
    ]);
    const zeros = this.op('ConstantOfShape', [this.g.ints([rows, vocab])], {
      value: { dataType: 1, dims: [1], floatData: [0] },
    });
    const head = this.op('ScatterElements', [zeros, order, headSorted], { axis: -1 });
    const gap = this.op('Abs', [this.op('Sub', [d.p, d.q])]);
    const gh = this.rowSum(this.op('Mul', [gap, head]));
    const gt = this.rowSum(this.op('Mul', [gap, this.op('Sub', [this.s(1), head])]));
    const wh = this.op('Div', [gh, this.op('Add', [this.op('Add', [gh, gt]), this.s(TINY)])]);
    return this.op('Add', [
      this.op('Mul', [wh, fkl]),
      this.op('Mul', [this.op('Sub', [this.s(1), wh]), rkl]),
    ]);
  }

  /** DKD's target / non-target split per row, with the target removed exactly */
  private split(d: Distributions): { tckd: string; nckd: string; uTeacher: string } {
    const { rows } = this.x;
    const vocab = this.width;
    const targets = this.target;
    const flat = (v: string) => this.op('Reshape', [v, this.g.ints([rows])]);
    const lpy = this.op('GatherElements', [d.lt, targets], { axis: 1 });
    const lqy = this.op('GatherElements', [d.ls, targets], { axis: 1 });
    const py = this.op('Exp', [lpy]);
    const ones = this.op('ConstantOfShape', [this.g.ints([rows, vocab])], {
      value: { dataType: 1, dims: [1], floatData: [1] },
    });
    const zeroCol = this.op('ConstantOfShape', [this.g.ints([rows, 1])], {
      value: { dataType: 1, dims: [1], floatData: [0] },
    });
    const notTarget = this.op('ScatterElements', [ones, targets, zeroCol], { axis: 1 });
    // the non-target masses summed directly, so 1 − p_y keeps its precision when p_y → 1
    const up = this.rowSumKeep(this.op('Mul', [d.p, notTarget]));
    const uq = this.rowSumKeep(this.op('Mul', [d.q, notTarget]));
    const safeLog = (u: string) => this.op('Log', [this.op('Max', [u, this.s(TINY)])]);
    const tckd = this.op('Add', [
      this.op('Mul', [py, this.op('Sub', [lpy, lqy])]),
      this.op('Mul', [up, this.op('Sub', [safeLog(up), safeLog(uq)])]),
    ]);
    const weighted = this.rowSumKeep(
      this.op('Mul', [this.op('Mul', [d.p, notTarget]), this.op('Sub', [d.lt, d.ls])]),
    );
    const nckdRaw = this.op('Add', [
      this.op('Sub', [this.op('Div', [weighted, this.op('Max', [up, this.s(TINY)])]), safeLog(up)]),
      safeLog(uq),
    ]);
    // p̂ does not exist when the teacher puts all its mass on the target: nckd is 0 there
    const defined = this.op('Cast', [this.op('Greater', [up, this.s(TINY)])], { to: 1 });
    return { tckd: flat(tckd), nckd: flat(this.op('Mul', [nckdRaw, defined])), uTeacher: flat(up) };
  }

  /** ATKD: easy / hard rows by the lower median of the teacher's uncertainty over the batch */
  private atkd(d: Distributions, alpha: number): string {
    const { rows } = this.x;
    const { tckd, nckd, uTeacher } = this.split(d);
    const mask = this.x.mask;
    // row i is hard iff #{valid j : u_j ≤ u_i} ≥ ⌊(n−1)/2⌋ + 1, i.e. u_i ≥ the lower median
    const below = this.op(
      'Cast',
      [
        this.op('LessOrEqual', [
          this.op('Reshape', [uTeacher, this.g.ints([1, rows])]),
          this.op('Reshape', [uTeacher, this.g.ints([rows, 1])]),
        ]),
      ],
      { to: 1 },
    );
    const counts = this.rowSum(this.op('Mul', [below, this.op('Reshape', [mask, this.g.ints([1, rows])])]));
    const n = this.op('ReduceSum', [mask, this.g.ints([0])], { keepdims: 0 });
    const needed = this.op('Add', [
      this.op('Floor', [this.op('Div', [this.op('Sub', [n, this.s(1)]), this.s(2)])]),
      this.s(1),
    ]);
    const hard = this.op('Mul', [
      this.op('Cast', [this.op('GreaterOrEqual', [counts, needed])], { to: 1 }),
      mask,
    ]);
    const easy = this.op('Sub', [mask, hard]);
    const easyPart = this.op('Mul', [this.maskedMean(nckd, easy), this.s(alpha)]);
    const hardPart = this.op('Mul', [
      this.op('Add', [this.maskedMean(tckd, hard), this.maskedMean(nckd, hard)]),
      this.s(1 - alpha),
    ]);
    return this.op('Add', [easyPart, hardPart]);
  }
}

/** What the policy-gradient losses of the on-policy methods read, besides the student's logits. */
export interface PolicyLossInputs {
  /** student logits [M, V] (trainable path) */
  student: string;
  /** teacher logits [M, V]: MiniLLM's single-step term */
  teacher?: string;
  /** the sampled ids [M, 1] int64 */
  targets: string;
  /** 1 for a completion token (up to and including the first EOS), else 0: [M] */
  mask: string;
  /** log q_old(y_t) of the distribution sampled from: [M] */
  oldLogp: string;
  /** A_t, computed outside the graph (advantages.ts): [M] */
  advantages: string;
  /** MiniLLM's importance weights w_t (teacher-mixed sampling): [M]; 1 without */
  weights?: string;
  /** MiniLLM's pre-training rows: 1 for a plain-text target, else 0 [M] */
  ptMask?: string;
  rows: number;
  vocab: number;
}

export interface PolicyLossOptions {
  kind: 'onpolicy' | 'minillm';
  /** the sampling temperature: log q_θ is taken of logits / T, as the tokens were drawn */
  temperature: number;
  /** MiniLLM's PPO clip ε on ratio·w */
  clip: number;
  /** MiniLLM: add the exact per-step reverse KL(q_θ‖p) over the vocabulary */
  singleStep: boolean;
  /**
   * MiniLLM's pre-training term on plain-text rows of the same batch (`ptMask` selects them,
   * `mask` the completion rows): coef·((1 − kdRatio)·mean(−log q_y) + kdRatio·mean(−Σ_v p log q))
   * at T = 1 (the soft cross-entropy, as LMOps: KL plus the teacher's entropy)
   */
  pretrain?: { kdRatio: number; coef: number };
}

/**
 * The policy-gradient losses, a token mean over completion tokens (Σ mask·term / Σ mask):
 *
 *   log q_θ(y_t) = log_softmax(student / T)[y_t]
 *   ratio_t      = exp((log q_θ(y_t) − log q_old(y_t))·mask_t)
 *   onpolicy:  L = −mean(ratio_t·A_t)                                  (Tinker's importance sampling)
 *   minillm:   L = mean(max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 − ε, 1 + ε))),  ρ_t = ratio_t·w_t  (LMOps)
 *                + mean(KL(q_θ,t ‖ p_t)) over the vocabulary at T, when singleStep
 *
 * A, w and log q_old are inputs, so no gradient flows through them; on the first pass over a
 * rollout (θ = θ_old) the gradient of the on-policy loss is −A·∇log q_θ(y_t).
 */
export function buildPolicyLoss(g: GraphBuilder, x: PolicyLossInputs, o: PolicyLossOptions): string {
  const op = (t: string, i: string[], a: Record<string, any> = {}) => g.op1(t, i, a);
  const s = (v: number) => g.scalar(v);
  const scaled = (logits: string) => (o.temperature === 1 ? logits : op('Div', [logits, s(o.temperature)]));
  const maskedMean = (term: string) =>
    op('Div', [
      op('ReduceSum', [op('Mul', [term, x.mask]), g.ints([0])], { keepdims: 0 }),
      op('Max', [op('ReduceSum', [x.mask, g.ints([0])], { keepdims: 0 }), s(1)]),
    ]);
  const logqAll = op('LogSoftmax', [scaled(x.student)], { axis: -1 });
  const logq = op('Reshape', [op('GatherElements', [logqAll, x.targets], { axis: 1 }), g.ints([x.rows])]);
  const ratio = op('Exp', [op('Mul', [op('Sub', [logq, x.oldLogp]), x.mask])]);
  if (o.kind === 'onpolicy') return op('Neg', [maskedMean(op('Mul', [ratio, x.advantages]))]);

  const rho = x.weights ? op('Mul', [ratio, x.weights]) : ratio;
  const clipped = op('Min', [op('Max', [rho, s(1 - o.clip)]), s(1 + o.clip)]);
  const negA = op('Neg', [x.advantages]);
  const pg = maskedMean(op('Max', [op('Mul', [negA, rho]), op('Mul', [negA, clipped])]));
  let total = pg;
  if (o.singleStep) {
    if (!x.teacher) throw new Error("MiniLLM's single-step term needs the teacher's logits");
    // KL(q_θ ‖ p) = Σ_v q_θ(v)·(log q_θ(v) − log p(v)), the gradient through q_θ in both factors
    const logp = op('LogSoftmax', [scaled(x.teacher)], { axis: -1 });
    const reverseKl = op(
      'ReduceSum',
      [op('Mul', [op('Exp', [logqAll]), op('Sub', [logqAll, logp])]), g.ints([-1])],
      { keepdims: 0 },
    );
    total = op('Add', [total, maskedMean(reverseKl)]);
  }
  if (o.pretrain) {
    if (!x.teacher || !x.ptMask)
      throw new Error("MiniLLM's pre-training term needs its rows and the teacher's logits");
    const ptMask = x.ptMask;
    const ptMean = (term: string) =>
      op('Div', [
        op('ReduceSum', [op('Mul', [term, ptMask]), g.ints([0])], { keepdims: 0 }),
        op('Max', [op('ReduceSum', [ptMask, g.ints([0])], { keepdims: 0 }), s(1)]),
      ]);
    // at T = 1 whatever the sampling temperature (LMOps' pre-training loss)
    const logq1 = op('LogSoftmax', [x.student], { axis: -1 });
    const logp1 = op('LogSoftmax', [x.teacher], { axis: -1 });
    const ce = op('Neg', [
      op('Reshape', [op('GatherElements', [logq1, x.targets], { axis: 1 }), g.ints([x.rows])]),
    ]);
    const softCe = op('Neg', [
      op('ReduceSum', [op('Mul', [op('Exp', [logp1]), logq1]), g.ints([-1])], { keepdims: 0 }),
    ]);
    const r = o.pretrain.kdRatio;
    const pt = op('Add', [op('Mul', [ptMean(ce), s(1 - r)]), op('Mul', [ptMean(softCe), s(r)])]);
    total = op('Add', [total, op('Mul', [pt, s(o.pretrain.coef)])]);
  }
  return total;
}
