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
}

export interface TextEdit {
  /** replaced range in document offsets, before the edit */
  start: number;
  end: number;
  /** length of the inserted text */
  newLength: number;
}

export class DocumentAnalysis {
  rows: PlacedRow[];

  /**
   * @param baseOffset where the analysed text starts in the document
   */
  constructor(rows: TokenRow[], baseOffset: number) {
    this.rows = rows
      .filter((r) => r.end > r.start)
      .map((row) => ({ row, start: baseOffset + row.start, end: baseOffset + row.end }));
  }

  /**
   * Applies an edit: tokens the edit touches lose their numbers (they would be stale), tokens
   * after it move. An insertion exactly at a token's edge touches that token too, because it
   * changes the token's text or its context.
   */
  applyEdit(e: TextEdit): void {
    const delta = e.newLength - (e.end - e.start);
    const kept: PlacedRow[] = [];
    for (const r of this.rows) {
      if (r.end < e.start) kept.push(r);
      else if (r.start > e.end) kept.push({ ...r, start: r.start + delta, end: r.end + delta });
      // else: overlaps or touches the edit, dropped
    }
    this.rows = kept;
  }

  /** The row under a document offset (the smallest span containing it). */
  rowAt(offset: number): PlacedRow | undefined {
    let best: PlacedRow | undefined;
    for (const r of this.rows) {
      if (r.start <= offset && offset < r.end && (!best || r.end - r.start < best.end - best.start)) best = r;
    }
    return best;
  }

  get isEmpty(): boolean {
    return this.rows.length === 0;
  }
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
