/**
 * The results of generation and of scored samples (types only): what `distill-lens generate`
 * and `distill-lens sample` print as JSON and what the HTML report and the editor draw.
 */
import type { MetricOptions, TokenRow } from '../core/tokenRows';
import type { Device } from './devices';
import type { DtypeChoice } from './dtypes';

/** How the next token is chosen (src/generate/logitsProcessors.ts applies them as Hugging Face's generate does). */
export interface SamplingOptions {
  /** argmax after the repetition penalty; the warpers are not applied */
  greedy: boolean;
  temperature: number;
  /** 0: off */
  topK: number;
  /** 1: off */
  topP: number;
  /** 0: off */
  minP: number;
  /** 1: off */
  repetitionPenalty: number;
}

export interface GeneratedToken {
  id: number;
  text: string;
  /** the sampled model's log-probability of this token at T = 1 (before any processor; the student's when mixing) */
  logp: number;
  /**
   * its log-probability under the sampled model's distribution after the processors (repetition
   * penalty, temperature, top-k, top-p, min-p), the one it was drawn from (the student's share
   * when mixing): what the on-policy methods' ratios and rewards use
   */
  sampledLogp: number;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface Sample {
  /** the prompt's ids, then the continuation's */
  ids: number[];
  promptTokens: number;
  /** the continuation's text */
  text: string;
  finish: FinishReason;
  tokens: GeneratedToken[];
}

/** A generated token's inspection row, and what only makes sense on samples (docs/metrics.md, "Sampled text"). */
export interface SampledTokenRow extends TokenRow {
  logpTeacher: number;
  logpStudent: number;
  logRatio: number;
  reward: number;
  return: number;
  normalizedReturn: number;
  void: boolean;
}

export interface SequenceValues {
  /** Σ_t log p(y_t) − log q(y_t) */
  logRatio: number;
  /** Σ_t KL(q_t ‖ p_t), exact at each step (the rows' rkl) */
  reverseKl: number;
  /** Σ_t k1 and Σ_t k3 at T = 1: estimates of the sequence-level KL(q‖p) */
  k1: number;
  k3: number;
  length: number;
  finish: FinishReason;
  /** distinct n-grams / n-grams of the continuation's tokens */
  distinct2: number;
  distinct3: number;
  /** tokens marked void */
  voidTokens: number;
}

export interface ScoredSample extends Sample {
  rows: SampledTokenRow[];
  sequence: SequenceValues;
}

export interface MeanWithError {
  mean: number;
  /** standard error of the mean (sample standard deviation / √N); null for one sample */
  standardError: number | null;
}

export type SampleSummary = Record<Exclude<keyof SequenceValues, 'finish'>, MeanWithError> & {
  samples: number;
};

/** Continuations of a prompt from the student, the teacher or their mix, scored by both. */
export interface SampleRequest {
  teacher: string;
  student: string;
  prompt: string;
  from: 'student' | 'teacher' | 'mix';
  /** the teacher's share α of the mix */
  mixAlpha: number;
  sampling: SamplingOptions;
  maxNewTokens: number;
  samples: number;
  seed: number;
  stop: string[];
  /** a token the teacher gives less probability than this is void */
  voidThreshold: number;
  /**
   * Keep only the end of a prompt too long for the models (the editor's text before the
   * cursor): the prompt is cut at a token's start so that it and `maxNewTokens` fit in the
   * shorter context (and in `maxPromptTokens`). Without it, such a prompt is refused.
   */
  keepPromptEnd?: boolean;
  maxPromptTokens?: number;
  /** for the inspection's keys of each generated token */
  metrics: MetricOptions;
  device: Device;
  dtype?: DtypeChoice;
  allowRemote?: boolean;
  hubCacheDir?: string;
}

/** One new token of continuation `sample`, as it is chosen. */
export interface StreamedToken {
  sample: number;
  token: GeneratedToken;
}

/** Everything a report of sampled continuations shows. */
export interface SampleReport {
  teacher: string;
  student: string;
  from: 'student' | 'teacher' | 'mix';
  mixAlpha?: number;
  /** the prompt as read (its end only, when `keepPromptEnd` cut it) */
  prompt: string;
  samples: ScoredSample[];
  summary: SampleSummary;
  /** how it was decoded (e.g. without a cache) */
  messages: string[];
}
