/** GPT-2-small-shaped checkpoints with random weights (GPT-2's init), written as safetensors for the benchmarks. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../src/models/safetensors';
import { seededRandom as rng } from '../src/train/random';

/** A folder with GPT-2's tokenizer.json: BENCH_GPT2_TOKENIZER, else the developers' shared folder beside the repository. */
export const GPT2_TOKENIZER =
  process.env.BENCH_GPT2_TOKENIZER ?? path.resolve(__dirname, '..', '..', 'shared', 'tokenizers', 'gpt2');
if (!fs.existsSync(path.join(GPT2_TOKENIZER, 'tokenizer.json'))) {
  console.error(
    `the benchmark needs GPT-2's tokenizer.json (https://huggingface.co/openai-community/gpt2): set BENCH_GPT2_TOKENIZER to its folder (looked in ${GPT2_TOKENIZER})`,
  );
  process.exit(2);
}

export function writeGpt2(dir: string, layers: number, seed: number, logitScale: number): void {
  if (fs.existsSync(path.join(dir, 'config.json'))) return;
  const D = 768;
  const V = 50257;
  const P = 1024;
  const r = rng(seed);
  // uniform with the given standard deviation (cheaper than Gaussian, same scale)
  const t = (shape: number[], std: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const half = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) data[i] = mean + half * (2 * r() - 1);
    return { shape, data };
  };
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
