/**
 * What the editor shows for one document: the rows of the last analysis, placed at document
 * offsets, and how edits move or invalidate them. Pure TypeScript: unit-tested without VS Code.
 */
import type { TokenRow } from './tokenRows';

export interface PlacedRow {
  row: TokenRow;
  /** document offsets (UTF-16) of the token */
  start: number;
  end: number;
  /**
   * The text before this token changed after it was analysed: with a causal model its numbers
   * are out of date until the text is analysed again (or the edit is undone).
   */
  stale: boolean;
}

export interface TextEdit {
  /** replaced range in document offsets, before the edit */
  start: number;
  end: number;
  /** length of the inserted text */
  newLength: number;
}

/** One analysed text (a selection, or one part of Analyze Document) and where it is now. */
interface AnalysedPart {
  /** the text as analysed; rows index into it */
  text: string;
  rows: TokenRow[];
  /** where that text is in the document now: edits inside it grow or shrink the range */
  start: number;
  end: number;
  /** the rows as shown now, at document offsets */
  placed: PlacedRow[];
  /** an edit touched the part since it was analysed */
  edited: boolean;
}

/** Versions are unique across analyses, so a version names one set of rows. */
let lastVersion = 0;

/**
 * What the editor shows for one document: the analysed parts, their rows at document
 * offsets, and what edits do to them. Each part is analysed on its own (it is its own
 * context), so an edit changes only the part it is in: the tokens it touches lose their
 * numbers, the later tokens of that part become stale, and other parts just move. When the
 * part's text is the same again (undo), its numbers come back.
 */
export class DocumentAnalysis {
  private parts: AnalysedPart[] = [];
  /** changes whenever the rows do: indices into `rows` are valid for one version */
  version = ++lastVersion;
  /** the rows of every part in document order, made when first asked for after a change */
  private flat?: PlacedRow[];

  /**
   * @param rows rows of `text`, analysed where the document offset `baseOffset` is now
   */
  constructor(rows: TokenRow[] = [], baseOffset = 0, text?: string) {
    if (rows.length > 0 || text !== undefined) this.addPart(rows, baseOffset, text);
  }

  /** Adds an analysed text (without `text`, an undo cannot be recognised: the part is never restored). */
  addPart(rows: TokenRow[], baseOffset: number, text?: string): void {
    const kept = rows.filter((r) => r.end > r.start);
    const length = text?.length ?? kept.reduce((m, r) => Math.max(m, r.end), 0);
    const part: AnalysedPart = {
      text: text ?? '',
      rows: kept,
      start: baseOffset,
      end: baseOffset + length,
      placed: [],
      edited: false,
    };
    part.placed = placeAll(part);
    this.parts.push(part);
    this.parts.sort((x, y) => x.start - y.start);
    this.flat = undefined;
    this.version = ++lastVersion;
  }

  /**
   * A copy without the tokens inside `ranges` (which are being analysed again); parts left
   * without tokens are dropped, the others keep their text so that an undo still restores them.
   */
  without(ranges: readonly [number, number][]): DocumentAnalysis {
    const outside = (start: number, end: number) => ranges.every(([a, b]) => end <= a || start >= b);
    const copy = new DocumentAnalysis();
    for (const p of this.parts) {
      // copies: edits move rows in place, and this analysis must not move the other's
      const placed = p.placed.filter((r) => outside(r.start, r.end)).map((r) => ({ ...r }));
      if (placed.length === 0) continue;
      // an edited part's rows no longer sit at their analysed offsets: it cannot be restored
      const rows = p.edited ? [] : p.rows.filter((r) => outside(p.start + r.start, p.start + r.end));
      copy.parts.push({ ...p, text: p.edited ? '' : p.text, rows, placed });
    }
    return copy;
  }

  /**
   * Applies the edits of one change event (offsets before the event; VS Code lists them so
   * that applying them from the last to the first is exact), then restores every edited part
   * whose text is the same as when it was analysed. `textOf` reads the document after the event.
   */
  applyEdits(edits: readonly TextEdit[], textOf: (start: number, end: number) => string): void {
    const touched = new Set<AnalysedPart>();
    for (const e of [...edits].sort((x, y) => y.start - x.start)) {
      const delta = e.newLength - (e.end - e.start);
      let taken = false;
      for (const p of this.parts) {
        // text typed where one part ends and the next begins belongs to the first
        const insertionAtStart = e.start === e.end && e.start === p.start;
        if (e.end < p.start || (insertionAtStart && taken)) {
          p.start += delta;
          p.end += delta;
          for (const r of p.placed) {
            r.start += delta;
            r.end += delta;
          }
        } else if (e.start <= p.end) {
          taken = true;
          touched.add(p);
          p.edited = true;
          p.start = Math.min(p.start, e.start);
          p.end = Math.max(p.end, e.end) + delta;
          const placed: PlacedRow[] = [];
          for (const r of p.placed) {
            // a token that ends before the edit keeps its numbers: its context did not change
            if (r.end < e.start) placed.push(r);
            else if (r.start > e.end)
              placed.push({ row: r.row, start: r.start + delta, end: r.end + delta, stale: true });
            // else: the edit touches the token (an insertion at its edge too), its numbers are gone
          }
          p.placed = placed;
        }
      }
    }
    for (const p of touched) {
      if (p.text.length > 0 && p.end - p.start === p.text.length && textOf(p.start, p.end) === p.text) {
        p.edited = false;
        p.placed = placeAll(p);
      }
    }
    if (edits.length > 0) {
      this.flat = undefined;
      this.version = ++lastVersion;
    }
  }

  /** Every row in document order. */
  get rows(): PlacedRow[] {
    if (!this.flat) {
      this.flat = this.parts.flatMap((p) => p.placed);
      this.flat.sort((x, y) => x.start - y.start || x.end - y.end);
    }
    return this.flat;
  }

  /** Where the first analysed text starts now (its first token has no row), or undefined. */
  get firstStart(): number | undefined {
    return this.parts[0]?.start;
  }

  /** How many rows are stale. */
  get staleCount(): number {
    return this.rows.reduce((n, r) => n + (r.stale ? 1 : 0), 0);
  }

  /** Document ranges of the parts that have stale or lost tokens (what a re-analysis must cover). */
  get editedRanges(): [number, number][] {
    return this.parts.filter((p) => p.edited).map((p) => [p.start, p.end]);
  }

  /** Index in `rows` of the row under a document offset (the smallest span containing it), or -1. */
  indexAt(offset: number): number {
    const rows = this.rows;
    // the last row starting at or before the offset, by bisection
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid].start <= offset) lo = mid + 1;
      else hi = mid;
    }
    let best = -1;
    // rows sharing a span (byte-fallback pieces) or overlapping: look back a few
    for (let i = lo - 1; i >= 0 && i >= lo - 8; i--) {
      const r = rows[i];
      if (
        r.start <= offset &&
        offset < r.end &&
        (best < 0 || r.end - r.start <= rows[best].end - rows[best].start)
      )
        best = i;
    }
    return best;
  }

  /** The row under a document offset (the smallest span containing it). */
  rowAt(offset: number): PlacedRow | undefined {
    const i = this.indexAt(offset);
    return i < 0 ? undefined : this.rows[i];
  }

  /**
   * The same token in this analysis as `r` in another analysis of the same text (same place,
   * same target id), or undefined: how the colour by change and the before/after view pair them.
   */
  sameToken(r: PlacedRow): PlacedRow | undefined {
    const rows = this.rows;
    // the first row starting at r.start, by bisection; byte-fallback pieces share a span
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid].start < r.start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < rows.length && rows[i].start === r.start; i++)
      if (rows[i].end === r.end && rows[i].row.target === r.row.target) return rows[i];
    return undefined;
  }

  get isEmpty(): boolean {
    return this.rows.length === 0;
  }
}

function placeAll(p: AnalysedPart): PlacedRow[] {
  return p.rows.map((row) => ({ row, start: p.start + row.start, end: p.start + row.end, stale: false }));
}

/**
 * The edits made to a document while an analysis runs, in the order they happened (each in
 * the offsets of its own moment), so that a range taken before them can be found again.
 */
export class EditLog {
  private readonly edits: TextEdit[] = [];

  /** How many edits have been recorded: a point in time to map from. */
  get length(): number {
    return this.edits.length;
  }

  record(e: TextEdit): void {
    this.edits.push(e);
  }

  /**
   * Where [start, end) (offsets after the first `since` edits) is now, or undefined when a
   * later edit touched it: inside, or text typed right at its end (which belongs to it when
   * the range is taken again). An edit before the range moves it; one after leaves it.
   */
  mapRange(start: number, end: number, since: number): [number, number] | undefined {
    for (const e of this.edits.slice(since)) {
      const delta = e.newLength - (e.end - e.start);
      if (e.end <= start) {
        start += delta;
        end += delta;
      } else if (e.start > end) continue;
      else return undefined;
    }
    return [start, end];
  }

  /** Like mapRange, but a range an edit touched (or typed onto at its end) grows to cover the edit's new text. */
  coverRange(start: number, end: number, since: number): [number, number] {
    for (const e of this.edits.slice(since)) {
      const delta = e.newLength - (e.end - e.start);
      if (e.end <= start) {
        start += delta;
        end += delta;
      } else if (e.start > end)
        continue; // text typed right at the end joins the range
      else {
        const newEnd = Math.max(end, e.end) + delta;
        start = Math.min(start, e.start);
        end = newEnd;
      }
    }
    return [start, end];
  }
}
