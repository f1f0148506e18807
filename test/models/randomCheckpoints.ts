/**
 * Small checkpoint folders with random weights in the Hugging Face layout (Llama, Gemma 3,
 * GPT-2), each with its float64 reference forward pass (which also fills a ReferenceLayers:
 * the hidden states and their logit lenses). The built-in tokenizer (4096 entries) is copied in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/models/safetensors';
import { demoPair, tempDir } from '../helpers';
import { rng } from '../reference/kdReference';
import { randomLlamaWeights, referenceLlamaHf, type HfLlamaConfig } from '../reference/llamaHfReference';
import { randomGemmaWeights, referenceGemma, type HfGemmaConfig } from '../reference/gemmaReference';
import { randomGpt2Weights, referenceGpt2, type ReferenceLayers, type Weights } from '../reference/gpt2Reference';

export const VOCAB = 4096;

export interface RandomCheckpoint {
  folder: string;
  /** the reference logits of `ids`, filling `layers` when given */
  reference: (ids: number[], layers?: ReferenceLayers) => Float64Array[];
}

function write(name: string, config: Record<string, unknown>, weights: Weights, tokenizer?: object): string {
  const folder = path.join(tempDir(), name);
  fs.mkdirSync(folder);
  writeSafetensors(path.join(folder, 'model.safetensors'), weights);
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
  if (tokenizer) fs.writeFileSync(path.join(folder, 'tokenizer.json'), JSON.stringify(tokenizer));
  else fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  return folder;
}

const LLAMA: HfLlamaConfig & { intermediate_size: number } = {
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: VOCAB,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
};

/** A Llama of width 64 with `layers` layers and an untied head, no biases; `tokenizer`: its own tokenizer.json with `vocab` entries. */
export function llamaCheckpoint(
  layers: number,
  seed: number,
  o: { vocab?: number; tokenizer?: object } = {},
): RandomCheckpoint {
  const c = { ...LLAMA, num_hidden_layers: layers, vocab_size: o.vocab ?? VOCAB };
  const w = randomLlamaWeights(c, rng(seed));
  for (const k of Object.keys(w)) if (k.endsWith('.bias')) delete w[k];
  const folder = write(
    `llama${layers}-${seed}-${c.vocab_size}`,
    { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...c },
    w,
    o.tokenizer,
  );
  return { folder, reference: (ids, out) => referenceLlamaHf(w, c, ids, out) };
}

/** A Gemma 3 text model: one sliding and one global layer, final soft-capping, tied head. */
export function gemmaCheckpoint(seed: number): RandomCheckpoint {
  const c = {
    ...LLAMA,
    head_dim: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    rope_local_base_freq: 10000,
    query_pre_attn_scalar: 16,
    sliding_window: 8,
    layer_types: ['sliding_attention', 'full_attention'],
    final_logit_softcapping: 15,
    tie_word_embeddings: true,
  } as HfGemmaConfig;
  const w = randomGemmaWeights(c, rng(seed));
  const config = { architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 32768, ...c };
  return { folder: write(`gemma3-${seed}`, config, w), reference: (ids, out) => referenceGemma(w, c, ids, out) };
}

/** A GPT-2 of width 32, two layers. */
export function gpt2Checkpoint(seed: number): RandomCheckpoint {
  const c = { n_embd: 32, n_layer: 2, n_head: 4, vocab_size: VOCAB, n_positions: 64 };
  const w = randomGpt2Weights(c, rng(seed));
  const folder = write(`gpt2-${seed}`, { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', ...c, layer_norm_epsilon: 1e-5 }, w);
  return { folder, reference: (ids, out) => referenceGpt2(w, c, ids, out) };
}
