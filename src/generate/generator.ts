/**
 * Generation: continuations of a prompt, token by token, as Hugging Face's `generate` samples
 * them (logitsProcessors.ts). Models with a key/value cache decode incrementally: the prompt
 * once, then one step per new token over the cached positions, all continuations in one
 * batch. Models without one (foreign exports that declare no past_key_values) re-read the
 * whole sequence for every token, which is said in a message.
 *
 *   1. prompt → one pass, logits of the last position; its cache copied for each continuation
 *   2. per continuation: processed logits → the next token (greedy or a seeded draw);
 *      its log-probability at T = 1 under the model's raw distribution is kept
 *   3. stop at an EOS id, a stop string in the new text, max new tokens, or the context
 *   4. the unfinished continuations take one cached step each, and back to 2
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelLoadError, UsageError } from '../core/errors';
import { seededRandom, type Rng } from '../core/random';
import type { DecoderCache, LanguageModel } from '../models/languageModel';
import type { TextTokenizer } from '../models/tokenizer';
import { halfToFloat32 } from '../models/safetensors';
import { ContinuationText, StopStrings } from './continuationText';
import type { FinishReason, GeneratedToken, Sample } from '../shared/generation';

export type { FinishReason, GeneratedToken, Sample } from '../shared/generation';
import {
  argmax,
  logSumExp,
  drawToken,
  probabilities,
  processLogits,
  samplingProblems,
  type SamplingOptions,
} from './logitsProcessors';

export interface GenerateOptions {
  sampling: SamplingOptions;
  maxNewTokens: number;
  /** continuations of the same prompt */
  samples: number;
  seed: number;
  /** generation stops once the new text contains one of these */
  stop: string[];
}

export interface GenerateHooks {
  /** called with each new token of continuation `sample` as it is chosen */
  onToken?: (sample: number, token: GeneratedToken) => void;
  checkCancelled?: () => void;
}

export interface GenerateResult {
  samples: Sample[];
  /** how it was decoded, e.g. without a cache */
  messages: string[];
  /** whether a key/value cache was used */
  cached: boolean;
}

/** The ids that end a sequence: config.json's eos_token_id, and generation_config.json's when present. */
export function eosIds(folder: string, config: Record<string, any> | undefined): number[] {
  const ids = new Set<number>();
  const add = (v: unknown) =>
    (Array.isArray(v) ? v : [v]).forEach((x) => Number.isInteger(x) && ids.add(x as number));
  add(config?.eos_token_id);
  const generationConfig = path.join(folder, 'generation_config.json');
  if (fs.existsSync(generationConfig)) {
    let parsed: { eos_token_id?: unknown };
    try {
      parsed = JSON.parse(fs.readFileSync(generationConfig, 'utf8'));
    } catch (e) {
      // its EOS ids decide where continuations end: refuse rather than run past them
      throw new ModelLoadError(
        `${generationConfig} is not valid JSON (${(e as Error).message}): fix or remove it`,
      );
    }
    add(parsed.eos_token_id);
  }
  return [...ids];
}

/**
 * What a token is drawn from: one model, or MiniLLM's teacher-mixed distribution
 * α·p̃ + (1 − α)·q̃ where p̃ and q̃ are the teacher's and the student's distributions after the
 * same processors (both models step their own caches).
 */
export type Policy =
  { lm: LanguageModel } | { teacher: LanguageModel; student: LanguageModel; alpha: number };

/** One model's logits for the next token of every continuation: cached steps, or full passes. */
interface Stepper {
  lm: LanguageModel;
  cached: boolean;
  /** the last logits row of each sequence after the prompt */
  start(sequences: number[][]): Promise<Float32Array[]>;
  /** after one more token of each sequence; rows of finished sequences may be stale */
  next(sequences: number[][], active: boolean[]): Promise<Float32Array[]>;
}

function stepperFor(lm: LanguageModel, capacity: number): Stepper {
  if (lm.canCache) {
    let cache: DecoderCache | undefined;
    const rows = (logits: Float32Array, vocab: number, B: number, L: number) =>
      Array.from({ length: B }, (_, b) => logits.subarray(((b + 1) * L - 1) * vocab, (b + 1) * L * vocab));
    return {
      lm,
      cached: true,
      async start(sequences) {
        // every continuation starts from the same prompt: one pass, its cache copied B times
        const step = await lm.step([[...sequences[0]]], undefined, capacity);
        cache = lm.tileCache(step.cache, sequences.length);
        const last = rows(step.logits, step.vocab, 1, sequences[0].length)[0];
        return sequences.map(() => last);
      },
      async next(sequences) {
        // finished continuations step too (the batch moves together); their rows are not used
        const step = await lm.step(
          sequences.map((s) => [s[s.length - 1]]),
          cache,
        );
        cache = step.cache;
        return rows(step.logits, step.vocab, sequences.length, 1);
      },
    };
  }
  let last: Float32Array[] = [];
  const passes = async (sequences: number[][], active: boolean[]) => {
    last = await Promise.all(
      sequences.map(async (s, b) => {
        if (!active[b]) return last[b];
        const logits = await lm.forward(s);
        const t = logits.length - 1;
        const row = logits.data.subarray(t * logits.vocab, (t + 1) * logits.vocab);
        return logits.type === 'float16' ? halfToFloat32(row as Uint16Array) : (row as Float32Array);
      }),
    );
    return last;
  };
  return {
    lm,
    cached: false,
    start: (sequences) =>
      passes(
        sequences,
        sequences.map(() => true),
      ),
    next: passes,
  };
}

export async function generate(
  policy: Policy | LanguageModel,
  tokenizer: TextTokenizer,
  promptIds: number[],
  o: GenerateOptions,
  hooks: GenerateHooks = {},
): Promise<GenerateResult> {
  const source: Policy = 'lm' in policy || 'teacher' in policy ? policy : { lm: policy };
  const models = 'lm' in source ? [source.lm] : [source.teacher, source.student];
  const weights = 'lm' in source ? [1] : [source.alpha, 1 - source.alpha];
  const problems = samplingProblems(o.sampling);
  if ('alpha' in source && !(source.alpha >= 0 && source.alpha <= 1))
    problems.push('--mix-alpha must be in [0, 1]');
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1))
    throw new UsageError('--max-new-tokens must be a whole number ≥ 1');
  if (!(Number.isInteger(o.samples) && o.samples >= 1))
    throw new UsageError('--samples must be a whole number ≥ 1');
  if (promptIds.length === 0) throw new UsageError('the prompt is empty: give some text to continue');
  const context = Math.min(...models.map((m) => m.model.contextLength));
  if (promptIds.length >= context)
    throw new UsageError(
      `the prompt has ${promptIds.length} tokens; the model reads at most ${context}, so nothing can follow it`,
    );
  const messages: string[] = [];
  const maxNew = Math.min(o.maxNewTokens, context - promptIds.length);
  if (maxNew < o.maxNewTokens)
    messages.push(`at most ${maxNew} new tokens: the model reads ${context} positions`);
  // the sampled model's EOS ids (the student's when mixing: it is the student's sequence)
  const eos = new Set(eosIds(models[models.length - 1].model.folder, models[models.length - 1].model.config));
  const checkCancelled = hooks.checkCancelled ?? (() => {});
  const text = new ContinuationText(tokenizer, promptIds);
  const stops = new StopStrings(tokenizer, promptIds, o.stop);

  const B = o.samples;
  // one generator per continuation, so continuation b is the same whatever the number asked
  const rngs: Rng[] = Array.from({ length: B }, (_, b) => seededRandom((o.seed * 1000003 + b) >>> 0));
  const sequences = Array.from({ length: B }, () => [...promptIds]);
  const tokens: GeneratedToken[][] = Array.from({ length: B }, () => []);
  const finish: (FinishReason | undefined)[] = new Array(B).fill(undefined);

  // 2–3: one token for continuation b from each model's logits row
  const choose = (b: number, rows: Float32Array[]) => {
    let id: number;
    // the sampled model's processed scores (the student's when mixing)
    const scores = rows.map((row) => processLogits(row, sequences[b], o.sampling));
    const own = scores[scores.length - 1];
    if (rows.length === 1) id = o.sampling.greedy ? argmax(own) : drawToken(probabilities(own), rngs[b]);
    else {
      // the mixture of the processed distributions (greedy: its most likely token)
      const mixed = new Float64Array(rows[0].length);
      scores.forEach((z, i) => probabilities(z).forEach((p, v) => (mixed[v] += weights[i] * p)));
      id = o.sampling.greedy ? argmax(mixed) : drawToken(mixed, rngs[b]);
    }
    const token = {
      id,
      text: tokenizer.tokenText(id),
      logp: rows[rows.length - 1][id] - logSumExp(rows[rows.length - 1]),
      sampledLogp: own[id] - logSumExp(own),
    };
    sequences[b].push(id);
    tokens[b].push(token);
    hooks.onToken?.(b, token);
    if (eos.has(id)) finish[b] = 'eos';
    else if (stops.reached(sequences[b].slice(promptIds.length))) finish[b] = 'stop';
    else if (tokens[b].length >= maxNew) finish[b] = 'length';
  };

  // 1. the prompt, then 4. one step per token (cached) or a pass over each unfinished sequence
  const steppers = models.map((m) => stepperFor(m, promptIds.length + maxNew));
  for (const st of steppers)
    if (!st.cached)
      messages.push(
        `${st.lm.model.name} has no key/value cache inputs (past_key_values.*): each new token re-reads the whole sequence, which is slower`,
      );
  let rows = await Promise.all(steppers.map((st) => st.start(sequences)));
  for (let b = 0; b < B; b++)
    choose(
      b,
      rows.map((r) => r[b]),
    );
  while (finish.some((f) => f === undefined)) {
    checkCancelled();
    const active = finish.map((f) => f === undefined);
    rows = [];
    for (const st of steppers) rows.push(await st.next(sequences, active));
    for (let b = 0; b < B; b++)
      if (active[b])
        choose(
          b,
          rows.map((r) => r[b]),
        );
  }
  return {
    cached: steppers.every((st) => st.cached),
    messages,
    samples: sequences.map((ids, b) => ({
      ids,
      promptTokens: promptIds.length,
      text: text.of(ids.slice(promptIds.length)),
      finish: finish[b]!,
      tokens: tokens[b],
    })),
  };
}
