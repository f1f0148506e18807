/** The terminal view of `inspect`: the text as a heatmap coloured by one metric, then the summary. */
import { Chalk } from 'chalk';
import { heatColor, scalePosition, scaleRange, textColorOn } from '../core/colorScale';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../core/metricKeys';
import { formatNumber as fmt } from '../core/formatNumber';
import { rankText } from '../core/hoverText';
import type { InspectResult, LayerView } from '../shared/protocol';
import type { AlignedSpan } from '../core/spanAlignment';

export function formatTable(
  r: InspectResult,
  text: string,
  metric: MetricKey,
  o: { color?: boolean } = {},
): string {
  if (r.spans) return spanLines(r, r.spans).join('\n') + '\n';
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
    ...(r.teacherSupport
      ? [
          `the teacher is served: divergences over its ${r.teacherSupport} buckets (lower bounds; akl approximate); log p, k1–k3, tckd, uncertainty exact`,
        ]
      : []),
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
      return `  ${fmt(row[metric]).padStart(10)}  ${JSON.stringify(row.text).padEnd(16)} at ${row.start}–${row.end}  teacher p=${fmt(row.teacher.p)} rank ${rankText(row.teacher.rank)}, student p=${fmt(row.student.p)} rank ${row.student.rank}`;
    }),
  ];
  if (r.layers) lines.push('', ...layerLines(r.layers));
  return lines.join('\n') + '\n';
}

/**
 * The layer view as text: per hidden state, the mean logit-lens KL and how often its argmax
 * is already the final one, for each model; then the CKA matrix (student rows, teacher columns).
 */
function layerLines(v: LayerView): string[] {
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  const share = (xs: boolean[]) => `${(100 * mean(xs.map(Number))).toFixed(0)}%`.padStart(5);
  const entry = (l: number, n: number) =>
    l === 0 ? 'embeddings' : l === n - 1 ? `layer ${l} (out)` : `layer ${l}`;
  return [
    `layer view (${v.rows} rows): mean logit-lens KL per hidden state, and the share of tokens whose lens argmax is already the final one`,
    '  student: KL(teacher final ‖ student lens)',
    ...v.student.map(
      (e, l) =>
        `    ${entry(l, v.student.length).padEnd(16)} ${fmt(mean(e.klToTeacherFinal)).padStart(10)}  ${share(e.argmaxFinal)}`,
    ),
    '  teacher: KL(teacher lens ‖ teacher final)',
    ...v.teacher.map(
      (e, l) =>
        `    ${entry(l, v.teacher.length).padEnd(16)} ${fmt(mean(e.klToFinal)).padStart(10)}  ${share(e.argmaxFinal)}`,
    ),
    `linear CKA over ${v.positions} positions (rows: student entries 0…${v.student.length - 1}, columns: teacher entries 0…${v.teacher.length - 1})`,
    ...v.cka.map((row, i) => `  ${String(i).padStart(3)}  ${row.map((x) => x.toFixed(3)).join(' ')}`),
  ];
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** A pair with different tokenizers: the exact span comparisons, their totals and the spans the models disagree on most. */
function spanLines(r: InspectResult, spans: AlignedSpan[]): string[] {
  const total = (pick: (s: AlignedSpan) => number) => spans.reduce((a, s) => a + pick(s), 0);
  const worst = [...spans].sort((a, b) => b.k3 - a.k3).slice(0, 10);
  return [
    `teacher ${r.teacher.name} (${r.teacher.vocab} tokens), student ${r.student.name} (${r.student.vocab} tokens): the tokenizers differ`,
    `${spans.length} spans compared exactly (between places where both tokenizations have a token boundary)`,
    `log P over the spans: teacher ${fmt(total((s) => s.teacherLogp))}, student ${fmt(total((s) => s.studentLogp))}; mean k3 ${fmt(total((s) => s.k3) / Math.max(1, spans.length))}`,
    '',
    'spans the models disagree on most (by k3 = e^(log P_T − log P_S) − 1 − (log P_T − log P_S)):',
    ...worst.map(
      (s) =>
        `  ${fmt(s.k3).padStart(10)}  ${JSON.stringify(s.text).padEnd(20)} at ${s.start}–${s.end}  log P teacher ${fmt(s.teacherLogp)} (${s.teacherTokens} tokens), student ${fmt(s.studentLogp)} (${s.studentTokens})`,
    ),
  ];
}
