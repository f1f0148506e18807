/**
 * The side panel's UI (browser only): the analysed text as a heatmap with token boundaries,
 * a metric selector and legend, token details with top-k bars, the summary, a histogram of
 * the metric, and the worst tokens. State survives hiding the view (getState/setState).
 *
 * Stays fast on long analyses (20,000+ tokens): the heatmap is built once per analysis,
 * metric or colouring (O(n)), a cursor move or a click only moves the highlight and
 * replaces the token details, and the state is saved once per analysis. The heatmap is
 * one tab stop, a listbox whose arrow keys move between tokens.
 */
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-divider/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../src/core/metricKeys';
import { METRIC_GROUPS } from '../src/core/hoverText';
import { formatNumber } from '../src/core/formatNumber';
import { scalePosition } from '../src/core/colorScale';
import { BANDS, heatBand, heatmapSegments, heatRange, segmentValue } from '../src/report/heatmap';
import type { FromPanel, PanelAnalysis, ToPanel, TrainingView } from '../src/shared/panelProtocol';
import type { TokenRow } from '../src/core/tokenRows';

declare function acquireVsCodeApi(): {
  postMessage(m: FromPanel): void;
  getState(): PanelState | undefined;
  setState(s: PanelState): void;
};
const vscode = acquireVsCodeApi();

interface PanelState {
  analysis: PanelAnalysis | null;
  metric: MetricKey;
  fixedMax?: number;
  selected: number | null;
  training?: TrainingView | null;
  /** with a baseline: colour tokens by the metric itself, or by its change after distillation */
  colorBy?: 'value' | 'change';
}

let state: PanelState = vscode.getState() ?? { analysis: null, metric: 'fkl', selected: null };
const app = document.getElementById('app')!;
const trainingHost = el('div', { id: 'training-host' });
const analysisHost = el('div', { id: 'analysis-host' });
app.replaceChildren(trainingHost, analysisHost); // replaces the page's placeholder text

/** What the current heatmap was built with, for moving the highlight without rebuilding. */
interface HeatmapView {
  heat: HTMLElement;
  detailsHost: HTMLElement;
  /** the span of each row (rows sharing a span, such as byte-fallback pieces, share it) */
  spanOfRow: Map<number, HTMLElement>;
  /** the first row of each token span, in text order: what the arrow keys step through */
  tokenRows: number[];
  positionOfRow: Map<number, number>;
}
let heatmapView: HeatmapView | undefined;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function save(): void {
  vscode.setState(state);
}

function renderTraining(): void {
  trainingHost.replaceChildren(...(state.training ? [trainingSection(state.training)] : []));
}

/** Builds everything about the analysis (once per analysis, metric or colouring), then restores the selection. */
function renderAnalysis(): void {
  save();
  heatmapView = undefined;
  analysisHost.replaceChildren();
  const a = state.analysis;
  if (!a || a.rows.length === 0) {
    analysisHost.append(
      el(
        'p',
        { class: 'empty' },
        'Run ',
        el('b', {}, 'Distill Lens: Analyze Selection'),
        ' to see the token heatmap here.',
      ),
    );
    return;
  }
  const byChange = !!a.baseline && state.colorBy === 'change';
  const metric = state.metric;
  const range = heatRange(
    a.rows.map((r) => r[metric]),
    state.fixedMax,
  );

  // header: metric selector and legend
  const metricSelect = el('vscode-single-select', { id: 'metric', 'aria-label': 'metric' }) as HTMLElement & {
    value: string;
  };
  for (const k of METRIC_KEYS) {
    const o = el('vscode-option', { value: k, description: METRIC_LABELS[k] }, k);
    if (k === metric) o.setAttribute('selected', '');
    metricSelect.append(o);
  }
  metricSelect.addEventListener('change', () => {
    // the element also fires when it is first rendered: only a real change is sent
    if (metricSelect.value !== state.metric)
      vscode.postMessage({ type: 'chooseMetric', metric: metricSelect.value as MetricKey });
  });
  const legend = el('div', {
    class: 'legend',
    title: `${METRIC_LABELS[metric]}: colour bands from ${formatNumber(range[0])} to ${formatNumber(range[1])}`,
  });
  legend.append(el('span', {}, formatNumber(range[0])));
  const bar = el('span', { class: 'bar' });
  for (let i = 0; i < BANDS; i++) bar.append(el('span', { class: `heat${i}` }));
  legend.append(bar, el('span', {}, formatNumber(range[1])));
  const header = el('div', { class: 'header' }, metricSelect, byChange ? changeLegend(a, metric) : legend);
  if (a.baseline) {
    const colorBy = el('vscode-single-select', {
      id: 'colorBy',
      'aria-label': 'colour by',
    }) as HTMLElement & { value: string };
    for (const [v, label] of [
      ['value', 'colour by value'],
      ['change', 'colour by change'],
    ]) {
      const o = el('vscode-option', { value: v }, label);
      if ((state.colorBy ?? 'value') === v) o.setAttribute('selected', '');
      colorBy.append(o);
    }
    colorBy.addEventListener('change', () => {
      if (colorBy.value === (state.colorBy ?? 'value')) return;
      state.colorBy = colorBy.value as 'value' | 'change';
      renderAnalysis();
    });
    header.append(colorBy);
  }
  analysisHost.append(
    header,
    el(
      'div',
      { class: 'models', title: a.modelPaths ?? '' },
      `${a.documentName} · teacher ${a.teacher} · student ${a.student} · ${a.rows.length} tokens`,
    ),
  );

  // heatmap: text between tokens plain, each token span coloured, boundaries visible
  const heat = el('div', {
    class: 'heatmap',
    id: 'heatmap',
    role: 'listbox',
    tabindex: '0',
    'aria-label': `tokens coloured by ${byChange ? `the change of ${metric}` : metric}; arrow keys move, Enter shows it in the editor`,
  });
  const maxDelta = byChange ? maxAbsDelta(a, metric) : 1;
  const view: HeatmapView = {
    heat,
    detailsHost: el('div'),
    spanOfRow: new Map(),
    tokenRows: [],
    positionOfRow: new Map(),
  };
  const pieces: (Node | string)[] = [];
  for (const seg of heatmapSegments(a.text, a.rows)) {
    if (seg.kind === 'text') {
      pieces.push(seg.text);
      continue;
    }
    const value = segmentValue(seg, (j) => a.rows[j][metric]);
    const colour = byChange ? changeClass(a, seg.rows, metric, maxDelta) : `heat${heatBand(value, range)}`;
    const row = seg.rows[0];
    const span = el(
      'span',
      {
        class: `tok ${colour}`,
        id: `tok-${row}`,
        role: 'option',
        'data-row': String(row),
        title: `${JSON.stringify(seg.text)} ${metric} ${formatNumber(value)}`,
      },
      seg.text,
    );
    for (const r of seg.rows) view.spanOfRow.set(r, span);
    view.positionOfRow.set(row, view.tokenRows.length);
    view.tokenRows.push(row);
    pieces.push(span);
  }
  heat.append(...pieces);
  heat.addEventListener('click', (e) => {
    const t = (e.target as HTMLElement).closest('.tok') as HTMLElement | null;
    if (t) select(Number(t.dataset.row), { reveal: true });
  });
  heat.addEventListener('keydown', (e) => onHeatmapKey(e, view));
  analysisHost.append(heat, view.detailsHost);
  heatmapView = view;

  if (a.baseline) analysisHost.append(comparison(a, metric));
  analysisHost.append(summary(a), histogram(a, metric, range), worst(a, metric));
  const selected = state.selected;
  state.selected = null;
  select(selected);
}

/**
 * Moves the selection to row `index` (null: none): one highlight moves and the token details
 * are replaced; nothing else is rebuilt, and the heatmap keeps its scroll position.
 */
function select(index: number | null, o: { reveal?: boolean; scroll?: boolean } = {}): void {
  const a = state.analysis;
  const view = heatmapView;
  if (!a || !view) return;
  if (index !== null && !a.rows[index]) index = null;
  if (index !== state.selected) {
    if (state.selected !== null) view.spanOfRow.get(state.selected)?.classList.remove('selected');
    state.selected = index;
    const span = index === null ? undefined : view.spanOfRow.get(index);
    span?.classList.add('selected');
    if (span) view.heat.setAttribute('aria-activedescendant', span.id);
    else view.heat.removeAttribute('aria-activedescendant');
    view.detailsHost.replaceChildren(
      ...(index === null ? [] : [details(a.rows[index], state.metric, a.baseline?.rows[index] ?? null)]),
    );
    if (span && o.scroll) span.scrollIntoView({ block: 'nearest' });
  }
  if (o.reveal && index !== null) vscode.postMessage({ type: 'revealRow', index });
}

/** The heatmap as a listbox: arrows step through tokens, Home / End jump, Enter shows the token in the editor. */
function onHeatmapKey(e: KeyboardEvent, view: HeatmapView): void {
  // the token span holding the selected row (rows can share one), as a position in text order
  const selectedSpan = state.selected === null ? undefined : view.spanOfRow.get(state.selected);
  const at = selectedSpan ? (view.positionOfRow.get(Number(selectedSpan.dataset.row)) ?? -1) : -1;
  const last = view.tokenRows.length - 1;
  const step: Record<string, number> = {
    ArrowRight: at + 1,
    ArrowDown: at + 1,
    ArrowLeft: at - 1,
    ArrowUp: at - 1,
    Home: 0,
    End: last,
  };
  if (e.key in step) {
    e.preventDefault();
    const to = Math.max(0, Math.min(last, at < 0 && e.key !== 'End' ? 0 : step[e.key]));
    select(view.tokenRows[to], { scroll: true });
  } else if (e.key === 'Enter' && state.selected !== null) {
    e.preventDefault();
    select(state.selected, { reveal: true });
  }
}

/** after − before of the metric for row i, or undefined when the token has no baseline */
function delta(a: PanelAnalysis, i: number, metric: MetricKey): number | undefined {
  const b = a.baseline?.rows[i];
  return b ? a.rows[i][metric] - b[metric] : undefined;
}

function maxAbsDelta(a: PanelAnalysis, metric: MetricKey): number {
  return a.rows.reduce((m, _, i) => Math.max(m, Math.abs(delta(a, i, metric) ?? 0)), 0) || 1;
}

/** Lower is better for every metric: a fall is "better" (green), a rise "worse" (red), five steps each. */
function changeClass(a: PanelAnalysis, rows: number[], metric: MetricKey, maxDelta: number): string {
  const ds = rows.map((i) => delta(a, i, metric)).filter((d): d is number => d !== undefined);
  if (ds.length === 0) return 'nochange';
  const d = ds.reduce((x, y) => (Math.abs(y) > Math.abs(x) ? y : x));
  const level = Math.min(4, Math.floor((Math.abs(d) / maxDelta) * 5));
  return d < 0 ? `better${level}` : d > 0 ? `worse${level}` : 'nochange';
}

function changeLegend(a: PanelAnalysis, metric: MetricKey): HTMLElement {
  const m = maxAbsDelta(a, metric);
  const legend = el('div', {
    class: 'legend',
    title: `change of ${metric} after distillation: green fell (better), red rose (worse)`,
  });
  const bar = el('span', { class: 'bar' });
  for (let i = 4; i >= 0; i--) bar.append(el('span', { class: `better${i}` }));
  for (let i = 0; i < 5; i++) bar.append(el('span', { class: `worse${i}` }));
  legend.append(el('span', {}, `−${formatNumber(m)}`), bar, el('span', {}, `+${formatNumber(m)}`));
  return legend;
}

function comparison(a: PanelAnalysis, metric: MetricKey): HTMLElement {
  const box = el('vscode-collapsible', {
    title: `Before / after distillation: ${metric}`,
    open: '',
    id: 'comparison',
  });
  const matched = a.rows.map((_, i) => i).filter((i) => a.baseline!.rows[i]);
  const mean = (f: (i: number) => number) =>
    matched.reduce((s, i) => s + f(i), 0) / Math.max(1, matched.length);
  const before = mean((i) => a.baseline!.rows[i]![metric]);
  const after = mean((i) => a.rows[i][metric]);
  const better = matched.filter((i) => delta(a, i, metric)! < 0).length;
  const worse = matched.filter((i) => delta(a, i, metric)! > 0).length;
  const t = el('table', { class: 'metrics' });
  t.append(
    el(
      'tr',
      {},
      el('th', {}, ''),
      el('th', { class: 'num' }, 'before'),
      el('th', { class: 'num' }, 'after'),
      el('th', { class: 'num' }, 'change'),
    ),
    el(
      'tr',
      {},
      el('td', {}, `mean ${metric}`),
      el('td', { class: 'num' }, formatNumber(before)),
      el('td', { class: 'num' }, formatNumber(after)),
      el('td', { class: 'num' }, `${after - before >= 0 ? '+' : ''}${formatNumber(after - before)}`),
    ),
  );
  const lists = el('div', { class: 'sidebyside' });
  const list = (title: string, order: number[]) => {
    const ol = el('ol', { class: 'worst' });
    for (const i of order) {
      const link = el('a', { href: '#', 'data-row': String(i) }, JSON.stringify(a.rows[i].text));
      link.addEventListener('click', (e) => {
        e.preventDefault();
        select(i, { reveal: true, scroll: true });
      });
      const d = delta(a, i, metric)!;
      ol.append(el('li', {}, link, ` ${d >= 0 ? '+' : ''}${formatNumber(d)}`));
    }
    return el('div', {}, el('div', { class: 'bars-title' }, title), ol);
  };
  const byDelta = [...matched].sort((x, y) => delta(a, x, metric)! - delta(a, y, metric)!);
  lists.append(
    list(`fixed most (${better} tokens fell)`, byDelta.filter((i) => delta(a, i, metric)! < 0).slice(0, 5)),
    list(
      `broke most (${worse} tokens rose)`,
      byDelta
        .filter((i) => delta(a, i, metric)! > 0)
        .reverse()
        .slice(0, 5),
    ),
  );
  box.append(el('div', { class: 'models' }, `before: ${a.baseline!.student}`), t, lists);
  return box;
}

function trainingSection(t: TrainingView): HTMLElement {
  const status = { running: 'running', done: 'done', cancelled: 'cancelled', failed: 'failed' }[t.status];
  const box = el('vscode-collapsible', {
    title: `Distillation (${status}): ${t.title}`,
    open: '',
    id: 'training',
  });
  const W = 300;
  const H = 90;
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'losschart');
  svg.setAttribute('role', 'img');
  const pts = t.points;
  const losses = pts.map((p) => p.loss);
  const lo = Math.min(...losses, Infinity);
  const hi = Math.max(...losses, -Infinity);
  svg.setAttribute(
    'aria-label',
    pts.length
      ? `loss from ${formatNumber(losses[0])} to ${formatNumber(losses[losses.length - 1])} over ${pts.length} of ${t.steps} steps`
      : 'no steps yet',
  );
  if (pts.length > 0) {
    const x = (step: number) => ((step - 1) / Math.max(1, t.steps - 1)) * (W - 4) + 2;
    const y = (loss: number) => (hi > lo ? (1 - (loss - lo) / (hi - lo)) * (H - 8) + 4 : H / 2);
    const line = document.createElementNS(svgNs, 'polyline');
    line.setAttribute('points', pts.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' '));
    line.setAttribute('class', 'lossline');
    svg.append(line);
  }
  box.append(
    svg,
    el(
      'div',
      { class: 'axis' },
      el('span', {}, `loss ${pts.length ? formatNumber(lo) : '–'}…${pts.length ? formatNumber(hi) : '–'}`),
      el('span', {}, `step ${pts.length ? pts[pts.length - 1].step : 0}/${t.steps}`),
    ),
    el('div', { class: 'models', id: 'training-message' }, t.message ?? ''),
  );
  if (t.heldOut) {
    const table = el('table', { class: 'metrics' });
    table.append(
      el(
        'tr',
        {},
        el('th', {}, 'held-out'),
        el('th', { class: 'num' }, 'before'),
        el('th', { class: 'num' }, 'after'),
      ),
    );
    for (const [label, k] of [
      ['forward KL', 'fkl'],
      ['reverse KL', 'rkl'],
      ['student perplexity', 'studentPerplexity'],
    ] as const) {
      table.append(
        el(
          'tr',
          {},
          el('td', {}, label),
          el('td', { class: 'num' }, formatNumber(t.heldOut.before[k])),
          el('td', { class: 'num' }, formatNumber(t.heldOut.after[k])),
        ),
      );
    }
    box.append(table);
  }
  if (t.status === 'done' && t.used) box.append(el('div', { class: 'models' }, `now the student: ${t.out}`));
  else if (t.status === 'done') {
    const use = el('vscode-button', { id: 'use-distilled' }, 'Use as Student and Re-analyse');
    use.addEventListener('click', () => vscode.postMessage({ type: 'useDistilled' }));
    box.append(el('div', { class: 'actions' }, use));
  }
  return box;
}

function details(r: TokenRow, metric: MetricKey, before: Record<MetricKey, number> | null): HTMLElement {
  // the token in the body, not the collapsible's title (which the component upper-cases)
  const box = el('vscode-collapsible', { title: 'Token', open: '', id: 'details', 'data-token': r.text });
  const heading = el(
    'div',
    { class: 'token-title' },
    el('code', {}, JSON.stringify(r.text)),
    ` id ${r.target} · characters ${r.start}–${r.end}${r.hard ? ' · hard' : ''}`,
  );
  const bars = (title: string, m: TokenRow['teacher']) => {
    const list = el(
      'div',
      { class: 'bars' },
      el('div', { class: 'bars-title' }, `${title}: p(target) ${formatNumber(m.p)}, rank ${m.rank}`),
    );
    for (const t of m.top) {
      const row = el('div', { class: `barrow${t.id === r.target ? ' target' : ''}` });
      const fill = el('span', { class: 'fill' });
      fill.style.width = `${(100 * t.p).toFixed(1)}%`;
      row.append(
        el('span', { class: 'label' }, JSON.stringify(t.text)),
        el('span', { class: 'track' }, fill),
        el('span', { class: 'num' }, formatNumber(t.p)),
      );
      list.append(row);
    }
    return list;
  };
  const table = el('table', { class: 'metrics' });
  for (const g of METRIC_GROUPS) {
    table.append(
      el(
        'tr',
        {},
        el('th', { colspan: before ? '1' : '2' }, g.title),
        ...(before
          ? [
              el('th', { class: 'num' }, 'now'),
              el('th', { class: 'num' }, 'before'),
              el('th', { class: 'num' }, 'Δ'),
            ]
          : []),
      ),
    );
    for (const k of g.keys) {
      const cells = [
        el('td', { title: METRIC_LABELS[k] }, k),
        el('td', { class: 'num' }, formatNumber(r[k])),
      ];
      if (before) {
        const d = r[k] - before[k];
        cells.push(
          el('td', { class: 'num' }, formatNumber(before[k])),
          el(
            'td',
            { class: `num ${d < 0 ? 'fell' : d > 0 ? 'rose' : ''}` },
            `${d >= 0 ? '+' : ''}${formatNumber(d)}`,
          ),
        );
      }
      table.append(el('tr', { class: k === metric ? 'current' : '' }, ...cells));
    }
  }
  box.append(
    heading,
    el(
      'div',
      { class: 'details' },
      el('div', { class: 'sidebyside' }, bars('teacher', r.teacher), bars('student', r.student)),
      table,
    ),
  );
  return box;
}

function summary(a: PanelAnalysis): HTMLElement {
  const s = a.summary;
  const box = el('vscode-collapsible', { title: 'Summary', open: '', id: 'summary' });
  const t = el('table', { class: 'metrics' });
  const add = (k: string, v: string) =>
    t.append(el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, v)));
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
    const b = el('span', {
      class: `hbar heat${Math.floor((i * BANDS) / bins)}`,
      title: `${formatNumber(range[0] + ((range[1] - range[0]) * i) / bins)}–${formatNumber(range[0] + ((range[1] - range[0]) * (i + 1)) / bins)}: ${c} tokens`,
    });
    b.style.height = `${(100 * c) / max}%`;
    chart.append(b);
  });
  box.append(
    chart,
    el(
      'div',
      { class: 'axis' },
      el('span', {}, formatNumber(range[0])),
      el('span', {}, formatNumber(range[1])),
    ),
  );
  return box;
}

function worst(a: PanelAnalysis, metric: MetricKey): HTMLElement {
  const box = el('vscode-collapsible', { title: `Worst tokens by ${metric}`, open: '', id: 'worst' });
  const list = el('ol', { class: 'worst' });
  const order = a.rows
    .map((_, i) => i)
    .sort((x, y) => a.rows[y][metric] - a.rows[x][metric])
    .slice(0, 10);
  for (const i of order) {
    const r = a.rows[i];
    const link = el('a', { href: '#', 'data-row': String(i) }, JSON.stringify(r.text));
    link.addEventListener('click', (e) => {
      e.preventDefault();
      select(i, { reveal: true, scroll: true });
    });
    list.append(
      el(
        'li',
        {},
        link,
        ` ${formatNumber(r[metric])} · teacher p ${formatNumber(r.teacher.p)}, student p ${formatNumber(r.student.p)}`,
      ),
    );
  }
  box.append(list);
  return box;
}

window.addEventListener('message', (e: MessageEvent<ToPanel>) => {
  const m = e.data;
  if (m.type === 'showAnalysis') {
    const same =
      state.analysis &&
      m.analysis &&
      state.analysis.documentName === m.analysis.documentName &&
      state.analysis.rows.length === m.analysis.rows.length;
    state = {
      ...state,
      analysis: m.analysis,
      metric: m.metric,
      fixedMax: m.fixedMax,
      selected: same ? state.selected : null,
    };
    renderAnalysis();
  } else if (m.type === 'showTraining') {
    state.training = m.training;
    renderTraining();
  } else if (m.type === 'highlightRow') {
    select(m.index, { scroll: true });
  }
});

renderTraining();
renderAnalysis();
vscode.postMessage({ type: 'ready' });
