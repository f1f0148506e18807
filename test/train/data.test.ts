/** Training data: documents from files, folders and JSONL; windows that never span documents; prompt tokens masked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  packSequences,
  packWindows,
  parseJsonl,
  readDocuments,
  readPrompts,
  splitWindows,
} from '../../src/train/data';
import { TextTokenizer } from '../../src/models/tokenizer';
import { rng } from '../reference/kdReference';
import { demoPair, tempDir } from '../helpers';

const tokenizer = () => TextTokenizer.fromFolder(demoPair().student);

test('windows: each document alone, overlapping by one token, every later token a target exactly once', () => {
  const tok = tokenizer();
  const docs = [
    { source: 'a', text: 'Once upon a time, there was a little girl named Lily. She loved to play outside.' },
    { source: 'b', text: 'Tom had a red ball.' },
  ];
  const L = 8;
  const windows = packWindows(docs, tok, L);
  for (const [i, doc] of docs.entries()) {
    const ids = tok.encode(doc.text).ids;
    const mine = windows.filter((w) => w.source === doc.source);
    // the targets of a document's windows, in order, are its tokens after the first
    const targets = mine.flatMap((w) => w.targets.filter((_, j) => w.mask[j]));
    assert.deepEqual(targets, ids.slice(1), `document ${i}`);
    for (const w of mine) {
      assert.equal(w.ids.length, L);
      w.mask.forEach(
        (m, j) => m && assert.equal(w.targets[j], w.ids[j + 1], 'the target is the next input token'),
      );
      assert.equal(w.mask[L - 1], 0);
    }
  }
});

test('JSONL: text records, prompt/completion records train on the completion only, bad lines name their place', () => {
  const tok = tokenizer();
  const docs = parseJsonl(
    '{"text": "Lily ran."}\n\n{"prompt": "Q: Who ran? A:", "completion": " Lily ran home."}\n',
    'd.jsonl',
  );
  assert.equal(docs.length, 2);
  assert.equal(docs[1].promptChars, 'Q: Who ran? A:'.length);
  const [w] = packWindows([docs[1]], tok, 64);
  const enc = tok.encode(docs[1].text);
  const expected = enc.ids.slice(1).filter((_, j) => enc.spans[j + 1][0] >= docs[1].promptChars!);
  assert.deepEqual(
    w.targets.filter((_, j) => w.mask[j]),
    expected,
  );
  assert.equal(tok.decode(expected).trim(), 'Lily ran home.');
  assert.throws(() => parseJsonl('{"text": 1}', 'x.jsonl'), /x\.jsonl:1 has neither/);
  assert.throws(() => parseJsonl('{"text": "a"}\nnot json', 'x.jsonl'), /x\.jsonl:2 is not valid JSON/);
});

test('folders: text and code files in order, dependency and hidden folders skipped; held-out split by documents', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'src'));
  fs.mkdirSync(path.join(dir, 'node_modules', 'x'), { recursive: true });
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'src', 'a.ts'), 'const a = 1;');
  fs.writeFileSync(path.join(dir, 'notes.md'), '# Notes');
  fs.writeFileSync(path.join(dir, 'image.png'), Buffer.from([0x89, 0x50]));
  fs.writeFileSync(path.join(dir, 'node_modules', 'x', 'index.js'), 'skip');
  fs.writeFileSync(path.join(dir, '.git', 'HEAD'), 'skip');
  assert.deepEqual(
    readDocuments(dir).map((d) => path.relative(dir, d.source)),
    ['notes.md', path.join('src', 'a.ts')],
  );
  assert.throws(() => readDocuments(path.join(dir, 'missing')), /does not exist/);
  const windows = Array.from({ length: 30 }, (_, i) => ({
    ids: [i],
    targets: [0],
    mask: [1],
    source: String(i),
  }));
  const split = splitWindows(windows, rng(1));
  assert.equal(split.heldOut.length, 3);
  assert.equal(split.train.length, 27);
  assert.equal(new Set([...split.train, ...split.heldOut]).size, 30);
  // several documents: whole documents are held out, none is in both sets
  const docs = Array.from({ length: 60 }, (_, i) => ({
    ids: [i],
    targets: [0],
    mask: [1],
    source: `doc${i % 12}`,
  }));
  const byDoc = splitWindows(docs, rng(2));
  const trainSources = new Set(byDoc.train.map((w) => w.source));
  assert.ok(byDoc.heldOut.length >= 5 && byDoc.heldOut.length <= 10, `${byDoc.heldOut.length} held out`);
  assert.ok(
    byDoc.heldOut.every((w) => !trainSources.has(w.source)),
    'no document on both sides',
  );
  assert.equal(byDoc.train.length + byDoc.heldOut.length, 60);
});

test('sampled sequences: only completion tokens are targets, an EOS at the end counted once, across windows', () => {
  // prompt 10 11 12, completion 20 21 and EOS 2
  const seq = { ids: [10, 11, 12, 20, 21, 2], promptTokens: 3, source: 's' };
  const windows = packSequences([seq], 4);
  const targets = windows.flatMap((w) => w.targets.filter((_, j) => w.mask[j]));
  assert.deepEqual(targets, [20, 21, 2], 'each completion token once, the EOS last');
  for (const w of windows) w.mask.forEach((m, j) => m && assert.equal(w.targets[j], w.ids[j + 1]));
  // a completion of one token (the EOS alone) still trains on it
  assert.deepEqual(
    packSequences([{ ids: [10, 11, 2], promptTokens: 2, source: 't' }], 8).flatMap((w) =>
      w.targets.filter((_, j) => w.mask[j]),
    ),
    [2],
  );
});

test('prompts: JSONL prompts (with or without completions); other text cut into prompts of N tokens at token starts', () => {
  const tok = tokenizer();
  const docs = parseJsonl(
    '{"prompt": "Q: Who ran? A:"}\n{"prompt": "Tom", "completion": " had a ball."}\n',
    'p.jsonl',
  );
  const prompts = readPrompts(docs, tok, 4);
  assert.deepEqual(
    prompts.map((p) => [p.text, p.completion]),
    [
      ['Q: Who ran? A:', undefined],
      ['Tom', ' had a ball.'],
    ],
  );
  const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';
  const cut = readPrompts([{ source: 'story', text }], tok, 5);
  assert.equal(cut.map((p) => p.text).join(''), text, 'the prompts are the text, in order');
  for (const p of cut.slice(0, -1)) assert.equal(tok.encode(p.text).ids.length, 5, JSON.stringify(p.text));
  assert.throws(() => readPrompts([{ source: 'x', text: '   ' }], tok, 5), /no prompts/);
  assert.throws(() => parseJsonl('{"prompt": 3}', 'x.jsonl'), /x\.jsonl:1 has neither/);
});
