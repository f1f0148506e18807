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
import { ropeType, rotaryPlan } from './builder/rope';

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
    // Phi-3: the pretrained context, read only by LongRoPE
    'original_max_position_embeddings',
    // Phi-3 (Phi-4-mini): rotate only the first head_dim·factor dimensions of each head
    'partial_rotary_factor',
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
    rotaryPlanOf(config, model);
    if (value('hidden_act') !== undefined && value('hidden_act') !== 'silu') refuse('hidden_act', 'is not supported (only silu)');
    // only Phi-3's attention rotates part of each head; transformers' Llama, Qwen and Mistral
    // attention cannot apply a partial rotation
    const partial = value('partial_rotary_factor');
    if (partial !== undefined && partial !== 1 && familyOf(config) !== 'phi3') refuse('partial_rotary_factor', 'is only supported for Phi-3 (its attention rotates part of each head)');
    if (partial !== undefined && !(typeof partial === 'number' && partial > 0 && partial <= 1)) refuse('partial_rotary_factor', 'must be a number in (0, 1]');
    const window = value('sliding_window');
    if (window !== undefined && window !== null && !(Number.isInteger(window) && (window as number) > 0))
      refuse('sliding_window', 'must be a positive integer or null');
    const layerTypes = value('layer_types');
    if (layerTypes !== undefined) {
      if (!(Array.isArray(layerTypes) && layerTypes.every((t) => t === 'full_attention' || t === 'sliding_attention')))
        refuse('layer_types', 'has a layer type other than full_attention and sliding_attention');
      if ((layerTypes as unknown[]).length !== value('num_hidden_layers')) refuse('layer_types', `does not list one type per layer (num_hidden_layers = ${value('num_hidden_layers')})`);
      if ((layerTypes as unknown[]).includes('sliding_attention') && typeof window !== 'number') refuse('layer_types', 'has sliding_attention layers but sliding_window is not set');
    }
    if (value('use_sliding_window') === true && typeof window !== 'number') refuse('use_sliding_window', 'is true but sliding_window is not set');
    for (const key of ['max_window_layers', 'max_position_embeddings', 'original_max_position_embeddings'])
      if (value(key) !== undefined && value(key) !== null && !(Number.isInteger(value(key)) && (value(key) as number) >= 0)) refuse(key, 'must be a non-negative integer');
  } else if (architecture === 'gemma3') {
    ropeType(value('rope_scaling'), model);
    rotaryPlanOf(config, model);
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

/** The rotation the config asks for, computed now so that a value it cannot build is refused at load. */
function rotaryPlanOf(config: Record<string, unknown>, model: string): void {
  const heads = config.num_attention_heads as number;
  const headDim = (config.head_dim as number | undefined) ?? (config.hidden_size as number) / heads;
  rotaryPlan(
    {
      headDim,
      theta: (config.rope_theta as number | undefined) ?? 10000,
      scaling: config.rope_scaling,
      maxPositions: config.max_position_embeddings as number | undefined,
      originalMaxPositions: config.original_max_position_embeddings as number | undefined,
      partialRotaryFactor: config.partial_rotary_factor as number | undefined,
    },
    model,
  );
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

/**
 * The sliding window of each layer of a Llama-family checkpoint (undefined: full causal
 * attention), as transformers decides it: `layer_types` when the config lists them
 * ("sliding_attention" layers use `sliding_window`); else Qwen2 / Qwen3 slide from layer
 * `max_window_layers` on when `use_sliding_window` is true; Llama has no window; Mistral and
 * Phi-3 slide in every layer when `sliding_window` is set.
 */
export function layerWindows(config: Record<string, unknown>): (number | undefined)[] {
  const layers = config.num_hidden_layers as number;
  const window = typeof config.sliding_window === 'number' ? config.sliding_window : undefined;
  const types = config.layer_types;
  if (Array.isArray(types)) return types.map((t) => (t === 'sliding_attention' ? window : undefined));
  const family = familyOf(config);
  if (family === 'qwen2' || family === 'qwen3') {
    const from = typeof config.max_window_layers === 'number' ? config.max_window_layers : 28;
    return Array.from({ length: layers }, (_, l) => (config.use_sliding_window === true && l >= from ? window : undefined));
  }
  if (family === 'llama') return Array.from({ length: layers }, () => undefined);
  return Array.from({ length: layers }, () => (config.use_sliding_window === false ? undefined : window));
}

/** The transformers family of a Llama-architecture checkpoint: model_type, else from the architecture's name. */
export function familyOf(config: Record<string, unknown>): string {
  if (typeof config.model_type === 'string') return config.model_type;
  const arch = ((config.architectures as string[] | undefined) ?? [])[0] ?? '';
  return arch.replace(/ForCausalLM$/, '').toLowerCase();
}
