/**
 * npm run bench:methods: the six distillation methods with one budget on the stories260K pair
 * (llama2.c's 5-layer model as the teacher, its first 3 layers as the student): word-level FKL,
 * word-level RKL, SeqKD, GKD, on-policy and MiniLLM, 200 steps of batch 4 each, LoRA with the
 * default rank and learning rate, seed 1. Word-level runs train on 50 template stories; the
 * sequence-level runs on their first sentences as prompts (48 new tokens). Every student is
 * then judged the same way, independently of its run's own numbers:
 *
 *   - teacher-forced FKL: mean over the tokens of 10 held-out stories of KL(p ‖ q), float64
 *   - sampled reverse KL: the student writes one completion (T = 1, 48 tokens, fixed seeds) of
 *     each held-out story's first sentence; mean over them of Σ_t KL(q_t ‖ p_t)
 *   - the teacher's log p per token of those completions, and their distinct-2
 *   - the run's wall time
 *
 * Prints the table and writes bench-results/methods-bench.json. Needs ../shared (llama2.c's
 * stories260K); says so and stops without it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertLlama2c } from '../src/models/llama2c';
import { runDistillation } from '../src/train/distill';
import { resolveModel } from '../src/models/modelSource';
import { LanguageModel } from '../src/models/languageModel';
import { TextTokenizer } from '../src/models/tokenizer';
import { sampledHeldOut } from '../src/train/onPolicy';
import { GENERATION_DEFAULTS, type DistillRequest } from '../src/shared/protocol';
import { storiesText } from '../test/train/storiesText';

const ROOT = path.resolve(__dirname, '..');
const STORIES = path.resolve(ROOT, '..', 'shared', 'models', 'stories260k');
const STEPS = Number(process.env.BENCH_STEPS ?? 200);

/** Mean over the text's tokens of KL(p ‖ q) from both models' logits, in float64. */
async function teacherForcedFkl(
  student: LanguageModel,
  teacher: LanguageModel,
  tokenizer: TextTokenizer,
  texts: string[],
): Promise<number> {
  let total = 0;
  let count = 0;
  for (const text of texts) {
    const ids = tokenizer.encode(text).ids;
    const q = (await student.forward(ids)).data as Float32Array;
    const p = (await teacher.forward(ids)).data as Float32Array;
    const V = (q.length / ids.length) | 0;
    for (let t = 0; t < ids.length - 1; t++) {
      const row = (d: Float32Array) => {
        const z = Array.from(d.subarray(t * V, (t + 1) * V));
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
        return z.map((v) => v - lse);
      };
      const lp = row(p);
      const lq = row(q);
      total += lp.reduce((a, l, v) => a + Math.exp(l) * (l - lq[v]), 0);
      count++;
    }
  }
  return total / count;
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(STORIES, 'stories260K.bin'))) {
    console.log(`bench:methods needs llama2.c's stories260K in ${STORIES} (the shared fixtures); not run.`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distill-lens-methods-'));
  try {
    const teacher = path.join(dir, 'teacher');
    const student = path.join(dir, 'student');
    const checkpoint = path.join(STORIES, 'stories260K.bin');
    const tok = path.join(STORIES, 'tok512.bin');
    convertLlama2c({ checkpoint, tokenizer: tok, out: teacher });
    convertLlama2c({ checkpoint, tokenizer: tok, out: student, layers: 3 });
    const stories = storiesText(60, 3);
    const [train, held] = [stories.slice(0, 50), stories.slice(50)];
    const firstSentence = (s: string) => s.slice(0, s.indexOf('.') + 1);
    const textFile = path.join(dir, 'stories.txt');
    fs.writeFileSync(textFile, train.join('\n\n'));
    const promptFile = path.join(dir, 'prompts.jsonl');
    fs.writeFileSync(
      promptFile,
      train.map((s) => JSON.stringify({ prompt: firstSentence(s) })).join('\n') + '\n',
    );
    const base = {
      teacher,
      student,
      steps: STEPS,
      lr: 2e-3,
      batchSize: 4,
      seqLen: 80,
      seed: 1,
      generation: { maxNewTokens: 48 },
    };
    const runs: [string, Partial<DistillRequest>][] = [
      ['word-level FKL', { data: { path: textFile }, loss: { key: 'fkl', temperature: 1 } }],
      ['word-level RKL', { data: { path: textFile }, loss: { key: 'rkl', temperature: 1 } }],
      ['SeqKD', { data: { path: promptFile }, method: 'seqkd', loss: { key: 'ce', temperature: 1 } }],
      [
        'GKD (λ 0.5, β 0.5)',
        { data: { path: promptFile }, method: 'gkd', loss: { key: 'gjsd', temperature: 1 } },
      ],
      ['on-policy', { data: { path: promptFile }, method: 'onpolicy', loss: { key: 'fkl', temperature: 1 } }],
      ['MiniLLM', { data: { path: promptFile }, method: 'minillm', loss: { key: 'fkl', temperature: 1 } }],
    ];
    const tokenizer = TextTokenizer.fromFolder(student);
    const teacherLm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
    const prompts = held.map((s, i) => ({ text: firstSentence(s), source: `held-out ${i + 1}` }));
    const judge = async (folder: string) => {
      const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
      try {
        const fkl = await teacherForcedFkl(lm, teacherLm, tokenizer, held);
        const g = { ...GENERATION_DEFAULTS, maxNewTokens: 48 };
        const sampled = await sampledHeldOut(
          lm,
          { kind: 'local', lm: teacherLm },
          tokenizer,
          prompts,
          g,
          424242,
          () => {},
        );
        return { fkl, ...sampled };
      } finally {
        await lm.release();
      }
    };
    const rows: Record<string, unknown>[] = [
      { method: 'student before training', ...(await judge(student)), seconds: 0 },
    ];
    for (const [name, r] of runs) {
      const out = path.join(dir, name.replace(/\W+/g, '-'));
      const t = performance.now();
      await runDistillation({ ...base, ...r, out } as DistillRequest);
      const seconds = (performance.now() - t) / 1000;
      rows.push({ method: name, ...(await judge(out)), seconds });
      console.error(`bench:methods: ${name} done in ${seconds.toFixed(1)} s`);
    }
    rows.push({ method: 'teacher', ...(await judge(teacher)), seconds: 0 });
    await teacherLm.release();
    const f = (x: unknown, d = 3) => (typeof x === 'number' ? x.toFixed(d) : String(x));
    const lines = [
      `| method | teacher-forced FKL | sampled Σ reverse KL | teacher log p / token | distinct-2 | wall time (s) |`,
      `|---|--:|--:|--:|--:|--:|`,
      ...rows.map(
        (r) =>
          `| ${r.method} | ${f(r.fkl)} | ${f(r.reverseKl, 1)} | ${f(r.teacherLogp)} | ${f(r.distinct2)} | ${f(r.seconds, 0)} |`,
      ),
    ];
    console.log(
      `${STEPS} steps of batch 4 each, stories260K pair (5-layer teacher, 3-layer student), seed 1`,
    );
    console.log(lines.join('\n'));
    fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
    fs.writeFileSync(
      path.join(ROOT, 'bench-results', 'methods-bench.json'),
      JSON.stringify({ steps: STEPS, rows }, null, 1),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
