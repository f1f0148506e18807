/**
 * npm run build:demo-models: rebuilds the built-in model pair in models/demo/ from scratch,
 * with the project's own engine:
 *
 *   1. the corpus: declaration files npm installs with the dev dependencies: TypeScript's
 *      lib.*.d.ts (Apache-2.0), @types/node and @types/vscode (MIT), each file a document;
 *   2. a byte-level BPE tokenizer of 4096 tokens trained on it (src/models/bpeTrainer.ts);
 *   3. the teacher (Llama layout, 4 layers, width 192) trained from random weights with ce;
 *   4. the student (2 layers, width 128) from random weights, distilled from the teacher
 *      with forward KL; for comparison, the same student trained on the text alone (ce);
 *   5. both stored as float16 safetensors with config.json and tokenizer.json, plus
 *      MODEL_CARD.md and training-log.json.
 *
 * Reproducible: fixed seeds, CPU, files in sorted order. Takes about 40 minutes on 2 cores.
 * DEMO_SCALE=0.1 makes a quick, much worse pair (to try the script).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainByteLevelBpe } from '../src/models/bpeTrainer';
import { readSafetensors, tensorAsFloat32, writeSafetensors } from '../src/models/safetensors';
import { runDistillation } from '../src/train/distill';
import { gaussian, seededRandom } from '../src/core/random';
import type { DistillRequest, RunRecord, TrainDocument } from '../src/shared/protocol';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'models', 'demo');
const SCALE = Number(process.env.DEMO_SCALE ?? 1);
const VOCAB = 4096;
const SEQ = 256;

const TEACHER = {
  hidden_size: 192,
  intermediate_size: 512,
  num_hidden_layers: 4,
  num_attention_heads: 6,
  num_key_value_heads: 2,
};
const STUDENT = {
  hidden_size: 128,
  intermediate_size: 344,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};

interface CorpusPart {
  package: string;
  licence: string;
  files: string[];
}

/** Declaration files npm installs with this project's dev dependencies, each file a document. */
function corpus(): { documents: TrainDocument[]; parts: CorpusPart[] } {
  const documents: TrainDocument[] = [];
  const parts: CorpusPart[] = [];
  const add = (pkg: string, select: (file: string) => boolean) => {
    const dir = path.join(ROOT, 'node_modules', pkg);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const files = (fs.readdirSync(dir, { recursive: true }) as string[])
      .map((f) => f.split(path.sep).join('/'))
      .filter(select)
      .sort();
    for (const f of files)
      documents.push({ source: `${pkg}/${f}`, text: fs.readFileSync(path.join(dir, f), 'utf8') });
    parts.push({ package: `${pkg}@${manifest.version}`, licence: manifest.license, files });
  };
  add('typescript', (f) => /^lib\/lib\..*\.d\.ts$/.test(f));
  add('@types/node', (f) => f.endsWith('.d.ts') && !f.startsWith('ts5.'));
  add('@types/vscode', (f) => f === 'index.d.ts');
  return { documents, parts };
}

function llamaConfig(shape: typeof TEACHER): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...shape,
    vocab_size: VOCAB,
    // the context it was trained on: longer windows would use positions it never saw
    max_position_embeddings: SEQ,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    bos_token_id: 0,
    eos_token_id: 0,
    torch_dtype: 'float16',
  };
}

/** GPT-2-style initialisation: normal(0, 0.02), residual projections scaled by 1/√(2·layers), norm gains 1. */
function writeRandomLlama(dir: string, shape: typeof TEACHER, seed: number, tokenizerJson: string): void {
  const r = seededRandom(seed);
  const D = shape.hidden_size;
  const kv = (D / shape.num_attention_heads) * shape.num_key_value_heads;
  const normal = (dims: number[], std: number) => ({
    shape: dims,
    data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => std * gaussian(r)),
  });
  const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) });
  const residual = 0.02 / Math.sqrt(2 * shape.num_hidden_layers);
  const w: Record<string, { shape: number[]; data: Float32Array }> = {
    'model.embed_tokens.weight': normal([VOCAB, D], 0.02),
    'model.norm.weight': ones(D),
  };
  for (let l = 0; l < shape.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(w, {
      [p + 'input_layernorm.weight']: ones(D),
      [p + 'post_attention_layernorm.weight']: ones(D),
      [p + 'self_attn.q_proj.weight']: normal([D, D], 0.02),
      [p + 'self_attn.k_proj.weight']: normal([kv, D], 0.02),
      [p + 'self_attn.v_proj.weight']: normal([kv, D], 0.02),
      [p + 'self_attn.o_proj.weight']: normal([D, D], residual),
      [p + 'mlp.gate_proj.weight']: normal([shape.intermediate_size, D], 0.02),
      [p + 'mlp.up_proj.weight']: normal([shape.intermediate_size, D], 0.02),
      [p + 'mlp.down_proj.weight']: normal([D, shape.intermediate_size], residual),
    });
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), w);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(llamaConfig(shape), null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), tokenizerJson);
}

/** Copies a trained folder into models/demo as float16 safetensors + config + tokenizer. */
function storeHalf(from: string, to: string): number {
  const file = readSafetensors(path.join(from, 'model.safetensors'));
  const tensors = Object.fromEntries([...file.tensors.keys()].map((k) => [k, tensorAsFloat32(file, k)]));
  fs.mkdirSync(to, { recursive: true });
  writeSafetensors(path.join(to, 'model.safetensors'), tensors, { format: 'pt' }, 'F16');
  const config = JSON.parse(fs.readFileSync(path.join(from, 'config.json'), 'utf8'));
  fs.writeFileSync(
    path.join(to, 'config.json'),
    JSON.stringify({ ...config, torch_dtype: 'float16' }, null, 2) + '\n',
  );
  fs.copyFileSync(path.join(from, 'tokenizer.json'), path.join(to, 'tokenizer.json'));
  return Object.values(tensors).reduce((n, t) => n + t.data.length, 0);
}

async function run(label: string, req: DistillRequest): Promise<RunRecord> {
  let last = 0;
  const record = await runDistillation(req, {
    onProgress: (p) => {
      if (p.phase !== 'train') return process.stderr.write(`[${label}] ${p.message}\n`);
      if (performance.now() - last < 10_000 && p.step !== p.steps) return;
      last = performance.now();
      process.stderr.write(
        `[${label}] step ${p.step}/${p.steps} loss ${p.loss!.toFixed(3)} (${Math.round(p.tokensPerSecond ?? 0)} tokens/s, ${Math.round(p.secondsLeft ?? 0)} s left)\n`,
      );
    },
  });
  process.stderr.write(
    `[${label}] held-out perplexity ${record.heldOut.before.studentPerplexity.toFixed(1)} → ${record.heldOut.after.studentPerplexity.toFixed(1)}\n`,
  );
  return record;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'distill-lens-demo-'));
  try {
    const { documents, parts } = corpus();
    process.stderr.write(
      `corpus: ${parts.map((p) => `${p.files.length} files of ${p.package}`).join(', ')}\n`,
    );
    const tokenizer = trainByteLevelBpe(
      documents.map((d) => d.text),
      VOCAB,
    );
    const tokenizerJson = JSON.stringify(tokenizer.json);
    const teacherInit = path.join(work, 'teacher-init');
    const studentInit = path.join(work, 'student-init');
    writeRandomLlama(teacherInit, TEACHER, 1, tokenizerJson);
    writeRandomLlama(studentInit, STUDENT, 2, tokenizerJson);
    const common = {
      data: { documents },
      mode: { kind: 'full' as const },
      batchSize: 8,
      seqLen: SEQ,
      seed: 7,
      device: 'cpu' as const,
    };
    const steps = (n: number) => Math.max(10, Math.round(n * SCALE));
    const teacherRun = await run('teacher', {
      ...common,
      teacher: '',
      student: teacherInit,
      loss: { key: 'ce', temperature: 1 },
      steps: steps(1200),
      lr: 3e-3,
      warmupSteps: steps(100),
      out: path.join(work, 'teacher'),
    });
    const distilled = await run('student, distilled', {
      ...common,
      teacher: path.join(work, 'teacher'),
      student: studentInit,
      loss: { key: 'fkl', temperature: 1 },
      steps: steps(600),
      lr: 3e-3,
      warmupSteps: steps(50),
      out: path.join(work, 'student'),
    });
    const textOnly = await run('student, text only', {
      ...common,
      teacher: '',
      student: studentInit,
      loss: { key: 'ce', temperature: 1 },
      steps: steps(600),
      lr: 3e-3,
      warmupSteps: steps(50),
      out: path.join(work, 'student-ce'),
    });

    fs.rmSync(OUT, { recursive: true, force: true });
    const teacherParams = storeHalf(path.join(work, 'teacher'), path.join(OUT, 'teacher'));
    const studentParams = storeHalf(path.join(work, 'student'), path.join(OUT, 'student'));
    const bytes = ['teacher', 'student'].reduce(
      (n, m) => n + fs.statSync(path.join(OUT, m, 'model.safetensors')).size,
      0,
    );
    const log = {
      createdAt: new Date().toISOString(),
      corpus: parts,
      tokenizer: { type: 'byte-level BPE', vocabSize: VOCAB, merges: tokenizer.merges.length },
      teacher: teacherRun,
      student: distilled,
      studentTextOnly: textOnly,
      seconds: (performance.now() - t0) / 1000,
    };
    fs.writeFileSync(path.join(OUT, 'training-log.json'), JSON.stringify(log, null, 1) + '\n');
    fs.writeFileSync(
      path.join(OUT, 'MODEL_CARD.md'),
      modelCard({
        parts,
        teacherRun,
        distilled,
        textOnly,
        teacherParams,
        studentParams,
        bytes,
        merges: tokenizer.merges.length,
      }),
    );
    process.stderr.write(
      `wrote ${path.relative(ROOT, OUT)}: ${(bytes / 1e6).toFixed(1)} MB of weights in ${((performance.now() - t0) / 60000).toFixed(1)} min\n`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function modelCard(o: {
  parts: CorpusPart[];
  teacherRun: RunRecord;
  distilled: RunRecord;
  textOnly: RunRecord;
  teacherParams: number;
  studentParams: number;
  bytes: number;
  merges: number;
}): string {
  const ppl = (x: number) => x.toFixed(1);
  const s = o.distilled.settings;
  return `# Distill Lens demo models

The built-in teacher and student, made by \`npm run build:demo-models\` with Distill Lens's own
training engine (\`src/train/\`) on the CPU. They exist so that the extension works at once,
offline, with nothing to download: they are toys that model TypeScript declaration files,
not general language models.

## Corpus

TypeScript declaration files that npm installs with this project's dev dependencies, each
file one document:

${o.parts.map((p) => `- ${p.files.length} files of \`${p.package}\` (licence: ${p.licence})`).join('\n')}

The \`typescript\` files are its \`lib.*.d.ts\` (© Microsoft Corporation, Apache License 2.0);
the \`@types\` packages come from DefinitelyTyped (MIT). ${SEQ}-token windows; whole files
are held out for evaluation (about a tenth of the windows, 64 evaluated).

## Tokenizer

Byte-level BPE (GPT-2's pre-tokenisation and byte alphabet), ${VOCAB} tokens: \`<|endoftext|>\`
(id 0), 256 bytes and ${o.merges} merges learned on the corpus (\`src/models/bpeTrainer.ts\`).
Both models share it. No BOS token is added.

## Models (Llama layout, float16 safetensors, tied embeddings)

| | layers | width | heads (kv) | MLP | parameters |
|---|---:|---:|---:|---:|---:|
| teacher | ${TEACHER.num_hidden_layers} | ${TEACHER.hidden_size} | ${TEACHER.num_attention_heads} (${TEACHER.num_key_value_heads}) | ${TEACHER.intermediate_size} | ${o.teacherParams.toLocaleString('en')} |
| student | ${STUDENT.num_hidden_layers} | ${STUDENT.hidden_size} | ${STUDENT.num_attention_heads} (${STUDENT.num_key_value_heads}) | ${STUDENT.intermediate_size} | ${o.studentParams.toLocaleString('en')} |

${(o.bytes / 1e6).toFixed(1)} MB of weights together.
Context: ${SEQ} tokens, the training window (\`max_position_embeddings\`); longer texts are
analysed in overlapping windows.

## Training

- Teacher: from random weights, cross-entropy on the corpus, ${o.teacherRun.lossCurve.length} steps of ${o.teacherRun.settings.batchSize} × ${SEQ} tokens, AdamW (lr ${o.teacherRun.settings.lr}, warm-up then cosine, weight decay 0.01, clipping at 1), seed ${o.teacherRun.settings.seed}.
- Student: from random weights, distilled from the teacher with \`${(s.loss as { key: string }).key}\` at T = 1 (full fine-tuning), ${o.distilled.lossCurve.length} steps, lr ${s.lr}, same data, windows and seed.
- For comparison, the same student trained on the text alone (ce), same steps and settings.

## Held-out results

| model | perplexity | forward KL to the teacher |
|---|---:|---:|
| teacher | ${ppl(o.teacherRun.heldOut.after.studentPerplexity)} | – |
| student before training (random) | ${ppl(o.distilled.heldOut.before.studentPerplexity)} | ${o.distilled.heldOut.before.fkl.toFixed(3)} |
| student, text only (ce) | ${ppl(o.textOnly.heldOut.after.studentPerplexity)} | – |
| **student, distilled (shipped)** | **${ppl(o.distilled.heldOut.after.studentPerplexity)}** | **${o.distilled.heldOut.after.fkl.toFixed(3)}** |

The full loss curves and every setting are in \`training-log.json\`.
`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
