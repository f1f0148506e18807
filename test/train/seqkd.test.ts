/**
 * SeqKD end to end on the stories260k pair: the teacher samples completions of the data's
 * prompts once; rollouts.jsonl holds them, with the teacher's log-probability of each sampled
 * token (checked against a float64 log-softmax of the teacher's own logits); the student
 * trains on prompt + completion with only the completion as targets, and its perplexity on
 * held-out teacher completions falls; a second run reuses the rollouts without sampling;
 * bad rollouts and flags are refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDistillation } from '../../src/train/distill';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { InputError, UsageError } from '../../src/core/errors';
import { storiesPair, tempDir, needs } from '../helpers';
import { storiesText } from './storiesText';
import type { DistillRequest } from '../../src/shared/protocol';

/** Prompts: the first sentence of each story. */
function promptsFile(count: number): string {
  const file = path.join(tempDir(), 'prompts.jsonl');
  const lines = storiesText(count, 3).map((s) => JSON.stringify({ prompt: s.slice(0, s.indexOf('.') + 1) }));
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

function request(data: string, out: string, extra: Partial<DistillRequest> = {}): DistillRequest {
  const { teacher, student } = storiesPair();
  return {
    teacher,
    student,
    data: { path: data },
    out,
    method: 'seqkd',
    loss: { key: 'ce', temperature: 1 },
    generation: { maxNewTokens: 40, samplesPerPrompt: 2 },
    steps: 40,
    lr: 2e-3,
    batchSize: 4,
    seqLen: 64,
    seed: 3,
    ...extra,
  };
}

test(
  "seqkd: the teacher's completions, saved with its log-probabilities; the student learns them; reused by a later run",
  needs('stories260k'),
  async () => {
    const data = promptsFile(12);
    const dir = tempDir();
    const out = path.join(dir, 'seqkd');
    const record = await runDistillation(request(data, out));
    assert.equal(record.settings.method, 'seqkd');
    assert.deepEqual((record.data as any).prompts, 12);
    assert.deepEqual((record.data as any).rollouts, 24);

    // rollouts.jsonl: the prompt's own tokens, then the teacher's sampled completion
    const { teacher, student } = storiesPair();
    const tokenizer = TextTokenizer.fromFolder(student);
    const lines = fs
      .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 24);
    const lm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
    try {
      for (const r of lines) {
        assert.equal(r.source, 'teacher');
        const promptIds = tokenizer.encode(r.prompt).ids;
        assert.deepEqual(r.ids.slice(0, r.promptTokens), promptIds, 'the prompt as tokenised');
        const n = r.ids.length - r.promptTokens;
        assert.ok(n >= 1 && n <= 40);
        assert.equal(r.logpTeacher.length, n);
        if (r.finish === 'eos')
          assert.equal(r.ids[r.ids.length - 1], 2, "llama2.c's EOS ends the completion");
        // the teacher's log p of each sampled token: a float64 log-softmax of its logits
        const logits = await lm.forward(r.ids);
        const V = logits.vocab;
        const data32 = logits.data as Float32Array;
        for (let t = 0; t < n; t++) {
          const row = Array.from(data32.subarray((r.promptTokens - 1 + t) * V, (r.promptTokens + t) * V));
          const max = Math.max(...row);
          const lse = max + Math.log(row.reduce((a, z) => a + Math.exp(z - max), 0));
          const expected = row[r.ids[r.promptTokens + t]] - lse;
          assert.ok(
            Math.abs(r.logpTeacher[t] - expected) < 1e-4,
            `token ${t}: ${r.logpTeacher[t]} vs ${expected}`,
          );
        }
      }
    } finally {
      await lm.release();
    }

    // the student trained on the teacher's completions: it finds held-out ones more likely
    const { before, after } = record.heldOut;
    assert.ok(
      after.studentPerplexity < 0.9 * before.studentPerplexity,
      `perplexity ${before.studentPerplexity} → ${after.studentPerplexity}`,
    );

    // a later run trains on the same rollouts without sampling
    const again = path.join(dir, 'again');
    const reused = await runDistillation(
      request(data, again, { steps: 2, reuseRollouts: path.join(out, 'rollouts.jsonl') }),
    );
    assert.ok(reused.messages.some((m) => /not sampled again/.test(m)));
    assert.deepEqual(
      fs
        .readFileSync(path.join(again, 'rollouts.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).ids),
      lines.map((l) => l.ids),
    );

    // refused by name, before any work, and nothing written
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, JSON.stringify({ ids: [1, 5, 9999], promptTokens: 1 }) + '\n');
    await assert.rejects(
      runDistillation(request(data, path.join(dir, 'x1'), { reuseRollouts: bad })),
      (e: Error) => e instanceof InputError && /bad\.jsonl:1: token id 9999 is outside/.test(e.message),
    );
    await assert.rejects(
      runDistillation(request(data, path.join(dir, 'x2'), { method: 'word', reuseRollouts: bad })),
      (e: Error) => e instanceof UsageError && /--reuse-rollouts needs --method seqkd/.test(e.message),
    );
    await assert.rejects(
      runDistillation(
        request(data, path.join(dir, 'x3'), { generation: { sampling: { temperature: 0 } as any } }),
      ),
      (e: Error) => e instanceof UsageError && /--gen-temperature must be greater than 0/.test(e.message),
    );
    for (const x of ['x1', 'x2', 'x3']) assert.ok(!fs.existsSync(path.join(dir, x)), `${x} not written`);
  },
);
