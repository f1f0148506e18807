/**
 * A teacher and a student with different tokenizers: two byte-level BPE vocabularies trained
 * by the project's trainer on the same text (so many, not all, token boundaries coincide),
 * each with a random Llama of its vocabulary size. inspect compares them on exact spans:
 * every place both tokenizations start a token (found here from the token texts) ends a span,
 * and each span's log-probabilities equal the float64 reference forward passes' sums.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { trainByteLevelBpe } from '../../src/models/bpeTrainer';
import { TextTokenizer } from '../../src/models/tokenizer';
import { toJsonReport } from '../../src/report/jsonReport';
import { llamaCheckpoint } from '../models/randomCheckpoints';
import { inspectOnce } from '../helpers';

const CORPUS = Array.from(
  { length: 40 },
  (_, i) =>
    `interface Item${i % 7} { name: string; count: number; tags: readonly string[] }\nfunction total(items: Item${i % 5}[]): number { return items.length * ${i}; }`,
);
const TEXT = 'function total(items: Item3[]): number { return items.length; } // sum of counts';

/** log p(token i | tokens < i) from the float64 reference logits (token 0: none). */
function referenceLogp(logits: Float64Array[], ids: number[]): number[] {
  return ids.map((id, i) => {
    if (i === 0) return NaN;
    const row = logits[i - 1];
    const max = Math.max(...row);
    return row[id] - max - Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
  });
}

test('different BPE vocabularies: spans at every common token start, each span’s log-probabilities and ULD as the float64 reference', async () => {
  const small = trainByteLevelBpe(CORPUS, 300);
  const large = trainByteLevelBpe(CORPUS, 420);
  const teacher = llamaCheckpoint(2, 31, { vocab: 420, tokenizer: large.json });
  const student = llamaCheckpoint(1, 32, { vocab: 300, tokenizer: small.json });
  const tokT = TextTokenizer.fromFolder(teacher.folder);
  const tokS = TextTokenizer.fromFolder(student.folder);
  const idsT = tokT.encode(TEXT).ids;
  const idsS = tokS.encode(TEXT).ids;
  assert.notDeepEqual(idsT, idsS, 'the two tokenizations differ');

  const r = await inspectOnce({
    teacher: teacher.folder,
    student: student.folder,
    text: TEXT,
    acrossTokenizers: true,
  });
  const spans = r.spans!;
  assert.deepEqual((toJsonReport(r) as { spans: unknown[] }).spans, spans);

  // where each tokenization starts a token, from its tokens' texts (this text is ASCII: one character per byte)
  const starts = (tok: TextTokenizer, ids: number[]) => {
    let at = 0;
    return ids.map((id) => {
      const s = at;
      at += tok.tokenText(id).length;
      return s;
    });
  };
  const startsT = starts(tokT, idsT);
  const startsS = starts(tokS, idsS);
  // both models predict from their second token on: common starts from there, then the text's end
  const common = startsT.filter((o, i) => i >= 1 && startsS.indexOf(o) >= 1);
  const points = [...common, TEXT.length];
  assert.ok(
    points.length >= 6 && points.length < startsS.length,
    `some, not all, boundaries coincide (${points.length})`,
  );
  assert.deepEqual(
    spans.map((s) => [s.start, s.end]),
    points.slice(0, -1).map((o, k) => [o, points[k + 1]]),
  );

  const logitsT = teacher.reference(idsT);
  const logitsS = student.reference(idsS);
  const lpT = referenceLogp(logitsT, idsT);
  const lpS = referenceLogp(logitsS, idsS);
  // ULD's merged row of a span: the distribution predicting its last token × its earlier tokens' probabilities
  const merged = (
    startsOf: number[],
    logits: Float64Array[],
    lp: number[],
    s: { start: number; end: number },
  ) => {
    const inSpan = startsOf.flatMap((o, i) => (o >= s.start && o < s.end ? [i] : []));
    const last = inSpan[inSpan.length - 1];
    const scale = Math.exp(inSpan.slice(0, -1).reduce((a, i) => a + lp[i], 0));
    const row = logits[last - 1];
    const max = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - max), 0);
    return Array.from(row, (v) => (scale * Math.exp(v - max)) / z);
  };
  const uld = (a: number[], b: number[]) => {
    const [x, y] = [a, b].map((r) => [...r].sort((u, v) => v - u));
    return Array.from({ length: Math.max(x.length, y.length) }, (_, k) =>
      Math.abs((x[k] ?? 0) - (y[k] ?? 0)),
    ).reduce((s, v) => s + v, 0);
  };
  const inside = (startsOf: number[], lp: number[], s: { start: number; end: number }) =>
    startsOf.reduce((sum, o, i) => (o >= s.start && o < s.end ? sum + lp[i] : sum), 0);
  for (const s of spans) {
    assert.equal(s.text, TEXT.slice(s.start, s.end));
    const t = inside(startsT, lpT, s);
    const q = inside(startsS, lpS, s);
    assert.ok(
      Math.abs(s.teacherLogp - t) < 1e-4 * (1 + Math.abs(t)),
      `${JSON.stringify(s.text)} teacher ${s.teacherLogp} vs ${t}`,
    );
    assert.ok(
      Math.abs(s.studentLogp - q) < 1e-4 * (1 + Math.abs(q)),
      `${JSON.stringify(s.text)} student ${s.studentLogp} vs ${q}`,
    );
    assert.ok(Math.abs(s.logRatio - (t - q)) < 2e-4 * (1 + Math.abs(t - q)));
    const expected = uld(merged(startsT, logitsT, lpT, s), merged(startsS, logitsS, lpS, s));
    assert.ok(Math.abs(s.uld! - expected) < 1e-4, `${JSON.stringify(s.text)} uld ${s.uld} vs ${expected}`);
    // the tokens each side has in the span, as text
    assert.equal(s.teacherPieces!.join(''), s.text);
    assert.equal(s.studentPieces!.join(''), s.text);
  }

  // the rows: one per student token inside a span, its own log p, the span's k1–k3, no per-token divergence
  const inSpans = startsS.flatMap((o, i) => (spans.some((s) => o >= s.start && o < s.end) ? [i] : []));
  assert.deepEqual(
    r.rows.map((row) => row.index),
    inSpans,
  );
  for (const row of r.rows) {
    const span = spans[row.span!];
    assert.ok(row.start >= span.start && row.end <= span.end);
    assert.equal(row.text, TEXT.slice(row.start, row.end));
    assert.equal(row.k1, span.k1);
    assert.equal(row.k3, span.k3);
    assert.ok(Math.abs(row.k2 - 0.5 * span.logRatio ** 2) < 1e-12);
    assert.ok(Number.isNaN(row.fkl) && Number.isNaN(row.teacher.logp));
    assert.ok(Math.abs(row.student.logp - lpS[row.index]) < 1e-4 * (1 + Math.abs(lpS[row.index])));
    // rank and top tokens from the reference row predicting this token
    const ref = logitsS[row.index - 1];
    assert.equal(row.student.rank, 1 + ref.filter((z) => z > ref[row.target]).length);
    const order = Array.from(ref, (_, v) => v).sort((a, b) => ref[b] - ref[a]);
    assert.deepEqual(
      row.student.top.map((t) => t.id),
      order.slice(0, 5),
    );
  }
});

test("a text longer than the student's context: compared in pieces cut at the student's token starts, each span as the reference on its piece", async () => {
  const small = trainByteLevelBpe(CORPUS, 300);
  const large = trainByteLevelBpe(CORPUS, 420);
  const teacher = llamaCheckpoint(2, 35, { vocab: 420, tokenizer: large.json });
  const student = llamaCheckpoint(1, 36, { vocab: 300, tokenizer: small.json });
  // the student reads at most 24 tokens at once
  const configFile = path.join(student.folder, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), max_position_embeddings: 24 }),
  );
  const long = [TEXT, TEXT.toUpperCase(), TEXT].join('\n');
  const r = await inspectOnce({
    teacher: teacher.folder,
    student: student.folder,
    text: long,
    acrossTokenizers: true,
  });
  const tokS = TextTokenizer.fromFolder(student.folder);
  const tokT = TextTokenizer.fromFolder(teacher.folder);
  assert.ok(r.windows.length >= 4, `pieces: ${r.windows.length}`);
  assert.match(r.windowNotice ?? '', /compared in \d+ pieces, cut where the student starts a token/);
  // the pieces tile the text (ASCII: one character per byte); each is compared on its own
  let at = 0;
  let checked = 0;
  for (const [from, to] of r.windows) {
    assert.ok(to - from <= 24);
    const ids = r.ids.slice(from, to);
    const text = ids.map((id) => tokS.tokenText(id)).join('');
    assert.equal(long.slice(at, at + text.length), text);
    const idsT = tokT.encode(text).ids;
    const lpT = referenceLogp(teacher.reference(idsT), idsT);
    const lpS = referenceLogp(student.reference(ids), ids);
    const startsOf = (tok: TextTokenizer, list: number[]) => {
      let o = at;
      return list.map((id) => ((o += tok.tokenText(id).length), o - tok.tokenText(id).length));
    };
    const [sT, sS] = [startsOf(tokT, idsT), startsOf(tokS, ids)];
    for (const span of r.spans!.filter((sp) => sp.start >= at && sp.end <= at + text.length)) {
      const sum = (starts: number[], lp: number[]) =>
        starts.reduce((a, o, i) => (o >= span.start && o < span.end ? a + lp[i] : a), 0);
      const [t, q] = [sum(sT, lpT), sum(sS, lpS)];
      assert.ok(
        Math.abs(span.teacherLogp - t) < 1e-4 * (1 + Math.abs(t)),
        `${span.text}: ${span.teacherLogp} vs ${t}`,
      );
      assert.ok(
        Math.abs(span.studentLogp - q) < 1e-4 * (1 + Math.abs(q)),
        `${span.text}: ${span.studentLogp} vs ${q}`,
      );
      checked++;
    }
    at += text.length;
  }
  assert.equal(at, long.length);
  assert.equal(checked, r.spans!.length, 'every span lies inside one piece');
  for (const row of r.rows) {
    assert.equal(r.ids[row.index], row.target);
    assert.equal(long.slice(row.start, row.end), row.text);
  }
});

test('without acrossTokenizers, a pair with different tokenizers is refused, saying how to compare it', async () => {
  const small = trainByteLevelBpe(CORPUS, 300);
  const large = trainByteLevelBpe(CORPUS, 420);
  const teacher = llamaCheckpoint(1, 33, { vocab: 420, tokenizer: large.json });
  const student = llamaCheckpoint(1, 34, { vocab: 300, tokenizer: small.json });
  await assert.rejects(
    inspectOnce({ teacher: teacher.folder, student: student.folder, text: TEXT }),
    /teacher vocabulary 420 .* student vocabulary 300 .*ask with acrossTokenizers, as the editor and distill-lens inspect do, to compare such a pair exactly on the spans/,
  );
});
