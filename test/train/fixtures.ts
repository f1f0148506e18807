/** Tiny random checkpoints (Llama/Qwen2 layout with grouped-query attention, Qwen3, Phi-3, Gemma 3 and GPT-2) for training tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/models/safetensors';
import { WeightSource } from '../../src/models/builder/weights';
import type { Architecture } from '../../src/models/checkpointConfig';
import * as ort from 'onnxruntime-node';
import { buildStepGraph, DEFAULT_OPTIMIZER } from '../../src/train/stepGraph';
import type { FeatureLossSpec } from '../../src/train/featureLoss';
import type { TrainMode } from '../../src/train/trainableWeights';
import type { Window } from '../../src/train/data';
import { randomGpt2Weights } from '../reference/gpt2Reference';
import { randomLlamaWeights } from '../reference/llamaHfReference';
import { randomGemmaWeights } from '../reference/gemmaReference';
import { gaussian, rng } from '../reference/kdReference';
import { tempDir } from '../helpers';

export interface TinyModel {
  architecture: Architecture;
  config: Record<string, any>;
  weights: WeightSource;
  folder: string;
  vocab: number;
}

/** The shape of every tiny decoder: two layers, width 16, four query and two key/value heads. */
const TINY_DECODER = {
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 40,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 32,
};

export function tinyModel(architecture: Architecture, seed = 5): TinyModel {
  const folder = path.join(tempDir(), architecture);
  fs.mkdirSync(folder);
  let config: Record<string, any>;
  let w;
  if (architecture === 'llama') {
    config = {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      ...TINY_DECODER,
      tie_word_embeddings: false,
    };
    w = randomLlamaWeights(config as any, rng(seed));
  } else {
    config = {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: 16,
      n_layer: 2,
      n_head: 2,
      vocab_size: 40,
      n_positions: 32,
      layer_norm_epsilon: 1e-5,
    };
    w = randomGpt2Weights(config as any, rng(seed), 0.3);
  }
  writeSafetensors(path.join(folder, 'model.safetensors'), w);
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
  const weights = new WeightSource(
    [readSafetensors(path.join(folder, 'model.safetensors'))],
    architecture === 'gpt2' ? ['', 'transformer.'] : [''],
  );
  return { architecture, config, weights, folder, vocab: config.vocab_size };
}

/** The families trained through the Llama and Gemma graphs besides Qwen2 (tinyModel('llama')). */
export type TinyFamily = 'qwen3' | 'phi3' | 'gemma3';

/**
 * A tiny checkpoint of a family with its own graph features: Qwen3 (per-head q/k norms,
 * head_dim 6 while hidden/heads is 4), Phi-3 (fused qkv_proj and gate_up_proj, LongRoPE,
 * rotating half of each head), Gemma 3 (scaled embeddings, (1 + w) norms, local and
 * global layers, both soft-cappings).
 */
export function tinyFamily(family: TinyFamily, seed = 5, vocab = 40): TinyModel {
  const folder = path.join(tempDir(), family);
  fs.mkdirSync(folder);
  const base = { ...TINY_DECODER, vocab_size: vocab };
  let config: Record<string, any>;
  let w: Record<string, { shape: number[]; data: Float32Array }>;
  if (family === 'gemma3') {
    config = {
      architectures: ['Gemma3ForCausalLM'],
      model_type: 'gemma3_text',
      ...base,
      head_dim: 8,
      rope_local_base_freq: 10000,
      query_pre_attn_scalar: 8,
      sliding_window: 3,
      layer_types: ['sliding_attention', 'full_attention'],
      attn_logit_softcapping: 5,
      final_logit_softcapping: 4,
      hidden_activation: 'gelu_pytorch_tanh',
    };
    w = randomGemmaWeights(config as any, rng(seed));
  } else if (family === 'qwen3') {
    config = {
      architectures: ['Qwen3ForCausalLM'],
      model_type: 'qwen3',
      ...base,
      head_dim: 6,
      tie_word_embeddings: true,
    };
    w = randomLlamaWeights(
      { ...base, head_dim: 6, qk_norm: true, tie_word_embeddings: true } as any,
      rng(seed),
    );
    for (const k of Object.keys(w)) if (k.endsWith('.bias') || k === 'lm_head.weight') delete w[k];
  } else {
    config = {
      architectures: ['Phi3ForCausalLM'],
      model_type: 'phi3',
      ...base,
      tie_word_embeddings: false,
      original_max_position_embeddings: 4,
      partial_rotary_factor: 0.5,
      rope_scaling: { type: 'longrope', short_factor: [1.5], long_factor: [4] },
    };
    const parts = randomLlamaWeights(base as any, rng(seed));
    w = {};
    const rows = (...names: string[]) => {
      const ts = names.map((n) => parts[n]);
      const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
      ts.reduce((at, t) => (data.set(t.data, at), at + t.data.length), 0);
      return { shape: [ts.reduce((n, t) => n + t.shape[0], 0), ts[0].shape[1]], data };
    };
    for (const [k, t] of Object.entries(parts)) {
      const m = /^(model\.layers\.\d+\.)(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.(weight|bias)$/.exec(k);
      if (k.endsWith('.bias')) continue;
      if (!m) w[k] = t;
      else if (m[2] === 'self_attn.q_proj')
        w[`${m[1]}self_attn.qkv_proj.weight`] = rows(
          k,
          `${m[1]}self_attn.k_proj.weight`,
          `${m[1]}self_attn.v_proj.weight`,
        );
      else if (m[2] === 'mlp.gate_proj')
        w[`${m[1]}mlp.gate_up_proj.weight`] = rows(k, `${m[1]}mlp.up_proj.weight`);
    }
  }
  writeSafetensors(path.join(folder, 'model.safetensors'), w);
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
  const weights = new WeightSource([readSafetensors(path.join(folder, 'model.safetensors'))], ['']);
  return {
    architecture: family === 'gemma3' ? 'gemma3' : 'llama',
    config,
    weights,
    folder,
    vocab: config.vocab_size,
  };
}

/** One plain SGD step on one window (the checks that saved weights = init − lr·grad). */
export const ONE_SGD_STEP = {
  optimizer: { kind: 'sgd' as const, weightDecay: 0, maxGradNorm: 0 },
  steps: 1,
  warmupSteps: 0,
  batchSize: 1,
};

/** The gradients graph of the stories student for one window of seqLen tokens, seed 5, fkl at T = 1 (the SGD-step checks). */
export function storiesGradientGraph(
  config: Record<string, any>,
  weights: WeightSource,
  mode: TrainMode,
  seqLen: number,
  feature?: FeatureLossSpec,
) {
  return buildStepGraph({
    architecture: 'llama',
    config,
    weights,
    mode,
    batch: 1,
    seqLen,
    vocab: 512,
    loss: { key: 'fkl', temperature: 1 },
    optimizer: DEFAULT_OPTIMIZER,
    purpose: 'gradients',
    seed: 5,
    ...(feature ? { feature } : {}),
  });
}

/** A window's ids, targets and mask, and the teacher's logits of it, as a batch of one. */
export function windowFeeds(
  w: Window,
  teacherLogits: Float32Array,
  vocab: number,
): Record<string, ort.Tensor> {
  const L = w.ids.length;
  return {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(w.ids.map(BigInt)), [1, L]),
    teacher_logits: new ort.Tensor('float32', teacherLogits, [1, L, vocab]),
    targets: new ort.Tensor('int64', BigInt64Array.from(w.targets.map(BigInt)), [L, 1]),
    mask: new ort.Tensor('float32', Float32Array.from(w.mask), [L]),
  };
}

/**
 * Checks `grads` (of the loss at `theta`) against central finite differences of `lossAt`
 * along two random directions of every parameter at once and along each of `alone` (parameter
 * indices) by itself: |fd − ⟨grad, dir⟩| ≤ 1e-6·max(1, |fd|) in float64.
 */
export async function expectGradientsMatch(
  theta: Float64Array[],
  grads: Float64Array[],
  lossAt: (values: Float64Array[]) => Promise<number>,
  alone: number[],
  random: () => number,
  label: string,
): Promise<void> {
  const directions: Float64Array[][] = [0, 1].map(() => theta.map((t) => t.map(() => gaussian(random))));
  for (const k of alone)
    directions.push(
      theta.map((t, i) => (i === k ? t.map(() => gaussian(random)) : new Float64Array(t.length))),
    );
  const h = 1e-5;
  const moved = (dir: Float64Array[], step: number) =>
    theta.map((t, i) => t.map((v, j) => v + step * dir[i][j]));
  for (const dir of directions) {
    const fd = ((await lossAt(moved(dir, h))) - (await lossAt(moved(dir, -h)))) / (2 * h);
    const analytic = grads.reduce((s, g, i) => s + g.reduce((t, v, j) => t + v * dir[i][j], 0), 0);
    if (!(Math.abs(fd - analytic) <= 1e-6 * Math.max(1, Math.abs(fd))))
      throw new Error(`${label}: directional derivative ${analytic} vs finite difference ${fd}`);
  }
}
