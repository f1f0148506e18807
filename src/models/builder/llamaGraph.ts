/**
 * LlamaForCausalLM (Llama 2/3, SmolLM, TinyLlama), Qwen2ForCausalLM (q/k/v biases),
 * Qwen3ForCausalLM (RMSNorm of each query and key head before the rotation, explicit
 * head_dim), MistralForCausalLM (sliding-window attention) and Phi3ForCausalLM (fused
 * qkv_proj and gate_up_proj, split in the graph) as an ONNX graph. The config keys it reads
 * are checked first by models/checkpointConfig.ts: anything else is refused there.
 */
import { GraphBuilder } from '../../onnx/graphBuilder';
import type { ModelWeights } from './weights';
import { LOGITS_ROWS, type DecoderConfig, bufferCache, causalAttention, causalMask, inputDims, keyValueCache, linear, mergeHeads, repeatKv, rmsNorm, rotaryEmbedding, silu, splitHeads } from './transformerOps';
import { rotaryPlan } from './rope';
import { addLayerViewOutputs, type LayerReference } from './layerView';

export interface LlamaConfig extends DecoderConfig {
  tie_word_embeddings?: boolean;
  /** Llama / Mistral: biases on q, k, v and o */
  attention_bias?: boolean;
  /** Llama: biases on the feed-forward projections */
  mlp_bias?: boolean;
  architectures?: string[];
  model_type?: string;
}

export interface LlamaGraphOptions {
  /** per layer: attention sees at most this many positions back, the current one included; undefined: all (checkpointConfig.layerWindows) */
  layerWindows?: (number | undefined)[];
  /**
   * incremental decoding (inference graphs): 'buffers', the cache the caller owns
   * (transformerOps.bufferCache); 'present', the past_key_values / present layout of
   * transformers.js and Optimum exports (tests use it to stand for such an export)
   */
  kvCache?: 'buffers' | 'present';
  /** the layer view's outputs (layerView.ts), against the teacher's logits or the model's own */
  layerView?: LayerReference;
  /** told the L + 1 hidden states [N, D] (Hugging Face convention), for a loss on them */
  onStates?: (states: string[]) => void;
  /** for messages */
  model?: string;
}

/** Builds the graph input_ids [B, L] int64 → logits [B, L, V] float32. */
export function buildLlamaGraph(c: LlamaConfig, w: ModelWeights, o: LlamaGraphOptions = {}): GraphBuilder {
  const g = new GraphBuilder('llama');
  const D = c.hidden_size;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads ?? H;
  const hd = c.head_dim ?? D / H;
  const eps = c.rms_norm_eps ?? 1e-6;
  const ids = g.input('input_ids', 'int64', ['batch', 'length']);
  const cache = o.kvCache === 'present' ? keyValueCache(g, c.num_hidden_layers, KV, hd) : undefined;
  const buffers = o.kvCache === 'buffers' ? bufferCache(g, KV, hd) : undefined;
  const d = { ...inputDims(g, ids), past: cache?.pastLength ?? buffers?.pastLength };

  const embed = w.weight(g, 'model.embed_tokens.weight');
  let x = g.op1('Reshape', [g.op1('Gather', [embed, ids], { axis: 0 }), g.ints([-1, D])]); // [N, D]
  // the hidden states in the Hugging Face convention: the embeddings, each layer's output but the last, the final norm's
  const states = [x];

  // the rotation, with the checkpoint's rope_scaling applied to the frequencies (rope.ts)
  const plan = rotaryPlan(
    {
      headDim: hd,
      theta: c.rope_theta ?? 10000,
      scaling: c.rope_scaling,
      maxPositions: c.max_position_embeddings,
      originalMaxPositions: c.original_max_position_embeddings,
      partialRotaryFactor: c.partial_rotary_factor,
    },
    o.model ?? 'the model',
  );
  const rope = rotaryEmbedding(g, d, plan, 'rope', hd);
  // one mask per distinct window, built once and shared by the layers that use it
  const masks = new Map<number | undefined, string>();
  const maskFor = (window: number | undefined) => {
    if (!masks.has(window)) masks.set(window, causalMask(g, d, window));
    return masks.get(window)!;
  };
  // which projections have biases, as transformers decides: Qwen2 on q, k, v always;
  // Llama and Mistral on q, k, v, o with attention_bias, on the feed-forward with mlp_bias
  const qwen2 = c.model_type === 'qwen2' || (c.architectures ?? []).includes('Qwen2ForCausalLM');
  // Qwen3: q_norm and k_norm, RMSNorm over each head's head_dim values, before the rotation
  const qkNorm = c.model_type === 'qwen3' || (c.architectures ?? []).includes('Qwen3ForCausalLM');
  // Phi-3: one qkv_proj (queries, then keys, then values) and one gate_up_proj (gate, then up)
  const fused = c.model_type === 'phi3' || (c.architectures ?? []).includes('Phi3ForCausalLM');
  const qkvBias = qwen2 || c.attention_bias === true;
  const oBias = !qwen2 && c.attention_bias === true;
  const mlpBias = c.mlp_bias === true;

  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const h = rmsNorm(g, x, w.weight(g, p + 'input_layernorm.weight'), eps);
    const bias = (used: boolean, name: string) => (used ? w.weight(g, p + name + '.bias') : undefined);
    const qkv = fused
      ? g.op('Split', [linear(g, h, w.weight(g, p + 'self_attn.qkv_proj.weight'), undefined, true), g.ints([H * hd, KV * hd, KV * hd])], { axis: -1 }, 3)
      : undefined;
    const proj = (name: 'q_proj' | 'k_proj' | 'v_proj') =>
      qkv ? qkv[['q_proj', 'k_proj', 'v_proj'].indexOf(name)] : linear(g, h, w.weight(g, p + `self_attn.${name}.weight`), bias(qkvBias, `self_attn.${name}`), true);
    const headNorm = (t: string, name: string) =>
      qkNorm ? rmsNorm(g, t, w.weight(g, p + `self_attn.${name}.weight`), eps) : t;
    const q = rope(headNorm(splitHeads(g, proj('q_proj'), d, H, hd), 'q_norm'));
    const kNew = rope(headNorm(splitHeads(g, proj('k_proj'), d, KV, hd), 'k_norm'));
    const vNew = splitHeads(g, proj('v_proj'), d, KV, hd);
    let heads: string;
    if (buffers) heads = buffers.attend(l, d, q, kNew, vNew, H, 1 / Math.sqrt(hd), o.layerWindows?.[l]);
    else {
      // with a cache, the keys and values of every position so far
      const [kAll, vAll] = cache ? cache.extend(l, kNew, vNew) : [kNew, vNew];
      const k = repeatKv(g, kAll, d, KV, H / KV, hd);
      const v = repeatKv(g, vAll, d, KV, H / KV, hd);
      heads = causalAttention(g, q, k, v, maskFor(o.layerWindows?.[l]), hd);
    }
    const attn = mergeHeads(g, heads, H * hd);
    x = g.op1('Add', [x, linear(g, attn, w.weight(g, p + 'self_attn.o_proj.weight'), bias(oBias, 'self_attn.o_proj'), true)]);
    const h2 = rmsNorm(g, x, w.weight(g, p + 'post_attention_layernorm.weight'), eps);
    const mlp = (name: string, input: string) => linear(g, input, w.weight(g, p + `mlp.${name}.weight`), bias(mlpBias, `mlp.${name}`), true);
    const [gateIn, up] = fused
      ? g.op('Split', [linear(g, h2, w.weight(g, p + 'mlp.gate_up_proj.weight'), undefined, true), g.ints([c.intermediate_size, c.intermediate_size])], { axis: -1 }, 2)
      : [mlp('gate_proj', h2), mlp('up_proj', h2)];
    const gate = silu(g, gateIn);
    x = g.op1('Add', [x, mlp('down_proj', g.op1('Mul', [gate, up]))]);
    if (l < c.num_hidden_layers - 1) states.push(x);
  }
  const finalNorm = (t: string) => rmsNorm(g, t, w.weight(g, 'model.norm.weight'), eps);
  x = finalNorm(x);
  states.push(x);
  o.onStates?.(states);
  const head = c.tie_word_embeddings === false || w.has('lm_head.weight') ? w.weight(g, 'lm_head.weight') : embed;
  const logits2d = linear(g, x, head, undefined, true); // [N, V]
  if (o.layerView)
    addLayerViewOutputs(g, states, (x) => linear(g, finalNorm(x), head, undefined, true), logits2d, c.vocab_size, D, o.layerView);
  g.rename(logits2d, LOGITS_ROWS);
  const outShape = g.op1('Concat', [d.batchLen, g.ints([c.vocab_size])], { axis: 0 });
  g.rename(g.op1('Reshape', [logits2d, outShape]), 'logits');
  g.output('logits', 'float32', ['batch', 'length', c.vocab_size]);
  return g;
}
