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
    switch (n.opType) {
      case 'Identity':
        return [needDy()];
      case 'Cast': {
        const to = int('to', 1);
        if (to !== this.ft) throw new Error('autodiff: Cast to a non-float type on a trainable path');
        return [needDy()];
      }
      case 'Neg':
        return [op('Neg', [needDy()])];
      case 'Add':
        return [
          needs[0] ? this.sumTo(needDy(), sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(needDy(), sh(ins[1])) : undefined,
        ];
      case 'Sub':
        return [
          needs[0] ? this.sumTo(needDy(), sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(op('Neg', [needDy()]), sh(ins[1])) : undefined,
        ];
      case 'Mul':
        return [
          needs[0] ? this.sumTo(op('Mul', [needDy(), ins[1]]), sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(op('Mul', [needDy(), ins[0]]), sh(ins[1])) : undefined,
        ];
      case 'Div':
        return [
          needs[0] ? this.sumTo(op('Div', [needDy(), ins[1]]), sh(ins[0])) : undefined,
          needs[1]
            ? this.sumTo(op('Neg', [op('Div', [op('Mul', [needDy(), y]), ins[1]])]), sh(ins[1]))
            : undefined,
        ];
      case 'Max':
      case 'Min': {
        // the gradient goes to the chosen input (to the first on ties)
        const first = op(
          'Cast',
          [op(n.opType === 'Max' ? 'GreaterOrEqual' : 'LessOrEqual', [ins[0], ins[1]])],
          { to: this.ft },
        );
        const g0 = op('Mul', [needDy(), first]);
        return [
          needs[0] ? this.sumTo(g0, sh(ins[0])) : undefined,
          needs[1] ? this.sumTo(op('Sub', [needDy(), g0]), sh(ins[1])) : undefined,
        ];
      }
      case 'Where': {
        const z = this.scalar(0);
        return [
          undefined,
          needs[1] ? this.sumTo(op('Where', [ins[0], needDy(), z]), sh(ins[1])) : undefined,
          needs[2] ? this.sumTo(op('Where', [ins[0], z, needDy()]), sh(ins[2])) : undefined,
        ];
      }
      case 'Reciprocal':
        return [op('Neg', [op('Mul', [needDy(), op('Mul', [y, y])])])];
      case 'Sqrt':
        return [op('Div', [needDy(), op('Mul', [y, this.scalar(2)])])];
      case 'Exp':
        return [op('Mul', [needDy(), y])];
      case 'Log':
        return [op('Div', [needDy(), ins[0]])];
      case 'Abs':
        return [op('Mul', [needDy(), op('Sign', [ins[0]])])];
      case 'Sigmoid':
        return [op('Mul', [needDy(), op('Mul', [y, op('Sub', [this.scalar(1), y])])])];
      case 'Tanh':
        return [op('Mul', [needDy(), op('Sub', [this.scalar(1), op('Mul', [y, y])])])];
      case 'Relu':
        return [
          op('Mul', [needDy(), op('Cast', [op('Greater', [ins[0], this.scalar(0)])], { to: this.ft })]),
        ];
      case 'Softmax':
      case 'LogSoftmax': {
        const x = sh(ins[0]);
        if (int('axis', -1) !== -1 && int('axis', -1) !== x.length - 1)
          throw new Error(`autodiff: ${n.opType} only over the last axis`);
        const last = this.g.ints([-1]);
        if (n.opType === 'Softmax') {
          const dot = op('ReduceSum', [op('Mul', [needDy(), y]), last], { keepdims: 1 });
          return [op('Mul', [y, op('Sub', [needDy(), dot])])];
        }
        const total = op('ReduceSum', [needDy(), last], { keepdims: 1 });
        return [op('Sub', [needDy(), op('Mul', [op('Exp', [y]), total])])];
      }
      case 'ReduceSum':
      case 'ReduceMean':
      case 'ReduceSumSquare':
      case 'ReduceLogSumExp': {
        const x = sh(ins[0]);
        const axes = ins[1]
          ? this.s.intValue(ins[1]).map((a) => (a < 0 ? a + x.length : a))
          : x.map((_, i) => i);
        const kept = x.map((dd, i) => (axes.includes(i) ? 1 : dd));
        const back = op('Expand', [op('Reshape', [needDy(), this.g.ints(kept)]), this.g.ints(x)]);
        if (n.opType === 'ReduceSum') return [back];
        if (n.opType === 'ReduceMean')
          return [op('Div', [back, this.scalar(axes.reduce((t, a) => t * x[a], 1))])];
        if (n.opType === 'ReduceSumSquare') return [op('Mul', [back, op('Mul', [ins[0], this.scalar(2)])])];
        return [op('Mul', [back, op('Exp', [op('Sub', [ins[0], op('Reshape', [y, this.g.ints(kept)])])])])];
      }
      case 'Reshape':
        return [op('Reshape', [needDy(), this.g.ints(sh(ins[0]))])];
      case 'Squeeze':
      case 'Unsqueeze':
        return [op('Reshape', [needDy(), this.g.ints(sh(ins[0]))])];
      case 'Expand':
        return [this.sumTo(needDy(), sh(ins[0]))];
      case 'Transpose': {
        const perm = attr('perm')!.ints!.map(Number);
        const inverse = perm.map((_, i) => perm.indexOf(i));
        return [op('Transpose', [needDy()], { perm: inverse })];
      }
      case 'Split': {
        const x = sh(ins[0]);
        const axis = (int('axis', 0) + x.length) % x.length;
        const parts = outs.map((o, i) => dOuts[i] ?? zero(o));
        return [op('Concat', parts, { axis })];
      }
      case 'Concat': {
        const axis = (int('axis', 0) + sh(ins[0]).length) % sh(ins[0]).length;
        let start = 0;
        return ins.map((v, i) => {
          const size = sh(v)[axis];
          const part = needs[i]
            ? op('Slice', [needDy(), this.g.ints([start]), this.g.ints([start + size]), this.g.ints([axis])])
            : undefined;
          start += size;
          return part;
        });
      }
      case 'Gather': {
        if (int('axis', 0) !== 0) throw new Error('autodiff: Gather only along axis 0');
        const indices = op('Unsqueeze', [ins[1], this.g.ints([-1])]);
        return [op('ScatterND', [zero(ins[0]), indices, needDy()], { reduction: 'add' }), undefined];
      }
      case 'GatherElements': {
        const axis = int('axis', 0);
        return [
          op('ScatterElements', [zero(ins[0]), ins[1], needDy()], { axis, reduction: 'add' }),
          undefined,
        ];
      }
      case 'Gemm': {
        if (int('transA', 0) !== 0) throw new Error('autodiff: Gemm with transA is not supported');
        const transB = int('transB', 0) === 1;
        const [a, b, c] = ins;
        const gy = needDy();
        const da = needs[0] ? op('Gemm', [gy, b], { transB: transB ? 0 : 1 }) : undefined;
        // Y = A·Bᵀ: dB = dYᵀ·A; Y = A·B: dB = Aᵀ·dY
        const db = needs[1]
          ? transB
            ? op('Gemm', [gy, a], { transA: 1 })
            : op('Gemm', [a, gy], { transA: 1 })
          : undefined;
        const dc = c && needs[2] ? this.sumTo(gy, sh(c)) : undefined;
        return [da, db, dc];
      }
      case 'MatMul': {
        const [a, b] = ins;
        const ra = sh(a).length;
        const rb = sh(b).length;
        const swap = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
        const da = needs[0]
          ? this.sumTo(op('MatMul', [needDy(), op('Transpose', [b], { perm: swap(rb) })]), sh(a))
          : undefined;
        const db = needs[1]
          ? this.sumTo(op('MatMul', [op('Transpose', [a], { perm: swap(ra) }), needDy()]), sh(b))
          : undefined;
        return [da, db];
      }
      case 'LayerNormalization': {
        const x = sh(ins[0]);
        const axis = int('axis', -1);
        if (axis !== -1 && axis !== x.length - 1)
          throw new Error('autodiff: LayerNormalization only over the last axis');
        const eps = attr('epsilon')?.f ?? 1e-5;
        const last = this.g.ints([-1]);
        const mean = (v: string) => op('ReduceMean', [v, last], { keepdims: 1 });
        const centred = op('Sub', [ins[0], mean(ins[0])]);
        const rstd = op('Reciprocal', [
          op('Sqrt', [op('Add', [mean(op('Mul', [centred, centred])), this.scalar(eps)])]),
        ]);
        const xhat = op('Mul', [centred, rstd]);
        const gy = needDy();
        const dxhat = op('Mul', [gy, ins[1]]);
        const dx = needs[0]
          ? op('Mul', [
              rstd,
              op('Sub', [op('Sub', [dxhat, mean(dxhat)]), op('Mul', [xhat, mean(op('Mul', [dxhat, xhat]))])]),
            ])
          : undefined;
        const dGamma = needs[1] ? this.sumTo(op('Mul', [gy, xhat]), sh(ins[1])) : undefined;
        const dBeta = ins[2] && needs[2] ? this.sumTo(gy, sh(ins[2])) : undefined;
        return [dx, dGamma, dBeta];
      }
      default:
        throw new Error(`autodiff: no gradient rule for ${n.opType}`);
    }
  }
}
