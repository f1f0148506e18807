/**
 * Continuation text read after a short anchor equals the text read after the whole prompt
 * (the reference: decode(prompt + continuation) − decode(prompt), computed here), for the
 * built-in byte-level tokenizer, llama2.c's SentencePiece tokenizer (stories260K) and GPT-2's;
 * the windowed stop-string check fires at the same token as checking the whole text; streamed
 * pieces join into the whole text, also when a character's bytes span tokens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContinuationText, StopStrings, TextStream } from '../../src/generate/continuationText';
import { TextTokenizer } from '../../src/models/tokenizer';
import { seededRandom } from '../../src/core/random';
import { GPT2_TOKENIZER, demoPair, needs, storiesPair } from '../helpers';

const TEXT =
  'Once upon a time, there was a little girl named Lily. She said: "Look, 3.5 km!" — café, naïve, 日本語の文, 😀👍🏽 and tabs\tand\nnew lines. ';

/** The whole-prompt reading the anchored one must equal. */
function wholePromptText(tokenizer: TextTokenizer, promptIds: number[], ids: number[]): string {
  if (ids.length === 0) return '';
  const prompt = tokenizer.decode(promptIds);
  const full = tokenizer.decode([...promptIds, ...ids]);
  return full.startsWith(prompt) ? full.slice(prompt.length) : tokenizer.decode(ids);
}

function checkTokenizer(tokenizer: TextTokenizer): void {
  const ids = tokenizer.encode(TEXT.repeat(3)).ids;
  const rng = seededRandom(11);
  for (let trial = 0; trial < 40; trial++) {
    // a prompt ends after a whole character (prompts are encoded from text); the continuation
    // ends anywhere, also inside a character's bytes, and has split characters inside
    let cut = 1 + Math.floor(rng() * (ids.length - 2));
    while (tokenizer.decode(ids.slice(0, cut)).endsWith('\uFFFD')) cut++;
    const promptIds = ids.slice(0, cut);
    const continuation = ids.slice(cut, cut + 1 + Math.floor(rng() * 60));
    const reference = wholePromptText(tokenizer, promptIds, continuation);
    assert.equal(new ContinuationText(tokenizer, promptIds).of(continuation), reference, `cut at ${cut}`);

    // streamed pieces join into the text
    const stream = new TextStream(tokenizer, promptIds);
    const pieces = continuation.map((id) => stream.push(id)).join('') + stream.flush();
    assert.equal(pieces, reference, `streamed from ${cut}`);

    // a stop string taken from the text: the windowed check stops at the first token whose
    // whole text contains it
    const at = Math.floor(rng() * Math.max(1, reference.length - 6));
    const stop = reference.slice(at, at + 1 + Math.floor(rng() * 6));
    if (!stop) continue;
    const stops = new StopStrings(tokenizer, promptIds, [stop]);
    let expected = -1;
    let got = -1;
    for (let n = 1; n <= continuation.length; n++) {
      if (expected < 0 && wholePromptText(tokenizer, promptIds, continuation.slice(0, n)).includes(stop))
        expected = n;
      if (got < 0 && stops.reached(continuation.slice(0, n))) got = n;
    }
    assert.equal(got, expected, `stop ${JSON.stringify(stop)} after the prompt cut at ${cut}`);
  }
}

test('built-in tokenizer: anchored text, streamed pieces and stop strings as the whole prompt reads them', () => {
  checkTokenizer(TextTokenizer.fromFolder(demoPair().student));
});

test('SentencePiece (stories260K): the same', needs('stories260k'), () => {
  checkTokenizer(TextTokenizer.fromFolder(storiesPair().student));
});

test("GPT-2's byte-level tokenizer: the same", needs('gpt2Tokenizer'), () => {
  checkTokenizer(TextTokenizer.fromFolder(GPT2_TOKENIZER));
});
