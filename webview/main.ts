/**
 * The side panel's UI (browser only): the analysed text as a heatmap with token boundaries,
 * a metric selector and legend, token details with top-k bars, the summary, a histogram of
 * the metric, and the worst tokens. State survives hiding the view (getState/setState).
 *
 * Stays fast on long analyses (20,000+ tokens, also while the user types beside it):
 * - the host sends per token only its span and one value; a token's details come when it is
 *   selected;
 * - the heatmap is cut into blocks of lines at places chosen by their content, so an edit
 *   changes only the blocks around it: the others are kept as they are (their DOM reused),
 *   and blocks off screen are neither laid out nor painted (content-visibility);
 * - a cursor move or a click only moves the highlight and replaces the token details;
 * - the state is saved once per message.
 * The heatmap is one tab stop, a listbox whose arrow keys move between tokens.
 */
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-divider/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { METRIC_KEYS, METRIC_LABELS, type MetricKey } from '../src/core/metricKeys';
import { METRIC_GROUPS, rankText } from '../src/core/hoverText';
import { formatNumber } from '../src/core/formatNumber';
import { heatColor, scalePosition, textColorOn, toHex } from '../src/core/colorScale';
import { layerHeatmapSvg, lensRows, stateName } from '../src/report/layerHeatmap';
import { meanMappedCka } from '../src/core/layerMapping';
import {
  BANDS,
  CHANGE_STEPS,
  changeClass,
  heatBand,
  heatmapSegments,
  heatRange,
  maxAbsChange,
} from '../src/report/heatmap';
import type {
  FromPanel,
  PanelAnalysis,
  PanelSamples,
  RowDetails,
  ToPanel,
  TrainingView,
  WatchView,
} from '../src/shared/panelProtocol';
import type { LayerView } from '../src/shared/protocol';
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
  colorBy: 'value' | 'change';
  fixedMax?: number;
  selected: number | null;
  /** the selected token's details, when they have come */
  details?: RowDetails | null;
  training?: TrainingView | null;
  /** the continuations of the active continuation document, shown instead of an analysis */
  samples?: PanelSamples | null;
}

let state: PanelState = vscode.getState() ?? {
  analysis: null,
  metric: 'fkl',
  colorBy: 'value',
  selected: null,
};
const app = document.getElementById('app')!;
const trainingHost = el('div', { id: 'training-host' });
const samplesHost = el('div', { id: 'samples-host' });
const analysisHost = el('div', { id: 'analysis-host' });
app.replaceChildren(trainingHost, samplesHost, analysisHost); // replaces the page's placeholder text

/** A token span and the rows it draws (byte-fallback pieces share one span). */
type TokenSpan = HTMLElement & { rows?: number[] };

/** A block of lines of the heatmap: its content key, its element, its token spans in order. */
interface Block {
  key: string;
  element: HTMLElement;
  spans: TokenSpan[];
}

/** The heatmap as drawn now: kept across messages, so that unchanged blocks are reused. */
interface HeatmapView {
  heat: HTMLElement;
  detailsHost: HTMLElement;
  blocks: Block[];
  /** the span of each row */
  spanOfRow: Map<number, TokenSpan>;
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

/** Colouring by change applies when the analysis has a previous student to compare with. */
function byChange(a: PanelAnalysis): boolean {
  return !!a.baseline && state.colorBy === 'change';
}

/** after − before per row (undefined: no counterpart or stale) */
function changes(a: PanelAnalysis): (number | undefined)[] {
  const before = a.baseline?.values ?? [];
  return a.values.map((v, i) => (before[i] === null || before[i] === undefined ? undefined : v - before[i]!));
}

/** Draws the analysis: the header, the heatmap (reusing unchanged blocks) and the sections below it. */
function renderAnalysis(): void {
  save();
  const a = state.analysis;
  if (!a || a.values.length === 0) {
    heatmapView = undefined;
    // a continuation document is active: its view says it all
    if (state.samples) return analysisHost.replaceChildren();
    analysisHost.replaceChildren(
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
  const metric = state.metric;
  const stale = new Set(a.stale);
  // the scale of every row, stale ones too, as in the editor: colours do not jump while typing
  const range = heatRange(a.values, state.fixedMax);
  const deltas = byChange(a) ? changes(a) : [];
  const maxDelta = maxAbsChange(deltas);

  // header: metric selector, legend, colouring
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
  const header = el(
    'div',
    { class: 'header' },
    metricSelect,
    byChange(a) ? changeLegend(metric, maxDelta) : valueLegend(metric, range),
  );
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
      if (state.colorBy === v) o.setAttribute('selected', '');
      colorBy.append(o);
    }
    colorBy.addEventListener('change', () => {
      // a setting (distillLens.colorBy): the editor follows, and the host sends the analysis again
      if (colorBy.value !== state.colorBy)
        vscode.postMessage({ type: 'chooseColoring', colorBy: colorBy.value as 'value' | 'change' });
    });
    header.append(colorBy);
  }
  const models = el(
    'div',
    { class: 'models', title: a.modelPaths ?? '' },
    `${a.documentName} · teacher ${a.teacher} · student ${a.student} · ${a.values.length} tokens` +
      (stale.size > 0 ? ` · ${stale.size} stale (the text before them changed)` : ''),
  );
  // a served teacher: say at the top that the divergences are over its top K (lower bounds)
  const served = a.teacherSupport
    ? el(
        'div',
        { class: 'models', id: 'teacher-support' },
        `served teacher, ${a.teacherSupport}: divergences over its top tokens, the target and the rest (lower bounds); log p, k1–k3, tckd exact`,
      )
    : undefined;

  // a pair whose tokenizers differ: how many boundaries coincide, and what the numbers are
  const across = a.acrossTokenizers
    ? el(
        'div',
        { class: 'models', id: 'across-tokenizers' },
        `the tokenizers differ: compared on ${a.acrossTokenizers.spans} spans, where both tokenizations start a token (of ${a.acrossTokenizers.studentTokens} student and ${a.acrossTokenizers.teacherTokens} teacher tokens); each student token shows its span's k1–k3 (exact), per-token divergences need one vocabulary`,
      )
    : undefined;

  const view = heatmapView ?? newHeatmapView();
  // in the page before it is drawn, so that its font and width can be measured
  if (!view.heat.isConnected) analysisHost.replaceChildren(view.heat);
  const label = byChange(a) ? `the change of ${metric}` : metric;
  view.heat.setAttribute(
    'aria-label',
    `tokens coloured by ${label}; arrow keys move, Enter shows it in the editor`,
  );
  drawHeatmap(view, a, (rows) => {
    if (rows.some((r) => stale.has(r))) return 'stale';
    if (byChange(a)) {
      // the largest change among rows sharing the span
      const ds = rows.map((r) => deltas[r]).filter((d): d is number => d !== undefined);
      return changeClass(
        ds.length ? ds.reduce((x, y) => (Math.abs(y) > Math.abs(x) ? y : x)) : undefined,
        maxDelta,
      );
    }
    return `heat${heatBand(Math.max(...rows.map((r) => a.values[r])), range)}`;
  });
  heatmapView = view;

  const below: HTMLElement[] = [];
  if (a.baseline) below.push(comparison(a, metric));
  below.push(summary(a), histogram(a, metric, range, stale), worst(a, metric));
  if (a.layers) below.push(layersSection(a.layers));
  // the heatmap and the details stay in the page (their scroll position too); the rest is replaced
  for (const child of [...analysisHost.childNodes])
    if (child !== view.heat && child !== view.detailsHost) child.remove();
  if (view.heat.nextSibling !== view.detailsHost) view.heat.after(view.detailsHost);
  view.heat.before(header, models, ...(served ? [served] : []), ...(across ? [across] : []));
  view.detailsHost.after(...below);
  // the selection: the same row when the rows are the same version (see the message handler), else none
  const selected = state.selected;
  const details = state.details;
  state.selected = null;
  // details of this version are shown as they are; otherwise they are asked for again
  select(selected, { details: details && details.analysisId === a.id ? details : undefined });
}

/**
 * Analyze Layers of Selection: per model a hidden state × token heatmap of the logit lens's KL
 * (a cell shows its token in the editor) and the CKA matrix, drawn by src/report/layerHeatmap.
 */
function layersSection(l: NonNullable<PanelAnalysis['layers']>): HTMLElement {
  const v = l.view;
  const box = el('vscode-collapsible', { title: 'Layers', open: '', id: 'layers' });
  box.append(
    el(
      'div',
      { class: 'models' },
      `each hidden state through the model's own final norm and head (logit lens), colour by log(1 + KL); ${v.rows} tokens`,
    ),
  );
  const lensMap = (values: number[][], id: string, label: string) => {
    const map = el('div', { class: 'layer-map', id });
    // the SVG is our own markup (escaped texts, colours as attributes): the panel's CSP allows it
    map.innerHTML = layerHeatmapSvg(values, l.tokens, label);
    map.addEventListener('click', (e) => {
      const cell = (e.target as Element).closest('rect[data-row]');
      const index = cell ? l.rowIndex[Number(cell.getAttribute('data-row'))] : -1;
      if (index >= 0) select(index, { reveal: true });
    });
    return map;
  };
  // after Use as Student and Re-analyse: the student before distillation under the student now
  const studentBefore =
    l.before && l.before.rows === v.rows ? lensRows(l.before).find((m) => m.model === 'student') : undefined;
  for (const m of lensRows(v)) {
    box.append(
      el('div', { class: 'bars-title' }, `${m.model}${studentBefore ? ' now' : ''}: ${m.what}`),
      lensMap(m.values, `layers-${m.model}`, `${m.model} logit lens`),
    );
    if (m.model === 'student' && studentBefore)
      box.append(
        el('div', { class: 'bars-title' }, `student before distillation: ${studentBefore.what}`),
        lensMap(studentBefore.values, 'layers-student-before', 'student logit lens before distillation'),
      );
  }
  const mapped = `mapped layers' mean CKA (student layer j ↔ teacher layer round(j·L_T/L_S)): ${formatNumber(meanMappedCka(v.cka))}`;
  box.append(
    el('div', { class: 'bars-title' }, `linear CKA over ${v.positions} positions`),
    el('div', { class: 'layer-map' }, ckaTable(v, 'cka')),
    el(
      'div',
      { class: 'models', id: 'mapped-cka' },
      l.before ? `${mapped}; before distillation ${formatNumber(meanMappedCka(l.before.cka))}` : mapped,
    ),
  );
  if (l.before)
    box.append(
      el('div', { class: 'bars-title' }, 'linear CKA with the student before distillation'),
      el('div', { class: 'layer-map' }, ckaTable(l.before, 'cka-before')),
    );
  return box;
}

/** The CKA matrix, coloured through the CSSOM (the CSP forbids style attributes in markup). */
function ckaTable(v: LayerView, id: string): HTMLElement {
  const table = el('table', { class: 'metrics cka', id });
  table.append(
    el(
      'tr',
      {},
      el('th', { title: 'student states down, teacher states across' }, 'S ↓ T →'),
      ...v.teacher.map((_, j) => el('th', { class: 'num' }, String(j))),
    ),
  );
  v.cka.forEach((row, i) => {
    const cells = row.map((x, j) => {
      const td = el(
        'td',
        {
          class: 'num',
          title: `CKA: student ${stateName(i, v.student.length)} ↔ teacher ${stateName(j, v.teacher.length)}`,
        },
        x.toFixed(2),
      );
      const bg = heatColor(x);
      td.style.background = toHex(bg);
      td.style.color = toHex(textColorOn(bg));
      return td;
    });
    table.append(el('tr', {}, el('th', {}, String(i)), ...cells));
  });
  return table;
}

function newHeatmapView(): HeatmapView {
  const heat = el('div', { class: 'heatmap', id: 'heatmap', role: 'listbox', tabindex: '0' });
  const view: HeatmapView = {
    heat,
    detailsHost: el('div'),
    blocks: [],
    spanOfRow: new Map(),
    tokenRows: [],
    positionOfRow: new Map(),
  };
  heat.addEventListener('click', (e) => {
    const t = (e.target as HTMLElement).closest('.tok') as TokenSpan | null;
    if (t?.rows) select(t.rows[0], { reveal: true });
  });
  heat.addEventListener('keydown', (e) => onHeatmapKey(e, view));
  return view;
}

/** A piece of a block: plain text, or a token span with its colour class and rows. */
type Piece = { text: string; cls?: string; rows?: number[] };

/** Tokens per block before a content-chosen line end may close it, and the most a block holds. */
const BLOCK_MIN_TOKENS = 120;
const BLOCK_MAX_TOKENS = 600;

/**
 * Cuts the heatmap into blocks of whole lines. A block closes at a line end once it holds
 * BLOCK_MIN_TOKENS tokens and a hash of the last few tokens' text says so: the places depend
 * on the text near them, not on counts from the start, so after an edit the blocks further
 * on are cut where they were and are reused.
 */
function cutBlocks(
  a: PanelAnalysis,
  classOf: (rows: number[]) => string,
): { key: string; pieces: Piece[] }[] {
  const rows = a.values.map((_, i) => ({ start: a.spans[2 * i], end: a.spans[2 * i + 1] }));
  const blocks: { key: string; pieces: Piece[] }[] = [];
  let pieces: Piece[] = [];
  let key = '';
  let tokens = 0;
  let hash = 0;
  const close = () => {
    if (pieces.length) blocks.push({ key, pieces });
    pieces = [];
    key = '';
    tokens = 0;
  };
  for (const seg of heatmapSegments(a.text, rows, a.from)) {
    if (seg.kind === 'text') {
      pieces.push({ text: seg.text });
      key += `\u0001${seg.text}`;
    } else {
      const cls = classOf(seg.rows);
      pieces.push({ text: seg.text, cls, rows: seg.rows });
      key += `\u0002${cls}\u0003${seg.text}`;
      tokens++;
      for (let i = 0; i < seg.text.length; i++) hash = (Math.imul(hash, 31) + seg.text.charCodeAt(i)) | 0;
    }
    if (
      seg.text.endsWith('\n') &&
      ((tokens >= BLOCK_MIN_TOKENS && (hash & 7) === 0) || tokens >= BLOCK_MAX_TOKENS)
    )
      close();
  }
  close();
  return blocks;
}

/** The heatmap's line height and characters per line (monospace), for estimating block heights. */
function textMetrics(heat: HTMLElement): { lineHeight: number; charsPerLine: number } {
  const style = getComputedStyle(heat);
  const fontSize = parseFloat(style.fontSize) || 13;
  const lineHeight = parseFloat(style.lineHeight) || fontSize * 1.8;
  // a monospace character is about 0.6 em wide
  const width = heat.clientWidth || 300;
  return { lineHeight, charsPerLine: Math.max(10, Math.floor((width - 12) / (0.6 * fontSize))) };
}

/** The height of a block's text: each line wrapped at the panel's width. */
function estimatedHeight(text: string, m: { lineHeight: number; charsPerLine: number }): number {
  let rows = 0;
  for (const line of text.split('\n')) rows += Math.max(1, Math.ceil(line.length / m.charsPerLine));
  // a final line end draws no line of its own
  if (text.endsWith('\n')) rows -= 1;
  return Math.max(1, rows) * m.lineHeight;
}

/** Draws the heatmap's blocks, keeping every block whose content is unchanged. */
function drawHeatmap(view: HeatmapView, a: PanelAnalysis, classOf: (rows: number[]) => string): void {
  const metrics = textMetrics(view.heat);
  const reusable = new Map<string, Block[]>();
  for (const b of view.blocks) reusable.set(b.key, [...(reusable.get(b.key) ?? []), b]);
  const blocks: Block[] = cutBlocks(a, classOf).map(({ key, pieces }) => {
    const kept = reusable.get(key)?.shift();
    if (kept) {
      // the same text and colours; its rows may be numbered differently now
      let k = 0;
      for (const p of pieces) if (p.rows) kept.spans[k++].rows = p.rows;
      return kept;
    }
    const element = el('div', { class: 'block' });
    // its height before it is first laid out: close to the real one, so that scrolling to a
    // block not yet drawn moves nothing on screen when it is drawn
    element.style.containIntrinsicSize = `auto ${estimatedHeight(pieces.map((p) => p.text).join(''), metrics)}px`;
    const spans: TokenSpan[] = [];
    element.append(
      ...pieces.map((p) => {
        if (!p.rows) return p.text;
        const span = el('span', { class: `tok ${p.cls}`, role: 'option' }, p.text) as TokenSpan;
        span.rows = p.rows;
        spans.push(span);
        return span;
      }),
    );
    return { key, element, spans };
  });
  // the blocks not kept go; the others are put in order, moving only what moved
  const keep = new Set(blocks.map((b) => b.element));
  for (const b of view.blocks) if (!keep.has(b.element)) b.element.remove();
  let cursor = view.heat.firstChild;
  for (const b of blocks) {
    if (cursor === b.element) cursor = cursor.nextSibling;
    else view.heat.insertBefore(b.element, cursor);
  }
  view.blocks = blocks;
  view.spanOfRow.clear();
  view.positionOfRow.clear();
  view.tokenRows = [];
  for (const b of blocks)
    for (const span of b.spans) {
      for (const r of span.rows!) view.spanOfRow.set(r, span);
      view.positionOfRow.set(span.rows![0], view.tokenRows.length);
      view.tokenRows.push(span.rows![0]);
    }
}

/**
 * Moves the selection to row `index` (null: none): one highlight moves and the token details
 * are replaced (asked from the host when they are not given); nothing else is rebuilt, and
 * the heatmap keeps its scroll position.
 */
function select(
  index: number | null,
  o: { reveal?: boolean; scroll?: boolean; details?: RowDetails; quiet?: boolean } = {},
): void {
  const a = state.analysis;
  const view = heatmapView;
  if (!a || !view) return;
  if (index !== null && !(index >= 0 && index < a.values.length)) index = null;
  if (index !== state.selected) {
    view.heat.querySelector('.tok.selected')?.classList.remove('selected');
    view.heat.querySelector('#selected-token')?.removeAttribute('id');
    state.selected = index;
    state.details = null;
    const span = index === null ? undefined : view.spanOfRow.get(index);
    span?.classList.add('selected');
    if (span) {
      span.id = 'selected-token';
      view.heat.setAttribute('aria-activedescendant', span.id);
    } else view.heat.removeAttribute('aria-activedescendant');
    view.detailsHost.replaceChildren();
    if (span && o.scroll) span.scrollIntoView({ block: 'nearest' });
    if (index !== null && !o.details && !o.quiet)
      vscode.postMessage({ type: 'selectRow', analysisId: a.id, index });
  }
  if (o.details && o.details.index === index) showDetails(o.details);
  if (o.reveal && index !== null) vscode.postMessage({ type: 'revealRow', analysisId: a.id, index });
}

function showDetails(d: RowDetails): void {
  const view = heatmapView;
  if (!view || !state.analysis || d.analysisId !== state.analysis.id || d.index !== state.selected) return;
  state.details = d;
  view.detailsHost.replaceChildren(details(d.row, state.metric, d.before, d.stale));
}

/** The heatmap as a listbox: arrows step through tokens, Home / End jump, Enter shows the token in the editor. */
function onHeatmapKey(e: KeyboardEvent, view: HeatmapView): void {
  // the token span holding the selected row (rows can share one), as a position in text order
  const selectedSpan = state.selected === null ? undefined : view.spanOfRow.get(state.selected);
  const at = selectedSpan ? (view.positionOfRow.get(selectedSpan.rows![0]) ?? -1) : -1;
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

function valueLegend(metric: MetricKey, range: [number, number]): HTMLElement {
  const legend = el('div', {
    class: 'legend',
    title: `${METRIC_LABELS[metric]}: colour bands from ${formatNumber(range[0])} to ${formatNumber(range[1])}; dimmed tokens are stale`,
  });
  const bar = el('span', { class: 'bar' });
  for (let i = 0; i < BANDS; i++) bar.append(el('span', { class: `heat${i}` }));
  legend.append(el('span', {}, formatNumber(range[0])), bar, el('span', {}, formatNumber(range[1])));
  return legend;
}

function changeLegend(metric: MetricKey, maxDelta: number): HTMLElement {
  const legend = el('div', {
    class: 'legend',
    title: `change of ${metric} after distillation: green fell (better), red rose (worse)`,
  });
  const bar = el('span', { class: 'bar' });
  for (let i = CHANGE_STEPS - 1; i >= 0; i--) bar.append(el('span', { class: `fell${i}` }));
  for (let i = 0; i < CHANGE_STEPS; i++) bar.append(el('span', { class: `rose${i}` }));
  legend.append(
    el('span', {}, `−${formatNumber(maxDelta)}`),
    bar,
    el('span', {}, `+${formatNumber(maxDelta)}`),
  );
  return legend;
}

/** A link that selects row `index` and shows it in the editor. */
function rowLink(index: number, text: string): HTMLElement {
  const link = el('a', { href: '#' }, JSON.stringify(text));
  link.addEventListener('click', (e) => {
    e.preventDefault();
    select(index, { reveal: true, scroll: true });
  });
  return link;
}

function comparison(a: PanelAnalysis, metric: MetricKey): HTMLElement {
  const b = a.baseline!;
  const box = el('vscode-collapsible', {
    title: `Before / after distillation: ${metric}`,
    open: '',
    id: 'comparison',
  });
  const t = el('table', { class: 'metrics' });
  const change = b.meanAfter - b.meanBefore;
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
      el('td', { class: 'num' }, formatNumber(b.meanBefore)),
      el('td', { class: 'num' }, formatNumber(b.meanAfter)),
      el('td', { class: 'num' }, `${change >= 0 ? '+' : ''}${formatNumber(change)}`),
    ),
  );
  const list = (title: string, entries: typeof b.fixedMost) => {
    const ol = el('ol', { class: 'worst' });
    for (const e of entries)
      ol.append(
        el('li', {}, rowLink(e.index, e.text), ` ${e.change >= 0 ? '+' : ''}${formatNumber(e.change)}`),
      );
    return el('div', {}, el('div', { class: 'bars-title' }, title), ol);
  };
  box.append(
    el('div', { class: 'models' }, `before: ${b.student}`),
    t,
    el(
      'div',
      { class: 'sidebyside' },
      list(`fixed most (${b.fell} tokens fell)`, b.fixedMost),
      list(`broke most (${b.rose} tokens rose)`, b.brokeMost),
    ),
  );
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
    // training in stages: a dashed line where each later stage starts, with its kind
    for (const st of (t.stages ?? []).slice(1)) {
      const mark = document.createElementNS(svgNs, 'line');
      const at = x(st.from).toFixed(1);
      for (const [k, v] of [
        ['x1', at],
        ['x2', at],
        ['y1', '0'],
        ['y2', String(H)],
        ['class', 'stageline'],
      ])
        mark.setAttribute(k, v);
      const label = document.createElementNS(svgNs, 'text');
      label.setAttribute('x', String(Number(at) + 2));
      label.setAttribute('y', '9');
      label.setAttribute('class', 'stagelabel');
      label.textContent = st.kind;
      svg.append(mark, label);
    }
    // the sequence-level methods: the reward (mean log p − log q of what the student wrote) and
    // the exact KL(q‖p) per completion token, each on its own scale
    for (const [key, cls, what] of [
      ['reward', 'rewardline', "reward (mean log p − log q of the student's tokens)"],
      ['kl', 'klline', 'KL(q‖p) per token (exact, mean over the completions)'],
    ] as const) {
      const shown = pts.filter((p) => p[key] !== undefined);
      if (shown.length === 0) continue;
      const vs = shown.map((p) => p[key]!);
      const [vlo, vhi] = [Math.min(...vs), Math.max(...vs)];
      const vy = (v: number) => (vhi > vlo ? (1 - (v - vlo) / (vhi - vlo)) * (H - 8) + 4 : H / 2);
      const curve = document.createElementNS(svgNs, 'polyline');
      curve.setAttribute(
        'points',
        shown.map((p) => `${x(p.step).toFixed(1)},${vy(p[key]!).toFixed(1)}`).join(' '),
      );
      curve.setAttribute('class', cls);
      svg.append(curve);
      svg.setAttribute(
        'aria-label',
        `${svg.getAttribute('aria-label')}; ${what} from ${formatNumber(vs[0])} to ${formatNumber(vs[vs.length - 1])}`,
      );
    }
  }
  box.append(
    svg,
    el(
      'div',
      { class: 'axis' },
      el('span', {}, `loss ${pts.length ? formatNumber(lo) : '–'}…${pts.length ? formatNumber(hi) : '–'}`),
      ...(pts.some((p) => p.reward !== undefined)
        ? [el('span', { class: 'rewardkey' }, `reward ${formatNumber(pts[pts.length - 1].reward ?? NaN)}`)]
        : []),
      ...(pts.some((p) => p.kl !== undefined)
        ? [el('span', { class: 'klkey' }, `KL ${formatNumber(pts[pts.length - 1].kl ?? NaN)}`)]
        : []),
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
    // a served teacher: its KLs are over its top-K buckets (lower bounds of the full ones)
    const bucketed = t.heldOut.teacherSupport ? ` (${t.heldOut.teacherSupport}, a lower bound)` : '';
    // across tokenizers there is no per-token KL: ULD (an approximation) and the exact span log-ratio
    const rows =
      t.heldOut.after.uld !== undefined
        ? ([
            ['ULD across tokenizers (approximate)', 'uld'],
            ['span log P_T − log P_S (exact)', 'spanLogRatio'],
            ['student perplexity', 'studentPerplexity'],
          ] as const)
        : ([
            [`forward KL${bucketed}`, 'fkl'],
            [`reverse KL${bucketed}`, 'rkl'],
            ['student perplexity', 'studentPerplexity'],
          ] as const);
    for (const [label, k] of rows) {
      table.append(
        el(
          'tr',
          {},
          el('td', {}, label),
          el('td', { class: 'num' }, formatNumber(t.heldOut.before[k] ?? NaN)),
          el('td', { class: 'num' }, formatNumber(t.heldOut.after[k] ?? NaN)),
        ),
      );
    }
    const sampled = t.heldOut.sampled;
    if (sampled)
      for (const [label, k] of [
        ["student's completions: Σ reverse KL", 'reverseKl'],
        ['teacher log p per token', 'teacherLogp'],
        ['distinct-2', 'distinct2'],
      ] as const)
        table.append(
          el(
            'tr',
            {},
            el('td', {}, label),
            el('td', { class: 'num' }, formatNumber(sampled.before[k])),
            el('td', { class: 'num' }, formatNumber(sampled.after[k])),
          ),
        );
    box.append(table);
  }
  if (t.watch) box.append(watchSection(t.watch));
  if (t.status === 'done' && t.used) box.append(el('div', { class: 'models' }, `now the student: ${t.out}`));
  else if (t.status === 'done') {
    const use = el('vscode-button', { id: 'use-distilled' }, 'Use as Student and Re-analyse');
    use.addEventListener('click', () => vscode.postMessage({ type: 'useDistilled' }));
    box.append(el('div', { class: 'actions' }, use));
  }
  return box;
}

/** The prompt's tail shown above the watched continuations (the whole prompt is in the tooltip). */
const WATCH_PROMPT_CHARS = 160;

/**
 * The watched prompt: the student's continuation of it before and after the run, each
 * generated token coloured by log p − log q (green: the teacher likes it more than the
 * student; red: less; one scale for both), void tokens underlined, the values in the tooltip.
 */
function watchSection(w: WatchView): HTMLElement {
  const box = el('div', { class: 'watch', id: 'watch' });
  const tail = w.prompt.length > WATCH_PROMPT_CHARS ? `…${w.prompt.slice(-WATCH_PROMPT_CHARS)}` : w.prompt;
  box.append(el('div', { class: 'bars-title' }, 'Watched prompt'));
  for (const when of ['before', 'after'] as const) {
    const c = w[when];
    if (!c) continue;
    const q = c.sequence;
    const text = el(
      'div',
      { class: 'watch-text', id: `watch-${when}` },
      el('span', { class: 'watch-prompt', title: w.prompt }, tail),
    );
    for (const t of c.tokens)
      text.append(
        el(
          'span',
          {
            class: [t.cls ?? '', t.void ? 'void' : ''].join(' ').trim(),
            title: `log p − log q ${formatNumber(t.logRatio)}${t.void ? ' · void' : ''}`,
          },
          t.text,
        ),
      );
    box.append(
      el(
        'div',
        { class: 'models' },
        `${when === 'before' ? 'before the run' : 'after the run'}: ${q.length} tokens · Σ KL(q‖p) ${formatNumber(q.reverseKl)} · Σ log p − log q ${formatNumber(q.logRatio)} · distinct-2 ${formatNumber(q.distinct2)}`,
      ),
      text,
    );
  }
  if (w.message) box.append(el('div', { class: 'models', id: 'watch-message' }, w.message));
  return box;
}

function details(
  r: TokenRow,
  metric: MetricKey,
  before: Record<MetricKey, number> | null,
  stale: boolean,
): HTMLElement {
  // the token in the body, not the collapsible's title (which the component upper-cases)
  const box = el('vscode-collapsible', { title: 'Token', open: '', id: 'details', 'data-token': r.text });
  const heading = el(
    'div',
    { class: 'token-title' },
    el('code', {}, JSON.stringify(r.text)),
    ` id ${r.target} · characters ${r.start}–${r.end}${r.hard ? ' · hard' : ''}`,
    ...(stale
      ? [
          el(
            'div',
            { class: 'stale-note' },
            'Out of date: the text before this token changed since it was analysed.',
          ),
        ]
      : []),
  );
  const bars = (title: string, m: TokenRow['teacher']) => {
    const list = el(
      'div',
      { class: 'bars' },
      el(
        'div',
        { class: 'bars-title' },
        `${title}: p(target) ${formatNumber(m.p)}, rank ${rankText(m.rank)}`,
      ),
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

function histogram(
  a: PanelAnalysis,
  metric: MetricKey,
  range: [number, number],
  stale: Set<number>,
): HTMLElement {
  const bins = 20;
  const counts = new Array(bins).fill(0);
  a.values.forEach((v, i) => {
    if (!stale.has(i)) counts[Math.min(bins - 1, Math.floor(scalePosition(v, range) * bins))]++;
  });
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
  for (const w of a.worst)
    list.append(
      el(
        'li',
        {},
        rowLink(w.index, w.text),
        ` ${formatNumber(w.value)} · teacher p ${formatNumber(w.teacherP)}, student p ${formatNumber(w.studentP)}`,
      ),
    );
  box.append(list);
  return box;
}

/** Draws the continuations: who wrote them, the means over them, and per continuation its values and chart. */
function renderSamples(): void {
  const r = state.samples;
  if (!r) return samplesHost.replaceChildren();
  const status =
    r.status === 'sampling'
      ? `sampling… ${r.streamed} tokens so far; coloured once both models have scored them`
      : r.status === 'done'
        ? ''
        : `${r.status}: ${r.streamed} tokens were written, none scored`;
  const parts: HTMLElement[] = [
    el(
      'div',
      { class: 'models', id: 'samples-title' },
      `${r.documentName} · written by ${r.writer} · teacher ${r.teacher} · student ${r.student}`,
    ),
  ];
  if (status) parts.push(el('p', { class: 'empty', id: 'samples-status' }, status));
  if (r.summary && r.continuations.length > 1) {
    const box = el('vscode-collapsible', {
      title: `Over ${r.summary.samples} continuations: mean ± standard error`,
      open: '',
      id: 'samples-summary',
    });
    const t = el('table', { class: 'metrics' });
    for (const [k, label] of SEQUENCE_LABELS) {
      const m = r.summary[k];
      t.append(
        el(
          'tr',
          {},
          el('td', {}, label),
          el(
            'td',
            { class: 'num' },
            `${formatNumber(m.mean)}${m.standardError === null ? '' : ` ± ${formatNumber(m.standardError)}`}`,
          ),
        ),
      );
    }
    box.append(t);
    parts.push(box);
  }
  r.continuations.forEach((c, i) => parts.push(continuationSection(r, c, i)));
  samplesHost.replaceChildren(...parts);
}

const FINISHED = { eos: 'ended by the model', stop: 'at a stop string', length: 'at the token limit' };

/** Counts as whole numbers, the rest as everywhere else. */
function sequenceValue(k: (typeof SEQUENCE_LABELS)[number][0], v: number): string {
  return k === 'length' || k === 'voidTokens' ? String(v) : formatNumber(v);
}

const SEQUENCE_LABELS = [
  ['logRatio', 'Σ log p − log q'],
  ['reverseKl', 'Σ KL(q‖p) per step (exact)'],
  ['k1', 'k1 estimate of KL(q‖p)'],
  ['k3', 'k3 estimate of KL(q‖p)'],
  ['length', 'length (tokens)'],
  ['distinct2', 'distinct-2'],
  ['distinct3', 'distinct-3'],
  ['voidTokens', 'void tokens'],
] as const;

/**
 * One continuation: its sequence values, and a chart of log p − log q per token (bars, green
 * above the axis, red below), its return to the end (line), void tokens marked under the axis.
 * A bar is a button: it shows its token in the continuation document.
 */
function continuationSection(
  r: PanelSamples,
  c: PanelSamples['continuations'][number],
  i: number,
): HTMLElement {
  const q = c.sequence;
  const box = el('vscode-collapsible', {
    title: `Continuation ${i + 1}: ${q.length} tokens, ${FINISHED[q.finish]}`,
    open: '',
    class: 'continuation',
  });
  const t = el('table', { class: 'metrics' });
  for (const [k, label] of SEQUENCE_LABELS)
    t.append(el('tr', {}, el('td', {}, label), el('td', { class: 'num' }, sequenceValue(k, q[k]))));
  const W = 300;
  const H = 100;
  const n = c.logRatio.length;
  // bars and line on scales of their own: the return sums the rewards and would flatten the bars
  const barTop = Math.max(1e-9, ...c.logRatio.map(Math.abs));
  const lineTop = Math.max(1e-9, ...c.returns.map(Math.abs));
  const y = (v: number, top: number) => H / 2 - (v / top) * (H / 2 - 6);
  const x = (k: number) => ((k + 0.5) / Math.max(1, n)) * W;
  const bar = W / Math.max(1, n);
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'ratiochart');
  svg.setAttribute('role', 'img');
  const voids = c.void.filter(Boolean).length;
  svg.setAttribute(
    'aria-label',
    `log p − log q of ${n} tokens (bars, ±${formatNumber(barTop)}) and the return to the end (line, ±${formatNumber(lineTop)}); ${voids} void`,
  );
  const add = (tag: string, attrs: Record<string, string | number>, title?: string) => {
    const e = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (title) {
      const tt = document.createElementNS(svgNs, 'title');
      tt.textContent = title;
      e.append(tt);
    }
    svg.append(e);
    return e;
  };
  add('line', { x1: 0, x2: W, y1: H / 2, y2: H / 2, class: 'axisline' });
  c.logRatio.forEach((v, k) => {
    const rect = add(
      'rect',
      {
        x: (x(k) - bar * 0.4).toFixed(2),
        y: Math.min(y(v, barTop), H / 2).toFixed(2),
        width: (bar * 0.8).toFixed(2),
        height: Math.max(0.5, Math.abs(y(v, barTop) - H / 2)).toFixed(2),
        class: `ratiobar ${v >= 0 ? 'up' : 'down'}`,
        'data-index': k,
      },
      `${JSON.stringify(c.texts[k])}: log p − log q ${formatNumber(v)}, return ${formatNumber(c.returns[k])}${c.void[k] ? ', void' : ''}`,
    );
    rect.addEventListener('click', () =>
      vscode.postMessage({ type: 'revealSampleToken', samplesId: r.id, sample: i, index: k }),
    );
    if (c.void[k])
      add('rect', { x: (x(k) - 1.5).toFixed(2), y: H - 4, width: 3, height: 3, class: 'voidmark' });
  });
  add('polyline', {
    points: c.returns.map((v, k) => `${x(k).toFixed(1)},${y(v, lineTop).toFixed(1)}`).join(' '),
    class: 'returnline',
  });
  box.append(
    t,
    svg,
    el(
      'div',
      { class: 'axis' },
      el('span', {}, `bars: log p − log q, ±${formatNumber(barTop)}`),
      el('span', { class: 'returnkey' }, `line: return, ±${formatNumber(lineTop)}`),
      el('span', { class: 'voidkey' }, `▪ void (${voids})`),
    ),
  );
  return box;
}

window.addEventListener('message', (e: MessageEvent<ToPanel>) => {
  const m = e.data;
  if (m.type === 'showAnalysis') {
    // the selection stays only on the same rows (the same version: a metric change, a
    // reload); after an edit the indices name other tokens
    const sameRows = !!state.analysis && !!m.analysis && state.analysis.id === m.analysis.id;
    const details = sameRows ? state.details : null;
    state = {
      ...state,
      analysis: m.analysis,
      metric: m.metric,
      colorBy: m.colorBy,
      fixedMax: m.fixedMax,
      selected: sameRows ? state.selected : null,
      details,
    };
    renderAnalysis();
  } else if (m.type === 'showTraining') {
    state.training = m.training;
    renderTraining();
    save();
  } else if (m.type === 'highlightRow') {
    select(m.index, { scroll: true, details: m.details, quiet: true });
  } else if (m.type === 'rowDetails') {
    showDetails(m.details);
  } else if (m.type === 'showSamples') {
    state.samples = m.samples;
    renderSamples();
    save();
  }
});

renderTraining();
renderSamples();
renderAnalysis();
vscode.postMessage({ type: 'ready' });
