/**
 * The model process: requests answered across the process boundary, cancellation, and a
 * crash reported and recovered from on the next request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RuntimeClient, RuntimeCrashedError } from '../../src/host/runtimeClient';
import { CancelledError, ModelLoadError, UsageError } from '../../src/core/errors';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { DEMO_TEXT } from '../../src/models/builtInModels';
import { demoPair, tempDir } from '../helpers';
import { randomLlamaWeights } from '../reference/llamaHfReference';
import { writeSafetensors } from '../../src/models/safetensors';
import { ModelPool } from '../../src/models/modelPool';
import { SampleEngine } from '../../src/generate/sampleEngine';
import { DEFAULT_SAMPLING } from '../../src/generate/logitsProcessors';
import type { SampleRequest, StreamedToken } from '../../src/shared/generation';

const SCRIPT = path.resolve(__dirname, '..', '..', 'dist', 'runtime.js');
/**
 * How much the model process may grow while five more students (and, with a new temperature
 * each, five more metrics graphs) come and go: measured +1 to +8 MiB with the pool and the
 * fixed malloc threshold (up to +33 MiB without it), +47 MiB without eviction.
 */
const BOUND_MIB = 20;
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ';

function request(text: string, extra: object = {}) {
  const { teacher, student } = demoPair();
  return {
    teacher,
    student,
    text,
    options: DEFAULT_METRIC_OPTIONS,
    metric: 'fkl' as const,
    device: 'cpu' as const,
    maxTokens: 100_000,
    ...extra,
  };
}

test('the model process answers, reports progress, and keeps sessions across requests', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    const progress: string[] = [];
    const first = await client.inspect(request(STORY), { onProgress: (m) => progress.push(m) });
    assert.equal(first.rows.length, first.ids.length - 1);
    assert.ok(progress.some((m) => /teacher forward pass/.test(m)));
    const pid = client.pid;
    const second = await client.inspect(request(STORY));
    assert.equal(client.pid, pid, 'same process');
    assert.ok(second.timings.loadMs < first.timings.loadMs, 'models stay loaded');
    assert.deepEqual(
      second.rows.map((r) => r.fkl),
      first.rows.map((r) => r.fkl),
    );
    // errors keep their kind across the boundary
    await assert.rejects(
      client.inspect(request('')),
      (e: Error) => e instanceof UsageError && /text is empty/.test(e.message),
    );

    // a model error says which model it is about, and keeps that across the process boundary
    await assert.rejects(
      client.inspect(request(STORY, { teacher: '/no/such/teacher' })),
      (e: Error) =>
        e instanceof ModelLoadError &&
        e.role === 'teacher' &&
        /^the teacher: model folder \/no\/such\/teacher does not exist/.test(e.message),
    );
  } finally {
    await client.dispose();
  }
});

test('cancellation stops a long request within the grace period; the same process stays usable', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    await client.inspect(request(STORY)); // load models first
    const pid = client.pid;
    const abort = new AbortController();
    const long = client.inspect(request(STORY.repeat(150), { window: 64 }), {
      onProgress: (m) => {
        if (/window 3\//.test(m)) abort.abort();
      },
      signal: abort.signal,
    });
    await assert.rejects(long, CancelledError);
    const after = await client.inspect(request(STORY));
    assert.ok(after.rows.length > 0);
    assert.equal(client.pid, pid, 'the request stopped by itself: the process was not killed and restarted');
  } finally {
    await client.dispose();
  }
});

test('a crash of the model process is reported, and the next request starts a new one', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    await client.inspect(request(STORY));
    const pid = client.pid!;
    const pending = client.inspect(request(STORY.repeat(150), { window: 64 }), {
      onProgress: (m) => {
        if (/window 2\//.test(m)) process.kill(pid, 'SIGKILL');
      },
    });
    await assert.rejects(
      pending,
      (e: Error) =>
        e instanceof RuntimeCrashedError &&
        /model process was killed \(out of memory\?\); it restarts on the next request/.test(e.message),
    );
    const again = await client.inspect(request(STORY));
    assert.notEqual(client.pid, pid);
    assert.ok(again.rows.length > 0);
  } finally {
    await client.dispose();
  }
});

test('memory stays bounded: eight students in turn keep at most three models loaded', async () => {
  const { teacher, student } = demoPair();
  // eight different students: the built-in student with one weight byte changed in each
  const dir = tempDir();
  const students = Array.from({ length: 8 }, (_, i) => {
    const folder = path.join(dir, `student-${i}`);
    fs.cpSync(student, folder, { recursive: true });
    const file = path.join(folder, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 2 - 2 * i] ^= 0x01; // a float16 weight's lowest mantissa bit
    fs.writeFileSync(file, bytes);
    return folder;
  });
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    const rss: number[] = [];
    for (const s of students) {
      const r = await client.inspect({
        ...request(STORY),
        teacher,
        student: s,
        options: { ...DEFAULT_METRIC_OPTIONS, temperature: 1 + rss.length / 10 },
      });
      assert.ok(r.rows.length > 0);
      const stats = await client.stats();
      assert.ok(stats.loadedModels <= 3, `${stats.loadedModels} models loaded`);
      assert.ok(
        stats.metricsSessions <= 2,
        `${stats.metricsSessions} metrics sessions open (a new temperature each time)`,
      );
      rss.push(stats.rssBytes);
    }
    const MiB = 1 << 20;
    console.log(
      `model process RSS after each student (MiB): ${rss.map((b) => (b / MiB).toFixed(0)).join(' ')}`,
    );
    // Once the pool is full (third student), loading five more may not grow the process by
    // more than the bound: a leak of one model per student would add far more.
    const growth = rss[7] - rss[2];
    assert.ok(
      growth < BOUND_MIB * MiB,
      `grew ${(growth / MiB).toFixed(0)} MiB from the 3rd to the 8th student (bound ${BOUND_MIB} MiB)`,
    );
  } finally {
    await client.dispose();
  }
});

test('Cancel while a large checkpoint is hashed and built: the same process stops, and no half-built model is left', async () => {
  // a Llama-shaped checkpoint of about 320 MB (80 M float32 weights) with the built-in tokenizer:
  // hashing, reading, building and writing it takes seconds, longer than the 2 s kill fallback
  const dir = tempDir();
  const big = path.join(dir, 'big-student');
  fs.mkdirSync(big);
  const c = {
    hidden_size: 1024,
    intermediate_size: 2816,
    num_hidden_layers: 6,
    num_attention_heads: 16,
    num_key_value_heads: 16,
    vocab_size: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
  };
  const weights = randomLlamaWeights(c, () => 0.5); // constant values: only the size matters here
  delete weights['lm_head.weight'];
  writeSafetensors(path.join(big, 'model.safetensors'), weights);
  fs.writeFileSync(
    path.join(big, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      max_position_embeddings: 256,
      ...c,
    }),
  );
  fs.copyFileSync(path.join(demoPair().student, 'tokenizer.json'), path.join(big, 'tokenizer.json'));
  const cache = path.join(dir, 'cache');
  const client = new RuntimeClient({ script: SCRIPT, env: { DISTILL_LENS_CACHE: cache } });
  try {
    await client.inspect(request(STORY)); // the process is up with the built-in pair
    const pid = client.pid;
    const builtBefore = fs.readdirSync(path.join(cache, 'built'));
    const abort = new AbortController();
    const pending = client.inspect(
      { ...request(STORY), student: big },
      {
        signal: abort.signal,
        onProgress: (m) => {
          if (/building the ONNX graph/.test(m)) abort.abort();
        },
      },
    );
    await assert.rejects(pending, CancelledError);
    const stats = await client.stats();
    assert.equal(stats.pid, pid, 'the process saw the Cancel itself: it was not killed and restarted');
    assert.deepEqual(
      fs.readdirSync(path.join(cache, 'built')),
      builtBefore,
      'no built model and no temporary folder left',
    );
  } finally {
    await client.dispose();
  }
});

test('distillation takes the teacher the model process already holds, and releases what it opened', async () => {
  const { teacher, student } = demoPair();
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    await client.inspect(request(DEMO_TEXT)); // teacher and student now loaded
    const loaded = (await client.stats()).loadedModels;
    const messages: string[] = [];
    const record = await client.distill(
      {
        teacher,
        student,
        data: { documents: [{ source: 'selection', text: DEMO_TEXT }] },
        loss: { key: 'fkl', temperature: 1 },
        steps: 2,
        lr: 1e-3,
        batchSize: 1,
        seqLen: 32,
        seed: 1,
        out: path.join(tempDir(), 'out'),
      },
      { onProgress: (m) => messages.push(m) },
    );
    assert.equal(record.lossCurve.length, 2);
    // a model the pool loads reports "loading <spec>"; the teacher is already there
    assert.ok(!messages.some((m) => m.startsWith(`loading ${teacher}`)), 'the teacher was not loaded again');
    assert.equal((await client.stats()).loadedModels, loaded, 'nothing more stays loaded after the run');
  } finally {
    await client.dispose();
  }
});

test('sampling in the model process streams each token, scores the continuations as in-process sampling does, and cancels', async () => {
  const { teacher, student } = demoPair();
  const sampleRequest: SampleRequest = {
    teacher,
    student,
    prompt: 'export interface',
    from: 'mix',
    mixAlpha: 0.2,
    sampling: { ...DEFAULT_SAMPLING, temperature: 0.9 },
    maxNewTokens: 12,
    samples: 2,
    seed: 5,
    stop: [],
    voidThreshold: 1e-3,
    metrics: DEFAULT_METRIC_OPTIONS,
    device: 'cpu',
  };
  const client = new RuntimeClient({ script: SCRIPT });
  const pool = new ModelPool({ capacity: 2 });
  const local = new SampleEngine(pool);
  try {
    const streamed: StreamedToken[] = [];
    const remote = await client.sample(sampleRequest, { onToken: (t) => streamed.push(t) });
    // every token arrived as it was chosen, in order per continuation
    for (const [b, s] of remote.samples.entries())
      assert.deepEqual(
        streamed.filter((t) => t.sample === b).map((t) => t.token.id),
        s.ids.slice(s.promptTokens),
      );
    const here = await local.run(sampleRequest);
    assert.deepEqual(
      remote.samples.map((s) => s.ids),
      here.samples.map((s) => s.ids),
      'the same seed, the same continuations',
    );
    assert.deepEqual(
      remote.samples.map((s) => s.sequence),
      here.samples.map((s) => s.sequence),
    );
    assert.equal(remote.summary.samples, 2);
    // Cancel during a long generation: refused with CancelledError, the process stays usable
    const abort = new AbortController();
    const long = client.sample(
      { ...sampleRequest, maxNewTokens: 200, samples: 4 },
      { signal: abort.signal, onToken: () => abort.abort() },
    );
    await assert.rejects(long, (e: Error) => e instanceof CancelledError);
    const again = await client.sample({ ...sampleRequest, samples: 1, maxNewTokens: 3 });
    assert.equal(again.samples[0].tokens.length, 3);
  } finally {
    await local.dispose();
    await pool.dispose();
    await client.dispose();
  }
});
