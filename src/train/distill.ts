/**
 * A distillation run: the student trained against the teacher on the user's data, one
 * ONNX Runtime call per step, then written as a new model folder (never over the input).
 * `runDistillation` reads top to bottom:
 *
 *   1. models   the student checkpoint to train; the teacher (from the model pool, so a
 *               teacher the inspection engine holds is not loaded twice)
 *   2. data     documents → windows of seqLen tokens → train / held-out split; for SeqKD,
 *               documents → prompts → the teacher's completions (rollouts) → windows
 *   3. teacher  its logits per window (kept when they fit in 1 GiB), or top-k buckets
 *   4. graphs   the step graph (student forward, loss, gradients, clipping, update) and
 *               the evaluation graph, in ONNX Runtime sessions
 *   5. train    held-out fkl / rkl / perplexity before; the step loop; the same after
 *   6. output   model.safetensors, config.json, tokenizer, ONNX, run.json, atomically
 *
 * Every session and model lease opened is released on every path (success, error, cancel).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { CancelledError, InputError, ModelLoadError, UsageError } from '../core/errors';
import { WeightSource } from '../models/builder/weights';
import { ModelPool, type ModelLease } from '../models/modelPool';
import { modelFileLabel, resolveModel, type ResolvedModel } from '../models/modelSource';
import { readSafetensors } from '../models/safetensors';
import { float32Logits } from '../models/languageModel';
import { TextTokenizer } from '../models/tokenizer';
import { openSession } from '../onnx/sessions';
import {
  DISTILL_METHODS,
  GENERATION_DEFAULTS,
  MINILLM_DEFAULTS,
  SAMPLING_METHODS,
  ULD_DEFAULTS,
  type UldSettings,
  type MiniLlmSettings,
  type DistillMethod,
  type GenerationSettings,
} from '../shared/protocol';
import type {
  DistillProgress,
  DistillRequest,
  HeldOut,
  LossPoint,
  OptimizerSpec,
  RunRecord,
  StageSpec,
  TrainDocument,
} from '../shared/protocol';
import {
  packSequences,
  packWindows,
  readDocuments,
  readPrompts,
  splitWindows,
  type Prompt,
  type Window,
} from './data';
import type { PolicyLossOptions } from './losses';
import { openPolicyModel } from './policyModel';
import { eosIds } from '../generate/generator';
import {
  sampledHeldOut,
  trainOnPolicy,
  type PolicyRollout,
  type PolicyTeacher,
  type PolicyWindow,
} from './onPolicy';
import {
  generationProblems,
  readRollouts,
  rolloutsJsonl,
  sampleServedRollouts,
  sampleTeacherRollouts,
  type Rollout,
} from './rollouts';
import { resolvedLossOptions } from './losses';
import { seededRandom, shuffle, type Rng } from '../core/random';
import { featureInput, featureSpec, writeProjections, type FeatureLossSpec } from './featureLoss';
import { resolveStages, stageAt, stageBoundaries } from './stages';
import { buildStepGraph, DEFAULT_OPTIMIZER, learningRate, names, type StepGraph } from './stepGraph';
import { writeDistilledStudent } from './studentOutput';
import { teacherBuckets, type TeacherBuckets } from './teacherBuckets';
import { defaultLoraTargets, type TrainMode } from './trainableWeights';
import {
  parseServedTeacher,
  PROTOCOL_NAMES,
  ServedTeacher,
  type ServedTeacherSpec,
} from '../models/servedTeacher';
import { defaultBuildCacheDir } from '../models/builtModelCache';
import { SERVED_DISTILL_TOP_K, ServedTeacherTargets } from './servedTargets';
import { packTextWindows, uldGroupFeeds, UldTeacherTargets, type TextWindow } from './acrossTokenizers';

export interface DistillControl {
  signal?: AbortSignal;
  onProgress?: (p: DistillProgress) => void;
  /** where the teacher comes from; a pool of its own (released at the end) when not given */
  models?: ModelPool;
}

const MB = 1 << 20;
/** Teacher logits of every window are kept when they fit in this; otherwise recomputed per batch. */
const TEACHER_CACHE_BYTES = 1024 * MB;

/** What every step of a run shares: progress, cancellation, messages, and what to release at the end. */
class RunContext {
  readonly messages: string[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];

  constructor(private readonly control: DistillControl) {}

  report(p: DistillProgress): void {
    this.control.onProgress?.(p);
  }

  checkCancel(): void {
    if (this.control.signal?.aborted) throw new CancelledError();
  }

  /** After long synchronous work: lets a Cancel message that arrived meanwhile be handled, then checks. */
  async yieldAndCheckCancel(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    this.checkCancel();
  }

  note(message: string): void {
    if (!this.messages.includes(message)) this.messages.push(message);
  }

  /** Registers something to release when the run ends, however it ends. */
  onEnd(release: () => Promise<void>): void {
    this.cleanups.push(release);
  }

  async releaseAll(): Promise<void> {
    for (const release of this.cleanups.reverse()) await release().catch(() => undefined);
  }
}

export async function runDistillation(req: DistillRequest, control: DistillControl = {}): Promise<RunRecord> {
  const t0 = performance.now();
  const run = new RunContext(control);
  const method = req.method ?? 'word';
  // a teacher served by vLLM or SGLang gives its top K per position: the buckets of teacher top-k
  const servedSpec = req.teacher ? parseServedTeacher(req.teacher) : undefined;
  if (servedSpec) req = { ...req, teacherTopK: req.teacherTopK ?? SERVED_DISTILL_TOP_K };
  const generation: GenerationSettings = {
    ...GENERATION_DEFAULTS,
    ...req.generation,
    sampling: {
      ...GENERATION_DEFAULTS.sampling,
      // GKD samples at 0.9 (TRL's default), the others at 1
      ...(method === 'gkd' ? { temperature: 0.9 } : {}),
      ...req.generation?.sampling,
    },
  };
  validate(req, method, generation);
  try {
    // 1. models
    run.report({ phase: 'prepare', message: 'loading the models' });
    const student = await resolveStudent(req, run);
    const tokenizer = TextTokenizer.fromFolder(student.folder);
    const vocab = Number(student.config!.vocab_size);
    const teacher = req.teacher && !servedSpec ? await acquireTeacher(req, control.models, run) : undefined;
    // feature distillation: the mapped pairs of hidden states, and the stages
    const feature =
      req.feature && teacher
        ? featureSpec(req.feature, student.config!, teacher.model.lm.model.config ?? {})
        : undefined;
    const stages = resolveStages(req);
    // a teacher whose tokenizer differs trains with ULD on the spans both tokenizations share
    // onpolicy rewards the aligned spans of each completion; the held-out numbers are ULD's
    const tokenizerProblem =
      teacher && !req.uld ? sharedTokenizerProblem(req, teacher, tokenizer, documentsOf(req)) : undefined;
    const acrossPolicy = !!tokenizerProblem && method === 'onpolicy';
    if (tokenizerProblem && !acrossPolicy)
      throw new ModelLoadError(
        `${tokenizerProblem}: ${method === 'word' ? 'for a pair whose tokenizers differ, train with --loss uld (Universal Logit Distillation)' : `--method ${method} needs one tokenizer; for a pair whose tokenizers differ, use --method onpolicy (rewards on aligned spans) or --method word --loss uld`}`,
      );
    const uld: UldSettings | undefined =
      req.uld || acrossPolicy ? { ...ULD_DEFAULTS, ...req.uld } : undefined;
    if (acrossPolicy)
      run.note(
        "the teacher and the student tokenize differently: the teacher reads each completion's text with its own tokens, and each student token's reward is log P_T − log Q_old of the span it is in (spans end where both tokenizations start a token; a token in none has no reward); the held-out numbers are ULD (an approximation) and the span log-ratio (exact)",
      );
    run.checkCancel();
    // a served teacher: its protocol, whether it tokenizes as the student, the cache of its answers
    const served = servedSpec
      ? await connectServedTeacher(servedSpec, req, tokenizer, documentsOf(req), control.signal, run)
      : undefined;

    // 2. data
    const rng = seededRandom(req.seed);
    const data =
      uld && !acrossPolicy
        ? prepareTextData(req, tokenizer, teacher!, vocab, rng, run)
        : method === 'seqkd'
          ? await prepareRollouts(req, generation, teacher ?? served!, student, tokenizer, vocab, rng, run)
          : samplesDuringTraining(method)
            ? preparePrompts(req, generation, tokenizer, vocab, rng, run, acrossPolicy ? teacher : undefined)
            : prepareData(req, tokenizer, vocab, rng, run);
    run.checkCancel();

    // MiniLLM's pre-training term: plain-text windows in the same batch as the rollouts
    const minillm: MiniLlmSettings = { ...MINILLM_DEFAULTS, ...req.minillm };
    const ptWindows =
      method === 'minillm' && minillm.lmData
        ? checkVocabulary(packWindows(readDocuments(minillm.lmData), tokenizer, req.seqLen), vocab)
        : undefined;
    // with them, each step's batch holds the rollouts and as many plain-text windows
    const stepReq = ptWindows ? { ...req, batchSize: 2 * req.batchSize } : req;

    // 3. teacher targets
    const targets = new TeacherTargets(teacher, stepReq, vocab, data.heldOut, feature, served);
    if (uld) targets.across = new UldTeacherTargets(teacher!.model.lm, vocab, TEACHER_CACHE_BYTES);

    // 4. graphs and sessions
    const policyLoss: PolicyLossOptions | undefined =
      method === 'onpolicy'
        ? { kind: 'onpolicy', temperature: generation.sampling.temperature, clip: 0, singleStep: false }
        : method === 'minillm'
          ? {
              kind: 'minillm',
              temperature: generation.sampling.temperature,
              clip: minillm.cliprange,
              singleStep: true,
              ...(ptWindows ? { pretrain: { kdRatio: minillm.kdRatio, coef: minillm.lmCoef } } : {}),
            }
          : undefined;
    const trainer = await openTrainer(stepReq, student, vocab, run, policyLoss, feature, !!served, uld);

    // 5. evaluate, train, evaluate
    const evaluate = (label: string) => evaluateHeldOut(stepReq, trainer, targets, data.heldOut, label, run);
    const before = await evaluate('before');
    let training: TrainingResult;
    let sampled: RunRecord['sampledHeldOut'];
    if (samplesDuringTraining(method)) {
      const onPolicy = await onPolicyTraining(
        req,
        stepReq,
        ptWindows,
        minillm,
        generation,
        student,
        trainer,
        teacher,
        served,
        tokenizer,
        data,
        rng,
        run,
      );
      training = onPolicy.training;
      sampled = onPolicy.sampled;
      data.rollouts = onPolicy.rollouts;
    } else training = await trainLoop(req, trainer, targets, data.train, rng, run, stages);
    const after = await evaluate('after');
    run.checkCancel();

    // 6. output
    const record: RunRecord = {
      version: 1,
      createdAt: new Date().toISOString(),
      teacher: req.teacher,
      student: req.student,
      out: req.out,
      settings: {
        method,
        ...(method === 'seqkd'
          ? { generation, reuseRollouts: req.reuseRollouts ? path.resolve(req.reuseRollouts) : null }
          : {}),
        ...(policyLoss ? { generation, policyLoss } : {}),
        ...(method === 'minillm' ? { minillm } : {}),
        ...(method === 'gkd' ? { generation, lmbda: req.lmbda ?? 0.5, seqKd: !!req.seqKd } : {}),
        ...(feature
          ? {
              feature: {
                ...req.feature,
                layers: feature.pairs,
                teacherWidth: feature.teacherWidth,
                projectionLrScale: feature.projectionLrScale,
              },
            }
          : {}),
        ...(req.stages || feature ? { stages: stageBoundaries(stages) } : {}),
        loss: policyLoss ? null : uld ? { key: 'uld', ...uld } : resolvedLossOptions(req.loss),
        mode: trainer.mode,
        optimizer: trainer.optimizer,
        steps: req.steps,
        lr: req.lr,
        warmupSteps: training.warmup,
        schedule: 'linear warm-up, then cosine to 0.1 × lr',
        batchSize: req.batchSize,
        seqLen: req.seqLen,
        seed: req.seed,
        device: req.device ?? 'cpu',
        teacherTopK: req.teacherTopK ?? null,
        teacherFile: teacher ? modelFileLabel(teacher.model.lm.model) : null,
        data: 'path' in req.data ? req.data.path : `${data.documents.length} document(s) from the editor`,
      },
      data: {
        documents: data.documents.length,
        ...(data.rollouts ? { prompts: data.prompts, rollouts: data.rollouts.length } : {}),
        trainWindows: data.train.length,
        heldOutWindows: data.heldOut.length,
        heldOutIsTrainingData: data.heldOutIsTrainingData,
        trainTokens: training.tokens,
      },
      device: trainer.device,
      lossCurve: training.lossCurve,
      heldOut: {
        before,
        after,
        fklChange: (after.fkl - before.fkl) / before.fkl,
        ...(served ? { teacherSupport: `top-${req.teacherTopK}+rest` } : {}),
        ...(uld ? { uldChange: (after.uld! - before.uld!) / before.uld! } : {}),
      },
      ...(sampled ? { sampledHeldOut: sampled } : {}),
      timings: {
        totalSeconds: 0,
        teacherSeconds: targets.seconds + (targets.across?.seconds ?? 0),
        stepSeconds: training.stepSeconds,
        tokensPerSecond: training.tokensPerSecond,
        ...(training.sampleSeconds !== undefined ? { sampleSeconds: training.sampleSeconds } : {}),
      },
      messages: run.messages,
    };
    run.report({ phase: 'write', message: `writing ${req.out}` });
    record.timings.totalSeconds = (performance.now() - t0) / 1000;
    writeDistilledStudent(
      req.out,
      student,
      trainer.weights,
      trainer.params,
      trainer.values,
      trainer.step.weights.adapters,
      record,
      {
        ...(data.rollouts ? { 'rollouts.jsonl': rolloutsJsonl(data.rollouts) } : {}),
        // the projections are the run's, never the student's: beside it, in their own file
        ...(feature
          ? {
              'projections.safetensors': (file: string) =>
                writeProjections(file, trainer.params, trainer.values, feature),
            }
          : {}),
      },
    );
    return record;
  } finally {
    await run.releaseAll();
  }
}

// ---- 1. models ----

async function resolveStudent(req: DistillRequest, run: RunContext): Promise<ResolvedModel> {
  const student = await resolveModel(req.student, {
    allowRemote: req.allowRemote,
    cacheDir: req.hubCacheDir,
    onProgress: (m) => run.report({ phase: 'prepare', message: m }),
    // a distilled student (checkpoint and export side by side) trains again from its checkpoint
    preferCheckpoint: true,
  });
  if (!req.teacher && req.loss.key !== 'ce')
    throw new UsageError(`the ${req.loss.key} loss needs a teacher (only ce trains without one)`);
  if (student.kind !== 'checkpoint' || !student.architecture) {
    throw new ModelLoadError(
      `${req.student}: distillation trains a safetensors checkpoint (config.json + model.safetensors of a Llama, Qwen2, Qwen3, Mistral, Phi-3, Gemma 3 text or GPT-2 model); this folder has only an ONNX export`,
    );
  }
  if (req.seqLen > student.contextLength)
    throw new UsageError(
      `--seq-len ${req.seqLen} is longer than the student's context (${student.contextLength} tokens)`,
    );
  return student;
}

/** The teacher from the shared pool (already loaded when the editor analysed with it), or from a pool of this run's own. */
async function acquireTeacher(
  req: DistillRequest,
  shared: ModelPool | undefined,
  run: RunContext,
): Promise<ModelLease> {
  const pool = shared ?? new ModelPool({ capacity: 1 });
  if (!shared) run.onEnd(() => pool.dispose());
  const lease = await pool.acquire(req.teacher, {
    // feature distillation reads the teacher's hidden states too
    ...(req.feature ? { layerView: 'states' as const } : {}),
    device: req.device ?? 'cpu',
    dtype: req.teacherDtype,
    allowRemote: req.allowRemote,
    hubCacheDir: req.hubCacheDir,
    onProgress: (m) => run.report({ phase: 'prepare', message: m }),
    checkCancelled: () => run.checkCancel(),
  });
  run.onEnd(() => lease.release());
  for (const m of lease.model.lm.info.messages) run.note(m);
  return lease;
}

/**
 * A served teacher for the run: which protocol it speaks (said in the run's messages), whether
 * it tokenizes as the student (checked on the first window's text), and the disk cache of its
 * answers. Cancel aborts a request in flight.
 */
async function connectServedTeacher(
  spec: ServedTeacherSpec,
  req: DistillRequest,
  tokenizer: TextTokenizer,
  documents: TrainDocument[],
  signal: AbortSignal | undefined,
  run: RunContext,
): Promise<ServedTeacherTargets> {
  // a dropped connection is waited out for about two minutes before the run gives up
  const client = new ServedTeacher(spec, { apiKey: req.teacherApiKey, signal, retries: 8, tokenizer });
  run.report({ phase: 'prepare', message: `asking ${client.name} which protocol it speaks` });
  const protocol = await client.detect();
  // the tokenizer check on the data's first text
  const probe = documents[0]?.text.slice(0, 1000);
  if (probe) await client.checkTokenizer(probe, tokenizer.encode(probe).ids);
  run.note(
    req.method === 'seqkd'
      ? `the teacher is served (${PROTOCOL_NAMES[protocol]}): it samples the completions, and the log p of each of their tokens is its own (exact); the held-out fkl and rkl are over its top ${req.teacherTopK}, the target and the rest (lower bounds)`
      : req.method === 'onpolicy'
        ? `the teacher is served (${PROTOCOL_NAMES[protocol]}): the rewards are its log p of the student's sampled tokens (exact); the held-out fkl and rkl are over its top ${req.teacherTopK}, the target and the rest (lower bounds), and the sampled held-out is Σ log p − log q per completion (the reverse KL needs its whole distribution)`
        : `the teacher is served (${PROTOCOL_NAMES[protocol]}): each position's top ${req.teacherTopK} and the target, the rest as one bucket; the held-out fkl and rkl are over these buckets (lower bounds of the full values)`,
  );
  return new ServedTeacherTargets(client, path.join(defaultBuildCacheDir(), 'served'));
}

// ---- 2. data ----

interface PreparedData {
  documents: TrainDocument[];
  train: Window[];
  heldOut: Window[];
  heldOutIsTrainingData: boolean;
  /** SeqKD: how many prompts, and the completions trained on */
  prompts?: number;
  rollouts?: Rollout[];
  /** the on-policy methods: the prompts sampled for training and for the held-out evaluation */
  trainPrompts?: Prompt[];
  heldOutPrompts?: Prompt[];
}

/** The request's documents: read from its data path, or given (the editor's selection). */
function documentsOf(req: DistillRequest): TrainDocument[] {
  return 'path' in req.data ? readDocuments(req.data.path) : req.data.documents;
}

function prepareData(
  req: DistillRequest,
  tokenizer: TextTokenizer,
  vocab: number,
  rng: Rng,
  run: RunContext,
): PreparedData {
  const documents = documentsOf(req);
  return { documents, ...splitChecked(packWindows(documents, tokenizer, req.seqLen), vocab, rng, run) };
}

/**
 * A teacher whose tokenizer differs: pieces of text each model tokenizes alone, aligned where
 * both tokenizations start a token (acrossTokenizers.ts).
 */
function prepareTextData(
  req: DistillRequest,
  tokenizer: TextTokenizer,
  teacher: ModelLease,
  vocab: number,
  rng: Rng,
  run: RunContext,
): PreparedData {
  const documents = documentsOf(req);
  const windows = packTextWindows(
    documents,
    tokenizer,
    teacher.model.tokenizer,
    req.seqLen,
    teacher.model.lm.model.contextLength,
  );
  const groups = windows.reduce((n, w) => n + w.groups.length, 0);
  const targets = windows.reduce((n, w) => n + w.mask.reduce((a, b) => a + b, 0), 0);
  run.note(
    `the teacher and the student tokenize differently: trained with ULD on ${groups} spans where both tokenizations start a token (of ${targets} student tokens), plus the student's cross-entropy; per-token KL needs one vocabulary, so the held-out numbers are ULD (a cross-vocabulary approximation) and the span log-ratio (exact)`,
  );
  return { documents, ...splitChecked(windows, vocab, rng, run) };
}

/**
 * Whether teacher and student tokenize alike, as the per-token losses need: the same vocabulary
 * size and the same ids for the data's first text (two tokenizers of one size can still
 * differ). Undefined when they do; otherwise what differs.
 */
function sharedTokenizerProblem(
  req: DistillRequest,
  teacher: ModelLease,
  tokenizer: TextTokenizer,
  documents: TrainDocument[],
): string | undefined {
  const teacherTokenizer = teacher.model.tokenizer;
  if (teacherTokenizer.vocabSize !== tokenizer.vocabSize)
    return `teacher vocabulary ${teacherTokenizer.vocabSize} (${req.teacher}) ≠ student vocabulary ${tokenizer.vocabSize} (${req.student}): distillation needs a teacher and student that share one tokenizer`;
  const sample = documents[0]?.text.slice(0, 4000) ?? '';
  const a = teacherTokenizer.encode(sample).ids;
  const b = tokenizer.encode(sample).ids;
  if (a.length !== b.length || a.some((id, i) => id !== b[i]))
    return `the teacher's and student's tokenizers split the data differently (${a.length} vs ${b.length} tokens for the first ${sample.length} characters of ${documents[0].source}): they do not share one tokenizer`;
  return undefined;
}

/**
 * SeqKD's data: the teacher's completions of the data's prompts (or an earlier run's
 * rollouts.jsonl), each prompt followed by its completion, only the completion trained on.
 */
async function prepareRollouts(
  req: DistillRequest,
  generation: GenerationSettings,
  /** run here, or served (the server samples) */
  teacher: ModelLease | ServedTeacherTargets,
  student: ResolvedModel,
  tokenizer: TextTokenizer,
  vocab: number,
  rng: Rng,
  run: RunContext,
): Promise<PreparedData> {
  const documents = documentsOf(req);
  let prompts: number;
  let rollouts: Rollout[];
  if (req.reuseRollouts) {
    rollouts = readRollouts(req.reuseRollouts, vocab);
    prompts = new Set(rollouts.map((r) => r.source)).size;
    run.note(`trained on the ${rollouts.length} completions of ${req.reuseRollouts} (not sampled again)`);
  } else {
    const read = readPrompts(documents, tokenizer, generation.promptTokens);
    prompts = read.length;
    const t = performance.now();
    const hooks = {
      checkCancelled: () => run.checkCancel(),
      onProgress: (message: string) => run.report({ phase: 'prepare', message }),
    };
    rollouts =
      teacher instanceof ServedTeacherTargets
        ? await sampleServedRollouts(
            teacher.client,
            tokenizer,
            // one tokenizer (checked): the student's EOS ids are the teacher's
            eosIds(student.folder, student.config),
            read,
            generation,
            req.seed,
            hooks,
          )
        : await sampleTeacherRollouts(teacher.model.lm, tokenizer, read, generation, req.seed, hooks);
    run.note(
      `the teacher wrote ${rollouts.length} completions of ${prompts} prompts in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
  }
  return {
    documents,
    prompts,
    rollouts,
    ...splitChecked(packSequences(rollouts, req.seqLen), vocab, rng, run),
  };
}

/**
 * The on-policy methods' data: the prompts, about a tenth held out (at least one, at most 16)
 * for the sampled evaluation; the teacher-forced evaluation reads the held-out prompts' text.
 */
function preparePrompts(
  req: DistillRequest,
  generation: GenerationSettings,
  tokenizer: TextTokenizer,
  vocab: number,
  rng: Rng,
  run: RunContext,
  /** a teacher whose tokenizer differs: the held-out text as pieces both tokenize (its ULD) */
  acrossTeacher?: ModelLease,
): PreparedData {
  const documents = documentsOf(req);
  const prompts = readPrompts(documents, tokenizer, generation.promptTokens);
  for (const p of prompts) {
    const n = tokenizer.encode(p.text).ids.length;
    if (n + generation.maxNewTokens > req.seqLen)
      throw new InputError(
        `${p.source}: a prompt of ${n} tokens and up to ${generation.maxNewTokens} new tokens do not fit --seq-len ${req.seqLen}: raise --seq-len, or lower --max-new-tokens or --prompt-tokens`,
      );
    // gkd trains on the data's completions too
    const whole =
      req.method === 'gkd' && p.completion ? tokenizer.encode(p.text + p.completion).ids.length : 0;
    if (whole > req.seqLen)
      throw new InputError(
        `${p.source}: the prompt and its completion are ${whole} tokens, more than --seq-len ${req.seqLen}`,
      );
  }
  const order = shuffle([...prompts], rng);
  const held =
    prompts.length === 1 ? [] : order.slice(0, Math.min(16, Math.max(1, Math.round(prompts.length / 10))));
  const train = order.filter((p) => !held.includes(p));
  const heldPrompts = held.length > 0 ? held : prompts;
  if (held.length === 0)
    run.note('there is a single prompt, so the held-out numbers are measured on the training prompt');
  const heldText = heldPrompts.map((p) => ({ source: p.source, text: p.text + (p.completion ?? '') }));
  const heldWindows = acrossTeacher
    ? packTextWindows(
        heldText,
        tokenizer,
        acrossTeacher.model.tokenizer,
        req.seqLen,
        acrossTeacher.model.lm.model.contextLength,
      )
    : packWindows(heldText, tokenizer, req.seqLen);
  const checked = splitChecked(heldWindows, vocab, rng, run);
  return {
    documents,
    prompts: prompts.length,
    trainPrompts: train.length > 0 ? train : prompts,
    heldOutPrompts: heldPrompts,
    train: [],
    heldOut: [...checked.train, ...checked.heldOut],
    heldOutIsTrainingData: held.length === 0,
  };
}

/** On-policy distillation: the loop of onPolicy.ts on this run's trainer, with the sampled evaluation before and after. */
async function onPolicyTraining(
  req: DistillRequest,
  /** the request with the step graph's batch (twice req's with MiniLLM's pre-training windows) */
  stepReq: DistillRequest,
  ptWindows: Window[] | undefined,
  minillm: MiniLlmSettings,
  generation: GenerationSettings,
  studentModel: ResolvedModel,
  trainer: Trainer,
  /** run here; or served (onpolicy only), which gives the log p of the sampled tokens */
  teacher: ModelLease | undefined,
  served: ServedTeacherTargets | undefined,
  tokenizer: TextTokenizer,
  data: PreparedData,
  rng: Rng,
  run: RunContext,
): Promise<{
  training: TrainingResult;
  sampled: NonNullable<RunRecord['sampledHeldOut']>;
  rollouts: PolicyRollout[];
}> {
  run.report({ phase: 'prepare', message: 'building the sampling graph of the student' });
  const policy = await openPolicyModel(studentModel, trainer.weights, trainer.mode, req.device ?? 'cpu', {
    values: () => new Map(trainer.params.map((p, i) => [p.name, trainer.values[i]])),
    frozenFeeds: trainer.frozenFeeds,
  });
  run.onEnd(() => policy.lm.release());
  const policyTeacher: PolicyTeacher = served
    ? { kind: 'served', logps: (ids, from) => served.logps(ids, from) }
    : {
        kind: 'local',
        lm: teacher!.model.lm,
        // across tokenizers (onpolicy): the teacher reads the completions' text
        ...(trainer.uld ? { tokenizer: teacher!.model.tokenizer } : {}),
      };
  const evaluateSampled = (label: string) => {
    run.report({ phase: 'evaluate', message: `sampling the held-out prompts ${label}` });
    // the same prompts and seeds before and after
    // at T = 1 without truncation whatever the method samples at, as `sample` does by default
    return sampledHeldOut(
      policy.lm,
      policyTeacher,
      tokenizer,
      data.heldOutPrompts!,
      { ...generation, sampling: GENERATION_DEFAULTS.sampling },
      req.seed + 7_000_001,
      () => run.checkCancel(),
    );
  };
  const before = await evaluateSampled('before');
  const warmup = req.warmupSteps ?? Math.floor(req.steps / 10);
  // gkd's loss and MiniLLM's single-step term read the teacher's logits (kept for one collection)
  const stepTeacher = new TeacherTargets(
    req.method === 'gkd' || req.method === 'minillm' ? teacher : undefined,
    stepReq,
    trainer.vocab,
    [],
  );
  let lastWindows: PolicyWindow[] | undefined;
  const ptOrder: Window[] = [];
  const trainStart = performance.now();
  const result = await trainOnPolicy({
    steps: req.steps,
    batchSize: req.batchSize,
    seqLen: req.seqLen,
    seed: req.seed,
    generation,
    student: policy.lm,
    teacher: policyTeacher,
    tokenizer,
    prompts: data.trainPrompts!,
    rng,
    checkCancelled: () => run.checkCancel(),
    method: req.method === 'gkd' || req.method === 'minillm' ? req.method : 'onpolicy',
    mixAlpha: minillm.mixAlpha,
    ppoEpochs: minillm.ppoEpochs,
    advantage: {
      rewardScaling: minillm.rewardScaling,
      rewardClip: minillm.rewardClip,
      gamma: minillm.gamma,
      from: minillm.advantageFrom,
    },
    lmbda: req.lmbda ?? 0.5,
    seqKd: !!req.seqKd,
    update: async (windows, s) => {
      // MiniLLM's plain-text windows follow the rollouts in the batch, reshuffled when used up
      const pt: Window[] = [];
      while (ptWindows && pt.length < req.batchSize) {
        if (ptOrder.length === 0) ptOrder.push(...shuffle([...ptWindows], rng));
        pt.push(ptOrder.shift()!);
      }
      // kept for the steps of one collection, dropped when the next one comes
      if (windows !== lastWindows) stepTeacher.forget();
      lastWindows = windows;
      const feeds = await batchFeeds([...windows, ...pt], stepReq, trainer, stepTeacher, false);
      if (req.method === 'gkd') return optimizerStep(req, trainer, feeds, s, warmup);
      const M = stepReq.batchSize * req.seqLen;
      if (ptWindows) {
        // the completion rows in mask, the plain-text rows in pt_mask
        const mask = feeds.mask.data as Float32Array;
        const rollouts = req.batchSize * req.seqLen;
        const ptMask = new Float32Array(M);
        ptMask.set(mask.subarray(rollouts), rollouts);
        mask.fill(0, rollouts);
        feeds.pt_mask = new ort.Tensor('float32', ptMask, [M]);
      }
      const perToken = (f: (w: PolicyWindow) => number[]) => {
        const a = new Float32Array(M);
        windows.forEach((w, b) => a.set(f(w), b * req.seqLen));
        return new ort.Tensor('float32', a, [M]);
      };
      feeds.old_logp = perToken((w) => w.oldLogp);
      feeds.advantages = perToken((w) => w.advantages);
      if (req.method === 'minillm') feeds.weights = perToken((w) => w.weights);
      return optimizerStep(req, trainer, feeds, s, warmup);
    },
    onStep: (step, loss, lr, tokens, reward, kl) => {
      const elapsed = (performance.now() - trainStart) / 1000;
      run.report({
        phase: 'train',
        message: `step ${step}/${req.steps}, loss ${loss.toFixed(4)}${reward !== undefined ? `, reward ${reward.toFixed(3)}` : ''}`,
        reward,
        kl,
        step,
        steps: req.steps,
        loss,
        lr,
        tokensPerSecond: tokens / elapsed,
        secondsLeft: (elapsed / step) * (req.steps - step),
      });
    },
  });
  const after = await evaluateSampled('after');
  const seconds = Math.max(1e-9, (performance.now() - trainStart) / 1000);
  return {
    training: {
      lossCurve: result.lossCurve,
      warmup,
      tokens: result.tokens,
      stepSeconds: result.stepSeconds,
      sampleSeconds: result.sampleSeconds,
      tokensPerSecond: result.tokens / seconds,
    },
    sampled: {
      before,
      after,
      reverseKlChange: (after.reverseKl - before.reverseKl) / before.reverseKl,
    },
    rollouts: result.rollouts,
  };
}

/** The windows, once every id is known to be in the student's vocabulary. */
function checkVocabulary(windows: Window[], vocab: number): Window[] {
  for (const w of windows) {
    const bad = w.ids.find((id) => id >= vocab);
    if (bad !== undefined)
      throw new ModelLoadError(
        `the tokenizer gives token id ${bad} but the student's vocabulary has ${vocab} entries: the tokenizer.json does not belong to this model`,
      );
  }
  return windows;
}

/** The train / held-out split, after checking that every id is in the student's vocabulary. */
function splitChecked(
  windows: Window[],
  vocab: number,
  rng: Rng,
  run: RunContext,
): { train: Window[]; heldOut: Window[]; heldOutIsTrainingData: boolean } {
  const split = splitWindows(checkVocabulary(windows, vocab), rng);
  if (split.shared)
    run.note(
      'the data fills a single window, so the held-out numbers are measured on the training data; give more text for an honest held-out split',
    );
  return { train: split.train, heldOut: split.heldOut, heldOutIsTrainingData: split.shared };
}

// ---- 3. teacher targets ----

/** The teacher's logits per window (float32, [seqLen, vocab]), or its top-k buckets; cached when they fit. */
class TeacherTargets {
  seconds = 0;
  private readonly logitsCache = new Map<Window, Float32Array>();
  private readonly bucketCache = new Map<Window, TeacherBuckets>();
  private readonly heldOut: Set<Window>;

  /** a teacher whose tokenizer differs: its merged, sorted rows of each window's aligned groups */
  across?: UldTeacherTargets;

  /** feature distillation: each window's mapped teacher states, [L, D_T] per pair */
  private readonly hiddenCache = new Map<Window, Float32Array[]>();

  constructor(
    private readonly teacher: ModelLease | undefined,
    private readonly req: DistillRequest,
    private readonly vocab: number,
    heldOut: Window[],
    private readonly feature?: FeatureLossSpec,
    /** a served teacher: buckets only (its held-out numbers are over the buckets too) */
    readonly served?: ServedTeacherTargets,
  ) {
    this.heldOut = new Set(heldOut);
  }

  /** the last window's mapped states, when they were not kept (the cache was full) */
  private lastHidden?: { w: Window; states: Float32Array[] };

  /** The teacher's mapped hidden states of a window (one pass gives them with its logits). */
  async hidden(w: Window): Promise<Float32Array[]> {
    const kept = this.hiddenCache.get(w) ?? (this.lastHidden?.w === w ? this.lastHidden.states : undefined);
    if (kept) return kept;
    this.logitsCache.delete(w);
    await this.logits(w);
    return this.lastHidden!.states;
  }

  get present(): boolean {
    return this.teacher !== undefined || this.served !== undefined;
  }

  async logits(w: Window): Promise<Float32Array> {
    const hit = this.logitsCache.get(w);
    if (hit) return hit;
    const t = performance.now();
    const lm = this.teacher!.model.lm;
    let out;
    if (this.feature) {
      // the hidden states [S, L, D_T] come with the logits: keep the mapped ones
      const layers = await lm.forwardLayers(w.ids);
      const L = w.ids.length;
      const D = layers.width;
      const states = this.feature.pairs.map(([, t]) => layers.hidden.slice(t * L * D, (t + 1) * L * D));
      this.lastHidden = { w, states };
      if (this.shouldCache(w)) this.hiddenCache.set(w, states);
      out = layers.logits;
    } else out = await lm.forward(w.ids);
    if (out.vocab !== this.vocab)
      throw new ModelLoadError(
        `the teacher's logits have ${out.vocab} entries, the student's vocabulary ${this.vocab}: they do not share a vocabulary`,
      );
    const data = float32Logits(out);
    this.seconds += (performance.now() - t) / 1000;
    if (this.shouldCache(w)) this.logitsCache.set(w, data);
    return data;
  }

  async buckets(w: Window, k: number): Promise<TeacherBuckets> {
    let b = this.bucketCache.get(w);
    if (!b && this.served) {
      const t = performance.now();
      b = await this.served.buckets(w, k);
      this.seconds += (performance.now() - t) / 1000;
      if (this.heldOut.has(w)) this.bucketCache.set(w, b);
    } else if (!b) {
      b = teacherBuckets(
        await this.logits(w),
        this.req.seqLen,
        this.vocab,
        w.targets,
        k,
        this.req.loss.temperature,
      );
      this.bucketCache.set(w, b);
    }
    return b;
  }

  /** Windows are kept until the cache is full; with teacher top-k only held-out windows (evaluation needs full logits). */
  /** Drops every kept window (the on-policy methods: at each new collection, whose windows are new). */
  forget(): void {
    this.logitsCache.clear();
    this.hiddenCache.clear();
    this.bucketCache.clear();
  }

  private shouldCache(w: Window): boolean {
    if (this.req.teacherTopK && !this.heldOut.has(w)) return false;
    return (this.logitsCache.size + 1) * this.req.seqLen * this.vocab * 4 <= TEACHER_CACHE_BYTES;
  }
}

// ---- 4. graphs and sessions ----

interface Trainer {
  vocab: number;
  /** feature distillation's pairs and widths (the step graph takes teacher_hidden_k and the stage weights) */
  feature?: FeatureLossSpec;
  /** the ULD loss across tokenizers (the evaluation graph takes the groups' uld_* inputs) */
  uld?: UldSettings;
  /** the step graph takes them too (word-level ULD; not the on-policy methods' step) */
  stepTakesGroups: boolean;
  /** the step graph's teacher top-k buckets (word-level; a served teacher's held-out evaluation has them too) */
  stepTopK: number | undefined;
  /** whether the step graph reads the teacher (every loss but ce) */
  stepTakesTeacher: boolean;
  mode: TrainMode;
  optimizer: OptimizerSpec;
  weights: WeightSource;
  step: StepGraph;
  params: StepGraph['params'];
  stepSession: ort.InferenceSession;
  evalSession: ort.InferenceSession;
  device: string;
  /** LoRA's frozen weights: one copy, fed to both sessions */
  frozenFeeds: Record<string, ort.Tensor>;
  /** the trained parameters' current values and optimiser states */
  values: Float32Array[];
  states: Record<string, Float32Array[]>;
}

async function openTrainer(
  req: DistillRequest,
  student: ResolvedModel,
  vocab: number,
  run: RunContext,
  policy?: PolicyLossOptions,
  feature?: FeatureLossSpec,
  /** a served teacher: the evaluation graph takes the buckets too */
  evalOnBuckets = false,
  uld?: UldSettings,
): Promise<Trainer> {
  const arch = student.architecture!;
  const mode: TrainMode =
    !req.mode || req.mode.kind === 'lora'
      ? {
          kind: 'lora',
          rank: req.mode?.rank ?? 8,
          alpha: req.mode?.alpha ?? 16,
          targets:
            (req.mode as { targets?: string[] })?.targets ?? defaultLoraTargets(arch, student.config ?? {}),
        }
      : { kind: 'full' };
  const optimizer: OptimizerSpec = { ...DEFAULT_OPTIMIZER, ...req.optimizer };
  const topK = req.teacherTopK;
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 1 || topK + 1 >= vocab))
    throw new UsageError(`--teacher-top-k must be a whole number from 1 to ${vocab - 2}`);
  const weights = new WeightSource(
    student.weightFiles!.map(readSafetensors),
    arch === 'gpt2' ? ['', 'transformer.'] : [''],
  );
  run.report({ phase: 'prepare', message: 'building the training graph' });
  const spec = {
    architecture: arch,
    config: student.config!,
    weights,
    mode,
    batch: req.batchSize,
    seqLen: req.seqLen,
    vocab,
    loss: req.loss,
    optimizer,
    seed: req.seed,
    teacherTopK: topK,
    noTeacher: !req.teacher,
    uld,
    frozenAsInputs: true,
  };
  await run.yieldAndCheckCancel();
  // the ce loss never reads the teacher: its steps are not fed the teacher's logits (the
  // held-out evaluation still compares with the teacher)
  const stepTakesTeacher = !!req.teacher && (policy ? policy.singleStep : req.loss.key !== 'ce');
  // the on-policy methods across tokenizers: ULD only in the evaluation graph
  const step = buildStepGraph({
    ...spec,
    noTeacher: !stepTakesTeacher,
    policy,
    feature,
    purpose: 'step',
    // the on-policy methods' step reads neither ULD's groups nor a served teacher's buckets
    ...(policy ? { uld: undefined } : {}),
    ...(policy || !stepTakesTeacher ? { teacherTopK: undefined } : {}),
  });
  await run.yieldAndCheckCancel();
  if (step.params.length === 0)
    throw new UsageError(
      `no weight matches the LoRA targets ${mode.kind === 'lora' ? mode.targets.join(', ') : ''} in ${req.student}`,
    );
  const evalBytes = buildStepGraph({ ...spec, purpose: 'eval', evalOnBuckets }).bytes; // its frozen copies are dropped: the step graph's are fed
  await run.yieldAndCheckCancel();
  const device = req.device ?? 'cpu';
  const stepOpened = await openSession({ model: step.bytes, device, name: 'the training graph' });
  run.onEnd(() => stepOpened.session.release());
  // the evaluation graph runs where the step graph could start
  const evalOpened = await openSession({
    model: evalBytes,
    device: stepOpened.device,
    name: 'the evaluation graph',
  });
  run.onEnd(() => evalOpened.session.release());
  for (const m of [...stepOpened.messages, ...evalOpened.messages]) run.note(m);
  const params = step.params;
  return {
    vocab,
    feature,
    uld,
    stepTakesGroups: !!uld && !policy,
    stepTopK: policy || !stepTakesTeacher ? undefined : topK,
    stepTakesTeacher,
    mode,
    optimizer,
    weights,
    step,
    params,
    stepSession: stepOpened.session,
    evalSession: evalOpened.session,
    device: stepOpened.device,
    frozenFeeds: Object.fromEntries(
      step.weights.frozen.map((f) => [f.name, new ort.Tensor('float32', f.data, f.shape)]),
    ),
    values: params.map((p) => p.init),
    states: Object.fromEntries(
      step.stateNames.map((s) => [s, params.map((p) => new Float32Array(p.init.length))]),
    ),
  };
}

/** One batch's inputs: ids, targets and mask; the teacher as full logits (evaluation, or no top-k) or as top-k buckets; the parameters. */
async function batchFeeds(
  batch: Window[],
  req: DistillRequest,
  trainer: Trainer,
  targets: TeacherTargets,
  forEval: boolean,
): Promise<Record<string, ort.Tensor>> {
  const B = req.batchSize;
  const L = req.seqLen;
  const vocab = trainer.vocab;
  const ids = new BigInt64Array(B * L);
  const targetIds = new BigInt64Array(B * L);
  const mask = new Float32Array(B * L);
  // a served teacher's held-out numbers are over its buckets; a local one's over the vocabulary
  const k = forEval ? (targets.served ? req.teacherTopK : undefined) : trainer.stepTopK;
  const takesTeacher = !trainer.uld && targets.present && (forEval || trainer.stepTakesTeacher);
  const teacherBuf = k || !takesTeacher ? undefined : new Float32Array(B * L * vocab); // [B, L, V]
  const topIds = k ? new BigInt64Array(B * L * (k + 1)) : undefined; // [B·L, k+1]
  const topLogprobs = k ? new Float32Array(B * L * (k + 2)) : undefined; // [B·L, k+2]
  const topTarget = k ? new BigInt64Array(B * L) : undefined;
  const feature = forEval ? undefined : trainer.feature;
  const hidden = feature?.pairs.map(() => new Float32Array(B * L * feature.teacherWidth)); // [B·L, D_T] each
  for (let b = 0; b < B; b++) {
    const w = batch[b];
    if (!w) continue; // an all-masked filler row
    for (let i = 0; i < L; i++) {
      ids[b * L + i] = BigInt(w.ids[i]);
      targetIds[b * L + i] = BigInt(w.targets[i]);
      mask[b * L + i] = w.mask[i];
    }
    if (k) {
      const buckets = await targets.buckets(w, k);
      topIds!.set(buckets.ids, b * L * (k + 1));
      topLogprobs!.set(buckets.logprobs, b * L * (k + 2));
      topTarget!.set(buckets.target, b * L);
    } else if (teacherBuf) teacherBuf.set(await targets.logits(w), b * L * vocab);
    if (hidden) (await targets.hidden(w)).forEach((h, p) => hidden[p].set(h, b * L * feature!.teacherWidth));
  }
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [B, L]),
    targets: new ort.Tensor('int64', targetIds, [B * L, 1]),
    mask: new ort.Tensor('float32', mask, [B * L]),
  };
  if (k) {
    feeds.teacher_topk_ids = new ort.Tensor('int64', topIds!, [B * L, k + 1]);
    feeds.teacher_topk_logprobs = new ort.Tensor('float32', topLogprobs!, [B * L, k + 2]);
    feeds.teacher_topk_target = new ort.Tensor('int64', topTarget!, [B * L, 1]);
  } else if (teacherBuf) feeds.teacher_logits = new ort.Tensor('float32', teacherBuf, [B, L, vocab]);
  hidden?.forEach(
    (h, p) => (feeds[featureInput(p)] = new ort.Tensor('float32', h, [B * L, feature!.teacherWidth])),
  );
  if (trainer.uld && (forEval || trainer.stepTakesGroups)) {
    // across tokenizers: the aligned groups and the teacher's sorted rows of each window
    const windows = Array.from({ length: B }, (_, b) => batch[b] as TextWindow | undefined);
    const rows = [];
    for (const w of windows) rows.push(w ? await targets.across!.rows(w) : undefined);
    for (const [name, t] of Object.entries(uldGroupFeeds(windows, rows, L, vocab)))
      feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  trainer.params.forEach((p, i) => {
    // the evaluation graph has no feature loss, so no projections
    if (!(forEval && p.role === 'projection'))
      feeds[p.name] = new ort.Tensor('float32', trainer.values[i], p.shape);
  });
  Object.assign(feeds, trainer.frozenFeeds);
  return feeds;
}

// ---- 5. evaluate and train ----

/** Held-out forward KL, reverse KL and student perplexity, each a mean over valid target tokens. */
async function evaluateHeldOut(
  req: DistillRequest,
  trainer: Trainer,
  targets: TeacherTargets,
  heldOut: Window[],
  label: string,
  run: RunContext,
): Promise<HeldOut> {
  const B = req.batchSize;
  let fkl = 0;
  let rkl = 0;
  let nll = 0;
  let count = 0;
  // across tokenizers: Σ ULD, Σ (log P_T − log P_S) and the number of aligned spans
  let uld = 0;
  let logRatio = 0;
  let spans = 0;
  for (let i = 0; i < heldOut.length; i += B) {
    run.checkCancel();
    run.report({
      phase: 'evaluate',
      message: `held-out evaluation ${label}: ${Math.min(i + B, heldOut.length)}/${heldOut.length} windows`,
    });
    const batch = heldOut.slice(i, i + B);
    const out = await trainer.evalSession.run(await batchFeeds(batch, req, trainer, targets, true));
    fkl += out.fkl ? Number(out.fkl.data[0]) : NaN;
    rkl += out.rkl ? Number(out.rkl.data[0]) : NaN;
    nll += Number(out.nll.data[0]);
    count += Number(out.count.data[0]);
    if (trainer.uld) {
      uld += Number(out.uld.data[0]);
      // window b's groups in slots b·L + j, as uldGroupFeeds lays them out
      const studentSpanLogp = out.span_logp.data as Float32Array;
      for (const [b, w] of (batch as TextWindow[]).entries()) {
        const teacherSpanLogp = (await targets.across!.rows(w)).spanLogp;
        for (let j = 0; j < w.groups.length; j++)
          logRatio += teacherSpanLogp[j] - studentSpanLogp[b * req.seqLen + j];
        spans += w.groups.length;
      }
    }
  }
  return {
    fkl: fkl / count,
    rkl: rkl / count,
    studentPerplexity: Math.exp(nll / count),
    tokens: count,
    ...(trainer.uld ? { uld: uld / spans, spanLogRatio: logRatio / spans, spans } : {}),
  };
}

interface TrainingResult {
  /** the on-policy methods: seconds spent sampling and scoring rollouts */
  sampleSeconds?: number;
  lossCurve: LossPoint[];
  warmup: number;
  tokens: number;
  stepSeconds: number;
  tokensPerSecond: number;
}

/** The step loop: batches drawn from reshuffled training windows; one ONNX Runtime run per step. */
async function trainLoop(
  req: DistillRequest,
  trainer: Trainer,
  targets: TeacherTargets,
  train: Window[],
  rng: Rng,
  run: RunContext,
  stages: StageSpec[],
): Promise<TrainingResult> {
  const lossCurve: LossPoint[] = [];
  const order: Window[] = [];
  const warmup = req.warmupSteps ?? Math.floor(req.steps / 10);
  const trainStart = performance.now();
  let stepSeconds = 0;
  let tokens = 0;
  for (let s = 0; s < req.steps; s++) {
    run.checkCancel();
    const batch: Window[] = [];
    while (batch.length < req.batchSize) {
      if (order.length === 0) order.push(...shuffle([...train], rng));
      batch.push(order.shift()!);
    }
    const feeds = await batchFeeds(batch, req, trainer, targets, false);
    // the stage's weights: kd alone, the features alone (× W), or kd + W·features
    const stage = stageAt(stages, s);
    if (trainer.feature) {
      const W = req.feature!.weight;
      const kind = stages[stage].kind;
      feeds.kd_weight = new ort.Tensor('float32', Float32Array.of(kind === 'features' ? 0 : 1), []);
      feeds.feature_weight = new ort.Tensor('float32', Float32Array.of(kind === 'kd' ? 0 : W), []);
    }
    const t = performance.now();
    const { loss, lr, gradNorm, terms } = await optimizerStep(req, trainer, feeds, s, warmup);
    stepSeconds += (performance.now() - t) / 1000;
    lossCurve.push({ step: s + 1, loss, lr, gradNorm, ...terms, ...(stages.length > 1 ? { stage } : {}) });
    tokens += batch.reduce((n, w) => n + w.mask.reduce((a, b) => a + b, 0), 0);
    const elapsed = (performance.now() - trainStart) / 1000;
    run.report({
      phase: 'train',
      message: `step ${s + 1}/${req.steps}, loss ${loss.toFixed(4)}`,
      step: s + 1,
      steps: req.steps,
      loss,
      lr,
      tokensPerSecond: tokens / elapsed,
      secondsLeft: (elapsed / (s + 1)) * (req.steps - s - 1),
    });
  }
  const seconds = Math.max(1e-9, (performance.now() - trainStart) / 1000);
  return { lossCurve, warmup, tokens, stepSeconds, tokensPerSecond: tokens / seconds };
}

/**
 * One optimiser step on a batch's feeds: the learning rate and AdamW's bias corrections and
 * states, one ONNX Runtime run, the new parameters and states kept.
 */
async function optimizerStep(
  req: DistillRequest,
  trainer: Trainer,
  feeds: Record<string, ort.Tensor>,
  s: number,
  warmup: number,
): Promise<{ loss: number; lr: number; gradNorm: number; terms?: { kdLoss: number; featureLoss: number } }> {
  const { optimizer, params, step } = trainer;
  const lr = learningRate(s, req.steps, req.lr, warmup);
  feeds.lr = new ort.Tensor('float32', Float32Array.of(lr), []);
  if (optimizer.kind === 'adamw') {
    feeds.bias_correction1 = new ort.Tensor('float32', Float32Array.of(1 - optimizer.beta1 ** (s + 1)), []);
    feeds.bias_correction2 = new ort.Tensor('float32', Float32Array.of(1 - optimizer.beta2 ** (s + 1)), []);
    for (const st of step.stateNames)
      params.forEach(
        (p, i) =>
          (feeds[names.state(st, p.name)] = new ort.Tensor('float32', trainer.states[st][i], p.shape)),
      );
  }
  const out = await trainer.stepSession.run(feeds);
  const loss = Number(out.loss.data[0]);
  if (!Number.isFinite(loss))
    throw new InputError(
      `the loss became ${loss} at step ${s + 1}; lower the learning rate (now ${req.lr}) or the temperature`,
    );
  trainer.values = params.map((p) => out[names.next(p.name)].data as Float32Array);
  trainer.states = Object.fromEntries(
    step.stateNames.map((st) => [
      st,
      params.map((p) => out[names.nextState(st, p.name)].data as Float32Array),
    ]),
  );
  return {
    loss,
    lr,
    gradNorm: Number(out.grad_norm.data[0]),
    ...(out.feature_loss
      ? { terms: { kdLoss: Number(out.kd_loss.data[0]), featureLoss: Number(out.feature_loss.data[0]) } }
      : {}),
  };
}

function samplesDuringTraining(method: DistillMethod): boolean {
  return (SAMPLING_METHODS as readonly string[]).includes(method);
}

// ---- request checks, before any work ----

function validate(req: DistillRequest, method: DistillMethod, generation: GenerationSettings): void {
  if (!(DISTILL_METHODS as readonly string[]).includes(method))
    throw new UsageError(`--method must be one of ${DISTILL_METHODS.join(', ')} (got ${method})`);
  if (method !== 'word') {
    if (!req.teacher) throw new UsageError(`--method ${method} needs a teacher`);
    const problems = generationProblems(generation);
    if (problems.length > 0) throw new UsageError(problems.join('; '));
  }
  if (req.reuseRollouts && method !== 'seqkd') throw new UsageError('--reuse-rollouts needs --method seqkd');
  if (req.teacher && parseServedTeacher(req.teacher)) {
    // a served teacher gives log-probabilities of given tokens at T = 1 (its top K for word-level,
    // the sampled tokens' for onpolicy's rewards) and samples completions (seqkd)
    if (method === 'gkd' || method === 'minillm')
      throw new UsageError(
        `--method ${method} with a served teacher is not built: it needs the teacher's whole distribution at every sampled position${method === 'minillm' ? ' and samples from a mix with it' : ''}, which a server does not send; use --method onpolicy (the teacher's log p of the student's tokens), seqkd or word, or a local teacher`,
      );
    if (req.feature)
      throw new UsageError(
        "feature distillation needs the teacher's hidden states, which a served teacher does not give",
      );
    if (req.loss.temperature !== 1)
      throw new UsageError(
        `a served teacher's log-probabilities are at temperature 1: --temperature ${req.loss.temperature} cannot be computed from its top K`,
      );
  }
  if (req.uld) {
    const refused = [
      method !== 'word' ? `--method ${method}` : '',
      req.teacherTopK !== undefined ? '--teacher-top-k' : '',
      req.feature ? '--feature-loss' : '',
      req.stages ? '--stages' : '',
      req.loss.temperature !== 1 ? '--temperature' : '',
      // a served teacher's top K cannot be sorted into ULD's full rows
      req.teacher && parseServedTeacher(req.teacher) ? 'a served teacher' : '',
    ].filter(Boolean);
    if (refused.length > 0)
      throw new UsageError(
        `--loss uld (across tokenizers) is built for the word-level method at temperature 1: ${refused.join(', ')} ${refused.length > 1 ? 'are' : 'is'} not built for it`,
      );
    if (!req.teacher) throw new UsageError('--loss uld needs a teacher');
    const u = { ...ULD_DEFAULTS, ...req.uld };
    if (!(u.weight >= 0 && u.ceWeight >= 0 && u.weight + u.ceWeight > 0))
      throw new UsageError('--uld-weight and --ce-weight must be ≥ 0, not both 0');
  }
  if (req.feature || req.stages) {
    if (method !== 'word')
      throw new UsageError(`--feature-loss and --stages are built for --method word, not ${method}`);
    if (!req.teacher) throw new UsageError('feature distillation needs a teacher');
    if (req.feature && !(req.feature.weight >= 0 && Number.isFinite(req.feature.weight)))
      throw new UsageError(`--feature-weight must be a number ≥ 0 (got ${req.feature.weight})`);
    resolveStages(req);
  }
  if (method === 'gkd') {
    if (req.loss.key !== 'gjsd' || req.loss.temperature !== 1)
      throw new UsageError(
        "--method gkd trains on TRL's generalised JSD at T = 1: choose β with --beta (0: forward KL, 1: reverse KL)",
      );
    if (req.lmbda !== undefined && !(req.lmbda >= 0 && req.lmbda <= 1))
      throw new UsageError('--lmbda must be between 0 and 1');
  }
  if (method !== 'gkd' && (req.lmbda !== undefined || req.seqKd))
    throw new UsageError('--lmbda and --seq-kd need --method gkd');
  // (a served teacher's K sets the buckets of the held-out evaluation only)
  if (
    samplesDuringTraining(method) &&
    req.teacherTopK !== undefined &&
    !parseServedTeacher(req.teacher ?? '')
  )
    throw new UsageError(`--teacher-top-k is not built for --method ${method}`);
  if (method === 'minillm') {
    const m = { ...MINILLM_DEFAULTS, ...req.minillm };
    const problems: string[] = [];
    if (!(m.mixAlpha >= 0 && m.mixAlpha <= 1)) problems.push('--mix-alpha must be between 0 and 1');
    if (!(m.rewardScaling > 0)) problems.push('--reward-scaling must be greater than 0');
    if (!(m.rewardClip > 0)) problems.push('--reward-clip must be greater than 0');
    if (!(m.gamma >= 0 && m.gamma <= 1)) problems.push('--gamma must be between 0 and 1');
    if (!(m.cliprange > 0 && m.cliprange < 1)) problems.push('--cliprange must be in (0, 1)');
    if (!(Number.isInteger(m.ppoEpochs) && m.ppoEpochs >= 1))
      problems.push('--ppo-epochs must be a whole number ≥ 1');
    if (m.advantageFrom !== 't' && m.advantageFrom !== 't+1')
      problems.push('--advantage-from must be t or t+1');
    if (!(m.kdRatio >= 0 && m.kdRatio <= 1)) problems.push('--kd-ratio must be between 0 and 1');
    if (!(m.lmCoef >= 0)) problems.push('--lm-coef must be 0 or more');
    if (m.lmData !== undefined && !fs.existsSync(m.lmData))
      problems.push(`--lm-data ${m.lmData} does not exist`);
    if (problems.length > 0) throw new UsageError(problems.join('; '));
  } else if (req.minillm) throw new UsageError('the MiniLLM settings need --method minillm');
  if (method === 'onpolicy' || method === 'minillm') {
    // the ratio and the advantages need log q of the distribution the tokens were drawn from,
    // at θ as at θ_old: the temperature is a constant of the training graph, but a truncation
    // (top-k, top-p, min-p) keeps a set of tokens chosen at sampling time, which the graph does not take
    const g = generation.sampling;
    const refused = [
      g.greedy ? '--greedy (a ratio of a deterministic policy means nothing)' : '',
      g.topK !== 0 ? '--top-k' : '',
      g.topP !== 1 ? '--top-p' : '',
      g.minP !== 0 ? '--min-p' : '',
      g.repetitionPenalty !== 1 ? '--repetition-penalty' : '',
    ].filter(Boolean);
    if (refused.length > 0)
      throw new UsageError(
        `--method ${method} samples from the student at --gen-temperature without truncation: ${refused.join(', ')} ${refused.length > 1 ? 'are' : 'is'} not built for it (its ratio would need the tokens each truncation kept at every sampled position)`,
      );
  }
  const positiveInt = (v: number, flag: string) => {
    if (!Number.isInteger(v) || v < 1)
      throw new UsageError(`${flag} must be a positive whole number (got ${v})`);
  };
  positiveInt(req.steps, '--steps');
  positiveInt(req.batchSize, '--batch-size');
  positiveInt(req.seqLen, '--seq-len');
  if (!(req.lr > 0)) throw new UsageError(`--lr must be positive (got ${req.lr})`);
  if (!(req.loss.temperature > 0))
    throw new UsageError(`--temperature must be positive (got ${req.loss.temperature})`);
  if (req.loss.kdRatio !== undefined && !(req.loss.kdRatio >= 0 && req.loss.kdRatio <= 1))
    throw new UsageError('--kd-ratio must be between 0 and 1');
  if (req.loss.beta !== undefined && req.loss.key === 'gjsd' && !(req.loss.beta >= 0 && req.loss.beta <= 1))
    throw new UsageError('--beta must be between 0 and 1 for gjsd');
  if (
    req.loss.alpha !== undefined &&
    (req.loss.key === 'skl' || req.loss.key === 'srkl' || req.loss.key === 'atkd') &&
    !(req.loss.alpha >= 0 && req.loss.alpha <= 1)
  )
    throw new UsageError('--alpha must be between 0 and 1');
  if (req.mode?.kind === 'lora' && req.mode.rank !== undefined) positiveInt(req.mode.rank, '--lora-rank');
  const out = fs.existsSync(req.out) ? fs.realpathSync(req.out) : req.out;
  for (const input of [req.student, req.teacher].filter(Boolean)) {
    if (fs.existsSync(input) && fs.realpathSync(input) === out)
      throw new UsageError(
        `--out ${req.out} is an input model folder: distillation never overwrites a model; choose a new folder`,
      );
  }
  if (fs.existsSync(req.out) && fs.readdirSync(req.out).length > 0)
    throw new UsageError(`--out ${req.out} already exists and is not empty: choose a new folder`);
}
