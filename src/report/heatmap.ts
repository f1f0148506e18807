/**
 * The heatmap of an analysed text, as the panel and the HTML report both draw it: the text
 * cut into plain runs and token spans (byte-fallback pieces that share one character's
 * span are drawn once, with the largest value), and each span's colour band on one scale.
 * One implementation, so the two surfaces always agree (range, bands, fixed maximum).
 */
import { scalePosition, scaleRange } from '../core/colorScale';

/** Colour bands of the scale (theme colours heat0 … heat9 in the editor and panel). */
export const BANDS = 10;

/** A run of text outside any token, or one token span with the rows that share it. */
export type HeatSegment =
  | { kind: 'text'; text: string }
  | { kind: 'token'; start: number; end: number; text: string; rows: number[] };

interface SpanRow {
  start: number;
  end: number;
}

/**
 * Cuts `text[from … last row end)` into segments, in text order. `from` is where the analysed
 * text starts: its first token has no row (nothing before it to predict it from) but is shown,
 * as plain text; without it the segments start at the first row.
 */
export function heatmapSegments(text: string, rows: readonly SpanRow[], from?: number): HeatSegment[] {
  const segments: HeatSegment[] = [];
  if (rows.length === 0) return segments;
  const order = rows.map((_, i) => i).sort((x, y) => rows[x].start - rows[y].start || x - y);
  const first = Math.min(from ?? Infinity, rows[order[0]].start);
  const last = rows.reduce((m, r) => Math.max(m, r.end), 0);
  let at = first;
  for (let k = 0; k < order.length; k++) {
    const r = rows[order[k]];
    if (r.start < at || r.end === r.start) continue; // shares a span already drawn, or empty
    if (r.start > at) segments.push({ kind: 'text', text: text.slice(at, r.start) });
    const sharing = [order[k]];
    for (let j = k + 1; j < order.length && rows[order[j]].start === r.start; j++)
      if (rows[order[j]].end === r.end) sharing.push(order[j]);
    segments.push({
      kind: 'token',
      start: r.start,
      end: r.end,
      text: text.slice(r.start, r.end),
      rows: sharing,
    });
    at = r.end;
  }
  if (last > at) segments.push({ kind: 'text', text: text.slice(at, last) });
  return segments;
}

/** The scale's range for these values: 0 (or a negative minimum) to `fixedMax` when set (> 0), else the largest value. */
export function heatRange(values: readonly number[], fixedMax?: number): [number, number] {
  return scaleRange(values as number[], fixedMax);
}

/** The band (0 … BANDS − 1) of a value on the range. */
export function heatBand(value: number, range: [number, number]): number {
  return Math.min(BANDS - 1, Math.floor(scalePosition(value, range) * BANDS));
}

/** A token span's value: the largest of the rows that share it. */
export function segmentValue(
  segment: Extract<HeatSegment, { kind: 'token' }>,
  valueOf: (row: number) => number,
): number {
  return Math.max(...segment.rows.map(valueOf));
}

/** Steps of the colour-by-change scale on each side (fell / rose). */
export const CHANGE_STEPS = 5;

/** The largest |after − before| of these changes (undefined: no counterpart), or 1 when there is none. */
export function maxAbsChange(changes: readonly (number | undefined)[]): number {
  let m = 0;
  for (const d of changes) if (d !== undefined) m = Math.max(m, Math.abs(d));
  return m || 1;
}

/**
 * The colour of a change after − before on the scale ±`maxAbs`: lower is better for every
 * metric, so a fall is `fell0`…`fell4` (green), a rise `rose0`…`rose4` (red), no change
 * `same`, no counterpart in the earlier analysis `unmatched`.
 */
export function changeClass(change: number | undefined, maxAbs: number): string {
  if (change === undefined) return 'unmatched';
  if (change === 0) return 'same';
  const step = Math.min(CHANGE_STEPS - 1, Math.floor((Math.abs(change) / maxAbs) * CHANGE_STEPS));
  return `${change < 0 ? 'fell' : 'rose'}${step}`;
}
