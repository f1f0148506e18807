/**
 * An independent float64 forward pass of transformers' Gemma3ForCausalLM (text), written from
 * modeling_gemma3: scaled embeddings, (1 + w) RMSNorm, pre/post attention and feed-forward
 * norms, per-head q/k norms, query_pre_attn_scalar, local (sliding, own rotary base) and
 * global layers, GeGLU with the tanh GELU, optional logit soft-capping.
 */
import { finishLayers, type ReferenceLayers, type Weights } from './gpt2Reference';
import { referenceRotation, referenceRope, type HfLlamaConfig } from './llamaHfReference';

export interface HfGemmaConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_local_base_freq: number;
  rope_scaling?: HfLlamaConfig['rope_scaling'];
  query_pre_attn_scalar: number;
  sliding_window: number;
  layer_types: ('sliding_attention' | 'full_attention')[];
  attn_logit_softcapping?: number | null;
  final_logit_softcapping?: number | null;
}

export function referenceGemma(
  w: Weights,
  c: HfGemmaConfig,
  tokens: number[],
  layers?: ReferenceLayers,
): Float64Array[] {
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  const hd = c.head_dim;
  const get = (n: string) => w[n].data;
  const norm = (x: Float64Array, weight: Float32Array) => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.rms_norm_eps)) * (1 + weight[i]));
  };
  const lin = (x: Float64Array, W: Float32Array, out: number) =>
    Float64Array.from({ length: out }, (_, o) => {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i] * x[i];
      return s;
    });
  const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const cap = (v: number, limit: number | null | undefined) => (limit ? Math.tanh(v / limit) * limit : v);
  const base = { ...c, rope_scaling: undefined } as unknown as HfLlamaConfig;
  const global = referenceRotation(
    { ...base, rope_theta: c.rope_theta, rope_scaling: c.rope_scaling },
    hd,
    tokens.length,
  );
  const local = referenceRotation({ ...base, rope_theta: c.rope_local_base_freq }, hd, tokens.length);
  const rope = (v: Float64Array, heads: number, pos: number, rotation: typeof global) =>
    referenceRope(v, heads, hd, pos, rotation.invFreq, rotation.attentionFactor);
  const headNorm = (v: Float64Array, heads: number, weight: Float32Array) => {
    const out = new Float64Array(v.length);
    for (let h = 0; h < heads; h++) out.set(norm(v.subarray(h * hd, (h + 1) * hd), weight), h * hd);
    return out;
  };

  let xs = tokens.map((t) =>
    Float64Array.from({ length: D }, (_, i) => get('model.embed_tokens.weight')[t * D + i] * Math.sqrt(D)),
  );
  if (layers) layers.states = [xs];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const sliding = c.layer_types[l] === 'sliding_attention';
    const freq = sliding ? local : global;
    const hs = xs.map((x) => norm(x, get(p + 'input_layernorm.weight')));
    const qs = hs.map((h, pos) =>
      rope(
        headNorm(lin(h, get(p + 'self_attn.q_proj.weight'), H * hd), H, get(p + 'self_attn.q_norm.weight')),
        H,
        pos,
        freq,
      ),
    );
    const ks = hs.map((h, pos) =>
      rope(
        headNorm(lin(h, get(p + 'self_attn.k_proj.weight'), KV * hd), KV, get(p + 'self_attn.k_norm.weight')),
        KV,
        pos,
        freq,
      ),
    );
    const vs = hs.map((h) => lin(h, get(p + 'self_attn.v_proj.weight'), KV * hd));
    xs = xs.map((x, t) => {
      const att = new Float64Array(H * hd);
      const first = sliding ? Math.max(0, t - c.sliding_window + 1) : 0;
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / (H / KV));
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          if (s < first) return -Infinity;
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[t][h * hd + i] * ks[s][kvh * hd + i];
          return cap(dot * Math.pow(c.query_pre_attn_scalar, -0.5), c.attn_logit_softcapping);
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((a, s) => {
          for (let i = 0; i < hd; i++) att[h * hd + i] += (a / z) * vs[s][kvh * hd + i];
        });
      }
      const attnOut = norm(
        lin(att, get(p + 'self_attn.o_proj.weight'), D),
        get(p + 'post_attention_layernorm.weight'),
      );
      const h1 = x.map((v, i) => v + attnOut[i]);
      const n = norm(h1, get(p + 'pre_feedforward_layernorm.weight'));
      const gate = lin(n, get(p + 'mlp.gate_proj.weight'), c.intermediate_size).map(gelu);
      const up = lin(n, get(p + 'mlp.up_proj.weight'), c.intermediate_size);
      const down = lin(
        gate.map((v, i) => v * up[i]),
        get(p + 'mlp.down_proj.weight'),
        D,
      );
      const mlpOut = norm(down, get(p + 'post_feedforward_layernorm.weight'));
      return h1.map((v, i) => v + mlpOut[i]);
    });
    if (layers && l < c.num_hidden_layers - 1) layers.states.push(xs);
  }
  return finishLayers(
    xs,
    (x) => norm(x, get('model.norm.weight')),
    (f) =>
      lin(f, get('model.embed_tokens.weight'), c.vocab_size).map((v) => cap(v, c.final_logit_softcapping)),
    layers,
  );
}

/** Random weights in the Gemma 3 text layout (tied head, four norms per layer, q/k norms). */
export function randomGemmaWeights(c: HfGemmaConfig, r: () => number): Weights {
  const t = (shape: number[], s = 0.3, offset = 0) => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + s * (2 * r() - 1)),
  });
  const D = c.hidden_size;
  const hd = c.head_dim;
  const w: Weights = {
    'model.embed_tokens.weight': t([c.vocab_size, D], 0.1),
    // Gemma's norms multiply by 1 + w: weights near 0
    'model.norm.weight': t([D], 0.1),
  };
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(w, {
      [p + 'input_layernorm.weight']: t([D], 0.1),
      [p + 'post_attention_layernorm.weight']: t([D], 0.1),
      [p + 'pre_feedforward_layernorm.weight']: t([D], 0.1),
      [p + 'post_feedforward_layernorm.weight']: t([D], 0.1),
      [p + 'self_attn.q_proj.weight']: t([c.num_attention_heads * hd, D]),
      [p + 'self_attn.k_proj.weight']: t([c.num_key_value_heads * hd, D]),
      [p + 'self_attn.v_proj.weight']: t([c.num_key_value_heads * hd, D]),
      [p + 'self_attn.o_proj.weight']: t([D, c.num_attention_heads * hd]),
      [p + 'self_attn.q_norm.weight']: t([hd], 0.2),
      [p + 'self_attn.k_norm.weight']: t([hd], 0.2),
      [p + 'mlp.gate_proj.weight']: t([c.intermediate_size, D]),
      [p + 'mlp.up_proj.weight']: t([c.intermediate_size, D]),
      [p + 'mlp.down_proj.weight']: t([D, c.intermediate_size]),
    });
  }
  return w;
}
