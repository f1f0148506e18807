/**
 * Sampled continuations scored by both models: every per-token and per-sequence value against
 * an independent float64 computation from the two models' logits (rewards, returns, k1/k3
 * sums, void tokens, distinct n-grams, the exact reverse KL through the reference row);
 * MiniLLM's mix at α = 1 and α = 0 draws exactly the teacher's and the student's tokens;
 * the sample command's JSON.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { generate, type GenerateOptions } from '../../src/generate/generator';
import { DEFAULT_SAMPLING } from '../../src/generate/logitsProcessors';
import { scoreSamples, summarizeSamples } from '../../src/generate/sampleScoring';
import { promptEnd } from '../../src/generate/sampleEngine';
import { MetricsRunner } from '../../src/inspect/metricsRunner';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { referenceRow } from '../reference/kdReference';
import { demoPair } from '../helpers';

const options: GenerateOptions = {
  sampling: { ...DEFAULT_SAMPLING, temperature: 1.2 },
  maxNewTokens: 12,
  samples: 3,
  seed: 4,
  stop: [],
};

test('every sampled token and continuation scored as the float64 reference computes it; the mix at α = 1 and 0', async () => {
  const { teacher: tf, student: sf } = demoPair();
  const teacher = await LanguageModel.open(await resolveModel(tf), 'cpu');
  const student = await LanguageModel.open(await resolveModel(sf), 'cpu');
  const tokenizer = TextTokenizer.fromFolder(sf);
  const runner = new MetricsRunner();
  try {
    const promptIds = tokenizer.encode('export interface').ids;
    const generated = await generate(student, tokenizer, promptIds, options);
    const scored = await scoreSamples(
      teacher,
      student,
      tokenizer,
      generated.samples,
      { metrics: DEFAULT_METRIC_OPTIONS, voidThreshold: 1e-3 },
      runner,
    );
    for (const s of scored) {
      const t = await teacher.forward(s.ids);
      const q = await student.forward(s.ids);
      const V = t.vocab;
      const rowOf = (l: typeof t, pos: number) =>
        Array.from((l.data as Float32Array).subarray(pos * V, (pos + 1) * V));
      const logSoftmaxAt = (z: number[], id: number) => {
        const m = Math.max(...z);
        return z[id] - m - Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
      };
      const n = s.ids.length - s.promptTokens;
      const rewards = Array.from({ length: n }, (_, i) => {
        const pos = s.promptTokens + i - 1;
        const id = s.ids[pos + 1];
        return logSoftmaxAt(rowOf(t, pos), id) - logSoftmaxAt(rowOf(q, pos), id);
      });
      let reverseKl = 0;
      s.rows.forEach((r, i) => {
        const pos = s.promptTokens + i - 1;
        const ref = referenceRow(rowOf(t, pos), rowOf(q, pos), s.ids[pos + 1]);
        const ret = rewards.slice(i).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(r.reward - rewards[i]) < 1e-6, `reward ${r.reward} vs ${rewards[i]}`);
        assert.ok(Math.abs(r.return - ret) < 1e-6, 'return to the end');
        assert.ok(Math.abs(r.normalizedReturn - ret / (n - i)) < 1e-6, 'length-normalised return');
        assert.equal(r.void, Math.exp(r.logpTeacher) < 1e-3);
        assert.ok(
          Math.abs(r.rkl - ref.rkl) < 1e-6 * Math.max(1, ref.rkl),
          'the exact reverse KL at the step',
        );
        reverseKl += ref.rkl;
      });
      const seq = s.sequence;
      assert.ok(Math.abs(seq.logRatio - rewards.reduce((a, b) => a + b, 0)) < 1e-5);
      assert.ok(Math.abs(seq.k1 + seq.logRatio) < 1e-9, 'k1 = −Σ r');
      assert.ok(Math.abs(seq.k3 - rewards.reduce((a, r) => a + Math.expm1(r) - r, 0)) < 1e-5);
      assert.ok(Math.abs(seq.reverseKl - reverseKl) < 1e-5 * Math.max(1, reverseKl));
      const cont = s.ids.slice(s.promptTokens);
      const grams = (k: number) =>
        new Set(cont.slice(0, cont.length - k + 1).map((_, i) => cont.slice(i, i + k).join())).size /
        (cont.length - k + 1);
      assert.equal(seq.distinct2, grams(2));
      assert.equal(seq.distinct3, grams(3));
      assert.equal(seq.length, n);
    }
    const summary = summarizeSamples(scored);
    const mean = scored.reduce((a, s) => a + s.sequence.logRatio, 0) / 3;
    const sd = Math.sqrt(scored.reduce((a, s) => a + (s.sequence.logRatio - mean) ** 2, 0) / 2);
    assert.ok(
      Math.abs(summary.logRatio.mean - mean) < 1e-9 &&
        Math.abs(summary.logRatio.standardError! - sd / Math.sqrt(3)) < 1e-9,
    );
    // the mix: α = 1 draws the teacher's tokens, α = 0 the student's (same seeds)
    const fromTeacher = await generate(teacher, tokenizer, promptIds, options);
    const mixAll = await generate({ teacher, student, alpha: 1 }, tokenizer, promptIds, options);
    const mixNone = await generate({ teacher, student, alpha: 0 }, tokenizer, promptIds, options);
    assert.deepEqual(
      mixAll.samples.map((s) => s.ids),
      fromTeacher.samples.map((s) => s.ids),
    );
    assert.deepEqual(
      mixNone.samples.map((s) => s.ids),
      generated.samples.map((s) => s.ids),
    );
    const half = await generate({ teacher, student, alpha: 0.5 }, tokenizer, promptIds, options);
    assert.notDeepEqual(
      half.samples.map((s) => s.ids),
      generated.samples.map((s) => s.ids),
      'a real mix draws other tokens',
    );
  } finally {
    await runner.release();
    await teacher.release();
    await student.release();
  }
});

test('distill-lens sample: JSON with rows, sequence values and the summary', () => {
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'distill-lens.js');
  const { teacher, student } = demoPair();
  const sample = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [bin, 'sample', '--teacher', teacher, '--student', student, '--prompt', 'export const', ...args],
      { encoding: 'utf8' },
    );
  const r = sample('--from', 'mix', '--samples', '2', '--max-new-tokens', '6', '--format', 'json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.from, 'mix');
  assert.equal(out.mixAlpha, 0.2);
  assert.equal(out.samples.length, 2);
  for (const s of out.samples) {
    assert.equal(s.rows.length, s.ids.length - s.promptTokens);
    for (const key of [
      'fkl',
      'rkl',
      'jsd',
      'akl',
      'k1',
      'k3',
      'logpTeacher',
      'logpStudent',
      'logRatio',
      'reward',
      'return',
      'normalizedReturn',
      'void',
    ])
      assert.ok(key in s.rows[0], key);
    assert.equal(s.sequence.length, s.rows.length);
  }
  assert.equal(out.summary.samples, 2);
  const table = sample('--max-new-tokens', '4');
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /--- sample 1 \(length, 4 tokens\): Σ log p\/q/);
  assert.match(table.stdout, /over 1 continuation\(s\)/);
  // the HTML report: each continuation's tokens painted, a chart each, the rows for the details
  const html = sample('--samples', '2', '--max-new-tokens', '5', '--format', 'html');
  assert.equal(html.status, 0, html.stderr);
  assert.equal((html.stdout.match(/<svg class="chart"/g) ?? []).length, 2);
  assert.equal((html.stdout.match(/class="tok[^"]*" data-sample/g) ?? []).length, 10);
  const data = JSON.parse(
    /<script type="application\/json" id="data">(.*?)<\/script>/s.exec(html.stdout)![1],
  );
  assert.equal(data.samples.length, 2);
  assert.ok('logRatio' in data.samples[0][0] && 'return' in data.samples[0][0]);
});

test("a prompt too long for the models keeps its end, cut at a token's start", async () => {
  const { student } = demoPair();
  const tokenizer = TextTokenizer.fromFolder(student);
  const text = 'export interface Queue<T> { push(item: T): void; pop(): T | undefined; }\n'.repeat(40);
  const all = tokenizer.encode(text);
  const { text: kept, ids } = promptEnd(tokenizer, text, 50);
  assert.ok(ids.length <= 50 && ids.length >= 40, `${ids.length} tokens kept of at most 50`);
  assert.ok(text.endsWith(kept), 'the kept prompt is the end of the text');
  assert.deepEqual(ids, tokenizer.encode(kept).ids, 'the kept text tokenised on its own');
  // the cut is where one of the full text's tokens started
  const cut = text.length - kept.length;
  assert.ok(
    all.spans.some(([start]) => start === cut),
    `the cut at ${cut} is a token start`,
  );
  // a prompt that fits is kept whole
  assert.deepEqual(promptEnd(tokenizer, 'export interface', 50).text, 'export interface');
});
