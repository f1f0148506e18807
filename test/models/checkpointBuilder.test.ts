/**
 * The ONNX graphs the project builds from safetensors checkpoints: GPT-2 against a float64
 * reference, Llama's Hugging Face layout (half-split rotary, grouped-query attention,
 * Qwen2-style q/k/v biases) against the llama2.c reference after the converter's
 * permutation, and the build cache keyed by the weights' content.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/models/safetensors';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/runtime/languageModel';
import { ensureBuiltModel } from '../../src/models/builtModelCache';
import { randomGpt2Weights, referenceGpt2 } from '../reference/gpt2Reference';
import { rng } from '../reference/kdReference';
import { GPT2_TOKENIZER, tempDir } from '../helpers';

function writeGpt2Folder(dir: string, prefix: string, seed: number) {
  const cfg = { n_embd: 32, n_layer: 2, n_head: 4, vocab_size: 50257, n_positions: 64 };
  const w = randomGpt2Weights(cfg, rng(seed));
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(w).map(([k, v]) => [prefix + k, v])));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', ...cfg, layer_norm_epsilon: 1e-5 }));
  fs.copyFileSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  return { cfg, w };
}

test('GPT-2 graph: logits agree with a float64 reference (both weight-name layouts)', async () => {
  const dir = tempDir();
  for (const prefix of ['', 'transformer.']) {
    const folder = path.join(dir, `gpt2${prefix}`);
    const { cfg, w } = writeGpt2Folder(folder, prefix, 1);
    const tokens = [464, 3290, 318, 257, 1332, 286, 262, 50256, 11];
    const ref = referenceGpt2(w, cfg, tokens);
    const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
    const logits = await lm.forward(tokens);
    await lm.release();
    let maxDiff = 0;
    ref.forEach((row, pos) => row.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - (logits.data as Float32Array)[pos * logits.vocab + i])))));
    assert.ok(maxDiff < 1e-4, `max |logit − reference| = ${maxDiff}`);
    assert.ok(Math.max(...ref[0].map(Math.abs)) > 0.5, 'the reference logits are not trivially small');
  }
});

test('built models are cached by weight content: same weights reuse, changed weights rebuild', async () => {
  const dir = tempDir();
  const cache = path.join(dir, 'cache');
  const a = path.join(dir, 'a');
  writeGpt2Folder(a, '', 2);
  const first = ensureBuiltModel(await resolveModel(a), cache);
  assert.equal(first.built, true);
  const again = ensureBuiltModel(await resolveModel(a), cache);
  assert.equal(again.built, false);
  assert.equal(again.onnxPath, first.onnxPath);
  // a copy elsewhere has the same content: same cache entry
  const b = path.join(dir, 'b');
  fs.cpSync(a, b, { recursive: true });
  assert.equal(ensureBuiltModel(await resolveModel(b), cache).onnxPath, first.onnxPath);
  // different weights: a new entry
  const c = path.join(dir, 'c');
  writeGpt2Folder(c, '', 3);
  const other = ensureBuiltModel(await resolveModel(c), cache);
  assert.equal(other.built, true);
  assert.notEqual(other.onnxPath, first.onnxPath);
});
