/** An independent float64 GPT-2 forward pass (Hugging Face GPT2LMHeadModel semantics). */
export type Weights = Record<string, { shape: number[]; data: Float32Array }>;

/**
 * The hidden states in the Hugging Face convention (the embeddings, each layer's output but
 * the last, the final norm's output), per state and position, and each one's logits through
 * the final norm and head (the last: the model's logits), filled by a reference when given.
 */
export interface ReferenceLayers {
  states: Float64Array[][];
  lens: Float64Array[][];
}

export function referenceGpt2(
  w: Weights,
  cfg: { n_embd: number; n_layer: number; n_head: number; vocab_size: number },
  tokens: number[],
  layers?: ReferenceLayers,
): Float64Array[] {
  const D = cfg.n_embd;
  const H = cfg.n_head;
  const hd = D / H;
  const get = (n: string) => w[n].data;
  const layerNorm = (x: Float64Array, g: Float32Array, b: Float32Array) => {
    const mean = x.reduce((s, v) => s + v, 0) / D;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / D;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * g[i] + b[i]);
  };
  // Conv1D: y = x W + b with W [in, out]
  const conv = (x: Float64Array, W: Float32Array, b: Float32Array, out: number) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < x.length; i++) s += x[i] * W[i * out + o];
      y[o] = s;
    }
    return y;
  };
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  let xs = tokens.map((t, pos) =>
    Float64Array.from({ length: D }, (_, i) => get('wte.weight')[t * D + i] + get('wpe.weight')[pos * D + i]),
  );
  if (layers) layers.states = [xs];
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}.`;
    const qkv = xs.map((x) =>
      conv(
        layerNorm(x, get(p + 'ln_1.weight'), get(p + 'ln_1.bias')),
        get(p + 'attn.c_attn.weight'),
        get(p + 'attn.c_attn.bias'),
        3 * D,
      ),
    );
    const attnOut = xs.map((_, t) => {
      const out = new Float64Array(D);
      for (let h = 0; h < H; h++) {
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qkv[t][h * hd + i] * qkv[s][D + h * hd + i];
          return dot / Math.sqrt(hd);
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((a, s) => {
          for (let i = 0; i < hd; i++) out[h * hd + i] += (a / z) * qkv[s][2 * D + h * hd + i];
        });
      }
      return conv(out, get(p + 'attn.c_proj.weight'), get(p + 'attn.c_proj.bias'), D);
    });
    xs = xs.map((x, t) => x.map((v, i) => v + attnOut[t][i]));
    xs = xs.map((x) => {
      const h1 = conv(
        layerNorm(x, get(p + 'ln_2.weight'), get(p + 'ln_2.bias')),
        get(p + 'mlp.c_fc.weight'),
        get(p + 'mlp.c_fc.bias'),
        4 * D,
      ).map(gelu);
      const h2 = conv(h1, get(p + 'mlp.c_proj.weight'), get(p + 'mlp.c_proj.bias'), D);
      return x.map((v, i) => v + h2[i]);
    });
    if (layers && l < cfg.n_layer - 1) layers.states.push(xs);
  }
  const finalNorm = (x: Float64Array) => layerNorm(x, get('ln_f.weight'), get('ln_f.bias'));
  const head = (f: Float64Array) =>
    Float64Array.from({ length: cfg.vocab_size }, (_, v) => {
      let s = 0;
      for (let i = 0; i < D; i++) s += f[i] * get('wte.weight')[v * D + i];
      return s;
    });
  return finishLayers(xs, finalNorm, head, layers);
}

/** The logits of the last states, and the layer view's states and lenses when asked for. */
export function finishLayers(
  xs: Float64Array[],
  finalNorm: (x: Float64Array) => Float64Array,
  head: (f: Float64Array) => Float64Array,
  layers?: ReferenceLayers,
): Float64Array[] {
  const normed = xs.map(finalNorm);
  const logits = normed.map(head);
  if (layers) {
    layers.lens = layers.states.map((s) => s.map((x) => head(finalNorm(x))));
    layers.states.push(normed);
    layers.lens.push(logits);
  }
  return logits;
}

/** Random GPT-2 weights with the Hugging Face names (optionally "transformer."-prefixed). */
export function randomGpt2Weights(
  cfg: { n_embd: number; n_layer: number; n_head: number; vocab_size: number; n_positions: number },
  r: () => number,
  scale = 0.2,
): Weights {
  const D = cfg.n_embd;
  const t = (shape: number[], s = scale, offset = 0) => ({
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + s * (2 * r() - 1)),
  });
  const w: Weights = {
    'wte.weight': t([cfg.vocab_size, D]),
    'wpe.weight': t([cfg.n_positions, D]),
    'ln_f.weight': t([D], 0.1, 1),
    'ln_f.bias': t([D], 0.1),
  };
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}.`;
    Object.assign(w, {
      [p + 'ln_1.weight']: t([D], 0.1, 1),
      [p + 'ln_1.bias']: t([D], 0.1),
      [p + 'attn.c_attn.weight']: t([D, 3 * D]),
      [p + 'attn.c_attn.bias']: t([3 * D], 0.05),
      [p + 'attn.c_proj.weight']: t([D, D]),
      [p + 'attn.c_proj.bias']: t([D], 0.05),
      [p + 'ln_2.weight']: t([D], 0.1, 1),
      [p + 'ln_2.bias']: t([D], 0.1),
      [p + 'mlp.c_fc.weight']: t([D, 4 * D]),
      [p + 'mlp.c_fc.bias']: t([4 * D], 0.05),
      [p + 'mlp.c_proj.weight']: t([4 * D, D]),
      [p + 'mlp.c_proj.bias']: t([D], 0.05),
    });
  }
  return w;
}
