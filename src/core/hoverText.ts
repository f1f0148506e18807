/**
 * The hover tooltip for one token, as Markdown: the token and its target, both models'
 * probability and rank, every metric of docs/metrics.md grouped, and both top-k lists side by side.
 */
import type { MetricKey } from './metricKeys';
import { METRIC_LABELS } from './metricKeys';
import type { TokenRow } from './tokenRows';
import { formatNumber } from './formatNumber';
import type { AlignedSpan } from './spanAlignment';

export const METRIC_GROUPS: { title: string; keys: MetricKey[] }[] = [
  { title: 'Divergences', keys: ['fkl', 'rkl', 'jeffreys', 'jsd', 'gjsd', 'tvd', 'skl', 'srkl', 'akl'] },
  { title: 'Target / non-target (DKD)', keys: ['tckd', 'nckd'] },
  { title: 'Difficulty', keys: ['uncertainty'] },
  { title: 'Estimators at the observed token', keys: ['k1', 'k2', 'k3'] },
];

/** Escapes text for a Markdown table cell or inline code-free text. */
export function escapeMarkdown(s: string): string {
  return s
    .replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => '\\' + c)
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r');
}

const shown = (s: string) => escapeMarkdown(JSON.stringify(s).slice(1, -1)) || '∅';

export function hoverMarkdown(
  row: TokenRow,
  o: { metric: MetricKey; temperature: number; beta: number; alpha: number },
): string {
  const lines: string[] = [];
  lines.push(
    `**Distill Lens** · token \`${JSON.stringify(row.text)}\` (id ${row.target})${row.hard ? ' · hard' : ''}`,
  );
  lines.push('');
  lines.push(`**${METRIC_LABELS[o.metric]}**: ${formatNumber(row[o.metric])}`);
  lines.push('');
  lines.push('| | teacher | student |');
  lines.push('|:--|--:|--:|');
  lines.push(
    `| p(target) at T=${o.temperature} | ${formatNumber(row.teacher.p)} | ${formatNumber(row.student.p)} |`,
  );
  lines.push(`| rank | ${rankText(row.teacher.rank)} | ${rankText(row.student.rank)} |`);
  lines.push(`| log p at T=1 | ${formatNumber(row.teacher.logp)} | ${formatNumber(row.student.logp)} |`);
  lines.push(`| entropy | ${formatNumber(row.teacher.entropy)} | ${formatNumber(row.student.entropy)} |`);
  lines.push('');
  for (const g of METRIC_GROUPS) {
    lines.push(`**${g.title}**`);
    lines.push('');
    lines.push('| metric | value |');
    lines.push('|:--|--:|');
    for (const k of g.keys) {
      const label =
        k === 'gjsd' ? `gjsd (β=${o.beta})` : k === 'skl' || k === 'srkl' ? `${k} (α=${o.alpha})` : k;
      lines.push(`| ${label} | ${formatNumber(row[k])} |`);
    }
    lines.push('');
  }
  lines.push('**Top tokens**');
  lines.push('');
  lines.push('| teacher | p | student | p |');
  lines.push('|:--|--:|:--|--:|');
  const n = Math.max(row.teacher.top.length, row.student.top.length);
  for (let i = 0; i < n; i++) {
    const t = row.teacher.top[i];
    const s = row.student.top[i];
    const mark = (id: number | undefined) => (id === row.target ? ' ◂' : '');
    lines.push(
      `| ${t ? shown(t.text) + mark(t.id) : ''} | ${t ? formatNumber(t.p) : ''} | ${s ? shown(s.text) + mark(s.id) : ''} | ${s ? formatNumber(s.p) : ''} |`,
    );
  }
  return lines.join('\n');
}

/** A rank as shown: a served teacher's rank is unknown (NaN) when the target is not among its top K. */
export function rankText(rank: number): string {
  return Number.isFinite(rank) ? String(rank) : 'not in the served top K';
}

/**
 * The hover of a student token when the tokenizers differ: its span (the text both tokenize
 * with whole tokens), the teacher's and the student's tokens in it, the span's exact numbers
 * and ULD (an approximation), then the student's own values at this token.
 */
export function acrossHoverMarkdown(row: TokenRow, span: AlignedSpan): string {
  const pieces = (list: string[] | undefined) => (list ?? []).map((t) => `\`${shown(t)}\``).join(' ');
  const lines = [
    `**Distill Lens** · student token \`${JSON.stringify(row.text)}\` (id ${row.target}) · the tokenizers differ`,
    '',
    `**Span** \`${JSON.stringify(span.text)}\`: both tokenizations start a token at its start and its end, so these numbers are exact.`,
    '',
    '| | teacher | student |',
    '|:--|:--|:--|',
    `| tokens | ${pieces(span.teacherPieces)} | ${pieces(span.studentPieces)} |`,
    `| log P(span) | ${formatNumber(span.teacherLogp)} | ${formatNumber(span.studentLogp)} |`,
    '',
    '| span | value |',
    '|:--|--:|',
    `| log P_T − log P_S | ${formatNumber(span.logRatio)} |`,
    `| k1 | ${formatNumber(span.k1)} |`,
    `| k2 | ${formatNumber(row.k2)} |`,
    `| k3 | ${formatNumber(span.k3)} |`,
    ...(span.uld !== undefined
      ? [`| ULD (a cross-vocabulary approximation) | ${formatNumber(span.uld)} |`]
      : []),
    '',
    `Per-token divergences need one vocabulary. **The student at this token**: p ${formatNumber(row.student.p)}, rank ${row.student.rank}, log p ${formatNumber(row.student.logp)}, entropy ${formatNumber(row.student.entropy)}.`,
  ];
  if (row.student.top.length > 0) {
    lines.push('', '| student top | p |', '|:--|--:|');
    for (const t of row.student.top)
      lines.push(`| ${shown(t.text)}${t.id === row.target ? ' ◂' : ''} | ${formatNumber(t.p)} |`);
  }
  return lines.join('\n');
}
