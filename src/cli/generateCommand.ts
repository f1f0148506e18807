/**
 * distill-lens generate: continuations of a prompt by one model, sampled as Hugging Face's
 * `generate` samples (src/generate/), as text or JSON. distill-lens sample: continuations from
 * the student, the teacher or MiniLLM's mix, every token scored by both models.
 */
import { type Command, Option } from 'commander';
import { UsageError } from '../core/errors';
import { ModelPool } from '../models/modelPool';
import { generate, type GenerateResult } from '../generate/generator';
import { SampleEngine } from '../generate/sampleEngine';
import { TextStream } from '../generate/continuationText';
import type { ScoredSample, SampleSummary } from '../shared/generation';
import { DEFAULT_METRIC_OPTIONS } from '../core/tokenRows';
import { formatNumber } from '../core/formatNumber';
import { DEFAULT_SAMPLING, type SamplingOptions } from '../generate/logitsProcessors';
import { DEVICES, type Device } from '../shared/devices';
import { ONNX_DTYPES, type DtypeChoice } from '../shared/dtypes';
import { readTextFile } from './readText';
import { number, writeOut } from './cliParts';
import { renderSampleReport, sampleReportJson } from '../report/sampleReport';

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

/** Where the output goes and how the models load: the flags generate and sample share. */
function runFlags(cmd: Command): Command {
  return cmd
    .option('--out <F>', 'write the output to a file')
    .addOption(new Option('--device <D>', 'execution provider').choices(DEVICES).default('cpu'))
    .addOption(
      new Option('--dtype <D>', 'which file of an ONNX export runs (transformers.js names)')
        .choices(['auto', ...ONNX_DTYPES])
        .default('auto'),
    )
    .option('--allow-remote', 'allow downloading hub model ids from huggingface.co')
    .option('--verbose', 'print stack traces');
}

export function addGenerateCommand(program: Command): void {
  const generateCommand = samplingFlags(
    program
      .command('generate')
      .description("continue a prompt with one model (Hugging Face generate's sampling)")
      .requiredOption('--model <M>', 'a model folder or a hub id')
      .option('--prompt <S>', 'the text to continue')
      .option('--prompt-file <F>', 'a UTF-8 file with the text to continue'),
  ).addOption(new Option('--format <F>', 'output format').choices(['text', 'json']).default('text'));
  runFlags(generateCommand).action(async (o) => {
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
        const streamed = new TextStream(tokenizer, promptIds);
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
          { onToken: stream ? (_, t) => process.stdout.write(streamed.push(t.id)) : undefined },
        );
        for (const m of result.messages) process.stderr.write(`distill-lens: ${m}\n`);
        if (stream) {
          process.stdout.write(
            `${streamed.flush()}\n[${result.samples[0].finish}, ${result.samples[0].tokens.length} tokens]\n`,
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
        writeOut(text, o.out);
      } finally {
        await lease.release();
      }
    } finally {
      await pool.dispose();
    }
  });
}

/** One continuation as a few lines: its values, its text, then each token's log p, log q, ratio and return. */
function sampleTable(prompt: string, samples: ScoredSample[], summary: SampleSummary): string {
  const f = (x: number) => formatNumber(x).padStart(9);
  const out: string[] = [];
  samples.forEach((s, i) => {
    const q = s.sequence;
    out.push(
      `--- sample ${i + 1} (${q.finish}, ${q.length} tokens): Σ log p/q ${formatNumber(q.logRatio)}, Σ KL(q‖p) ${formatNumber(q.reverseKl)}, k1 ${formatNumber(q.k1)}, k3 ${formatNumber(q.k3)}, distinct-2 ${formatNumber(q.distinct2)}, void ${q.voidTokens}`,
      prompt + s.text,
      `${'token'.padEnd(16)}${'log p'.padStart(9)}${'log q'.padStart(9)}${'log p/q'.padStart(9)}${'return'.padStart(9)}`,
      ...s.rows.map(
        (r) =>
          `${JSON.stringify(r.text).slice(0, 15).padEnd(16)}${f(r.logpTeacher)}${f(r.logpStudent)}${f(r.logRatio)}${f(r.return)}${r.void ? '  void' : ''}`,
      ),
      '',
    );
  });
  const m = (x: { mean: number; standardError: number | null }) =>
    `${formatNumber(x.mean)}${x.standardError === null ? '' : ` ± ${formatNumber(x.standardError)}`}`;
  out.push(
    `over ${summary.samples} continuation(s), mean ± standard error: Σ log p/q ${m(summary.logRatio)}, Σ KL(q‖p) ${m(summary.reverseKl)}, k1 ${m(summary.k1)}, k3 ${m(summary.k3)}, length ${m(summary.length)}, distinct-2 ${m(summary.distinct2)}, void tokens ${m(summary.voidTokens)}`,
  );
  return out.join('\n');
}

export function addSampleCommand(program: Command): void {
  const sampleCommand = samplingFlags(
    program
      .command('sample')
      .description(
        "continuations from the student, the teacher or MiniLLM's mix, every token scored by both models",
      )
      .requiredOption('--teacher <M>', 'teacher: a model folder or a hub id')
      .requiredOption('--student <M>', 'student: a model folder or a hub id')
      .option('--prompt <S>', 'the text to continue')
      .option('--prompt-file <F>', 'a UTF-8 file with the text to continue'),
  )
    .addOption(
      new Option('--from <W>', 'who writes: the student, the teacher, or the mix α·p + (1 − α)·q')
        .choices(['student', 'teacher', 'mix'])
        .default('student'),
    )
    .option(
      '--mix-alpha <A>',
      "the teacher's share α of the mix (MiniLLM: 0.2)",
      number('--mix-alpha', (x) => x >= 0 && x <= 1, 'in [0, 1]'),
      0.2,
    )
    .option(
      '--void-threshold <P>',
      'a token the teacher gives less probability than this is void',
      number('--void-threshold', (x) => x > 0 && x < 1, 'in (0, 1)'),
      1e-3,
    )
    .addOption(
      new Option('--format <F>', 'output format').choices(['table', 'json', 'html']).default('table'),
    );
  runFlags(sampleCommand).action(async (o) => {
    const prompt = promptFrom(o);
    const pool = new ModelPool({ capacity: 2 });
    const engine = new SampleEngine(pool);
    try {
      const report = await engine.run({
        teacher: o.teacher,
        student: o.student,
        prompt,
        from: o.from,
        mixAlpha: o.mixAlpha,
        sampling: samplingFrom(o),
        maxNewTokens: o.maxNewTokens,
        samples: o.samples,
        seed: o.seed,
        stop: o.stop,
        voidThreshold: o.voidThreshold,
        metrics: DEFAULT_METRIC_OPTIONS,
        device: o.device as Device,
        dtype: o.dtype as DtypeChoice,
        allowRemote: !!o.allowRemote,
      });
      for (const m of report.messages) process.stderr.write(`distill-lens: ${m}\n`);
      const { samples: scored, summary } = report;
      const text =
        o.format === 'html'
          ? renderSampleReport(report)
          : o.format === 'json'
            ? sampleReportJson(report)
            : sampleTable(prompt, scored, summary);
      writeOut(text, o.out);
    } finally {
      await engine.dispose();
      await pool.dispose();
    }
  });
}
