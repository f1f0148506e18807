/**
 * Gemma3ForCausalLM (the text models, model_type gemma3_text) as an ONNX graph, following
 * transformers' modeling_gemma3:
 *
 *   x = embed(ids) · √hidden_size
 *   per layer:  h = x + post_attention_norm(attention(input_norm(x)))
 *               x = h + post_feedforward_norm(down(gelu_tanh(gate(n)) · up(n))),  n = pre_feedforward_norm(h)
 *   logits = head(norm(x)), then cap · tanh(logits / cap) when final_logit_softcapping is set
 *
 * Every norm is Gemma's RMSNorm, x / √(mean(x²) + ε) · (1 + w). Attention: RMSNorm of each
 * query and key head (q_norm, k_norm) before the rotation, scores scaled by
 * query_pre_attn_scalar^−½ (not head_dim^−½), soft-capped when attn_logit_softcapping is set.
 * Layers are "sliding_attention" (window sliding_window, rotary base rope_local_base_freq,
 * no scaling) or "full_attention" (rope_theta with rope_scaling), from layer_types or, in
 * older configs, every sliding_window_pattern-th layer full.
 */
import { GraphBuilder } from '../../onnx/graphBuilder';
import type { ModelWeights } from './weights';
import {
  LOGITS_ROWS,
  type DecoderConfig,
  causalMask,
  geluTanh,
  inputDims,
  linear,
  mergeHeads,
  repeatKv,
  rmsNorm,
  bufferCache,
  rotaryEmbedding,
  slidingWindowMask,
  splitHeads,
} from './transformerOps';
import { rotaryPlan } from './rope';
import { addLayerViewOutputs, type LayerReference } from './layerView';

export interface GemmaConfig extends DecoderConfig {
  rope_local_base_freq?: number;
  query_pre_attn_scalar?: number;
  sliding_window?: number | null;
  sliding_window_pattern?: number;
  layer_types?: string[];
  attn_logit_softcapping?: number | null;
  final_logit_softcapping?: number | null;
}

/** Whether each layer uses the sliding window (layer_types, or the older pattern: every n-th layer full). */
export function gemmaSlidingLayers(c: GemmaConfig): boolean[] {
  if (c.layer_types) return c.layer_types.map((t) => t === 'sliding_attention');
  const pattern = c.sliding_window_pattern ?? 6;
  return Array.from({ length: c.num_hidden_layers }, (_, l) => (l + 1) % pattern !== 0);
}

/** Builds the graph input_ids [B, L] int64 → logits [B, L, V] float32. */
export function buildGemmaGraph(c: GemmaConfig, w: ModelWeights, o: { model?: string; kvCache?: 'buffers'; layerView?: LayerReference; onStates?: (states: string[]) => void } = {}): GraphBuilder {
  const g = new GraphBuilder('gemma3');
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads ?? H;
  const hd = c.head_dim ?? D / H;
  const eps = c.rms_norm_eps ?? 1e-6;
  const model = o.model ?? 'the model';
  const ids = g.input('input_ids', 'int64', ['batch', 'length']);
  // incremental decoding: the cache in buffers the caller owns (transformerOps.bufferCache)
  const buffers = o.kvCache === 'buffers' ? bufferCache(g, KV, hd) : undefined;
  const d = { ...inputDims(g, ids), past: buffers?.pastLength };

  // Gemma's RMSNorm multiplies by (1 + w)
  const norm = (x: string, name: string) => rmsNorm(g, x, g.op1('Add', [w.weight(g, name), g.scalar(1)]), eps);
  const embed = w.weight(g, 'model.embed_tokens.weight');
  const gathered = g.op1('Reshape', [g.op1('Gather', [embed, ids], { axis: 0 }), g.ints([-1, D])]); // [N, D]
  // the scale as a float32 number, as the float32 model applies it
  let x = g.op1('Mul', [gathered, g.scalar(Math.fround(Math.sqrt(D)))]);
  // the hidden states in the Hugging Face convention: the (scaled) embeddings, each layer's output but the last, the final norm's
  const states = [x];

  const sliding = gemmaSlidingLayers(c);
  const window = c.sliding_window ?? undefined;
  const rotary = (theta: number, scaling: unknown) =>
    rotaryPlan({ headDim: hd, theta, scaling, maxPositions: c.max_position_embeddings }, model);
  const globalRope = rotaryEmbedding(g, d, rotary(c.rope_theta ?? 1e6, c.rope_scaling), 'rope_global', hd);
  const localRope = rotaryEmbedding(g, d, rotary(c.rope_local_base_freq ?? 10000, null), 'rope_local', hd);
  // the masks of the graph without a cache (the cached attention builds its own)
  const fullMask = buffers ? '' : causalMask(g, d);
  const windowMask = buffers ? '' : window ? slidingWindowMask(g, d, window) : fullMask;
  const scale = Math.pow(c.query_pre_attn_scalar ?? hd, -0.5);
  const softcap = (t: string, cap: number | null | undefined) =>
    cap ? g.op1('Mul', [g.op1('Tanh', [g.op1('Mul', [t, g.scalar(1 / cap)])]), g.scalar(cap)]) : t;

  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const rope = sliding[l] ? localRope : globalRope;
    const h = norm(x, p + 'input_layernorm.weight');
    const proj = (name: string, heads: number) => splitHeads(g, linear(g, h, w.weight(g, p + `self_attn.${name}.weight`), undefined, true), d, heads, hd);
    const q = rope(norm(proj('q_proj', H), p + 'self_attn.q_norm.weight'));
    const kNew = rope(norm(proj('k_proj', KV), p + 'self_attn.k_norm.weight'));
    const vNew = proj('v_proj', KV);
    let heads: string;
    if (buffers) heads = buffers.attend(l, d, q, kNew, vNew, H, scale, sliding[l] ? window : undefined, c.attn_logit_softcapping);
    else {
      const k = repeatKv(g, kNew, d, KV, H / KV, hd);
      const v = repeatKv(g, vNew, d, KV, H / KV, hd);
      const kT = g.op1('Transpose', [k], { perm: [0, 1, 3, 2] });
      const scores = softcap(g.op1('Mul', [g.op1('MatMul', [q, kT]), g.scalar(scale)]), c.attn_logit_softcapping);
      const weights = g.op1('Softmax', [g.op1('Add', [scores, sliding[l] ? windowMask : fullMask])], { axis: -1 });
      heads = g.op1('MatMul', [weights, v]);
    }
    const attn = mergeHeads(g, heads, H * hd);
    const attnOut = linear(g, attn, w.weight(g, p + 'self_attn.o_proj.weight'), undefined, true);
    x = g.op1('Add', [x, norm(attnOut, p + 'post_attention_layernorm.weight')]);
    const n = norm(x, p + 'pre_feedforward_layernorm.weight');
    const gate = geluTanh(g, linear(g, n, w.weight(g, p + 'mlp.gate_proj.weight'), undefined, true));
    const up = linear(g, n, w.weight(g, p + 'mlp.up_proj.weight'), undefined, true);
    const mlpOut = linear(g, g.op1('Mul', [gate, up]), w.weight(g, p + 'mlp.down_proj.weight'), undefined, true);
    x = g.op1('Add', [x, norm(mlpOut, p + 'post_feedforward_layernorm.weight')]);
    if (l < c.num_hidden_layers - 1) states.push(x);
  }
  x = norm(x, 'model.norm.weight');
  states.push(x);
  o.onStates?.(states);
  // the head is the token embedding (Gemma ties them), unless the checkpoint has its own
  const head = w.has('lm_head.weight') ? w.weight(g, 'lm_head.weight') : embed;
  const logits2d = softcap(linear(g, x, head, undefined, true), c.final_logit_softcapping); // [N, V]
  if (o.layerView)
    addLayerViewOutputs(
      g,
      states,
      (x) => softcap(linear(g, norm(x, 'model.norm.weight'), head, undefined, true), c.final_logit_softcapping),
      logits2d,
      c.vocab_size,
      D,
      o.layerView,
    );
  g.rename(logits2d, LOGITS_ROWS);
  const outShape = g.op1('Concat', [d.batchLen, g.ints([c.vocab_size])], { axis: 0 });
  g.rename(g.op1('Reshape', [logits2d, outShape]), 'logits');
  g.output('logits', 'float32', ['batch', 'length', c.vocab_size]);
  return g;
}
