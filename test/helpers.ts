/** Shared test fixtures: paths into ../shared and converted stories260k folders (made once per run). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertLlama2c } from '../src/models/llama2c';

export const SHARED = path.resolve(__dirname, '..', '..', 'shared');
export const STORIES = path.join(SHARED, 'models', 'stories260k');
export const STORIES_BIN = path.join(STORIES, 'stories260K.bin');
export const STORIES_TOK = path.join(STORIES, 'tok512.bin');
export const ORTGENAI = path.join(SHARED, 'models', 'tiny-random-llama-ortgenai');
export const GPT2_TOKENIZER = path.join(SHARED, 'tokenizers', 'gpt2');

/** A scratch folder removed at exit. */
export function tempDir(prefix = 'distill-lens-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// the build cache of every test run is private, so tests never see a user's cache
process.env.DISTILL_LENS_CACHE ??= tempDir('distill-lens-cache-');

let pair: { teacher: string; student: string } | undefined;
/** stories260k converted (teacher) and truncated to 3 layers (student). */
export function storiesPair(): { teacher: string; student: string } {
  if (pair) return pair;
  const dir = tempDir();
  const teacher = path.join(dir, 'teacher');
  const student = path.join(dir, 'student');
  convertLlama2c({ checkpoint: STORIES_BIN, tokenizer: STORIES_TOK, out: teacher });
  convertLlama2c({ checkpoint: STORIES_BIN, tokenizer: STORIES_TOK, out: student, layers: 3 });
  return (pair = { teacher, student });
}

/** Runs a model folder on `tokens` and returns max |logit − reference| over every position. */
export async function maxLogitError(folder: string, tokens: number[], reference: Float64Array[]): Promise<number> {
  const { resolveModel } = await import('../src/models/modelSource');
  const { LanguageModel } = await import('../src/runtime/languageModel');
  const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
  try {
    const logits = await lm.forward(tokens);
    let maxDiff = 0;
    reference.forEach((row, pos) => row.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - (logits.data as Float32Array)[pos * logits.vocab + i])))));
    return maxDiff;
  } finally {
    await lm.release();
  }
}
