/**
 * A distillation run: the student trained against the teacher on the user's data, one
 * ONNX Runtime call per step, then written as a new model folder (never over the input).
 *
 *   data → windows → for each step: teacher logits (inference session) → step graph
 *   (student forward, loss, gradients, update) → held-out fkl / rkl / perplexity before
 *   and after → output folder with model.safetensors, config.json, tokenizer, ONNX, run.json
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { CancelledError, InputError, UsageError } from '../core/errors';
import { ModelLoadError } from '../models/modelErrors';
import { resolveModel } from '../models/modelSource';
import { readSafetensors, halfToFloat32 } from '../models/safetensors';
import { TextTokenizer } from '../models/tokenizer';
import { WeightSource } from '../models/builder/weights';
import { LanguageModel, NO_SPINNING } from '../runtime/languageModel';
import { chooseProviders, type Device } from '../runtime/device';
import { packWindows, readDocuments, splitWindows, type TrainDocument, type Window } from './data';
import { resolvedLossOptions, type LossOptions } from './losses';
import { seededRandom, shuffle } from './random';
import { buildStepGraph, DEFAULT_OPTIMIZER, learningRate, names, type OptimizerSpec } from './stepGraph';
import { defaultLoraTargets, type TrainMode } from './trainableWeights';
import { writeDistilledStudent } from './studentOutput';
import { teacherBuckets, type TeacherBuckets } from './teacherBuckets';

export interface DistillRequest {
  /** empty: no teacher, training from scratch with the ce loss (how the built-in teacher is made) */
  teacher: string;
  student: string;
  /** a file, folder or JSONL path; or documents given directly (the editor's selection) */
  data: { path: string } | { documents: TrainDocument[] };
  loss: LossOptions;
  /** LoRA by default */
  mode?: TrainMode | { kind: 'lora'; rank?: number; alpha?: number; targets?: string[] };
  optimizer?: Partial<OptimizerSpec>;
  steps: number;
  lr: number;
  /** warm-up steps; default a tenth of the steps */
  warmupSteps?: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  device?: Device;
  /** give the loss only the teacher's top-k tokens (plus the target) and one bucket for the rest */
  teacherTopK?: number;
  out: string;
  allowRemote?: boolean;
  hubCacheDir?: string;
}

export interface DistillProgress {
  phase: 'prepare' | 'evaluate' | 'train' | 'write';
  message: string;
  step?: number;
  steps?: number;
  loss?: number;
  lr?: number;
  tokensPerSecond?: number;
  secondsLeft?: number;
}

export interface HeldOut {
  fkl: number;
  rkl: number;
  studentPerplexity: number;
  tokens: number;
}

export interface LossPoint {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

export interface RunRecord {
  version: 1;
  createdAt: string;
  teacher: string;
  student: string;
  out: string;
  settings: Record<string, unknown>;
  data: { documents: number; trainWindows: number; heldOutWindows: number; heldOutIsTrainingData: boolean; trainTokens: number };
  device: string;
  lossCurve: LossPoint[];
  heldOut: { before: HeldOut; after: HeldOut; fklChange: number };
  timings: { totalSeconds: number; teacherSeconds: number; stepSeconds: number; tokensPerSecond: number };
  messages: string[];
}

export interface DistillControl {
  signal?: AbortSignal;
  onProgress?: (p: DistillProgress) => void;
}

const MB = 1 << 20;
/** Teacher logits of every window are kept when they fit in this; otherwise recomputed per batch. */
const TEACHER_CACHE_BYTES = 1024 * MB;

export async function runDistillation(req: DistillRequest, control: DistillControl = {}): Promise<RunRecord> {
  const t0 = performance.now();
  const report = (p: DistillProgress) => control.onProgress?.(p);
  const checkCancel = () => {
    if (control.signal?.aborted) throw new CancelledError();
  };
  validate(req);
  const messages: string[] = [];
  report({ phase: 'prepare', message: 'loading the models' });
  const resolveOpts = { allowRemote: req.allowRemote, cacheDir: req.hubCacheDir, onProgress: (m: string) => report({ phase: 'prepare', message: m }) };
  const student = await resolveModel(req.student, resolveOpts);
  const noTeacher = !req.teacher;
  if (noTeacher && req.loss.key !== 'ce') throw new UsageError(`the ${req.loss.key} loss needs a teacher (only ce trains without one)`);
  const teacherModel = noTeacher ? undefined : await resolveModel(req.teacher, resolveOpts);
  if (student.kind !== 'checkpoint' || !student.architecture) {
    throw new ModelLoadError(`${req.student}: distillation trains a safetensors checkpoint (config.json + model.safetensors of a Llama, Qwen2, Mistral or GPT-2 model); this folder has only an ONNX export`);
  }
  const tokenizer = TextTokenizer.fromFolder(student.folder);
  const teacherTokenizer = teacherModel ? TextTokenizer.fromFolder(teacherModel.folder) : tokenizer;
  const vocab = Number(student.config!.vocab_size);
  if (teacherTokenizer.vocabSize !== tokenizer.vocabSize) {
    throw new ModelLoadError(`teacher vocabulary ${teacherTokenizer.vocabSize} (${req.teacher}) ≠ student vocabulary ${tokenizer.vocabSize} (${req.student}): distillation needs a teacher and student that share one tokenizer`);
  }
  if (req.seqLen > student.contextLength) throw new UsageError(`--seq-len ${req.seqLen} is longer than the student's context (${student.contextLength} tokens)`);

  // data
  const rng = seededRandom(req.seed);
  const documents = 'path' in req.data ? readDocuments(req.data.path) : req.data.documents;
  const windows = packWindows(documents, tokenizer, req.seqLen);
  const split = splitWindows(windows, rng);
  if (split.shared) messages.push('the data fills a single window, so the held-out numbers are measured on the training data; give more text for an honest held-out split');
  for (const w of windows) {
    const bad = w.ids.find((id) => id >= vocab);
    if (bad !== undefined) throw new ModelLoadError(`the tokenizer gives token id ${bad} but the student's vocabulary has ${vocab} entries: the tokenizer.json does not belong to this model`);
  }
  checkCancel();

  // teacher
  const device = req.device ?? 'cpu';
  const teacher = teacherModel ? await LanguageModel.open(teacherModel, device, { onProgress: (m) => report({ phase: 'prepare', message: m }) }) : undefined;
  messages.push(...(teacher?.info.messages ?? []));
  let teacherSeconds = 0;
  const L = req.seqLen;
  const B = req.batchSize;
  const cache = new Map<Window, Float32Array>();
  // with teacher top-k only the held-out windows' full logits are kept (evaluation needs them)
  const cacheable = (req.teacherTopK ? split.heldOut.length : windows.length) * L * vocab * 4 <= TEACHER_CACHE_BYTES;
  const bucketCache = new Map<Window, TeacherBuckets>();
  const heldOutSet = new Set(split.heldOut);
  const teacherLogits = async (w: Window): Promise<Float32Array> => {
    const hit = cache.get(w);
    if (hit) return hit;
    const t = performance.now();
    const out = await teacher!.forward(w.ids);
    if (out.vocab !== vocab) throw new ModelLoadError(`the teacher's logits have ${out.vocab} entries, the student's vocabulary ${vocab}: they do not share a vocabulary`);
    const data = out.type === 'float16' ? halfToFloat32(out.data as Uint16Array) : (out.data as Float32Array);
    teacherSeconds += (performance.now() - t) / 1000;
    if (cacheable && (!req.teacherTopK || heldOutSet.has(w))) cache.set(w, data);
    return data;
  };
  const teacherTopK = async (w: Window, k: number): Promise<TeacherBuckets> => {
    let b = bucketCache.get(w);
    if (!b) {
      b = teacherBuckets(await teacherLogits(w), L, vocab, w.targets, k, req.loss.temperature);
      bucketCache.set(w, b);
    }
    return b;
  };

  // graphs
  const arch = student.architecture;
  const mode: TrainMode =
    !req.mode || req.mode.kind === 'lora'
      ? { kind: 'lora', rank: req.mode?.rank ?? 8, alpha: req.mode?.alpha ?? 16, targets: (req.mode as { targets?: string[] })?.targets ?? defaultLoraTargets(arch) }
      : { kind: 'full' };
  const optimizer: OptimizerSpec = { ...DEFAULT_OPTIMIZER, ...req.optimizer };
  const weights = new WeightSource(student.weightFiles!.map(readSafetensors), arch === 'gpt2' ? ['', 'transformer.'] : ['']);
  report({ phase: 'prepare', message: 'building the training graph' });
  const topK = req.teacherTopK;
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1 || topK + 1 >= vocab)) throw new UsageError(`--teacher-top-k must be a whole number from 1 to ${vocab - 2}`);
  const spec = { architecture: arch, config: student.config!, weights, mode, batch: B, seqLen: L, vocab, loss: req.loss, optimizer, seed: req.seed, teacherTopK: topK, noTeacher, frozenAsInputs: true };
  const step = buildStepGraph({ ...spec, purpose: 'step' });
  const evalBytes = buildStepGraph({ ...spec, purpose: 'eval' }).bytes; // its frozen copies are dropped: the step graph's are fed
  if (step.params.length === 0) throw new UsageError(`no weight matches the LoRA targets ${mode.kind === 'lora' ? mode.targets.join(', ') : ''} in ${req.student}`);
  const providers = chooseProviders(device);
  if (providers.fallbackReason && !messages.includes(providers.fallbackReason)) messages.push(providers.fallbackReason);
  const sessionOptions: ort.InferenceSession.SessionOptions = { executionProviders: providers.providers as ort.InferenceSession.ExecutionProviderConfig[], logSeverityLevel: 3, ...NO_SPINNING };
  let stepSession: ort.InferenceSession;
  let evalSession: ort.InferenceSession;
  try {
    stepSession = await ort.InferenceSession.create(step.bytes, sessionOptions);
    evalSession = await ort.InferenceSession.create(evalBytes, sessionOptions);
  } catch (e) {
    if (providers.device === 'cpu') throw e;
    // a provider may load but lack a kernel the training graph needs: train on the CPU instead
    messages.push(`the training graph could not start on ${providers.device} (${String((e as Error).message ?? e).split('\n')[0]}); training on the CPU`);
    const cpu = { ...sessionOptions, executionProviders: ['cpu'] as ort.InferenceSession.ExecutionProviderConfig[] };
    stepSession = await ort.InferenceSession.create(step.bytes, cpu);
    evalSession = await ort.InferenceSession.create(evalBytes, cpu);
  }

  const params = step.params;
  // LoRA's frozen weights: one copy, fed to both sessions
  const frozenFeeds = Object.fromEntries(step.weights.frozen.map((f) => [f.name, new ort.Tensor('float32', f.data, f.shape)]));
  let values: Float32Array[] = params.map((p) => p.init);
  let states: Record<string, Float32Array[]> = Object.fromEntries(step.stateNames.map((s) => [s, params.map((p) => new Float32Array(p.init.length))]));

  /** the batch's inputs; the teacher as full logits (evaluation, or no top-k) or as top-k buckets */
  const batchFeeds = async (batch: Window[], forEval = false): Promise<Record<string, ort.Tensor>> => {
    const ids = new BigInt64Array(B * L);
    const targets = new BigInt64Array(B * L);
    const mask = new Float32Array(B * L);
    const k = forEval ? undefined : topK;
    const teacherBuf = k || noTeacher ? undefined : new Float32Array(B * L * vocab);
    const topIds = k ? new BigInt64Array(B * L * (k + 1)) : undefined;
    const topLogprobs = k ? new Float32Array(B * L * (k + 2)) : undefined;
    const topTarget = k ? new BigInt64Array(B * L) : undefined;
    for (let b = 0; b < B; b++) {
      const w = batch[b];
      if (!w) continue; // an all-masked filler row
      for (let i = 0; i < L; i++) {
        ids[b * L + i] = BigInt(w.ids[i]);
        targets[b * L + i] = BigInt(w.targets[i]);
        mask[b * L + i] = w.mask[i];
      }
      if (k) {
        const buckets = await teacherTopK(w, k);
        topIds!.set(buckets.ids, b * L * (k + 1));
        topLogprobs!.set(buckets.logprobs, b * L * (k + 2));
        topTarget!.set(buckets.target, b * L);
      } else if (teacherBuf) teacherBuf.set(await teacherLogits(w), b * L * vocab);
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, L]),
      targets: new ort.Tensor('int64', targets, [B * L, 1]),
      mask: new ort.Tensor('float32', mask, [B * L]),
    };
    if (k) {
      feeds.teacher_topk_ids = new ort.Tensor('int64', topIds!, [B * L, k + 1]);
      feeds.teacher_topk_logprobs = new ort.Tensor('float32', topLogprobs!, [B * L, k + 2]);
      feeds.teacher_topk_target = new ort.Tensor('int64', topTarget!, [B * L, 1]);
    } else if (teacherBuf) feeds.teacher_logits = new ort.Tensor('float32', teacherBuf, [B, L, vocab]);
    params.forEach((p, i) => (feeds[p.name] = new ort.Tensor('float32', values[i], p.shape)));
    Object.assign(feeds, frozenFeeds);
    return feeds;
  };

  const evaluate = async (label: string): Promise<HeldOut> => {
    let fkl = 0, rkl = 0, nll = 0, count = 0;
    for (let i = 0; i < split.heldOut.length; i += B) {
      checkCancel();
      report({ phase: 'evaluate', message: `held-out evaluation ${label}: ${Math.min(i + B, split.heldOut.length)}/${split.heldOut.length} windows` });
      const out = await evalSession.run(await batchFeeds(split.heldOut.slice(i, i + B), true));
      fkl += out.fkl ? Number(out.fkl.data[0]) : NaN;
      rkl += out.rkl ? Number(out.rkl.data[0]) : NaN;
      nll += Number(out.nll.data[0]);
      count += Number(out.count.data[0]);
    }
    return { fkl: fkl / count, rkl: rkl / count, studentPerplexity: Math.exp(nll / count), tokens: count };
  };

  try {
    const before = await evaluate('before');
    const lossCurve: LossPoint[] = [];
    const order: Window[] = [];
    const warmup = req.warmupSteps ?? Math.floor(req.steps / 10);
    const trainStart = performance.now();
    let stepSeconds = 0;
    let trainedTokens = 0;
    for (let s = 0; s < req.steps; s++) {
      checkCancel();
      const batch: Window[] = [];
      while (batch.length < B) {
        if (order.length === 0) order.push(...shuffle([...split.train], rng));
        batch.push(order.shift()!);
      }
      const lr = learningRate(s, req.steps, req.lr, warmup);
      const feeds = await batchFeeds(batch);
      feeds.lr = new ort.Tensor('float32', Float32Array.of(lr), []);
      if (optimizer.kind === 'adamw') {
        feeds.bias_correction1 = new ort.Tensor('float32', Float32Array.of(1 - optimizer.beta1 ** (s + 1)), []);
        feeds.bias_correction2 = new ort.Tensor('float32', Float32Array.of(1 - optimizer.beta2 ** (s + 1)), []);
        for (const st of step.stateNames) params.forEach((p, i) => (feeds[names.state(st, p.name)] = new ort.Tensor('float32', states[st][i], p.shape)));
      }
      const t = performance.now();
      const out = await stepSession.run(feeds);
      stepSeconds += (performance.now() - t) / 1000;
      const loss = Number(out.loss.data[0]);
      if (!Number.isFinite(loss)) throw new InputError(`the loss became ${loss} at step ${s + 1}; lower the learning rate (now ${req.lr}) or the temperature`);
      values = params.map((p) => out[names.next(p.name)].data as Float32Array);
      states = Object.fromEntries(step.stateNames.map((st) => [st, params.map((p) => out[names.nextState(st, p.name)].data as Float32Array)]));
      lossCurve.push({ step: s + 1, loss, lr, gradNorm: Number(out.grad_norm.data[0]) });
      trainedTokens += batch.reduce((n, w) => n + w.mask.reduce((a, b) => a + b, 0), 0);
      const elapsed = (performance.now() - trainStart) / 1000;
      report({
        phase: 'train',
        message: `step ${s + 1}/${req.steps}, loss ${loss.toFixed(4)}`,
        step: s + 1,
        steps: req.steps,
        loss,
        lr,
        tokensPerSecond: (trainedTokens / elapsed),
        secondsLeft: (elapsed / (s + 1)) * (req.steps - s - 1),
      });
    }
    const after = await evaluate('after');
    checkCancel();
    const record: RunRecord = {
      version: 1,
      createdAt: new Date().toISOString(),
      teacher: req.teacher,
      student: req.student,
      out: req.out,
      settings: {
        loss: resolvedLossOptions(req.loss),
        mode,
        optimizer,
        steps: req.steps,
        lr: req.lr,
        warmupSteps: warmup,
        schedule: 'linear warm-up, then cosine to 0.1 × lr',
        batchSize: B,
        seqLen: L,
        seed: req.seed,
        device,
        teacherTopK: topK ?? null,
        data: 'path' in req.data ? req.data.path : `${documents.length} document(s) from the editor`,
      },
      data: { documents: documents.length, trainWindows: split.train.length, heldOutWindows: split.heldOut.length, heldOutIsTrainingData: split.shared, trainTokens: trainedTokens },
      device: providers.device,
      lossCurve,
      heldOut: { before, after, fklChange: (after.fkl - before.fkl) / before.fkl },
      timings: { totalSeconds: 0, teacherSeconds, stepSeconds, tokensPerSecond: trainedTokens / Math.max(1e-9, (performance.now() - trainStart) / 1000) },
      messages,
    };
    report({ phase: 'write', message: `writing ${req.out}` });
    record.timings.totalSeconds = (performance.now() - t0) / 1000;
    writeDistilledStudent(req.out, student, weights, params, values, step.weights.adapters, record);
    return record;
  } finally {
    await stepSession.release();
    await evalSession.release();
    await teacher?.release();
  }
}

function validate(req: DistillRequest): void {
  const positiveInt = (v: number, flag: string) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`${flag} must be a positive whole number (got ${v})`);
  };
  positiveInt(req.steps, '--steps');
  positiveInt(req.batchSize, '--batch-size');
  positiveInt(req.seqLen, '--seq-len');
  if (!(req.lr > 0)) throw new UsageError(`--lr must be positive (got ${req.lr})`);
  if (!(req.loss.temperature > 0)) throw new UsageError(`--temperature must be positive (got ${req.loss.temperature})`);
  if (req.loss.kdRatio !== undefined && !(req.loss.kdRatio >= 0 && req.loss.kdRatio <= 1)) throw new UsageError('--kd-ratio must be between 0 and 1');
  if (req.loss.beta !== undefined && req.loss.key === 'gjsd' && !(req.loss.beta >= 0 && req.loss.beta <= 1)) throw new UsageError('--beta must be between 0 and 1 for gjsd');
  if (req.loss.alpha !== undefined && (req.loss.key === 'skl' || req.loss.key === 'srkl' || req.loss.key === 'atkd') && !(req.loss.alpha >= 0 && req.loss.alpha <= 1)) throw new UsageError('--alpha must be between 0 and 1');
  if (req.mode?.kind === 'lora' && req.mode.rank !== undefined) positiveInt(req.mode.rank, '--lora-rank');
  const out = fs.existsSync(req.out) ? fs.realpathSync(req.out) : req.out;
  for (const input of [req.student, req.teacher].filter(Boolean)) {
    if (fs.existsSync(input) && fs.realpathSync(input) === out) throw new UsageError(`--out ${req.out} is an input model folder: distillation never overwrites a model; choose a new folder`);
  }
  if (fs.existsSync(req.out) && fs.readdirSync(req.out).length > 0) throw new UsageError(`--out ${req.out} already exists and is not empty: choose a new folder`);
}

