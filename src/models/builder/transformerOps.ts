/**
 * Building blocks shared by the Llama and GPT-2 graphs, all standard ONNX operators (so the
 * training graphs of a later issue can differentiate them). Activations are kept 2-D as
 * [N, D] with N = batch × length, so every projection is one Gemm against the weight in
 * its checkpoint layout (transB where the checkpoint stores [out, in]).
 */
import type { GraphBuilder } from '../../onnx/graphBuilder';
import type { RotaryPlan } from './rope';

/** The config.json fields every rotary decoder family (Llama's, Gemma's) reads. */
export interface DecoderConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  vocab_size: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  rope_scaling?: unknown;
  max_position_embeddings?: number;
  /** Phi-3: the pretrained context, read by LongRoPE */
  original_max_position_embeddings?: number;
  /** Phi-3: the share of each head's dimensions that is rotated */
  partial_rotary_factor?: number;
}

/** The logits as rows [B·L, V], named so that a training graph can take them before the final reshape. */
export const LOGITS_ROWS = 'logits_rows';

export interface Dims {
  /** [B, L] as a 1-D int64 tensor */
  batchLen: string;
  /** N = B·L as a [1] int64 tensor */
  n: string;
  /** L as a [1] int64 tensor */
  len: string;
  /** with a key/value cache: P, the positions already cached, as a [1] int64 tensor (the new ones are P … P + L − 1) */
  past?: string;
}

/** Shapes derived from input_ids [B, L]. */
export function inputDims(g: GraphBuilder, ids: string): Dims {
  const batchLen = g.op1('Shape', [ids]);
  const n = g.op1('ReduceProd', [batchLen], { keepdims: 1 });
  const len = g.op1('Slice', [batchLen, g.ints([1]), g.ints([2])]);
  return { batchLen, n, len };
}

/** x [N, in] · W → [N, out]; W is [out, in] when `transposed` (Linear) or [in, out] (GPT-2 Conv1D). */
export function linear(g: GraphBuilder, x: string, w: string, bias: string | undefined, transposed: boolean): string {
  const inputs = bias ? [x, w, bias] : [x, w];
  return g.op1('Gemm', inputs, { transB: transposed ? 1 : 0 });
}

export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  const ms = g.op1('ReduceMean', [g.op1('Mul', [x, x]), g.ints([-1])], { keepdims: 1 });
  const inv = g.op1('Reciprocal', [g.op1('Sqrt', [g.op1('Add', [ms, g.scalar(eps)])])]);
  return g.op1('Mul', [g.op1('Mul', [x, inv]), weight]);
}

export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number): string {
  return g.op1('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: { float: eps } });
}

export function silu(g: GraphBuilder, x: string): string {
  return g.op1('Mul', [x, g.op1('Sigmoid', [x])]);
}

/** GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(g: GraphBuilder, x: string): string {
  const x3 = g.op1('Mul', [g.op1('Mul', [x, x]), x]);
  const inner = g.op1('Mul', [g.op1('Add', [x, g.op1('Mul', [x3, g.scalar(0.044715)])]), g.scalar(Math.sqrt(2 / Math.PI))]);
  return g.op1('Mul', [g.op1('Mul', [x, g.scalar(0.5)]), g.op1('Add', [g.op1('Tanh', [inner]), g.scalar(1)])]);
}

/**
 * Rotary position embedding in Hugging Face's half-split layout (rotate_half): for t
 * [B, H, L, hd], the first d = plan.rotaryDim dimensions become t·cos + rotate_half(t)·sin
 * with angle(pos, i) = pos·inv_freq[i] in float32 (as transformers computes it), the same
 * angle for dimensions i and i + d/2, cos and sin times the plan's attention factor; the
 * other hd − d dimensions pass through (partial_rotary_factor, Phi-3's apply_rotary_pos_emb).
 * The angles are computed in the graph for the positions of the input, so no table of every
 * position the model could see is stored; LongRoPE's frequencies are chosen there by the
 * input's length.
 */
export function rotaryEmbedding(g: GraphBuilder, d: Dims, plan: RotaryPlan, name: string, headDim: number): (t: string) => string {
  const rd = plan.rotaryDim;
  const positions = g.op1('Cast', [positionRange(g, d)], { to: 1 });
  const table = (invFreq: Float32Array, suffix: string) => {
    const frequencies = new Float32Array(rd);
    frequencies.set(invFreq, 0);
    frequencies.set(invFreq, rd / 2);
    return g.weight(`${name}_inv_freq${suffix}`, 'float32', [1, rd], frequencies);
  };
  let frequencies = table(plan.invFreq, '');
  if (plan.long) {
    // LongRoPE: transformers switches to the long factors when the sequence is longer than C
    const longer = g.op1('Greater', [totalLength(g, d), g.constant([plan.long.longerThan], 'int64', [1], `${name}_longer_than`)]);
    frequencies = g.op1('Where', [longer, table(plan.long.invFreq, '_long'), frequencies]);
  }
  // [L, 1] · [1, rd] → [L, rd]: a float32 product per entry, as transformers' matmul of the two
  const angles = g.op1('Mul', [g.op1('Unsqueeze', [positions, g.ints([1])]), frequencies]);
  const scaled = (t: string) => (plan.attentionFactor === 1 ? t : g.op1('Mul', [t, g.scalar(plan.attentionFactor)]));
  const cos = scaled(g.op1('Cos', [angles]));
  const sin = scaled(g.op1('Sin', [angles]));
  return (t: string) => {
    const [rot, pass] = rd < headDim ? g.op('Split', [t, g.ints([rd, headDim - rd])], { axis: -1 }, 2) : [t, undefined];
    const [t1, t2] = g.op('Split', [rot, g.ints([rd / 2, rd / 2])], { axis: -1 }, 2);
    const rotated = g.op1('Concat', [g.op1('Neg', [t2]), t1], { axis: -1 });
    const embedded = g.op1('Add', [g.op1('Mul', [rot, cos]), g.op1('Mul', [rotated, sin])]);
    return pass ? g.op1('Concat', [embedded, pass], { axis: -1 }) : embedded;
  };
}

/** [N, heads·hd] → [B, heads, L, hd] */
export function splitHeads(g: GraphBuilder, x: string, d: Dims, heads: number, headSize: number): string {
  const shape = g.op1('Concat', [d.batchLen, g.ints([heads, headSize])], { axis: 0 });
  return g.op1('Transpose', [g.op1('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
}

/** [B, heads, L, hd] → [N, heads·hd] */
export function mergeHeads(g: GraphBuilder, x: string, width: number): string {
  return g.op1('Reshape', [g.op1('Transpose', [x], { perm: [0, 2, 1, 3] }), g.ints([-1, width])]);
}

/** [B, kvHeads, L, hd] → [B, kvHeads·rep, L, hd] for grouped-query attention. */
export function repeatKv(g: GraphBuilder, x: string, d: Dims, kvHeads: number, rep: number, headSize: number): string {
  if (rep === 1) return x;
  const b = g.op1('Slice', [d.batchLen, g.ints([0]), g.ints([1])]);
  const len = totalLength(g, d); // with a cache, the cached positions too
  const five = g.op1('Concat', [b, g.ints([kvHeads, 1]), len, g.ints([headSize])], { axis: 0 });
  const expanded = g.op1('Concat', [b, g.ints([kvHeads, rep]), len, g.ints([headSize])], { axis: 0 });
  const back = g.op1('Concat', [b, g.ints([kvHeads * rep]), len, g.ints([headSize])], { axis: 0 });
  return g.op1('Reshape', [g.op1('Expand', [g.op1('Reshape', [x, five]), expanded]), back]);
}

/** P + L as a [1] int64 tensor: every position the attention sees (L without a cache). */
export function totalLength(g: GraphBuilder, d: Dims): string {
  return d.past ? g.op1('Add', [d.past, d.len]) : d.len;
}

/** The positions of the input: P … P + L − 1 (0 … L − 1 without a cache), int64 [L]. */
export function positionRange(g: GraphBuilder, d: Dims): string {
  const scalar = (t: string) => g.op1('Squeeze', [t, g.ints([0])]);
  const start = d.past ? scalar(d.past) : g.constant([0], 'int64', [], 'position_start');
  return g.op1('Range', [start, scalar(totalLength(g, d)), g.constant([1], 'int64', [], 'position_step')]);
}

/**
 * [L, P + L] additive causal mask: new position i (absolute P + i) sees key j when j ≤ P + i,
 * and with a sliding window also P + i − j < window; −∞ elsewhere.
 */
export function causalMask(g: GraphBuilder, d: Dims, window?: number): string {
  const shape = g.op1('Concat', [d.len, totalLength(g, d)], { axis: 0 });
  const full = g.op1('ConstantOfShape', [shape], { value: { dataType: 1, dims: [1], floatData: [-Infinity] } });
  // Trilu's k as a scalar: the diagonal moves right by P
  const diagonal = (offset: number, name: string) => {
    const k = g.constant([offset], 'int64', [], name);
    return d.past ? g.op1('Add', [g.op1('Squeeze', [d.past, g.ints([0])]), k]) : k;
  };
  const future = g.op1('Trilu', [full, diagonal(1, 'k_future')], { upper: 1 });
  if (!window) return future;
  // the lower triangle from the diagonal P − window down: the keys with (P + i) − j ≥ window
  const tooFar = g.op1('Trilu', [full, diagonal(-window, 'k_window')], { upper: 0 });
  return g.op1('Add', [future, tooFar]);
}

/** The causal mask with a sliding window (Mistral's): position q sees k when q − window < k ≤ q. */
export function slidingWindowMask(g: GraphBuilder, d: Dims, window: number): string {
  return causalMask(g, d, window);
}

/**
 * A key/value cache in the layout of transformers.js and Optimum exports: inputs
 * past_key_values.{l}.key / .value [B, kv heads, P, hd], outputs present.{l}.key / .value
 * [B, kv heads, P + L, hd]. `extend` appends a layer's new keys and values to its cache.
 */
export function keyValueCache(g: GraphBuilder, layers: number, kvHeads: number, headSize: number) {
  const dims = (length: string) => ['batch', kvHeads, length, headSize];
  const past = (l: number, kind: 'key' | 'value') => g.input(`past_key_values.${l}.${kind}`, 'float32', dims('past_sequence_length'));
  const pastLength = g.op1('Slice', [g.op1('Shape', [past(0, 'key')]), g.ints([2]), g.ints([3])]);
  return {
    pastLength,
    extend(l: number, k: string, v: string): [string, string] {
      const pk = l === 0 ? 'past_key_values.0.key' : past(l, 'key');
      const pv = past(l, 'value');
      const outputs = (['key', 'value'] as const).map((kind, i) => {
        const all = g.op1('Concat', [kind === 'key' ? pk : pv, i === 0 ? k : v], { axis: 2 });
        const name = `present.${l}.${kind}`;
        g.rename(all, name);
        g.output(name, 'float32', dims('total_sequence_length'));
        return name;
      });
      return [outputs[0], outputs[1]];
    },
  };
}

/**
 * A key/value cache the caller owns, of fixed capacity C: inputs cache.{l}.key / .value
 * [B, kv heads, C, hd] (positions from past_length on are unused) and past_length [1] int64;
 * outputs new.{l}.key / .value [B, kv heads, L, hd], the new positions only, which the caller
 * writes into its buffers at P … P + L − 1. Attention reads the buffers where they are:
 * scores over the cache and over the new positions are computed apart and softmaxed
 * together, so no step copies the cache, and a step costs the same at every position.
 */
export function bufferCache(g: GraphBuilder, kvHeads: number, headSize: number) {
  const pastLength = g.input('past_length', 'int64', [1]);
  const dims = (length: string) => ['batch', kvHeads, length, headSize];
  return {
    pastLength,
    /**
     * softmax over [cache, new] of q·kᵀ·scale + masks, times [cache, new] values, for q
     * [B, H, L, hd] and the layer's new k, v [B, kv heads, L, hd]; H = kv heads · rep.
     * `window`: a position sees the `window` last positions, itself included.
     */
    attend(
      l: number,
      d: Dims,
      q: string,
      kNew: string,
      vNew: string,
      heads: number,
      scale: number,
      window?: number,
      /** Gemma: c·tanh(s / c) on the scores before the masks */
      softcap?: number | null,
    ): string {
      const rep = heads / kvHeads;
      const kCache = g.input(`cache.${l}.key`, 'float32', dims('past_capacity'));
      const vCache = g.input(`cache.${l}.value`, 'float32', dims('past_capacity'));
      for (const [t, kind] of [[kNew, 'key'], [vNew, 'value']] as const) {
        const name = `new.${l}.${kind}`;
        g.rename(g.op1('Identity', [t]), name);
        g.output(name, 'float32', dims('length'));
      }
      // the query heads of one key/value head side by side: [B, kv, rep·L, hd]
      const grouped = g.op1('Reshape', [q, g.op1('Concat', [g.op1('Slice', [d.batchLen, g.ints([0]), g.ints([1])]), g.ints([kvHeads, -1, headSize])], { axis: 0 })]);
      const capped = (t: string) =>
        softcap ? g.op1('Mul', [g.op1('Tanh', [g.op1('Mul', [t, g.scalar(1 / softcap)])]), g.scalar(softcap)]) : t;
      const scores = (k: string) =>
        capped(g.op1('Mul', [g.op1('MatMul', [grouped, g.op1('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.scalar(scale)]));
      const [maskCache, maskNew] = this.masks(d, window, rep);
      const both = g.op1('Concat', [g.op1('Add', [scores(kCache), maskCache]), g.op1('Add', [scores(kNew), maskNew])], { axis: -1 });
      const weights = g.op1('Softmax', [both], { axis: -1 });
      const capacity = g.op1('Slice', [g.op1('Shape', [kCache]), g.ints([2]), g.ints([3])]);
      const [wCache, wNew] = g.op('Split', [weights, g.op1('Concat', [capacity, d.len], { axis: 0 })], { axis: -1 }, 2);
      const out = g.op1('Add', [g.op1('MatMul', [wCache, vCache]), g.op1('MatMul', [wNew, vNew])]);
      return g.op1('Reshape', [out, g.op1('Concat', [g.op1('Slice', [d.batchLen, g.ints([0]), g.ints([1])]), g.ints([heads, -1, headSize])], { axis: 0 })]);
    },
    /** additive masks [rep·L, C] over the cache (j < P, within the window) and [rep·L, L] over the new positions (causal) */
    masks(d: Dims, window: number | undefined, rep: number): [string, string] {
      const key = `${window ?? 'all'}|${rep}`;
      const known = this.maskMemo.get(key);
      if (known) return known;
      const zero = g.scalar(0);
      const minusInf = g.scalar(-Infinity);
      const capacity = g.op1('Slice', [g.op1('Shape', ['cache.0.key']), g.ints([2]), g.ints([3])]);
      const j = g.op1('Range', [g.constant([0], 'int64', [], 'j0'), g.op1('Squeeze', [capacity, g.ints([0])]), g.constant([1], 'int64', [], 'j1')]); // [C]
      let visible = g.op1('Less', [g.op1('Unsqueeze', [j, g.ints([0])]), pastLength]); // [1, C]: cached
      if (window) {
        // new position i is P + i: key j is within the window when P + i − j < window
        const i = g.op1('Unsqueeze', [positionRange(g, d), g.ints([1])]); // [L, 1]
        visible = g.op1('And', [visible, g.op1('Less', [g.op1('Sub', [i, g.op1('Unsqueeze', [j, g.ints([0])])]), g.constant([window], 'int64', [], 'window')])]);
      }
      const tile = (m: string) => (rep === 1 ? m : g.op1('Tile', [m, g.ints([rep, 1])]));
      const cacheMask = g.op1('Where', [visible, zero, minusInf]);
      // over the new positions alone: causal (and the window), as without a cache
      const newMask = causalMask(g, { ...d, past: undefined }, window);
      const rows = g.op1('Concat', [d.len, g.op1('Slice', [g.op1('Shape', [cacheMask]), g.ints([1]), g.ints([2])])], { axis: 0 });
      const result: [string, string] = [tile(g.op1('Expand', [cacheMask, rows])), tile(newMask)];
      this.maskMemo.set(key, result);
      return result;
    },
    maskMemo: new Map<string, [string, string]>(),
  };
}

/** softmax(q·kᵀ/√hd + mask)·v for q, k, v [B, H, L, hd]. */
export function causalAttention(g: GraphBuilder, q: string, k: string, v: string, mask: string, headSize: number): string {
  const kT = g.op1('Transpose', [k], { perm: [0, 1, 3, 2] });
  const scores = g.op1('Add', [g.op1('Mul', [g.op1('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(headSize))]), mask]);
  return g.op1('MatMul', [g.op1('Softmax', [scores], { axis: -1 }), v]);
}
