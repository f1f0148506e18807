/**
 * The converted stories260k model against llama2.c: the golden greedy text, logits against
 * an independent float64 implementation of run.c, and token ids against run.c's encoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { loadRefModel, loadRefTokenizer, referenceEncode, referenceForward } from '../reference/llama2cReference';
import { STORIES_BIN, STORIES_TOK, maxLogitError, storiesPair, needs } from '../helpers';

/** llama2.c's greedy (argmax) continuation of "Once upon a time" with stories260K (run.c, temperature 0). */
const GOLDEN =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high';

test('golden text: greedy decoding of the converted model reproduces llama2.c', needs('stories260k'), async () => {
  assert.match(GOLDEN, /^Once upon a time, there was a little girl named Lily\./);
  const { teacher } = storiesPair();
  const lm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
  const tok = TextTokenizer.fromFolder(teacher);
  const ids = tok.encode('Once upon a time').ids;
  try {
    while (tok.decode(ids.slice(1)).length < GOLDEN.length) {
      const logits = await lm.forward(ids);
      const row = (logits.data as Float32Array).subarray((ids.length - 1) * logits.vocab, ids.length * logits.vocab);
      let best = 0;
      for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
      ids.push(best);
    }
  } finally {
    await lm.release();
  }
  assert.equal(tok.decode(ids.slice(1)).slice(0, GOLDEN.length), GOLDEN);
});

test('logits agree with a float64 llama2.c forward pass to 1e-4 (5 layers and the 3-layer student)', needs('stories260k'), async () => {
  const { teacher, student } = storiesPair();
  const tokens = [1, 403, 407, 261, 378, 30, 5, 300, 120, 77, 499, 2, 260, 261];
  for (const [folder, layers] of [[teacher, 5], [student, 3]] as const) {
    const ref = referenceForward(loadRefModel(STORIES_BIN, layers), tokens);
    const maxDiff = await maxLogitError(folder, tokens, ref);
    assert.ok(maxDiff <= 1e-4, `${layers} layers: max |logit − reference| = ${maxDiff}`);
  }
});

test('the derived tokenizer.json gives exactly llama2.c encode ids', needs('stories260k'), () => {
  const { teacher } = storiesPair();
  const tok = TextTokenizer.fromFolder(teacher);
  const ref = loadRefTokenizer(STORIES_TOK, 512);
  const strings = [
    'Once upon a time',
    'Hello, world! How are you? (fine) -- "quoted" & semi;colon: yes.',
    'Numbers 0123456789 and 3.14159, 1,000,000.',
    'café naïve résumé Ångström über',
    '日本語のテキスト 中文',
    'emoji 😀🎉 and 👩‍👩‍👧',
    '  leading and  double   spaces',
    'tabs\tand\nnewlines\n\nend',
    'x',
    'The little girl said, "I can\'t!" She was sad.',
  ];
  for (const s of strings) assert.deepEqual(tok.encode(s).ids, referenceEncode(ref, s), JSON.stringify(s));
});

test('token spans: byte-fallback tokens cover their whole character; leading spaces belong to the token', needs('stories260k'), () => {
  const { teacher } = storiesPair();
  const tok = TextTokenizer.fromFolder(teacher);
  const text = 'a 日 😀 upon';
  const enc = tok.encode(text);
  assert.equal(enc.exactSpans, true);
  const pieces = enc.ids.map((id, i) => ({ id, span: text.slice(...enc.spans[i]) }));
  // 日 is three byte tokens, each spanning the character (UTF-16 length 1)
  assert.equal(pieces.filter((p) => p.span === '日').length, 3);
  // 😀 is four byte tokens, each spanning the surrogate pair (UTF-16 length 2)
  assert.equal(pieces.filter((p) => p.span === '😀').length, 4);
  assert.ok(pieces.some((p) => p.span === ' upon'), JSON.stringify(pieces));
  // BOS covers nothing
  assert.deepEqual(enc.spans[0], [0, 0]);
});
