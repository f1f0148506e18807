/**
 * One result for a document analysed in parts (Analyze Document): rows at document offsets,
 * row `index` counting through the whole document's ids, the ids without the BOS token that
 * each later part repeats, and the summary over every row.
 */
import type { MetricKey } from '../core/metricKeys';
import { markHard, summarize } from '../core/tokenRows';
import type { InspectResult } from '../shared/protocol';

export interface AnalysedPart {
  result: InspectResult;
  /** character offset of the part in the document */
  baseOffset: number;
}

/**
 * A part starts with a BOS token when its first row is its second id and begins at the
 * part's first character: the first id then covers no text.
 */
function startsWithBos(r: InspectResult): boolean {
  return r.rows.length > 0 && r.rows[0].index === 1 && r.rows[0].start === 0;
}

export function mergeParts(parts: AnalysedPart[], metric: MetricKey): InspectResult {
  if (parts.length === 0) throw new Error('mergeParts needs at least one part');
  const ids: number[] = [];
  const rows: InspectResult['rows'] = [];
  const windows: [number, number][] = [];
  // a pair whose tokenizers differ: each part's spans at document offsets (their teacherFirst
  // counts the teacher's tokens of their part: its ids are not in the result)
  const spans: NonNullable<InspectResult['spans']> = [];
  for (const [k, part] of parts.entries()) {
    const r = part.result;
    const skip = k > 0 && startsWithBos(r) ? 1 : 0; // a later part's own BOS is not in the document's sequence
    const offset = ids.length - skip;
    ids.push(...r.ids.slice(skip));
    for (const row of r.rows)
      rows.push({
        ...row,
        index: row.index + offset,
        start: row.start + part.baseOffset,
        end: row.end + part.baseOffset,
        ...(row.span !== undefined ? { span: row.span + spans.length } : {}),
      });
    for (const span of r.spans ?? [])
      spans.push({
        ...span,
        start: span.start + part.baseOffset,
        end: span.end + part.baseOffset,
        studentFirst: span.studentFirst + offset,
      });
    for (const [a, b] of r.windows) windows.push([Math.max(0, a + offset), b + offset]);
  }
  markHard(rows); // the median over the whole document, as for one analysis
  const first = parts[0].result;
  return {
    ...first,
    ids,
    rows,
    windows,
    summary: summarize(rows, metric),
    messages: [...new Set(parts.flatMap((p) => p.result.messages))],
    windowNotice: parts.some((p) => p.result.windowNotice)
      ? `${parts.filter((p) => p.result.windowNotice).length} of ${parts.length} parts were longer than the context: analysed in overlapping windows`
      : undefined,
    exactSpans: parts.every((p) => p.result.exactSpans),
    ...(parts.some((p) => p.result.spans) ? { spans } : {}),
  };
}
