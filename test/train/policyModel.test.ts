/**
 * The student being trained, as a model that generates: its inference graph reads the trained
 * parameters as inputs. With random LoRA (and full) parameter values it gives the logits of
 * the same student with those values merged into its weights and built the ordinary way
 * (mergeAdapter → safetensors → the inference graph), by full passes and by cached steps, for
 * the Llama layout, Phi-3, Gemma 3 and GPT-2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { openPolicyModel } from '../../src/train/policyModel';
import { trainedTensors } from '../../src/train/studentOutput';
import { defaultLoraTargets, type TrainMode } from '../../src/train/trainableWeights';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { writeSafetensors } from '../../src/models/safetensors';
import { gaussian, rng } from '../reference/kdReference';
import { demoPair, tempDir } from '../helpers';
import { tinyFamily, tinyModel, type TinyModel } from './fixtures';

async function check(model: TinyModel, mode: TrainMode, label: string): Promise<void> {
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(model.folder, 'tokenizer.json'));
  const student = await resolveModel(model.folder);
  const r = rng(17);
  let values = new Map<string, Float32Array>();
  // frozen weights are graph inputs too: fed from the checkpoint, as the trainer does
  const frozen: Record<string, ort.Tensor> = {};
  for (const name of model.weights.keys()) {
    const t = model.weights.tensor(name);
    frozen[`frozen:${name}`] = new ort.Tensor('float32', t.data, t.shape);
  }
  const { lm, params, adapters } = await openPolicyModel(student, model.weights, mode, 'cpu', {
    values: () => values,
    frozenFeeds: frozen,
  });
  assert.ok(params.length > 0, `${label}: parameters to train`);
  // random values: the full weights moved, LoRA's A and B both non-zero
  values = new Map(
    params.map((p) => [
      p.name,
      Float32Array.from(p.init, (v) => v + 0.05 * gaussian(r) * (mode.kind === 'lora' ? 4 : 1)),
    ]),
  );
  const merged = trainedTensors(
    model.weights,
    params,
    params.map((p) => values.get(p.name)!),
    adapters,
  );
  const folder = path.join(tempDir(), `merged-${label}`);
  fs.mkdirSync(folder);
  writeSafetensors(path.join(folder, 'model.safetensors'), merged);
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(model.config));
  fs.copyFileSync(path.join(model.folder, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  const reference = await LanguageModel.open(await resolveModel(folder), 'cpu');
  try {
    const ids = [3, 17, 5, 9, 30, 2, 11, 8];
    const want = (await reference.forward(ids)).data as Float32Array;
    const got = (await lm.forward(ids)).data as Float32Array;
    let maxErr = 0;
    let maxAbs = 0;
    want.forEach((v, i) => {
      maxErr = Math.max(maxErr, Math.abs(v - got[i]));
      maxAbs = Math.max(maxAbs, Math.abs(v));
    });
    assert.ok(maxErr < 1e-4 * Math.max(1, maxAbs), `${label}: full pass differs by ${maxErr}`);
    // the merged student differs from the original: the parameters matter
    const original = await LanguageModel.open(student, 'cpu');
    const before = (await original.forward(ids)).data as Float32Array;
    await original.release();
    assert.ok(
      before.some((v, i) => Math.abs(v - want[i]) > 1e-3),
      `${label}: the values change the logits`,
    );
    // cached steps, as generate decodes: the prompt, then one token at a time
    let step = await lm.step([ids.slice(0, 5)], undefined, ids.length);
    for (let t = 5; t < ids.length; t++) {
      step = await lm.step([[ids[t]]], step.cache);
      const V = step.vocab;
      for (let v = 0; v < V; v++) maxErr = Math.max(maxErr, Math.abs(step.logits[v] - want[t * V + v]));
    }
    assert.ok(maxErr < 1e-4 * Math.max(1, maxAbs), `${label}: cached steps differ by ${maxErr}`);
  } finally {
    await reference.release();
    await lm.release();
  }
}

test('the policy model (parameters as inputs) gives the logits of the merged student: full passes and cached steps', async () => {
  const lora = (m: TinyModel): TrainMode => ({
    kind: 'lora',
    rank: 2,
    alpha: 4,
    targets: defaultLoraTargets(m.architecture, m.config),
  });
  const llama = tinyModel('llama');
  await check(llama, lora(llama), 'qwen2 lora');
  await check(tinyModel('llama', 6), { kind: 'full' }, 'qwen2 full');
  const gpt2 = tinyModel('gpt2');
  await check(gpt2, lora(gpt2), 'gpt2 lora');
  for (const family of ['phi3', 'gemma3'] as const) {
    const m = tinyFamily(family, 7, 4096);
    await check(m, lora(m), `${family} lora`);
  }
});
