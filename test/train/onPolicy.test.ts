/**
 * On-policy distillation: one window per rollout with the old log q and the advantage on the
 * position that predicts each completion token; end to end on the stories260k pair, the
 * student's sampled reverse KL on held-out prompts falls by at least 30% in 200 steps; the
 * rollouts of the first step were sampled from the original student (their old log q is the
 * original student's, from a float64 log-softmax of its own logits), their teacher log p is
 * the teacher's, and their advantages are the difference; bad flags are refused by name. GKD:
 * one draw per step between the student's completions and the data's or the teacher's, about
 * λ of the steps on-policy, the data's completions tokenised with their prompt, and the same
 * 30% fall.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDistillation } from '../../src/train/distill';
import { datasetCompletion, policyWindow, type PolicyRollout } from '../../src/train/onPolicy';
import { TextTokenizer } from '../../src/models/tokenizer';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { CancelledError, InputError, UsageError } from '../../src/core/errors';
import { demoPair, storiesPair, tempDir, needs } from '../helpers';
import { storiesText } from './storiesText';
import { logSoftmaxAt } from '../reference/kdReference';
import type { DistillRequest } from '../../src/shared/protocol';

test('a policy window: the completion tokens are the targets, each with its old log q and advantage', () => {
  const r = {
    ids: [1, 7, 8, 20, 21, 2],
    promptTokens: 3,
    oldLogpStudent: [-1, -2, -3],
    advantages: [0.5, -0.25, 1],
    w: [1.5, 1, 0.5],
  } as PolicyRollout;
  const w = policyWindow(r, 8);
  assert.deepEqual(w.ids, [1, 7, 8, 20, 21, 2, 0, 0]);
  assert.deepEqual(w.mask, [0, 0, 1, 1, 1, 0, 0, 0]);
  assert.deepEqual(w.targets, [0, 0, 20, 21, 2, 0, 0, 0]);
  assert.deepEqual(w.oldLogp, [0, 0, -1, -2, -3, 0, 0, 0]);
  assert.deepEqual(w.advantages, [0, 0, 0.5, -0.25, 1, 0, 0, 0]);
  assert.deepEqual(w.weights, [1, 1, 1.5, 1, 0.5, 1, 1, 1], 'w on the completion, 1 elsewhere');
  assert.throws(() => policyWindow(r, 5), /do not fit --seq-len 5/);
});

function promptsFile(count: number): string {
  const file = path.join(tempDir(), 'prompts.jsonl');
  const lines = storiesText(count, 3).map((s) => JSON.stringify({ prompt: s.slice(0, s.indexOf('.') + 1) }));
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

function request(out: string, extra: Partial<DistillRequest> = {}): DistillRequest {
  const { teacher, student } = storiesPair();
  return {
    teacher,
    student,
    data: { path: promptsFile(60) },
    out,
    method: 'onpolicy',
    loss: { key: 'fkl', temperature: 1 },
    generation: { maxNewTokens: 48 },
    steps: 200,
    lr: 2e-3,
    batchSize: 4,
    seqLen: 80,
    seed: 1,
    ...extra,
  };
}

test(
  "onpolicy: the student's sampled reverse KL on held-out prompts falls by at least 30% in 200 steps; rollouts recorded exactly",
  needs('stories260k'),
  async () => {
    const out = path.join(tempDir(), 'onpolicy');
    const progress = new Map<number, { reward?: number; kl?: number }>();
    const record = await runDistillation(request(out), {
      onProgress: (p) => {
        if (p.phase === 'train') progress.set(p.step!, { reward: p.reward, kl: p.kl });
      },
    });
    const sampled = record.sampledHeldOut!;
    assert.ok(sampled, 'the sampled evaluation is recorded');
    assert.ok(
      sampled.after.reverseKl < 0.7 * sampled.before.reverseKl,
      `Σ reverse KL ${sampled.before.reverseKl} → ${sampled.after.reverseKl}`,
    );
    assert.equal(record.settings.method, 'onpolicy');
    const rollouts = fs
      .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rollouts.length, 200 * 4, 'one rollout per prompt per step');
    // each step's reward and KL, recomputed from its rollouts: mean r, and the mean of the
    // per-token exact KL(q‖p) (checked against a float64 computation below)
    for (const step of [1, 100, 200]) {
      const r = rollouts
        .filter((x) => x.step === step)
        .flatMap((x) => x.logpTeacher.map((lp: number, t: number) => lp - x.oldLogpStudent[t]));
      const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
      assert.ok(Math.abs(progress.get(step)!.reward! - mean(r)) < 1e-9, `step ${step} reward`);
      assert.ok(
        Math.abs(
          progress.get(step)!.kl! - mean(rollouts.filter((x) => x.step === step).flatMap((x) => x.reverseKl)),
        ) < 1e-9,
        `step ${step} KL`,
      );
    }
    for (const r of rollouts) {
      assert.equal(r.source, 'student');
      assert.equal(r.epochs, 1);
      r.advantages.forEach((a: number, t: number) =>
        assert.ok(Math.abs(a - (r.logpTeacher[t] - r.oldLogpStudent[t])) < 1e-12),
      );
      assert.ok(r.w.every((w: number) => w === 1));
    }
    // the first step's rollouts come from the original student; the teacher scored them
    const { teacher, student } = storiesPair();
    const original = await LanguageModel.open(await resolveModel(student), 'cpu');
    const teacherLm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
    try {
      for (const r of rollouts.filter((x) => x.step === 1)) {
        const q = await original.forward(r.ids);
        const p = await teacherLm.forward(r.ids);
        for (let t = 0; t < r.ids.length - r.promptTokens; t++) {
          const row = r.promptTokens - 1 + t;
          const id = r.ids[r.promptTokens + t];
          const lq = logSoftmaxAt(q.data as Float32Array, row, q.vocab, id);
          const lp = logSoftmaxAt(p.data as Float32Array, row, p.vocab, id);
          assert.ok(Math.abs(r.oldLogpStudent[t] - lq) < 1e-4, `old log q ${r.oldLogpStudent[t]} vs ${lq}`);
          assert.ok(Math.abs(r.logpTeacher[t] - lp) < 1e-4, `log p ${r.logpTeacher[t]} vs ${lp}`);
          // KL(q‖p) = Σ_v q(v)(log q(v) − log p(v)) over the whole vocabulary, in float64
          let kl = 0;
          for (let v = 0; v < q.vocab; v++) {
            const lqv = logSoftmaxAt(q.data as Float32Array, row, q.vocab, v);
            kl += Math.exp(lqv) * (lqv - logSoftmaxAt(p.data as Float32Array, row, p.vocab, v));
          }
          assert.ok(Math.abs(r.reverseKl[t] - kl) < 1e-4, `KL ${r.reverseKl[t]} vs ${kl}`);
        }
      }
    } finally {
      await original.release();
      await teacherLm.release();
    }
    // a later step samples from the updated student: its old log q is no longer the original's
    const late = rollouts.find((x) => x.step === 200)!;
    const q = await LanguageModel.open(await resolveModel(student), 'cpu');
    try {
      const logits = await q.forward(late.ids);
      const lq = logSoftmaxAt(
        logits.data as Float32Array,
        late.promptTokens - 1,
        logits.vocab,
        late.ids[late.promptTokens],
      );
      assert.ok(Math.abs(late.oldLogpStudent[0] - lq) > 1e-3, 'step 200 sampled from the trained student');
    } finally {
      await q.release();
    }
  },
);

test(
  'onpolicy refuses what it does not compute exactly, by name, and writes nothing',
  needs('stories260k'),
  async () => {
    const dir = tempDir();
    await assert.rejects(
      runDistillation(request(path.join(dir, 'a'), { generation: { sampling: { topK: 8 } as any } })),
      (e: Error) =>
        e instanceof UsageError &&
        /--method onpolicy samples from the student at --gen-temperature without truncation: --top-k is not built/.test(
          e.message,
        ),
    );
    await assert.rejects(
      runDistillation(request(path.join(dir, 'b'), { seqLen: 40 })),
      (e: Error) => e instanceof InputError && /do not fit --seq-len 40/.test(e.message),
    );
    await assert.rejects(
      runDistillation(request(path.join(dir, 'c'), { teacherTopK: 8 })),
      (e: Error) =>
        e instanceof UsageError && /--teacher-top-k is not built for --method onpolicy/.test(e.message),
    );
    for (const x of ['a', 'b', 'c']) assert.ok(!fs.existsSync(path.join(dir, x)));
  },
);

test(
  'sampling at --gen-temperature 0.8: old log q, rewards and w are of the distributions at T, the first ratio is 1',
  needs('stories260k'),
  async () => {
    const T = 0.8;
    const { teacher, student } = storiesPair();
    const original = await LanguageModel.open(await resolveModel(student), 'cpu');
    const teacherLm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
    try {
      for (const method of ['onpolicy', 'minillm'] as const) {
        const out = path.join(tempDir(), method);
        const record = await runDistillation(
          request(out, {
            method,
            steps: 1,
            generation: { maxNewTokens: 24, sampling: { temperature: T } as any },
          }),
        );
        const rollouts = fs
          .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        let advantageSum = 0;
        let tokens = 0;
        for (const r of rollouts) {
          const q = await original.forward(r.ids);
          const p = await teacherLm.forward(r.ids);
          for (let t = 0; t < r.ids.length - r.promptTokens; t++) {
            const row = r.promptTokens - 1 + t;
            const id = r.ids[r.promptTokens + t];
            const lqT = logSoftmaxAt(q.data as Float32Array, row, q.vocab, id, T);
            const lp = logSoftmaxAt(p.data as Float32Array, row, p.vocab, id);
            assert.ok(
              Math.abs(r.oldLogpStudent[t] - lqT) < 1e-4,
              `${method}: old log q at T ${r.oldLogpStudent[t]} vs ${lqT}`,
            );
            assert.ok(Math.abs(r.logpTeacher[t] - lp) < 1e-4, `${method}: the reward's log p at T = 1`);
            if (method === 'onpolicy') {
              assert.ok(Math.abs(r.advantages[t] - (lp - lqT)) < 1e-4, 'A = log p − log q_T');
              advantageSum += r.advantages[t];
              tokens++;
            } else {
              // w = q_T / ((1 − α)·q_T + α·p_T), both at the sampling temperature (LMOps); rewards ×2
              const lpT = logSoftmaxAt(p.data as Float32Array, row, p.vocab, id, T);
              assert.ok(Math.abs(r.logpTeacherAtT[t] - lpT) < 1e-4, "the teacher's log p at T");
              const w = Math.exp(lqT) / (0.8 * Math.exp(lqT) + 0.2 * Math.exp(lpT));
              assert.ok(Math.abs(r.w[t] - w) < 1e-4, `w ${r.w[t]} vs ${w}`);
              assert.ok(Math.abs(r.rewards[t] - 2 * (lp - lqT)) < 1e-3, 'r = (log p − log q_T) / 0.5');
            }
          }
        }
        if (method === 'onpolicy') {
          // θ = θ_old on the first step: the graph's log q_θ at T equals the sampler's, ratio 1,
          // so the loss is −mean(A) (a graph at another T would not give this)
          const loss = record.lossCurve[0].loss;
          assert.ok(
            Math.abs(loss + advantageSum / tokens) < 1e-3,
            `loss ${loss} vs −mean A ${-advantageSum / tokens}`,
          );
        }
      }
    } finally {
      await original.release();
      await teacherLm.release();
    }
  },
);

test("a dataset completion (gkd's off-policy steps): the prompt's tokens, then the completion's from the first token past the prompt", () => {
  const tokenizer = TextTokenizer.fromFolder(demoPair().student);
  const prompt = { text: 'export interface', completion: ' Queue<T> {}', source: 'x' };
  const d = datasetCompletion(tokenizer, prompt);
  const enc = tokenizer.encode(prompt.text + prompt.completion);
  assert.deepEqual(d.ids, enc.ids);
  assert.equal(tokenizer.decode(d.ids.slice(d.promptTokens)).trim(), 'Queue<T> {}');
  assert.equal(tokenizer.decode(d.ids.slice(0, d.promptTokens)).trim(), 'export interface');
});

test(
  "gkd: λ of the steps on the student's completions, the rest on the data's or the teacher's; sampled reverse KL falls ≥ 30% in 200 steps",
  needs('stories260k'),
  async () => {
    // half of the prompts come with the story's next sentence as their completion
    const file = path.join(tempDir(), 'gkd.jsonl');
    const lines = storiesText(60, 3).map((s, i) => {
      const first = s.indexOf('.') + 1;
      const second = s.indexOf('.', first) + 1;
      return JSON.stringify(
        i % 2
          ? { prompt: s.slice(0, first) }
          : { prompt: s.slice(0, first), completion: s.slice(first, second) },
      );
    });
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const out = path.join(tempDir(), 'gkd');
    const record = await runDistillation(
      request(out, { method: 'gkd', data: { path: file }, loss: { key: 'gjsd', temperature: 1 } }),
    );
    const sampled = record.sampledHeldOut!;
    assert.ok(
      sampled.after.reverseKl < 0.7 * sampled.before.reverseKl,
      `Σ reverse KL ${sampled.before.reverseKl} → ${sampled.after.reverseKl}`,
    );
    assert.equal((record.settings.generation as any).sampling.temperature, 0.9, "TRL's sampling temperature");
    const rollouts = fs
      .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const bySteps = new Map<number, Set<string>>();
    for (const r of rollouts) bySteps.set(r.step, (bySteps.get(r.step) ?? new Set()).add(r.source));
    // one draw per step: a step is all the student's, or none of it
    for (const sources of bySteps.values())
      assert.ok(!sources.has('student') || sources.size === 1, [...sources].join(', '));
    const studentSteps = [...bySteps.values()].filter((x) => x.has('student')).length;
    assert.ok(studentSteps >= 70 && studentSteps <= 130, `${studentSteps} of 200 steps on-policy (λ = 0.5)`);
    const tokenizer = TextTokenizer.fromFolder(storiesPair().student);
    const dataset = rollouts.filter((r) => r.source === 'dataset');
    const teacherWritten = rollouts.filter((r) => r.source === 'teacher');
    assert.ok(dataset.length > 0 && teacherWritten.length > 0, 'both off-policy sources');
    for (const r of dataset) assert.deepEqual(r.ids, tokenizer.encode(r.prompt + r.completion).ids);
    for (const r of rollouts.filter((x) => x.source === 'student'))
      assert.equal(r.oldLogpStudent.length, r.ids.length - r.promptTokens);
  },
);

test(
  'minillm: teacher-mixed rollouts reused for 4 PPO epochs, advantages whitened per collection; sampled reverse KL falls ≥ 30% in 200 steps',
  needs('stories260k'),
  async () => {
    const out = path.join(tempDir(), 'minillm');
    const record = await runDistillation(request(out, { method: 'minillm' }));
    const sampled = record.sampledHeldOut!;
    assert.ok(
      sampled.after.reverseKl < 0.7 * sampled.before.reverseKl,
      `Σ reverse KL ${sampled.before.reverseKl} → ${sampled.after.reverseKl}`,
    );
    const rollouts = fs
      .readFileSync(path.join(out, 'rollouts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rollouts.length, (200 / 4) * 4, 'a collection of 4 prompts every 4 steps');
    const byStep = new Map<number, any[]>();
    for (const r of rollouts) {
      assert.equal(r.source, 'mix');
      assert.equal(r.mixAlpha, 0.2);
      assert.equal(r.epochs, 4);
      assert.equal((r.step - 1) % 4, 0, 'collected at the first step of its epochs');
      byStep.set(r.step, [...(byStep.get(r.step) ?? []), r]);
      r.w.forEach((w: number, t: number) => {
        const q = Math.exp(r.oldLogpStudent[t]);
        const p = Math.exp(r.logpTeacher[t]);
        assert.ok(Math.abs(w - q / (0.2 * p + 0.8 * q)) < 1e-9 * Math.max(1, w), 'w = q / (α·p + (1 − α)·q)');
      });
      // rewards: (log p − log q) / 0.5, clipped to ±100
      r.rewards.forEach((x: number, t: number) =>
        assert.ok(
          Math.abs(x - Math.max(-100, Math.min(100, 2 * (r.logpTeacher[t] - r.oldLogpStudent[t])))) < 1e-9,
        ),
      );
    }
    // whitened over each collection's tokens: mean 0, unbiased variance 1
    for (const collection of byStep.values()) {
      const a = collection.flatMap((r) => r.advantages as number[]);
      const mean = a.reduce((s, v) => s + v, 0) / a.length;
      const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / (a.length - 1);
      assert.ok(Math.abs(mean) < 1e-9 && Math.abs(variance - 1) < 1e-6, `mean ${mean}, variance ${variance}`);
    }
    assert.equal((record.settings.minillm as any).ppoEpochs, 4);
  },
);

test('Cancel during an on-policy run stops it and writes nothing', needs('stories260k'), async () => {
  const out = path.join(tempDir(), 'cancelled');
  const abort = new AbortController();
  await assert.rejects(
    runDistillation(request(out, { method: 'minillm' }), {
      signal: abort.signal,
      onProgress: (p) => {
        if (p.phase === 'train' && (p.step ?? 0) >= 2) abort.abort();
      },
    }),
    (e: Error) => e instanceof CancelledError,
  );
  assert.ok(!fs.existsSync(out), 'no output folder');
});

test(
  "minillm's pre-training term (--lm-data): plain-text windows in the same batch add their term to the loss",
  needs('stories260k'),
  async () => {
    const dir = tempDir();
    const lm = path.join(dir, 'lm.txt');
    fs.writeFileSync(lm, storiesText(20, 9).join('\n\n'));
    const one = (out: string, minillm: object) =>
      runDistillation(request(path.join(dir, out), { method: 'minillm', steps: 1, minillm }));
    const without = await one('a', {});
    const withTerm = await one('b', { lmData: lm });
    // the same first collection (seeded); the pre-training term, a cross-entropy on text, is large
    const term = withTerm.lossCurve[0].loss - without.lossCurve[0].loss;
    assert.ok(term > 1, `the term adds ${term}`);
    const half = await one('c', { lmData: lm, lmCoef: 0.5 });
    assert.ok(
      Math.abs(half.lossCurve[0].loss - without.lossCurve[0].loss - term / 2) < 1e-3 * term,
      '--lm-coef scales it',
    );
    assert.deepEqual((withTerm.settings.policyLoss as any).pretrain, { kdRatio: 0.5, coef: 1 });
    await assert.rejects(one('d', { lmData: path.join(dir, 'missing.txt') }), /--lm-data .* does not exist/);
  },
);
