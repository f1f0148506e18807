/**
 * The text of a continuation as it reads after its prompt. Decoding the new tokens alone is
 * wrong for SentencePiece tokenizers (Llama, Gemma): their decoder drops the leading space of
 * the first token, so "▁there" after "Once upon a time" would read "timethere". The new
 * tokens are decoded after a few tokens of what comes before them (an anchor), and the
 * anchor's own text is taken off:
 *
 *   text(ids after context) = decode(anchor + ids) − decode(anchor),  anchor = last 4 of context
 *
 * Hugging Face's decoders (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece
 * clean-up) act on a token's neighbours only, so a short anchor reads exactly as the whole
 * prompt would, and each call costs the new tokens, not the prompt's length.
 */
import type { TextTokenizer } from '../models/tokenizer';

/** Tokens of context decoded with new tokens so that they read as they do after it. */
const ANCHOR_TOKENS = 4;

/** The text `ids` add after `context` (a decoder that rewrites the anchor's end: their own text). */
export function textAfter(tokenizer: TextTokenizer, context: number[], ids: number[]): string {
  if (ids.length === 0) return '';
  const anchor = context.slice(-ANCHOR_TOKENS);
  const before = tokenizer.decode(anchor);
  const full = tokenizer.decode([...anchor, ...ids]);
  return full.startsWith(before) ? full.slice(before.length) : tokenizer.decode(ids);
}

export class ContinuationText {
  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly promptIds: number[],
  ) {}

  /** The text of `continuation` (ids after the prompt). */
  of(continuation: number[]): string {
    return textAfter(this.tokenizer, this.promptIds, continuation);
  }
}

/**
 * Whether a continuation has reached a stop string, checked after each new token by reading
 * only its end: a stop string the newest token completes ends in that token's text and starts
 * at most (its length − 1) characters before, and a character is at most 4 tokens (UTF-8 bytes),
 * so the last 4 × (longest stop string) + 8 tokens hold it. Each check costs that window, not
 * the continuation so far.
 */
export class StopStrings {
  private readonly windowTokens: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly promptIds: number[],
    private readonly stops: string[],
  ) {
    this.windowTokens = 4 * Math.max(0, ...stops.map((s) => s.length)) + 8;
  }

  /** Whether `continuation` (ids after the prompt, the newest last) now contains a stop string. */
  reached(continuation: number[]): boolean {
    if (this.stops.length === 0) return false;
    const start = Math.max(0, continuation.length - this.windowTokens);
    const context = start > 0 ? continuation.slice(0, start) : this.promptIds;
    const text = textAfter(this.tokenizer, context, continuation.slice(start));
    return this.stops.some((s) => text.includes(s));
  }
}

/**
 * The text a stream of tokens adds, piece by piece, for printing as tokens come. Tokens that
 * end inside a character (its UTF-8 bytes not all come: a trailing U+FFFD) wait for the next;
 * each piece is read after the tokens already shown, so the pieces join into the whole text.
 */
export class TextStream {
  /** the prompt's and the shown tokens' last ids: what the next piece is read after */
  private context: number[];
  private pending: number[] = [];

  constructor(
    private readonly tokenizer: TextTokenizer,
    promptIds: number[],
  ) {
    this.context = promptIds.slice(-ANCHOR_TOKENS);
  }

  push(id: number): string {
    this.pending.push(id);
    const piece = textAfter(this.tokenizer, this.context, this.pending);
    if (piece.endsWith('\uFFFD')) return '';
    this.context = [...this.context, ...this.pending].slice(-ANCHOR_TOKENS);
    this.pending = [];
    return piece;
  }

  /** What is still held back at the end (a character whose bytes never all came reads U+FFFD, as in the text). */
  flush(): string {
    const rest = textAfter(this.tokenizer, this.context, this.pending);
    this.pending = [];
    return rest;
  }
}
