/** The byte-level BPE trainer (hand-derived merges) and the float16 writer used for the built-in models. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { trainByteLevelBpe } from '../../src/models/bpeTrainer';
import { TextTokenizer } from '../../src/models/tokenizer';
import { float32ToHalf, halfToFloat32, readSafetensors, tensorAsFloat32, writeSafetensors } from '../../src/models/safetensors';
import { tempDir } from '../helpers';

test('BPE: merges by pair frequency, stops below the minimum frequency, loads as a tokenizer.json', () => {
  // words "ab" ×1, " ab" ×2, " cd" ×1: (a,b) occurs 3 times, then (Ġ,ab) twice; the rest once
  const { merges, vocab, json } = trainByteLevelBpe(['ab ab ab cd'], 1000);
  assert.deepEqual(merges, ['a b', 'Ġ ab']);
  assert.equal(Object.keys(vocab).length, 1 + 256 + 2);
  assert.equal(vocab['<|endoftext|>'], 0);
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  const tok = TextTokenizer.fromFolder(dir);
  const text = 'ab ab cd ünï 日本\n\tx';
  const enc = tok.encode(text);
  assert.deepEqual(enc.ids.slice(0, 5), [vocab.ab, vocab['Ġab'], vocab['Ġ'], vocab.c, vocab.d]);
  assert.equal(tok.decode(enc.ids), text, 'byte-level: every text round-trips');
  assert.ok(enc.exactSpans);
  // the vocabulary limit stops merging early
  assert.deepEqual(trainByteLevelBpe(['ab ab ab cd'], 258).merges, ['a b']);
});

test('float16: every half value round-trips; floats round to the nearest half, ties to even', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const back = float32ToHalf(halfToFloat32(all));
  for (let i = 0; i < 65536; i++) {
    const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (!isNaN) assert.equal(back[i], i, `half 0x${i.toString(16)}`);
  }
  const cases: [number, number][] = [[1, 0x3c00], [65504, 0x7bff], [65520, 0x7c00], [1 / 3, 0x3555], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [-2, 0xc000], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02]];
  const got = float32ToHalf(Float32Array.from(cases.map((c) => c[0])));
  cases.forEach(([x, h], i) => assert.equal(got[i], h, `${x} → 0x${h.toString(16)}`));
  const dir = tempDir();
  const file = path.join(dir, 'half.safetensors');
  writeSafetensors(file, { w: { shape: [2, 2], data: Float32Array.of(0.5, -1.25, 3, 1 / 3) } }, { format: 'pt' }, 'F16');
  const read = readSafetensors(file);
  assert.equal(read.tensors.get('w')!.dtype, 'F16');
  assert.deepEqual(Array.from(tensorAsFloat32(read, 'w').data), [0.5, -1.25, 3, halfToFloat32(Uint16Array.of(0x3555))[0]]);
});
