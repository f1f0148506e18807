/**
 * A teacher served over HTTP, against the fake vLLM and SGLang servers (test/served/fakeServer):
 * what the client reads per position equals the server's own float64 log-softmax, and the
 * bucketed metrics from it equal those of the same model run here restricted to the same
 * buckets; then the failures a real server gives: a refused connection, a refused key, rate
 * limits with Retry-After, answers cut off, a different tokenizer, a server that is neither.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ServedTeacher, parseServedTeacher } from '../../src/models/servedTeacher';
import { bucketedRow, type ServedTeacherRow } from '../../src/core/bucketedRows';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { builtInPair, DEMO_TEXT } from '../../src/models/builtInModels';
import { TextTokenizer } from '../../src/models/tokenizer';
import { LanguageModel } from '../../src/models/languageModel';
import { resolveModel } from '../../src/models/modelSource';
import { ModelLoadError } from '../../src/core/errors';
import { startFakeServer, type FakeServerOptions } from './fakeServer';
import { pruneCache } from '../../src/train/servedTargets';
import { tempDir } from '../helpers';

const { teacher, student } = builtInPair();
const K = 8;

async function withServer<T>(
  o: FakeServerOptions,
  run: (url: string, s: Awaited<ReturnType<typeof startFakeServer>>) => Promise<T>,
): Promise<T> {
  const server = await startFakeServer(teacher, o);
  try {
    return await run(server.url, server);
  } finally {
    await server.close();
  }
}

const spec = (url: string) => parseServedTeacher(`openai+${url}#demo-teacher`)!;

test('openai+http://host/v1#model names a served teacher; anything else does not', () => {
  assert.deepEqual(parseServedTeacher('openai+http://gpu-box:8000/v1/#meta-llama/Llama-3.1-70B'), {
    baseUrl: 'http://gpu-box:8000/v1',
    model: 'meta-llama/Llama-3.1-70B',
  });
  assert.equal(parseServedTeacher('http://gpu-box:8000/v1'), undefined, 'no scheme prefix');
  assert.equal(parseServedTeacher('openai+http://gpu-box:8000/v1'), undefined, 'no model');
  assert.equal(parseServedTeacher('models/teacher'), undefined);
});

test('a served teacher where a model must run here (a student, generation) is refused, saying what it can do', async () => {
  await assert.rejects(
    resolveModel('openai+http://gpu-box:8000/v1#big'),
    /is a served teacher: it scores text \(analysis, word-level distillation\) but does not run here/,
  );
});

for (const protocol of ['vllm', 'sglang'] as const) {
  test(`${protocol}: each position's top ${K} and actual token as the server computes them; bucketed metrics equal a local teacher's over the same buckets`, async () => {
    const ids = TextTokenizer.fromFolder(teacher).encode(DEMO_TEXT).ids.slice(0, 48);
    await withServer({ protocol }, async (url, server) => {
      const served = new ServedTeacher(spec(url));
      assert.equal(await served.detect(), protocol);
      await served.checkTokenizer(
        DEMO_TEXT.slice(0, 200),
        TextTokenizer.fromFolder(student).encode(DEMO_TEXT.slice(0, 200)).ids,
      );
      const rows = await served.promptLogprobs(ids, K);
      assert.equal(rows.length, ids.length - 1);

      // the local teacher, restricted to the same buckets: its K most probable ids and the target
      const local = await server.logSoftmax(ids);
      const expected: ServedTeacherRow[] = ids.slice(1).map((y, r) => {
        const row = local[r];
        const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
        return {
          targetLogp: row[y],
          ...(protocol === 'vllm' ? { targetRank: order.indexOf(y) + 1 } : {}),
          top: order.slice(0, K).map((id) => ({ id, logp: row[id] })),
        };
      });
      assert.deepEqual(rows, expected, 'the served rows are the server-side numbers, exactly');

      const lm = await LanguageModel.open(await resolveModel(student), 'cpu');
      const logits = await lm.forward(ids);
      await lm.release();
      const V = logits.vocab;
      const data = logits.data as Float32Array;
      const decode = (id: number) => String(id);
      for (let r = 0; r < rows.length; r++) {
        const at = { index: r + 1, target: ids[r + 1], text: '', start: 0, end: 0, decode };
        const studentRow = data.subarray(r * V, (r + 1) * V);
        const remote = bucketedRow(rows[r], studentRow, DEFAULT_METRIC_OPTIONS, at);
        const here = bucketedRow(expected[r], studentRow, DEFAULT_METRIC_OPTIONS, at);
        assert.deepEqual(remote, here, `row ${r}`);
      }
    });
  });
}

test('a refused connection, a refused key and a server that speaks none of the three protocols are said by name, at once', async () => {
  // a port nobody listens on
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(
    new ServedTeacher(spec(`http://127.0.0.1:${port}/v1`)).detect(),
    (e: Error) =>
      e instanceof ModelLoadError &&
      /cannot reach the teacher at .* \(ECONNREFUSED\): is the server running/.test(e.message),
  );

  await withServer({ protocol: 'vllm', apiKey: 'sesame' }, async (url) => {
    await assert.rejects(
      new ServedTeacher(spec(url)).detect(),
      /refused a request without an API key \(HTTP 401\): set DISTILL_LENS_TEACHER_API_KEY/,
    );
    await assert.rejects(
      new ServedTeacher(spec(url), { apiKey: 'wrong' }).detect(),
      /refused the API key \(HTTP 401\)/,
    );
    assert.equal(await new ServedTeacher(spec(url), { apiKey: 'sesame' }).detect(), 'vllm');
  });

  // a plain web server: every route is 404
  const plain = http.createServer((_, res) => res.writeHead(404).end('no'));
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/v1`;
    await assert.rejects(
      new ServedTeacher(spec(url)).detect(),
      /answers neither vLLM's prompt_logprobs, SGLang's \/generate with return_logprob nor the OpenAI completions API's echo with logprobs/,
    );
  } finally {
    await new Promise<void>((resolve) => plain.close(() => resolve()));
  }
});

test('rate limits are waited out (Retry-After), cut-off answers asked again; a server that keeps failing is said', async () => {
  const ids = TextTokenizer.fromFolder(teacher).encode(DEMO_TEXT).ids.slice(0, 16);
  await withServer({ protocol: 'vllm', rateLimited: 2, retryAfter: 1 }, async (url, server) => {
    const t0 = performance.now();
    const rows = await new ServedTeacher(spec(url), { backoffMs: 10 }).promptLogprobs(ids, K);
    assert.equal(rows.length, ids.length - 1);
    // two 429s with Retry-After: 1, then the answers
    assert.ok(server.requests[2].at - server.requests[0].at >= 1900, 'waited Retry-After each time');
    assert.ok(performance.now() - t0 >= 1900);
  });
  await withServer({ protocol: 'sglang', cutOff: 2 }, async (url) => {
    const rows = await new ServedTeacher(spec(url), { backoffMs: 10 }).promptLogprobs(ids, K);
    assert.equal(rows.length, ids.length - 1, 'the third answer is whole');
  });
  await withServer({ protocol: 'sglang', cutOff: 100 }, async (url) => {
    await assert.rejects(
      new ServedTeacher(spec(url), { backoffMs: 1, retries: 2 }).promptLogprobs(ids, K),
      /sent an answer that is cut off or not JSON/,
    );
  });
});

test('a served teacher whose tokenizer differs from the student’s is refused, with both tokenizations', async () => {
  for (const protocol of ['vllm', 'sglang'] as const)
    await withServer({ protocol, idShift: 1 }, async (url) => {
      const probe = 'interface Queue';
      const local = TextTokenizer.fromFolder(student).encode(probe).ids;
      await assert.rejects(
        new ServedTeacher(spec(url)).checkTokenizer(probe, local),
        (e: Error) =>
          e instanceof ModelLoadError &&
          e.message.includes('tokenizes differently from the student') &&
          e.message.includes(`[${local.join(', ')}] here`),
      );
    });
});

test("the served answers' cache: over its size, the least recently used answers go until it is at 80%", () => {
  const dir = tempDir('distill-lens-served-prune-');
  const day = 86_400_000;
  // ten 1000-byte answers, the first used longest ago
  for (let i = 0; i < 10; i++) {
    const file = path.join(dir, `${i}.json`);
    fs.writeFileSync(file, 'x'.repeat(1000));
    const t = new Date(Date.now() - (10 - i) * day);
    fs.utimesSync(file, t, t);
  }
  fs.writeFileSync(path.join(dir, 'other.txt'), 'kept: not an answer');
  assert.equal(pruneCache(dir, 20_000), 0, 'under the limit: nothing deleted');
  // answer 0 was used again just now: the oldest are 1, 2, 3 … then
  const now = new Date();
  fs.utimesSync(path.join(dir, '0.json'), now, now);
  assert.equal(pruneCache(dir, 9_000), 3, 'down to 7200 bytes: three answers');
  assert.deepEqual(fs.readdirSync(dir).sort(), [
    '0.json',
    '4.json',
    '5.json',
    '6.json',
    '7.json',
    '8.json',
    '9.json',
    'other.txt',
  ]);
  assert.equal(pruneCache(path.join(dir, 'missing'), 1), 0, 'no cache folder: nothing to do');
});
