/**
 * The methods that sample during training. `onpolicy` (Thinking Machines' recipe): every step
 * the student as it is now writes completions of a batch of prompts, the teacher scores each
 * sampled token, and the student is updated on its own samples. `gkd` (TRL's GKDTrainer): with
 * probability λ per step the batch is the student's completions (sampled at the generation
 * temperature), otherwise the dataset's completions, or the teacher's where a prompt has none
 * (always the teacher's with seqKd); the update is generalised JSD against the teacher's full
 * distributions. `trainOnPolicy` reads top to bottom:
 *
 *   1. prompts   B training prompts, reshuffled when used up
 *   2. sample    one completion per prompt from the current student (the policy model), with
 *                log q_old(y_t) of each token under the distribution it was drawn
 *                from (at the generation temperature, no truncation) — or, for gkd's off-policy steps, the dataset's or the teacher's
 *   3. score     the teacher's log p(y_t) from one full pass over prompt + completion
 *   4. advantage onpolicy: A_t = log p(y_t) − log q_old(y_t) (advantages.ts); with a teacher
 *                whose tokenizer differs, the log-ratio of the aligned span y_t is in
 *                (acrossTokenizers.ts: the teacher reads the completion's text)
 *   5. update    one optimiser step (onpolicy: −mean(ρ_t·A_t), buildPolicyLoss; gkd: gjsd)
 *
 * Every rollout is kept for rollouts.jsonl with the step that used it.
 */
import { generate, type Policy } from '../generate/generator';
import { float32Logits, type LanguageModel } from '../models/languageModel';
import type { TextTokenizer } from '../models/tokenizer';
import { shuffle, type Rng } from '../core/random';
import { InputError } from '../core/errors';
import type { GenerationSettings, SampledHeldOut } from '../shared/protocol';
import {
  miniLlmAdvantages,
  mixImportanceWeight,
  onPolicyAdvantages,
  type MiniLlmAdvantageOptions,
} from './advantages';
import type { Prompt, Window } from './data';
import type { Rollout } from './rollouts';
import type { FinishReason } from '../shared/generation';
import { scoreAcrossTokenizers } from './acrossTokenizers';

/** A rollout of an on-policy step, with what its update used. */
export interface PolicyRollout extends Rollout {
  /** log q of each token under the distribution it was drawn from (at the generation temperature) */
  oldLogpStudent: number[];
  /** the tokenizers differ: Σ over the completion's aligned spans of log P_T − log Q_old, and how many */
  across?: { spanLogRatio: number; spans: number };
  /** MiniLLM sampling at T ≠ 1: the teacher's log p at T, which its importance weight w uses */
  logpTeacherAtT?: number[];
  /** per completion token, KL(q_old ‖ p) at T = 1 exact over the vocabulary (the run's KL curve) */
  reverseKl: number[];
  rewards: number[];
  advantages: number[];
  w: number[];
  /** the step that collected it, and how many optimiser steps used it (MiniLLM: its PPO epochs) */
  step: number;
  epochs: number;
  mixAlpha?: number;
}

/** One window per rollout: the sequence padded to seqLen, its completion tokens the targets, per-target old log q and A. */
export interface PolicyWindow extends Window {
  oldLogp: number[];
  advantages: number[];
  /** MiniLLM's importance weights (1 without mixing) */
  weights: number[];
}

export function policyWindow(r: PolicyRollout, seqLen: number): PolicyWindow {
  if (r.ids.length > seqLen)
    throw new InputError(
      `a prompt of ${r.promptTokens} tokens and its completion (${r.ids.length - r.promptTokens} tokens) do not fit --seq-len ${seqLen}: raise --seq-len or lower --max-new-tokens`,
    );
  const w: PolicyWindow = {
    ids: [],
    targets: [],
    mask: [],
    source: r.source,
    oldLogp: [],
    advantages: [],
    weights: [],
  };
  for (let i = 0; i < seqLen; i++) {
    w.ids.push(i < r.ids.length ? r.ids[i] : 0);
    // position i predicts token i + 1; completion token t is at promptTokens + t
    const t = i + 1 - r.promptTokens;
    const valid = t >= 0 && i + 1 < r.ids.length;
    w.targets.push(valid ? r.ids[i + 1] : 0);
    w.mask.push(valid ? 1 : 0);
    // gkd's rollouts have neither (its loss reads the teacher's distributions instead)
    w.oldLogp.push(valid ? (r.oldLogpStudent[t] ?? 0) : 0);
    w.advantages.push(valid ? (r.advantages[t] ?? 0) : 0);
    w.weights.push(valid ? (r.w[t] ?? 1) : 1);
  }
  return w;
}

/** log-softmax of one row of logits, in float64. */
function logSoftmaxRow(logits: Float32Array, offset: number, V: number): Float64Array {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = logits[offset + v] - lse;
  return out;
}

/** log-softmax of one row divided by T at one id, in float64, without making the whole row. */
function logProbAt(logits: Float32Array, offset: number, V: number, id: number, T = 1): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v] / T);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v] / T - max);
  return logits[offset + id] / T - max - Math.log(sum);
}

/**
 * KL(q_t ‖ p_t) = Σ_v q_t(v)·(log q_t(v) − log p_t(v)) at T = 1, exact over the vocabulary, for
 * each completion token t (the distributions at the position that predicts it), in float64.
 */
function completionReverseKl(
  q: { data: Float32Array; vocab: number },
  p: { data: Float32Array; vocab: number },
  promptTokens: number,
  length: number,
): number[] {
  const V = q.vocab;
  const out: number[] = [];
  for (let t = promptTokens; t < length; t++) {
    const lq = logSoftmaxRow(q.data, (t - 1) * V, V);
    const lp = logSoftmaxRow(p.data, (t - 1) * V, V);
    let kl = 0;
    for (let v = 0; v < V; v++) kl += Math.exp(lq[v]) * (lq[v] - lp[v]);
    out.push(kl);
  }
  return out;
}

async function logitsOf(lm: LanguageModel, ids: number[]): Promise<{ data: Float32Array; vocab: number }> {
  const out = await lm.forward(ids);
  return { data: float32Logits(out), vocab: out.vocab };
}

/**
 * Log-probabilities of each completion token from one pass's logits, at each temperature of
 * `temperatures`: the teacher's [T = 1] for rewards; MiniLLM's importance weight also wants it
 * at the sampling T.
 */
function completionLogps(
  { data, vocab }: { data: Float32Array; vocab: number },
  ids: number[],
  promptTokens: number,
  temperatures: number[],
): number[][] {
  return temperatures.map((T) => {
    const out: number[] = [];
    for (let t = promptTokens; t < ids.length; t++)
      out.push(logProbAt(data, (t - 1) * vocab, vocab, ids[t], T));
    return out;
  });
}

/**
 * A served teacher's log p of each token of `ids` from index `from` on, at T = 1 (the server's
 * prompt log-probabilities of the actual tokens: exact).
 */
export type ServedLogps = (ids: number[], from: number) => Promise<number[]>;

/**
 * The teacher of the on-policy methods: a model run here (with its tokenizer when it differs
 * from the student's), or a served one, which gives the log p of given tokens and nothing more.
 */
export type PolicyTeacher =
  { kind: 'local'; lm: LanguageModel; tokenizer?: TextTokenizer } | { kind: 'served'; logps: ServedLogps };

/**
 * The student's completions of `prompts` (one each, prompt i with seed seed + i), and for
 * each the exact per-step reverse KL from both models' full distributions, summed over the
 * completion: the number the on-policy methods lower. With a teacher whose tokenizer differs,
 * or a served one, the full distributions are not both known: then Σ over the completion's
 * spans (its tokens, with a served teacher) of log P_T − log Q instead (`spanLogRatio`).
 */
export async function sampledHeldOut(
  student: LanguageModel,
  teacher: PolicyTeacher,
  tokenizer: TextTokenizer,
  prompts: Prompt[],
  g: GenerationSettings,
  seed: number,
  checkCancelled: () => void,
): Promise<SampledHeldOut> {
  const bySpans = teacher.kind === 'served' || teacher.tokenizer !== undefined;
  let reverseKl = 0;
  let spanLogRatio = 0;
  let teacherLogp = 0;
  let teacherTokens = 0;
  let tokens = 0;
  let distinct2 = 0;
  for (const [i, prompt] of prompts.entries()) {
    checkCancelled();
    const promptIds = tokenizer.encode(prompt.text).ids;
    const { samples } = await generate(
      student,
      tokenizer,
      promptIds,
      { sampling: g.sampling, maxNewTokens: g.maxNewTokens, samples: 1, seed: seed + i, stop: [] },
      { checkCancelled },
    );
    const ids = samples[0].ids;
    const completion = ids.slice(promptIds.length);
    const bigrams = completion.slice(1).map((id, t) => `${completion[t]} ${id}`);
    distinct2 += bigrams.length ? new Set(bigrams).size / bigrams.length : 0;
    const q = await logitsOf(student, ids);
    tokens += ids.length - promptIds.length;
    if (teacher.kind === 'served') {
      // one tokenizer: every token is a span
      const lp = await teacher.logps(ids, promptIds.length);
      const lq = completionLogps(q, ids, promptIds.length, [1])[0];
      lp.forEach((v, t) => (spanLogRatio += v - lq[t]));
      for (const v of lp) teacherLogp += v;
      teacherTokens += lp.length;
      continue;
    }
    if (teacher.tokenizer) {
      const score = await scoreAcrossTokenizers(
        teacher.lm,
        teacher.tokenizer,
        tokenizer,
        prompt.text,
        ids,
        promptIds.length,
        completionLogps(q, ids, promptIds.length, [1])[0],
      );
      spanLogRatio += score.spanLogRatio;
      for (const lp of score.teacherLogp) teacherLogp += lp;
      teacherTokens += score.teacherLogp.length;
      continue;
    }
    const p = await logitsOf(teacher.lm, ids);
    for (const kl of completionReverseKl(q, p, promptIds.length, ids.length)) reverseKl += kl;
    for (const lp of completionLogps(p, ids, promptIds.length, [1])[0]) teacherLogp += lp;
    teacherTokens += ids.length - promptIds.length;
  }
  const n = Math.max(1, prompts.length);
  return {
    reverseKl: bySpans ? NaN : reverseKl / n,
    ...(bySpans ? { spanLogRatio: spanLogRatio / n } : {}),
    teacherLogp: teacherLogp / Math.max(1, teacherTokens),
    length: tokens / n,
    distinct2: distinct2 / n,
    completions: prompts.length,
  };
}

export interface OnPolicyLoop {
  method: 'onpolicy' | 'gkd' | 'minillm';
  /** minillm: the teacher's share α of the sampling mix, the optimiser steps per collection, the advantage's settings */
  mixAlpha: number;
  ppoEpochs: number;
  advantage: MiniLlmAdvantageOptions;
  /** gkd: the probability that a step's batch is the student's own completions */
  lmbda: number;
  /** gkd: off-policy steps use the teacher's completions even where the dataset has one */
  seqKd: boolean;
  steps: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  generation: GenerationSettings;
  student: LanguageModel;
  /**
   * Run here, or served (onpolicy only: its log p of the sampled tokens). With a tokenizer of
   * its own (onpolicy only), the teacher reads each completion's text with its own tokens, and
   * each student token's reward is its aligned span's log P_T − log Q_old.
   */
  teacher: PolicyTeacher;
  tokenizer: TextTokenizer;
  prompts: Prompt[];
  rng: Rng;
  checkCancelled: () => void;
  /** one optimiser step on these windows (with their old log q and advantages); the same objects for every step of a collection */
  update: (windows: PolicyWindow[], step: number) => Promise<{ loss: number; lr: number; gradNorm: number }>;
  /**
   * after each step; `reward`: the step's mean log p − log q_old over the student's tokens
   * (undefined when it did not write); `kl`: the mean exact KL(q_old‖p) per completion token
   */
  onStep: (step: number, loss: number, lr: number, tokens: number, reward?: number, kl?: number) => void;
}

/**
 * A completion and where it came from: sampled (with the student's log q of each token under
 * the distribution it was drawn from: at the generation temperature) or the dataset's.
 */
interface Written {
  ids: number[];
  promptTokens: number;
  text: string;
  finish: FinishReason;
  logp: number[];
}

async function sampleCompletion(
  lm: LanguageModel | Policy,
  o: OnPolicyLoop,
  prompt: Prompt,
  seed: number,
): Promise<Written> {
  const promptIds = o.tokenizer.encode(prompt.text).ids;
  const { samples } = await generate(
    lm,
    o.tokenizer,
    promptIds,
    { sampling: o.generation.sampling, maxNewTokens: o.generation.maxNewTokens, samples: 1, seed, stop: [] },
    { checkCancelled: o.checkCancelled },
  );
  const s = samples[0];
  return {
    ids: s.ids,
    promptTokens: s.promptTokens,
    text: s.text,
    finish: s.finish,
    logp: s.tokens.map((t) => t.sampledLogp),
  };
}

/** The dataset's completion, tokenised with its prompt; the completion starts at the first token past the prompt's text. */
export function datasetCompletion(tokenizer: TextTokenizer, prompt: Prompt): Written {
  const text = prompt.text + prompt.completion!;
  const enc = tokenizer.encode(text);
  let promptTokens = enc.spans.findIndex(([start, end]) => end > start && start >= prompt.text.length);
  if (promptTokens < 0) promptTokens = enc.ids.length;
  return { ids: enc.ids, promptTokens, text: prompt.completion!, finish: 'length', logp: [] };
}

/** The teacher as a model run here: gkd and minillm sample from it (a served teacher is refused for them). */
function localTeacher(o: OnPolicyLoop): LanguageModel {
  if (o.teacher.kind !== 'local') throw new Error(`--method ${o.method} needs the teacher run here`);
  return o.teacher.lm;
}

/** One collection: a completion per prompt, scored by the teacher, with the method's advantages. */
async function collect(o: OnPolicyLoop, batch: Prompt[], s: number): Promise<PolicyRollout[]> {
  const rollouts: PolicyRollout[] = [];
  // gkd draws once per step whether the batch is the student's (TRL: random() <= lmbda)
  const fromStudent = o.method !== 'gkd' || o.rng() <= o.lmbda;
  for (const [b, prompt] of batch.entries()) {
    const seed = o.seed * 1_000_003 + s * o.batchSize + b;
    const written =
      o.method === 'minillm'
        ? // each token from α·p + (1 − α)·q, both models stepping their own caches; log q of the student
          await sampleCompletion(
            { teacher: localTeacher(o), student: o.student, alpha: o.mixAlpha },
            o,
            prompt,
            seed,
          )
        : fromStudent || o.seqKd || prompt.completion === undefined
          ? await sampleCompletion(fromStudent ? o.student : localTeacher(o), o, prompt, seed)
          : datasetCompletion(o.tokenizer, prompt);
    // rewards use the teacher at T = 1 (LMOps, Tinker); MiniLLM's w its distribution at the
    // sampling temperature, as the mix was drawn
    const T = o.generation.sampling.temperature;
    if (o.teacher.kind === 'local' && o.teacher.tokenizer) {
      // the tokenizers differ (onpolicy only): rewards on the completion's aligned spans
      const score = await scoreAcrossTokenizers(
        o.teacher.lm,
        o.teacher.tokenizer,
        o.tokenizer,
        prompt.text,
        written.ids,
        written.promptTokens,
        written.logp,
      );
      rollouts.push({
        ids: written.ids,
        promptTokens: written.promptTokens,
        source: prompt.source,
        writer: 'student',
        prompt: prompt.text,
        completion: written.text,
        finish: written.finish,
        logpTeacher: score.teacherLogp,
        across: { spanLogRatio: score.spanLogRatio, spans: score.spans },
        reverseKl: [],
        oldLogpStudent: written.logp,
        // a token in no aligned span has no reward (NaN in rollouts.jsonl) and no advantage
        rewards: score.rewards,
        advantages: score.rewards.map((r) => (Number.isFinite(r) ? r : 0)),
        w: score.rewards.map(() => 1),
        step: s + 1,
        epochs: 1,
      });
      continue;
    }
    const weighAtT = o.method === 'minillm' && T !== 1;
    let logpTeacher: number[];
    let logpTeacherAtT: number[] | undefined;
    let reverseKl: number[];
    if (o.teacher.kind === 'served') {
      // a served teacher (onpolicy only): the log p of the sampled tokens, no distributions
      logpTeacher = await o.teacher.logps(written.ids, written.promptTokens);
      reverseKl = [];
    } else {
      const teacherLogits = await logitsOf(o.teacher.lm, written.ids);
      [logpTeacher, logpTeacherAtT] = completionLogps(
        teacherLogits,
        written.ids,
        written.promptTokens,
        weighAtT ? [1, T] : [1],
      );
      // the curve's exact per-token KL(q‖p) at T = 1 on this step's completions, whoever wrote them
      reverseKl = completionReverseKl(
        await logitsOf(o.student, written.ids),
        teacherLogits,
        written.promptTokens,
        written.ids.length,
      );
    }
    const oldLogpStudent = fromStudent ? written.logp : [];
    rollouts.push({
      ids: written.ids,
      promptTokens: written.promptTokens,
      source: prompt.source,
      writer:
        o.method === 'minillm'
          ? 'mix'
          : fromStudent
            ? 'student'
            : written.logp.length
              ? 'teacher'
              : 'dataset',
      ...(o.method === 'minillm' ? { mixAlpha: o.mixAlpha } : {}),
      prompt: prompt.text,
      completion: written.text,
      finish: written.finish,
      logpTeacher,
      ...(logpTeacherAtT ? { logpTeacherAtT } : {}),
      reverseKl,
      oldLogpStudent,
      rewards: [],
      advantages: [],
      w: [],
      step: s + 1,
      epochs: 1,
    });
  }
  const tokens = rollouts.map((r) => ({ logpTeacher: r.logpTeacher, oldLogpStudent: r.oldLogpStudent }));
  if (o.teacher.kind === 'local' && o.teacher.tokenizer) return rollouts; // rewards and advantages set above
  if (o.method === 'onpolicy') {
    onPolicyAdvantages(tokens).forEach((a, i) => {
      rollouts[i].rewards = a;
      rollouts[i].advantages = a;
      rollouts[i].w = a.map(() => 1);
    });
  } else if (o.method === 'minillm') {
    // whitened over the whole collection's tokens
    const a = miniLlmAdvantages(tokens, o.advantage);
    rollouts.forEach((r, i) => {
      r.rewards = a.rewards[i];
      r.advantages = a.advantages[i];
      const lp = r.logpTeacherAtT ?? r.logpTeacher;
      r.w = r.oldLogpStudent.map((lq, t) => mixImportanceWeight(lq, lp[t], o.mixAlpha));
    });
  }
  return rollouts;
}

export async function trainOnPolicy(o: OnPolicyLoop): Promise<{
  rollouts: PolicyRollout[];
  lossCurve: { step: number; loss: number; lr: number; gradNorm: number }[];
  tokens: number;
  sampleSeconds: number;
  stepSeconds: number;
}> {
  const rollouts: PolicyRollout[] = [];
  const lossCurve: { step: number; loss: number; lr: number; gradNorm: number }[] = [];
  const order: Prompt[] = [];
  let tokens = 0;
  let sampleSeconds = 0;
  let stepSeconds = 0;
  let collection: PolicyRollout[] = [];
  // one window per rollout, made once per collection (MiniLLM's epochs reuse them, and the
  // teacher's logits of them)
  let windows: PolicyWindow[] = [];
  for (let s = 0; s < o.steps; s++) {
    o.checkCancelled();
    // MiniLLM passes ppoEpochs times over each collection; the others collect every step
    const epoch = o.method === 'minillm' ? (s % o.ppoEpochs) + 1 : 1;
    if (epoch === 1) {
      // 1. prompts
      const batch: Prompt[] = [];
      while (batch.length < o.batchSize) {
        if (order.length === 0) order.push(...shuffle([...o.prompts], o.rng));
        batch.push(order.shift()!);
      }
      // 2–4. sample (from the student as it is now), score with the teacher, advantages
      const t0 = performance.now();
      collection = await collect(o, batch, s);
      windows = collection.map((r) => policyWindow(r, o.seqLen));
      sampleSeconds += (performance.now() - t0) / 1000;
      rollouts.push(...collection);
    }
    // 5. update
    const t1 = performance.now();
    const { loss, lr, gradNorm } = await o.update(windows, s);
    stepSeconds += (performance.now() - t1) / 1000;
    for (const r of collection) r.epochs = epoch;
    lossCurve.push({ step: s + 1, loss, lr, gradNorm });
    tokens += windows.reduce((n, w) => n + w.mask.reduce((a, m) => a + m, 0), 0);
    const written = collection.filter((r) => r.oldLogpStudent.length > 0);
    const logRatios = written.flatMap((r) => r.logpTeacher.map((lp, t) => lp - r.oldLogpStudent[t]));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, v) => a + v, 0) / xs.length : undefined);
    // across tokenizers: per aligned span, log P_T − log Q_old
    const spans = collection.reduce((n, r) => n + (r.across?.spans ?? 0), 0);
    const reward =
      o.teacher.kind === 'local' && o.teacher.tokenizer
        ? spans > 0
          ? collection.reduce((a, r) => a + r.across!.spanLogRatio, 0) / spans
          : undefined
        : mean(logRatios);
    // the exact per-token KL(q_old‖p) over the collection's completion tokens
    const kl = mean(collection.flatMap((r) => r.reverseKl));
    o.onStep(s + 1, loss, lr, tokens, reward, kl);
  }
  return { rollouts, lossCurve, tokens, sampleSeconds, stepSeconds };
}
