/**
 * distill-lens generate: continuations of a prompt by one model, sampled as Hugging Face's
 * `generate` samples (src/generate/), as text or JSON.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import * as fs from 'node:fs';
import { UsageError } from '../core/errors';
import { ModelPool } from '../models/modelPool';
import { generate, type GenerateResult } from '../generate/generator';
import { DEFAULT_SAMPLING, type SamplingOptions } from '../generate/logitsProcessors';
import { DEVICES, type Device } from '../shared/devices';
import { ONNX_DTYPES, type DtypeChoice } from '../shared/dtypes';
import { readTextFile } from './readText';

const number = (name: string, check: (v: number) => boolean, rule: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isFinite(x) || !check(x)) throw new InvalidArgumentError(`${name} must be ${rule}`);
  return x;
};

/** The sampling flags of generate (and, later, of sample), with HF's defaults: plain sampling at T = 1. */
export function samplingFlags(cmd: Command): Command {
  return cmd
    .option(
      '--max-new-tokens <N>',
      'new tokens at most',
      number('--max-new-tokens', (x) => Number.isInteger(x) && x >= 1, 'a whole number ≥ 1'),
      64,
    )
    .option('--greedy', 'the most likely token each time (no sampling)')
    .option(
      '--temperature <T>',
      'divide the logits by T',
      number('--temperature', (x) => x > 0, 'greater than 0'),
      DEFAULT_SAMPLING.temperature,
    )
    .option(
      '--top-k <K>',
      'keep the K most likely tokens (0: all)',
      number('--top-k', (x) => Number.isInteger(x) && x >= 0, 'a whole number ≥ 0'),
      DEFAULT_SAMPLING.topK,
    )
    .option(
      '--top-p <P>',
      'keep the most likely tokens up to mass P',
      number('--top-p', (x) => x > 0 && x <= 1, 'in (0, 1]'),
      DEFAULT_SAMPLING.topP,
    )
    .option(
      '--min-p <P>',
      'drop tokens less likely than P × the most likely',
      number('--min-p', (x) => x >= 0 && x <= 1, 'in [0, 1]'),
      DEFAULT_SAMPLING.minP,
    )
    .option(
      '--repetition-penalty <R>',
      'penalise tokens already in the sequence (1: off)',
      number('--repetition-penalty', (x) => x > 0, 'greater than 0'),
      DEFAULT_SAMPLING.repetitionPenalty,
    )
    .option(
      '--seed <N>',
      'the same seed repeats a CPU run exactly',
      number('--seed', (x) => Number.isInteger(x) && x >= 0, 'a whole number ≥ 0'),
      0,
    )
    .option(
      '--samples <N>',
      'continuations of the prompt',
      number('--samples', (x) => Number.isInteger(x) && x >= 1, 'a whole number ≥ 1'),
      1,
    )
    .option(
      '--stop <S>',
      'stop once the new text contains S (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    );
}

export function samplingFrom(o: Record<string, any>): SamplingOptions {
  return {
    greedy: !!o.greedy,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    minP: o.minP,
    repetitionPenalty: o.repetitionPenalty,
  };
}

/** The prompt from exactly one of --prompt and --prompt-file. */
export function promptFrom(o: { prompt?: string; promptFile?: string }): string {
  if ((o.prompt === undefined) === (o.promptFile === undefined))
    throw new UsageError('give the prompt with exactly one of --prompt or --prompt-file');
  return o.prompt ?? readTextFile(o.promptFile!);
}

/** JSON as documented in the README: ids (prompt and continuation), the text, why it ended, each new token. */
export function generateJson(result: GenerateResult): string {
  return JSON.stringify({ samples: result.samples }, null, 1);
}

export function addGenerateCommand(program: Command): void {
  samplingFlags(
    program
      .command('generate')
      .description("continue a prompt with one model (Hugging Face generate's sampling)")
      .requiredOption('--model <M>', 'a model folder or a hub id')
      .option('--prompt <S>', 'the text to continue')
      .option('--prompt-file <F>', 'a UTF-8 file with the text to continue'),
  )
    .addOption(new Option('--format <F>', 'output format').choices(['text', 'json']).default('text'))
    .option('--out <F>', 'write the output to a file')
    .addOption(new Option('--device <D>', 'execution provider').choices(DEVICES).default('cpu'))
    .addOption(
      new Option('--dtype <D>', 'which file of an ONNX export runs (transformers.js names)')
        .choices(['auto', ...ONNX_DTYPES])
        .default('auto'),
    )
    .option('--allow-remote', 'allow downloading hub model ids from huggingface.co')
    .option('--verbose', 'print stack traces')
    .action(async (o) => {
      const prompt = promptFrom(o);
      const pool = new ModelPool({ capacity: 1 });
      try {
        const lease = await pool.acquire(o.model, {
          device: o.device as Device,
          dtype: o.dtype as DtypeChoice,
          allowRemote: !!o.allowRemote,
        });
        try {
          const { lm, tokenizer } = lease.model;
          for (const m of lm.info.messages) process.stderr.write(`distill-lens: ${m}\n`);
          const promptIds = tokenizer.encode(prompt).ids;
          // one continuation to the terminal: its tokens as they come
          const stream = o.format === 'text' && !o.out && o.samples === 1;
          if (stream) process.stdout.write(prompt);
          const result = await generate(
            lm,
            tokenizer,
            promptIds,
            {
              sampling: samplingFrom(o),
              maxNewTokens: o.maxNewTokens,
              samples: o.samples,
              seed: o.seed,
              stop: o.stop,
            },
            { onToken: stream ? (_, t) => process.stdout.write(tokenizer.decode([t.id])) : undefined },
          );
          for (const m of result.messages) process.stderr.write(`distill-lens: ${m}\n`);
          if (stream) {
            process.stdout.write(
              `\n[${result.samples[0].finish}, ${result.samples[0].tokens.length} tokens]\n`,
            );
            return;
          }
          const text =
            o.format === 'json'
              ? generateJson(result)
              : result.samples
                  .map(
                    (s, i) =>
                      `--- sample ${i + 1} (${s.finish}, ${s.tokens.length} tokens)\n${prompt}${s.text}\n`,
                  )
                  .join('\n');
          if (o.out) fs.writeFileSync(o.out, text.endsWith('\n') ? text : text + '\n');
          else process.stdout.write(text.endsWith('\n') ? text : text + '\n');
        } finally {
          await lease.release();
        }
      } finally {
        await pool.dispose();
      }
    });
}
