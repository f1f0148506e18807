/** The terminal view of `inspect`: the text as a heatmap coloured by one metric, then the summary. */
import { Chalk } from 'chalk';
import { heatColor, scalePosition, scaleRange, textColorOn } from '../core/colorScale';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../core/metricKeys';
import { formatNumber as fmt } from '../core/formatNumber';
import type { InspectResult } from '../shared/protocol';

export function formatTable(
  r: InspectResult,
  text: string,
  metric: MetricKey,
  o: { color?: boolean } = {},
): string {
  const chalk = o.color === false ? new Chalk({ level: 0 }) : new Chalk();
  const range = scaleRange(r.rows.map((row) => row[metric]));
  const paint = (s: string, v: number) => {
    const bg = heatColor(scalePosition(v, range));
    return chalk.bgRgb(...bg).rgb(...textColorOn(bg))(s);
  };
  // The text with each token's span painted; several tokens sharing one character (byte
  // fallback) take the largest value. Text outside rows (the first token) stays plain.
  const valueAt = new Map<number, { end: number; v: number }>();
  for (const row of r.rows) {
    const prev = valueAt.get(row.start);
    if (row.end > row.start && (!prev || row[metric] > prev.v))
      valueAt.set(row.start, { end: row.end, v: row[metric] });
  }
  let heat = '';
  for (let i = 0; i < text.length;) {
    const span = valueAt.get(i);
    if (span) {
      heat += paint(text.slice(i, span.end), span.v);
      i = span.end;
    } else {
      heat += text[i];
      i++;
    }
  }
  if (chalk.level === 0) {
    // without colour, list the tokens with their values instead
    heat = r.rows.map((row) => `${JSON.stringify(row.text)}=${fmt(row[metric])}`).join(' ');
  }
  const s = r.summary;
  const lines = [
    heat,
    '',
    `${METRIC_LABELS[metric]} (${metric}): colour scale ${fmt(range[0])} … ${fmt(range[1])}`,
    `teacher ${r.teacher.name} (${r.teacher.device}), student ${r.student.name} (${r.student.device}), ${r.ids.length} tokens, ${s.rows} rows`,
    `perplexity: teacher ${fmt(s.teacherPerplexity)}, student ${fmt(s.studentPerplexity)}; argmax agreement ${(100 * s.argmaxAgreement).toFixed(1)}%; hard tokens ${(100 * s.hardFraction).toFixed(1)}%`,
    '',
    'mean over tokens:',
    ...chunk(
      METRIC_KEYS.map((k) => `${k.padEnd(11)} ${fmt(s.mean[k]).padStart(10)}`),
      3,
    ).map((c) => '  ' + c.join('   ')),
    '',
    `worst tokens by ${metric}:`,
    ...s.worst.map((i) => {
      const row = r.rows[i];
      return `  ${fmt(row[metric]).padStart(10)}  ${JSON.stringify(row.text).padEnd(16)} at ${row.start}–${row.end}  teacher p=${fmt(row.teacher.p)} rank ${row.teacher.rank}, student p=${fmt(row.student.p)} rank ${row.student.rank}`;
    }),
  ];
  return lines.join('\n') + '\n';
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
