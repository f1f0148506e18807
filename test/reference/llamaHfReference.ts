/**
 * An independent float64 forward pass of Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM /
 * MistralForCausalLM / Phi3ForCausalLM (rotate_half rotary embedding with the rope_scaling
 * types "linear", "llama3", "yarn" and "longrope" as transformers' modeling_rope_utils defines
 * them, cos and sin times the attention factor, Phi-3's partial rotation, grouped-query
 * attention, q/k/v biases when present, sliding windows: q sees k when q − window < k ≤ q).
 */
import { finishLayers, type ReferenceLayers, type Weights } from './gpt2Reference';

export interface HfLlamaConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  head_dim?: number;
  rope_scaling?: {
    rope_type: string;
    factor?: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
    attention_factor?: number;
    beta_fast?: number;
    beta_slow?: number;
    mscale?: number;
    mscale_all_dim?: number;
    truncate?: boolean;
    short_factor?: number[];
    long_factor?: number[];
  };
  max_position_embeddings?: number;
  /** the config's own original_max_position_embeddings (Phi-3, read by LongRoPE) */
  original_max_position_embeddings?: number;
  /** Phi-3: only the first head_dim·factor dimensions of each head are rotated */
  partial_rotary_factor?: number;
  /** every layer's window */
  sliding_window?: number;
  /** or one window per layer (undefined: full attention), overriding sliding_window */
  layer_windows?: (number | undefined)[];
  /** Qwen3: RMSNorm of each query and key head (q_norm, k_norm) before the rotation */
  qk_norm?: boolean;
}

/**
 * rotate_half rotary embedding of each of `heads` heads of `hd` values at position `pos`, in
 * float64: the first 2·invFreq.length dimensions rotated, cos and sin times `attentionFactor`,
 * the rest passed through (Phi-3's partial rotation).
 */
export function referenceRope(
  v: Float64Array,
  heads: number,
  hd: number,
  pos: number,
  invFreq: number[],
  attentionFactor = 1,
): Float64Array {
  const out = Float64Array.from(v);
  const rd = 2 * invFreq.length;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < rd / 2; i++) {
      const angle = pos * invFreq[i];
      const cos = Math.cos(angle) * attentionFactor;
      const sin = Math.sin(angle) * attentionFactor;
      const a = v[h * hd + i];
      const b = v[h * hd + i + rd / 2];
      out[h * hd + i] = a * cos - b * sin;
      out[h * hd + i + rd / 2] = b * cos + a * sin;
    }
  }
  return out;
}

/**
 * inv_freq per rotated pair and the attention factor, in float64, written from transformers'
 * _compute_*_parameters (the current modeling_rope_utils); `length` is the sequence length,
 * which picks LongRoPE's factors.
 */
export function referenceRotation(
  c: HfLlamaConfig,
  hd: number,
  length: number,
): { invFreq: number[]; attentionFactor: number } {
  const dim = Math.trunc(hd * (c.partial_rotary_factor ?? 1));
  const posFreqs = Array.from({ length: dim / 2 }, (_, i) => Math.pow(c.rope_theta, (2 * i) / dim));
  const invFreq = posFreqs.map((p) => 1 / p);
  const s = c.rope_scaling;
  if (!s) return { invFreq, attentionFactor: 1 };
  if (s.rope_type === 'linear') return { invFreq: invFreq.map((f) => f / s.factor!), attentionFactor: 1 };
  if (s.rope_type === 'llama3') {
    // _compute_llama3_parameters, step by step (torch.where becomes a conditional per entry)
    const lowWavelen = s.original_max_position_embeddings! / s.low_freq_factor!;
    const highWavelen = s.original_max_position_embeddings! / s.high_freq_factor!;
    return {
      attentionFactor: 1,
      invFreq: invFreq.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        const llama = wavelen > lowWavelen ? f / s.factor! : f;
        const smoothFactor =
          (s.original_max_position_embeddings! / wavelen - s.low_freq_factor!) /
          (s.high_freq_factor! - s.low_freq_factor!);
        const smoothed = ((1 - smoothFactor) * llama) / s.factor! + smoothFactor * llama;
        const isMedium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
        return isMedium ? smoothed : llama;
      }),
    };
  }
  if (s.rope_type === 'yarn') {
    // _compute_yarn_parameters
    const factor = s.factor!;
    const original = s.original_max_position_embeddings ?? c.max_position_embeddings!;
    const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
    const attentionFactor =
      s.attention_factor ??
      (s.mscale && s.mscale_all_dim
        ? getMscale(factor, s.mscale) / getMscale(factor, s.mscale_all_dim)
        : getMscale(factor));
    const findCorrectionDim = (rotations: number) =>
      (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(c.rope_theta));
    let low = findCorrectionDim(s.beta_fast ?? 32);
    let high = findCorrectionDim(s.beta_slow ?? 1);
    if (s.truncate ?? true) [low, high] = [Math.floor(low), Math.ceil(high)];
    [low, high] = [Math.max(low, 0), Math.min(high, dim - 1)];
    if (low === high) high += 0.001;
    return {
      attentionFactor,
      invFreq: posFreqs.map((p, i) => {
        const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
        const extrapolationFactor = 1 - ramp;
        return (1 / (factor * p)) * (1 - extrapolationFactor) + (1 / p) * extrapolationFactor;
      }),
    };
  }
  if (s.rope_type === 'longrope') {
    // _compute_longrope_parameters with the dynamic update: long factors past the original context
    let factor = s.factor;
    let original = c.max_position_embeddings!;
    if (c.original_max_position_embeddings !== undefined) {
      original = c.original_max_position_embeddings;
      factor = c.max_position_embeddings! / original;
    }
    const attentionFactor =
      s.attention_factor ?? (factor! <= 1 ? 1 : Math.sqrt(1 + Math.log(factor!) / Math.log(original)));
    const ext = length > original ? s.long_factor! : s.short_factor!;
    return { attentionFactor, invFreq: posFreqs.map((p, i) => 1 / (ext[i] * p)) };
  }
  throw new Error(`no reference for ${s.rope_type}`);
}

export function referenceLlamaHf(
  w: Weights,
  c: HfLlamaConfig,
  tokens: number[],
  layers?: ReferenceLayers,
): Float64Array[] {
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  const hd = c.head_dim ?? D / H;
  const { invFreq, attentionFactor } = referenceRotation(c, hd, tokens.length);
  const get = (n: string) => w[n]?.data;
  const rms = (x: Float64Array, g: Float32Array) => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.rms_norm_eps)) * g[i]);
  };
  // y = W x (+ b) with W [out, in]
  const lin = (x: Float64Array, W: Float32Array, out: number, b?: Float32Array) =>
    Float64Array.from({ length: out }, (_, o) => {
      let s = b ? b[o] : 0;
      for (let i = 0; i < x.length; i++) s += W[o * x.length + i] * x[i];
      return s;
    });
  const rope = (v: Float64Array, heads: number, pos: number) =>
    referenceRope(v, heads, hd, pos, invFreq, attentionFactor);
  let xs = tokens.map((t) =>
    Float64Array.from({ length: D }, (_, i) => get('model.embed_tokens.weight')[t * D + i]),
  );
  if (layers) layers.states = [xs];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rms(x, get(p + 'input_layernorm.weight')));
    // Qwen3RMSNorm over each head's hd values, with a weight of hd values shared by the heads
    const headNorm = (v: Float64Array, heads: number, name: string) => {
      if (!c.qk_norm) return v;
      const out = new Float64Array(v.length);
      for (let h = 0; h < heads; h++)
        out.set(rms(v.subarray(h * hd, (h + 1) * hd), get(p + `self_attn.${name}.weight`)), h * hd);
      return out;
    };
    const qs = hs.map((h, pos) =>
      rope(
        headNorm(
          lin(h, get(p + 'self_attn.q_proj.weight'), H * hd, get(p + 'self_attn.q_proj.bias')),
          H,
          'q_norm',
        ),
        H,
        pos,
      ),
    );
    const ks = hs.map((h, pos) =>
      rope(
        headNorm(
          lin(h, get(p + 'self_attn.k_proj.weight'), KV * hd, get(p + 'self_attn.k_proj.bias')),
          KV,
          'k_norm',
        ),
        KV,
        pos,
      ),
    );
    const vs = hs.map((h) =>
      lin(h, get(p + 'self_attn.v_proj.weight'), KV * hd, get(p + 'self_attn.v_proj.bias')),
    );
    xs = xs.map((x, t) => {
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / (H / KV));
        // positions this one sees: all before it, or the last `sliding_window` (itself included)
        const window = c.layer_windows ? c.layer_windows[l] : c.sliding_window;
        const first = window ? Math.max(0, t - window + 1) : 0;
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          if (s < first) return -Infinity;
          let d = 0;
          for (let i = 0; i < hd; i++) d += qs[t][h * hd + i] * ks[s][kvh * hd + i];
          return d / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((a, s) => {
          for (let i = 0; i < hd; i++) att[h * hd + i] += (a / z) * vs[s][kvh * hd + i];
        });
      }
      const o = lin(att, get(p + 'self_attn.o_proj.weight'), D);
      const x1 = x.map((v, i) => v + o[i]);
      const h2 = rms(x1, get(p + 'post_attention_layernorm.weight'));
      const gate = lin(h2, get(p + 'mlp.gate_proj.weight'), c.intermediate_size).map(
        (v) => v / (1 + Math.exp(-v)),
      );
      const up = lin(h2, get(p + 'mlp.up_proj.weight'), c.intermediate_size);
      const down = lin(
        gate.map((v, i) => v * up[i]),
        get(p + 'mlp.down_proj.weight'),
        D,
      );
      return x1.map((v, i) => v + down[i]);
    });
    if (layers && l < c.num_hidden_layers - 1) layers.states.push(xs);
  }
  const head = c.tie_word_embeddings ? get('model.embed_tokens.weight') : get('lm_head.weight');
  return finishLayers(
    xs,
    (x) => rms(x, get('model.norm.weight')),
    (f) => lin(f, head, c.vocab_size),
    layers,
  );
}

/** Random weights in the Hugging Face Llama / Qwen2 layout (q/k/v biases, untied head). */
export function randomLlamaWeights(
  c: HfLlamaConfig & { intermediate_size: number },
  r: () => number,
): Weights {
  const t = (shape: number[], s = 0.3, offset = 0) => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + s * (2 * r() - 1)),
  });
  const D = c.hidden_size;
  const hd = c.head_dim ?? D / c.num_attention_heads;
  const qw = hd * c.num_attention_heads;
  const kv = hd * (c.num_key_value_heads ?? c.num_attention_heads);
  const w: Weights = {
    'model.embed_tokens.weight': t([c.vocab_size, D]),
    'model.norm.weight': t([D], 0.1, 1),
    'lm_head.weight': t([c.vocab_size, D]),
  };
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(w, {
      [p + 'input_layernorm.weight']: t([D], 0.1, 1),
      [p + 'post_attention_layernorm.weight']: t([D], 0.1, 1),
      [p + 'self_attn.q_proj.weight']: t([qw, D]),
      [p + 'self_attn.q_proj.bias']: t([qw]),
      [p + 'self_attn.k_proj.weight']: t([kv, D]),
      [p + 'self_attn.k_proj.bias']: t([kv]),
      [p + 'self_attn.v_proj.weight']: t([kv, D]),
      [p + 'self_attn.v_proj.bias']: t([kv]),
      [p + 'self_attn.o_proj.weight']: t([D, qw]),
      ...(c.qk_norm
        ? {
            [p + 'self_attn.q_norm.weight']: t([hd], 0.2, 1),
            [p + 'self_attn.k_norm.weight']: t([hd], 0.2, 1),
          }
        : {}),
      [p + 'mlp.gate_proj.weight']: t([c.intermediate_size, D]),
      [p + 'mlp.up_proj.weight']: t([c.intermediate_size, D]),
      [p + 'mlp.down_proj.weight']: t([D, c.intermediate_size]),
    });
  }
  return w;
}
