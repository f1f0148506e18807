/**
 * Checkpoints with random weights for the benchmarks, written as safetensors in the Hugging
 * Face layouts: GPT-2-small-shaped (GPT-2's init), and Qwen2.5-shaped with the real padded
 * vocabulary of 151,936 entries (whose metrics cost three times GPT-2's per token).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../src/models/safetensors';
import { seededRandom as rng } from '../src/core/random';

/** A folder with GPT-2's tokenizer.json: BENCH_GPT2_TOKENIZER, else the developers' shared folder beside the repository. */
export const GPT2_TOKENIZER =
  process.env.BENCH_GPT2_TOKENIZER ?? path.resolve(__dirname, '..', '..', 'shared', 'tokenizers', 'gpt2');
if (!fs.existsSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'))) {
  console.error(
    `the benchmark needs GPT-2's tokenizer.json (https://huggingface.co/openai-community/gpt2): set BENCH_GPT2_TOKENIZER to its folder (looked in ${GPT2_TOKENIZER})`,
  );
  process.exit(2);
}

/** Seeded tensors of uniform values with a given mean and standard deviation (cheaper than Gaussian, same scale). */
function uniformTensors(seed: number) {
  const r = rng(seed);
  return (shape: number[], std: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const half = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) data[i] = mean + half * (2 * r() - 1);
    return { shape, data };
  };
}

export function writeGpt2(dir: string, layers: number, seed: number, logitScale: number): void {
  if (fs.existsSync(path.join(dir, 'config.json'))) return;
  const D = 768;
  const V = 50257;
  const P = 1024;
  const t = uniformTensors(seed);
  const w: Record<string, { shape: number[]; data: Float32Array }> = {
    'wte.weight': t([V, D], 0.02),
    'wpe.weight': t([P, D], 0.01),
    'ln_f.weight': t([D], 0, logitScale),
    'ln_f.bias': t([D], 0),
  };
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}.`;
    Object.assign(w, {
      [p + 'ln_1.weight']: t([D], 0, 1),
      [p + 'ln_1.bias']: t([D], 0),
      [p + 'attn.c_attn.weight']: t([D, 3 * D], 0.02),
      [p + 'attn.c_attn.bias']: t([3 * D], 0),
      [p + 'attn.c_proj.weight']: t([D, D], 0.02 / Math.sqrt(2 * layers)),
      [p + 'attn.c_proj.bias']: t([D], 0),
      [p + 'ln_2.weight']: t([D], 0, 1),
      [p + 'ln_2.bias']: t([D], 0),
      [p + 'mlp.c_fc.weight']: t([D, 4 * D], 0.02),
      [p + 'mlp.c_fc.bias']: t([4 * D], 0),
      [p + 'mlp.c_proj.weight']: t([4 * D, D], 0.02 / Math.sqrt(2 * layers)),
      [p + 'mlp.c_proj.bias']: t([D], 0),
    });
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), w);
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: D,
      n_layer: layers,
      n_head: 12,
      n_positions: P,
      vocab_size: V,
      layer_norm_epsilon: 1e-5,
    }),
  );
  fs.copyFileSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
}

/** Qwen2.5's vocabulary as its checkpoints pad it (the tokenizer has 151,665 entries). */
export const QWEN_VOCAB = 151936;

/**
 * Qwen2ForCausalLM with Qwen2.5-0.5B's width (896, 14 query heads, 2 key/value heads, 4864
 * feed-forward, tied head) and the given depth; `logitScale` is the final norm's gain, which
 * sets how peaked the outputs are. The bench text's GPT-2 token ids are valid ids here.
 */
export function writeQwen2(dir: string, layers: number, seed: number, logitScale: number): void {
  if (fs.existsSync(path.join(dir, 'config.json'))) return;
  const D = 896;
  const H = 14;
  const KV = 2;
  const hd = D / H;
  const F = 4864;
  const V = QWEN_VOCAB;
  const t = uniformTensors(seed);
  const w: Record<string, { shape: number[]; data: Float32Array }> = {
    'model.embed_tokens.weight': t([V, D], 0.02),
    'model.norm.weight': t([D], 0, logitScale),
  };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(w, {
      [p + 'input_layernorm.weight']: t([D], 0, 1),
      [p + 'post_attention_layernorm.weight']: t([D], 0, 1),
      [p + 'self_attn.q_proj.weight']: t([H * hd, D], 0.02),
      [p + 'self_attn.q_proj.bias']: t([H * hd], 0.02),
      [p + 'self_attn.k_proj.weight']: t([KV * hd, D], 0.02),
      [p + 'self_attn.k_proj.bias']: t([KV * hd], 0.02),
      [p + 'self_attn.v_proj.weight']: t([KV * hd, D], 0.02),
      [p + 'self_attn.v_proj.bias']: t([KV * hd], 0.02),
      [p + 'self_attn.o_proj.weight']: t([D, H * hd], 0.02 / Math.sqrt(2 * layers)),
      [p + 'mlp.gate_proj.weight']: t([F, D], 0.02),
      [p + 'mlp.up_proj.weight']: t([F, D], 0.02),
      [p + 'mlp.down_proj.weight']: t([D, F], 0.02 / Math.sqrt(2 * layers)),
    });
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), w);
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      hidden_size: D,
      intermediate_size: F,
      num_hidden_layers: layers,
      num_attention_heads: H,
      num_key_value_heads: KV,
      vocab_size: V,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      hidden_act: 'silu',
      tie_word_embeddings: true,
      use_sliding_window: false,
      sliding_window: 32768,
      max_window_layers: 21,
      torch_dtype: 'bfloat16',
    }),
  );
  fs.copyFileSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
}
