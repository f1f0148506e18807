/**
 * distill-lens: the command-line interface over the same engine the editor uses.
 * Exit codes: 0 success, 2 usage error, 1 any other error (one line; a stack with --verbose).
 */
import { ONNX_DTYPES, type DtypeChoice } from '../shared/dtypes';
import { Command, CommanderError, Option } from 'commander';
import { METRIC_KEYS, parseMetricKey, shownMetric } from '../core/metricKeys';
import { CancelledError, UsageError } from '../core/errors';
import { DEFAULT_METRIC_OPTIONS, type MetricOptions } from '../core/tokenRows';
import { ModelPool } from '../models/modelPool';
import { InspectEngine } from '../inspect/inspectEngine';
import { convertLlama2c } from '../models/llama2c';
import { readTextFile } from './readText';
import { formatTable } from './tableFormat';
import { renderHtmlReport } from '../report/htmlReport';
import { toJsonReport } from '../report/jsonReport';
import { runMetricsCommand } from './metricsCommand';
import { runDemo } from './demo';
import { addDistillCommand } from './distillCommand';
import { addGenerateCommand, addSampleCommand } from './generateCommand';
import { version } from '../../package.json';
import { DEVICES, type Device } from '../shared/devices';
import { addTeacherOptions, integer, number, teacherSpec, writeOut } from './cliParts';

/** Options shared by inspect, metrics and demo. */
function metricOptions(cmd: Command): Command {
  return cmd
    .option(
      '--temperature <T>',
      'softmax temperature for both models',
      number('--temperature', (x) => x > 0, 'a positive number'),
      1,
    )
    .option(
      '--beta <B>',
      'β of the generalised JSD (0 = fkl, 1 = rkl)',
      number('--beta', (x) => x >= 0 && x <= 1, 'between 0 and 1'),
      0.5,
    )
    .option(
      '--alpha <A>',
      'α of the skew KLs',
      number('--alpha', (x) => x >= 0 && x <= 1, 'between 0 and 1'),
      0.1,
    )
    .option('--top-k <K>', 'top tokens listed per model', integer('--top-k', 1), 5)
    .option('--metric <KEY>', `metric for colours and the worst list (${METRIC_KEYS.join(', ')})`, 'fkl')
    .option('--verbose', 'print stack traces');
}

function toMetricOptions(o: Record<string, number>): MetricOptions {
  return {
    ...DEFAULT_METRIC_OPTIONS,
    temperature: o.temperature,
    beta: o.beta,
    alpha: o.alpha,
    topK: o.topK,
  };
}

export function buildProgram(): Command {
  const program = new Command('distill-lens')
    .description('Token-by-token teacher/student divergences on ONNX Runtime')
    .version(version)
    .showHelpAfterError('(run distill-lens --help for usage)')
    .exitOverride();

  metricOptions(
    addTeacherOptions(
      program.command('inspect').description('analyse a text with a teacher and a student model'),
      'teacher: a model folder, a hub id, or a served teacher openai+http://host:port/v1#model (vLLM, SGLang, OpenAI completions; key from DISTILL_LENS_TEACHER_API_KEY)',
    )
      .requiredOption('--student <M>', 'student: a model folder or a hub id')
      .option('--text <S>', 'the text to analyse')
      .option('--file <F>', 'a UTF-8 file to analyse')
      .addOption(new Option('--device <D>', 'execution provider').choices(DEVICES).default('cpu'))
      .addOption(
        new Option('--format <F>', 'output format').choices(['table', 'json', 'html']).default('table'),
      )
      .option('--out <F>', 'write the output to a file')
      .option('--max-tokens <N>', 'refuse texts longer than this', integer('--max-tokens', 2), 8192)
      .option(
        '--window <N>',
        'window length for long texts (default: the model context)',
        integer('--window', 2),
      )
      .option('--allow-remote', 'allow downloading hub model ids from huggingface.co')
      .addOption(
        new Option('--dtype <D>', 'which file of an ONNX export runs (transformers.js names)')
          .choices(['auto', ...ONNX_DTYPES])
          .default('auto'),
      )
      .option('--threads <N>', 'ONNX Runtime intra-op threads', integer('--threads', 1))
      .option(
        '--layers',
        "the layer view: each hidden state through the model's own final norm and head (logit lens) and linear CKA between the models' layers (checkpoint folders only)",
      )
      .option(
        '--teacher-top-k <K>',
        "a served teacher: how many of its most probable tokens per position the metrics' buckets hold (20)",
        integer('--teacher-top-k', 1),
      )
      .option('--timings', 'print the time of each step and the peak memory to standard error (JSON)'),
  ).action(async (o) => {
    const metric = parseMetricKey(o.metric);
    if ((o.text === undefined) === (o.file === undefined))
      throw new UsageError('give the text with exactly one of --text or --file');
    const text = o.text ?? readTextFile(o.file);
    const engine = new InspectEngine(new ModelPool({ threads: o.threads }));
    try {
      const result = await engine.inspect({
        teacher: teacherSpec(o),
        student: o.student,
        text,
        options: toMetricOptions(o),
        metric,
        device: o.device as Device,
        maxTokens: o.maxTokens,
        window: o.window,
        allowRemote: !!o.allowRemote,
        dtype: o.dtype as DtypeChoice,
        layers: !!o.layers,
        ...(o.teacherTopK ? { teacherTopK: o.teacherTopK } : {}),
        // a pair whose tokenizers differ: compared on exact spans
        acrossTokenizers: true,
      });
      for (const m of [...result.messages, result.windowNotice ?? []].flat())
        process.stderr.write(`distill-lens: ${m}\n`);
      if (o.timings) {
        const peakRssMiB = process.resourceUsage().maxRSS / 1024;
        const teacherMeanEntropy =
          result.rows.reduce((a, r) => a + r.teacher.entropy, 0) / result.rows.length;
        process.stderr.write(
          `timings ${JSON.stringify({ ...result.timings, tokens: result.ids.length, peakRssMiB, processMs: performance.now(), teacherMeanEntropy })}\n`,
        );
      }
      if (o.format === 'json') writeOut(JSON.stringify(toJsonReport(result), null, 1), o.out);
      // a pair whose tokenizers differ is drawn by a metric its spans define (k3 unless k1–k3 is chosen)
      else if (o.format === 'html')
        writeOut(renderHtmlReport(result, text, shownMetric(metric, !!result.spans)), o.out);
      else writeOut(formatTable(result, text, metric, { color: o.out ? false : undefined }), o.out);
    } finally {
      await engine.dispose();
    }
  });

  metricOptions(
    program
      .command('metrics')
      .description(
        'metrics from logits given as JSON: {"teacher": number[][], "student": number[][], "targets": number[]}',
      )
      .requiredOption('--input <F>', 'the JSON file (- for standard input)')
      .option('--out <F>', 'write the output to a file'),
  ).action(async (o) => {
    const metric = parseMetricKey(o.metric);
    writeOut(JSON.stringify(await runMetricsCommand(o.input, toMetricOptions(o), metric), null, 1), o.out);
  });

  const convert = program
    .command('convert')
    .description('convert other checkpoint formats to a Hugging Face folder');
  convert
    .command('llama2c')
    .description('a llama2.c checkpoint and tokenizer → config.json, model.safetensors, tokenizer.json')
    .requiredOption('--checkpoint <F>', 'the llama2.c .bin checkpoint')
    .requiredOption('--tokenizer <F>', 'the llama2.c tokenizer .bin')
    .requiredOption('--out <DIR>', 'the new folder (must not exist or be empty)')
    .option('--layers <N>', 'keep only the first N transformer layers (a student)', integer('--layers', 1))
    .option('--verbose', 'print stack traces')
    .action((o) => {
      const { config } = convertLlama2c({
        checkpoint: o.checkpoint,
        tokenizer: o.tokenizer,
        out: o.out,
        layers: o.layers,
      });
      process.stdout.write(
        `wrote ${o.out}: Llama, ${config.num_hidden_layers} layers, width ${config.hidden_size}, vocabulary ${config.vocab_size}\n`,
      );
    });

  addDistillCommand(
    program,
    integer,
    (name) => number(name, (x) => x > 0, 'a positive number'),
    (name) => number(name, (x) => x >= 0 && x <= 1, 'between 0 and 1'),
  );
  addGenerateCommand(program);
  addSampleCommand(program);

  metricOptions(
    program
      .command('demo')
      .description(
        'analyse a sample TypeScript declaration with the built-in teacher and student and write demo-report.html',
      )
      .option('--out <F>', 'where to write the HTML report', 'demo-report.html'),
  ).action(async (o) => {
    await runDemo({ metric: parseMetricKey(o.metric), options: toMetricOptions(o), htmlOut: o.out });
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const verbose = argv.includes('--verbose');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its message already; --help and --version end with code 0
      return e.exitCode === 0 ? 0 : 2;
    }
    const err = e as Error;
    if (err instanceof CancelledError) return 130; // the command has said so already
    process.stderr.write(`distill-lens: error: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    return err instanceof UsageError ? 2 : 1;
  }
}

if (
  require.main === module ||
  process.argv[1]?.endsWith('distill-lens.js') ||
  process.argv[1]?.endsWith('cli.js')
) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
