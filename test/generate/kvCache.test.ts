/**
 * Incremental decoding with the key/value cache of the graphs the project builds (buffers it
 * owns, grown as needed) gives the logits of a full-sequence pass (< 1e-4): the Llama family
 * (grouped-query attention, Qwen3's head norms, sliding windows, Phi-3's fused projections
 * with LongRoPE), GPT-2, Gemma 3 (local windows, soft-capping), a batch of different sequences, and an export in the transformers.js
 * layout (past_key_values / present); a prompt, a multi-token step, then single tokens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel, type DecoderCache } from '../../src/models/languageModel';
import { tinyFamily, tinyModel } from '../train/fixtures';
import { buildLlamaGraph, type LlamaConfig } from '../../src/models/builder/llamaGraph';
import { writeOnnxModel } from '../../src/models/builtModelCache';
import { demoPair } from '../helpers';

/** A tiny checkpoint folder as resolveModel reads it (the built-in tokenizer beside it). */
function withTokenizer(folder: string, config?: Record<string, unknown>): string {
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  if (config) fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
  return folder;
}

async function cachedVersusFull(
  folder: string,
  sequences: number[][],
  kind: 'buffers' | 'present' = 'buffers',
): Promise<number> {
  const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
  try {
    assert.equal(lm.cacheKind, kind);
    const full = await Promise.all(sequences.map((s) => lm.forward(s)));
    let err = 0;
    const compare = (logits: Float32Array, vocab: number, from: number, length: number) => {
      sequences.forEach((_, b) => {
        for (let t = 0; t < length; t++)
          for (let v = 0; v < vocab; v++) {
            const got = logits[(b * length + t) * vocab + v];
            const want = (full[b].data as Float32Array)[(from + t) * vocab + v];
            err = Math.max(err, Math.abs(got - want));
          }
      });
    };
    // the first 10 positions at once, then 5 more in one step, then one at a time
    let cache: DecoderCache | undefined;
    let at = 0;
    for (const n of [10, 5, 1, 1, 1, 1, 1, 1]) {
      const step = await lm.step(
        sequences.map((s) => s.slice(at, at + n)),
        cache,
      );
      compare(step.logits, step.vocab, at, n);
      cache = step.cache;
      at += n;
    }
    assert.equal(cache!.length, at);
    return err;
  } finally {
    await lm.release();
  }
}

const ids = (seed: number, n: number, vocab: number) =>
  Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % vocab);

test('the cached logits equal the full-sequence logits for every built family and a batch', async () => {
  const qwen2 = tinyModel('llama');
  const slidingConfig = {
    ...qwen2.config,
    use_sliding_window: true,
    max_window_layers: 0,
    sliding_window: 6,
  };
  const cases: [string, string][] = [
    ['Qwen2 (grouped-query attention, biases)', withTokenizer(qwen2.folder)],
    ['Qwen2 with a sliding window of 6', withTokenizer(tinyModel('llama', 6).folder, slidingConfig)],
    ['Qwen3 (head norms, head_dim 6)', withTokenizer(tinyFamily('qwen3').folder)],
    [
      'Phi-3 (fused projections, LongRoPE past its original context)',
      withTokenizer(tinyFamily('phi3').folder),
    ],
    ['GPT-2', withTokenizer(tinyModel('gpt2').folder)],
    ['Gemma 3 (local window of 3, soft-capped scores)', withTokenizer(tinyFamily('gemma3').folder)],
  ];
  for (const [what, folder] of cases) {
    const err = await cachedVersusFull(folder, [ids(1, 24, 40), ids(2, 24, 40)]);
    assert.ok(err < 1e-4, `${what}: max |cached − full| = ${err}`);
  }
  // an export in the transformers.js layout (past_key_values.* in, present.* out), written
  // from the same builder: the cache goes out and back in as tensors
  const exported = tinyModel('llama', 8);
  const graph = buildLlamaGraph(exported.config as LlamaConfig, exported.weights, { kvCache: 'present' });
  writeOnnxModel(graph, path.join(exported.folder, 'onnx'));
  fs.rmSync(path.join(exported.folder, 'model.safetensors'));
  const errExport = await cachedVersusFull(
    withTokenizer(exported.folder),
    [ids(4, 24, 40), ids(5, 24, 40)],
    'present',
  );
  assert.ok(errExport < 1e-4, `export with present outputs: max |cached − full| = ${errExport}`);
  // the built-in model (Llama layout, 4096 tokens)
  const err = await cachedVersusFull(demoPair().student, [ids(3, 24, 4096)]);
  assert.ok(err < 1e-4, `built-in student: max |cached − full| = ${err}`);
});
