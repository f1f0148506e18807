/**
 * Comparing two models whose tokenizers differ, exactly: where both tokenizations of the same
 * text start a token at the same character, the text between two such points is covered by
 * whole tokens of both, so each model's log-probability of it (the chain rule over its own
 * tokens, each conditioned on the text before it) is exact and the two can be compared:
 *
 *   boundary of a tokenization   a character offset where a token of positive width starts and
 *                                every earlier token has ended (and the end of the text)
 *   comparison point             a boundary of both tokenizations
 *   span [b_k, b_k+1)            between consecutive comparison points
 *   log P_M(span)                Σ log p_M(token_i | tokens < i) over M's tokens in the span
 *   logRatio                     log P_T(span) − log P_S(span); k1 = −logRatio, k3 = e^logRatio − 1 − logRatio
 *
 * A span is compared only when both models predict its first token (token 0 has no prediction
 * when a tokenizer adds no BOS). Offsets are UTF-16, as the editor's; boundaries inside a
 * character (a byte-level split) are not offsets and are left out, which only merges spans.
 */

export interface AlignedSpan {
  /** UTF-16 offsets in the text */
  start: number;
  end: number;
  text: string;
  teacherLogp: number;
  studentLogp: number;
  /** log P_T − log P_S */
  logRatio: number;
  k1: number;
  k3: number;
  /** each model's tokens in the span, as text (what the editor's hover lists) */
  teacherPieces?: string[];
  studentPieces?: string[];
  /** each model's tokens in the span: the first one's index and how many */
  teacherFirst: number;
  teacherTokens: number;
  studentFirst: number;
  studentTokens: number;
  /**
   * ULD's distance on the span (a cross-vocabulary approximation, not a divergence): each
   * model's row predicting its last token, times the probability of its earlier tokens (GOLD's
   * "bayesian" merge), sorted descending, the shorter vocabulary zero-padded, L1
   */
  uld?: number;
}

/**
 * ULD between two merged rows: Σ_k |a_(k) − b_(k)| over both sorted descending, the shorter
 * zero-padded (the closed form of Wasserstein-1 under a uniform cost on sorted values).
 */
export function sortedL1(a: Float64Array, b: Float64Array): number {
  const sa = Float64Array.from(a).sort().reverse();
  const sb = Float64Array.from(b).sort().reverse();
  let sum = 0;
  for (let k = 0; k < Math.max(sa.length, sb.length); k++) sum += Math.abs((sa[k] ?? 0) - (sb[k] ?? 0));
  return sum;
}

/**
 * Offset → index of the first token of positive width starting there (every earlier token
 * ended), plus the end of the text → the index after its last token of positive width (an
 * EOS a tokenizer appends, like a BOS it prepends, has no text and belongs to no span).
 */
export function tokenBoundaries(spans: [number, number][]): Map<number, number> {
  const at = new Map<number, number>();
  let reached = -Infinity; // the furthest end of the tokens so far
  let afterLast = 0;
  spans.forEach(([s, e], i) => {
    if (e > s && reached <= s && !at.has(s)) at.set(s, i);
    if (e > s) afterLast = i + 1;
    reached = Math.max(reached, e);
  });
  if (afterLast > 0) at.set(reached, afterLast);
  return at;
}

/** What a tokenizer adds to every text it encodes (BOS, …): the room a piece leaves for them. */
export const SPECIAL_TOKEN_ROOM = 4;

/**
 * Cuts a text into consecutive pieces [start, end) at the places where the student starts a
 * token (`studentSpans`: its tokens of the whole text), each of at most `maxTokens` of those
 * tokens, shortened further until `fits(start, end)` (a piece tokenized alone, by either model,
 * may take more tokens than inside the text). Every character is in one piece. Throws
 * `tooLong` when not even one token's text fits.
 */
export function textPieces(
  studentSpans: [number, number][],
  maxTokens: number,
  fits: (start: number, end: number) => boolean,
  tooLong: () => Error,
): [number, number][] {
  // (offset, token index) of each start, in order, and the text's end
  const starts = [...tokenBoundaries(studentSpans).entries()].sort((a, b) => a[0] - b[0]);
  const pieces: [number, number][] = [];
  let from = 0;
  while (from + 1 < starts.length) {
    let to = from + 1;
    while (to + 1 < starts.length && starts[to + 1][1] - starts[from][1] <= maxTokens) to++;
    while (!fits(starts[from][0], starts[to][0])) {
      if (to === from + 1) throw tooLong();
      to--;
    }
    pieces.push([starts[from][0], starts[to][0]]);
    from = to;
  }
  return pieces;
}

/**
 * The spans between the comparison points of two tokenizations of `text`. `teacherLogp[i]` is
 * log p_T(token i | tokens < i) (NaN for token 0), likewise `studentLogp`.
 */
export function alignSpans(
  text: string,
  teacher: { spans: [number, number][]; logp: ArrayLike<number> },
  student: { spans: [number, number][]; logp: ArrayLike<number> },
): AlignedSpan[] {
  const sum = (logp: ArrayLike<number>, from: number, count: number) => {
    let s = 0;
    for (let i = from; i < from + count; i++) s += logp[i];
    return s;
  };
  return alignedGroups(teacher.spans, student.spans).map((group) => {
    const teacherLogp = sum(teacher.logp, group.teacherFirst, group.teacherTokens);
    const studentLogp = sum(student.logp, group.studentFirst, group.studentTokens);
    const logRatio = teacherLogp - studentLogp;
    return {
      ...group,
      text: text.slice(group.start, group.end),
      teacherLogp,
      studentLogp,
      logRatio,
      k1: -logRatio,
      k3: Math.expm1(logRatio) - logRatio,
    };
  });
}

/** The tokens of both tokenizations between two consecutive comparison points. */
export interface AlignedGroup {
  start: number;
  end: number;
  teacherFirst: number;
  teacherTokens: number;
  studentFirst: number;
  studentTokens: number;
}

/**
 * The groups of tokens between consecutive comparison points of two tokenizations (their
 * character spans), each model's first token of the group predicted (index ≥ 1).
 */
export function alignedGroups(
  teacherSpans: [number, number][],
  studentSpans: [number, number][],
): AlignedGroup[] {
  const bt = tokenBoundaries(teacherSpans);
  const bs = tokenBoundaries(studentSpans);
  const points = [...bt.keys()].filter((o) => bs.has(o)).sort((a, b) => a - b);
  const out: AlignedGroup[] = [];
  for (let k = 0; k + 1 < points.length; k++) {
    const [start, end] = [points[k], points[k + 1]];
    const [t0, t1] = [bt.get(start)!, bt.get(end)!];
    const [s0, s1] = [bs.get(start)!, bs.get(end)!];
    // both models must predict the span's first token
    if (t0 < 1 || s0 < 1) continue;
    out.push({
      start,
      end,
      teacherFirst: t0,
      teacherTokens: t1 - t0,
      studentFirst: s0,
      studentTokens: s1 - s0,
    });
  }
  return out;
}

/** log Σ_v exp(rows[from + v]) over n entries, in float64. */
export function logSumExpRow(rows: ArrayLike<number>, from: number, n: number): number {
  let max = -Infinity;
  for (let v = 0; v < n; v++) if (rows[from + v] > max) max = rows[from + v];
  let sum = 0;
  for (let v = 0; v < n; v++) sum += Math.exp(rows[from + v] - max);
  return max + Math.log(sum);
}

/** One model's logits over its own tokens [n, V] (row i predicts token i + 1). */
export interface TokenLogits {
  rows: ArrayLike<number>;
  vocab: number;
}

/** log p(token i | tokens < i) at T = 1 for every token (token 0, which nothing predicts: NaN). */
export function tokenLogps(pass: TokenLogits, ids: number[]): Float64Array {
  const V = pass.vocab;
  const logp = new Float64Array(ids.length).fill(NaN);
  for (let i = 1; i < ids.length; i++)
    logp[i] = pass.rows[(i - 1) * V + ids[i]] - logSumExpRow(pass.rows, (i - 1) * V, V);
  return logp;
}

/**
 * GOLD's "bayesian" merge of tokens [first, first + count) (the chain rule): the distribution
 * of the row that predicts the group's last token, times the probability of its earlier
 * tokens, unnormalised:  row_v = p(v | < last) · Π_{first ≤ i < last} p(token_i | < i).
 */
export function mergedRow(
  pass: TokenLogits,
  logp: ArrayLike<number>,
  first: number,
  count: number,
): Float64Array {
  const V = pass.vocab;
  const last = first + count - 1;
  const at = (last - 1) * V; // row last − 1 predicts token last
  let logScale = -logSumExpRow(pass.rows, at, V);
  for (let i = first; i < last; i++) logScale += logp[i];
  const row = new Float64Array(V);
  for (let v = 0; v < V; v++) row[v] = Math.exp(pass.rows[at + v] + logScale);
  return row;
}
