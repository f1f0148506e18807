/**
 * npm run bench:defaults — the sweep behind Run Distillation's default learning rate.
 *
 * For two small pairs and two kinds of text, LoRA runs (rank 8, alpha 16, q/v projections,
 * batch 4 × 128 tokens, fkl at T = 1, AdamW, warm-up then cosine: every other default) at
 * several learning rates, 100 and 300 steps, two seeds; each prints the held-out forward KL
 * change (held-out split by whole documents, never trained on).
 *
 *   stories:  the stories260K teacher (5 layers) and its first 3 layers, on 160 TinyStories-like
 *             stories written from templates (needs ../shared/models/stories260k)
 *   builtin:  the built-in pair (4 and 2 layers), on TypeScript declarations it never saw:
 *             the .d.ts files of protobufjs, commander and esbuild from node_modules
 *
 * Results: bench-results/defaults-sweep.json, and a table on standard output.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertLlama2c } from '../src/models/llama2c';
import { runDistillation } from '../src/train/distill';
import type { DistillRequest } from '../src/shared/protocol';
import { storiesText } from '../test/train/storiesText';

const ROOT = path.resolve(__dirname, '..');
const STORIES = path.resolve(ROOT, '..', 'shared', 'models', 'stories260k');
const LRS = (process.env.SWEEP_LRS ?? '5e-4,1e-3,2e-3,4e-3').split(',').map(Number);
const STEPS = (process.env.SWEEP_STEPS ?? '100,300').split(',').map(Number);
const SEEDS = (process.env.SWEEP_SEEDS ?? '1,2').split(',').map(Number);

interface Setup {
  name: string;
  teacher: string;
  student: string;
  data: string;
}

function setups(dir: string): Setup[] {
  const out: Setup[] = [];
  if (fs.existsSync(path.join(STORIES, 'stories260K.bin'))) {
    const teacher = path.join(dir, 'stories-teacher');
    const student = path.join(dir, 'stories-student');
    const bin = path.join(STORIES, 'stories260K.bin');
    const tok = path.join(STORIES, 'tok512.bin');
    convertLlama2c({ checkpoint: bin, tokenizer: tok, out: teacher });
    convertLlama2c({ checkpoint: bin, tokenizer: tok, out: student, layers: 3 });
    const data = path.join(dir, 'stories');
    fs.mkdirSync(data);
    storiesText(160, 11).forEach((s, i) =>
      fs.writeFileSync(path.join(data, `story-${String(i).padStart(3, '0')}.txt`), s),
    );
    out.push({ name: 'stories', teacher, student, data });
  } else console.error(`skipping the stories pair: ${STORIES} is missing`);
  const declarations = path.join(dir, 'declarations');
  fs.mkdirSync(declarations);
  for (const f of ['protobufjs/index.d.ts', 'commander/typings/index.d.ts', 'esbuild/lib/main.d.ts']) {
    fs.copyFileSync(path.join(ROOT, 'node_modules', f), path.join(declarations, f.replace(/\//g, '_')));
  }
  const demo = path.join(ROOT, 'models', 'demo');
  out.push({
    name: 'builtin',
    teacher: path.join(demo, 'teacher'),
    student: path.join(demo, 'student'),
    data: declarations,
  });
  return out;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distill-lens-sweep-'));
  process.env.DISTILL_LENS_CACHE ??= path.join(dir, 'cache');
  const results: {
    setup: string;
    lr: number;
    steps: number;
    seed: number;
    fklBefore: number;
    fklAfter: number;
    change: number;
    seconds: number;
  }[] = [];
  try {
    for (const s of setups(dir)) {
      for (const steps of STEPS) {
        for (const lr of LRS) {
          for (const seed of SEEDS) {
            const out = path.join(dir, `out-${s.name}-${steps}-${lr}-${seed}`);
            const req: DistillRequest = {
              teacher: s.teacher,
              student: s.student,
              data: { path: s.data },
              loss: { key: 'fkl', temperature: 1 },
              steps,
              lr,
              batchSize: 4,
              seqLen: 128,
              seed,
              out,
            };
            const t0 = performance.now();
            const record = await runDistillation(req);
            const r = {
              setup: s.name,
              lr,
              steps,
              seed,
              fklBefore: record.heldOut.before.fkl,
              fklAfter: record.heldOut.after.fkl,
              change: record.heldOut.fklChange,
              seconds: (performance.now() - t0) / 1000,
            };
            results.push(r);
            console.log(
              `${r.setup.padEnd(8)} steps ${String(steps).padStart(3)}  lr ${lr.toExponential(0).padEnd(5)}  seed ${seed}  fkl ${r.fklBefore.toFixed(4)} → ${r.fklAfter.toFixed(4)}  ${(100 * r.change).toFixed(1)}%  (${r.seconds.toFixed(0)} s)`,
            );
            fs.rmSync(out, { recursive: true, force: true });
          }
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log('\nmean held-out fkl change over seeds:');
  for (const setup of [...new Set(results.map((r) => r.setup))])
    for (const steps of STEPS)
      console.log(
        `${setup.padEnd(8)} ${String(steps).padStart(3)} steps: ` +
          LRS.map((lr) => {
            const rs = results.filter((r) => r.setup === setup && r.steps === steps && r.lr === lr);
            return `lr ${lr.toExponential(0)} ${((100 * rs.reduce((a, r) => a + r.change, 0)) / rs.length).toFixed(1)}%`;
          }).join('  '),
      );
  fs.mkdirSync(path.join(ROOT, 'bench-results'), { recursive: true });
  fs.writeFileSync(
    path.join(ROOT, 'bench-results', 'defaults-sweep.json'),
    JSON.stringify({ date: new Date().toISOString(), results }, null, 1),
  );
}

void main();
