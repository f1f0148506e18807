/** The JSON document of `inspect --format json`: keys as in docs/metrics.md. */
import type { InspectResult } from '../shared/protocol';
export function toJsonReport(r: InspectResult): object {
  return {
    teacher: r.teacher,
    student: r.student,
    ids: r.ids,
    rows: r.rows,
    summary: r.summary,
    windows: r.windows,
    exactSpans: r.exactSpans,
    messages: [...r.messages, ...(r.windowNotice ? [r.windowNotice] : [])],
    ...(r.layers ? { layers: r.layers } : {}),
    ...(r.teacherSupport ? { teacherSupport: r.teacherSupport } : {}),
    ...(r.spans ? { spans: r.spans } : {}),
    timings: r.timings,
  };
}
