/**
 * ONNX language models the project did not build (onnxruntime-genai's export: contrib
 * operators, float16, position_ids and empty past_key_values inputs), hub ids offline,
 * and long texts in windows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InspectEngine } from '../../src/inspect/inspectEngine';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { planWindows } from '../../src/core/windows';
import { ORTGENAI, storiesPair, needs } from '../helpers';

const request = (teacher: string, student: string, text: string) => ({ teacher, student, text, options: DEFAULT_METRIC_OPTIONS, metric: 'fkl' as const, device: 'cpu' as const, maxTokens: 4096 });

test('an onnxruntime-genai fp16 model runs: its inputs are filled and its logits are float16', needs('ortGenaiLlama'), async () => {
  const lm = await LanguageModel.open(await resolveModel(ORTGENAI), 'cpu');
  try {
    const logits = await lm.forward([1, 15043, 3186, 29892]);
    assert.equal(logits.type, 'float16');
    assert.equal(logits.vocab, 32000);
    assert.equal(logits.length, 4);
  } finally {
    await lm.release();
  }
});

test('the same fp16 model as teacher and student gives zero divergence, with the Llama 32k tokenizer', needs('ortGenaiLlama'), async () => {
  const engine = new InspectEngine();
  try {
    const text = 'Hello world, naïve café: 日本 😀!';
    const r = await engine.inspect(request(ORTGENAI, ORTGENAI, text));
    assert.equal(r.exactSpans, true);
    assert.equal(r.rows.length, r.ids.length - 1);
    for (const row of r.rows) {
      assert.ok(Math.abs(row.fkl) < 1e-12 && Math.abs(row.jsd) < 1e-12 && Math.abs(row.tvd) < 1e-12, `row ${row.index}`);
      assert.ok(row.teacher.rank >= 1 && row.teacher.rank <= 32000);
    }
    assert.ok(Math.abs(r.summary.teacherPerplexity - r.summary.studentPerplexity) < 1e-9);
  } finally {
    await engine.dispose();
  }
});

test('hub ids: refused without --allow-remote; offline, a clear message', async () => {
  await assert.rejects(resolveModel('Xenova/gpt2'), /not a local folder; to download it from the Hugging Face hub allow remote models/);
  const saved = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // nothing listens there: as good as offline
  try {
    await assert.rejects(resolveModel('Xenova/gpt2', { allowRemote: true }), /cannot reach the Hugging Face hub to download Xenova\/gpt2 \(offline\?\)/);
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  }
});

test('window plan: every token after the first scored once, with at least half a window of context', () => {
  for (const [length, context] of [[10, 16], [100, 16], [33, 32], [1000, 7]]) {
    const windows = planWindows(length, context);
    const scored: number[] = [];
    for (const w of windows) {
      assert.ok(w.end - w.start <= context);
      for (let i = w.scoreFrom; i < w.end; i++) {
        scored.push(i);
        if (w.start > 0) assert.ok(i - w.start >= Math.floor(context / 2), `token ${i} has ${i - w.start} tokens of context`);
      }
    }
    assert.deepEqual(scored, Array.from({ length: length - 1 }, (_, i) => i + 1));
  }
});

test('windowed analysis equals whole-text analysis where the windows see the same context', needs('stories260k'), async () => {
  const { teacher, student } = storiesPair();
  const engine = new InspectEngine();
  try {
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';
    const whole = await engine.inspect(request(teacher, student, text));
    const windowed = await engine.inspect({ ...request(teacher, student, text), window: 16 });
    assert.equal(windowed.rows.length, whole.rows.length);
    assert.ok(windowed.windows.length > 1);
    // the first window's rows have exactly the same context as in the whole text
    for (let i = 0; i < 15; i++) assert.ok(Math.abs(windowed.rows[i].fkl - whole.rows[i].fkl) < 1e-5);
    // later rows lose context, so some differ
    assert.ok(windowed.rows.slice(15).some((r, i) => Math.abs(r.fkl - whole.rows[15 + i].fkl) > 1e-3));
  } finally {
    await engine.dispose();
  }
});
