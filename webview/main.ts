/**
 * The side panel's UI (browser only): the analysed text as a heatmap with token boundaries,
 * a metric selector and legend, token details with top-k bars, the summary, a histogram of
 * the metric, and the worst tokens. State survives hiding the view (getState/setState).
 */
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-divider/index.js';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../src/core/metricKeys';
import { METRIC_GROUPS } from '../src/core/hoverText';
import { formatNumber } from '../src/core/formatNumber';
import { scalePosition, scaleRange } from '../src/core/colorScale';
import type { FromPanel, PanelAnalysis, ToPanel } from '../src/shared/panelProtocol';
import type { TokenRow } from '../src/core/tokenRows';

declare function acquireVsCodeApi(): { postMessage(m: FromPanel): void; getState(): PanelState | undefined; setState(s: PanelState): void };
const vscode = acquireVsCodeApi();

interface PanelState {
  analysis: PanelAnalysis | null;
  metric: MetricKey;
  fixedMax?: number;
  selected: number | null;
}

const BANDS = 10;
let state: PanelState = vscode.getState() ?? { analysis: null, metric: 'fkl', selected: null };
const app = document.getElementById('app')!;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function band(v: number, range: [number, number]): number {
  return Math.min(BANDS - 1, Math.floor(scalePosition(v, range) * BANDS));
}

function save(): void {
  vscode.setState(state);
}

function render(): void {
  save();
  app.replaceChildren();
  const a = state.analysis;
  if (!a || a.rows.length === 0) {
    app.append(el('p', { class: 'empty' }, 'Run ', el('b', {}, 'Distill Lens: Analyze Selection'), ' to see the token heatmap here.'));
    return;
  }
  const metric = state.metric;
  const range = scaleRange(a.rows.map((r) => r[metric]), state.fixedMax);

  // header: metric selector and legend
  const select = el('vscode-single-select', { id: 'metric', 'aria-label': 'metric' }) as HTMLElement & { value: string };
  for (const k of METRIC_KEYS) {
    const o = el('vscode-option', { value: k, description: METRIC_LABELS[k] }, k);
    if (k === metric) o.setAttribute('selected', '');
    select.append(o);
  }
  select.addEventListener('change', () => {
    // the element also fires when it is first rendered: only a real change is sent
    if (select.value !== state.metric) vscode.postMessage({ type: 'chooseMetric', metric: select.value as MetricKey });
  });
  const legend = el('div', { class: 'legend', title: `${METRIC_LABELS[metric]}: colour bands from ${formatNumber(range[0])} to ${formatNumber(range[1])}` });
  legend.append(el('span', {}, formatNumber(range[0])));
  const bar = el('span', { class: 'bar' });
  for (let i = 0; i < BANDS; i++) bar.append(el('span', { class: `heat${i}` }));
  legend.append(bar, el('span', {}, formatNumber(range[1])));
  app.append(el('div', { class: 'header' }, select, legend), el('div', { class: 'models' }, `${a.documentName} · teacher ${a.teacher} · student ${a.student} · ${a.rows.length} tokens`));

  // heatmap: text between tokens plain, each token span coloured, boundaries visible
  const heat = el('div', { class: 'heatmap', id: 'heatmap' });
  const first = a.rows.reduce((m, r) => Math.min(m, r.start), Infinity);
  const last = a.rows.reduce((m, r) => Math.max(m, r.end), 0);
  const order = a.rows.map((r, i) => i).sort((x, y) => a.rows[x].start - a.rows[y].start || x - y);
  let at = first;
  for (const i of order) {
    const r = a.rows[i];
    if (r.start < at) continue; // byte-fallback pieces share their character's span: shown once
    if (r.start > at) heat.append(a.text.slice(at, r.start));
    const sharing = order.filter((j) => a.rows[j].start === r.start && a.rows[j].end === r.end);
    const value = Math.max(...sharing.map((j) => a.rows[j][metric]));
    const span = el('span', { class: `tok heat${band(value, range)}${sharing.includes(state.selected ?? -1) ? ' selected' : ''}`, 'data-row': String(i), title: `${JSON.stringify(r.text)} ${metric} ${formatNumber(value)}`, tabindex: '0' }, a.text.slice(r.start, r.end));
    heat.append(span);
    at = r.end;
  }
  if (last > at) heat.append(a.text.slice(at, last));
  heat.addEventListener('click', (e) => {
    const t = (e.target as HTMLElement).closest('.tok') as HTMLElement | null;
    if (!t) return;
    state.selected = Number(t.dataset.row);
    vscode.postMessage({ type: 'revealRow', index: state.selected });
    render();
  });
  heat.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') (e.target as HTMLElement).click();
  });
  app.append(heat);

  if (state.selected !== null && a.rows[state.selected]) app.append(details(a.rows[state.selected], metric));
  app.append(summary(a), histogram(a, metric, range), worst(a, metric));
}

function details(r: TokenRow, metric: MetricKey): HTMLElement {
  const box = el('vscode-collapsible', { title: `Token ${JSON.stringify(r.text)}`, open: '', id: 'details' });
  const bars = (title: string, m: TokenRow['teacher']) => {
    const list = el('div', { class: 'bars' }, el('div', { class: 'bars-title' }, `${title}: p(target) ${formatNumber(m.p)}, rank ${m.rank}`));
    for (const t of m.top) {
      const row = el('div', { class: `barrow${t.id === r.target ? ' target' : ''}` });
      const fill = el('span', { class: 'fill' });
      fill.style.width = `${(100 * t.p).toFixed(1)}%`;
      row.append(el('span', { class: 'label' }, JSON.stringify(t.text)), el('span', { class: 'track' }, fill), el('span', { class: 'num' }, formatNumber(t.p)));
      list.append(row);
    }
    return list;
  };
  const table = el('table', { class: 'metrics' });
  for (const g of METRIC_GROUPS) {
    table.append(el('tr', {}, el('th', { colspan: '2' }, g.title)));
    for (const k of g.keys) table.append(el('tr', { class: k === metric ? 'current' : '' }, el('td', { title: METRIC_LABELS[k] }, k), el('td', { class: 'num' }, formatNumber(r[k]))));
  }
  box.append(el('div', { class: 'details' }, el('div', { class: 'sidebyside' }, bars('teacher', r.teacher), bars('student', r.student)), table));
  return box;
}

function summary(a: PanelAnalysis): HTMLElement {
  const s = a.summary;
  const box = el('vscode-collapsible', { title: 'Summary', open: '', id: 'summary' });
  const t = el('table', { class: 'metrics' });
  const add = (k: string, v: string) => t.append(el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, v)));
  add('teacher perplexity', formatNumber(s.teacherPerplexity));
  add('student perplexity', formatNumber(s.studentPerplexity));
  add('argmax agreement', `${(100 * s.argmaxAgreement).toFixed(1)}%`);
  add('hard tokens', `${(100 * s.hardFraction).toFixed(1)}%`);
  for (const k of METRIC_KEYS) add(`mean ${k}`, formatNumber(s.mean[k]));
  box.append(t);
  return box;
}

function histogram(a: PanelAnalysis, metric: MetricKey, range: [number, number]): HTMLElement {
  const bins = 20;
  const counts = new Array(bins).fill(0);
  for (const r of a.rows) counts[Math.min(bins - 1, Math.floor(scalePosition(r[metric], range) * bins))]++;
  const max = Math.max(...counts, 1);
  const box = el('vscode-collapsible', { title: `Histogram of ${metric}`, open: '', id: 'histogram' });
  const chart = el('div', { class: 'histogram', role: 'img', 'aria-label': `histogram of ${metric}` });
  counts.forEach((c, i) => {
    const b = el('span', { class: `hbar heat${Math.floor((i * BANDS) / bins)}`, title: `${formatNumber(range[0] + ((range[1] - range[0]) * i) / bins)}–${formatNumber(range[0] + ((range[1] - range[0]) * (i + 1)) / bins)}: ${c} tokens` });
    b.style.height = `${(100 * c) / max}%`;
    chart.append(b);
  });
  box.append(chart, el('div', { class: 'axis' }, el('span', {}, formatNumber(range[0])), el('span', {}, formatNumber(range[1]))));
  return box;
}

function worst(a: PanelAnalysis, metric: MetricKey): HTMLElement {
  const box = el('vscode-collapsible', { title: `Worst tokens by ${metric}`, open: '', id: 'worst' });
  const list = el('ol', { class: 'worst' });
  const order = a.rows.map((_, i) => i).sort((x, y) => a.rows[y][metric] - a.rows[x][metric]).slice(0, 10);
  for (const i of order) {
    const r = a.rows[i];
    const link = el('a', { href: '#', 'data-row': String(i) }, JSON.stringify(r.text));
    link.addEventListener('click', (e) => {
      e.preventDefault();
      state.selected = i;
      vscode.postMessage({ type: 'revealRow', index: i });
      render();
    });
    list.append(el('li', {}, link, ` ${formatNumber(r[metric])} · teacher p ${formatNumber(r.teacher.p)}, student p ${formatNumber(r.student.p)}`));
  }
  box.append(list);
  return box;
}

window.addEventListener('message', (e: MessageEvent<ToPanel>) => {
  const m = e.data;
  if (m.type === 'showAnalysis') {
    const same = state.analysis && m.analysis && state.analysis.documentName === m.analysis.documentName && state.analysis.rows.length === m.analysis.rows.length;
    state = { analysis: m.analysis, metric: m.metric, fixedMax: m.fixedMax, selected: same ? state.selected : null };
    render();
  } else if (m.type === 'setMetric') {
    state.metric = m.metric;
    render();
  } else if (m.type === 'highlightRow') {
    if (m.index === state.selected) return; // cursor moves inside one token redraw nothing
    state.selected = m.index;
    render();
    document.querySelector('.tok.selected')?.scrollIntoView({ block: 'nearest' });
  }
});

render();
vscode.postMessage({ type: 'ready' });
