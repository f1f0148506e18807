/**
 * npm run bench:train: one distillation training step on a 6-layer GPT-2-shaped student
 * (width 768, vocabulary 50257, random weights) against a 12-layer teacher, sequence length
 * 256, CPU, in LoRA and in full fine-tuning. Each mode runs in its own process so that its
 * peak memory is its own. Reports tokens per second, peak memory, and the time split:
 * teacher forward, student forward, student forward + loss + backward, the whole step (the
 * update is the whole step minus forward/backward), and one on-policy step (the student
 * writes 128 tokens, the teacher scores them, one update) split the same way.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeGpt2 } from './checkpoints';
import { resolveModel } from '../src/models/modelSource';
import { readSafetensors } from '../src/models/safetensors';
import { WeightSource } from '../src/models/builder/weights';
import { LanguageModel } from '../src/models/languageModel';
import { openSession } from '../src/onnx/sessions';
import { buildStepGraph, DEFAULT_OPTIMIZER, names } from '../src/train/stepGraph';
import type { TrainMode } from '../src/train/trainableWeights';
import { openPolicyModel } from '../src/train/policyModel';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'bench-results');
const L = Number(process.env.BENCH_SEQ_LEN ?? 256);
const B = Number(process.env.BENCH_BATCH ?? 1);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const V = 50257;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function timeRuns(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<number> {
  await session.run(feeds); // warm-up
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t);
  }
  return median(times);
}

async function child(modeName: 'lora' | 'full'): Promise<void> {
  const teacherDir = path.join(OUT, 'models', 'peaked', 'teacher-12l');
  const studentDir = path.join(OUT, 'models', 'peaked', 'student-6l');
  const env = process.env;
  env.DISTILL_LENS_CACHE ??= path.join(OUT, 'cache');
  const mode: TrainMode =
    modeName === 'lora' ? { kind: 'lora', rank: 8, alpha: 16, targets: ['c_attn'] } : { kind: 'full' };
  const student = await resolveModel(studentDir);
  const weights = new WeightSource(student.weightFiles!.map(readSafetensors), ['', 'transformer.']);
  const spec = {
    architecture: 'gpt2' as const,
    config: student.config!,
    weights,
    mode,
    batch: B,
    seqLen: L,
    vocab: V,
    loss: { key: 'fkl' as const, temperature: 1 },
    optimizer: DEFAULT_OPTIMIZER,
    seed: 1,
    frozenAsInputs: true,
  };
  let t = performance.now();
  const step = buildStepGraph({ ...spec, purpose: 'step' });
  const gradBytes = buildStepGraph({ ...spec, purpose: 'gradients' }).bytes;
  const forwardBytes = buildStepGraph({ ...spec, purpose: 'eval' }).bytes;
  const buildMs = performance.now() - t;
  const open = async (model: Uint8Array, name: string) =>
    (await openSession({ model, device: 'cpu', name })).session;
  t = performance.now();
  const stepSession = await open(step.bytes, 'the training graph');
  const sessionMs = performance.now() - t;
  const gradSession = await open(gradBytes, 'the gradient graph');
  const fwdSession = await open(forwardBytes, 'the forward graph');

  const teacher = await LanguageModel.open(await resolveModel(teacherDir), 'cpu');
  const ids = Array.from({ length: L }, (_, i) => (i * 7919) % 50000);
  const teacherTimes: number[] = [];
  let logits: Float32Array = new Float32Array(0);
  for (let i = 0; i <= RUNS; i++) {
    const t0 = performance.now();
    logits = (await teacher.forward(ids)).data as Float32Array;
    if (i > 0) teacherTimes.push(performance.now() - t0);
  }
  const teacherBatch = new Float32Array(B * L * V);
  for (let b = 0; b < B; b++) teacherBatch.set(logits, b * L * V);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: B * L }, (_, i) => BigInt(ids[i % L])),
      [B, L],
    ),
    teacher_logits: new ort.Tensor('float32', teacherBatch, [B, L, V]),
    targets: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: B * L }, (_, i) => BigInt(ids[(i + 1) % L])),
      [B * L, 1],
    ),
    mask: new ort.Tensor(
      'float32',
      Float32Array.from({ length: B * L }, (_, i) => (i % L === L - 1 ? 0 : 1)),
      [B * L],
    ),
  };
  for (const p of step.params) feeds[p.name] = new ort.Tensor('float32', p.init, p.shape);
  // LoRA's frozen weights: one copy shared by the three sessions, as a run does
  for (const f of step.weights.frozen) feeds[f.name] = new ort.Tensor('float32', f.data, f.shape);
  const fwdMs = await timeRuns(fwdSession, feeds);
  await fwdSession.release();
  const gradMs = await timeRuns(gradSession, feeds);
  await gradSession.release();
  feeds.lr = new ort.Tensor('float32', Float32Array.of(1e-4), []);
  feeds.bias_correction1 = new ort.Tensor('float32', Float32Array.of(0.1), []);
  feeds.bias_correction2 = new ort.Tensor('float32', Float32Array.of(0.001), []);
  for (const st of step.stateNames)
    for (const p of step.params)
      feeds[names.state(st, p.name)] = new ort.Tensor('float32', new Float32Array(p.init.length), p.shape);
  const stepMs = await timeRuns(stepSession, feeds);
  const teacherMs = median(teacherTimes);
  const onPolicy = await onPolicyStep(student, weights, mode, step, spec, ids, teacher);
  const trained = step.params.reduce((n, p) => n + p.init.length, 0);
  const row = {
    mode: modeName,
    trainedParameters: trained,
    batch: B,
    seqLen: L,
    graphBuildMs: buildMs,
    sessionCreateMs: sessionMs,
    teacherForwardMs: teacherMs,
    studentForwardMs: fwdMs,
    studentForwardBackwardMs: gradMs,
    stepMs,
    updateMs: Math.max(0, stepMs - gradMs),
    tokensPerSecond: (B * L) / ((teacherMs + stepMs) / 1000),
    ...onPolicy,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(JSON.stringify(row) + '\n');
  await stepSession.release();
  await teacher.release();
}

/**
 * One on-policy step (--method onpolicy) at batch 1: the current student writes 128 tokens after
 * a 64-token prompt through its policy graph (parameters as inputs, cached decoding; the
 * most likely token each time, sampling itself costs nothing here), the teacher scores the
 * sequence in one pass, and one update runs the on-policy loss over it.
 */
async function onPolicyStep(
  student: Awaited<ReturnType<typeof resolveModel>>,
  weights: WeightSource,
  mode: TrainMode,
  step: ReturnType<typeof buildStepGraph>,
  spec: Omit<Parameters<typeof buildStepGraph>[0], 'purpose'>,
  ids: number[],
  teacher: LanguageModel,
): Promise<Record<string, number>> {
  const P = 64;
  const N = Math.min(128, L - P);
  const frozenFeeds = Object.fromEntries(
    step.weights.frozen.map((f) => [f.name, new ort.Tensor('float32', f.data, f.shape)]),
  );
  const policy = await openPolicyModel(student, weights, mode, 'cpu', {
    values: () => new Map(step.params.map((p) => [p.name, p.init])),
    frozenFeeds,
  });
  const seq = ids.slice(0, P);
  let t = performance.now();
  let out = await policy.lm.step([seq], undefined, P + N);
  for (let i = 0; i < N; i++) {
    const last = out.logits.subarray(out.logits.length - out.vocab);
    let next = 0;
    for (let v = 1; v < out.vocab; v++) if (last[v] > last[next]) next = v;
    seq.push(next);
    if (i < N - 1) out = await policy.lm.step([[next]], out.cache);
  }
  const generateMs = performance.now() - t;
  await policy.lm.release();
  t = performance.now();
  await teacher.forward(seq);
  const scoreMs = performance.now() - t;
  const update = buildStepGraph({
    ...spec,
    batch: 1,
    noTeacher: true,
    policy: { kind: 'onpolicy', temperature: 1, clip: 0, singleStep: false },
    purpose: 'step',
  });
  const session = (await openSession({ model: update.bytes, device: 'cpu', name: 'the on-policy step' }))
    .session;
  const padded = Array.from({ length: L }, (_, i) => seq[i] ?? 0);
  const valid = (i: number) => i >= P - 1 && i < seq.length - 1;
  const feeds: Record<string, ort.Tensor> = {
    ...frozenFeeds,
    input_ids: new ort.Tensor('int64', BigInt64Array.from(padded.map(BigInt)), [1, L]),
    targets: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: L }, (_, i) => BigInt(valid(i) ? seq[i + 1] : 0)),
      [L, 1],
    ),
    mask: new ort.Tensor(
      'float32',
      Float32Array.from({ length: L }, (_, i) => (valid(i) ? 1 : 0)),
      [L],
    ),
    old_logp: new ort.Tensor('float32', new Float32Array(L).fill(-3), [L]),
    advantages: new ort.Tensor(
      'float32',
      Float32Array.from({ length: L }, (_, i) => Math.sin(i)),
      [L],
    ),
    lr: new ort.Tensor('float32', Float32Array.of(1e-4), []),
    bias_correction1: new ort.Tensor('float32', Float32Array.of(0.1), []),
    bias_correction2: new ort.Tensor('float32', Float32Array.of(0.001), []),
  };
  for (const p of update.params) feeds[p.name] = new ort.Tensor('float32', p.init, p.shape);
  for (const st of update.stateNames)
    for (const p of update.params)
      feeds[names.state(st, p.name)] = new ort.Tensor('float32', new Float32Array(p.init.length), p.shape);
  const updateMs = await timeRuns(session, feeds);
  await session.release();
  return {
    onPolicyGenerateMs: generateMs,
    onPolicyScoreMs: scoreMs,
    onPolicyUpdateMs: updateMs,
    onPolicyStepMs: generateMs + scoreMs + updateMs,
  };
}

function main(): void {
  fs.mkdirSync(OUT, { recursive: true });
  writeGpt2(path.join(OUT, 'models', 'peaked', 'teacher-12l'), 12, 1, 8);
  writeGpt2(path.join(OUT, 'models', 'peaked', 'student-6l'), 6, 2, 8);
  const rows: Record<string, number | string>[] = [];
  for (const mode of ['lora', 'full']) {
    process.stderr.write(`[${mode}] measuring (${RUNS} runs after a warm-up)…\n`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', mode], {
      encoding: 'utf8',
      env: process.env,
      maxBuffer: 1 << 24,
    });
    if (r.status !== 0) throw new Error(`${mode} failed: ${r.stderr}`);
    rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!));
  }
  fs.writeFileSync(
    path.join(OUT, 'train-bench.json'),
    JSON.stringify({ date: new Date().toISOString(), runs: RUNS, rows }, null, 2),
  );
  const fmt = (x: unknown) =>
    typeof x === 'number' ? (Math.abs(x) < 10 ? x.toFixed(2) : x.toFixed(0)) : String(x);
  console.log(
    `\ndistillation step, 6-layer GPT-2-shaped student / 12-layer teacher, ${B}×${L} tokens, CPU, median of ${RUNS}`,
  );
  console.log(`${''.padEnd(26)}${'LoRA'.padStart(14)}${'full'.padStart(14)}`);
  for (const k of Object.keys(rows[0]))
    if (k !== 'mode')
      console.log(`${k.padEnd(26)}${fmt(rows[0][k]).padStart(14)}${fmt(rows[1][k]).padStart(14)}`);
  console.log(`\nwritten to ${path.relative(ROOT, path.join(OUT, 'train-bench.json'))}`);
}

const at = process.argv.indexOf('--child');
if (at >= 0)
  child(process.argv[at + 1] as 'lora' | 'full').catch((e) => {
    console.error(e);
    process.exit(1);
  });
else main();
