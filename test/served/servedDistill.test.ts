/**
 * Word-level distillation with a served teacher (the fake vLLM server computing from the
 * built-in teacher): the same buckets as the same teacher run here with --teacher-top-k, so the
 * same loss at every step; held-out numbers over the buckets (no larger than the exact ones)
 * and labelled; a second run asks the server nothing new (the disk cache); what a served
 * teacher cannot do is refused by name; Cancel stops a run at once and writes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDistillation } from '../../src/train/distill';
import { builtInPair } from '../../src/models/builtInModels';
import { CancelledError, UsageError } from '../../src/core/errors';
import type { DistillRequest } from '../../src/shared/protocol';
import { tempDir } from '../helpers';
import { startFakeServer } from './fakeServer';

// the served answers' cache goes under DISTILL_LENS_CACHE (this file runs in its own process)
process.env.DISTILL_LENS_CACHE = tempDir('distill-lens-served-cache-');
const { teacher, student } = builtInPair();

const DECLARATIONS = Array.from(
  { length: 12 },
  (_, i) =>
    `/** Returns the ${['first', 'last', 'largest', 'smallest'][i % 4]} item of the list, or undefined when it is empty. */\ndeclare function pick${i}<T>(items: readonly T[]): T | undefined;\n`,
).join('\n');

function request(teacherSpec: string, extra: Partial<DistillRequest> = {}): DistillRequest {
  const data = path.join(tempDir(), 'declarations.ts');
  fs.writeFileSync(data, DECLARATIONS);
  return {
    teacher: teacherSpec,
    student,
    data: { path: data },
    out: path.join(tempDir(), 'out'),
    loss: { key: 'fkl', temperature: 1 },
    steps: 6,
    lr: 2e-3,
    batchSize: 2,
    seqLen: 48,
    seed: 1,
    teacherTopK: 8,
    ...extra,
  };
}

test('a served teacher trains exactly as the same teacher here with --teacher-top-k; held-out over its buckets; a second run is answered from the cache', async () => {
  const server = await startFakeServer(teacher, { protocol: 'vllm' });
  try {
    const spec = `openai+${server.url}#demo-teacher`;
    const local = await runDistillation(request(teacher));
    const served = await runDistillation(request(spec));
    assert.equal(served.lossCurve.length, local.lossCurve.length);
    served.lossCurve.forEach((p, i) =>
      assert.ok(
        Math.abs(p.loss - local.lossCurve[i].loss) < 1e-5 * (1 + p.loss),
        `step ${p.step}: ${p.loss} vs ${local.lossCurve[i].loss}`,
      ),
    );
    assert.equal(served.heldOut.teacherSupport, 'top-8+rest');
    assert.equal(local.heldOut.teacherSupport, undefined, 'a local teacher’s held-out numbers are exact');
    for (const when of ['before', 'after'] as const) {
      assert.ok(
        served.heldOut[when].fkl <= local.heldOut[when].fkl + 1e-6,
        `${when}: bucketed fkl is a lower bound`,
      );
      assert.ok(served.heldOut[when].fkl > 0);
    }
    assert.ok(served.messages.some((m) => /the teacher is served \(vLLM's prompt_logprobs\)/.test(m)));
    const runJson = fs.readFileSync(path.join(served.out, 'run.json'), 'utf8');
    assert.ok(runJson.includes('"teacherSupport": "top-8+rest"'));

    const asked = server.requests.filter((r) => r.path === '/v1/completions').length;
    assert.ok(asked > 2, `the first served run asked for its windows (${asked} requests)`);
    const again = await runDistillation(request(spec));
    const askedAgain = server.requests.filter((r) => r.path === '/v1/completions').length - asked;
    assert.equal(askedAgain, 1, 'only the protocol probe: every window from the cache');
    assert.deepEqual(
      again.lossCurve.map((p) => p.loss),
      served.lossCurve.map((p) => p.loss),
    );
  } finally {
    await server.close();
  }
});

test("onpolicy with a served teacher: the rewards are its log p of the student's tokens, as the same teacher run here gives them; the sampled held-out is Σ log p − log q", async () => {
  const server = await startFakeServer(teacher, { protocol: 'vllm' });
  try {
    const onpolicy = (teacherSpec: string): DistillRequest =>
      request(teacherSpec, {
        method: 'onpolicy',
        generation: { maxNewTokens: 8, promptTokens: 16 },
        steps: 2,
        teacherTopK: undefined,
        out: path.join(tempDir(), 'onpolicy'),
      });
    const local = await runDistillation(onpolicy(teacher));
    const served = await runDistillation(onpolicy(`openai+${server.url}#demo-teacher`));
    const rollouts = (out: string) =>
      fs
        .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    // the first step samples from the same student with the same seeds: the same tokens, scored alike
    const [a, b] = [rollouts(local.out), rollouts(served.out)].map((r) => r.filter((x) => x.step === 1));
    assert.ok(a.length > 0 && a.length === b.length);
    a.forEach((x, i) => {
      assert.deepEqual(b[i].ids, x.ids);
      x.logpTeacher.forEach((lp: number, t: number) => {
        assert.ok(
          Math.abs(b[i].logpTeacher[t] - lp) < 1e-4 * (1 + Math.abs(lp)),
          `log p ${b[i].logpTeacher[t]} vs ${lp}`,
        );
        assert.ok(Math.abs(b[i].advantages[t] - x.advantages[t]) < 1e-4 * (1 + Math.abs(lp)));
      });
      assert.deepEqual(b[i].reverseKl, [], 'no per-token KL without the whole distribution');
    });
    // before training both evaluate the same student on the same completions
    const [ls, ss] = [local.sampledHeldOut!.before, served.sampledHeldOut!.before];
    assert.ok(Math.abs(ss.teacherLogp - ls.teacherLogp) < 1e-4 * (1 + Math.abs(ls.teacherLogp)));
    assert.ok(Number.isNaN(ss.reverseKl) && Number.isFinite(ss.spanLogRatio));
    assert.equal(
      served.heldOut.teacherSupport,
      `top-19+rest`,
      'the teacher-forced held-out over its buckets',
    );
    assert.ok(
      served.messages.some((m) =>
        /the rewards are its log p of the student's sampled tokens \(exact\)/.test(m),
      ),
    );
  } finally {
    await server.close();
  }
});

for (const protocol of ['vllm', 'sglang', 'openai'] as const) {
  test(`seqkd with a served teacher (${protocol}): the server samples the completions (its EOS kept), their log p are the teacher's, the student learns them`, async () => {
    // every completion stops at an EOS after 6 tokens: vLLM lists it, this SGLang leaves it out
    const server = await startFakeServer(teacher, { protocol, eosAfter: 6 });
    try {
      const record = await runDistillation(
        request(`openai+${server.url}#demo-teacher`, {
          method: 'seqkd',
          loss: { key: 'ce', temperature: 1 },
          generation: { maxNewTokens: 12, promptTokens: 16, sampling: { temperature: 0.7 } as never },
          steps: 30,
          lr: 1e-3,
          mode: { kind: 'full' },
          teacherTopK: undefined,
          out: path.join(tempDir(), 'seqkd'),
        }),
      );
      const rollouts = fs
        .readFileSync(path.join(record.out, 'rollouts.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(rollouts.length, server.samples.length, 'one rollout per completion the server sampled');
      const eos = JSON.parse(fs.readFileSync(path.join(teacher, 'config.json'), 'utf8')).eos_token_id;
      for (const [i, r] of rollouts.entries()) {
        const sampled = server.samples[i];
        // the server's ids exactly; the EOS it stopped at kept even where its answer leaves it out
        assert.deepEqual(r.ids, [...sampled.prompt, ...sampled.completion]);
        assert.equal(r.finish === 'eos', sampled.completion.at(-1) === eos);
        const rows = await server.logSoftmax(r.ids);
        r.logpTeacher.forEach((lp: number, t: number) => {
          const want = rows[r.promptTokens + t - 1][r.ids[r.promptTokens + t]];
          assert.ok(Math.abs(lp - want) < 1e-9, `log p ${lp} vs ${want}`);
        });
      }
      assert.ok(rollouts.every((r) => r.finish === 'eos' && r.ids.at(-1) === eos));
      assert.equal(record.heldOut.teacherSupport, 'top-19+rest');
      assert.ok(record.messages.some((m) => /it samples the completions/.test(m)));
      assert.ok(
        record.heldOut.after.studentPerplexity < record.heldOut.before.studentPerplexity,
        `the student learns the teacher's completions: perplexity on held-out ones ${record.heldOut.before.studentPerplexity} → ${record.heldOut.after.studentPerplexity}`,
      );
    } finally {
      await server.close();
    }
  });
}

test('a served teacher: gkd and minillm, feature distillation and T ≠ 1 are refused by name; Cancel stops a run and writes nothing', async () => {
  const server = await startFakeServer(teacher, { protocol: 'sglang', rateLimited: 1000, retryAfter: 30 });
  try {
    const spec = `openai+${server.url}#demo-teacher`;
    await assert.rejects(
      runDistillation(request(spec, { method: 'gkd', loss: { key: 'gjsd', temperature: 1 } })),
      (e: Error) =>
        e instanceof UsageError &&
        /--method gkd with a served teacher is not built: it needs the teacher's whole distribution at every sampled position/.test(
          e.message,
        ),
    );
    await assert.rejects(
      runDistillation(
        request(spec, { method: 'minillm', loss: { key: 'fkl', temperature: 1 }, teacherTopK: undefined }),
      ),
      /--method minillm with a served teacher is not built: it needs the teacher's whole distribution at every sampled position and samples from a mix with it/,
    );
    await assert.rejects(
      runDistillation(request(spec, { feature: { loss: 'mse', layers: 'auto', weight: 1 } })),
      /feature distillation needs the teacher's hidden states/,
    );
    await assert.rejects(
      runDistillation(request(spec, { loss: { key: 'fkl', temperature: 2 } })),
      /--temperature 2 cannot be computed from its top K/,
    );
    // the server keeps answering 429 with Retry-After: 30; Cancel ends the wait at once
    const abort = new AbortController();
    const req = request(spec);
    const t0 = performance.now();
    setTimeout(() => abort.abort(), 500);
    await assert.rejects(
      runDistillation(req, { signal: abort.signal }),
      (e: Error) => e instanceof CancelledError,
    );
    assert.ok(performance.now() - t0 < 10_000, 'cancelled without waiting out the rate limit');
    assert.ok(!fs.existsSync(req.out), 'nothing written');
  } finally {
    await server.close();
  }
});
