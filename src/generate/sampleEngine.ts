/**
 * The sampling engine: a prompt → continuations from the student, the teacher or their mix
 * (generator.ts), each token streamed as it is chosen → both models score every continuation
 * (sampleScoring.ts). Models come from a ModelPool shared with inspection in the model
 * process; the engine owns its metrics runners. The CLI's `sample` and the editor use it.
 */
import { UsageError } from '../core/errors';
import { MetricsRunner } from '../inspect/metricsRunner';
import type { ModelPool } from '../models/modelPool';
import type { TextTokenizer } from '../models/tokenizer';
import type { SampleReport, SampleRequest, StreamedToken } from '../shared/generation';
import { generate, type Policy } from './generator';
import { scoreSamples, summarizeSamples } from './sampleScoring';

export interface SampleHooks {
  onToken?: (t: StreamedToken) => void;
  onProgress?: (message: string) => void;
  checkCancelled?: () => void;
}

/**
 * The end of `text` that is at most `maxTokens` tokens: cut where a token starts, so the kept
 * text is a suffix of the original (then tokenised on its own, as the models will read it).
 */
export function promptEnd(
  tokenizer: TextTokenizer,
  text: string,
  maxTokens: number,
): { text: string; ids: number[] } {
  let kept = text;
  let encoded = tokenizer.encode(kept);
  // re-tokenising the suffix can merge differently at its start: cut again until it fits
  while (encoded.ids.length > maxTokens) {
    const tooMany = encoded.ids.length - maxTokens;
    const cut = encoded.spans.slice(tooMany).find(([start, end]) => end > start && start > 0)?.[0];
    if (cut === undefined) break; // nothing left to cut at: generate() refuses the prompt by name
    kept = kept.slice(cut);
    encoded = tokenizer.encode(kept);
  }
  return { text: kept, ids: encoded.ids };
}

export class SampleEngine {
  /** one metrics runner per device the teacher runs on */
  private runners = new Map<string, MetricsRunner>();

  constructor(private readonly models: ModelPool) {}

  async run(req: SampleRequest, hooks: SampleHooks = {}): Promise<SampleReport> {
    const checkCancelled = hooks.checkCancelled ?? (() => {});
    const load = {
      device: req.device,
      dtype: req.dtype,
      allowRemote: req.allowRemote,
      hubCacheDir: req.hubCacheDir,
      onProgress: hooks.onProgress,
      checkCancelled,
    };
    hooks.onProgress?.('loading the models');
    const [teacher, student] = await Promise.all([
      this.models.acquire(req.teacher, load),
      this.models.acquire(req.student, load),
    ]);
    try {
      if (teacher.model.tokenizer.vocabSize !== student.model.tokenizer.vocabSize)
        throw new UsageError(
          `the teacher's tokenizer has ${teacher.model.tokenizer.vocabSize} tokens and the student's ${student.model.tokenizer.vocabSize}: sampling with scores needs a pair that shares one tokenizer`,
        );
      const tokenizer = student.model.tokenizer;
      const policy: Policy =
        req.from === 'mix'
          ? { teacher: teacher.model.lm, student: student.model.lm, alpha: req.mixAlpha }
          : { lm: (req.from === 'teacher' ? teacher : student).model.lm };
      const context = Math.min(teacher.model.lm.model.contextLength, student.model.lm.model.contextLength);
      const prompt = req.keepPromptEnd
        ? promptEnd(
            tokenizer,
            req.prompt,
            Math.min(req.maxPromptTokens ?? Infinity, context - Math.min(req.maxNewTokens, context >> 1)),
          )
        : { text: req.prompt, ids: tokenizer.encode(req.prompt).ids };
      hooks.onProgress?.('generating');
      const generated = await generate(
        policy,
        tokenizer,
        prompt.ids,
        {
          sampling: req.sampling,
          maxNewTokens: req.maxNewTokens,
          samples: req.samples,
          seed: req.seed,
          stop: req.stop,
        },
        { onToken: (sample, token) => hooks.onToken?.({ sample, token }), checkCancelled },
      );
      hooks.onProgress?.('scoring with both models');
      const device = teacher.model.lm.info.device;
      let runner = this.runners.get(device);
      if (!runner) this.runners.set(device, (runner = new MetricsRunner(device)));
      const samples = await scoreSamples(
        teacher.model.lm,
        student.model.lm,
        tokenizer,
        generated.samples,
        { metrics: req.metrics, voidThreshold: req.voidThreshold },
        runner,
        checkCancelled,
      );
      return {
        teacher: req.teacher,
        student: req.student,
        from: req.from,
        ...(req.from === 'mix' ? { mixAlpha: req.mixAlpha } : {}),
        prompt: prompt.text,
        samples,
        summary: summarizeSamples(samples),
        messages: [
          ...new Set([
            ...teacher.model.lm.info.messages,
            ...student.model.lm.info.messages,
            ...(prompt.text.length < req.prompt.length
              ? [
                  `the prompt was cut to its last ${prompt.ids.length} tokens, so that it and ${req.maxNewTokens} new tokens fit in the models' context`,
                ]
              : []),
            ...generated.messages,
          ]),
        ],
      };
    } finally {
      await teacher.release();
      await student.release();
    }
  }

  /** Releases the metrics sessions (the pool belongs to its owner). */
  async dispose(): Promise<void> {
    for (const r of this.runners.values()) await r.release();
    this.runners.clear();
  }
}
