/**
 * Reverse-mode differentiation over the standard ONNX operators that the model builder and
 * the loss graphs emit. The gradient nodes are appended to the same graph, so one ONNX
 * Runtime run computes the forward pass, the loss and every gradient.
 *
 * Only nodes on a path from a trainable value to the loss are differentiated; values that
 * depend on the teacher, the targets or constants alone (masks, sorted teacher
 * probabilities) need no gradient rule.
 */
import type { onnx } from '../onnx/proto/onnx';
import type { GraphBuilder } from '../onnx/graphBuilder';
import { GraphShapes, type Shape } from './graphShapes';

export function addGradients(
  g: GraphBuilder,
  shapes: GraphShapes,
  loss: string,
  wrt: string[],
  floatType: 1 | 11 = 1,
): Map<string, string> {
  const nodes = [...g.nodeList];
  const d = new Diff(g, shapes, floatType);
  // values that depend on a trainable value
  const live = new Set(wrt);
  for (const n of nodes)
    if ((n.input ?? []).some((i) => live.has(i))) for (const o of n.output ?? []) live.add(o);
  if (!live.has(loss)) throw new Error('autodiff: the loss does not depend on any trainable value');
  d.accumulate(loss, d.constantLike(loss, 1));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const outs = n.output ?? [];
    if (!outs.some((o) => live.has(o))) continue;
    const dOuts = outs.map((o) => d.take(o));
    if (dOuts.every((x) => x === undefined)) continue;
    const ins = n.input ?? [];
    const needs = ins.map((x) => live.has(x));
    const grads = d.rule(n, dOuts, needs);
    grads.forEach((gr, j) => {
      if (gr && needs[j]) d.accumulate(ins[j], gr);
    });
  }
  const out = new Map<string, string>();
  for (const w of wrt) out.set(w, d.take(w) ?? d.constantLike(w, 0));
  return out;
}

class Diff {
  private pending = new Map<string, string[]>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly s: GraphShapes,
    private readonly ft: 1 | 11,
  ) {}

  accumulate(value: string, grad: string): void {
    const list = this.pending.get(value) ?? [];
    list.push(grad);
    this.pending.set(value, list);
  }

  /** The summed gradient of `value` (consumed). */
  take(value: string): string | undefined {
    const list = this.pending.get(value);
    if (!list) return undefined;
    this.pending.delete(value);
    return list.reduce((a, b) => this.op('Add', [a, b]));
  }

  op(type: string, inputs: string[], attrs: Record<string, any> = {}): string {
    const out = this.g.op1(type, inputs, attrs);
    this.s.update();
    return out;
  }

  scalar(v: number): string {
    return this.ft === 11 ? this.g.scalar(v, 'float64') : this.g.scalar(v);
  }

  constantLike(value: string, v: number): string {
    return this.filled(this.s.shape(value), v);
  }

  filled(shape: Shape, v: number): string {
    const value =
      this.ft === 11
        ? { dataType: 11, dims: [1], doubleData: [v] }
        : { dataType: 1, dims: [1], floatData: [v] };
    return this.op('ConstantOfShape', [this.g.ints(shape)], { value });
  }

  /** Sums a gradient of shape `from` down to the broadcast input's shape `to`. */
  sumTo(grad: string, to: Shape): string {
    const from = this.s.shape(grad);
    if (from.length === to.length && from.every((x, i) => x === to[i])) return grad;
    const pad = from.length - to.length;
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) if (i < pad || (to[i - pad] === 1 && from[i] !== 1)) axes.push(i);
    const summed = axes.length ? this.op('ReduceSum', [grad, this.g.ints(axes)], { keepdims: 1 }) : grad;
    return this.op('Reshape', [summed, this.g.ints(to)]);
  }

  rule(n: onnx.INodeProto, dOuts: (string | undefined)[], needs: boolean[]): (string | undefined)[] {
    const ins = n.input ?? [];
    const outs = n.output ?? [];
    const [dy] = dOuts;
    const y = outs[0];
    const sh = (v: string) => this.s.shape(v);
    const attr = (key: string) => n.attribute?.find((a) => a.name === key);
    const int = (key: string, dflt: number) => {
      const a = attr(key);
      return a ? Number(a.i) : dflt;
    };
    const op = (t: string, i: string[], a: Record<string, any> = {}) => this.op(t, i, a);
    const zero = (v: string) => this.constantLike(v, 0);
    const needDy = () => {
      if (!dy) throw new Error(`autodiff: ${n.opType} needs its output gradient`);
      return dy;
    };
    // Each rule: the forward operation, then its vector–Jacobian product written out; dy is
    // ∂L/∂y for the node's output y, and a rule returns ∂L/∂x for each input x that needs one.
    // Broadcast inputs get their gradient summed back to their own shape (sumTo).
    switch (n.opType) {
      case 'Identity':
        // y = x  →  dx = dy
        return [needDy()];
      case 'Cast': {
        // y = cast(x) between float types of the trainable path  →  dx = dy
        const to = int('to', 1);
        if (to !== this.ft) throw new Error('autodiff: Cast to a non-float type on a trainable path');
        return [needDy()];
      }
      case 'Neg':
        // y = −x  →  dx = −dy
        return [op('Neg', [needDy()])];
      case 'Add':
        // y = a + b  →  da = dy, db = dy
        return [
          needs[0] ? this.sumTo(needDy(), sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(needDy(), sh(ins[1])) : undefined,
        ];
      case 'Sub':
        // y = a − b  →  da = dy, db = −dy
        return [
          needs[0] ? this.sumTo(needDy(), sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(op('Neg', [needDy()]), sh(ins[1])) : undefined,
        ];
      case 'Mul': {
        // y = a · b  →  da = dy · b, db = dy · a
        const [a, b] = ins;
        const da = needs[0] ? this.sumTo(op('Mul', [needDy(), b]), sh(a)) : undefined;
        const db = needs[1] ? this.sumTo(op('Mul', [needDy(), a]), sh(b)) : undefined;
        return [da, db];
      }
      case 'Div': {
        // y = a / b  →  da = dy / b, db = −dy · a / b² = −dy · y / b
        const [a, b] = ins;
        const da = needs[0] ? this.sumTo(op('Div', [needDy(), b]), sh(a)) : undefined;
        const dyTimesY = needs[1] ? op('Mul', [needDy(), y]) : undefined;
        const db = dyTimesY ? this.sumTo(op('Neg', [op('Div', [dyTimesY, b])]), sh(b)) : undefined;
        return [da, db];
      }
      case 'Max':
      case 'Min': {
        // y = max(a, b) (or min)  →  da = dy · [a chosen], db = dy · [b chosen]; ties go to a
        const [a, b] = ins;
        const aChosen = op('Cast', [op(n.opType === 'Max' ? 'GreaterOrEqual' : 'LessOrEqual', [a, b])], {
          to: this.ft,
        });
        const da = op('Mul', [needDy(), aChosen]);
        const db = op('Sub', [needDy(), da]);
        return [needs[0] ? this.sumTo(da, sh(a)) : undefined, needs[1] ? this.sumTo(db, sh(b)) : undefined];
      }
      case 'Where': {
        // y = cond ? a : b  →  da = cond ? dy : 0, db = cond ? 0 : dy
        const [cond, a, b] = ins;
        const zeroScalar = this.scalar(0);
        const da = needs[1] ? this.sumTo(op('Where', [cond, needDy(), zeroScalar]), sh(a)) : undefined;
        const db = needs[2] ? this.sumTo(op('Where', [cond, zeroScalar, needDy()]), sh(b)) : undefined;
        return [undefined, da, db];
      }
      case 'Reciprocal':
        // y = 1/x  →  dx = −dy / x² = −dy · y²
        return [op('Neg', [op('Mul', [needDy(), op('Mul', [y, y])])])];
      case 'Sqrt':
        // y = √x  →  dx = dy / (2y)
        return [op('Div', [needDy(), op('Mul', [y, this.scalar(2)])])];
      case 'Exp':
        // y = eˣ  →  dx = dy · y
        return [op('Mul', [needDy(), y])];
      case 'Log':
        // y = log x  →  dx = dy / x
        return [op('Div', [needDy(), ins[0]])];
      case 'Abs':
        // y = |x|  →  dx = dy · sign(x)  (0 at x = 0)
        return [op('Mul', [needDy(), op('Sign', [ins[0]])])];
      case 'Sigmoid': {
        // y = σ(x)  →  dx = dy · y · (1 − y)
        const slope = op('Mul', [y, op('Sub', [this.scalar(1), y])]);
        return [op('Mul', [needDy(), slope])];
      }
      case 'Tanh': {
        // y = tanh x  →  dx = dy · (1 − y²)
        const slope = op('Sub', [this.scalar(1), op('Mul', [y, y])]);
        return [op('Mul', [needDy(), slope])];
      }
      case 'Relu': {
        // y = max(x, 0)  →  dx = dy · [x > 0]
        const positive = op('Cast', [op('Greater', [ins[0], this.scalar(0)])], { to: this.ft });
        return [op('Mul', [needDy(), positive])];
      }
      case 'Softmax':
      case 'LogSoftmax': {
        const x = sh(ins[0]);
        if (int('axis', -1) !== -1 && int('axis', -1) !== x.length - 1)
          throw new Error(`autodiff: ${n.opType} only over the last axis`);
        const last = this.g.ints([-1]);
        if (n.opType === 'Softmax') {
          // y = softmax(x)  →  dx = y ⊙ (dy − Σ_j dy_j · y_j)
          const dyDotY = op('ReduceSum', [op('Mul', [needDy(), y]), last], { keepdims: 1 });
          return [op('Mul', [y, op('Sub', [needDy(), dyDotY])])];
        }
        // y = log softmax(x)  →  dx = dy − softmax(x) · Σ_j dy_j, with softmax(x) = exp(y)
        const dySum = op('ReduceSum', [needDy(), last], { keepdims: 1 });
        return [op('Sub', [needDy(), op('Mul', [op('Exp', [y]), dySum])])];
      }
      case 'ReduceSum':
      case 'ReduceMean':
      case 'ReduceSumSquare':
      case 'ReduceLogSumExp': {
        if (int('noop_with_empty_axes', 0) !== 0)
          throw new Error(`autodiff: ${n.opType} with noop_with_empty_axes`);
        const x = sh(ins[0]);
        const axes = ins[1]
          ? this.s.intValue(ins[1]).map((a) => (a < 0 ? a + x.length : a))
          : x.map((_, i) => i);
        // dy broadcast back over the reduced axes: dyExpanded has x's shape
        const keptShape = x.map((size, i) => (axes.includes(i) ? 1 : size));
        const dyExpanded = op('Expand', [op('Reshape', [needDy(), this.g.ints(keptShape)]), this.g.ints(x)]);
        // y = Σ x  →  dx = dy
        if (n.opType === 'ReduceSum') return [dyExpanded];
        // y = Σ x / N  →  dx = dy / N
        if (n.opType === 'ReduceMean') {
          const count = axes.reduce((t, a) => t * x[a], 1);
          return [op('Div', [dyExpanded, this.scalar(count)])];
        }
        // y = Σ x²  →  dx = dy · 2x
        if (n.opType === 'ReduceSumSquare')
          return [op('Mul', [dyExpanded, op('Mul', [ins[0], this.scalar(2)])])];
        // y = log Σ eˣ  →  dx = dy · eˣ⁻ʸ (the softmax over the reduced axes)
        const softmax = op('Exp', [op('Sub', [ins[0], op('Reshape', [y, this.g.ints(keptShape)])])]);
        return [op('Mul', [dyExpanded, softmax])];
      }
      case 'Reshape':
      case 'Squeeze':
      case 'Unsqueeze':
        // the same values in another shape  →  dx = dy in x's shape
        return [op('Reshape', [needDy(), this.g.ints(sh(ins[0]))])];
      case 'Expand':
        // y = x broadcast  →  dx = dy summed over the broadcast axes
        return [this.sumTo(needDy(), sh(ins[0]))];
      case 'Transpose': {
        // y = xᵀ (permutation p)  →  dx = dyᵀ with the inverse permutation
        const perm = attr('perm')!.ints!.map(Number);
        const inverse = perm.map((_, i) => perm.indexOf(i));
        return [op('Transpose', [needDy()], { perm: inverse })];
      }
      case 'Split': {
        // y₁…yₖ = split(x)  →  dx = concat(dy₁…dyₖ), zeros for outputs without a gradient
        const x = sh(ins[0]);
        const axis = (int('axis', 0) + x.length) % x.length;
        const parts = outs.map((o, i) => dOuts[i] ?? zero(o));
        return [op('Concat', parts, { axis })];
      }
      case 'Concat': {
        // y = concat(x₁…xₖ)  →  dxᵢ = the slice of dy where xᵢ was placed
        const axis = (int('axis', 0) + sh(ins[0]).length) % sh(ins[0]).length;
        let start = 0;
        return ins.map((v, i) => {
          const size = sh(v)[axis];
          const slice = needs[i]
            ? op('Slice', [needDy(), this.g.ints([start]), this.g.ints([start + size]), this.g.ints([axis])])
            : undefined;
          start += size;
          return slice;
        });
      }
      case 'Gather': {
        // y = table[indices] (rows)  →  dtable = scatter-add of dy into the gathered rows
        if (int('axis', 0) !== 0) throw new Error('autodiff: Gather only along axis 0');
        const rowIndices = op('Unsqueeze', [ins[1], this.g.ints([-1])]);
        return [op('ScatterND', [zero(ins[0]), rowIndices, needDy()], { reduction: 'add' }), undefined];
      }
      case 'GatherElements': {
        // y = x[…, indices, …] elementwise along axis  →  dx = scatter-add of dy at the indices
        const axis = int('axis', 0);
        return [
          op('ScatterElements', [zero(ins[0]), ins[1], needDy()], { axis, reduction: 'add' }),
          undefined,
        ];
      }
      case 'Gemm': {
        // Y = A · op(B) + C with op(B) = B or Bᵀ (alpha = beta = 1, A not transposed)
        //   dA = dY · op(B)ᵀ;  dB = Aᵀ · dY (op = id) or dYᵀ · A (op = ᵀ);  dC = dY summed to C's shape
        for (const [name, expected] of [
          ['transA', 0],
          ['alpha', 1],
          ['beta', 1],
        ] as const) {
          const a = attr(name);
          const value = a === undefined ? expected : name === 'transA' ? Number(a.i) : a.f;
          if (value !== expected) throw new Error(`autodiff: Gemm with ${name} = ${value} is not supported`);
        }
        const transB = int('transB', 0) === 1;
        const [a, b, c] = ins;
        const dY = needDy();
        const dA = needs[0] ? op('Gemm', [dY, b], { transB: transB ? 0 : 1 }) : undefined;
        const dB = needs[1]
          ? transB
            ? op('Gemm', [dY, a], { transA: 1 })
            : op('Gemm', [a, dY], { transA: 1 })
          : undefined;
        const dC = c && needs[2] ? this.sumTo(dY, sh(c)) : undefined;
        return [dA, dB, dC];
      }
      case 'MatMul': {
        // Y = A · B (batched over leading axes)  →  dA = dY · Bᵀ, dB = Aᵀ · dY, summed over broadcast batches
        const [a, b] = ins;
        const swapLastTwo = (rank: number) => [
          ...Array.from({ length: rank - 2 }, (_, i) => i),
          rank - 1,
          rank - 2,
        ];
        const bT = needs[0] ? op('Transpose', [b], { perm: swapLastTwo(sh(b).length) }) : undefined;
        const aT = needs[1] ? op('Transpose', [a], { perm: swapLastTwo(sh(a).length) }) : undefined;
        const dA = bT ? this.sumTo(op('MatMul', [needDy(), bT]), sh(a)) : undefined;
        const dB = aT ? this.sumTo(op('MatMul', [aT, needDy()]), sh(b)) : undefined;
        return [dA, dB];
      }
      case 'LayerNormalization': {
        // y = γ ⊙ x̂ + β with x̂ = (x − μ) · rstd, rstd = 1/√(σ² + ε), over the last axis (N values):
        //   dx̂ = dy ⊙ γ
        //   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂))
        //   dγ = Σ dy ⊙ x̂,  dβ = Σ dy  (over every axis but the last)
        const x = sh(ins[0]);
        const axis = int('axis', -1);
        if (axis !== -1 && axis !== x.length - 1)
          throw new Error('autodiff: LayerNormalization only over the last axis');
        if (int('stash_type', 1) !== 1)
          throw new Error('autodiff: LayerNormalization with stash_type other than 1');
        const eps = attr('epsilon')?.f ?? 1e-5;
        const last = this.g.ints([-1]);
        const mean = (v: string) => op('ReduceMean', [v, last], { keepdims: 1 });
        const centred = op('Sub', [ins[0], mean(ins[0])]);
        const variance = mean(op('Mul', [centred, centred]));
        const rstd = op('Reciprocal', [op('Sqrt', [op('Add', [variance, this.scalar(eps)])])]);
        const xhat = op('Mul', [centred, rstd]);
        const dy = needDy();
        const dxhat = op('Mul', [dy, ins[1]]);
        const dx = needs[0]
          ? op('Mul', [
              rstd,
              op('Sub', [op('Sub', [dxhat, mean(dxhat)]), op('Mul', [xhat, mean(op('Mul', [dxhat, xhat]))])]),
            ])
          : undefined;
        const dGamma = needs[1] ? this.sumTo(op('Mul', [dy, xhat]), sh(ins[1])) : undefined;
        const dBeta = ins[2] && needs[2] ? this.sumTo(dy, sh(ins[2])) : undefined;
        return [dx, dGamma, dBeta];
      }
      default:
        throw new Error(`autodiff: no gradient rule for ${n.opType}`);
    }
  }
}
