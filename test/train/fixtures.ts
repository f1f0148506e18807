/** Tiny random checkpoints (Llama/Qwen2 layout with grouped-query attention, and GPT-2) for training tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/models/safetensors';
import { WeightSource } from '../../src/models/builder/weights';
import type { Architecture } from '../../src/models/checkpointConfig';
import { randomGpt2Weights } from '../reference/gpt2Reference';
import { randomLlamaWeights } from '../reference/llamaHfReference';
import { rng } from '../reference/kdReference';
import { tempDir } from '../helpers';

export interface TinyModel {
  architecture: Architecture;
  config: Record<string, any>;
  weights: WeightSource;
  folder: string;
  vocab: number;
}

export function tinyModel(architecture: Architecture, seed = 5): TinyModel {
  const folder = path.join(tempDir(), architecture);
  fs.mkdirSync(folder);
  let config: Record<string, any>;
  let w;
  if (architecture === 'llama') {
    config = {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: 40,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      max_position_embeddings: 32,
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
