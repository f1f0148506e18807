/**
 * Static shapes of every value in a graph whose inputs have fixed sizes (a training step has
 * a fixed batch and sequence length), and the values of the small int64 tensors that shape
 * computations produce (Shape → Slice → Concat → Reshape). Reverse-mode differentiation needs
 * both: a broadcast input's gradient is summed back to its own shape.
 */
import type { onnx } from '../onnx/proto/onnx';
import type { GraphBuilder } from '../onnx/graphBuilder';

export type Shape = number[];

export class GraphShapes {
  readonly shapes = new Map<string, Shape>();
  /** int64 values known at build time */
  readonly ints = new Map<string, number[]>();

  constructor(
    private readonly g: GraphBuilder,
    inputShapes: Record<string, Shape>,
  ) {
    for (const [name, shape] of Object.entries(inputShapes)) this.shapes.set(name, shape);
    this.update();
  }

  /** Infers shapes of nodes added since the last call. */
  update(): void {
    const nodes = this.g.nodeList;
    for (let i = this.done; i < nodes.length; i++) this.infer(nodes[i]);
    this.done = nodes.length;
  }
  private done = 0;

  shape(name: string): Shape {
    let s = this.shapes.get(name);
    if (!s) {
      const d = this.g.describe(name);
      if (!d) throw new Error(`graph shapes: unknown value ${name}`);
      if (d.dims.some((x) => typeof x !== 'number'))
        throw new Error(`graph shapes: ${name} has symbolic dims; give its shape`);
      s = d.dims as number[];
      this.shapes.set(name, s);
      if (d.type === 7 && d.raw)
        this.ints.set(name, Array.from(new BigInt64Array(d.raw.slice().buffer), Number));
    }
    return s;
  }

  intValue(name: string): number[] {
    this.shape(name);
    const v = this.ints.get(name);
    if (!v) throw new Error(`graph shapes: the value of ${name} is not known at build time`);
    return v;
  }

  private infer(n: onnx.INodeProto): void {
    const ins = n.input ?? [];
    const outs = n.output ?? [];
    const op = n.opType!;
    const attr = (key: string) => n.attribute?.find((a) => a.name === key);
    const int = (key: string, dflt: number) => {
      const a = attr(key);
      return a ? Number(a.i) : dflt;
    };
    const set = (i: number, s: Shape, value?: number[]) => {
      this.shapes.set(outs[i], s);
      if (value) this.ints.set(outs[i], value);
    };
    const sh = (i: number) => this.shape(ins[i]);
    const known = (i: number) => (ins[i] ? (this.shape(ins[i]), this.ints.get(ins[i])) : undefined);
    const rank = (i: number) => sh(i).length;
    const axisOf = (a: number, r: number) => (a < 0 ? a + r : a);
    switch (op) {
      case 'Identity':
      case 'Neg':
      case 'Reciprocal':
      case 'Sqrt':
      case 'Sigmoid':
      case 'Tanh':
      case 'Cos':
      case 'Sin':
      case 'Exp':
      case 'Log':
      case 'Abs':
      case 'Sign':
      case 'Floor':
      case 'Relu':
      case 'Softmax':
      case 'LogSoftmax':
      case 'Trilu':
      case 'CumSum':
      case 'LayerNormalization':
      case 'Cast':
        set(0, sh(0), op === 'Identity' || op === 'Cast' ? known(0) : undefined);
        return;
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Pow':
      case 'Max':
      case 'Min':
      case 'Equal':
      case 'Greater':
      case 'Less':
      case 'LessOrEqual':
      case 'GreaterOrEqual':
      case 'Where':
      case 'And':
      case 'Or': {
        const shapes = ins.map((_, i) => sh(i));
        const out = broadcastShapes(shapes);
        const vals = ins.map((_, i) => known(i));
        let value: number[] | undefined;
        if (
          vals.every((v) => v) &&
          shapes.every((s) => s.length <= 1) &&
          ['Add', 'Sub', 'Mul', 'Div'].includes(op)
        ) {
          const size = out.reduce((a, b) => a * b, 1);
          const at = (v: number[], i: number) => (v.length === 1 ? v[0] : v[i]);
          value = Array.from({ length: size }, (_, i) => {
            const a = at(vals[0]!, i),
              b = at(vals[1]!, i);
            return op === 'Add' ? a + b : op === 'Sub' ? a - b : op === 'Mul' ? a * b : Math.trunc(a / b);
          });
        }
        set(0, out, value);
        return;
      }
      case 'Shape': {
        const s = sh(0);
        set(0, [s.length], [...s]);
        return;
      }
      case 'ReduceProd':
      case 'ReduceSum':
      case 'ReduceMean':
      case 'ReduceMax':
      case 'ReduceSumSquare':
      case 'ReduceLogSumExp': {
        const s = sh(0);
        const axes = ins[1] ? this.intValue(ins[1]).map((a) => axisOf(a, s.length)) : s.map((_, i) => i);
        const keep = int('keepdims', 1) === 1;
        const out = keep
          ? s.map((d, i) => (axes.includes(i) ? 1 : d))
          : s.filter((_, i) => !axes.includes(i));
        const v = known(0);
        set(0, out, op === 'ReduceProd' && v && s.length === 1 ? [v.reduce((a, b) => a * b, 1)] : undefined);
        return;
      }
      case 'Slice': {
        const s = sh(0);
        const starts = this.intValue(ins[1]);
        const ends = this.intValue(ins[2]);
        const axes = ins[3] ? this.intValue(ins[3]) : starts.map((_, i) => i);
        const steps = ins[4] ? this.intValue(ins[4]) : starts.map(() => 1);
        if (steps.some((x) => x !== 1)) throw new Error('graph shapes: Slice with steps is not supported');
        const out = [...s];
        const ranges: [number, number][] = s.map((d) => [0, d]);
        axes.forEach((a0, i) => {
          const a = axisOf(a0, s.length);
          const clamp = (x: number) => Math.max(0, Math.min(s[a], x < 0 ? x + s[a] : x));
          ranges[a] = [clamp(starts[i]), clamp(ends[i])];
          out[a] = Math.max(0, ranges[a][1] - ranges[a][0]);
        });
        const v = known(0);
        set(0, out, v && s.length === 1 ? v.slice(ranges[0][0], ranges[0][1]) : undefined);
        return;
      }
      case 'Concat': {
        const axis = axisOf(int('axis', 0), rank(0));
        const out = [...sh(0)];
        out[axis] = ins.reduce((t, _, i) => t + sh(i)[axis], 0);
        const vals = ins.map((_, i) => known(i));
        set(0, out, out.length === 1 && vals.every((v) => v) ? vals.flatMap((v) => v!) : undefined);
        return;
      }
      case 'Squeeze':
      case 'Unsqueeze': {
        const s = sh(0);
        const axes = this.intValue(ins[1]);
        let out: Shape;
        if (op === 'Squeeze') {
          const ax = axes.map((a) => axisOf(a, s.length));
          out = s.filter((_, i) => !ax.includes(i));
        } else {
          const r = s.length + axes.length;
          const ax = axes.map((a) => axisOf(a, r));
          out = [];
          let j = 0;
          for (let i = 0; i < r; i++) out.push(ax.includes(i) ? 1 : s[j++]);
        }
        set(0, out, known(0));
        return;
      }
      case 'Range': {
        const [start, limit, delta] = [0, 1, 2].map((i) => this.intValue(ins[i])[0]);
        const n = Math.max(0, Math.ceil((limit - start) / delta));
        set(
          0,
          [n],
          Array.from({ length: n }, (_, i) => start + i * delta),
        );
        return;
      }
      case 'Reshape': {
        const s = sh(0);
        const target = [...this.intValue(ins[1])];
        const size = s.reduce((a, b) => a * b, 1);
        target.forEach((d, i) => {
          if (d === 0) target[i] = s[i];
        });
        const known2 = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        set(
          0,
          target.map((d) => (d === -1 ? size / known2 : d)),
          known(0),
        );
        return;
      }
      case 'ConstantOfShape': {
        set(0, this.intValue(ins[0]));
        return;
      }
      case 'Expand': {
        set(0, broadcastShapes([sh(0), this.intValue(ins[1])]));
        return;
      }
      case 'Gather': {
        const axis = axisOf(int('axis', 0), rank(0));
        const s = sh(0);
        const out = [...s.slice(0, axis), ...sh(1), ...s.slice(axis + 1)];
        const v = known(0);
        const idx = known(1);
        set(0, out, v && idx && s.length === 1 ? idx.map((i) => v[i < 0 ? i + v.length : i]) : undefined);
        return;
      }
      case 'GatherElements': {
        set(0, sh(1));
        return;
      }
      case 'ScatterElements':
      case 'ScatterND': {
        set(0, sh(0));
        return;
      }
      case 'Gemm': {
        const a = sh(0);
        const b = sh(1);
        const m = int('transA', 0) ? a[1] : a[0];
        const nn = int('transB', 0) ? b[0] : b[1];
        set(0, [m, nn]);
        return;
      }
      case 'MatMul': {
        const a = sh(0);
        const b = sh(1);
        const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
        set(0, [...batch, a[a.length - 2], b[b.length - 1]]);
        return;
      }
      case 'Transpose': {
        const s = sh(0);
        const permA = attr('perm');
        const perm = permA ? permA.ints!.map(Number) : s.map((_, i) => s.length - 1 - i);
        set(
          0,
          perm.map((p) => s[p]),
        );
        return;
      }
      case 'Split': {
        const s = sh(0);
        const axis = axisOf(int('axis', 0), s.length);
        const sizes = ins[1] ? this.intValue(ins[1]) : outs.map(() => s[axis] / outs.length);
        sizes.forEach((size, i) =>
          set(
            i,
            s.map((d, j) => (j === axis ? size : d)),
          ),
        );
        return;
      }
      case 'TopK': {
        const s = sh(0);
        const axis = axisOf(int('axis', -1), s.length);
        const k = this.intValue(ins[1])[0];
        const out = s.map((d, j) => (j === axis ? k : d));
        set(0, out);
        set(1, out);
        return;
      }
      default:
        throw new Error(`graph shapes: operator ${op} is not supported`);
    }
  }
}

/** Numpy-style broadcasting of several shapes. */
export function broadcastShapes(shapes: Shape[]): Shape {
  const r = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < r; i++) {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - r + i] ?? 1;
      if (x !== 1) {
        if (d !== 1 && d !== x)
          throw new Error(`graph shapes: cannot broadcast [${shapes.map((s) => s.join(',')).join('] [')}]`);
        d = x;
      }
    }
    out.push(d);
  }
  return out;
}
