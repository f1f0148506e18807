/**
 * The ONNX graphs the project builds from safetensors checkpoints: GPT-2 against a float64
 * reference, Llama's Hugging Face layout (half-split rotary, grouped-query attention,
 * Qwen2-style q/k/v biases, untied head) against a float64 Hugging Face reference, and the
 * build cache keyed by the weights' content.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/models/safetensors';
import { resolveModel } from '../../src/models/modelSource';
import { ensureBuiltModel } from '../../src/models/builtModelCache';
import { randomGpt2Weights, referenceGpt2 } from '../reference/gpt2Reference';
import { rng } from '../reference/kdReference';
import { GPT2_TOKENIZER, demoPair, maxLogitError, tempDir, needs } from '../helpers';
import { randomLlamaWeights, referenceLlamaHf } from '../reference/llamaHfReference';


function writeGpt2Folder(dir: string, prefix: string, seed: number) {
  const cfg = { n_embd: 32, n_layer: 2, n_head: 4, vocab_size: 50257, n_positions: 64 };
  const w = randomGpt2Weights(cfg, rng(seed));
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(w).map(([k, v]) => [prefix + k, v])));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', ...cfg, layer_norm_epsilon: 1e-5 }));
  fs.copyFileSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  return { cfg, w };
}

test('GPT-2 graph: logits agree with a float64 reference (both weight-name layouts)', needs('gpt2Tokenizer'), async () => {
  const dir = tempDir();
  for (const prefix of ['', 'transformer.']) {
    const folder = path.join(dir, `gpt2${prefix}`);
    const { cfg, w } = writeGpt2Folder(folder, prefix, 1);
    const tokens = [464, 3290, 318, 257, 1332, 286, 262, 50256, 11];
    const ref = referenceGpt2(w, cfg, tokens);
    const maxDiff = await maxLogitError(folder, tokens, ref);
    assert.ok(maxDiff < 1e-4, `max |logit − reference| = ${maxDiff}`);
    assert.ok(Math.max(...ref[0].map(Math.abs)) > 0.5, 'the reference logits are not trivially small');
  }
});

test('built models are cached by weight content: same weights reuse, changed weights rebuild', needs('gpt2Tokenizer'), async () => {
  const dir = tempDir();
  const cache = path.join(dir, 'cache');
  const a = path.join(dir, 'a');
  writeGpt2Folder(a, '', 2);
  const first = (await ensureBuiltModel(await resolveModel(a), { cacheDir: cache }));
  assert.equal(first.built, true);
  const again = (await ensureBuiltModel(await resolveModel(a), { cacheDir: cache }));
  assert.equal(again.built, false);
  assert.equal(again.onnxPath, first.onnxPath);
  // a copy elsewhere has the same content: same cache entry
  const b = path.join(dir, 'b');
  fs.cpSync(a, b, { recursive: true });
  assert.equal((await ensureBuiltModel(await resolveModel(b), { cacheDir: cache })).onnxPath, first.onnxPath);
  // different weights: a new entry
  const c = path.join(dir, 'c');
  writeGpt2Folder(c, '', 3);
  const other = (await ensureBuiltModel(await resolveModel(c), { cacheDir: cache }));
  assert.equal(other.built, true);
  assert.notEqual(other.onnxPath, first.onnxPath);
});

test('Llama graph (Qwen2 layout: q/k/v biases, grouped-query attention, untied head) agrees with a float64 reference', async () => {
  const dir = tempDir();
  const r = rng(4);
  const c = { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 4096, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: false };
  const w = randomLlamaWeights(c, r);
  const folder = path.join(dir, 'qwen2');
  fs.mkdirSync(folder);
  writeSafetensors(path.join(folder, 'model.safetensors'), w);
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', max_position_embeddings: 64, ...c }));
  // any tokenizer with this vocabulary size: the built-in pair's
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  const tokens = [1, 40, 300, 7, 511, 2, 99, 99, 45, 260, 13, 400];
  const ref = referenceLlamaHf(w, c, tokens);
  const maxDiff = await maxLogitError(folder, tokens, ref);
  assert.ok(maxDiff < 1e-4, `max |logit − reference| = ${maxDiff}`);
  assert.ok(Math.max(...ref[5].map(Math.abs)) > 0.5, 'the reference logits are not trivially small');
});
