/**
 * Generation end to end: greedy decoding of the converted stories260K reproduces llama2.c's
 * golden text; cached and full-sequence decoding choose the same tokens; a seed repeats a run;
 * EOS, stop strings and the token limit end a continuation; the CLI's text and JSON.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { generate, type GenerateOptions } from '../../src/generate/generator';
import { DEFAULT_SAMPLING } from '../../src/generate/logitsProcessors';
import { demoPair, needs, ORTGENAI, storiesPair, tempDir } from '../helpers';

const GOLDEN =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high';

async function open(folder: string) {
  return {
    lm: await LanguageModel.open(await resolveModel(folder), 'cpu'),
    tokenizer: TextTokenizer.fromFolder(folder),
  };
}

const options = (o: Partial<GenerateOptions> = {}): GenerateOptions => ({
  sampling: { ...DEFAULT_SAMPLING, greedy: true },
  maxNewTokens: 60,
  samples: 1,
  seed: 0,
  stop: [],
  ...o,
});

test(
  "greedy decoding of the converted stories260K reproduces llama2.c's golden text",
  needs('stories260k'),
  async () => {
    const { lm, tokenizer } = await open(storiesPair().teacher);
    try {
      const prompt = 'Once upon a time';
      const result = await generate(lm, tokenizer, tokenizer.encode(prompt).ids, options());
      assert.ok(result.cached, 'the built graph decodes with its cache');
      const text = prompt + result.samples[0].text;
      assert.ok(text.startsWith(GOLDEN), `generated: ${JSON.stringify(text)}`);
      // a continuation that starts with a word keeps its space (SentencePiece drops the leading
      // space of a token decoded alone: "time,there")
      const comma = await generate(
        lm,
        tokenizer,
        tokenizer.encode('Once upon a time,').ids,
        options({ maxNewTokens: 8 }),
      );
      assert.ok(
        ('Once upon a time,' + comma.samples[0].text).startsWith(GOLDEN.slice(0, 40)),
        JSON.stringify(comma.samples[0].text),
      );
    } finally {
      await lm.release();
    }
    // the CLI streams the same text as it prints in JSON
    const bin = path.resolve(__dirname, '..', '..', 'bin', 'distill-lens.js');
    const args = [
      'generate',
      '--model',
      storiesPair().teacher,
      '--prompt',
      'Once upon a time,',
      '--greedy',
      '--max-new-tokens',
      '12',
    ];
    const streamed = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' }).stdout;
    const json = JSON.parse(
      spawnSync(process.execPath, [bin, ...args, '--format', 'json'], { encoding: 'utf8' }).stdout,
    );
    assert.equal(streamed, `Once upon a time,${json.samples[0].text}\n[length, 12 tokens]\n`);
    assert.ok(streamed.startsWith(GOLDEN.slice(0, 40)), streamed);
  },
);

test('cached and full-sequence decoding choose the same tokens; a seed repeats a run; each way of ending', async () => {
  const { lm, tokenizer } = await open(demoPair().student);
  try {
    const promptIds = tokenizer.encode('export function').ids;
    const sampled = options({
      sampling: { ...DEFAULT_SAMPLING, temperature: 0.9, topK: 50, topP: 0.95 },
      maxNewTokens: 20,
      samples: 3,
      seed: 7,
    });
    const cached = await generate(lm, tokenizer, promptIds, sampled);
    // the same model without its cache: every token from a pass over the whole sequence
    const uncachedLm = Object.create(lm, { canCache: { value: false } }) as LanguageModel;
    const full = await generate(uncachedLm, tokenizer, promptIds, sampled);
    assert.match(full.messages.join(' '), /no key\/value cache inputs/);
    assert.deepEqual(
      full.samples.map((s) => s.ids),
      cached.samples.map((s) => s.ids),
      'the same tokens either way',
    );
    cached.samples.forEach((s, b) =>
      s.tokens.forEach((t, i) =>
        assert.ok(Math.abs(t.logp - full.samples[b].tokens[i].logp) < 1e-4, 'the same log-probabilities'),
      ),
    );
    // a seed repeats the run; continuation b does not depend on how many were asked for
    const again = await generate(lm, tokenizer, promptIds, sampled);
    assert.deepEqual(
      again.samples.map((s) => s.ids),
      cached.samples.map((s) => s.ids),
    );
    const first = await generate(lm, tokenizer, promptIds, { ...sampled, samples: 1 });
    assert.deepEqual(first.samples[0].ids, cached.samples[0].ids);
    const other = await generate(lm, tokenizer, promptIds, { ...sampled, seed: 8 });
    assert.notDeepEqual(
      other.samples.map((s) => s.ids),
      cached.samples.map((s) => s.ids),
      'another seed, other draws',
    );
    // the three samples differ from each other
    assert.ok(new Set(cached.samples.map((s) => s.text)).size > 1);
    // token limit, stop string (the text up to and including it), log-probabilities ≤ 0
    for (const s of cached.samples) {
      assert.equal(s.finish, 'length');
      assert.equal(s.tokens.length, 20);
      assert.equal(s.ids.length, promptIds.length + 20);
      assert.ok(s.tokens.every((t) => t.logp <= 0));
    }
    const greedy = await generate(lm, tokenizer, promptIds, options({ maxNewTokens: 30 }));
    const stopAt = greedy.samples[0].text.slice(3, 6);
    const stopped = await generate(lm, tokenizer, promptIds, options({ maxNewTokens: 30, stop: [stopAt] }));
    assert.equal(stopped.samples[0].finish, 'stop');
    assert.ok(
      stopped.samples[0].text.includes(stopAt) && greedy.samples[0].text.startsWith(stopped.samples[0].text),
    );
  } finally {
    await lm.release();
  }
  // EOS: a copy of the model whose generation_config.json names the greedy run's 4th token as EOS
  const copy = path.join(tempDir(), 'student');
  fs.cpSync(demoPair().student, copy, { recursive: true });
  const plain = await open(copy);
  try {
    const promptIds = plain.tokenizer.encode('export function').ids;
    const greedy = await generate(plain.lm, plain.tokenizer, promptIds, options({ maxNewTokens: 6 }));
    const eos = greedy.samples[0].tokens[3].id;
    fs.writeFileSync(path.join(copy, 'generation_config.json'), JSON.stringify({ eos_token_id: [eos] }));
    const ended = await generate(plain.lm, plain.tokenizer, promptIds, options({ maxNewTokens: 6 }));
    const first = greedy.samples[0].tokens.findIndex((t) => t.id === eos);
    assert.equal(ended.samples[0].finish, 'eos');
    assert.equal(
      ended.samples[0].tokens.length,
      first + 1,
      'the continuation ends with the first EOS, which it keeps',
    );
    // a generation_config.json that cannot be read is refused, not ignored (its EOS ids matter)
    fs.writeFileSync(path.join(copy, 'generation_config.json'), '{"eos_token_id": [1,');
    await assert.rejects(
      generate(plain.lm, plain.tokenizer, promptIds, options()),
      /generation_config\.json is not valid JSON .*: fix or remove it/,
    );
  } finally {
    await plain.lm.release();
  }
});

test('distill-lens generate: text and JSON, and clear refusals', () => {
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'distill-lens.js');
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [bin, 'generate', ...args], { encoding: 'utf8' });
  const json = cli(
    '--model',
    demoPair().teacher,
    '--prompt',
    'export function',
    '--samples',
    '2',
    '--max-new-tokens',
    '5',
    '--seed',
    '3',
    '--format',
    'json',
  );
  assert.equal(json.status, 0, json.stderr);
  const out = JSON.parse(json.stdout) as {
    samples: {
      ids: number[];
      promptTokens: number;
      text: string;
      finish: string;
      tokens: { id: number; text: string; logp: number }[];
    }[];
  };
  assert.equal(out.samples.length, 2);
  for (const s of out.samples) {
    assert.equal(s.ids.length, s.promptTokens + 5);
    assert.deepEqual(
      s.tokens.map((t) => t.id),
      s.ids.slice(s.promptTokens),
    );
    assert.equal(s.finish, 'length');
  }
  const text = cli(
    '--model',
    demoPair().teacher,
    '--prompt',
    'export function',
    '--greedy',
    '--max-new-tokens',
    '5',
  );
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^export function/);
  assert.match(text.stdout, /\[length, 5 tokens\]/);
  const bad = cli('--model', demoPair().teacher, '--prompt', 'x', '--temperature', '0');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--temperature must be greater than 0/);
  const none = cli('--model', demoPair().teacher);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /exactly one of --prompt or --prompt-file/);
});

test(
  'an onnxruntime-genai export (float16, past_key_values in, present out) decodes with its cache as it does without',
  needs('ortGenaiLlama'),
  async () => {
    const { lm, tokenizer } = await open(ORTGENAI);
    try {
      assert.equal(lm.cacheKind, 'present');
      const promptIds = tokenizer.encode('Hello world').ids;
      const o = options({
        maxNewTokens: 8,
        samples: 2,
        sampling: { ...DEFAULT_SAMPLING, temperature: 0.8 },
        seed: 3,
      });
      const cached = await generate(lm, tokenizer, promptIds, o);
      const uncachedLm = Object.create(lm, {
        canCache: { value: false },
        cacheKind: { value: undefined },
      }) as LanguageModel;
      const full = await generate(uncachedLm, tokenizer, promptIds, o);
      assert.deepEqual(
        cached.samples.map((s) => s.ids),
        full.samples.map((s) => s.ids),
      );
      assert.equal(cached.messages.length, 0);
    } finally {
      await lm.release();
    }
  },
);
