/**
 * Real model families as their checkpoints configure them: every config key that changes the
 * numbers is built exactly (checked against the float64 reference written from transformers'
 * semantics) or refused by name. Random weights in the Hugging Face layout, texts longer than
 * the original context or sliding window that the config names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/models/safetensors';
import { resolveModel } from '../../src/models/modelSource';
import { ModelLoadError } from '../../src/core/errors';
import { demoPair, maxLogitError, tempDir } from '../helpers';
import { rng } from '../reference/kdReference';
import { randomLlamaWeights, referenceLlamaHf, type HfLlamaConfig } from '../reference/llamaHfReference';
import { randomGemmaWeights, referenceGemma, type HfGemmaConfig } from '../reference/gemmaReference';

const BASE: HfLlamaConfig & { intermediate_size: number } = {
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4, // head size 16: eight rotated pairs, wavelengths from 6 to about 5e4 positions
  num_key_value_heads: 2,
  vocab_size: 4096,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  tie_word_embeddings: true,
};

/** A checkpoint folder in the Hugging Face layout: config.json, weights, the built-in tokenizer. */
function checkpoint(name: string, config: Record<string, unknown>, weights?: ReturnType<typeof randomLlamaWeights>): string {
  const folder = path.join(tempDir(), name);
  fs.mkdirSync(folder);
  if (weights) writeSafetensors(path.join(folder, 'model.safetensors'), weights);
  else fs.writeFileSync(path.join(folder, 'model.safetensors'), '');
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  return folder;
}

/** Llama-layout weights (no biases: LlamaForCausalLM has none unless attention_bias is set). */
function llamaWeights(c: typeof BASE, seed: number) {
  const w = randomLlamaWeights(c, rng(seed));
  for (const k of Object.keys(w)) if (k.endsWith('.bias') || (c.tie_word_embeddings && k === 'lm_head.weight')) delete w[k];
  return w;
}

/** 80 tokens: longer than the original context (64) and the sliding window (24) used below. */
const TOKENS = Array.from({ length: 80 }, (_, i) => (i * 797 + 13) % 4096);

/** Rounds every weight to bfloat16 (round to nearest even), as a bf16 checkpoint holds them. */
function toBf16(w: ReturnType<typeof randomLlamaWeights>): ReturnType<typeof randomLlamaWeights> {
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  const round = (v: number) => {
    f[0] = v;
    const lower = bits[0] & 0xffff;
    const upper = bits[0] >>> 16;
    const up = lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1);
    bits[0] = ((upper + (up ? 1 : 0)) << 16) >>> 0;
    return f[0];
  };
  return Object.fromEntries(Object.entries(w).map(([k, t]) => [k, { shape: t.shape, data: t.data.map(round) }]));
}

/**
 * Writes bf16-exact weights as a sharded bf16 checkpoint, the hub's layout: two
 * model-0000N-of-00002.safetensors files (written here byte by byte) and the index.
 */
function writeShardedBf16(folder: string, w: ReturnType<typeof randomLlamaWeights>): void {
  const names = Object.keys(w).sort();
  const shards = [names.filter((_, i) => i % 2 === 0), names.filter((_, i) => i % 2 === 1)];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, s) => {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    const chunks: Buffer[] = [];
    for (const name of shard) {
      const data = Buffer.alloc(2 * w[name].data.length);
      // the upper half of each float32 is its bf16 (exact: the values are bf16 already)
      const u32 = new Uint32Array(w[name].data.buffer, w[name].data.byteOffset, w[name].data.length);
      u32.forEach((v, i) => data.writeUInt16LE(v >>> 16, 2 * i));
      header[name] = { dtype: 'BF16', shape: w[name].shape, data_offsets: [offset, offset + data.length] };
      offset += data.length;
      chunks.push(data);
      weightMap[name] = file;
    }
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(folder, file), Buffer.concat([length, json, ...chunks]));
  });
  fs.writeFileSync(
    path.join(folder, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
}

const maxDifference = (a: Float64Array[], b: Float64Array[]) =>
  Math.max(...a.map((row, t) => Math.max(...row.map((v, i) => Math.abs(v - b[t][i])))));

for (const scaling of [
  // Llama 3.1 / 3.2's scaling with a small original context: all three frequency regimes occur
  { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  { rope_type: 'linear', factor: 4 },
]) {
  test(`rope_scaling "${scaling.rope_type}" is built exactly (text longer than the original context)`, async () => {
    const c = { ...BASE, rope_scaling: scaling };
    const w = llamaWeights(c, 11);
    const folder = checkpoint(`llama-${scaling.rope_type}`, {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      max_position_embeddings: 512,
      hidden_act: 'silu',
      attention_bias: false,
      mlp_bias: false,
      torch_dtype: 'bfloat16',
      bos_token_id: 1,
      eos_token_id: 2,
      ...c,
    }, w);
    const ref = referenceLlamaHf(w, c, TOKENS);
    const err = await maxLogitError(folder, TOKENS, ref);
    assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
    // the scaling matters at these positions: ignoring it would be far off
    const unscaled = referenceLlamaHf(w, { ...c, rope_scaling: undefined }, TOKENS);
    assert.ok(maxDifference(ref, unscaled) > 1e-2, 'the test can tell the scaling from none');
  });
}

test("Mistral's sliding window is built exactly (text longer than the window)", async () => {
  const c = { ...BASE, rope_theta: 10000, sliding_window: 24 };
  const w = llamaWeights(c, 12);
  const folder = checkpoint('mistral', {
    architectures: ['MistralForCausalLM'],
    model_type: 'mistral',
    max_position_embeddings: 512,
    hidden_act: 'silu',
    ...c,
  }, w);
  const ref = referenceLlamaHf(w, c, TOKENS);
  const err = await maxLogitError(folder, TOKENS, ref);
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  const full = referenceLlamaHf(w, { ...c, sliding_window: undefined }, TOKENS);
  assert.ok(maxDifference(ref, full) > 1e-2, 'the test can tell the window from full attention');
});

for (const [label, scaling] of [
  // Qwen3's long-context recipe: factor 4 over an original context (32 here), mscale attention factor
  ['yarn (factor, original context)', { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 }],
  // DeepSeek / gpt-oss style: both mscales, no rounding of the correction range, other betas
  [
    'yarn (mscale, mscale_all_dim, truncate false)',
    { rope_type: 'yarn', factor: 8, original_max_position_embeddings: 40, beta_fast: 16, beta_slow: 2, mscale: 1.2, mscale_all_dim: 0.6, truncate: false },
  ],
  ['yarn (attention_factor given, no original context)', { rope_type: 'yarn', factor: 2, attention_factor: 1.3 }],
] as const) {
  test(`rope_scaling ${label} is built exactly`, async () => {
    const c = { ...BASE, rope_theta: 10000, max_position_embeddings: 128, qk_norm: true, rope_scaling: { ...scaling } };
    const w = llamaWeights(c, 16);
    const folder = checkpoint('yarn', { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', ...c, qk_norm: undefined, use_sliding_window: false }, w);
    const ref = referenceLlamaHf(w, c, TOKENS);
    const err = await maxLogitError(folder, TOKENS, ref);
    assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
    const unscaled = referenceLlamaHf(w, { ...c, rope_scaling: undefined }, TOKENS);
    assert.ok(maxDifference(ref, unscaled) > 1e-2, 'the test can tell the scaling from none');
  });
}

test("Phi-3's LongRoPE (short factors up to the original context, long beyond) with a partial rotation is built exactly", async () => {
  // head size 16, partial_rotary_factor 0.5: 8 rotated dimensions, 4 pairs, each with its own factor
  const c = {
    ...BASE,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 512,
    original_max_position_embeddings: 32,
    partial_rotary_factor: 0.5,
    rope_scaling: { rope_type: 'longrope', short_factor: [1, 1.5, 2.5, 4], long_factor: [1.2, 3, 9, 30] },
  };
  const w = llamaWeights(c, 17);
  const fused: typeof w = {};
  for (const [name, t] of Object.entries(w)) {
    const m = /^(model\.layers\.\d+\.)(self_attn\.q_proj|mlp\.gate_proj)\.weight$/.exec(name);
    const parts = !m ? undefined : m[2] === 'self_attn.q_proj' ? ['q_proj', 'k_proj', 'v_proj'].map((n) => w[`${m[1]}self_attn.${n}.weight`]) : ['gate_proj', 'up_proj'].map((n) => w[`${m[1]}mlp.${n}.weight`]);
    if (/(self_attn\.(k|v)_proj|mlp\.up_proj)\.weight$/.test(name)) continue;
    if (!m || !parts) fused[name] = t;
    else {
      const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
      parts.reduce((at, p) => (data.set(p.data, at), at + p.data.length), 0);
      fused[`${m[1]}${m[2] === 'self_attn.q_proj' ? 'self_attn.qkv_proj' : 'mlp.gate_up_proj'}.weight`] = { shape: [parts.reduce((n, p) => n + p.shape[0], 0), parts[0].shape[1]], data };
    }
  }
  const folder = checkpoint('phi3-longrope', { architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_act: 'silu', sliding_window: 262144, ...c }, fused);
  for (const tokens of [TOKENS, TOKENS.slice(0, 30)]) {
    const ref = referenceLlamaHf(w, c, tokens);
    const err = await maxLogitError(folder, tokens, ref);
    assert.ok(err < 1e-4, `${tokens.length} tokens: max |logit − reference| = ${err}`);
  }
  // the two regimes differ, so each length tells whether the right factors ran
  const shortOnly = referenceLlamaHf(w, { ...c, rope_scaling: { ...c.rope_scaling, long_factor: c.rope_scaling.short_factor } }, TOKENS);
  assert.ok(maxDifference(referenceLlamaHf(w, c, TOKENS), shortOnly) > 1e-2, 'the test can tell the long factors from the short ones');
  const fullRotation = referenceLlamaHf(w, { ...c, partial_rotary_factor: 1, rope_scaling: undefined }, TOKENS.slice(0, 30));
  assert.ok(maxDifference(referenceLlamaHf(w, c, TOKENS.slice(0, 30)), fullRotation) > 1e-2, 'the test can tell the partial rotation from a full one');
});

test("Qwen2's sliding window from layer max_window_layers on (use_sliding_window) is built exactly", async () => {
  const c = { ...BASE, rope_theta: 10000, sliding_window: 24 };
  const w = llamaWeights(c, 18);
  const folder = checkpoint('qwen2-window', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: true, max_window_layers: 1, max_position_embeddings: 512, ...c }, w);
  // Qwen2 always has q/k/v biases: write them as zeros so the reference (no biases) is the same model
  const withBiases = { ...w };
  for (let l = 0; l < c.num_hidden_layers; l++)
    for (const [n, size] of [['q', 64], ['k', 32], ['v', 32]] as const)
      withBiases[`model.layers.${l}.self_attn.${n}_proj.bias`] = { shape: [size], data: new Float32Array(size) };
  writeSafetensors(path.join(folder, 'model.safetensors'), withBiases);
  const ref = referenceLlamaHf(w, { ...c, sliding_window: undefined, layer_windows: [undefined, 24] }, TOKENS);
  const err = await maxLogitError(folder, TOKENS, ref);
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  const everyLayer = referenceLlamaHf(w, c, TOKENS);
  assert.ok(maxDifference(ref, everyLayer) > 1e-2, 'the test can tell the first layer\'s full attention from a window');
});

test('config keys that change the numbers and are not built are refused by name, never ignored', async () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...BASE, max_position_embeddings: 512 };
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ rope_scaling: { rope_type: 'su', factor: 4 } }, /rope_scaling type "su" is not supported yet/],
    [{ rope_scaling: { rope_type: 'yarn', factor: 4, extrapolation_factor: 1 } }, /rope_scaling has extrapolation_factor = 1, which the "yarn" scaling does not use/],
    [{ rope_scaling: { rope_type: 'yarn', factor: 4, truncate: 'no' } }, /rope_scaling\.truncate must be true or false/],
    [
      { rope_scaling: { type: 'dynamic', factor: 2, original_max_position_embeddings: 64 } },
      /rope_scaling has original_max_position_embeddings = 64, which the "dynamic" scaling does not use/,
    ],
    [{ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] }, original_max_position_embeddings: 64 }, /rope_scaling\.short_factor has 1 entries; the "longrope" scaling needs one per rotated pair \(8\)/],
    [{ rope_scaling: { rope_type: 'longrope', short_factor: [1, 2], long_factor: 'x' } }, /rope_scaling\.long_factor must be a list of positive numbers/],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, /rope_scaling\.original_max_position_embeddings must be a number/],
    [{ rope_scaling: { rope_type: 'linear', factor: 2, attention_factor: 1.2 } }, /rope_scaling has attention_factor = 1\.2, which the "linear" scaling does not use/],
    [{ attn_logit_softcapping: 50 }, /config\.json attn_logit_softcapping = 50 is not understood/],
    [{ partial_rotary_factor: 0.5 }, /partial_rotary_factor = 0\.5 is only supported for Phi-3/],
    [{ architectures: ['Phi3ForCausalLM'], model_type: 'phi3', partial_rotary_factor: 0.1 }, /partial_rotary_factor = 0\.1 gives 1 rotated dimensions of 16/],
    [{ hidden_act: 'gelu' }, /hidden_act = "gelu" is not supported/],
    [{ quantization_config: { quant_method: 'gptq' } }, /quantization_config = .* is not understood/],
    [{ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: true, sliding_window: null }, /use_sliding_window = true is true but sliding_window is not set/],
    [{ layer_types: ['full_attention', 'chunked_attention'], sliding_window: 8 }, /layer_types = .* has a layer type other than full_attention and sliding_attention/],
    [{ layer_types: ['full_attention'] }, /layer_types = .* does not list one type per layer/],
  ];
  for (const [extra, message] of refused) {
    const folder = checkpoint('refused', { ...base, ...extra });
    await assert.rejects(resolveModel(folder), (e: Error) => e instanceof ModelLoadError && message.test(e.message), JSON.stringify(extra));
  }
  // what Qwen2 and Llama 3 checkpoints carry besides the architecture is accepted
  for (const extra of [
    { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, sliding_window: 131072, max_window_layers: 28 },
    { rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, pretraining_tp: 1, mlp_bias: false, attention_bias: false, head_dim: 16 },
  ]) {
    const folder = checkpoint('accepted', { ...base, ...extra });
    assert.equal((await resolveModel(folder)).kind, 'checkpoint', JSON.stringify(extra));
  }
});

test('Qwen3 (q/k RMSNorm per head, explicit head_dim, tied head) from a sharded bf16 checkpoint is built exactly', async () => {
  // head_dim 24 while hidden / heads = 16, as Qwen3 sets it explicitly
  const c = { ...BASE, rope_theta: 1000000, head_dim: 24, qk_norm: true, rms_norm_eps: 1e-6 };
  const w = toBf16(llamaWeights(c, 13));
  const folder = checkpoint('qwen3', {
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    max_position_embeddings: 40960,
    hidden_act: 'silu',
    attention_bias: false,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: 28,
    layer_types: ['full_attention', 'full_attention'],
    rope_scaling: null,
    torch_dtype: 'bfloat16',
    ...c,
    qk_norm: undefined,
  });
  fs.rmSync(path.join(folder, 'model.safetensors'));
  writeShardedBf16(folder, w);
  const ref = referenceLlamaHf(w, c, TOKENS);
  const err = await maxLogitError(folder, TOKENS, ref);
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  const withoutNorm = referenceLlamaHf(w, { ...c, qk_norm: false }, TOKENS);
  assert.ok(maxDifference(ref, withoutNorm) > 1e-2, 'the test can tell the head norms from none');
});

test('Phi-3 (fused qkv_proj and gate_up_proj, sliding window, untied head) is built exactly', async () => {
  const c = { ...BASE, rope_theta: 10000, tie_word_embeddings: false, sliding_window: 24 };
  const w = llamaWeights(c, 14);
  // the same weights fused as Phi-3 stores them: rows of q, then k, then v; of gate, then up
  const fusedWeights: typeof w = {};
  const rowsOf = (...names: string[]) => {
    const parts = names.map((n) => w[n]);
    const data = new Float32Array(parts.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of parts) {
      data.set(t.data, at);
      at += t.data.length;
    }
    return { shape: [parts.reduce((n, t) => n + t.shape[0], 0), parts[0].shape[1]], data };
  };
  for (const [name, t] of Object.entries(w)) {
    const m = /^(model\.layers\.\d+\.)(self_attn\.(q|k|v)_proj|mlp\.(gate|up)_proj)\.weight$/.exec(name);
    if (!m) fusedWeights[name] = t;
    else if (m[3] === 'q') fusedWeights[`${m[1]}self_attn.qkv_proj.weight`] = rowsOf(name, `${m[1]}self_attn.k_proj.weight`, `${m[1]}self_attn.v_proj.weight`);
    else if (m[4] === 'gate') fusedWeights[`${m[1]}mlp.gate_up_proj.weight`] = rowsOf(name, `${m[1]}mlp.up_proj.weight`);
  }
  const folder = checkpoint(
    'phi3',
    {
      architectures: ['Phi3ForCausalLM'],
      model_type: 'phi3',
      max_position_embeddings: 4096,
      original_max_position_embeddings: 4096,
      rope_scaling: null,
      hidden_act: 'silu',
      embd_pdrop: 0,
      resid_pdrop: 0,
      attention_dropout: 0,
      ...c,
    },
    fusedWeights,
  );
  const ref = referenceLlamaHf(w, c, TOKENS);
  const err = await maxLogitError(folder, TOKENS, ref);
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
});

test('rope_scaling "dynamic" (NTK) has the default frequencies at every position the graph computes', async () => {
  // transformers raises θ only for sequences longer than max_position_embeddings (128 here);
  // longer texts are analysed in windows of that length
  const c = { ...BASE, rope_theta: 10000 };
  const w = llamaWeights(c, 15);
  const folder = checkpoint(
    'dynamic',
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      max_position_embeddings: 128,
      rope_scaling: { type: 'dynamic', factor: 2 },
      ...c,
    },
    w,
  );
  const err = await maxLogitError(folder, TOKENS, referenceLlamaHf(w, c, TOKENS));
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
});

test('Gemma 3 text (scaled embeddings, (1 + w) norms, local and global layers, soft-capping) is built exactly', async () => {
  const c: HfGemmaConfig = {
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 24, // not hidden / heads, as in Gemma
    vocab_size: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_local_base_freq: 10000,
    rope_scaling: { rope_type: 'linear', factor: 8 }, // as the 4B+ models scale their global layers
    query_pre_attn_scalar: 32, // not head_dim: the scores are scaled by 32^−½
    sliding_window: 16,
    layer_types: ['sliding_attention', 'sliding_attention', 'full_attention'],
    attn_logit_softcapping: 20,
    final_logit_softcapping: 15,
  };
  const w = randomGemmaWeights(c, rng(16));
  const folder = checkpoint(
    'gemma3',
    {
      architectures: ['Gemma3ForCausalLM'],
      model_type: 'gemma3_text',
      max_position_embeddings: 32768,
      hidden_activation: 'gelu_pytorch_tanh',
      attention_bias: false,
      attention_dropout: 0,
      use_bidirectional_attention: false,
      cache_implementation: 'hybrid',
      _sliding_window_pattern: 3,
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      ...c,
    },
    w,
  );
  const ref = referenceGemma(w, c, TOKENS);
  const err = await maxLogitError(folder, TOKENS, ref);
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  assert.ok(Math.max(...ref[40].map(Math.abs)) > 0.5, 'the reference logits are not trivially small');
  const allGlobal = referenceGemma(w, { ...c, layer_types: ['full_attention', 'full_attention', 'full_attention'] }, TOKENS);
  assert.ok(maxDifference(ref, allGlobal) > 1e-2, 'the test can tell local layers from global ones');
  // the multimodal Gemma 3 checkpoints are refused by name
  const multimodal = checkpoint('gemma3-vision', { architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3' });
  await assert.rejects(resolveModel(multimodal), /architecture Gemma3ForConditionalGeneration is not supported/);
});

test('configs written by transformers 5 (rope_parameters, per layer type for Gemma) are read as the older keys', async () => {
  // Llama 3's scaling, with rope_theta inside rope_parameters
  const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const c = { ...BASE, rope_scaling: scaling };
  const w = llamaWeights(c, 11);
  const { rope_theta, rope_scaling: _, ...rest } = c;
  const folder = checkpoint(
    'llama-v5',
    { architectures: ['LlamaForCausalLM'], model_type: 'llama', max_position_embeddings: 512, ...rest, rope_parameters: { rope_theta, ...scaling } },
    w,
  );
  const err = await maxLogitError(folder, TOKENS, referenceLlamaHf(w, c, TOKENS));
  assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  // an unknown key inside rope_parameters is still refused
  const odd = checkpoint('llama-v5-odd', { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...rest, rope_parameters: { rope_theta, rope_type: 'default', partial_rotary_factor: 0.5 } });
  await assert.rejects(resolveModel(odd), /rope_scaling has partial_rotary_factor = 0\.5/);
  // Gemma 3: the global and local layers' parameters
  const g: HfGemmaConfig = {
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    vocab_size: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_local_base_freq: 10000,
    rope_scaling: { rope_type: 'linear', factor: 8 },
    query_pre_attn_scalar: 16,
    sliding_window: 16,
    layer_types: ['sliding_attention', 'full_attention'],
  };
  const gw = randomGemmaWeights(g, rng(17));
  const { rope_theta: gTheta, rope_local_base_freq, rope_scaling: __, ...gRest } = g;
  const gemma = checkpoint(
    'gemma-v5',
    {
      architectures: ['Gemma3ForCausalLM'],
      model_type: 'gemma3_text',
      ...gRest,
      rope_parameters: {
        full_attention: { rope_type: 'linear', factor: 8, rope_theta: gTheta },
        sliding_attention: { rope_type: 'default', rope_theta: rope_local_base_freq },
      },
    },
    gw,
  );
  const gErr = await maxLogitError(gemma, TOKENS, referenceGemma(gw, g, TOKENS));
  assert.ok(gErr < 1e-4, `Gemma: max |logit − reference| = ${gErr}`);
});
