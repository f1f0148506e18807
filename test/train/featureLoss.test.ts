/**
 * Feature distillation's loss (src/train/featureLoss.ts) in the training graph, float64: its
 * value against a JavaScript computation from the student's hidden states (taken from the
 * layer view's graph) and the projections, for MSE and cosine, and its gradient (student
 * weights and projections) against central finite differences; the projections' Xavier bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { buildStepGraph, DEFAULT_OPTIMIZER, names } from '../../src/train/stepGraph';
import { buildLlamaGraph, type LlamaConfig } from '../../src/models/builder/llamaGraph';
import { buildGpt2Graph, type Gpt2Config } from '../../src/models/builder/gpt2Graph';
import { projectionParams, type FeatureLossSpec } from '../../src/train/featureLoss';
import type { Param, TrainMode } from '../../src/train/trainableWeights';
import { gaussian, rng } from '../reference/kdReference';
import { expectGradientsMatch, tinyModel, type TinyModel } from './fixtures';

const B = 2;
const L = 5;

/** The student's L + 1 hidden states [B·L, D] in float64, from its layer-view graph. */
async function hiddenStates(
  model: TinyModel,
  ids: number[],
): Promise<{ states: number; width: number; data: Float64Array }> {
  const g =
    model.architecture === 'llama'
      ? buildLlamaGraph(model.config as LlamaConfig, model.weights, { layerView: 'states' })
      : buildGpt2Graph(model.config as Gpt2Config, model.weights, { layerView: 'states' });
  g.promoteToFloat64();
  // unoptimised: ONNX Runtime's fusions (QuickGelu) have float32 kernels only
  const session = await ort.InferenceSession.create(g.encode().model, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await session.run(
      { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [B, L]) },
      ['layer_hidden'],
    );
    const dims = out.layer_hidden.dims;
    return { states: dims[0], width: dims[2], data: out.layer_hidden.data as Float64Array };
  } finally {
    await session.release();
  }
}

async function checkValue(
  model: TinyModel,
  feature: FeatureLossSpec,
  ids: number[],
  mask: number[],
  theta: Float64Array[],
  params: Param[],
  teacherStates: Float64Array[],
  out: ort.InferenceSession.OnnxValueMapType,
  label: string,
) {
  const { kind, teacherWidth: DT } = feature;
  const projections = params.filter((p) => p.role === 'projection');
  const hidden = await hiddenStates(model, ids);
  const D = hidden.width;
  const perPair = feature.pairs.map(([s], k) => {
    const W = theta[params.indexOf(projections[k])]; // [DT, D]
    let sum = 0;
    let tokens = 0;
    for (let row = 0; row < B * L; row++) {
      if (!mask[row]) continue;
      tokens++;
      const h = hidden.data.subarray((s * B * L + row) * D, (s * B * L + row + 1) * D);
      const p = Array.from({ length: DT }, (_, d) => h.reduce((a, x, i) => a + x * W[d * D + i], 0));
      const t = teacherStates[k].subarray(row * DT, (row + 1) * DT);
      if (kind === 'mse') sum += p.reduce((a, x, d) => a + (x - t[d]) ** 2, 0);
      else {
        const dot = p.reduce((a, x, d) => a + x * t[d], 0);
        const norms = p.reduce((a, x) => a + x * x, 0) * t.reduce((a, x) => a + x * x, 0);
        sum += 1 - dot / Math.sqrt(norms + 1e-16);
      }
    }
    return kind === 'mse' ? sum / (tokens * DT) : sum / tokens;
  });
  const expected = perPair.reduce((a, b) => a + b, 0) / perPair.length;
  assert.ok(
    Math.abs(Number(out.feature_loss.data[0]) - expected) < 1e-8 * Math.max(1, expected),
    `${label}: value ${Number(out.feature_loss.data[0])} vs ${expected}`,
  );
  const kd = Number(out.kd_loss.data[0]);
  assert.ok(
    Math.abs(Number(out.loss.data[0]) - (0.7 * kd + 1.3 * expected)) < 1e-8,
    `${label}: kd·0.7 + feature·1.3`,
  );
}

async function check(model: TinyModel, kind: FeatureLossSpec['kind'], mode: TrainMode, seed: number) {
  const r = rng(seed);
  const V = model.vocab;
  const DT = 6; // a teacher width other than the student's
  const feature: FeatureLossSpec = {
    kind,
    pairs: [
      [1, 2],
      [2, 4],
    ],
    teacherWidth: DT,
    projectionLrScale: 1,
  };
  const built = buildStepGraph({
    architecture: model.architecture,
    config: model.config,
    weights: model.weights,
    mode,
    batch: B,
    seqLen: L,
    vocab: V,
    loss: { key: 'fkl', temperature: 1 },
    optimizer: DEFAULT_OPTIMIZER,
    purpose: 'gradients',
    seed,
    float64: true,
    randomLoraB: true,
    feature,
  });
  const session = await ort.InferenceSession.create(built.bytes);
  const ids = Array.from({ length: B * L }, () => Math.floor(r() * V));
  const targets = ids.map((_, i) => (i % L === L - 1 ? 0 : ids[i + 1]));
  const mask = targets.map((_, i) => (i % L === L - 1 || i === 2 ? 0 : 1));
  const teacher = Float64Array.from({ length: B * L * V }, () => 2 * gaussian(r));
  const teacherStates = feature.pairs.map(() => Float64Array.from({ length: B * L * DT }, () => gaussian(r)));
  const feeds = (
    values: Float64Array[],
    kdWeight: number,
    featureWeight: number,
  ): Record<string, ort.Tensor> => {
    const f: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [B, L]),
      teacher_logits: new ort.Tensor('float64', teacher, [B, L, V]),
      targets: new ort.Tensor('int64', BigInt64Array.from(targets.map(BigInt)), [B * L, 1]),
      mask: new ort.Tensor('float64', Float64Array.from(mask), [B * L]),
      kd_weight: new ort.Tensor('float64', Float64Array.of(kdWeight), []),
      feature_weight: new ort.Tensor('float64', Float64Array.of(featureWeight), []),
    };
    teacherStates.forEach((t, k) => (f[`teacher_hidden_${k}`] = new ort.Tensor('float64', t, [B * L, DT])));
    built.params.forEach((p, i) => (f[p.name] = new ort.Tensor('float64', values[i], p.shape)));
    return f;
  };
  const theta = built.params.map((p) => Float64Array.from(p.init));
  const projections = built.params.filter((p) => p.role === 'projection');
  assert.equal(projections.length, 2, 'one projection per pair');

  const out = await session.run(feeds(theta, 0.7, 1.3));
  const label = `${model.config.model_type} ${mode.kind} ${kind}`;
  // the value (full fine-tuning starts at the checkpoint's weights, whose states the layer view gives):
  // mean over pairs of MSE / (1 − cos), masked, from the states and projections in JavaScript
  if (mode.kind === 'full')
    await checkValue(model, feature, ids, mask, theta, built.params, teacherStates, out, label);

  // the gradient, student weights and projections, against central finite differences
  const grads = built.params.map((p) => out[names.grad(p.name)].data as Float64Array);
  await expectGradientsMatch(
    theta,
    grads,
    async (values) => Number((await session.run(feeds(values, 0.7, 1.3), ['loss'])).loss.data[0]),
    projections.map((p) => built.params.indexOf(p)),
    r,
    label,
  );
  for (const p of projections)
    assert.ok(
      grads[built.params.indexOf(p)].some((v) => Math.abs(v) > 1e-6),
      `${label}: the projection learns`,
    );
  await session.release();
}

for (const architecture of ['llama', 'gpt2'] as const)
  test(`${architecture}: the feature loss (MSE and cosine) and its gradient, full and LoRA, against JavaScript and finite differences (float64)`, async () => {
    const model = tinyModel(architecture);
    const lora: TrainMode = {
      kind: 'lora',
      rank: 2,
      alpha: 4,
      targets: architecture === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'],
    };
    let seed = 500;
    for (const kind of ['mse', 'cosine'] as const) {
      await check(model, kind, { kind: 'full' }, seed++);
      await check(model, kind, lora, seed++);
    }
  });

test('projections are Xavier uniform: within ±√(6 / (D_S + D_T)), spread over it, one stream per seed', () => {
  const spec: FeatureLossSpec = { kind: 'mse', pairs: [[1, 2]], teacherWidth: 48, projectionLrScale: 1 };
  const [p] = projectionParams(spec, 16, rng(3));
  const bound = Math.sqrt(6 / (16 + 48));
  assert.deepEqual(p.shape, [48, 16]);
  assert.ok(p.init.every((v) => Math.abs(v) <= bound));
  const variance = p.init.reduce((a, v) => a + v * v, 0) / p.init.length;
  assert.ok(Math.abs(variance - bound ** 2 / 3) < (0.15 * bound ** 2) / 3, `variance ${variance} vs a²/3`);
  assert.deepEqual(projectionParams(spec, 16, rng(3))[0].init, p.init);
});
