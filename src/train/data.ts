/**
 * Training data: documents from text, a file, a folder of text or code files, or JSONL
 * ({"text"} or {"prompt", "completion"} records), tokenised like `inspect` tokenises text,
 * and packed into fixed-length windows that never span two documents.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../core/errors';
import type { TextTokenizer } from '../models/tokenizer';
import { shuffle, type Rng } from '../core/random';
import type { TrainDocument } from '../shared/protocol';

/** Text and code files a folder may hold; anything else (binaries, lock files) is skipped. */
const TEXT_EXTENSIONS = new Set([
  '.txt',
  '.md',
  '.rst',
  '.ts',
  '.tsx',
  '.js',
  '.jsx',
  '.mjs',
  '.cjs',
  '.py',
  '.java',
  '.c',
  '.h',
  '.cc',
  '.cpp',
  '.hpp',
  '.cs',
  '.go',
  '.rs',
  '.rb',
  '.php',
  '.swift',
  '.kt',
  '.scala',
  '.sh',
  '.json',
  '.jsonl',
  '.yaml',
  '.yml',
  '.toml',
  '.html',
  '.css',
  '.sql',
  '.tex',
]);
const SKIPPED_FOLDERS = new Set([
  'node_modules',
  '.git',
  '.hg',
  '.svn',
  'dist',
  'out',
  'build',
  '__pycache__',
  '.venv',
]);
/** Files larger than this are skipped in folders (minified bundles, data dumps). */
const MAX_FOLDER_FILE_BYTES = 4 << 20;

/** Reads every document of a data path: a JSONL file, a text file, or a folder of them. */
export function readDocuments(dataPath: string): TrainDocument[] {
  if (!fs.existsSync(dataPath)) throw new InputError(`data ${dataPath} does not exist`);
  const st = fs.statSync(dataPath);
  if (st.isDirectory()) {
    const docs: TrainDocument[] = [];
    const walk = (dir: string) => {
      for (const entry of fs
        .readdirSync(dir, { withFileTypes: true })
        .sort((a, b) => a.name.localeCompare(b.name))) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (!SKIPPED_FOLDERS.has(entry.name) && !entry.name.startsWith('.')) walk(full);
        } else if (
          entry.isFile() &&
          TEXT_EXTENSIONS.has(path.extname(entry.name).toLowerCase()) &&
          fs.statSync(full).size <= MAX_FOLDER_FILE_BYTES
        ) {
          docs.push(...readFile(full));
        }
      }
    };
    walk(dataPath);
    if (docs.length === 0)
      throw new InputError(
        `the folder ${dataPath} has no text or code files (${[...TEXT_EXTENSIONS].slice(0, 8).join(', ')}, …)`,
      );
    return docs;
  }
  return readFile(dataPath);
}

function readFile(file: string): TrainDocument[] {
  const text = fs.readFileSync(file, 'utf8');
  if (file.toLowerCase().endsWith('.jsonl')) return parseJsonl(text, file);
  return text.trim() ? [{ source: file, text }] : [];
}

/** JSONL: one record per line with a "text" field, or a "prompt" field and optionally a "completion" field. */
export function parseJsonl(text: string, source: string): TrainDocument[] {
  const docs: TrainDocument[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let record: any;
    try {
      record = JSON.parse(line);
    } catch (e) {
      throw new InputError(`${source}:${i + 1} is not valid JSON (${(e as Error).message})`);
    }
    const where = `${source}:${i + 1}`;
    if (typeof record?.text === 'string') docs.push({ source: where, text: record.text });
    else if (typeof record?.prompt === 'string' && typeof record?.completion === 'string') {
      docs.push({
        source: where,
        text: record.prompt + record.completion,
        promptChars: record.prompt.length,
      });
    } else if (typeof record?.prompt === 'string' && record.completion === undefined) {
      // a prompt alone: the sequence-level methods sample its completion (nothing to train on otherwise)
      docs.push({ source: where, text: record.prompt, promptChars: record.prompt.length });
    } else
      throw new InputError(
        `${where} has neither a "text" string nor a "prompt" string (with an optional "completion" string)`,
      );
  });
  return docs;
}

/** One training window: L input ids, the target of each position (the next token), and which targets count. */
export interface Window {
  ids: number[];
  targets: number[];
  mask: number[];
  source: string;
}

/**
 * Packs each document into windows of `seqLen` tokens. Consecutive windows overlap by one
 * token, so every token after the first of a document is a target exactly once; the last
 * window is padded (padding is never a target).
 */
export function packWindows(docs: TrainDocument[], tokenizer: TextTokenizer, seqLen: number): Window[] {
  if (seqLen < 2) throw new InputError('the sequence length must be at least 2');
  const windows: Window[] = [];
  for (const doc of docs) {
    const enc = tokenizer.encode(doc.text);
    // a token is trained on when it is a completion token (or there is no prompt)
    const counts = enc.ids.map((_, i) => doc.promptChars === undefined || enc.spans[i][0] >= doc.promptChars);
    windows.push(...windowsOf(enc.ids, counts, seqLen, doc.source));
  }
  return windows;
}

/** A token sequence whose first `promptTokens` ids are a prompt (no loss on them): a sampled completion. */
export interface TokenSequence {
  ids: number[];
  promptTokens: number;
  source: string;
}

/** Packs prompt-and-completion id sequences as packWindows packs documents; only completion tokens (an EOS included) are targets. */
export function packSequences(sequences: TokenSequence[], seqLen: number): Window[] {
  if (seqLen < 2) throw new InputError('the sequence length must be at least 2');
  return sequences.flatMap((s) =>
    windowsOf(
      s.ids,
      s.ids.map((_, i) => i >= s.promptTokens),
      seqLen,
      s.source,
    ),
  );
}

/**
 * The windows of one sequence. Consecutive windows overlap by one token, so every token after
 * the first is a target exactly once (when `counts` says it counts); the last window is padded
 * (padding is never a target). Windows without a target are left out.
 */
function windowsOf(ids: number[], counts: boolean[], seqLen: number, source: string): Window[] {
  const windows: Window[] = [];
  for (let start = 0; start < ids.length - 1; start += seqLen - 1) {
    const w: Window = { ids: [], targets: [], mask: [], source };
    for (let i = 0; i < seqLen; i++) {
      const at = start + i;
      w.ids.push(at < ids.length ? ids[at] : 0);
      const target = at + 1;
      const valid = i < seqLen - 1 && target < ids.length && counts[target];
      w.targets.push(valid ? ids[target] : 0);
      w.mask.push(valid ? 1 : 0);
    }
    if (w.mask.some((m) => m)) windows.push(w);
  }
  return windows;
}

/** A prompt to sample completions for, with the dataset's completion when it has one. */
export interface Prompt {
  text: string;
  completion?: string;
  source: string;
}

/**
 * The prompts of the data: each prompt-and-completion document's prompt (JSONL `prompt`
 * fields); any other text cut into prompts of `promptTokens` tokens, at token starts.
 */
export function readPrompts(docs: TrainDocument[], tokenizer: TextTokenizer, promptTokens: number): Prompt[] {
  if (!(Number.isInteger(promptTokens) && promptTokens >= 1))
    throw new InputError('--prompt-tokens must be a whole number ≥ 1');
  const prompts: Prompt[] = [];
  for (const doc of docs) {
    if (doc.promptChars !== undefined) {
      const text = doc.text.slice(0, doc.promptChars);
      const completion = doc.text.slice(doc.promptChars);
      if (text.trim()) prompts.push({ text, source: doc.source, ...(completion ? { completion } : {}) });
      continue;
    }
    // every promptTokens tokens a new prompt starts, at the first token with text of its own
    const starts = tokenizer
      .encode(doc.text)
      .spans.filter(([a, b]) => b > a)
      .map(([a]) => a);
    for (let i = 0; i < starts.length; i += promptTokens) {
      const text = doc.text.slice(starts[i], starts[i + promptTokens] ?? doc.text.length);
      if (text.trim()) prompts.push({ text, source: `${doc.source} (prompt ${prompts.length + 1})` });
    }
  }
  if (prompts.length === 0) throw new InputError('the data has no prompts (every prompt is empty)');
  return prompts;
}

/**
 * Splits windows into training and held-out sets: about a tenth held out (at most 64
 * windows). With several documents whole documents are held out, so no held-out window
 * shares a document with a training window; a single document is split by windows.
 */
export function splitWindows(
  windows: Window[],
  rng: Rng,
  heldOutFraction = 0.1,
): { train: Window[]; heldOut: Window[]; shared: boolean } {
  if (windows.length === 0)
    throw new InputError('the data has no text to train on (every document is shorter than two tokens)');
  if (windows.length === 1) return { train: windows, heldOut: windows, shared: true };
  const target = Math.min(64, Math.max(1, Math.round(windows.length * heldOutFraction)));
  const sources = [...new Set(windows.map((w) => w.source))];
  const held = new Set<Window>();
  if (sources.length >= 3) {
    const bySource = new Map(sources.map((s) => [s, windows.filter((w) => w.source === s)]));
    for (const source of shuffle(sources, rng)) {
      if (held.size >= target) break;
      const own = bySource.get(source)!;
      if (held.size + own.length > windows.length / 2) continue; // never hold out half the data
      own.forEach((w) => held.add(w));
    }
  }
  if (held.size === 0) {
    shuffle(
      windows.map((_, i) => i),
      rng,
    )
      .slice(0, target)
      .forEach((i) => held.add(windows[i]));
  }
  // evaluation uses at most 64 of the held-out windows
  const heldOut = windows.filter((w) => held.has(w)).slice(0, 64);
  return { train: windows.filter((w) => !held.has(w)), heldOut, shared: false };
}
