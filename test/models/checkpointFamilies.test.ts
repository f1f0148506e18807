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

test('config keys that change the numbers and are not built are refused by name, never ignored', async () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...BASE, max_position_embeddings: 512 };
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 } }, /rope_scaling type "yarn" is not supported yet/],
    [{ rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling type "dynamic" is not supported yet/],
    [{ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } }, /rope_scaling type "longrope"/],
    [{ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, /rope_scaling\.original_max_position_embeddings must be a number/],
    [{ rope_scaling: { rope_type: 'linear', factor: 2, attention_factor: 1.2 } }, /rope_scaling has attention_factor = 1\.2, which the "linear" scaling does not use/],
    [{ attn_logit_softcapping: 50 }, /config\.json attn_logit_softcapping = 50 is not understood/],
    [{ partial_rotary_factor: 0.5 }, /partial_rotary_factor = 0\.5 is not understood/],
    [{ hidden_act: 'gelu' }, /hidden_act = "gelu" is not supported/],
    [{ quantization_config: { quant_method: 'gptq' } }, /quantization_config = .* is not understood/],
    [{ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: true, sliding_window: 32 }, /use_sliding_window = true is not supported yet/],
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
