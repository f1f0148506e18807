/**
 * Tokenisation through @huggingface/tokenizers (the tokenizer.json format), plus what that
 * library does not give: each token's exact UTF-16 span in the input text.
 *
 * Spans come from the tokens' bytes: byte-level BPE pieces (GPT-2) map back through the
 * byte↔unicode table; SentencePiece pieces (▁ for space, <0xNN> byte fallback) map to
 * UTF-8. The bytes are matched against the text's UTF-8 bytes; a space the tokenizer
 * prepends is skipped. A token whose bytes start or end inside a character (byte fallback
 * splitting a multi-byte character) gets the whole character's span, so several tokens may
 * share one span.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelLoadError } from '../core/errors';

export interface Encoded {
  ids: number[];
  /** UTF-16 [start, end) of each token in the text; special tokens get an empty span */
  spans: [number, number][];
  /** whether spans were matched byte-exactly (false: the tokenizer normalised the text) */
  exactSpans: boolean;
}

/** GPT-2's byte → printable character table, inverted. */
function byteLevelDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
}

type PieceStyle = 'byteLevel' | 'sentencePiece' | 'plain';

function pieceStyle(json: Record<string, any>): PieceStyle {
  const text = JSON.stringify([json.decoder, json.pre_tokenizer]);
  if (text.includes('"ByteLevel"')) return 'byteLevel';
  if (text.includes('Metaspace') || text.includes('ByteFallback') || json.model?.byte_fallback) return 'sentencePiece';
  return 'plain';
}

export class TextTokenizer {
  readonly vocabSize: number;
  private readonly tok: Tokenizer;
  private readonly style: PieceStyle;
  private readonly specialIds: Set<number>;
  private readonly byteTable = byteLevelDecoder();
  private readonly utf8 = new TextEncoder();

  constructor(json: Record<string, any>, config: Record<string, any>, readonly source: string) {
    this.tok = new Tokenizer(json, config);
    this.style = pieceStyle(json);
    const vocab = json.model?.vocab;
    const modelSize = Array.isArray(vocab) ? vocab.length : Object.keys(vocab ?? {}).length;
    const added: { id: number; special?: boolean }[] = json.added_tokens ?? [];
    this.vocabSize = Math.max(modelSize, ...added.map((a) => a.id + 1));
    this.specialIds = new Set(added.filter((a) => a.special).map((a) => a.id));
  }

  /** Loads tokenizer.json (and tokenizer_config.json when present) from a model folder. */
  static fromFolder(folder: string): TextTokenizer {
    const file = path.join(folder, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new ModelLoadError(`${folder} has no tokenizer.json: Distill Lens needs the Hugging Face tokenizer file beside the model`);
    let json: Record<string, any>;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ModelLoadError(`${file} is not valid JSON (${(e as Error).message}); re-download the tokenizer`);
    }
    const configFile = path.join(folder, 'tokenizer_config.json');
    const config = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, 'utf8')) : {};
    return new TextTokenizer(json, config, file);
  }

  encode(text: string): Encoded {
    const ids = this.tok.encode(text).ids;
    const { spans, exact } = this.alignSpans(text, ids);
    return { ids, spans, exactSpans: exact };
  }

  /** Where given ids (e.g. sampled ones, not necessarily this tokenizer's encoding of `text`) lie on `text`. */
  spansOf(text: string, ids: number[]): { spans: [number, number][]; exact: boolean } {
    return this.alignSpans(text, ids);
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: false });
  }

  /** A readable form of one token: its text, or the piece itself for byte and special tokens. */
  tokenText(id: number): string {
    const piece = this.tok.id_to_token(id) ?? `<${id}>`;
    if (this.specialIds.has(id) || /^<0x[0-9A-Fa-f]{2}>$/.test(piece)) return piece;
    if (this.style === 'plain') return piece;
    return new TextDecoder().decode(this.pieceBytes(id));
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The UTF-8 bytes a token stands for (empty for special tokens). */
  pieceBytes(id: number): Uint8Array {
    if (this.specialIds.has(id)) return new Uint8Array(0);
    const piece = this.tok.id_to_token(id) ?? '';
    if (this.style === 'byteLevel') {
      const out: number[] = [];
      for (const ch of piece) {
        const b = this.byteTable.get(ch);
        if (b === undefined) out.push(...this.utf8.encode(ch));
        else out.push(b);
      }
      return Uint8Array.from(out);
    }
    if (this.style === 'sentencePiece') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
      return this.utf8.encode(piece.replace(/\u2581/g, ' '));
    }
    return this.utf8.encode(piece);
  }

  private alignSpans(text: string, ids: number[]): { spans: [number, number][]; exact: boolean } {
    const bytes = this.utf8.encode(text);
    // UTF-16 start of the character holding each byte, and that character's UTF-16 end
    const charStart = new Int32Array(bytes.length + 1);
    const charEnd = new Int32Array(bytes.length + 1);
    let b = 0;
    let u = 0;
    for (const ch of text) {
      const n = this.utf8.encode(ch).length;
      for (let k = 0; k < n; k++) {
        charStart[b + k] = u;
        charEnd[b + k] = u + ch.length;
      }
      b += n;
      u += ch.length;
    }
    charStart[bytes.length] = text.length;
    charEnd[bytes.length] = text.length;

    const pieces = ids.map((id) => this.pieceBytes(id));
    const total = pieces.reduce((n, p) => n + p.length, 0);
    // a space the tokenizer prepends (Llama's ▁ prefix) has no counterpart in the text
    let skip = total === bytes.length + 1 && pieces.find((p) => p.length > 0)?.[0] === 0x20 ? 1 : 0;
    if (total - skip !== bytes.length) return { spans: this.approximateSpans(text, ids), exact: false };
    const spans: [number, number][] = [];
    let at = 0;
    for (let piece of pieces) {
      if (skip && piece.length > 0) {
        piece = piece.subarray(1);
        skip = 0;
      }
      if (!matchesAt(bytes, at, piece)) return { spans: this.approximateSpans(text, ids), exact: false };
      spans.push(piece.length === 0 ? [charStart[at], charStart[at]] : [charStart[at], charEnd[at + piece.length - 1]]);
      at += piece.length;
    }
    return { spans, exact: true };
  }

  /** For tokenizers that normalise the text: spans from the lengths of decoded prefixes. */
  private approximateSpans(text: string, ids: number[]): [number, number][] {
    const spans: [number, number][] = [];
    let prev = 0;
    for (let i = 0; i < ids.length; i++) {
      const end = Math.min(text.length, this.decode(ids.slice(0, i + 1)).length);
      spans.push([Math.min(prev, end), end]);
      prev = end;
    }
    return spans;
  }
}

function matchesAt(hay: Uint8Array, at: number, needle: Uint8Array): boolean {
  if (at + needle.length > hay.length) return false;
  for (let i = 0; i < needle.length; i++) if (hay[at + i] !== needle[i]) return false;
  return true;
}
