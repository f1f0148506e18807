/**
 * Whole-model gradients of the training graph (student forward, loss, reverse-mode
 * differentiation) in float64, against central finite differences of the same graph's loss,
 * for every loss, both model families and both LoRA and full fine-tuning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { buildStepGraph, DEFAULT_OPTIMIZER, names } from '../../src/train/stepGraph';
import { defaultLoraTargets, type TrainMode } from '../../src/train/trainableWeights';
import { gaussian, rng } from '../reference/kdReference';
import { expectGradientsMatch, tinyFamily, tinyModel, type TinyModel } from './fixtures';
import { LOSS_KEYS, type LossKey } from '../../src/shared/protocol';

const B = 2;
const L = 5;

async function check(model: TinyModel, mode: TrainMode, key: LossKey, seed: number) {
  const built = buildStepGraph({
    architecture: model.architecture,
    config: model.config,
    weights: model.weights,
    mode,
    batch: B,
    seqLen: L,
    vocab: model.vocab,
    loss: { key, temperature: 1.5 },
    optimizer: DEFAULT_OPTIMIZER,
    purpose: 'gradients',
    seed,
    float64: true,
    randomLoraB: true,
  });
  const session = await ort.InferenceSession.create(built.bytes);
  const r = rng(seed);
  const V = model.vocab;
  const ids = Array.from({ length: B * L }, () => Math.floor(r() * V));
  ids[3] = ids[1]; // a repeated token: embedding gradients accumulate
  const targets = ids.map((_, i) => (i % L === L - 1 ? 0 : ids[i + 1]));
  const mask = targets.map((_, i) => (i % L === L - 1 || i === 2 ? 0 : 1));
  const teacher = Float64Array.from({ length: B * L * V }, () => 2 * gaussian(r));
  const feeds = (values: Float64Array[]): Record<string, ort.Tensor> => {
    const f: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [B, L]),
      teacher_logits: new ort.Tensor('float64', teacher, [B, L, V]),
      targets: new ort.Tensor('int64', BigInt64Array.from(targets.map(BigInt)), [B * L, 1]),
      mask: new ort.Tensor('float64', Float64Array.from(mask), [B * L]),
    };
    built.params.forEach((p, i) => (f[p.name] = new ort.Tensor('float64', values[i], p.shape)));
    return f;
  };
  const theta = built.params.map((p) => Float64Array.from(p.init));
  const out = await session.run(feeds(theta));
  const grads = built.params.map((p) => out[names.grad(p.name)].data as Float64Array);
  // directional derivatives along random directions, and along every sixth parameter tensor alone
  const alone: number[] = [];
  for (let k = 0; k < theta.length; k += Math.max(1, Math.floor(theta.length / 6))) alone.push(k);
  await expectGradientsMatch(
    theta,
    grads,
    async (values) => Number((await session.run(feeds(values), ['loss'])).loss.data[0]),
    alone,
    r,
    `${model.config.model_type} ${mode.kind} ${key}`,
  );
  assert.ok(
    grads.some((g) => g.some((v) => Math.abs(v) > 1e-4)),
    'gradients are not all zero',
  );
  if (mode.kind === 'lora') {
    assert.deepEqual([...new Set(built.params.map((p) => p.role))].sort(), ['lora_A', 'lora_B']);
    for (const g of grads)
      assert.ok(
        g.some((v) => v !== 0),
        'every adapter matrix gets a gradient',
      );
  }
  await session.release();
}

for (const architecture of ['llama', 'gpt2'] as const) {
  test(`${architecture}: gradients of every loss, full and LoRA, match finite differences (float64)`, async () => {
    const model = tinyModel(architecture);
    const lora: TrainMode = {
      kind: 'lora',
      rank: 2,
      alpha: 4,
      targets: architecture === 'gpt2' ? ['c_attn', 'c_fc'] : ['q_proj', 'v_proj', 'down_proj'],
    };
    let seed = 100;
    for (const key of LOSS_KEYS) {
      await check(model, { kind: 'full' }, key, seed++);
      await check(model, lora, key, seed++);
    }
  });
}

// the other families' own graph pieces (per-head norms, fused projections split in the graph,
// LongRoPE with a partial rotation, (1 + w) norms, soft-capping, local and global layers),
// with two losses each to keep the run short; sequences of 5 are longer than Phi-3's original
// context (4), so its long factors run, and than Gemma's window (3)
for (const family of ['qwen3', 'phi3', 'gemma3'] as const) {
  test(`${family}: gradients of fkl and ce, full and LoRA (the default targets), match finite differences (float64)`, async () => {
    const model = tinyFamily(family);
    const lora: TrainMode = {
      kind: 'lora',
      rank: 2,
      alpha: 4,
      targets: defaultLoraTargets(model.architecture, model.config),
    };
    let seed = 300;
    for (const key of ['fkl', 'ce'] as const) {
      await check(model, { kind: 'full' }, key, seed++);
      await check(model, lora, key, seed++);
    }
  });
}
