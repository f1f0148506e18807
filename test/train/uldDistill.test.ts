/**
 * Distillation across tokenizers (distill --loss uld): a teacher and a student with two BPE
 * vocabularies trained by the project's trainer on the same text, each a random Llama. The
 * held-out numbers before training equal an independent float64 computation (reference forward
 * passes, spans found from the token texts); training lowers the held-out ULD; pairs whose
 * tokenizers differ are refused for the per-token losses, naming --loss uld.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { trainByteLevelBpe } from '../../src/models/bpeTrainer';
import { TextTokenizer } from '../../src/models/tokenizer';
import { runDistillation } from '../../src/train/distill';
import type { DistillRequest } from '../../src/shared/protocol';
import { llamaCheckpoint } from '../models/randomCheckpoints';
import { tempDir } from '../helpers';

const CORPUS = Array.from(
  { length: 40 },
  (_, i) =>
    `interface Item${i % 7} { name: string; count: number; tags: readonly string[] }\nfunction total(items: Item${i % 5}[]): number { return items.length * ${i}; }`,
);
const TEXT = 'function total(items: Item3[]): number { return items.length; } // sum of counts';

function pair(seed: number) {
  const small = trainByteLevelBpe(CORPUS, 300);
  const large = trainByteLevelBpe(CORPUS, 420);
  return {
    teacher: llamaCheckpoint(2, seed, { vocab: 420, tokenizer: large.json }),
    student: llamaCheckpoint(1, seed + 1, { vocab: 300, tokenizer: small.json }),
  };
}

function request(
  teacher: string,
  student: string,
  data: string,
  o: Partial<DistillRequest> = {},
): DistillRequest {
  return {
    teacher,
    student,
    data: { path: data },
    out: path.join(tempDir(), 'out'),
    loss: { key: 'ce', temperature: 1 },
    uld: {},
    mode: { kind: 'full' },
    steps: 2,
    lr: 1e-3,
    batchSize: 1,
    seqLen: 64,
    seed: 3,
    ...o,
  };
}

/** log p(token i | tokens < i) from reference logits, and the start offset of each token (ASCII text). */
function referencePass(logits: Float64Array[], ids: number[], tok: TextTokenizer) {
  const logp = ids.map((id, i) => {
    if (i === 0) return NaN;
    const row = logits[i - 1];
    const max = Math.max(...row);
    return row[id] - max - Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
  });
  let at = 0;
  const starts = ids.map((id) => {
    const s = at;
    at += tok.tokenText(id).length;
    return s;
  });
  return { logits, logp, starts };
}

type Pass = ReturnType<typeof referencePass>;

/** The chain-rule merged row of the tokens starting in [start, end). */
function merged(p: Pass, start: number, end: number): number[] {
  const inSpan = p.starts.flatMap((o, i) => (o >= start && o < end ? [i] : []));
  const last = inSpan[inSpan.length - 1];
  const scale = Math.exp(inSpan.slice(0, -1).reduce((a, i) => a + p.logp[i], 0));
  const row = p.logits[last - 1];
  const max = Math.max(...row);
  const z = row.reduce((a, v) => a + Math.exp(v - max), 0);
  return Array.from(row, (v) => (scale * Math.exp(v - max)) / z);
}

test('distill --loss uld across two BPE vocabularies: held-out ULD and span log-ratio as the float64 reference; training lowers ULD', async () => {
  const { teacher, student } = pair(41);
  const data = path.join(tempDir(), 'one.txt');
  fs.writeFileSync(data, TEXT);
  const tokT = TextTokenizer.fromFolder(teacher.folder);
  const tokS = TextTokenizer.fromFolder(student.folder);
  const idsT = tokT.encode(TEXT).ids;
  const idsS = tokS.encode(TEXT).ids;
  assert.notDeepEqual(idsT, idsS);

  // pure ULD (no ce): its held-out value must fall
  const record = await runDistillation(
    request(teacher.folder, student.folder, data, { uld: { ceWeight: 0 }, steps: 30, lr: 3e-3 }),
  );
  assert.equal(record.data.heldOutIsTrainingData, true, 'one window: held out = trained on');

  // the reference: spans between the common token starts (from the second token on), then the text's end
  const pT = referencePass(teacher.reference(idsT), idsT, tokT);
  const pS = referencePass(student.reference(idsS), idsS, tokS);
  const common = pT.starts.filter((o, i) => i >= 1 && pS.starts.indexOf(o) >= 1);
  const points = [...common, TEXT.length];
  let uld = 0;
  let logRatio = 0;
  for (let k = 0; k + 1 < points.length; k++) {
    const [start, end] = [points[k], points[k + 1]];
    const [a, b] = [merged(pT, start, end), merged(pS, start, end)].map((r) => [...r].sort((u, v) => v - u));
    for (let r = 0; r < Math.max(a.length, b.length); r++) uld += Math.abs((a[r] ?? 0) - (b[r] ?? 0));
    const sum = (p: Pass) => p.starts.reduce((s, o, i) => (o >= start && o < end ? s + p.logp[i] : s), 0);
    logRatio += sum(pT) - sum(pS);
  }
  const spans = points.length - 1;
  const { before, after } = record.heldOut;
  assert.equal(before.spans, spans);
  assert.ok(spans >= 6, `enough spans (${spans})`);
  assert.ok(
    Math.abs(before.uld! - uld / spans) < 1e-4,
    `held-out ULD ${before.uld} vs reference ${uld / spans}`,
  );
  assert.ok(
    Math.abs(before.spanLogRatio! - logRatio / spans) < 1e-4 * (1 + Math.abs(logRatio / spans)),
    `span log-ratio ${before.spanLogRatio} vs reference ${logRatio / spans}`,
  );
  assert.ok(Number.isNaN(before.fkl), 'no per-token KL across vocabularies');
  assert.ok(after.uld! < 0.9 * before.uld!, `held-out ULD ${before.uld} → ${after.uld}`);
  assert.ok(record.lossCurve.at(-1)!.loss < record.lossCurve[0].loss);
  assert.deepEqual(record.settings.loss, { key: 'uld', weight: 1.5, ceWeight: 0 });
  assert.ok(record.messages.some((m) => /tokenize differently: trained with ULD on \d+ spans/.test(m)));
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'run.json'])
    assert.ok(fs.existsSync(path.join(record.out, f)), f);
});

test('distill --loss uld on several documents with a prompt: pieces within --seq-len, prompt tokens not trained on, ULD + ce falls', async () => {
  const { teacher, student } = pair(43);
  const data = path.join(tempDir(), 'data.jsonl');
  fs.writeFileSync(
    data,
    CORPUS.slice(0, 12)
      .map((text, i) =>
        JSON.stringify(i % 3 === 0 ? { prompt: text.slice(0, 30), completion: text.slice(30) } : { text }),
      )
      .join('\n'),
  );
  const record = await runDistillation(
    request(teacher.folder, student.folder, data, { steps: 12, lr: 3e-3, seqLen: 24, batchSize: 2 }),
  );
  assert.ok(
    record.data.trainWindows > 12,
    `long documents are cut into pieces (${record.data.trainWindows})`,
  );
  assert.equal(record.data.heldOutIsTrainingData, false);
  assert.ok(record.heldOut.after.uld! < record.heldOut.before.uld!);
  const first = record.lossCurve.slice(0, 3).reduce((s, p) => s + p.loss, 0);
  const last = record.lossCurve.slice(-3).reduce((s, p) => s + p.loss, 0);
  assert.ok(last < first, `loss ${first / 3} → ${last / 3}`);
});

test('a pair whose tokenizers differ is refused for the per-token losses (naming --loss uld, even with equal vocabulary sizes) and for the methods that need one vocabulary (naming onpolicy)', async () => {
  const { teacher, student } = pair(45);
  const data = path.join(tempDir(), 'one.txt');
  fs.writeFileSync(data, TEXT);
  const perToken = { uld: undefined, loss: { key: 'fkl' as const, temperature: 1 } };
  await assert.rejects(
    runDistillation(request(teacher.folder, student.folder, data, perToken)),
    /teacher vocabulary \d+ .* ≠ student vocabulary \d+ .*--loss uld/,
  );
  // the same vocabulary size, other merges: the ids of the data differ
  const other = trainByteLevelBpe(
    CORPUS.map((t) => t.toUpperCase()),
    300,
  );
  const sameSize = llamaCheckpoint(1, 47, { vocab: 300, tokenizer: other.json });
  await assert.rejects(
    runDistillation(request(sameSize.folder, student.folder, data, perToken)),
    /tokenizers split the data differently .*--loss uld/,
  );
  // the methods that need one vocabulary say which ones work across tokenizers
  const prompts = path.join(tempDir(), 'prompts.jsonl');
  fs.writeFileSync(prompts, JSON.stringify({ prompt: TEXT.slice(0, 30) }) + '\n');
  await assert.rejects(
    runDistillation(
      request(teacher.folder, student.folder, prompts, {
        ...perToken,
        method: 'minillm',
        generation: { maxNewTokens: 8 },
      }),
    ),
    /--method minillm needs one tokenizer; for a pair whose tokenizers differ, use --method onpolicy \(rewards on aligned spans\) or --method word --loss uld/,
  );
  await assert.rejects(
    runDistillation(request(teacher.folder, student.folder, data, { method: 'gkd' })),
    /--loss uld .* --method gkd is not built for it/,
  );
});
