/**
 * The layer view's graph outputs (builder/layerView.ts) against the float64 family references:
 * every hidden state in the Hugging Face convention, the logit lens's KL in both directions
 * and its argmax, and the centred Gram matrices, for the Llama, Gemma 3 and GPT-2 graphs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel, type LayerForward } from '../../src/models/languageModel';
import { buildGraphFor, writeOnnxModel } from '../../src/models/builtModelCache';
import { ModelLoadError } from '../../src/core/errors';
import { tempDir } from '../helpers';
import { rng } from '../reference/kdReference';
import type { ReferenceLayers } from '../reference/gpt2Reference';
import { gemmaCheckpoint, gpt2Checkpoint, llamaCheckpoint, VOCAB, type RandomCheckpoint } from './randomCheckpoints';

const TOKENS = Array.from({ length: 24 }, (_, i) => (i * 797 + 13) % VOCAB);

function logSoftmax(z: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]);
  let s = 0;
  for (let i = 0; i < z.length; i++) s += Math.exp(z[i] - m);
  return Float64Array.from(z, (v) => v - m - Math.log(s));
}

/** KL(a ‖ b) of two log-distributions, in float64. */
function kl(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let v = 0; v < a.length; v++) s += Math.exp(a[v]) * (a[v] - b[v]);
  return s;
}

/** Checks one model's layer outputs against the reference's states and lenses. */
function checkAgainst(out: LayerForward, ref: ReferenceLayers, reference: Float64Array[] | undefined, what: string) {
  const S = ref.states.length;
  const N = TOKENS.length;
  const D = ref.states[0][0].length;
  assert.equal(out.states, S, `${what}: L + 1 states`);
  assert.equal(out.width, D);
  let hiddenErr = 0;
  let hiddenMax = 0;
  for (let l = 0; l < S; l++) {
    for (let t = 0; t < N; t++) {
      for (let i = 0; i < D; i++) {
        const r = ref.states[l][t][i];
        hiddenErr = Math.max(hiddenErr, Math.abs(out.hidden[(l * N + t) * D + i] - r));
        hiddenMax = Math.max(hiddenMax, Math.abs(r));
      }
      const lens = logSoftmax(ref.lens[l][t]);
      const expected = reference ? kl(logSoftmax(reference[t]), lens) : kl(lens, logSoftmax(ref.lens[S - 1][t]));
      const got = out.lensKl[l * N + t];
      assert.ok(Math.abs(got - expected) < 1e-4 + 1e-4 * expected, `${what}: lens KL state ${l} position ${t}: ${got} vs ${expected}`);
      // the argmax, where the reference's top two are apart
      const sorted = [...ref.lens[l][t]].sort((a, b) => b - a);
      if (sorted[0] - sorted[1] > 1e-3)
        assert.equal(Number(out.lensArgmax[l * N + t]), ref.lens[l][t].indexOf(sorted[0]), `${what}: argmax state ${l}`);
    }
    // the centred Gram matrix X_c X_cᵀ over the positions
    const mean = Float64Array.from({ length: D }, (_, i) => ref.states[l].reduce((a, x) => a + x[i], 0) / N);
    let err = 0;
    let norm = 0;
    for (let a = 0; a < N; a++)
      for (let b = 0; b < N; b++) {
        let g = 0;
        for (let i = 0; i < D; i++) g += (ref.states[l][a][i] - mean[i]) * (ref.states[l][b][i] - mean[i]);
        err += (out.gram[(l * N + a) * N + b] - g) ** 2;
        norm += g * g;
      }
    assert.ok(Math.sqrt(err / norm) < 1e-5, `${what}: Gram of state ${l}, relative error ${Math.sqrt(err / norm)}`);
  }
  assert.ok(hiddenErr < 1e-4 * Math.max(1, hiddenMax), `${what}: max |state − reference| = ${hiddenErr}`);
  // the lens of the last state is the model's own distribution: KL to itself is 0, its argmax the logits'
  if (!reference) for (let t = 0; t < N; t++) assert.ok(Math.abs(out.lensKl[(S - 1) * N + t]) < 1e-9);
}

const FAMILIES: { name: string; make: () => RandomCheckpoint }[] = [
  { name: 'llama', make: () => llamaCheckpoint(3, 5) },
  { name: 'gemma3', make: () => gemmaCheckpoint(6) },
  { name: 'gpt2', make: () => gpt2Checkpoint(7) },
];

for (const family of FAMILIES)
  test(`${family.name}: the layer view's states, logit lens (both directions) and Gram matrices agree with the float64 reference`, async () => {
    const { folder, reference } = family.make();
    const layers: ReferenceLayers = { states: [], lens: [] };
    const logits = reference(TOKENS, layers);
    const resolved = await resolveModel(folder);
    const cacheDir = tempDir();
    const self = await LanguageModel.open(resolved, 'cpu', { cacheDir, layerView: 'self' });
    const against = await LanguageModel.open(resolved, 'cpu', { cacheDir, layerView: 'input' });
    try {
      const own = await self.forwardLayers(TOKENS);
      checkAgainst(own, layers, undefined, `${family.name} (self)`);
      let logitErr = 0;
      for (let t = 0; t < TOKENS.length; t++)
        for (let v = 0; v < VOCAB; v++) logitErr = Math.max(logitErr, Math.abs(own.logits.data[t * VOCAB + v] - logits[t][v]));
      assert.ok(logitErr < 1e-4, `the logits as the plain graph's: ${logitErr}`);
      // against another distribution (a teacher's final logits): KL(r ‖ lens_l)
      const r = rng(11);
      const teacher = TOKENS.map(() => Float64Array.from({ length: VOCAB }, () => 3 * (r() - 0.5)));
      const data = new Float32Array(TOKENS.length * VOCAB);
      teacher.forEach((row, t) => data.set(row, t * VOCAB));
      const vsTeacher = await against.forwardLayers(TOKENS, { data, type: 'float32', length: TOKENS.length, vocab: VOCAB });
      checkAgainst(
        vsTeacher,
        layers,
        teacher.map((row) => Float64Array.from(Float32Array.from(row))),
        `${family.name} (against a reference)`,
      );
    } finally {
      await self.release();
      await against.release();
    }
  });

test('the layer view refuses an ONNX export by name (its graph gives only logits)', async () => {
  // an export: the llama checkpoint's plain graph written as onnx/model.onnx beside its tokenizer
  const source = await resolveModel(FAMILIES[0].make().folder);
  const folder = tempDir();
  writeOnnxModel(buildGraphFor(source), path.join(folder, 'onnx'));
  fs.copyFileSync(path.join(source.folder, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  const resolved = await resolveModel(folder);
  assert.equal(resolved.kind, 'onnx');
  await assert.rejects(
    LanguageModel.open(resolved, 'cpu', { layerView: 'self' }),
    (e: Error) => e instanceof ModelLoadError && /the layer view and feature distillation need a checkpoint folder/.test(e.message),
  );
});
