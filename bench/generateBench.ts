/**
 * Generation speed (part of npm run bench): sampling from the GPT-2-small-shaped model of the
 * inspection bench (bench-results/models/peaked/teacher-12l, written by inspectBench.ts) with
 * its key/value cache, batch 1 and 8, 128 new tokens after a 32-token prompt; the time per
 * token near position 50 and near position 500 of one long continuation; and the same
 * sampling in PyTorch eager with a cache (bench/torchGenerate.py) when python3-torch is there.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../src/models/modelSource';
import { LanguageModel } from '../src/models/languageModel';
import { TextTokenizer } from '../src/models/tokenizer';
import { generate } from '../src/generate/generator';
import { DEFAULT_SAMPLING } from '../src/generate/logitsProcessors';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'bench-results');
const MODEL = path.join(OUT, 'models', 'peaked', 'teacher-12l');
const NEW_TOKENS = 128;

async function main() {
  if (!fs.existsSync(path.join(MODEL, 'config.json'))) {
    console.error(`run the inspection bench first: it writes ${path.relative(ROOT, MODEL)}`);
    process.exit(2);
  }
  process.env.DISTILL_LENS_CACHE ??= path.join(OUT, 'cache');
  const lm = await LanguageModel.open(await resolveModel(MODEL), 'cpu');
  const tokenizer = TextTokenizer.fromFolder(MODEL);
  const prompt = JSON.parse(fs.readFileSync(path.join(OUT, 'bench-ids.json'), 'utf8')).slice(
    0,
    32,
  ) as number[];
  const promptFile = path.join(OUT, 'generate-prompt.json');
  fs.writeFileSync(promptFile, JSON.stringify(prompt));
  const report: Record<string, unknown> = {
    model: 'GPT-2-small shape (12 layers, width 768)',
    promptTokens: prompt.length,
    newTokens: NEW_TOKENS,
    cached: lm.canCache,
  };
  const sampling = { sampling: { ...DEFAULT_SAMPLING }, seed: 1, stop: [] as string[] };
  for (const batch of [1, 8]) {
    // the prompt's pass is timed apart: the rate is over the new tokens only
    const stamps: number[] = [];
    await generate(
      lm,
      tokenizer,
      prompt,
      { ...sampling, maxNewTokens: NEW_TOKENS, samples: batch },
      { onToken: (b) => b === 0 && stamps.push(performance.now()) },
    );
    const newTokensMs = stamps[stamps.length - 1] - stamps[0];
    const row: Record<string, number | string> = {
      tokensPerSecond: (batch * (NEW_TOKENS - 1)) / (newTokensMs / 1000),
    };
    const torch = spawnSync(
      '/usr/bin/python3',
      [path.join(__dirname, 'torchGenerate.py'), MODEL, promptFile, String(batch), String(NEW_TOKENS - 1)],
      {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' },
      },
    );
    if (torch.status === 0) {
      row.torchTokensPerSecond = JSON.parse(torch.stdout.trim().split('\n').pop()!).tokensPerSecond;
      row.ratioToTorch = Number(row.tokensPerSecond) / Number(row.torchTokensPerSecond);
    } else row.torch = 'not measured (python3-torch not installed?)';
    report[`batch${batch}`] = row;
    process.stderr.write(`[generate batch ${batch}] ${JSON.stringify(row)}\n`);
  }
  // time per token near position 50 and near 500 of one continuation
  const times: number[] = [];
  await generate(
    lm,
    tokenizer,
    prompt,
    { ...sampling, maxNewTokens: 480, samples: 1 },
    { onToken: () => times.push(performance.now()) },
  );
  const perToken = (position: number) => {
    const i = position - prompt.length;
    return (times[i + 5] - times[i - 5]) / 10;
  };
  report.msPerTokenAt50 = perToken(50);
  report.msPerTokenAt500 = perToken(500);
  report.ratio500To50 = perToken(500) / perToken(50);
  await lm.release();
  fs.writeFileSync(path.join(OUT, 'generate-bench.json'), JSON.stringify(report, null, 2));
  console.log(
    `\ngeneration, ${report.model}, CPU, ${NEW_TOKENS} new tokens after a ${prompt.length}-token prompt (sampling at T = 1)`,
  );
  for (const [k, v] of Object.entries(report))
    console.log(`${k.padEnd(18)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  console.log(`\nwritten to ${path.relative(ROOT, path.join(OUT, 'generate-bench.json'))}`);
}

main();
