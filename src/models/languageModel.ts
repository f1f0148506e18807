/**
 * One causal language model in an ONNX Runtime session: feeds whatever inputs its graph
 * declares (input_ids, attention_mask, position_ids, empty past_key_values.*, …). `forward`
 * returns only the logits, so present.* tensors are never copied out; `step` decodes
 * incrementally, carrying the present.* tensors over as the next past_key_values.*.
 */
import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '../core/errors';
import type { Device, UsedDevice } from '../shared/devices';
import { openSession } from '../onnx/sessions';
import type { ResolvedModel } from './modelSource';
import { ensureBuiltModel, type BuildOptions } from './builtModelCache';
import { halfToFloat32 } from './safetensors';
import { LAYER_OUTPUTS } from './builder/layerView';

export interface Logits {
  /** float32 or float16 (as raw uint16) values, [length, vocab] row-major */
  data: Float32Array | Uint16Array;
  type: 'float32' | 'float16';
  length: number;
  vocab: number;
}

/** The logits as float32 [length, vocab] (a float16 export's widened; float32 returned as is). */
export function float32Logits(logits: Pick<Logits, 'data' | 'type'>): Float32Array {
  return logits.type === 'float16' ? halfToFloat32(logits.data as Uint16Array) : (logits.data as Float32Array);
}

/**
 * The keys and values of the positions decoded so far: buffers of a fixed capacity that the
 * graphs built here read in place (cache.* inputs, new.* outputs), or the present.* outputs
 * of an export in the transformers.js layout, fed back as past_key_values.*.
 */
export type DecoderCache =
  | { kind: 'buffers'; buffers: Record<string, Float32Array>; kvHeads: number; headSize: number; capacity: number; length: number; batch: number }
  | { kind: 'present'; tensors: Record<string, ort.Tensor>; length: number; batch: number };

/** What `forwardLayers` returns; S = states (layers + 1), N = positions, D = width. */
export interface LayerForward {
  logits: Logits;
  states: number;
  width: number;
  /** [S, N]: the logit lens's KL per position (against the reference, or to the model's own final) */
  lensKl: Float64Array;
  /** [S, N]: the lens's most likely token */
  lensArgmax: BigInt64Array;
  /** [S, N, N]: the centred Gram matrix of each state over the positions */
  gram: Float64Array;
  /** [S, N, D] */
  hidden: Float32Array;
}

export interface LoadInfo {
  device: UsedDevice;
  messages: string[];
  builtNow: boolean;
  loadMs: number;
}

export class LanguageModel {
  private constructor(
    readonly model: ResolvedModel,
    private readonly session: ort.InferenceSession,
    readonly info: LoadInfo,
    /** inputs the caller fills on every run (a student being trained: its current weights) */
    private readonly extraFeeds?: () => Record<string, ort.Tensor>,
  ) {}

  /**
   * A model whose graph the caller built (with a key/value cache: buffers), some of its inputs
   * (weights) filled by `extraFeeds` at every run: the student of a run, sampled with the
   * weights it has now.
   */
  static async fromGraph(
    model: ResolvedModel,
    graph: Uint8Array,
    device: Device,
    extraFeeds: () => Record<string, ort.Tensor>,
  ): Promise<LanguageModel> {
    const t0 = performance.now();
    const opened = await openSession({ model: graph, device, name: model.name, optimize: true, prepack: false });
    return new LanguageModel(model, opened.session, { device: opened.device, messages: opened.messages, builtNow: true, loadMs: performance.now() - t0 }, extraFeeds);
  }

  static async open(model: ResolvedModel, device: Device, o: BuildOptions & { threads?: number } = {}): Promise<LanguageModel> {
    const t0 = performance.now();
    const messages: string[] = [];
    let onnxPath = model.onnxPath;
    let builtNow = false;
    if (o.layerView && model.kind !== 'checkpoint')
      throw new ModelLoadError(`${model.name}: the layer view and feature distillation need a checkpoint folder (config.json and safetensors weights), whose graph Distill Lens builds with every hidden state; an ONNX export gives only its logits`);
    if (model.kind === 'checkpoint') {
      const built = await ensureBuiltModel(model, o);
      onnxPath = built.onnxPath;
      builtNow = built.built;
    }
    // full- and half-precision weights are used as stored; quantized kernels need their packing
    const dtype = model.onnxFile?.dtype ?? 'fp32';
    const prepack = !(dtype === 'fp32' || dtype === 'fp16');
    const opened = await openSession({ model: onnxPath!, device, name: model.name, threads: o.threads, optimize: true, prepack });
    const { session, device: used } = opened;
    messages.push(...opened.messages);
    if (!session.inputNames.includes('input_ids') || !session.outputNames.includes('logits')) {
      await session.release();
      throw new ModelLoadError(`${model.name}: the ONNX model has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}]; a causal language model with input_ids and logits is needed`);
    }
    return new LanguageModel(model, session, { device: used, messages, builtNow, loadMs: performance.now() - t0 });
  }

  /** The cache inputs and the outputs that refill them (past_key_values.X ← present.X); empty when the graph has none. */
  private get cachePairs(): [string, string][] {
    const inputs = this.session.inputNames.filter((n) => n.startsWith('past_key_values.'));
    return inputs
      .map((n) => [n, 'present.' + n.slice('past_key_values.'.length)] as [string, string])
      .filter(([, out]) => this.session.outputNames.includes(out));
  }

  /** How `step` keeps the cache: in buffers (graphs built here), as present.* outputs (exports), or not at all. */
  get cacheKind(): 'buffers' | 'present' | undefined {
    if (this.session.inputNames.includes('past_length') && this.session.inputNames.some((n) => n.startsWith('cache.'))) return 'buffers';
    const inputs = this.session.inputNames.filter((n) => n.startsWith('past_key_values.'));
    return inputs.length > 0 && this.cachePairs.length === inputs.length ? 'present' : undefined;
  }

  /** Whether `step` decodes incrementally. */
  get canCache(): boolean {
    return this.cacheKind !== undefined;
  }

  /**
   * Logits for `rows` (B sequences of the same number L of new tokens) after the cached
   * positions, and the cache extended by them. `capacity`: the positions the buffers of a
   * new cache hold (they grow when a step would pass it).
   */
  async step(rows: number[][], cache?: DecoderCache, capacity = 0): Promise<{ logits: Float32Array; vocab: number; cache: DecoderCache }> {
    const kind = this.cacheKind;
    if (!kind) throw new Error(`${this.model.name} has no key/value cache inputs`);
    const B = rows.length;
    const L = rows[0].length;
    const P = cache?.length ?? 0;
    const feeds: Record<string, ort.Tensor> = {};
    const int64 = (n: number, value: (b: number, i: number) => number) =>
      new ort.Tensor('int64', BigInt64Array.from({ length: B * n }, (_, k) => BigInt(value(Math.floor(k / n), k % n))), [B, n]);
    let buffers = cache?.kind === 'buffers' ? cache : undefined;
    if (kind === 'buffers') buffers = this.ensureCapacity(buffers, B, Math.max(capacity, P + L));
    const extra = this.extraFeeds?.() ?? {};
    for (const meta of this.session.inputMetadata) {
      const name = meta.name;
      if (extra[name]) feeds[name] = extra[name];
      else if (name === 'input_ids') feeds[name] = int64(L, (b, i) => rows[b][i]);
      else if (name === 'attention_mask') feeds[name] = int64(P + L, () => 1);
      else if (name === 'position_ids') feeds[name] = int64(L, (_, i) => P + i);
      else if (name === 'token_type_ids') feeds[name] = int64(L, () => 0);
      else if (name === 'use_cache_branch') feeds[name] = new ort.Tensor('bool', [P > 0], [1]);
      else if (name === 'past_length') feeds[name] = new ort.Tensor('int64', BigInt64Array.from([BigInt(P)]), [1]);
      else if (name.startsWith('cache.') && buffers)
        feeds[name] = new ort.Tensor('float32', buffers.buffers[name], [B, buffers.kvHeads, buffers.capacity, buffers.headSize]);
      else if (name.startsWith('past_key_values.'))
        feeds[name] = cache?.kind === 'present' ? cache.tensors[name] : this.emptyPast(meta, B);
      else feeds[name] = this.feedFor(meta, rows[0]);
    }
    const newNames = kind === 'buffers' ? Object.keys(buffers!.buffers).map((n) => 'new.' + n.slice('cache.'.length)) : [];
    const pairs = kind === 'present' ? this.cachePairs : [];
    const out = await this.session.run(feeds, ['logits', ...newNames, ...pairs.map(([, o]) => o)]);
    const logits = out.logits;
    if (logits.type !== 'float32' && logits.type !== 'float16') throw new ModelLoadError(`${this.model.name}: logits of type ${logits.type} are not supported`);
    // float16 exports (their cache stays float16, as the graph gave it)
    const values = logits.type === 'float16' ? halfToFloat32(logits.data as Uint16Array) : (logits.data as Float32Array);
    const dims = logits.dims;
    if (dims.length !== 3 || dims[0] !== B || dims[1] !== L) throw new ModelLoadError(`${this.model.name}: logits have shape [${dims}], expected [${B}, ${L}, vocab]`);
    if (buffers) {
      // the new positions into each buffer at P … P + L − 1, per sequence and head
      const { kvHeads, headSize, capacity: C } = buffers;
      for (const name of Object.keys(buffers.buffers)) {
        const fresh = out['new.' + name.slice('cache.'.length)].data as Float32Array;
        const buffer = buffers.buffers[name];
        for (let bh = 0; bh < B * kvHeads; bh++) buffer.set(fresh.subarray(bh * L * headSize, (bh + 1) * L * headSize), (bh * C + P) * headSize);
      }
      return { logits: values, vocab: dims[2], cache: { ...buffers, length: P + L } };
    }
    const tensors: Record<string, ort.Tensor> = {};
    for (const [input, output] of pairs) tensors[input] = out[output];
    return { logits: values, vocab: dims[2], cache: { kind: 'present', tensors, length: P + L, batch: B } };
  }

  /** A batch-of-1 cache repeated for `batch` sequences that share its positions (continuations of one prompt). */
  tileCache(cache: DecoderCache, batch: number): DecoderCache {
    if (cache.batch !== 1) throw new Error('only a cache of one sequence can be tiled');
    if (batch === 1) return cache;
    const repeat = <T extends Float32Array | Uint16Array>(data: T): T => {
      const out = new (data.constructor as new (n: number) => T)(data.length * batch);
      for (let b = 0; b < batch; b++) out.set(data, b * data.length);
      return out;
    };
    if (cache.kind === 'buffers')
      return { ...cache, batch, buffers: Object.fromEntries(Object.entries(cache.buffers).map(([k, v]) => [k, repeat(v)])) };
    const tensors = Object.fromEntries(
      Object.entries(cache.tensors).map(([k, t]) => [
        k,
        new ort.Tensor(t.type as 'float32' | 'float16', repeat(t.data as Float32Array | Uint16Array), [batch, ...t.dims.slice(1)]),
      ]),
    );
    return { ...cache, batch, tensors };
  }

  /** Buffers that hold at least `needed` positions: new ones, or the old ones copied into larger ones. */
  private ensureCapacity(cache: Extract<DecoderCache, { kind: 'buffers' }> | undefined, batch: number, needed: number) {
    if (cache && cache.capacity >= needed) return cache;
    const meta = this.session.inputMetadata.find((m) => m.name === 'cache.0.key');
    const shape = meta && meta.isTensor ? meta.shape : [];
    const kvHeads = Number(shape[1]);
    const headSize = Number(shape[3]);
    const capacity = Math.max(needed, 2 * (cache?.capacity ?? 0));
    const buffers: Record<string, Float32Array> = {};
    for (const name of this.session.inputNames.filter((n) => n.startsWith('cache.'))) {
      const buffer = new Float32Array(batch * kvHeads * capacity * headSize);
      const old = cache?.buffers[name];
      if (old) for (let bh = 0; bh < batch * kvHeads; bh++) buffer.set(old.subarray(bh * cache!.capacity * headSize, (bh * cache!.capacity + cache!.length) * headSize), bh * capacity * headSize);
      buffers[name] = buffer;
    }
    return { kind: 'buffers' as const, buffers, kvHeads, headSize, capacity, length: cache?.length ?? 0, batch };
  }

  /** An empty cache input for a batch of B: past length 0, other dims from the graph or the config. */
  private emptyPast(meta: ort.InferenceSession.ValueMetadata, batch: number): ort.Tensor {
    if (!meta.isTensor) throw new ModelLoadError(`${this.model.name}: input ${meta.name} is not a tensor`);
    const shape = meta.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : /past|seq|length/i.test(d) ? 0 : this.symbolicDim(d, meta.name)));
    const size = shape.reduce((a, b) => a * b, 1);
    const type = meta.type as 'float32' | 'float16';
    return new ort.Tensor(type, type === 'float16' ? new Uint16Array(size) : new Float32Array(size), shape);
  }

  get vocabSize(): number | undefined {
    const meta = this.session.outputMetadata.find((m) => m.name === 'logits');
    const last = meta && meta.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
    return typeof last === 'number' ? last : this.model.config?.vocab_size;
  }

  /** Logits for every position of one sequence. */
  async forward(ids: number[]): Promise<Logits> {
    const L = ids.length;
    const feeds: Record<string, ort.Tensor> = {};
    const extra = this.extraFeeds?.() ?? {};
    for (const meta of this.session.inputMetadata) {
      feeds[meta.name] = extra[meta.name] ?? this.feedFor(meta, ids);
    }
    const out = await this.session.run(feeds, ['logits']);
    const logits = out.logits;
    const dims = logits.dims;
    const vocab = dims[dims.length - 1];
    if (logits.type !== 'float32' && logits.type !== 'float16') throw new ModelLoadError(`${this.model.name}: logits of type ${logits.type} are not supported`);
    if (dims.length !== 3 || dims[1] !== L) throw new ModelLoadError(`${this.model.name}: logits have shape [${dims}], expected [1, ${L}, vocab]`);
    return { data: logits.data as Float32Array | Uint16Array, type: logits.type, length: L, vocab };
  }

  /**
   * The layer view of one sequence (a model opened with `layerView`): its logits and, per
   * hidden state, the logit lens's KL and argmax per position, the centred Gram matrix and the
   * states (builder/layerView.ts). `reference`: the logits the lens is compared with (the
   * teacher's, for a model opened with layerView 'input').
   */
  async forwardLayers(ids: number[], reference?: Logits): Promise<LayerForward> {
    const L = ids.length;
    const feeds: Record<string, ort.Tensor> = {};
    for (const meta of this.session.inputMetadata) {
      if (meta.name !== 'reference_logits') feeds[meta.name] = this.feedFor(meta, ids);
      else {
        if (!reference || reference.length !== L) throw new Error(`${this.model.name}: the layer view needs the reference logits of the same ${L} positions`);
        feeds[meta.name] = new ort.Tensor('float32', float32Logits(reference), [L, reference.vocab]);
      }
    }
    // a model opened with layerView 'states' has the hidden states only
    const fetch = ['logits', ...LAYER_OUTPUTS].filter((n) => this.session.outputNames.includes(n));
    const out = await this.session.run(feeds, fetch);
    const logits = out.logits;
    const dims = out.layer_hidden.dims;
    return {
      logits: { data: logits.data as Float32Array, type: 'float32', length: L, vocab: logits.dims[2] },
      states: dims[0],
      width: dims[2],
      lensKl: (out.lens_kl?.data as Float64Array) ?? new Float64Array(0),
      lensArgmax: (out.lens_argmax?.data as BigInt64Array) ?? new BigInt64Array(0),
      gram: (out.layer_gram?.data as Float64Array) ?? new Float64Array(0),
      hidden: out.layer_hidden.data as Float32Array,
    };
  }

  private feedFor(meta: ort.InferenceSession.ValueMetadata, ids: number[]): ort.Tensor {
    const L = ids.length;
    const name = meta.name;
    const int64 = (values: (i: number) => number, n = L) => new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(values(i))), [1, n]);
    if (name === 'input_ids') return int64((i) => ids[i]);
    if (name === 'attention_mask') return int64(() => 1);
    if (name === 'position_ids') return int64((i) => i);
    if (name === 'token_type_ids') return int64(() => 0);
    if (!meta.isTensor) throw new ModelLoadError(`${this.model.name}: input ${name} is not a tensor`);
    if (name === 'use_cache_branch') return new ort.Tensor('bool', [false], [1]);
    if (name === 'past_length') return new ort.Tensor('int64', BigInt64Array.from([0n]), [1]);
    // an empty cache: past length 0, other symbolic dims from the config (batch 1)
    if (/past|cache/.test(name)) return this.emptyPast(meta, 1);
    throw new ModelLoadError(`${this.model.name}: the ONNX model needs input "${name}", which Distill Lens does not know how to fill`);
  }

  private symbolicDim(dim: string, input: string): number {
    const c = this.model.config ?? {};
    if (/head/i.test(dim) && /size|dim/i.test(dim)) return c.head_dim ?? c.hidden_size / c.num_attention_heads;
    if (/head/i.test(dim)) return c.num_key_value_heads ?? c.num_attention_heads;
    throw new ModelLoadError(`${this.model.name}: cannot tell the size of dimension "${dim}" of input ${input}`);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
