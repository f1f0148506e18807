/**
 * The self-contained HTML report of sampled continuations (`distill-lens sample --format
 * html`): each continuation painted by log p − log q of its tokens (green where the teacher
 * likes the student's token more than the student does, red where less; void tokens
 * underlined), a chart of the per-token log ratio (bars) and its return to the end (line),
 * the sequence values, per-token details on hover, and the means with standard errors.
 */
import { dataAndSidePanel, escapeHtml } from './htmlParts';
import { METRIC_KEYS, METRIC_LABELS } from '../core/metricKeys';
import type { SampleReport } from '../shared/generation';

/**
 * The JSON of sampled continuations as the README documents it: who wrote them, per
 * continuation its ids, prompt length, text, scored rows and sequence values, and the summary.
 */
export function sampleReportJson(r: SampleReport): string {
  return JSON.stringify(
    {
      from: r.from,
      ...(r.from === 'mix' ? { mixAlpha: r.mixAlpha } : {}),
      samples: r.samples.map(({ ids, promptTokens, text, rows, sequence }) => ({
        ids,
        promptTokens,
        text,
        rows,
        sequence,
      })),
      summary: r.summary,
    },
    null,
    1,
  );
}

/** Steps of the diverging colour scale on each side. */
const STEPS = 5;

/** The step (−STEPS … STEPS, 0 for none) of a log ratio on the scale ±maxAbs. */
export function ratioStep(logRatio: number, maxAbs: number): number {
  if (logRatio === 0 || maxAbs === 0) return 0;
  const step = Math.min(STEPS, Math.ceil((Math.abs(logRatio) / maxAbs) * STEPS));
  return logRatio > 0 ? step : -step;
}

/** An inline chart: bars of r_t, and the return R_t as a line, on one vertical scale. */
function chartSvg(rewards: number[], returns: number[]): string {
  const W = 640;
  const H = 120;
  const n = rewards.length;
  const top = Math.max(1e-9, ...rewards.map(Math.abs), ...returns.map(Math.abs));
  const y = (v: number) => H / 2 - (v / top) * (H / 2 - 4);
  const x = (i: number) => ((i + 0.5) / n) * W;
  const bar = W / n;
  const bars = rewards
    .map(
      (r, i) =>
        `<rect x="${(x(i) - bar * 0.4).toFixed(1)}" y="${Math.min(y(r), H / 2).toFixed(1)}" width="${(bar * 0.8).toFixed(1)}" height="${Math.abs(y(r) - H / 2).toFixed(1)}" class="${r >= 0 ? 'up' : 'down'}"/>`,
    )
    .join('');
  const line = returns.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="log p − log q per token (bars) and its return to the end (line)"><line x1="0" x2="${W}" y1="${H / 2}" y2="${H / 2}" class="axis"/>${bars}<polyline points="${line}" class="ret"/></svg>`;
}

export function renderSampleReport(r: SampleReport): string {
  const maxAbs = Math.max(0, ...r.samples.flatMap((s) => s.rows.map((row) => Math.abs(row.logRatio))));
  const fmt = (x: number) =>
    !Number.isFinite(x)
      ? String(x)
      : x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)
        ? x.toExponential(3)
        : x.toFixed(4);
  const withError = (m: { mean: number; standardError: number | null }) =>
    `${fmt(m.mean)}${m.standardError === null ? '' : ` ± ${fmt(m.standardError)}`}`;
  const source =
    r.from === 'mix' ? `the mix α·teacher + (1 − α)·student, α = ${r.mixAlpha}` : `the ${r.from}`;
  const blocks = r.samples
    .map((s, i) => {
      const q = s.sequence;
      const tokens = s.rows
        .map((row, t) => {
          const step = ratioStep(row.logRatio, maxAbs);
          const cls = `tok ${step > 0 ? `up${step}` : step < 0 ? `down${-step}` : ''}${row.void ? ' void' : ''}`;
          return `<span class="${cls}" data-sample="${i}" data-row="${t}">${escapeHtml(s.text.slice(row.start, row.end) || row.text)}</span>`;
        })
        .join('');
      return `<section><h2>Continuation ${i + 1} <span class="muted">${q.finish}, ${q.length} tokens</span></h2>
<table class="seq"><tr><td>Σ log p/q</td><td class="num">${fmt(q.logRatio)}</td><td>Σ KL(q‖p)</td><td class="num">${fmt(q.reverseKl)}</td><td>k1</td><td class="num">${fmt(q.k1)}</td><td>k3</td><td class="num">${fmt(q.k3)}</td></tr>
<tr><td>distinct-2</td><td class="num">${fmt(q.distinct2)}</td><td>distinct-3</td><td class="num">${fmt(q.distinct3)}</td><td>void tokens</td><td class="num">${q.voidTokens}</td><td></td><td></td></tr></table>
<div class="text"><span class="prompt">${escapeHtml(r.prompt)}</span>${tokens}</div>
${chartSvg(
  s.rows.map((row) => row.logRatio),
  s.rows.map((row) => row.return),
)}</section>`;
    })
    .join('\n');
  const summaryRows = (
    ['logRatio', 'reverseKl', 'k1', 'k3', 'length', 'distinct2', 'distinct3', 'voidTokens'] as const
  )
    .map((k) => `<tr><td>${k}</td><td class="num">${withError(r.summary[k])}</td></tr>`)
    .join('');
  const data = {
    samples: r.samples.map((s) => s.rows),
    keys: METRIC_KEYS,
    labels: METRIC_LABELS,
  };
  const steps = Array.from({ length: STEPS }, (_, k) => k + 1);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Distill Lens samples: ${escapeHtml(r.teacher)} → ${escapeHtml(r.student)}</title>
<style>
  body { font: 14px/1.5 system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 1fr 340px; color: #1f2328; background: #fff; }
  @media (prefers-color-scheme: dark) { body { color: #e6edf3; background: #0d1117; } .side { background: #161b22 !important; } }
  main { padding: 16px 24px; } .side { padding: 16px; background: #f6f8fa; position: sticky; top: 0; height: 100vh; overflow: auto; box-sizing: border-box; }
  h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 20px 0 6px; }
  .muted, .prompt { opacity: .65; font-size: 12px; } .prompt { font-size: inherit; }
  .text { font: 14px/1.9 ui-monospace, monospace; white-space: pre-wrap; word-break: break-word; }
  .tok { border-radius: 2px; cursor: pointer; } .tok.sel { outline: 2px solid #0969da; }
  .tok.void { text-decoration: underline wavy #cf222e; text-underline-offset: 3px; }
  ${steps.map((k) => `.up${k} { background: rgba(26,127,55,${(0.12 * k).toFixed(2)}); } .down${k} { background: rgba(207,34,46,${(0.12 * k).toFixed(2)}); }`).join('\n  ')}
  table { border-collapse: collapse; font-size: 12px; } td, th { padding: 2px 8px; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .chart { width: 100%; max-width: 640px; height: 120px; display: block; margin-top: 6px; }
  .chart .up { fill: rgba(26,127,55,.7); } .chart .down { fill: rgba(207,34,46,.7); } .chart .axis { stroke: #8c959f; } .chart .ret { fill: none; stroke: #0969da; stroke-width: 1.5; }
</style></head>
<body>
<main>
  <h1>Distill Lens: sampled continuations</h1>
  <div class="muted">teacher ${escapeHtml(r.teacher)} · student ${escapeHtml(r.student)} · written by ${escapeHtml(source)} · colour: log p − log q of each token (green: the teacher likes it more than the student, red: less), wavy underline: void (the teacher gives it almost nothing); chart: log p − log q per token and its return to the end</div>
  <h2>Over ${r.summary.samples} continuation(s): mean ± standard error</h2><table>${summaryRows}</table>
  ${blocks}
</main>
${dataAndSidePanel(data)}
<script>
(() => {
  const d = JSON.parse(document.getElementById('data').textContent);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const fmt = (x) => typeof x === 'boolean' ? String(x) : !isFinite(x) ? String(x) : (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) ? x.toExponential(3) : x.toFixed(4);
  const own = ['logpTeacher', 'logpStudent', 'logRatio', 'return', 'normalizedReturn', 'void'];
  document.querySelector('main').addEventListener('mouseover', (e) => {
    const el = e.target.closest('.tok'); if (!el) return;
    for (const x of document.querySelectorAll('.tok.sel')) x.classList.remove('sel');
    el.classList.add('sel');
    const r = d.samples[+el.dataset.sample][+el.dataset.row];
    document.getElementById('details').innerHTML = '<h2>' + esc(JSON.stringify(r.text)) + ' <span class="muted">id ' + r.target + '</span></h2><table>' +
      own.map((k) => '<tr><td>' + k + '</td><td class="num">' + fmt(r[k]) + '</td></tr>').join('') + '</table><h2>Metrics</h2><table>' +
      d.keys.map((k) => '<tr><td>' + k + '</td><td class="num">' + fmt(r[k]) + '</td><td class="muted">' + esc(d.labels[k]) + '</td></tr>').join('') + '</table>';
  });
})();
</script>
</body></html>
`;
}
