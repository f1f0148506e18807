/**
 * npm run bench: `distill-lens inspect` on a GPT-2-small-shaped teacher (12 layers, width
 * 768, vocabulary 50257) and a 6-layer student, random weights written here as safetensors,
 * 512 tokens, CPU. Reports each step, the whole-process time, peak memory, the metrics
 * share, and the ratio to the same job in PyTorch eager (when python3-torch is installed).
 *
 * Two weight draws, both with GPT-2's init (std 0.02): "peaked" sets the final layer norm's
 * gain to 8 so the output distributions are about as concentrated as a trained model's
 * (teacher entropy a few nats); "gpt2-init" keeps gain 1, whose outputs are nearly uniform:
 * AKL's head then spans half the vocabulary, its worst case.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GPT2_TOKENIZER, QWEN_VOCAB, writeGpt2, writeQwen2 } from './checkpoints';
import { TextTokenizer } from '../src/models/tokenizer';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'bench-results');
const BIN = path.join(ROOT, 'bin', 'distill-lens.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

/** A text of exactly 512 GPT-2 tokens. */
function benchText(): { text: string; ids: number[] } {
  const tok = TextTokenizer.fromFolder(GPT2_TOKENIZER);
  // prose only: this tokenizer.json adds whitespace-run tokens (ids ≥ 50257) beyond GPT-2's vocabulary
  const base =
    fs
      .readFileSync(path.join(ROOT, 'README.md'), 'utf8')
      .replace(/```[\s\S]*?```/g, '')
      .replace(/[ \t]{2,}/g, ' ') + '\n';
  let text = base;
  while (tok.encode(text).ids.length < 512) text += base;
  const ids = tok.encode(text).ids.slice(0, 512);
  text = tok.decode(ids);
  const again = tok.encode(text).ids;
  return { text, ids: again };
}

interface Timed {
  wallMs: number;
  timings: Record<string, number>;
}

function runInspect(
  teacher: string,
  student: string,
  textFile: string,
  env: NodeJS.ProcessEnv,
  extra: string[] = [],
): Timed {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'inspect',
      '--teacher',
      teacher,
      '--student',
      student,
      '--file',
      textFile,
      '--format',
      'json',
      '--out',
      '/dev/null',
      '--timings',
      '--max-tokens',
      '100000',
      ...extra,
    ],
    { encoding: 'utf8', env },
  );
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`inspect failed: ${r.stderr}`);
  const line = r.stderr.split('\n').find((l) => l.startsWith('timings '));
  return { wallMs, timings: JSON.parse(line!.slice('timings '.length)) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function torchAvailable(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const { text, ids } = benchText();
  const textFile = path.join(OUT, 'bench-text.txt');
  fs.writeFileSync(textFile, text);
  const idsFile = path.join(OUT, 'bench-ids.json');
  fs.writeFileSync(idsFile, JSON.stringify(ids));
  const env = { ...process.env, DISTILL_LENS_CACHE: path.join(OUT, 'cache') };
  const report: Record<string, unknown> = {
    tokens: ids.length,
    runs: RUNS,
    cpu: 'see /proc/cpuinfo',
    date: new Date().toISOString(),
  };
  const haveTorch = torchAvailable();
  const variants = [
    { variant: 'peaked', family: 'gpt2', logitScale: 8 },
    { variant: 'gpt2-init', family: 'gpt2', logitScale: 1 },
    // a large vocabulary: the metrics' share grows with it (no PyTorch run for this one)
    { variant: 'qwen2.5-vocab', family: 'qwen2', logitScale: 6 },
  ] as const;
  for (const { variant, family, logitScale } of variants) {
    const teacher = path.join(OUT, 'models', variant, family === 'gpt2' ? 'teacher-12l' : 'teacher-4l');
    const student = path.join(OUT, 'models', variant, family === 'gpt2' ? 'student-6l' : 'student-2l');
    process.stderr.write(`[${variant}] writing random weights…\n`);
    if (family === 'gpt2') {
      writeGpt2(teacher, 12, 1, logitScale);
      writeGpt2(student, 6, 2, logitScale);
    } else {
      writeQwen2(teacher, 4, 3, logitScale);
      writeQwen2(student, 2, 4, logitScale);
    }
    process.stderr.write(`[${variant}] first run (builds and caches the ONNX graphs)…\n`);
    const cold = runInspect(teacher, student, textFile, env);
    const warm: Timed[] = [];
    for (let i = 0; i < RUNS; i++) warm.push(runInspect(teacher, student, textFile, env));
    const pick = (k: string) => median(warm.map((w) => w.timings[k]));
    const wall = median(warm.map((w) => w.wallMs));
    const row: Record<string, number | string> = {
      coldWallMs: cold.wallMs,
      coldLoadMs: cold.timings.loadMs,
      wallMs: wall,
      loadMs: pick('loadMs'),
      tokenizeMs: pick('tokenizeMs'),
      teacherForwardMs: pick('teacherMs'),
      studentForwardMs: pick('studentMs'),
      metricsMs: pick('metricsMs'),
      engineTotalMs: pick('totalMs'),
      peakRssMiB: Math.max(...warm.map((w) => w.timings.peakRssMiB)),
    };
    row.metricsShareOfWall = Number(row.metricsMs) / wall;
    if (variant === 'peaked') {
      // the layer view (--layers): every hidden state through the final norm and head, CKA
      runInspect(teacher, student, textFile, env, ['--layers']); // builds the layer graphs
      const layers = Array.from({ length: RUNS }, () =>
        runInspect(teacher, student, textFile, env, ['--layers']),
      );
      row.layersWallMs = median(layers.map((w) => w.wallMs));
      row.layersToPlain = Number(row.layersWallMs) / wall;
      row.layersPeakRssMiB = Math.max(...layers.map((w) => w.timings.peakRssMiB));
    }
    row.teacherMeanEntropy = pick('teacherMeanEntropy');
    row.vocabulary = family === 'gpt2' ? 50257 : QWEN_VOCAB;
    row.aklFullRowSplits = pick('aklFullRowSplits');
    if (family !== 'gpt2') {
      row.torch = 'not measured for this pair';
    } else if (haveTorch) {
      const torchRuns: { wallMs: number; out: any }[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        const r = spawnSync(
          '/usr/bin/python3',
          [path.join(__dirname, 'torchReference.py'), teacher, student, idsFile],
          {
            encoding: 'utf8',
            env: {
              ...process.env,
              ...(process.env.OPENBLAS_CORETYPE ? { OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE } : {}),
              OMP_NUM_THREADS: '2',
              OPENBLAS_NUM_THREADS: '2',
            },
          },
        );
        if (r.status !== 0) throw new Error(`torch reference failed: ${r.stderr}`);
        torchRuns.push({
          wallMs: performance.now() - t0,
          out: JSON.parse(r.stdout.trim().split('\n').pop()!),
        });
      }
      row.torchWallMs = median(torchRuns.map((t) => t.wallMs));
      row.torchForwardMs = median(torchRuns.map((t) => t.out.teacherMs + t.out.studentMs));
      row.torchMetricsMs = median(torchRuns.map((t) => t.out.metricsMs));
      row.ratioToTorch = wall / Number(row.torchWallMs);
      row.torchBlasGflops = median(torchRuns.map((t) => t.out.blasGflops));
      if (Number(row.torchBlasGflops) < 30)
        process.stderr.write(
          `warning: PyTorch's matrix products run at ${Number(row.torchBlasGflops).toFixed(1)} GFLOP/s: probably the reference BLAS (apt-get install libopenblas0-pthread), so the ratio flatters Distill Lens\n`,
        );
    } else {
      row.torch = 'not installed: apt-get install python3-torch to measure the ratio';
    }
    report[variant] = row;
    process.stderr.write(`[${variant}] ${JSON.stringify(row)}\n`);
  }
  fs.writeFileSync(path.join(OUT, 'inspect-bench.json'), JSON.stringify(report, null, 2));
  const fmt = (x: unknown) =>
    typeof x === 'number' ? (Math.abs(x) < 10 ? x.toFixed(3) : x.toFixed(0)) : String(x);
  const keys = [...new Set(variants.flatMap((v) => Object.keys(report[v.variant] as object)))];
  console.log(
    `\ndistill-lens inspect, ${ids.length} tokens, CPU, median of ${RUNS} warm runs: GPT-2-small teacher (12 layers) / 6-layer student, peaked and at GPT-2's init; a Qwen2.5-layout pair (4 / 2 layers, width 896) with the 151,936-entry vocabulary`,
  );
  console.log(`${'step'.padEnd(22)}${variants.map((v) => v.variant.padStart(16)).join('')}`);
  for (const k of keys)
    console.log(
      `${k.padEnd(22)}${variants.map((v) => fmt((report[v.variant] as any)[k] ?? '').padStart(16)).join('')}`,
    );
  console.log(`\nwritten to ${path.relative(ROOT, path.join(OUT, 'inspect-bench.json'))}`);
}

main();
