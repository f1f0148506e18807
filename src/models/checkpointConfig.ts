/**
 * Which config.json keys each checkpoint architecture understands. A key that changes the
 * computation is either built exactly or the load fails naming the key and its value: a
 * number computed without it would look right and be wrong.
 *
 * Per architecture, every key is one of:
 * - understood: the graph builder implements it (values it cannot build are refused below);
 * - inert: it does not change a forward pass at inference (ids, dtype, dropout, init, …).
 * Any other key is refused, so a new option of a new checkpoint is never ignored silently.
 */
import { ModelLoadError } from '../core/errors';
import { ropeType } from './builder/rope';

export type Architecture = 'llama' | 'gpt2' | 'gemma3';

/** Keys that never change an inference forward pass, whatever the architecture. */
const INERT = [
  'architectures',
  'model_type',
  '_name_or_path',
  'transformers_version',
  'torch_dtype',
  'dtype',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'use_cache',
  'initializer_range',
  'initializer_factor',
  'attention_dropout',
  'hidden_dropout',
  'embd_pdrop',
  'attn_pdrop',
  'resid_pdrop',
  'summary_activation',
  'summary_first_dropout',
  'summary_proj_to_labels',
  'summary_type',
  'summary_use_proj',
  'task_specific_params',
  'tokenizer_class',
  'is_decoder',
  'pretraining_tp', // splits matrix products into slices: the same sums
  'reorder_and_upcast_attn', // GPT-2: computes the attention in float32, which this graph does anyway
  'auto_map',
  'id2label',
  'label2id',
  'generation_config',
  'cache_implementation', // Gemma: how generate caches keys and values
];

/** The keys every rotary decoder family (Llama's and Gemma's) builds from. */
const DECODER_KEYS = [
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'vocab_size',
  'max_position_embeddings',
  'rms_norm_eps',
  'rope_theta',
  'rope_scaling',
  'tie_word_embeddings',
];

const UNDERSTOOD: Record<Architecture, string[]> = {
  llama: [
    ...DECODER_KEYS,
    'hidden_act',
    'attention_bias',
    'mlp_bias',
    'sliding_window',
    'use_sliding_window',
    'max_window_layers',
    'layer_types',
    // Phi-3: the pretrained context, read only by LongRoPE (refused above unless rope_scaling is null)
    'original_max_position_embeddings',
  ],
  gemma3: [
    ...DECODER_KEYS,
    'rope_local_base_freq',
    'query_pre_attn_scalar',
    'sliding_window',
    'sliding_window_pattern',
    '_sliding_window_pattern',
    'layer_types',
    'attn_logit_softcapping',
    'final_logit_softcapping',
    'hidden_activation',
    'hidden_act',
    'attention_bias',
    'use_bidirectional_attention',
  ],
  gpt2: [
    'n_embd',
    'n_layer',
    'n_head',
    'n_positions',
    'n_ctx',
    'n_inner',
    'vocab_size',
    'layer_norm_epsilon',
    'activation_function',
    'scale_attn_weights',
    'scale_attn_by_inverse_layer_idx',
    'tie_word_embeddings',
  ],
};

/** Checks every key of a checkpoint's config.json; throws ModelLoadError naming the first one not computed exactly. */
export function checkCheckpointConfig(architecture: Architecture, config: Record<string, unknown>, model: string): void {
  const refuse = (key: string, why: string): never => {
    throw new ModelLoadError(`${model}: config.json ${key} = ${JSON.stringify(config[key])} ${why}`);
  };
  for (const key of Object.keys(config)) {
    if (INERT.includes(key) || UNDERSTOOD[architecture].includes(key)) continue;
    refuse(key, `is not understood for this architecture; Distill Lens refuses the checkpoint rather than ignore a setting that may change its numbers`);
  }
  const value = (key: string) => config[key];
  if (architecture === 'llama') {
    const rope = ropeType(value('rope_scaling'), model);
    if (value('original_max_position_embeddings') !== undefined && rope !== 'default')
      refuse('original_max_position_embeddings', `with rope_scaling "${rope}" is not supported`);
    if (value('hidden_act') !== undefined && value('hidden_act') !== 'silu') refuse('hidden_act', 'is not supported (only silu)');
    // Qwen2's sliding window applies from layer max_window_layers on: not built yet
    if (value('use_sliding_window') === true) refuse('use_sliding_window', 'is not supported yet (sliding-window attention in some layers only)');
    const window = value('sliding_window');
    if (window !== undefined && window !== null && value('use_sliding_window') !== false && !(Number.isInteger(window) && (window as number) > 0))
      refuse('sliding_window', 'must be a positive integer or null');
    const layerTypes = value('layer_types');
    if (layerTypes !== undefined && !(Array.isArray(layerTypes) && layerTypes.every((t) => t === 'full_attention')))
      refuse('layer_types', 'is not supported yet (only full_attention in every layer)');
  } else if (architecture === 'gemma3') {
    ropeType(value('rope_scaling'), model);
    for (const key of ['hidden_activation', 'hidden_act'])
      if (value(key) !== undefined && value(key) !== 'gelu_pytorch_tanh') refuse(key, 'is not supported (only gelu_pytorch_tanh)');
    if (value('attention_bias') === true) refuse('attention_bias', 'is not supported for Gemma 3');
    if (value('use_bidirectional_attention') === true) refuse('use_bidirectional_attention', 'is not supported (causal attention only)');
    const layerTypes = value('layer_types');
    if (layerTypes !== undefined && !(Array.isArray(layerTypes) && layerTypes.every((t) => t === 'full_attention' || t === 'sliding_attention')))
      refuse('layer_types', 'has a layer type other than full_attention and sliding_attention');
    for (const key of ['attn_logit_softcapping', 'final_logit_softcapping', 'query_pre_attn_scalar', 'rope_local_base_freq'])
      if (value(key) !== undefined && value(key) !== null && !(typeof value(key) === 'number' && (value(key) as number) > 0)) refuse(key, 'must be a positive number or null');
  } else {
    const act = value('activation_function');
    if (act !== undefined && act !== 'gelu_new') refuse('activation_function', 'is not supported (only gelu_new, GPT-2\'s tanh GELU)');
    if (value('scale_attn_weights') === false) refuse('scale_attn_weights', 'is not supported (attention scores are divided by √head size)');
    if (value('scale_attn_by_inverse_layer_idx') === true) refuse('scale_attn_by_inverse_layer_idx', 'is not supported');
    if (value('tie_word_embeddings') === false) refuse('tie_word_embeddings', 'is not supported for GPT-2 (its head is the token embedding)');
  }
}

/**
 * The rotary settings of a config written by transformers 5 (`rope_parameters`, with
 * rope_theta inside, per layer type for Gemma) in the older keys the builders read
 * (rope_theta, rope_scaling, rope_local_base_freq). Configs without it are returned as they are.
 */
export function withOlderRopeKeys(config: Record<string, unknown>, model: string): Record<string, unknown> {
  const parameters = config.rope_parameters as Record<string, any> | undefined | null;
  if (parameters === undefined || parameters === null) return config;
  const { rope_parameters: _, ...rest } = config;
  if (typeof parameters !== 'object')
    throw new ModelLoadError(`${model}: config.json rope_parameters ${JSON.stringify(parameters)} is not an object`);
  // one layer type's parameters: θ, and the scaling (null when it is the default rotation)
  const split = (p: Record<string, unknown>, where: string) => {
    if (typeof p !== 'object' || p === null || typeof p.rope_theta !== 'number')
      throw new ModelLoadError(`${model}: config.json rope_parameters${where} has no rope_theta`);
    const { rope_theta: theta, ...scaling } = p;
    const isDefault = (scaling.rope_type ?? 'default') === 'default' && Object.keys(scaling).every((k) => k === 'rope_type');
    return { theta, scaling: isDefault ? null : scaling };
  };
  if ('full_attention' in parameters || 'sliding_attention' in parameters) {
    // per layer type (Gemma): the global layers' rotation, and the local layers' base
    const full = split(parameters.full_attention, '.full_attention');
    const local = split(parameters.sliding_attention, '.sliding_attention');
    if (local.scaling !== null)
      throw new ModelLoadError(`${model}: config.json rope_parameters.sliding_attention scales the local layers' rotation (${JSON.stringify(local.scaling)}), which is not supported`);
    return { ...rest, rope_theta: full.theta, rope_scaling: full.scaling, rope_local_base_freq: local.theta };
  }
  const all = split(parameters, '');
  return { ...rest, rope_theta: all.theta, rope_scaling: all.scaling };
}

/** The sliding window the graph applies (Mistral's `sliding_window`; none when unset or switched off). */
export function slidingWindow(config: Record<string, unknown>): number | undefined {
  const window = config.sliding_window;
  if (config.use_sliding_window === false || typeof window !== 'number') return undefined;
  return window;
}
