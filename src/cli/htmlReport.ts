/**
 * The self-contained HTML report: the text as a heatmap, per-token details on hover, the
 * summary, and a metric selector that recolours in the page. No external resources.
 */
import { heatColor, toHex } from '../core/colorScale';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../core/metricKeys';
import type { InspectResult } from '../runtime/inspectEngine';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderHtmlReport(r: InspectResult, text: string, metric: MetricKey): string {
  const ramp = Array.from({ length: 11 }, (_, i) => toHex(heatColor(i / 10)));
  const data = JSON.stringify({ text, rows: r.rows, summary: r.summary, teacher: r.teacher, student: r.student, metric, keys: METRIC_KEYS, labels: METRIC_LABELS, ramp, messages: r.messages })
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Distill Lens report: ${escapeHtml(r.teacher.name)} → ${escapeHtml(r.student.name)}</title>
<style>
  body { font: 14px/1.5 system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 1fr 360px; min-height: 100vh; color: #1f2328; background: #fff; }
  @media (prefers-color-scheme: dark) { body { color: #e6edf3; background: #0d1117; } .side { background: #161b22 !important; } td, th { border-color: #30363d !important; } }
  main { padding: 16px 24px; }
  .side { padding: 16px; background: #f6f8fa; border-left: 1px solid #d0d7de; position: sticky; top: 0; height: 100vh; overflow: auto; box-sizing: border-box; }
  #heat { font: 14px/1.9 ui-monospace, monospace; white-space: pre-wrap; word-break: break-word; }
  #heat span.tok { border-radius: 2px; box-shadow: inset -1px 0 0 rgba(0,0,0,.15); cursor: pointer; }
  #heat span.tok.sel { outline: 2px solid #0969da; }
  table { border-collapse: collapse; font-size: 12px; width: 100%; }
  td, th { border-bottom: 1px solid #d0d7de; padding: 2px 6px; text-align: left; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .legend { display: flex; align-items: center; gap: 6px; margin: 8px 0 16px; font-size: 12px; }
  .legend .bar { width: 200px; height: 10px; border-radius: 2px; }
  h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 16px 0 6px; }
  .muted { opacity: .7; font-size: 12px; }
</style></head>
<body>
<main>
  <h1>Distill Lens</h1>
  <div class="muted" id="models"></div>
  <div class="legend"><label>metric <select id="metric"></select></label><span id="lo"></span><span class="bar" id="bar"></span><span id="hi"></span></div>
  <div id="heat"></div>
  <h2>Summary</h2><table id="summary"></table>
  <h2>Worst tokens</h2><table id="worst"></table>
</main>
<aside class="side"><div id="details" class="muted">Hover a token for its details.</div></aside>
<script type="application/json" id="data">${data}</script>
<script>
(() => {
  const d = JSON.parse(document.getElementById('data').textContent);
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const fmt = (x) => !isFinite(x) ? String(x) : (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) ? x.toExponential(3) : x.toFixed(4);
  const color = (t) => { t = Math.max(0, Math.min(1, isFinite(t) ? t : 1)); return d.ramp[Math.round(t * (d.ramp.length - 1))]; };
  const ink = (hex) => { const n = parseInt(hex.slice(1), 16); const l = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)); return l > 150 ? '#000' : '#fff'; };
  $('models').textContent = 'teacher ' + d.teacher.name + ' · student ' + d.student.name + ' · ' + d.rows.length + ' tokens' + (d.messages.length ? ' · ' + d.messages.join('; ') : '');
  $('bar').style.background = 'linear-gradient(to right,' + d.ramp.join(',') + ')';
  for (const k of d.keys) { const o = document.createElement('option'); o.value = k; o.textContent = k + ' — ' + d.labels[k]; if (k === d.metric) o.selected = true; $('metric').append(o); }
  // segments of the text: plain text between tokens, one span per distinct token span
  const bySpan = new Map();
  d.rows.forEach((r, i) => { if (r.end > r.start) { const key = r.start + ':' + r.end; if (!bySpan.has(key)) bySpan.set(key, []); bySpan.get(key).push(i); } });
  const spans = [...bySpan.entries()].map(([k, rows]) => ({ start: +k.split(':')[0], end: +k.split(':')[1], rows })).sort((a, b) => a.start - b.start);
  let html = '', at = 0;
  for (const s of spans) { if (s.start < at) continue; html += esc(d.text.slice(at, s.start)) + '<span class="tok" data-rows="' + s.rows.join(',') + '">' + esc(d.text.slice(s.start, s.end)) + '</span>'; at = s.end; }
  html += esc(d.text.slice(at));
  $('heat').innerHTML = html;
  const paint = () => {
    const m = $('metric').value; const vals = d.rows.map((r) => r[m]).filter(isFinite);
    const lo = Math.min(0, ...vals), hi = Math.max(lo + 1e-12, ...vals);
    $('lo').textContent = fmt(lo); $('hi').textContent = fmt(hi);
    for (const el of document.querySelectorAll('#heat .tok')) {
      const v = Math.max(...el.dataset.rows.split(',').map((i) => d.rows[+i][m]));
      const c = color((v - lo) / (hi - lo)); el.style.background = c; el.style.color = ink(c);
    }
    const worst = d.rows.map((r, i) => i).sort((a, b) => d.rows[b][m] - d.rows[a][m]).slice(0, 10);
    $('worst').innerHTML = '<tr><th>' + esc(m) + '</th><th>token</th><th>teacher p (rank)</th><th>student p (rank)</th></tr>' + worst.map((i) => { const r = d.rows[i]; return '<tr><td class="num">' + fmt(r[m]) + '</td><td>' + esc(JSON.stringify(r.text)) + '</td><td class="num">' + fmt(r.teacher.p) + ' (' + r.teacher.rank + ')</td><td class="num">' + fmt(r.student.p) + ' (' + r.student.rank + ')</td></tr>'; }).join('');
  };
  const s = d.summary;
  $('summary').innerHTML = '<tr><td>teacher perplexity</td><td class="num">' + fmt(s.teacherPerplexity) + '</td><td>student perplexity</td><td class="num">' + fmt(s.studentPerplexity) + '</td></tr>' +
    '<tr><td>argmax agreement</td><td class="num">' + (100 * s.argmaxAgreement).toFixed(1) + '%</td><td>hard tokens</td><td class="num">' + (100 * s.hardFraction).toFixed(1) + '%</td></tr>' +
    d.keys.map((k, i) => (i % 2 === 0 ? '<tr>' : '') + '<td>mean ' + k + '</td><td class="num">' + fmt(s.mean[k]) + '</td>' + (i % 2 === 1 ? '</tr>' : '')).join('');
  const details = (r) => {
    const tops = (m) => m.top.map((t) => '<tr><td>' + esc(JSON.stringify(t.text)) + '</td><td class="num">' + fmt(t.p) + '</td></tr>').join('');
    return '<h2>' + esc(JSON.stringify(r.text)) + ' <span class="muted">id ' + r.target + ', chars ' + r.start + '–' + r.end + (r.hard ? ', hard' : '') + '</span></h2>' +
      '<table><tr><th></th><th>teacher</th><th>student</th></tr>' +
      ['p', 'logp', 'rank', 'entropy'].map((k) => '<tr><td>' + k + '</td><td class="num">' + fmt(r.teacher[k]) + '</td><td class="num">' + fmt(r.student[k]) + '</td></tr>').join('') + '</table>' +
      '<h2>Metrics</h2><table>' + d.keys.map((k) => '<tr><td>' + k + '</td><td class="num">' + fmt(r[k]) + '</td><td class="muted">' + esc(d.labels[k]) + '</td></tr>').join('') + '</table>' +
      '<h2>Top tokens</h2><table><tr><th>teacher</th><th></th></tr>' + tops(r.teacher) + '<tr><th>student</th><th></th></tr>' + tops(r.student) + '</table>';
  };
  $('heat').addEventListener('mouseover', (e) => {
    const el = e.target.closest('.tok'); if (!el) return;
    for (const x of document.querySelectorAll('.tok.sel')) x.classList.remove('sel');
    el.classList.add('sel');
    $('details').innerHTML = el.dataset.rows.split(',').map((i) => details(d.rows[+i])).join('<hr>');
  });
  $('metric').addEventListener('change', paint);
  paint();
})();
</script>
</body></html>
`;
}
