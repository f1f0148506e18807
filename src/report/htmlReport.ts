/**
 * The self-contained HTML report: the text as a heatmap, per-token details on hover, the
 * summary, and a metric selector that recolours in the page. No external resources.
 */
import { dataAndSidePanel, escapeHtml } from './htmlParts';
import { heatColor, textColorOn, toHex } from '../core/colorScale';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../core/metricKeys';
import type { InspectResult } from '../shared/protocol';
import { BANDS, heatBand, heatmapSegments, heatRange, segmentValue } from './heatmap';
import { ckaTableHtml, layerHeatmapSvg, lensRows, settlesLine } from './layerHeatmap';
import { meanMappedCka } from '../core/layerMapping';
import { formatNumber } from '../core/formatNumber';

/** The layer view's section (inspect --layers): each model's lens heatmap and the CKA matrix. */
function layersSection(r: InspectResult): string {
  const v = r.layers;
  if (!v) return '';
  const tokens = r.rows.slice(0, v.rows).map((row) => row.text);
  const maps = lensRows(v)
    .map(
      (m) =>
        `<h3>${m.model}: ${escapeHtml(m.what)} per token</h3>${layerHeatmapSvg(m.values, tokens, `${m.model} logit lens`)}`,
    )
    .join('');
  return `<h2 id="layers">Layers</h2>
  <div class="muted">Each hidden state through the model's own final norm and head (logit lens); colour by log(1 + KL); click a cell for its token.${v.rows < r.rows.length ? ` The first window's ${v.rows} tokens.` : ''}</div>
  ${maps}
  <h3>Linear CKA over ${v.positions} positions</h3>${ckaTableHtml(v)}
  <div class="muted">Mapped layers' mean CKA (student layer j ↔ teacher layer round(j·L_T/L_S)): ${formatNumber(meanMappedCka(v.cka))}</div>`;
}

/**
 * The report of one analysis. The heatmap's segments, each metric's range and each span's
 * band come from ./heatmap (as in the panel); `fixedMax` is the colour scale's fixed top
 * (distillLens.colorScaleMaximum), 0 or undefined for automatic.
 */
export function renderHtmlReport(
  r: InspectResult,
  text: string,
  metric: MetricKey,
  fixedMax?: number,
): string {
  // from 0: the text's first token (which has no row) is shown too
  const segments = heatmapSegments(text, r.rows, 0);
  const ranges = Object.fromEntries(
    METRIC_KEYS.map((k) => [
      k,
      heatRange(
        r.rows.map((row) => row[k]),
        fixedMax,
      ),
    ]),
  );
  // per metric, one band digit per token segment
  const bands = Object.fromEntries(
    METRIC_KEYS.map((k) => [
      k,
      segments
        .flatMap((seg) =>
          seg.kind === 'token'
            ? [
                heatBand(
                  segmentValue(seg, (i) => r.rows[i][k]),
                  ranges[k],
                ),
              ]
            : [],
        )
        .join(''),
    ]),
  );
  const bandColors = Array.from({ length: BANDS }, (_, b) => {
    const bg = heatColor(b / (BANDS - 1));
    return { bg: toHex(bg), ink: toHex(textColorOn(bg)) };
  });
  const data = {
    segments,
    rows: r.rows,
    summary: r.summary,
    teacher: r.teacher,
    student: r.student,
    metric,
    keys: METRIC_KEYS,
    labels: METRIC_LABELS,
    ranges,
    bands,
    bandColors,
    messages: [...r.messages, ...(r.windowNotice ? [r.windowNotice] : [])],
    settles: r.layers ? r.rows.slice(0, r.layers.rows).map((_, i) => settlesLine(r.layers!, i)) : [],
  };
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
  h3 { font-size: 13px; margin: 12px 0 4px; } .layer-heatmap { max-width: 100%; height: auto; } .layer-heatmap rect { cursor: pointer; }
  table.cka { width: auto; } table.cka td { min-width: 2.6em; }
</style></head>
<body>
<main>
  <h1>Distill Lens</h1>
  <div class="muted" id="models"></div>${
    r.teacherSupport
      ? `\n  <div class="muted" id="teacher-support"><b>Served teacher, ${escapeHtml(r.teacherSupport)}</b>: the divergences are over its top tokens, the target and the rest as one bucket, so they are lower bounds of the full-vocabulary values (akl approximate); log p, k1–k3, tckd and uncertainty are exact.</div>`
      : ''
  }${
    r.spans
      ? `\n  <div class="muted" id="across-tokenizers"><b>The tokenizers differ</b>: compared on ${r.spans.length} spans, where both tokenizations start a token; each student token shows its span's k1–k3 (exact); the other metrics need one vocabulary and are NaN.</div>`
      : ''
  }
  <div class="legend"><label>metric <select id="metric"></select></label><span id="lo"></span><span class="bar" id="bar"></span><span id="hi"></span></div>
  <div id="heat"></div>
  <h2>Summary</h2><table id="summary"></table>
  <h2>Worst tokens</h2><table id="worst"></table>
  ${layersSection(r)}
</main>
${dataAndSidePanel(data)}
<script>
(() => {
  const d = JSON.parse(document.getElementById('data').textContent);
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const fmt = (x) => !isFinite(x) ? String(x) : (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) ? x.toExponential(3) : x.toFixed(4);
  $('models').textContent = 'teacher ' + d.teacher.name + ' (' + d.teacher.file + ') · student ' + d.student.name + ' (' + d.student.file + ') · ' + d.rows.length + ' tokens' + (d.messages.length ? ' · ' + d.messages.join('; ') : '');
  $('bar').style.background = 'linear-gradient(to right,' + d.bandColors.map((c) => c.bg).join(',') + ')';
  for (const k of d.keys) { const o = document.createElement('option'); o.value = k; o.textContent = k + ' — ' + d.labels[k]; if (k === d.metric) o.selected = true; $('metric').append(o); }
  // the segments come from the same code as the panel's heatmap
  $('heat').innerHTML = d.segments.map((s) => s.kind === 'text' ? esc(s.text) : '<span class="tok" data-rows="' + s.rows.join(',') + '">' + esc(s.text) + '</span>').join('');
  const paint = () => {
    const m = $('metric').value;
    $('lo').textContent = fmt(d.ranges[m][0]); $('hi').textContent = fmt(d.ranges[m][1]);
    document.querySelectorAll('#heat .tok').forEach((el, i) => { const c = d.bandColors[+d.bands[m][i]]; el.style.background = c.bg; el.style.color = c.ink; });
    const worst = d.rows.map((r, i) => i).sort((a, b) => d.rows[b][m] - d.rows[a][m]).slice(0, 10);
    $('worst').innerHTML = '<tr><th>' + esc(m) + '</th><th>token</th><th>teacher p (rank)</th><th>student p (rank)</th></tr>' + worst.map((i) => { const r = d.rows[i]; return '<tr><td class="num">' + fmt(r[m]) + '</td><td>' + esc(JSON.stringify(r.text)) + '</td><td class="num">' + fmt(r.teacher.p) + ' (' + (r.teacher.rank ?? 'not in the served top K') + ')</td><td class="num">' + fmt(r.student.p) + ' (' + r.student.rank + ')</td></tr>'; }).join('');
  };
  const s = d.summary;
  $('summary').innerHTML = '<tr><td>teacher perplexity</td><td class="num">' + fmt(s.teacherPerplexity) + '</td><td>student perplexity</td><td class="num">' + fmt(s.studentPerplexity) + '</td></tr>' +
    '<tr><td>argmax agreement</td><td class="num">' + (100 * s.argmaxAgreement).toFixed(1) + '%</td><td>hard tokens</td><td class="num">' + (100 * s.hardFraction).toFixed(1) + '%</td></tr>' +
    d.keys.map((k, i) => (i % 2 === 0 ? '<tr>' : '') + '<td>mean ' + k + '</td><td class="num">' + fmt(s.mean[k]) + '</td>' + (i % 2 === 1 ? '</tr>' : '')).join('');
  const details = (r) => {
    const tops = (m) => m.top.map((t) => '<tr><td>' + esc(JSON.stringify(t.text)) + '</td><td class="num">' + fmt(t.p) + '</td></tr>').join('');
    return '<h2>' + esc(JSON.stringify(r.text)) + ' <span class="muted">id ' + r.target + ', chars ' + r.start + '–' + r.end + (r.hard ? ', hard' : '') + '</span></h2>' +
      '<table><tr><th></th><th>teacher</th><th>student</th></tr>' +
      ['p', 'logp', 'rank', 'entropy'].map((k) => '<tr><td>' + k + '</td><td class="num">' + (r.teacher[k] === null ? 'not in the served top K' : fmt(r.teacher[k])) + '</td><td class="num">' + fmt(r.student[k]) + '</td></tr>').join('') + '</table>' +
      '<h2>Metrics</h2><table>' + d.keys.map((k) => '<tr><td>' + k + '</td><td class="num">' + fmt(r[k]) + '</td><td class="muted">' + esc(d.labels[k]) + '</td></tr>').join('') + '</table>' +
      '<h2>Top tokens</h2><table><tr><th>teacher</th><th></th></tr>' + tops(r.teacher) + '<tr><th>student</th><th></th></tr>' + tops(r.student) + '</table>' +
      (d.settles[d.rows.indexOf(r)] ? '<p class="muted">' + esc(d.settles[d.rows.indexOf(r)]) + '</p>' : '');
  };
  // a layer heatmap cell shows its token
  document.querySelectorAll('rect[data-row]').forEach((cell) => cell.addEventListener('click', () => {
    const tok = [...document.querySelectorAll('#heat .tok')].find((el) => el.dataset.rows.split(',').includes(cell.dataset.row));
    if (!tok) return;
    tok.scrollIntoView({ block: 'center' });
    tok.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
  }));
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
