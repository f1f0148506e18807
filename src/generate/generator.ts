/**
 * Generation: continuations of a prompt, token by token, as Hugging Face's `generate` samples
 * them (logitsProcessors.ts). Models with a key/value cache decode incrementally: the prompt
 * once, then one step per new token over the cached positions, all continuations in one
 * batch. Models without one (foreign exports that declare no past_key_values) re-read the
 * whole sequence for every token, which is said in a message.
 *
 *   1. prompt → B copies (one per continuation) → one pass, logits of the last position
 *   2. per continuation: processed logits → the next token (greedy or a seeded draw);
 *      its log-probability at T = 1 under the model's raw distribution is kept
 *   3. stop at an EOS id, a stop string in the new text, max new tokens, or the context
 *   4. the unfinished continuations take one cached step each, and back to 2
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../core/errors';
import { seededRandom, type Rng } from '../core/random';
import type { DecoderCache, LanguageModel } from '../models/languageModel';
import type { TextTokenizer } from '../models/tokenizer';
import { nextToken, samplingProblems, type SamplingOptions } from './logitsProcessors';

export interface GenerateOptions {
  sampling: SamplingOptions;
  maxNewTokens: number;
  /** continuations of the same prompt */
  samples: number;
  seed: number;
  /** generation stops once the new text contains one of these */
  stop: string[];
}

export interface GeneratedToken {
  id: number;
  text: string;
  /** the model's log-probability of this token at T = 1 (before any processor) */
  logp: number;
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
    try {
      add(JSON.parse(fs.readFileSync(generationConfig, 'utf8')).eos_token_id);
    } catch {
      // an unreadable generation_config.json only loses its EOS ids
    }
  }
  return [...ids];
}

/** log softmax of one logits row at T = 1, at one id, in float64. */
function logProbability(row: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[id] - max - Math.log(sum);
}

export async function generate(
  lm: LanguageModel,
  tokenizer: TextTokenizer,
  promptIds: number[],
  o: GenerateOptions,
  hooks: GenerateHooks = {},
): Promise<GenerateResult> {
  const problems = samplingProblems(o.sampling);
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1))
    throw new UsageError('--max-new-tokens must be a whole number ≥ 1');
  if (!(Number.isInteger(o.samples) && o.samples >= 1))
    throw new UsageError('--samples must be a whole number ≥ 1');
  if (promptIds.length === 0) throw new UsageError('the prompt is empty: give some text to continue');
  const context = lm.model.contextLength;
  if (promptIds.length >= context)
    throw new UsageError(
      `the prompt has ${promptIds.length} tokens; ${lm.model.name} reads at most ${context}, so nothing can follow it`,
    );
  const messages: string[] = [];
  const maxNew = Math.min(o.maxNewTokens, context - promptIds.length);
  if (maxNew < o.maxNewTokens)
    messages.push(`at most ${maxNew} new tokens: ${lm.model.name} reads ${context} positions`);
  const eos = new Set(eosIds(lm.model.folder, lm.model.config));
  const checkCancelled = hooks.checkCancelled ?? (() => {});

  const B = o.samples;
  // one generator per continuation, so continuation b is the same whatever the number asked
  const rngs: Rng[] = Array.from({ length: B }, (_, b) => seededRandom((o.seed * 1000003 + b) >>> 0));
  const sequences = Array.from({ length: B }, () => [...promptIds]);
  const tokens: GeneratedToken[][] = Array.from({ length: B }, () => []);
  const finish: (FinishReason | undefined)[] = new Array(B).fill(undefined);

  // 2–3: one token for continuation b from its logits row
  const choose = (b: number, row: Float32Array) => {
    const id = nextToken(row, sequences[b], o.sampling, rngs[b]);
    const token = { id, text: tokenizer.tokenText(id), logp: logProbability(row, id) };
    sequences[b].push(id);
    tokens[b].push(token);
    hooks.onToken?.(b, token);
    if (eos.has(id)) finish[b] = 'eos';
    else if (
      o.stop.length > 0 &&
      o.stop.some((s) => tokenizer.decode(sequences[b].slice(promptIds.length)).includes(s))
    )
      finish[b] = 'stop';
    else if (tokens[b].length >= maxNew) finish[b] = 'length';
  };

  const cached = lm.canCache;
  if (cached) {
    // 1. the prompt once per continuation, then 4. one cached step per token
    let step = await lm.step(sequences.map((s) => [...s]));
    let cache: DecoderCache = step.cache;
    const L = promptIds.length;
    for (let b = 0; b < B; b++)
      choose(b, step.logits.subarray(((b + 1) * L - 1) * step.vocab, (b + 1) * L * step.vocab));
    while (finish.some((f) => f === undefined)) {
      checkCancelled();
      // finished continuations step too (the batch moves together); their tokens are not used
      step = await lm.step(
        sequences.map((s) => [s[s.length - 1]]),
        cache,
      );
      cache = step.cache;
      for (let b = 0; b < B; b++)
        if (finish[b] === undefined) choose(b, step.logits.subarray(b * step.vocab, (b + 1) * step.vocab));
    }
  } else {
    messages.push(
      `${lm.model.name} has no key/value cache inputs (past_key_values.*): each new token re-reads the whole sequence, which is slower`,
    );
    for (let b = 0; b < B; b++) {
      while (finish[b] === undefined) {
        checkCancelled();
        const logits = await lm.forward(sequences[b]);
        if (logits.type !== 'float32')
          throw new UsageError(`${lm.model.name}: generation needs float32 logits`);
        const last = logits.length - 1;
        choose(b, (logits.data as Float32Array).subarray(last * logits.vocab, (last + 1) * logits.vocab));
      }
    }
  }
  return {
    cached,
    messages,
    samples: sequences.map((ids, b) => ({
      ids,
      promptTokens: promptIds.length,
      text: tokenizer.decode(ids.slice(promptIds.length)),
      finish: finish[b]!,
      tokens: tokens[b],
    })),
  };
}
