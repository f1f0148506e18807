/** Shared test fixtures: paths into ../shared and converted stories260k folders (made once per run). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertLlama2c } from '../src/models/llama2c';
import { InspectEngine } from '../src/inspect/inspectEngine';
import { ModelPool } from '../src/models/modelPool';
import { DEFAULT_METRIC_OPTIONS } from '../src/core/tokenRows';
import type { InspectRequest, InspectResult } from '../src/shared/protocol';

export const SHARED = path.resolve(__dirname, '..', '..', 'shared');
export const STORIES = path.join(SHARED, 'models', 'stories260k');
export const STORIES_BIN = path.join(STORIES, 'stories260K.bin');
export const STORIES_TOK = path.join(STORIES, 'tok512.bin');
export const ORTGENAI = path.join(SHARED, 'models', 'tiny-random-llama-ortgenai');
export const GPT2_TOKENIZER = path.join(SHARED, 'tokenizers', 'gpt2');

/**
 * Files some tests read from the developers' shared folder beside the repository (CI always
 * has it). Without one, those tests are skipped with a line saying what it is, where it
 * comes from, its sha256 and where to put it.
 */
interface Fixture {
  what: string;
  source: string;
  files: { path: string; sha256: string }[];
}
export const FIXTURES = {
  stories260k: {
    what: "Karpathy's stories260K (a 260k-parameter Llama trained on TinyStories, llama2.c format) and its 512-piece tokenizer",
    source: 'https://huggingface.co/karpathy/tinyllamas/tree/main/stories260K (MIT)',
    files: [
      { path: STORIES_BIN, sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
      { path: STORIES_TOK, sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
    ],
  },
  gpt2Tokenizer: {
    what: "GPT-2's tokenizer.json (50257-token byte-level BPE)",
    source: 'https://huggingface.co/openai-community/gpt2/blob/main/tokenizer.json (MIT)',
    files: [
      {
        path: path.join(GPT2_TOKENIZER, 'tokenizer.json'),
        sha256: '337da36be7a71a6e88aa9148967a7bc8736f4b47c7de8e19ba92b89e80734cfc',
      },
    ],
  },
  ortGenaiLlama: {
    what: 'a tiny random float16 Llama exported by onnxruntime-genai (contrib operators, past_key_values inputs)',
    source:
      'https://github.com/microsoft/onnxruntime-genai, test/test_models/hf-internal-testing/tiny-random-LlamaForCausalLM-fp16 at f00eed5b (MIT)',
    files: [
      {
        path: path.join(ORTGENAI, 'model.onnx'),
        sha256: '3d13c04efa19b6926f7b681b2f244c2b3fa984aa0bdd1f81ee6276d7e9996e91',
      },
      {
        path: path.join(ORTGENAI, 'model.onnx.data'),
        sha256: 'de83a26356d47822412cbc6b56931ad513751714457133ac35b5d9e71f587610',
      },
      {
        path: path.join(ORTGENAI, 'tokenizer.json'),
        sha256: 'd606f46a8aa6f29f0a0abdec7c3ffddefc9f9bfe26919532d209a0a850e25029',
      },
    ],
  },
} satisfies Record<string, Fixture>;

/**
 * Test options that skip the test when a fixture is missing: `test(name, needs('stories260k'), fn)`.
 * The reason is one line per missing fixture.
 */
export function needs(...names: (keyof typeof FIXTURES)[]): { skip?: string } {
  const missing = names
    .map((n) => FIXTURES[n] as Fixture)
    .filter((f) => f.files.some((file) => !fs.existsSync(file.path)));
  if (missing.length === 0) return {};
  const describe = (f: Fixture) =>
    `needs ${f.what}, from ${f.source}: ${f.files.map((file) => `${path.basename(file.path)} (sha256 ${file.sha256}) at ${file.path}`).join(', ')}`;
  return { skip: missing.map(describe).join('; ') };
}

/** Test options that skip a test in a real VS Code when npm test could not install its tools. */
export function needsVscode(): { skip?: string } {
  return process.env.DISTILL_LENS_NO_VSCODE ? { skip: process.env.DISTILL_LENS_NO_VSCODE } : {};
}

/** Scratch folders, removed at exit by one handler. */
const scratch: string[] = [];
process.on('exit', () => scratch.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

/** A scratch folder removed at exit. */
export function tempDir(prefix = 'distill-lens-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

// the build cache of every test run is private, so tests never see a user's cache
process.env.DISTILL_LENS_CACHE ??= tempDir('distill-lens-cache-');

/** The built-in pair in models/demo (part of the repository, so tests using it run everywhere). */
export function demoPair(): { teacher: string; student: string } {
  const root = path.resolve(__dirname, '..', 'models', 'demo');
  return { teacher: path.join(root, 'teacher'), student: path.join(root, 'student') };
}

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
export async function maxLogitError(
  folder: string,
  tokens: number[],
  reference: Float64Array[],
): Promise<number> {
  const { resolveModel } = await import('../src/models/modelSource');
  const { LanguageModel } = await import('../src/models/languageModel');
  const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
  try {
    const logits = await lm.forward(tokens);
    let maxDiff = 0;
    reference.forEach((row, pos) =>
      row.forEach(
        (v, i) =>
          (maxDiff = Math.max(maxDiff, Math.abs(v - (logits.data as Float32Array)[pos * logits.vocab + i]))),
      ),
    );
    return maxDiff;
  } finally {
    await lm.release();
  }
}

/** One inspection with a fresh pool and build cache (CPU, fkl, default options), its engine released after. */
export async function inspectOnce(
  req: Pick<InspectRequest, 'teacher' | 'student' | 'text'> & Partial<InspectRequest>,
): Promise<InspectResult> {
  const engine = new InspectEngine(new ModelPool({ cacheDir: tempDir() }));
  try {
    return await engine.inspect({
      options: DEFAULT_METRIC_OPTIONS,
      metric: 'fkl',
      device: 'cpu',
      maxTokens: 4096,
      ...req,
    });
  } finally {
    await engine.dispose();
  }
}
