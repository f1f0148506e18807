/**
 * Distillation data for a teacher and a student whose tokenizers differ (the ULD loss,
 * uldLoss.ts). Each document is cut into pieces of text at the student's token starts; each
 * piece is tokenized by both models on its own (each with its own special tokens), so both read
 * exactly the same text. The pieces' aligned groups (core/spanAlignment.ts) are the comparison
 * points: the tokens of both between two places where both tokenizations start a token.
 *
 *   window       the student's tokens of the piece, padded to seqLen (targets: the next token)
 *   groups       per aligned group: the student rows it reads, and the teacher's merged row,
 *                sorted descending and cut (or zero-padded) to the student's vocabulary, with
 *                the teacher's mass ranked beyond it as `tail`
 */
import { InputError, ModelLoadError } from '../core/errors';
import {
  alignedGroups,
  mergedRow,
  SPECIAL_TOKEN_ROOM,
  textPieces,
  tokenLogps,
  type AlignedGroup,
  type TokenLogits,
} from '../core/spanAlignment';
import type { TextTokenizer } from '../models/tokenizer';
import { float32Logits, type LanguageModel } from '../models/languageModel';
import type { TrainDocument } from '../shared/protocol';
import type { Window } from './data';
import { ULD_INPUTS } from './uldLoss';

/** A window whose text both models tokenize: the student's ids (the Window) and the teacher's. */
export interface TextWindow extends Window {
  text: string;
  teacherIds: number[];
  /** the aligned groups trained on (none inside a prompt) */
  groups: AlignedGroup[];
}

/**
 * Cuts every document into pieces of at most `seqLen` student tokens (each tokenized alone by
 * both models) and aligns them. Every piece's text follows the previous one's, so each token
 * of a document is in one piece; a token is a target when it is not a prompt token.
 */
export function packTextWindows(
  docs: TrainDocument[],
  student: TextTokenizer,
  teacher: TextTokenizer,
  seqLen: number,
  teacherContext: number,
): TextWindow[] {
  if (seqLen < SPECIAL_TOKEN_ROOM + 2)
    throw new InputError(`--seq-len must be at least ${SPECIAL_TOKEN_ROOM + 2} when the tokenizers differ`);
  const windows: TextWindow[] = [];
  for (const doc of docs) {
    const fits = (start: number, end: number) => {
      const text = doc.text.slice(start, end);
      return (
        exactEncoding(student, text, 'student').ids.length <= seqLen &&
        exactEncoding(teacher, text, 'teacher').ids.length <= teacherContext
      );
    };
    const pieces = textPieces(
      exactEncoding(student, doc.text, 'student').spans,
      seqLen - SPECIAL_TOKEN_ROOM,
      fits,
      () =>
        new InputError(
          `${doc.source}: a single token of text does not fit --seq-len ${seqLen} (or the teacher's context, ${teacherContext})`,
        ),
    );
    for (const [start, end] of pieces) {
      const piece = pieceWindow(doc, start, end, student, teacher, seqLen);
      if (piece.mask.some((m) => m) && piece.groups.length > 0) windows.push(piece);
    }
  }
  return windows;
}

function exactEncoding(tokenizer: TextTokenizer, text: string, who: 'teacher' | 'student') {
  const enc = tokenizer.encode(text);
  if (!enc.exactSpans)
    throw new ModelLoadError(
      `the ${who}'s tokenizer normalises the text, so its tokens cannot be placed on the text exactly; distilling across tokenizers needs both placed exactly`,
      who,
    );
  return enc;
}

/** The window of doc.text[start, end) (its tokens fit seqLen: textPieces checked). */
function pieceWindow(
  doc: TrainDocument,
  start: number,
  end: number,
  student: TextTokenizer,
  teacher: TextTokenizer,
  seqLen: number,
): TextWindow {
  const text = doc.text.slice(start, end);
  const s = exactEncoding(student, text, 'student');
  const t = exactEncoding(teacher, text, 'teacher');
  // a prompt's tokens (JSONL prompt/completion) are read, not trained on
  const promptEnd = doc.promptChars === undefined ? 0 : doc.promptChars - start;
  const counts = (i: number) => s.spans[i][0] >= promptEnd;
  const w: TextWindow = {
    ids: [],
    targets: [],
    mask: [],
    source: doc.source,
    text,
    teacherIds: t.ids,
    groups: alignedGroups(t.spans, s.spans).filter((g) => g.start >= promptEnd),
  };
  for (let i = 0; i < seqLen; i++) {
    w.ids.push(i < s.ids.length ? s.ids[i] : 0);
    const valid = i + 1 < s.ids.length && counts(i + 1);
    w.targets.push(valid ? s.ids[i + 1] : 0);
    w.mask.push(valid ? 1 : 0);
  }
  return w;
}

/** The teacher's side of one window's groups, computed once from its logits. */
export interface UldTeacherRows {
  /** merged rows sorted descending, cut or zero-padded to the student's vocabulary: [G, V_S] */
  sorted: Float32Array;
  /** Σ of the sorted entries beyond V_S (0 when V_T ≤ V_S): [G] */
  tail: Float64Array;
  /** log P_T of each group's text (exact): [G] */
  spanLogp: Float64Array;
}

/** The teacher's merged, sorted rows of a window's groups from its logits over its own tokens. */
export function uldTeacherRows(w: TextWindow, teacher: TokenLogits, studentVocab: number): UldTeacherRows {
  const G = w.groups.length;
  const logp = tokenLogps(teacher, w.teacherIds);
  const sorted = new Float32Array(G * studentVocab);
  const tail = new Float64Array(G);
  const spanLogp = new Float64Array(G);
  w.groups.forEach((g, k) => {
    const row = mergedRow(teacher, logp, g.teacherFirst, g.teacherTokens).sort().reverse();
    sorted.set(row.subarray(0, Math.min(row.length, studentVocab)), k * studentVocab);
    for (let r = studentVocab; r < row.length; r++) tail[k] += row[r];
    for (let i = g.teacherFirst; i < g.teacherFirst + g.teacherTokens; i++) spanLogp[k] += logp[i];
  });
  return { sorted, tail, spanLogp };
}

/**
 * The uld_* inputs of a batch: window b's groups in slots b·L … b·L + L − 1 (a window has fewer
 * than L), the rest padding (mask 0); `uld_earlier` [B, L, L] marks, per window and group, the
 * rows that predict its earlier tokens. Window b's token i is predicted by row b·L + i − 1.
 */
export function uldGroupFeeds(
  batch: (TextWindow | undefined)[],
  teacherRows: (UldTeacherRows | undefined)[],
  seqLen: number,
  vocab: number,
): Record<string, { type: 'int64' | 'float32'; data: BigInt64Array | Float32Array; dims: number[] }> {
  const L = seqLen;
  const B = batch.length;
  const G = B * L; // group slots per batch, as the graph's inputs
  const last = new BigInt64Array(G);
  const earlier = new Float32Array(B * L * L);
  const teacher = new Float32Array(G * vocab);
  const tail = new Float32Array(G);
  const mask = new Float32Array(G);
  batch.forEach((w, b) => {
    if (!w) return;
    const rows = teacherRows[b]!;
    w.groups.forEach((g, j) => {
      const k = b * L + j;
      const lastToken = g.studentFirst + g.studentTokens - 1;
      last[k] = BigInt(b * L + lastToken - 1);
      for (let i = g.studentFirst; i < lastToken; i++) earlier[k * L + i - 1] = 1;
      teacher.set(rows.sorted.subarray(j * vocab, (j + 1) * vocab), k * vocab);
      tail[k] = rows.tail[j];
      mask[k] = 1;
    });
  });
  return {
    [ULD_INPUTS.last]: { type: 'int64', data: last, dims: [G] },
    [ULD_INPUTS.earlier]: { type: 'float32', data: earlier, dims: [B, L, L] },
    [ULD_INPUTS.teacher]: { type: 'float32', data: teacher, dims: [G, vocab] },
    [ULD_INPUTS.tail]: { type: 'float32', data: tail, dims: [G] },
    [ULD_INPUTS.mask]: { type: 'float32', data: mask, dims: [G] },
  };
}

/**
 * The teacher's rows of each window, from one forward pass over its own tokens; kept while they
 * fit in `budgetBytes` (a window's are its groups × the student's vocabulary, float32), and the
 * last few besides, so that the held-out evaluation, which reads a batch's rows twice (for the
 * graph, then for the span log-ratio), runs the teacher once per window when the cache is full.
 */
export class UldTeacherTargets {
  seconds = 0;
  private readonly cache = new Map<TextWindow, UldTeacherRows>();
  private keptBytes = 0;
  private readonly recent = new Map<TextWindow, UldTeacherRows>();
  private static readonly RECENT = 16;

  constructor(
    private readonly teacher: LanguageModel,
    private readonly studentVocab: number,
    private readonly budgetBytes: number,
  ) {}

  async rows(w: TextWindow): Promise<UldTeacherRows> {
    const kept = this.cache.get(w) ?? this.recent.get(w);
    if (kept) return kept;
    const t = performance.now();
    const logits = await this.teacher.forward(w.teacherIds);
    const out = uldTeacherRows(w, { rows: float32Logits(logits), vocab: logits.vocab }, this.studentVocab);
    this.seconds += (performance.now() - t) / 1000;
    const bytes = out.sorted.byteLength;
    if (this.keptBytes + bytes <= this.budgetBytes) {
      this.cache.set(w, out);
      this.keptBytes += bytes;
    } else {
      this.recent.set(w, out);
      if (this.recent.size > UldTeacherTargets.RECENT) this.recent.delete(this.recent.keys().next().value!);
    }
    return out;
  }
}

/** What a teacher whose tokenizer differs says of a sampled completion, on the aligned spans. */
export interface AcrossScore {
  /** per completion token of the student: log P_T(span) − log Q(span) of the span it is in; NaN in none */
  rewards: number[];
  /** Σ over the completion's aligned spans of log P_T(span) − log Q(span) */
  spanLogRatio: number;
  spans: number;
  /** the teacher's log p of each of its tokens of the completion */
  teacherLogp: number[];
}

/**
 * Scores the student's sampled sequence `ids` (its first `promptTokens` the prompt's encoding)
 * with a teacher whose tokenizer differs: the text is the prompt's and the completion's bytes,
 * exactly (trailing tokens that end inside a character are left out); the teacher reads it with
 * its own tokens; each aligned span of the completion gets log P_T(span) − Σ log Q of the
 * student's tokens in it (`studentLogp`: per completion token, under the distribution it was
 * drawn from).
 */
export async function scoreAcrossTokenizers(
  teacher: LanguageModel,
  teacherTokenizer: TextTokenizer,
  studentTokenizer: TextTokenizer,
  promptText: string,
  ids: number[],
  promptTokens: number,
  studentLogp: number[],
): Promise<AcrossScore> {
  const completion = ids.slice(promptTokens);
  const none: AcrossScore = {
    rewards: completion.map(() => NaN),
    spanLogRatio: 0,
    spans: 0,
    teacherLogp: [],
  };
  // the completion's text: its tokens' bytes, without a last character cut in the middle
  let kept = completion.length;
  let completionText: string | undefined;
  for (; kept >= Math.max(0, completion.length - 3); kept--) {
    completionText = utf8Text(completion.slice(0, kept).map((id) => studentTokenizer.pieceBytes(id)));
    if (completionText !== undefined) break;
  }
  if (completionText === undefined) return none;
  const text = promptText + completionText;
  const placed = studentTokenizer.spansOf(text, ids.slice(0, promptTokens + kept));
  const encT = teacherTokenizer.encode(text);
  if (!placed.exact || !encT.exactSpans) return none;
  const logits = await teacher.forward(encT.ids);
  const logpT = tokenLogps({ rows: float32Logits(logits), vocab: logits.vocab }, encT.ids);
  const score: AcrossScore = { ...none, rewards: [...none.rewards] };
  for (const g of alignedGroups(encT.spans, placed.spans)) {
    if (g.start < promptText.length) continue; // a span of the prompt, or across its end
    let logRatio = 0;
    for (let i = g.teacherFirst; i < g.teacherFirst + g.teacherTokens; i++) logRatio += logpT[i];
    for (let i = g.studentFirst; i < g.studentFirst + g.studentTokens; i++)
      logRatio -= studentLogp[i - promptTokens];
    for (let i = g.studentFirst; i < g.studentFirst + g.studentTokens; i++)
      score.rewards[i - promptTokens] = logRatio;
    score.spanLogRatio += logRatio;
    score.spans++;
  }
  encT.spans.forEach(([start, end], i) => {
    if (i >= 1 && end > start && start >= promptText.length) score.teacherLogp.push(logpT[i]);
  });
  return score;
}

/** The UTF-8 text of these bytes, or undefined when they are not valid UTF-8 (a character cut). */
function utf8Text(pieces: Uint8Array[]): string | undefined {
  const joined = new Uint8Array(pieces.reduce((n, b) => n + b.length, 0));
  pieces.reduce((at, b) => (joined.set(b, at), at + b.length), 0);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(joined);
  } catch {
    return undefined;
  }
}
