/**
 * Rollouts: completions sampled for a run's prompts. For SeqKD the teacher samples them once,
 * before training; the run folder keeps them as rollouts.jsonl (one JSON object per line) so
 * that a later run can train on the same ones (`--reuse-rollouts`) and anyone can see what the
 * student was trained on:
 *
 *   {"ids": prompt and completion ids, "promptTokens", "source": "teacher", "prompt",
 *    "completion", "finish", "logpTeacher": log p of each completion token at T = 1}
 *
 * The completion's ids are the sampled ids themselves (an EOS the teacher chose included),
 * never re-tokenised text.
 */
import * as fs from 'node:fs';
import { InputError, UsageError } from '../core/errors';
import { generate } from '../generate/generator';
import { samplingProblems } from '../generate/logitsProcessors';
import type { LanguageModel } from '../models/languageModel';
import type { TextTokenizer } from '../models/tokenizer';
import type { ServedTeacher } from '../models/servedTeacher';
import type { FinishReason } from '../shared/generation';
import type { GenerationSettings } from '../shared/protocol';
import type { Prompt, TokenSequence } from './data';

export interface Rollout extends TokenSequence {
  /** who wrote the completion (dataset: the data's own completion, gkd's off-policy steps) */
  writer: 'teacher' | 'student' | 'mix' | 'dataset';
  prompt: string;
  completion: string;
  finish: FinishReason;
  /** the teacher's log-probability of each completion token at T = 1 */
  logpTeacher: number[];
}

/** What sampling rollouts reports to, and asks whether it was cancelled. */
export interface RolloutHooks {
  checkCancelled: () => void;
  onProgress: (message: string) => void;
}

/** Checks the generation settings with the flags' names, before any work. */
export function generationProblems(g: GenerationSettings): string[] {
  const problems = samplingProblems(g.sampling).map((m) => m.replace('--temperature', '--gen-temperature'));
  if (!(Number.isInteger(g.maxNewTokens) && g.maxNewTokens >= 1))
    problems.push('--max-new-tokens must be a whole number ≥ 1');
  if (!(Number.isInteger(g.samplesPerPrompt) && g.samplesPerPrompt >= 1))
    problems.push('--teacher-samples must be a whole number ≥ 1');
  if (!(Number.isInteger(g.promptTokens) && g.promptTokens >= 1))
    problems.push('--prompt-tokens must be a whole number ≥ 1');
  return problems;
}

/** The teacher's completions of every prompt: `samplesPerPrompt` each, prompt i with seed seed + i. */
export async function sampleTeacherRollouts(
  teacher: LanguageModel,
  tokenizer: TextTokenizer,
  prompts: Prompt[],
  g: GenerationSettings,
  seed: number,
  hooks: RolloutHooks,
): Promise<Rollout[]> {
  const rollouts: Rollout[] = [];
  for (const [i, prompt] of prompts.entries()) {
    hooks.checkCancelled();
    hooks.onProgress(`the teacher writes completions: prompt ${i + 1}/${prompts.length}`);
    const promptIds = tokenizer.encode(prompt.text).ids;
    let generated;
    try {
      generated = await generate(
        teacher,
        tokenizer,
        promptIds,
        {
          sampling: g.sampling,
          maxNewTokens: g.maxNewTokens,
          samples: g.samplesPerPrompt,
          seed: seed + i,
          stop: [],
        },
        { checkCancelled: hooks.checkCancelled },
      );
    } catch (e) {
      if (e instanceof UsageError) throw new InputError(`${prompt.source}: ${e.message}`);
      throw e;
    }
    for (const s of generated.samples)
      rollouts.push({
        ids: s.ids,
        promptTokens: s.promptTokens,
        source: prompt.source,
        writer: 'teacher',
        prompt: prompt.text,
        completion: s.text,
        finish: s.finish,
        logpTeacher: s.tokens.map((t) => t.logp),
      });
  }
  return rollouts;
}

/**
 * A served teacher's completions of every prompt (SeqKD): `samplesPerPrompt` each, sample j of
 * prompt i with seed seed + i·samplesPerPrompt + j, sampled by the server; the log p of each
 * completion token at T = 1 from its prompt log-probabilities (exact). A completion that stopped
 * ends with the EOS the server chose (appended when the server leaves it out).
 */
export async function sampleServedRollouts(
  teacher: ServedTeacher,
  tokenizer: TextTokenizer,
  eos: number[],
  prompts: Prompt[],
  g: GenerationSettings,
  seed: number,
  hooks: RolloutHooks,
): Promise<Rollout[]> {
  const rollouts: Rollout[] = [];
  for (const [i, prompt] of prompts.entries()) {
    hooks.checkCancelled();
    hooks.onProgress(`the served teacher writes completions: prompt ${i + 1}/${prompts.length}`);
    const promptIds = tokenizer.encode(prompt.text).ids;
    for (let j = 0; j < g.samplesPerPrompt; j++) {
      const sampled = await teacher.sample(
        promptIds,
        g.sampling,
        g.maxNewTokens,
        seed + i * g.samplesPerPrompt + j,
      );
      const completion = [...sampled.ids];
      if (sampled.finish === 'stop' && eos.length > 0 && !eos.includes(completion[completion.length - 1]))
        completion.push(eos[0]);
      if (completion.length === 0) continue;
      const ids = [...promptIds, ...completion];
      const rows = await teacher.promptLogprobs(ids, 1);
      rollouts.push({
        ids,
        promptTokens: promptIds.length,
        source: prompt.source,
        writer: 'teacher',
        prompt: prompt.text,
        completion: tokenizer.decode(completion.filter((id) => !eos.includes(id))),
        finish: sampled.finish === 'stop' ? 'eos' : 'length',
        logpTeacher: rows.slice(promptIds.length - 1).map((r) => r.targetLogp),
      });
    }
  }
  return rollouts;
}

/**
 * rollouts.jsonl: one rollout per line; the on-policy methods' also with what their update
 * used (mixAlpha, logpTeacherAtT, reverseKl, oldLogpStudent, w, rewards, advantages, the step that collected it and the
 * epochs, optimiser steps, that used it), so anyone can recompute a step.
 */
export function rolloutsJsonl(rollouts: Rollout[]): string {
  return rollouts
    .map((r) =>
      JSON.stringify({
        ids: r.ids,
        promptTokens: r.promptTokens,
        source: r.writer,
        prompt: r.prompt,
        completion: r.completion,
        finish: r.finish,
        logpTeacher: r.logpTeacher,
        ...Object.fromEntries(
          [
            'mixAlpha',
            'logpTeacherAtT',
            'reverseKl',
            'oldLogpStudent',
            'w',
            'rewards',
            'advantages',
            'step',
            'epochs',
          ]
            .filter((k) => (r as unknown as Record<string, unknown>)[k] !== undefined)
            .map((k) => [k, (r as unknown as Record<string, unknown>)[k]]),
        ),
      }),
    )
    .join('\n')
    .concat('\n');
}

/** The rollouts of an earlier run's rollouts.jsonl, checked against this student's vocabulary. */
export function readRollouts(file: string, vocab: number): Rollout[] {
  if (!fs.existsSync(file)) throw new InputError(`--reuse-rollouts ${file} does not exist`);
  const rollouts: Rollout[] = [];
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      const where = `${file}:${i + 1}`;
      let r: any;
      try {
        r = JSON.parse(line);
      } catch (e) {
        throw new InputError(`${where} is not valid JSON (${(e as Error).message})`);
      }
      const ids = r?.ids;
      if (!Array.isArray(ids) || !ids.every((id: unknown) => Number.isInteger(id) && (id as number) >= 0))
        throw new InputError(`${where}: "ids" must be an array of token ids`);
      if (!(Number.isInteger(r.promptTokens) && r.promptTokens >= 1 && r.promptTokens < ids.length))
        throw new InputError(`${where}: "promptTokens" must be a whole number from 1 to ${ids.length - 1}`);
      const bad = ids.find((id: number) => id >= vocab);
      if (bad !== undefined)
        throw new InputError(
          `${where}: token id ${bad} is outside the student's vocabulary (${vocab} entries): these rollouts come from another tokenizer`,
        );
      rollouts.push({
        ids,
        promptTokens: r.promptTokens,
        // completions of one prompt stay together in the held-out split
        source:
          typeof r.prompt === 'string' && r.prompt
            ? `prompt ${JSON.stringify(r.prompt.slice(0, 80))}`
            : where,
        writer: r.source === 'student' || r.source === 'mix' || r.source === 'dataset' ? r.source : 'teacher',
        prompt: typeof r.prompt === 'string' ? r.prompt : '',
        completion: typeof r.completion === 'string' ? r.completion : '',
        finish: r.finish === 'eos' || r.finish === 'stop' ? r.finish : 'length',
        logpTeacher: Array.isArray(r.logpTeacher) ? r.logpTeacher : [],
      });
    });
  if (rollouts.length === 0) throw new InputError(`--reuse-rollouts ${file} has no rollouts`);
  return rollouts;
}
