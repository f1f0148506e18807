/**
 * An opt-in check against a real served teacher (vLLM, SGLang, or an OpenAI-compatible server
 * with the completions API), run by `npm run test:endpoint` and not by `npm test` (CI has no
 * such server):
 *
 *   DISTILL_LENS_TEST_ENDPOINT=openai+http://gpu-box:8000/v1#meta-llama/Llama-3.2-1B \
 *   DISTILL_LENS_TEST_STUDENT=path/to/a/model/sharing/its/tokenizer \
 *   [DISTILL_LENS_TEACHER_API_KEY=…] npm run test:endpoint
 *
 * It cannot know the teacher's true numbers, so it checks what must hold for any correct
 * server: the protocol is found and the tokenizer matches the student's; every listed log p is
 * ≤ 0 and their probabilities sum to at most 1; a listed target has the target's log p; the
 * same request gives the same numbers; an inspection over the buckets has exact k1 = log q − log p
 * and non-negative divergences; a sampled completion is in the vocabulary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServedTeacher, parseServedTeacher } from '../../src/models/servedTeacher';
import { TextTokenizer } from '../../src/models/tokenizer';
import { resolveModel } from '../../src/models/modelSource';
import { GENERATION_DEFAULTS } from '../../src/shared/protocol';
import { inspectOnce } from '../helpers';

const ENDPOINT = process.env.DISTILL_LENS_TEST_ENDPOINT ?? '';
const STUDENT = process.env.DISTILL_LENS_TEST_STUDENT ?? '';
if (!parseServedTeacher(ENDPOINT) || !STUDENT) {
  process.stderr.write(
    'npm run test:endpoint checks a real served teacher: set DISTILL_LENS_TEST_ENDPOINT=openai+http://host:port/v1#model and DISTILL_LENS_TEST_STUDENT to a model folder (or hub id) that shares its tokenizer\n',
  );
  process.exit(2);
}

const TEXT =
  'The quick brown fox jumps over the lazy dog. In 1905, Albert Einstein published four papers that changed physics.';
const K = 5;

test(`a real served teacher at ${ENDPOINT}: protocol, tokenizer, log-probabilities that can be true, repeatable answers, an inspection and a sample`, async () => {
  const student = await resolveModel(STUDENT, { allowRemote: true });
  const tokenizer = TextTokenizer.fromFolder(student.folder);
  const client = new ServedTeacher(parseServedTeacher(ENDPOINT)!, { tokenizer });
  const protocol = await client.detect();
  process.stdout.write(`# the server speaks ${protocol}\n`);
  const ids = tokenizer.encode(TEXT).ids;
  await client.checkTokenizer(TEXT, ids);

  const rows = await client.promptLogprobs(ids, K);
  assert.equal(rows.length, ids.length - 1);
  rows.forEach((row, r) => {
    const target = ids[r + 1];
    assert.ok(row.targetLogp <= 1e-6, `position ${r + 1}: log p ${row.targetLogp} ≤ 0`);
    assert.ok(row.top.length <= K + 1 && row.top.length > 0, `position ${r + 1}: ${row.top.length} listed`);
    const mass = row.top.reduce((a, t) => a + Math.exp(t.logp), 0);
    assert.ok(mass <= 1 + 1e-4, `position ${r + 1}: listed probabilities sum to ${mass}`);
    const listed = row.top.find((t) => t.id === target);
    if (listed)
      assert.ok(Math.abs(listed.logp - row.targetLogp) < 1e-4, `position ${r + 1}: the target listed alike`);
    if (row.targetRank !== undefined) assert.ok(row.targetRank >= 1);
  });
  const again = await client.promptLogprobs(ids, K);
  again.forEach((row, r) =>
    assert.ok(
      Math.abs(row.targetLogp - rows[r].targetLogp) < 1e-3,
      `position ${r + 1}: the same answer twice`,
    ),
  );

  const result = await inspectOnce({ teacher: ENDPOINT, student: STUDENT, text: TEXT, teacherTopK: K });
  assert.equal(result.teacherSupport, `top-${K}+rest`);
  for (const row of result.rows) {
    assert.ok(Math.abs(row.k1 - (row.student.logp - row.teacher.logp)) < 1e-6);
    for (const k of ['fkl', 'rkl', 'jsd', 'tvd'] as const) assert.ok(row[k] >= 0, `${k} ${row[k]} ≥ 0`);
  }

  const sampled = await client.sample(ids.slice(0, 8), GENERATION_DEFAULTS.sampling, 8, 1);
  const vocab = Math.max(tokenizer.vocabSize, Number(student.config?.vocab_size ?? 0));
  assert.ok(
    sampled.ids.length > 0 && sampled.ids.every((id) => id >= 0 && id < vocab),
    'sampled ids in the vocabulary',
  );
});
