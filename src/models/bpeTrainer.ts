/**
 * Trains a byte-level BPE tokenizer (GPT-2's scheme: the GPT-2 pre-tokenising regex, bytes
 * mapped to printable characters, merges learned by pair frequency) and writes it as a
 * Hugging Face tokenizer.json. Used to build the built-in demo models; no JavaScript
 * tokenizer library trains BPE (the Rust bindings on npm are native and unmaintained).
 */

/** GPT-2's byte → printable character table (the inverse of tokenizer.ts's decoder table). */
export function byteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return table;
}

/** GPT-2's pre-tokenisation: contractions, letters, numbers, other symbols, whitespace. */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface BpeTokenizerJson {
  vocab: Record<string, number>;
  merges: string[];
  json: Record<string, unknown>;
}

/**
 * Learns merges until the vocabulary (the special token, 256 bytes, merged pieces) has
 * `vocabSize` entries or no pair occurs `minFrequency` times. Deterministic: ties go to the
 * lexicographically smaller pair.
 */
export function trainByteLevelBpe(texts: Iterable<string>, vocabSize: number, o: { minFrequency?: number; special?: string } = {}): BpeTokenizerJson {
  const special = o.special ?? '<|endoftext|>';
  const minFrequency = o.minFrequency ?? 2;
  const table = byteToChar();
  const utf8 = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_SPLIT)) {
      const piece = Array.from(utf8.encode(m[0]), (b) => table[b]).join('');
      wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
    }
  }
  // each distinct word as its current symbols, with its count
  const words = [...wordCounts.entries()].map(([w, count]) => ({ symbols: Array.from(w), count }));
  const pairKey = (a: string, b: string) => `${a}\u0000${b}`;
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addPair = (key: string, wordIndex: number, count: number) => {
    pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
    let set = pairWords.get(key);
    if (!set) pairWords.set(key, (set = new Set()));
    set.add(wordIndex);
  };
  words.forEach((w, i) => {
    for (let j = 0; j + 1 < w.symbols.length; j++) addPair(pairKey(w.symbols[j], w.symbols[j + 1]), i, w.count);
  });

  const vocab: Record<string, number> = { [special]: 0 };
  table.forEach((ch, b) => (vocab[ch] = b + 1));
  const merges: string[] = [];
  while (Object.keys(vocab).length < vocabSize) {
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (!best || bestCount < minFrequency) break;
    const [a, b] = best.split('\u0000');
    const merged = a + b;
    merges.push(`${a} ${b}`);
    vocab[merged] = Object.keys(vocab).length;
    // re-count only the words that contain the pair
    for (const wi of [...(pairWords.get(best) ?? [])]) {
      const w = words[wi];
      for (let j = 0; j + 1 < w.symbols.length; j++) pairCounts.set(pairKey(w.symbols[j], w.symbols[j + 1]), pairCounts.get(pairKey(w.symbols[j], w.symbols[j + 1]))! - w.count);
      const next: string[] = [];
      for (let j = 0; j < w.symbols.length; j++) {
        if (j + 1 < w.symbols.length && w.symbols[j] === a && w.symbols[j + 1] === b) {
          next.push(merged);
          j++;
        } else next.push(w.symbols[j]);
      }
      w.symbols = next;
      for (let j = 0; j + 1 < w.symbols.length; j++) addPair(pairKey(w.symbols[j], w.symbols[j + 1]), wi, w.count);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
    for (const [key, count] of pairCounts) {
      if (count > 0) continue;
      pairCounts.delete(key);
      pairWords.delete(key);
    }
  }

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: special, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  return { vocab, merges, json };
}
