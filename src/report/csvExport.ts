/** Rows as CSV (RFC 4180 quoting), one line per token, every metric and per-model value. */
import { METRIC_KEYS } from '../core/metricKeys';
import type { TokenRow } from '../core/tokenRows';

const quote = (v: string | number | boolean) => {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function rowsToCsv(rows: TokenRow[]): string {
  const header = [
    'index',
    'text',
    'start',
    'end',
    'target',
    ...METRIC_KEYS,
    'hard',
    'argmax_agree',
    'teacher_p',
    'teacher_logp',
    'teacher_rank',
    'teacher_entropy',
    'student_p',
    'student_logp',
    'student_rank',
    'student_entropy',
  ];
  const lines = [header.join(',')];
  for (const r of rows) {
    lines.push(
      [
        r.index,
        r.text,
        r.start,
        r.end,
        r.target,
        ...METRIC_KEYS.map((k) => r[k]),
        r.hard,
        r.argmaxAgree,
        r.teacher.p,
        r.teacher.logp,
        r.teacher.rank,
        r.teacher.entropy,
        r.student.p,
        r.student.logp,
        r.student.rank,
        r.student.entropy,
      ]
        .map(quote)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}
