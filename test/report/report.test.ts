/** The renderers shared by the CLI and the extension: heatmap segments and bands, merged multi-part analyses, the HTML report. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changeClass, heatBand, heatmapSegments, heatRange, maxAbsChange } from '../../src/report/heatmap';
import { mergeParts } from '../../src/report/mergeParts';
import { renderHtmlReport } from '../../src/report/htmlReport';
import { METRIC_KEYS } from '../../src/core/metricKeys';
import { heatColor, toHex } from '../../src/core/colorScale';
import { formatNumber } from '../../src/core/formatNumber';
import type { TokenRow } from '../../src/core/tokenRows';
import type { InspectResult } from '../../src/shared/protocol';

test('heatmap segments: plain text between tokens, a shared span drawn once with all its rows', () => {
  const text = 'ab 日x';
  // rows 0 and 1 are two byte-fallback pieces of 日 (one span), given out of order with row 2
  const rows = [
    { start: 3, end: 4 },
    { start: 3, end: 4 },
    { start: 0, end: 2 },
    { start: 4, end: 5 },
  ];
  assert.deepEqual(heatmapSegments(text, rows), [
    { kind: 'token', start: 0, end: 2, text: 'ab', rows: [2] },
    { kind: 'text', text: ' ' },
    { kind: 'token', start: 3, end: 4, text: '日', rows: [0, 1] },
    { kind: 'token', start: 4, end: 5, text: 'x', rows: [3] },
  ]);
});

test('heatmap segments from where the analysed text starts: its first token, which has no row, is shown plain', () => {
  const text = 'Once upon';
  assert.deepEqual(heatmapSegments(text, [{ start: 4, end: 9 }], 0), [
    { kind: 'text', text: 'Once' },
    { kind: 'token', start: 4, end: 9, text: ' upon', rows: [0] },
  ]);
});

test('colour by change: lower is better, five steps each way on the largest change', () => {
  const changes = [-0.5, 0.1, 0, undefined, 0.25];
  assert.equal(maxAbsChange(changes), 0.5);
  assert.equal(maxAbsChange([undefined]), 1, 'nothing matched: a unit scale');
  assert.deepEqual(
    changes.map((d) => changeClass(d, 0.5)),
    ['fell4', 'rose1', 'same', 'unmatched', 'rose2'],
  );
  assert.equal(changeClass(-0.0999, 0.5), 'fell0');
});

test('heat bands: ten bands from 0 to the largest value, or to a fixed maximum', () => {
  assert.deepEqual(heatRange([0.2, 1.5, NaN, 0.7]), [0, 1.5]);
  assert.deepEqual(heatRange([0.2, 1.5], 3), [0, 3]);
  assert.deepEqual(heatRange([-2, 2]), [-2, 2], 'k1 can be negative');
  assert.equal(heatBand(0, [0, 1]), 0);
  assert.equal(heatBand(0.0999, [0, 1]), 0);
  assert.equal(heatBand(0.1, [0, 1]), 1);
  assert.equal(heatBand(1, [0, 1]), 9, 'the maximum is in the top band');
  assert.equal(heatBand(7, [0, 3]), 9, 'above a fixed maximum: clamped');
});

function row(index: number, start: number, end: number, fkl: number): TokenRow {
  const metrics = Object.fromEntries(METRIC_KEYS.map((k) => [k, k === 'fkl' ? fkl : 0.1]));
  const model = { p: 0.5, logp: Math.log(0.5), rank: 1, entropy: 1, top: [] };
  return {
    ...metrics,
    index,
    target: 100 + index,
    text: 'x',
    start,
    end,
    hard: false,
    uncertainty: 0.5,
    teacher: model,
    student: model,
    argmaxAgree: true,
  } as unknown as TokenRow;
}

function part(ids: number[], rows: TokenRow[]): InspectResult {
  const model = {
    name: 'm',
    folder: '/m',
    device: 'cpu',
    vocab: 200,
    contextLength: 64,
    file: 'model.onnx (fp32)',
  };
  return {
    ids,
    rows,
    summary: {} as InspectResult['summary'],
    teacher: model,
    student: model,
    windows: [[0, ids.length]],
    exactSpans: true,
    messages: [],
    timings: {} as InspectResult['timings'],
  };
}

test('a document analysed in two parts exports one sequence: rows numbered through, BOS once', () => {
  const BOS = 1;
  // part A "ab" at offset 0: BOS a b; part B "cd" at offset 10: BOS c d
  const a = part([BOS, 20, 21], [row(1, 0, 1, 0.5), row(2, 1, 2, 0.25)]);
  const b = part([BOS, 30, 31], [row(1, 0, 1, 2), row(2, 1, 2, 1)]);
  const merged = mergeParts(
    [
      { result: a, baseOffset: 0 },
      { result: b, baseOffset: 10 },
    ],
    'fkl',
  );
  assert.deepEqual(merged.ids, [BOS, 20, 21, 30, 31]);
  assert.deepEqual(
    merged.rows.map((r) => r.index),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    merged.rows.map((r) => merged.ids[r.index]),
    [20, 21, 30, 31],
    'each row points at its own token',
  );
  assert.deepEqual(
    merged.rows.map((r) => [r.start, r.end]),
    [
      [0, 1],
      [1, 2],
      [10, 11],
      [11, 12],
    ],
  );
  assert.equal(merged.summary.mean.fkl, (0.5 + 0.25 + 2 + 1) / 4);
  assert.deepEqual(merged.windows, [
    [0, 3],
    [2, 5],
  ]);
});

test('a pair whose tokenizers differ, analysed in two parts: spans at document offsets, each row pointing at its own span', () => {
  const BOS = 1;
  const spanOf = (start: number, end: number, studentFirst: number) => ({
    start,
    end,
    text: 'x',
    teacherLogp: -1,
    studentLogp: -2,
    logRatio: 1,
    k1: -1,
    k3: Math.E - 2,
    teacherFirst: studentFirst,
    teacherTokens: 1,
    studentFirst,
    studentTokens: 1,
  });
  const a = {
    ...part(
      [BOS, 20, 21],
      [
        { ...row(1, 0, 1, 0.5), span: 0 },
        { ...row(2, 1, 2, 0.25), span: 1 },
      ],
    ),
    spans: [spanOf(0, 1, 1), spanOf(1, 2, 2)],
  };
  const b = {
    ...part(
      [BOS, 30, 31],
      [
        { ...row(1, 0, 1, 2), span: 0 },
        { ...row(2, 1, 2, 1), span: 1 },
      ],
    ),
    spans: [spanOf(0, 1, 1), spanOf(1, 2, 2)],
  };
  const merged = mergeParts(
    [
      { result: a, baseOffset: 0 },
      { result: b, baseOffset: 10 },
    ],
    'k3',
  );
  assert.deepEqual(
    merged.spans!.map((s) => [s.start, s.end, s.studentFirst]),
    [
      [0, 1, 1],
      [1, 2, 2],
      [10, 11, 3],
      [11, 12, 4],
    ],
  );
  for (const r of merged.rows) {
    const span = merged.spans![r.span!];
    assert.ok(r.start >= span.start && r.end <= span.end, `row at ${r.start} inside its span`);
    assert.equal(merged.ids[span.studentFirst], merged.ids[r.index]);
  }
});

test('the HTML report and the panel use one scale: a fixed maximum sets the report range too', () => {
  const r = part([1, 20, 21], [row(1, 0, 1, 0.5), row(2, 1, 2, 0.25)]);
  const html = renderHtmlReport(r, 'ab', 'fkl', 2);
  const data = JSON.parse(/<script type="application\/json" id="data">(.*?)<\/script>/s.exec(html)![1]);
  assert.deepEqual(data.ranges.fkl, [0, 2]);
  assert.equal(data.bands.fkl, '21', '0.5 of 2 is in band 2, 0.25 of 2 in band 1');
  const automatic = JSON.parse(
    /<script type="application\/json" id="data">(.*?)<\/script>/s.exec(renderHtmlReport(r, 'ab', 'fkl'))![1],
  );
  assert.deepEqual(automatic.ranges.fkl, [0, 0.5]);
  assert.equal(automatic.bands.fkl, '95');
});

test('the layer view in the HTML report: a cell per state and token coloured by log(1 + KL), the CKA matrix, the settling line', () => {
  const r: InspectResult = {
    ...part([1, 20, 21], [row(1, 0, 1, 0.5), row(2, 1, 2, 0.25)]),
    layers: {
      rows: 2,
      positions: 3,
      student: [
        { klToTeacherFinal: [3, 0], argmaxFinal: [false, true] },
        { klToTeacherFinal: [1, 0.5], argmaxFinal: [true, true] },
      ],
      teacher: [
        { klToFinal: [2, 1], argmaxFinal: [false, true] },
        { klToFinal: [0, 0], argmaxFinal: [true, true] },
      ],
      studentSettles: [1, 0],
      teacherSettles: [1, 0],
      cka: [
        [1, 0.25],
        [0.5, 0.75],
      ],
    },
  };
  const html = renderHtmlReport(r, 'ab', 'fkl');
  const cells = [...html.matchAll(/<rect [^>]*fill="(#[0-9a-f]{6})" data-row="(\d)" data-state="(\d)"/g)];
  assert.equal(cells.length, 8, '2 states × 2 tokens per model');
  const fill = (state: number, rowIndex: number) =>
    cells.find((c) => c[3] === String(state) && c[2] === String(rowIndex))![1];
  // the student's map: its largest value (3) at the top of the scale, 0 at the bottom
  assert.equal(fill(0, 0), toHex(heatColor(1)));
  assert.equal(fill(0, 1), toHex(heatColor(0)));
  assert.equal(fill(1, 0), toHex(heatColor(Math.log1p(1) / Math.log1p(3))));
  assert.ok(
    html.includes(`<title>&#34;x&#34; · layer 1 (output) · ${formatNumber(0.5)}</title>`),
    'the cell names its token, state and value',
  );
  const cka = [...html.matchAll(/<td class="num" style="background:[^"]*">([0-9.]+)<\/td>/g)].map(
    (m) => m[1],
  );
  assert.deepEqual(cka, ['1.00', '0.25', '0.50', '0.75']);
  // one layer each: the output entries are the only mapped pair
  assert.ok(html.includes(`round(j·L_T/L_S)): ${formatNumber(0.75)}`), "the mapped layers' mean CKA");
  const data = JSON.parse(/<script type="application\/json" id="data">(.*?)<\/script>/s.exec(html)![1]);
  assert.deepEqual(data.settles, [
    'student settles at layer 1 of 1 (teacher: 1 of 1)',
    'student settles at layer 0 of 1 (teacher: 0 of 1)',
  ]);
  assert.doesNotMatch(renderHtmlReport({ ...r, layers: undefined }, 'ab', 'fkl'), /id="layers"/);
});
