/**
 * The protocol between the extension host (or the CLI) and the model process: what an
 * analysis or a distillation is asked to do, what it answers, and the messages that carry
 * them. Every message says who sends it. Types only (and their key lists): no vscode, no
 * DOM, no ONNX Runtime.
 */
import type { AlignedSpan } from '../core/spanAlignment';
import type { DtypeChoice } from './dtypes';
import type { ModelRole } from '../core/errors';
import type { MetricKey } from '../core/metricKeys';
import type { MetricOptions, Summary, TokenRow } from '../core/tokenRows';
import type { Device } from './devices';
import type { SampleReport, SampleRequest, SamplingOptions, StreamedToken } from './generation';

// ---- analysis (inspect) ----

export interface InspectRequest {
  teacher: string;
  student: string;
  text: string;
  options: MetricOptions;
  metric: MetricKey;
  device: Device;
  /** hard cap on the text's token count */
  maxTokens: number;
  /** window length for long texts (default: the smaller model context) */
  window?: number;
  allowRemote?: boolean;
  hubCacheDir?: string;
  /** which file of an ONNX export runs (transformers.js's dtype names; default auto) */
  dtype?: DtypeChoice;
  /** also the layer view (logit lens, CKA): both models must be checkpoint folders */
  layers?: boolean;
  /** a served teacher (openai+http://…#model): how many of its top tokens per position (default 20) */
  teacherTopK?: number;
  /** a served teacher's API key (the editor's secret storage; the CLI reads DISTILL_LENS_TEACHER_API_KEY) */
  teacherApiKey?: string;
  /** a pair whose tokenizers differ is compared on exact spans (`spans`) instead of refused */
  acrossTokenizers?: boolean;
}

/**
 * The layer view of the analysed text's first window (src/inspect/layerView.ts, docs/metrics.md
 * "Layer view"): one entry per hidden state in the Hugging Face convention (the embeddings,
 * then each layer, the last being the model's own output), per-row arrays indexed as `rows`.
 */
export interface LayerView {
  /** rows covered (the first window's; all of them when the text fits one window) */
  rows: number;
  /** positions the CKA is taken over */
  positions: number;
  /** per student entry: KL(teacher final ‖ student lens) per row, and whether the lens's argmax is the student's final */
  student: { klToTeacherFinal: number[]; argmaxFinal: boolean[] }[];
  /** per teacher entry: KL(teacher lens ‖ teacher final) per row, and the argmax check */
  teacher: { klToFinal: number[]; argmaxFinal: boolean[] }[];
  /** per row, the first entry from which every later entry's argmax is the final one */
  studentSettles: number[];
  teacherSettles: number[];
  /** linear CKA, (L_S + 1) × (L_T + 1) */
  cka: number[][];
  /** equal widths only: per student entry j, cosine per row with teacher entry round(j·L_T/L_S) */
  cosine?: { student: number; teacher: number; values: number[] }[];
}

export interface ModelReport {
  name: string;
  folder: string;
  device: string;
  vocab: number;
  contextLength: number;
  /** what ran: the ONNX file and its precision, or the graph built from a checkpoint */
  file: string;
}

export interface Timings {
  loadMs: number;
  tokenizeMs: number;
  teacherMs: number;
  studentMs: number;
  metricsMs: number;
  /** rows whose AKL head needed the full-row split in JavaScript (the graph settles the others) */
  aklFullRowSplits: number;
  totalMs: number;
}

export interface InspectResult {
  ids: number[];
  rows: TokenRow[];
  summary: Summary;
  teacher: ModelReport;
  student: ModelReport;
  /** windows used: [first position, end position) of each */
  windows: [number, number][];
  exactSpans: boolean;
  /** what the user should know (a device fallback, approximate spans) */
  messages: string[];
  /** set when the text was longer than the context and analysed in overlapping windows */
  windowNotice?: string;
  /** with `layers` */
  layers?: LayerView;
  /**
   * A served teacher: what its distribution was known over, e.g. "top-20+rest" (its 20 most
   * probable tokens, the target, one bucket for the rest); the distribution metrics are over
   * those buckets (docs/metrics.md, "A served teacher"). Absent for a local teacher (exact).
   */
  teacherSupport?: string;
  /**
   * A pair whose tokenizers differ (with `acrossTokenizers`): the exact comparison points, one
   * per span between places where both tokenizations have a token boundary (docs/metrics.md,
   * "Teacher and student with different tokenizers"); `rows` then holds the student's tokens inside spans (their span's k1–k3, the rest NaN).
   */
  spans?: AlignedSpan[];
  timings: Timings;
}

// ---- distillation ----

/**
 * Defaults of a distillation run, shared by the CLI and the editor's settings. The learning
 * rate comes from the sweep in bench/defaultsSweep.ts (README, "Choosing the defaults").
 */
export const DISTILL_DEFAULTS = {
  steps: 100,
  lr: 2e-3,
  loraRank: 8,
  loraAlpha: 16,
  batchSize: 4,
  seqLen: 128,
} as const;

export interface TrainDocument {
  /** where it came from, for messages */
  source: string;
  text: string;
  /** characters [0, promptChars) are a prompt: no loss on their tokens */
  promptChars?: number;
}

export const LOSS_KEYS = [
  'fkl',
  'rkl',
  'jeffreys',
  'jsd',
  'gjsd',
  'tvd',
  'skl',
  'srkl',
  'akl',
  'dkd',
  'atkd',
  'ce',
] as const;

export type LossKey = (typeof LOSS_KEYS)[number];

export interface LossOptions {
  key: LossKey;
  /** temperature T */
  temperature: number;
  /** gjsd β (default 0.5); dkd's β, the nckd weight (default 8) */
  beta?: number;
  /** skl/srkl α (default 0.1); dkd's α, the tckd weight (default 1); atkd's α (default 0.2) */
  alpha?: number;
  /** AKL head mass μ (default 0.5) */
  mu?: number;
  /** loss = (1 − kdRatio)·ce + kdRatio·kd; default 1 */
  kdRatio?: number;
  /** multiply the KD term by T²; default on for dkd, off otherwise */
  scaleByT2?: boolean;
}

export type TrainMode = { kind: 'full' } | { kind: 'lora'; rank: number; alpha: number; targets: string[] };

export interface OptimizerSpec {
  kind: 'adamw' | 'sgd';
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** clip the global gradient norm to this; 0 turns clipping off */
  maxGradNorm: number;
}

/**
 * How a run trains: on the data's text (word-level KD), on completions the teacher samples
 * once (SeqKD), on the student's own completions some steps and the data's or the teacher's
 * the others (GKD), or on the student's own completions at every step (on-policy; MiniLLM from
 * the teacher–student mix, with PPO epochs over each collection).
 */
export const DISTILL_METHODS = ['word', 'seqkd', 'gkd', 'onpolicy', 'minillm'] as const;
export type DistillMethod = (typeof DISTILL_METHODS)[number];
/** The methods that sample completions during training (a prompt and its completion share a window). */
export const SAMPLING_METHODS: readonly DistillMethod[] = ['gkd', 'onpolicy', 'minillm'];

/** How the sequence-level methods sample completions of the data's prompts. */
export interface GenerationSettings {
  sampling: SamplingOptions;
  maxNewTokens: number;
  /** completions sampled per prompt */
  samplesPerPrompt: number;
  /** text without prompt / completion records is cut into prompts of this many tokens */
  promptTokens: number;
}

export const GENERATION_DEFAULTS: GenerationSettings = {
  sampling: { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1 },
  maxNewTokens: 128,
  samplesPerPrompt: 1,
  promptTokens: 64,
};

export interface MiniLlmSettings {
  /** the teacher's share α of the sampling mix α·p + (1 − α)·q */
  mixAlpha: number;
  rewardScaling: number;
  rewardClip: number;
  gamma: number;
  /** PPO's clip ε on ratio·w */
  cliprange: number;
  /** optimiser steps over each collection of rollouts */
  ppoEpochs: number;
  /** the return from t (LMOps' code) or from t + 1 (the paper) */
  advantageFrom: 't' | 't+1';
  /** plain text for the pre-training term (LMOps' --lm-data-dir); none: no such term */
  lmData?: string;
  /** the pre-training term: (1 − kdRatio)·ce + kdRatio·soft-ce to the teacher, times lmCoef */
  kdRatio: number;
  lmCoef: number;
}

export const MINILLM_DEFAULTS: MiniLlmSettings = {
  mixAlpha: 0.2,
  rewardScaling: 0.5,
  rewardClip: 100,
  gamma: 0.95,
  cliprange: 0.2,
  ppoEpochs: 4,
  advantageFrom: 't',
  kdRatio: 0.5,
  lmCoef: 1,
};

/**
 * Distillation across tokenizers: loss = weight·ULD + ceWeight·CE on the student's tokens of the
 * text (defaults: the original ULD paper's, Boizard et al. 2024: distil 1.5, cross-entropy 1)
 */
export interface UldSettings {
  weight: number;
  ceWeight: number;
}

export const ULD_DEFAULTS: UldSettings = { weight: 1.5, ceWeight: 1 };

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
  /** which file of an ONNX export teacher runs (default auto); the student is a checkpoint */
  teacherDtype?: DtypeChoice;
  /** a served teacher's API key (the editor's secret storage; the CLI reads DISTILL_LENS_TEACHER_API_KEY) */
  teacherApiKey?: string;
  out: string;
  allowRemote?: boolean;
  hubCacheDir?: string;
  /** word (default): the data's text; seqkd: completions the teacher samples for the data's prompts */
  method?: DistillMethod;
  /** sampling of the sequence-level methods (defaults: GENERATION_DEFAULTS) */
  generation?: Partial<GenerationSettings>;
  /** seqkd: train on the rollouts.jsonl of an earlier run instead of sampling again */
  reuseRollouts?: string;
  /** gkd: the probability that a step trains on the student's own completions (TRL: 0.5) */
  lmbda?: number;
  /** gkd: off-policy steps use the teacher's completions even where the data has some */
  seqKd?: boolean;
  /** minillm's settings (defaults: MINILLM_DEFAULTS, microsoft/LMOps' scripts) */
  minillm?: Partial<MiniLlmSettings>;
  /** feature (hidden-state) distillation beside the logit loss (word-level method only) */
  feature?: FeatureSettings;
  /** training in stages (their steps replace `steps`): the default is one stage, kd+features with `feature`, else kd */
  stages?: StageSpec[];
  /** the ULD loss, for a teacher whose tokenizer differs from the student's (word-level method only) */
  uld?: Partial<UldSettings>;
}

/** Feature distillation: which states, which metric, how much of it. */
export interface FeatureSettings {
  loss: 'mse' | 'cosine';
  /** 'auto': student state j ↔ teacher state round(j·L_T/L_S) for j = 1 … L_S; or [student, teacher] hidden_states indices */
  layers: 'auto' | [number, number][];
  /** W in loss = kd + W·feature */
  weight: number;
  /** the projections' learning rate as a multiple of the run's (their own parameter group; default 30) */
  projectionLrScale?: number;
}

export const STAGE_KINDS = ['kd', 'features', 'kd+features'] as const;
/** kd: the logit loss alone; features: the feature loss alone (× W); kd+features: kd + W·feature */
export interface StageSpec {
  kind: (typeof STAGE_KINDS)[number];
  steps: number;
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
  /**
   * The methods where the student writes: the step's mean log p(y_t) − log q_old(y_t) over its
   * sampled tokens (the reward; minus the k1 estimate of the per-token reverse KL)
   */
  reward?: number;
  /**
   * The same steps' mean per-token KL(q_old‖p) at T = 1 over their completion tokens, exact
   * over the vocabulary (whoever wrote the completions)
   */
  kl?: number;
}

export interface HeldOut {
  /** NaN (null in JSON) across tokenizers: per-token KL needs one vocabulary */
  fkl: number;
  rkl: number;
  studentPerplexity: number;
  tokens: number;
  /** across tokenizers: the mean ULD over aligned spans (a cross-vocabulary approximation) */
  uld?: number;
  /** across tokenizers: the mean over aligned spans of log P_T(span) − log P_S(span) (exact) */
  spanLogRatio?: number;
  spans?: number;
}

/** The student's completions of held-out prompts (one each, fixed seeds), judged by the teacher. */
export interface SampledHeldOut {
  /**
   * mean over completions of Σ_t KL(q_t ‖ p_t), exact at each step (as `sample`'s reverseKl);
   * NaN (null in JSON) when the tokenizers differ: see spanLogRatio
   */
  reverseKl: number;
  /**
   * the tokenizers differ: mean over completions of Σ over their aligned spans of
   * log P_T(span) − log Q(span) at T = 1 (exact per completion; its negative is a one-sample
   * estimate of the sequence-level KL(Q ‖ P) on those spans)
   */
  spanLogRatio?: number;
  /** the teacher's mean log p per completion token (its own tokens when the tokenizers differ) */
  teacherLogp: number;
  /** mean completion length in tokens */
  length: number;
  /** mean over completions of distinct bigrams / bigrams of the completion's tokens */
  distinct2: number;
  completions: number;
}

export interface LossPoint {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** with feature distillation: the step's two terms (before their weights) and its stage's index */
  kdLoss?: number;
  featureLoss?: number;
  stage?: number;
}

export interface RunRecord {
  version: 1;
  createdAt: string;
  teacher: string;
  student: string;
  out: string;
  settings: Record<string, unknown>;
  data: {
    documents: number;
    trainWindows: number;
    heldOutWindows: number;
    heldOutIsTrainingData: boolean;
    trainTokens: number;
  };
  device: string;
  lossCurve: LossPoint[];
  /** teacherSupport: a served teacher's held-out numbers are over its buckets ("top-19+rest": lower bounds) */
  heldOut: {
    before: HeldOut;
    after: HeldOut;
    fklChange: number;
    teacherSupport?: string;
    /** across tokenizers: the relative change of the held-out ULD */
    uldChange?: number;
  };
  /** the on-policy methods: what the student writes for held-out prompts, before and after */
  sampledHeldOut?: { before: SampledHeldOut; after: SampledHeldOut; reverseKlChange: number };
  timings: {
    totalSeconds: number;
    teacherSeconds: number;
    stepSeconds: number;
    tokensPerSecond: number;
    /** the on-policy methods: sampling and scoring the rollouts */
    sampleSeconds?: number;
  };
  messages: string[];
}

// ---- messages between a client and the model process ----

/** Client → model process: analyse a text. */
export interface InspectMessage {
  type: 'inspect';
  id: number;
  request: InspectRequest;
}
/** Client → model process: run a distillation fine-tune. */
export interface DistillMessage {
  type: 'distill';
  id: number;
  request: DistillRequest;
}
/** Client → model process: stop request `id` as soon as possible. */
export interface CancelMessage {
  type: 'cancel';
  id: number;
}
/** Client → model process: release sessions and exit. */
export interface ShutdownMessage {
  type: 'shutdown';
}
/** Client → model process: report what the process holds (memory, loaded models). */
export interface StatsMessage {
  type: 'stats';
  id: number;
}
/** Client → model process: sample continuations and score them (answered with a SampleReport; tokens stream as progress). */
export interface SampleMessage {
  type: 'sample';
  id: number;
  request: SampleRequest;
}
export type ToRuntime =
  InspectMessage | DistillMessage | SampleMessage | StatsMessage | CancelMessage | ShutdownMessage;

/** The answer to a StatsMessage. */
export interface RuntimeStats {
  pid: number;
  /** resident set size of the model process */
  rssBytes: number;
  loadedModels: number;
  metricsSessions: number;
}

/** Model process → client: progress of request `id`. */
export interface ProgressMessage {
  type: 'progress';
  id: number;
  message: string;
  fraction?: number;
  /** a distillation's step, loss and speed */
  training?: DistillProgress;
  /** a sampled token, as it is chosen */
  token?: StreamedToken;
}
/** Model process → client: the answer to request `id`. */
export interface ResultMessage {
  type: 'result';
  id: number;
  result: InspectResult | RunRecord | RuntimeStats | SampleReport;
}
/** Model process → client: request `id` failed; `name` keeps the error's class for the client. */
export interface ErrorMessage {
  type: 'error';
  id: number;
  name: string;
  message: string;
  stack?: string;
  /** for a ModelLoadError: which model it is about */
  role?: ModelRole;
}
/** Model process → client: the process is up. */
export interface ReadyMessage {
  type: 'ready';
  pid: number;
}
export type FromRuntime = ProgressMessage | ResultMessage | ErrorMessage | ReadyMessage;
