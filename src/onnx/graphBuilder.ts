/**
 * A small builder for ONNX graphs made of standard operators, encoded with the protobufjs
 * code generated from ./proto/onnx.proto.
 * The model builder (Llama, GPT-2) and the fused metrics graph are written with it.
 */
import { onnx } from './proto/onnx';

export type ElemType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'bool';

const DATA_TYPE: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

export function onnxDataType(t: ElemType): number {
  return DATA_TYPE[t];
}

/** A dimension: a fixed size or a symbolic name such as 'T'. */
export type Dim = number | string;
export type AttrValue =
  number | string | number[] | { floats: number[] } | { float: number } | onnx.ITensorProto;

export interface ExternalWeights {
  /** File name of the external data file, relative to the model file. */
  fileName: string;
  /** Tensors at least this many bytes go to the external file. */
  minBytes: number;
}

export class GraphBuilder {
  private nodes: onnx.INodeProto[] = [];
  private inputs: onnx.IValueInfoProto[] = [];
  private outputs: onnx.IValueInfoProto[] = [];
  private initializers: onnx.ITensorProto[] = [];
  private counter = 0;
  private exact = new Map<string, Float64Array>();

  constructor(
    readonly name: string,
    readonly opset = 18,
  ) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Adds a weight tensor; data is copied by reference (no copy until encode). */
  weight(name: string, type: ElemType, dims: number[], data: ArrayBufferView): string {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name, dataType: DATA_TYPE[type], dims, rawData: bytes });
    return name;
  }

  /** A small constant tensor as an initializer. */
  constant(
    values: number[] | Float32Array | Float64Array | BigInt64Array,
    type: ElemType,
    dims: number[],
    prefix = 'const',
  ): string {
    const name = this.fresh(prefix);
    let data: ArrayBufferView;
    if (type === 'int64')
      data =
        values instanceof BigInt64Array
          ? values
          : BigInt64Array.from(Array.from(values as number[], (v) => BigInt(v)));
    else if (type === 'float64') data = Float64Array.from(values as number[]);
    else if (type === 'int32') data = Int32Array.from(values as number[]);
    else if (type === 'float32') {
      data = Float32Array.from(values as number[]);
      // kept so that promoteToFloat64 restores constants such as log(β) to full precision
      if (!(values instanceof Float32Array)) this.exact.set(name, Float64Array.from(values as number[]));
    } else throw new Error(`constant of type ${type} is not supported`);
    return this.weight(name, type, dims, data);
  }

  scalar(value: number, type: ElemType = 'float32'): string {
    return this.constant([value], type, [], 'scalar');
  }

  ints(values: number[]): string {
    return this.constant(values, 'int64', [values.length], 'ints');
  }

  /** Adds a node; returns its output names (one unless nOutputs > 1). */
  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    nOutputs = 1,
    domain = '',
  ): string[] {
    const outs = Array.from({ length: nOutputs }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({
      opType,
      domain,
      input: inputs,
      output: outs,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Adds a node with one output and returns that output's name. */
  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(opType, inputs, attrs, 1)[0];
  }

  /** Renames the value `from` to the graph output `to` with an Identity node. */
  rename(from: string, to: string): void {
    this.nodes.push({ opType: 'Identity', input: [from], output: [to], name: this.fresh('n_Identity') });
  }

  /** The nodes so far, in the order added (a topological order). */
  get nodeList(): readonly onnx.INodeProto[] {
    return this.nodes;
  }

  /** Declared inputs and initializers: their element type, dims and (initializers) raw bytes. */
  describe(name: string): { type: number; dims: Dim[]; raw?: Uint8Array } | undefined {
    const init = this.initializers.find((t) => t.name === name);
    if (init)
      return { type: init.dataType!, dims: (init.dims ?? []).map(Number), raw: init.rawData as Uint8Array };
    const input = this.inputs.find((t) => t.name === name);
    if (!input) return undefined;
    const tt = input.type!.tensorType!;
    return {
      type: tt.elemType!,
      dims: (tt.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue))),
    };
  }

  /** Drops the declared outputs (a training graph replaces the model's logits output with its own). */
  clearOutputs(): void {
    this.outputs = [];
  }

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name!);
  }

  /**
   * Rewrites every float32 tensor of the graph (inputs, outputs, weights, constants, casts)
   * as float64, for gradient checks in double precision: ONNX Runtime's CPU provider has
   * float64 kernels for every operator the model builder and the training graphs emit.
   */
  promoteToFloat64(): void {
    const F32 = onnx.TensorProto.DataType.FLOAT;
    const F64 = onnx.TensorProto.DataType.DOUBLE;
    for (const v of [...this.inputs, ...this.outputs])
      if (v.type?.tensorType?.elemType === F32) v.type.tensorType.elemType = F64;
    for (const t of this.initializers) {
      if (t.dataType !== F32) continue;
      const raw = t.rawData as Uint8Array;
      const f32 = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      t.dataType = F64;
      t.rawData = new Uint8Array((this.exact.get(t.name!) ?? Float64Array.from(f32)).buffer);
    }
    for (const n of this.nodes) {
      for (const a of n.attribute ?? []) {
        if (n.opType === 'Cast' && a.name === 'to' && Number(a.i) === F32) a.i = F64;
        if (a.t && a.t.dataType === F32) {
          a.t = { ...a.t, dataType: F64, doubleData: (a.t.floatData ?? []).map(Number), floatData: [] };
        }
      }
    }
  }

  /**
   * Encodes the model. With `external`, large weights go into a separate buffer, described
   * by offsets, which the caller writes as the external data file beside the model.
   */
  encode(external?: ExternalWeights): { model: Uint8Array; externalData: Uint8Array[] } {
    const externalData: Uint8Array[] = [];
    let offset = 0;
    const initializers = this.initializers.map((t) => {
      const raw = t.rawData as Uint8Array;
      if (!external || raw.byteLength < external.minBytes) return t;
      // ONNX Runtime maps external data with page-aligned offsets when it can; align to 4 KiB.
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) externalData.push(new Uint8Array(pad));
      offset += pad;
      externalData.push(raw);
      const entry: onnx.ITensorProto = {
        name: t.name,
        dataType: t.dataType,
        dims: t.dims,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: external.fileName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(raw.byteLength) },
        ],
      };
      offset += raw.byteLength;
      return entry;
    });
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'distill-lens',
      opsetImport: [{ domain: '', version: this.opset }],
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: initializers,
      },
    };
    return { model: onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish(), externalData };
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number')
    return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v && Array.isArray((v as { floats: number[] }).floats))
    return { name, type: T.FLOATS, floats: (v as { floats: number[] }).floats };
  if ('float' in v) return { name, type: T.FLOAT, f: (v as { float: number }).float };
  return { name, type: T.TENSOR, t: v as onnx.ITensorProto };
}
