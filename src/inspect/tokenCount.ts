/** The checks on an analysed text's length in tokens, shared by a local and a served teacher. */
import { UsageError } from '../core/errors';

/** Refuses a text of more than `maxTokens` tokens, or of one token (the first token has no prediction). */
export function refuseTokenCount(ids: number[], maxTokens: number, tokenText: (id: number) => string): void {
  if (ids.length > maxTokens)
    throw new UsageError(
      `the text has ${ids.length} tokens, more than the limit of ${maxTokens}: analyse a shorter part or raise the limit (--max-tokens / distillLens.maxTokens)`,
    );
  if (ids.length < 2)
    throw new UsageError(
      `the text gives a single token (${JSON.stringify(tokenText(ids[0] ?? 0))}), and the first token has no prediction: select more text`,
    );
}
