/**
 * The text of a continuation as it reads after its prompt. Decoding the new tokens alone is
 * wrong for SentencePiece tokenizers (Llama, Gemma): their decoder drops the leading space of
 * the first token, so "▁there" after "Once upon a time" would read "timethere". The
 * continuation is the decoded prompt-and-continuation minus the decoded prompt.
 */
import type { TextTokenizer } from '../models/tokenizer';

export class ContinuationText {
  private readonly promptText: string;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly promptIds: number[],
  ) {
    this.promptText = tokenizer.decode(promptIds);
  }

  /** The text of `continuation` (ids after the prompt). */
  of(continuation: number[]): string {
    if (continuation.length === 0) return '';
    const full = this.tokenizer.decode([...this.promptIds, ...continuation]);
    // a decoder that rewrites the prompt's end (rare): the new tokens' own text instead
    return full.startsWith(this.promptText)
      ? full.slice(this.promptText.length)
      : this.tokenizer.decode(continuation);
  }
}

/**
 * The text a stream of tokens adds, piece by piece, for printing as tokens come: what was not
 * shown yet, holding back a trailing U+FFFD (a character whose UTF-8 bytes have not all come).
 */
export class TextStream {
  private readonly ids: number[] = [];
  private shown = '';

  constructor(private readonly text: ContinuationText) {}

  push(id: number): string {
    this.ids.push(id);
    const now = this.text.of(this.ids).replace(/\uFFFD+$/, '');
    if (!now.startsWith(this.shown)) return '';
    const added = now.slice(this.shown.length);
    this.shown = now;
    return added;
  }
}
