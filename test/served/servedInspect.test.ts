/**
 * inspect with a served teacher (the fake vLLM and SGLang servers computing from the built-in
 * teacher) against inspect with the same teacher run here: the exact numbers agree, the
 * divergences over the buckets never exceed the full ones, and with K = the vocabulary the
 * buckets are the distribution, so every metric agrees. Bad requests are refused by name.
 */
import { test } from 'node:test';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { METRIC_KEYS } from '../../src/core/metricKeys';
import { builtInPair, DEMO_TEXT } from '../../src/models/builtInModels';
import { renderHtmlReport } from '../../src/report/htmlReport';
import { toJsonReport } from '../../src/report/jsonReport';
import type { InspectRequest, InspectResult } from '../../src/shared/protocol';
import { inspectOnce } from '../helpers';
import { startFakeServer } from './fakeServer';

const { teacher, student } = builtInPair();
const TEXT = DEMO_TEXT.slice(0, 120);

const inspect = (extra: Partial<InspectRequest>): Promise<InspectResult> =>
  inspectOnce({ teacher, student, text: TEXT, ...extra });

const EXACT = ['k1', 'k2', 'k3', 'tckd', 'uncertainty'] as const;
const BOUNDED = ['fkl', 'rkl', 'jeffreys', 'jsd', 'gjsd', 'tvd', 'skl', 'srkl', 'nckd'] as const;

for (const protocol of ['vllm', 'sglang', 'openai'] as const) {
  test(`inspect with a served teacher (${protocol}): exact numbers as a local teacher's, divergences lower bounds, all equal when K is the vocabulary`, async () => {
    const local = await inspect({});
    const server = await startFakeServer(teacher, { protocol });
    try {
      const at = `openai+${server.url}#demo-teacher`;
      const top8 = await inspect({ teacher: at, teacherTopK: 8 });
      assert.equal(top8.teacherSupport, 'top-8+rest');
      assert.equal((toJsonReport(top8) as { teacherSupport: string }).teacherSupport, 'top-8+rest');
      // the HTML report says so at the top
      assert.match(
        renderHtmlReport(top8, DEMO_TEXT, 'fkl'),
        /id="teacher-support"><b>Served teacher, top-8\+rest<\/b>: the divergences are over its top tokens/,
      );
      assert.ok(top8.messages.some((m) => /lower bounds of the full-vocabulary values/.test(m)));
      assert.equal(top8.rows.length, local.rows.length);
      const close = (a: number, b: number, what: string) =>
        assert.ok(Math.abs(a - b) <= 1e-6 * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);
      top8.rows.forEach((row, i) => {
        const full = local.rows[i];
        assert.equal(row.target, full.target);
        for (const k of EXACT) close(row[k], full[k], `row ${i} ${k}`);
        close(row.teacher.logp, full.teacher.logp, `row ${i} teacher log p`);
        close(row.student.logp, full.student.logp, `row ${i} student log p`);
        for (const k of BOUNDED) assert.ok(row[k] <= full[k] + 1e-6, `row ${i} ${k}: ${row[k]} ≤ ${full[k]}`);
      });

      // K = V: the buckets are the whole vocabulary
      const all = await inspect({ teacher: at, teacherTopK: 4096, text: TEXT.slice(0, 40) });
      const localShort = await inspect({ text: TEXT.slice(0, 40) });
      all.rows.forEach((row, i) => {
        for (const k of METRIC_KEYS) close(row[k], localShort.rows[i][k], `K = V, row ${i} ${k}`);
        assert.equal(row.teacher.rank, localShort.rows[i].teacher.rank);
      });
    } finally {
      await server.close();
    }
  });
}

test("the OpenAI completions API's echo with token texts: read back through the student's tokenizer, shared texts left in the rest; exact numbers exact, divergences lower bounds", async () => {
  const local = await inspect({ text: TEXT.slice(0, 60) });
  const server = await startFakeServer(teacher, { protocol: 'openai', tokenTexts: true });
  try {
    const at = `openai+${server.url}#demo-teacher`;
    // the whole vocabulary listed: every text but those several ids share (the byte tokens)
    const r = await inspect({ teacher: at, teacherTopK: 4096, text: TEXT.slice(0, 60) });
    assert.ok(
      r.messages.some((m) => /the OpenAI completions API's echo with logprobs/.test(m)),
      r.messages.join('; '),
    );
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) <= 1e-6 * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);
    r.rows.forEach((row, i) => {
      const full = local.rows[i];
      assert.equal(row.target, full.target);
      for (const k of EXACT) close(row[k], full[k], `row ${i} ${k}`);
      for (const k of BOUNDED) assert.ok(row[k] <= full[k] + 1e-6, `row ${i} ${k}: ${row[k]} ≤ ${full[k]}`);
    });
    // prompt_logprobs is not there: the client fell back to the echo
    assert.ok(server.requests.some((q) => q.path === '/v1/completions'));
  } finally {
    await server.close();
  }
});

test('a served teacher: --layers, a temperature other than 1, and --teacher-top-k with a local teacher are refused by name', async () => {
  const server = await startFakeServer(teacher, { protocol: 'vllm' });
  try {
    const at = `openai+${server.url}#demo-teacher`;
    await assert.rejects(
      inspect({ teacher: at, layers: true }),
      /the layer view needs the teacher's hidden states/,
    );
    await assert.rejects(
      inspect({ teacher: at, options: { ...DEFAULT_METRIC_OPTIONS, temperature: 2 } }),
      /--temperature 2 cannot be computed from them/,
    );
  } finally {
    await server.close();
  }
  await assert.rejects(inspect({ teacherTopK: 5 }), /--teacher-top-k is for a served teacher/);
});

test('distill-lens inspect --teacher openai+http://…#model: the key from DISTILL_LENS_TEACHER_API_KEY; JSON and table say the teacher is served', async () => {
  const server = await startFakeServer(teacher, { protocol: 'sglang', apiKey: 'sesame' });
  const BIN = path.resolve(__dirname, '..', '..', 'bin', 'distill-lens.js');
  // asynchronous: the fake server answers from this process
  const cli = (args: string[], key?: string) =>
    promisify(execFile)(
      process.execPath,
      [
        BIN,
        'inspect',
        '--teacher',
        `openai+${server.url}#demo`,
        '--student',
        student,
        '--text',
        TEXT,
        ...args,
      ],
      {
        env: { ...process.env, DISTILL_LENS_TEACHER_API_KEY: key ?? '' },
      },
    );
  try {
    const json = JSON.parse((await cli(['--format', 'json', '--teacher-top-k', '5'], 'sesame')).stdout);
    assert.equal(json.teacherSupport, 'top-5+rest');
    assert.equal(json.teacher.device, 'served');
    const table = (await cli([], 'sesame')).stdout;
    assert.match(table, /the teacher is served: divergences over its top-20\+rest buckets/);
    await assert.rejects(
      cli([], 'wrong'),
      (e: { code: number; stderr: string }) =>
        e.code === 1 && /refused the API key \(HTTP 401\)/.test(e.stderr),
    );
    // the other form: --teacher-endpoint URL --teacher-model NAME
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [BIN, 'inspect', '--student', student, '--text', TEXT, ...args], {
        env: { ...process.env, DISTILL_LENS_TEACHER_API_KEY: 'sesame' },
      });
    const byEndpoint = JSON.parse(
      (await run(['--teacher-endpoint', server.url, '--teacher-model', 'demo', '--format', 'json'])).stdout,
    );
    assert.equal(byEndpoint.teacherSupport, 'top-20+rest');
    assert.equal(byEndpoint.rows.length, json.rows.length);
    for (const [args, message] of [
      [['--teacher-endpoint', server.url], /--teacher-endpoint and --teacher-model go together/],
      [['--teacher', teacher, '--teacher-endpoint', server.url, '--teacher-model', 'demo'], /not both/],
      [
        ['--teacher-endpoint', 'gpu-box:8000', '--teacher-model', 'demo'],
        /must be an http:\/\/ or https:\/\/ URL/,
      ],
      [[], /give the teacher: --teacher .* or --teacher-endpoint with --teacher-model/],
    ] as const)
      await assert.rejects(
        run([...args]),
        (e: { code: number; stderr: string }) => e.code === 2 && message.test(e.stderr),
      );
  } finally {
    await server.close();
  }
});
