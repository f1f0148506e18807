/**
 * The pure pieces behind the editor surfaces: placing rows and following edits, the hover
 * text, CSV export, the colour scale, and validation of messages from the webview.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DocumentAnalysis, EditLog } from '../../src/core/analysisState';
import { hoverMarkdown, escapeMarkdown } from '../../src/core/hoverText';
import { rowsToCsv } from '../../src/report/csvExport';
import { heatColor, scalePosition, scaleRange, textColorOn } from '../../src/core/colorScale';
import { parseFromPanel } from '../../src/shared/panelProtocol';
import { METRIC_KEYS } from '../../src/core/metricKeys';
import type { TokenRow } from '../../src/core/tokenRows';

function row(index: number, start: number, end: number, text: string, fkl = index / 10): TokenRow {
  const metrics = Object.fromEntries(METRIC_KEYS.map((k) => [k, 0])) as Record<
    (typeof METRIC_KEYS)[number],
    number
  >;
  const model = { p: 0.5, logp: -0.69, rank: 1, entropy: 1, top: [{ id: 7, text: 'a|b', p: 0.5 }] };
  return {
    ...metrics,
    fkl,
    index,
    target: 7,
    text,
    start,
    end,
    hard: false,
    argmaxAgree: true,
    teacher: model,
    student: { ...model, rank: 2 },
  };
}

/** A document string that edits are applied to, as VS Code applies a change event. */
class FakeDocument {
  constructor(public text: string) {}
  edit(a: DocumentAnalysis, start: number, end: number, inserted: string): void {
    this.text = this.text.slice(0, start) + inserted + this.text.slice(end);
    a.applyEdits([{ start, end, newLength: inserted.length }], (s, e) => this.text.slice(s, e));
  }
}

const spans = (a: DocumentAnalysis) => a.rows.map((r) => [r.row.text, r.start, r.end, r.stale]);

test('an edit drops the tokens it touches, makes the later tokens of its part stale; undo restores them', () => {
  // "Once upon a time" analysed at document offset 100 (its first token has no row)
  const doc = new FakeDocument('x'.repeat(100) + 'Once upon a time' + '\n');
  const text = 'Once upon a time';
  const a = new DocumentAnalysis(
    [row(1, 4, 9, ' upon'), row(2, 9, 11, ' a'), row(3, 11, 16, ' time')],
    100,
    text,
  );
  assert.deepEqual(spans(a), [
    [' upon', 104, 109, false],
    [' a', 109, 111, false],
    [' time', 111, 116, false],
  ]);
  assert.equal(a.rowAt(105)?.row.text, ' upon');
  assert.equal(a.indexAt(111), 2);
  assert.equal(a.rowAt(99), undefined);
  assert.equal(a.rowAt(116), undefined);

  doc.edit(a, 106, 107, 'PPP'); // one character inside " upon" replaced by three
  assert.deepEqual(spans(a), [
    [' a', 111, 113, true],
    [' time', 113, 118, true],
  ]);
  assert.equal(a.staleCount, 2);
  assert.deepEqual(a.editedRanges, [[100, 118]]);

  doc.edit(a, 106, 109, 'p'); // undone by hand: the text is the same as analysed again
  assert.deepEqual(spans(a), [
    [' upon', 104, 109, false],
    [' a', 109, 111, false],
    [' time', 111, 116, false],
  ]);
  assert.deepEqual(a.editedRanges, []);

  doc.edit(a, 111, 111, 'n'); // typed between " a" and " time": it touches both
  assert.deepEqual(spans(a), [[' upon', 104, 109, false]]);
  doc.edit(a, 0, 50, ''); // deleting text before the analysis moves it
  assert.deepEqual(spans(a), [[' upon', 54, 59, false]]);
  doc.edit(a, 61, 62, ''); // backspace: the part is as analysed again
  assert.deepEqual(spans(a), [
    [' upon', 54, 59, false],
    [' a', 59, 61, false],
    [' time', 61, 66, false],
  ]);
});

test('parts are separate contexts: an edit in one leaves the next one valid; text typed between belongs to the first', () => {
  const doc = new FakeDocument('ab cd|ef gh');
  const a = new DocumentAnalysis([row(1, 2, 5, ' cd')], 0, 'ab cd');
  a.addPart([row(1, 2, 5, ' gh')], 6, 'ef gh');
  doc.edit(a, 0, 0, 'Z'); // before the first part's first token: every row of that part is stale
  assert.deepEqual(spans(a), [
    [' cd', 3, 6, true],
    [' gh', 9, 12, false],
  ]);
  doc.edit(a, 0, 1, ''); // undo
  const adjacent = new FakeDocument('ab cdef gh');
  const b = new DocumentAnalysis([row(1, 2, 5, ' cd')], 0, 'ab cd');
  b.addPart([row(1, 2, 5, ' gh')], 5, 'ef gh');
  adjacent.edit(b, 5, 5, '!'); // where the first part ends and the second begins
  assert.deepEqual(spans(b), [[' gh', 8, 11, false]], 'the first part took it (its last token is touched)');
  adjacent.edit(b, 5, 6, '');
  assert.deepEqual(spans(b), [
    [' cd', 2, 5, false],
    [' gh', 7, 10, false],
  ]);
});

test('re-analysing a range keeps the rest of an analysed part, and an undo still restores it', () => {
  const doc = new FakeDocument('one two three four');
  const a = new DocumentAnalysis(
    [row(1, 3, 7, ' two'), row(2, 7, 13, ' three'), row(3, 13, 18, ' four')],
    0,
    doc.text,
  );
  const b = a.without([[7, 13]]);
  b.addPart([row(1, 0, 6, ' three')], 7, ' three'); // stands for the new analysis of that range
  assert.deepEqual(
    spans(b).map((s) => s[0]),
    [' two', ' three', ' four'],
  );
  doc.edit(b, 17, 18, 'X');
  doc.edit(b, 17, 18, 'r');
  assert.deepEqual(
    spans(b).map((s) => [s[0], s[3]]),
    [
      [' two', false],
      [' three', false],
      [' four', false],
    ],
  );
});

test('the same token in another analysis: same span and same target, byte-fallback pieces told apart', () => {
  const piece = (index: number, target: number) => ({ ...row(index, 0, 1, '日'), target });
  const before = new DocumentAnalysis([piece(1, 230), piece(2, 151), row(3, 1, 4, 'abc')], 10, '日abc');
  const after = new DocumentAnalysis([piece(1, 230), piece(2, 151), row(3, 1, 4, 'abc')], 10, '日abc');
  assert.deepEqual(
    after.rows.map((r) => before.sameToken(r)?.row.index),
    [1, 2, 3],
  );
  const elsewhere = new DocumentAnalysis([row(3, 1, 4, 'abc')], 11, 'x日abc');
  assert.equal(before.sameToken(elsewhere.rows[0]), undefined, 'another place is another token');
  assert.equal(before.sameToken({ ...after.rows[2], row: { ...after.rows[2].row, target: 8 } }), undefined);
});

test('byte-fallback pieces sharing a span: the hover finds the smallest span', () => {
  const a = new DocumentAnalysis([row(1, 0, 1, '日'), row(2, 0, 1, '日'), row(3, 0, 3, 'xyz')], 0);
  assert.equal(a.rowAt(0)?.row.index, 1);
});

test('hover text: grouped metrics, both models, top-k, escaped token text', () => {
  const md = hoverMarkdown(row(3, 0, 4, 'a|*b'), { metric: 'fkl', temperature: 2, beta: 0.3, alpha: 0.2 });
  assert.match(md, /token `"a\|\*b"` \(id 7\)/);
  assert.match(md, /\*\*forward KL\(p‖q\)\*\*: 0\.3000/);
  assert.match(md, /\| p\(target\) at T=2 \| 0\.5000 \| 0\.5000 \|/);
  assert.match(md, /\| rank \| 1 \| 2 \|/);
  for (const g of [
    'Divergences',
    'Target / non-target (DKD)',
    'Difficulty',
    'Estimators at the observed token',
    'Top tokens',
  ])
    assert.ok(md.includes(`**${g}**`));
  assert.match(md, /gjsd \(β=0\.3\)/);
  assert.match(md, /skl \(α=0\.2\)/);
  assert.match(md, /\| a\\\|b ◂ \| 0\.5000 \|/, 'table cells escape | and mark the target');
  assert.equal(escapeMarkdown('[x](y)'), '\\[x\\]\\(y\\)');
});

test('CSV: header with every metric, RFC 4180 quoting', () => {
  const csv = rowsToCsv([row(1, 0, 5, 'say "hi",\n')]);
  const [header, line] = csv.split('\r\n');
  assert.equal(
    header,
    `index,text,start,end,target,${METRIC_KEYS.join(',')},hard,argmax_agree,teacher_p,teacher_logp,teacher_rank,teacher_entropy,student_p,student_logp,student_rank,student_entropy`,
  );
  assert.ok(line.startsWith('1,"say ""hi"",\n'));
});

test('colour scale: ordered, clamped, readable text colour, fixed maximum', () => {
  assert.deepEqual(heatColor(0), [255, 255, 204]);
  assert.deepEqual(heatColor(2), heatColor(1));
  const lum = (c: number[]) => 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  for (let i = 1; i <= 10; i++)
    assert.ok(lum(heatColor(i / 10)) < lum(heatColor((i - 1) / 10)), 'darker as the value grows');
  assert.deepEqual(textColorOn(heatColor(0)), [0, 0, 0]);
  assert.deepEqual(textColorOn(heatColor(1)), [255, 255, 255]);
  assert.deepEqual(scaleRange([0.5, 2, NaN, Infinity]), [0, 2]);
  assert.deepEqual(scaleRange([0.5, 2], 4), [0, 4]);
  assert.deepEqual(scaleRange([-1, 3]), [-1, 3], 'k1 can be negative');
  assert.equal(scalePosition(5, [0, 4]), 1);
});

test('the colour bands of package.json follow the same scale in every theme', () => {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8'));
  const colors = (pkg.contributes.colors as { id: string; defaults: Record<string, string> }[]).filter((c) =>
    /^distillLens\.heat\d$/.test(c.id),
  );
  assert.equal(colors.length, 10);
  colors.forEach((c, i) => {
    const hex = heatColor((i + 0.5) / 10)
      .map((v) => v.toString(16).padStart(2, '0'))
      .join('');
    for (const theme of ['dark', 'light', 'highContrast', 'highContrastLight'])
      assert.equal(c.defaults[theme].slice(1, 7), hex, `${c.id} ${theme}`);
  });
});

test('messages from the webview are validated', () => {
  assert.deepEqual(parseFromPanel({ type: 'revealRow', analysisId: 4, index: 2 }, 3), {
    type: 'revealRow',
    analysisId: 4,
    index: 2,
  });
  assert.deepEqual(parseFromPanel({ type: 'selectRow', analysisId: 4, index: 0, extra: 'x' }, 3), {
    type: 'selectRow',
    analysisId: 4,
    index: 0,
  });
  assert.equal(parseFromPanel({ type: 'revealRow', analysisId: 4, index: 3 }, 3), undefined, 'out of range');
  assert.equal(parseFromPanel({ type: 'revealRow', analysisId: 4, index: 1.5 }, 3), undefined);
  assert.equal(parseFromPanel({ type: 'revealRow', analysisId: 4, index: '1' }, 3), undefined);
  assert.equal(parseFromPanel({ type: 'selectRow', index: 1 }, 3), undefined, 'no analysis id');
  assert.deepEqual(parseFromPanel({ type: 'chooseColoring', colorBy: 'change' }, 0), {
    type: 'chooseColoring',
    colorBy: 'change',
  });
  assert.equal(parseFromPanel({ type: 'chooseColoring', colorBy: 'rainbow' }, 0), undefined);
  assert.deepEqual(parseFromPanel({ type: 'chooseMetric', metric: 'jsd' }, 0), {
    type: 'chooseMetric',
    metric: 'jsd',
  });
  assert.equal(parseFromPanel({ type: 'chooseMetric', metric: 'constructor' }, 0), undefined);
  assert.equal(parseFromPanel({ type: 'runCommand', command: 'rm' }, 0), undefined);
  assert.equal(parseFromPanel(null, 0), undefined);
  assert.equal(parseFromPanel('ready', 0), undefined);
});

test('activation stays lazy: the extension bundle does not load ONNX Runtime', () => {
  const bundle = fs.readFileSync(path.resolve(__dirname, '..', '..', 'dist', 'extension.js'), 'utf8');
  assert.doesNotMatch(bundle, /require\("onnxruntime-node"\)/);
  assert.match(
    fs.readFileSync(path.resolve(__dirname, '..', '..', 'dist', 'runtime.js'), 'utf8'),
    /require\("onnxruntime-node"\)/,
  );
});

test('every colour band and change step reads at 4.5:1 or more in the default dark, light and both high-contrast themes', () => {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8'));
  const colors = new Map(
    (pkg.contributes.colors as { id: string; defaults: Record<string, string> }[]).map((c) => [
      c.id,
      c.defaults,
    ]),
  );
  // editor backgrounds of Dark Modern, Light Modern, Dark High Contrast and Light High Contrast
  const editorBackground: Record<string, string> = {
    dark: '#1f1f1f',
    light: '#ffffff',
    highContrast: '#000000',
    highContrastLight: '#ffffff',
  };
  // WCAG 2 relative luminance and contrast ratio
  const channels = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const alpha = (hex: string) => (hex.length === 9 ? parseInt(hex.slice(7, 9), 16) / 255 : 1);
  const luminance = (rgb: number[]) => {
    const [r, g, b] = rgb.map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a: number[], b: number[]) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const worst: string[] = [];
  for (let band = 0; band < 10; band++) {
    for (const [theme, bg] of Object.entries(editorBackground)) {
      const heat = colors.get(`distillLens.heat${band}`)![theme];
      const text = colors.get(`distillLens.heatForeground${band}`)![theme];
      // the band's translucent colour over the editor background, as the editor draws it
      const a = alpha(heat);
      const shown = channels(heat).map((c, i) => a * c + (1 - a) * channels(bg)[i]);
      const ratio = contrast(shown, channels(text));
      if (ratio < 4.5) worst.push(`heat${band} in ${theme}: ${ratio.toFixed(2)}:1`);
    }
  }
  // the colour-by-change steps, with their shared text colour
  for (const id of [
    'fell0',
    'fell1',
    'fell2',
    'fell3',
    'fell4',
    'rose0',
    'rose1',
    'rose2',
    'rose3',
    'rose4',
  ]) {
    for (const [theme, bg] of Object.entries(editorBackground)) {
      const colour = colors.get(`distillLens.${id}`)![theme];
      const text = colors.get('distillLens.changeForeground')![theme];
      const a = alpha(colour);
      const shown = channels(colour).map((c, i) => a * c + (1 - a) * channels(bg)[i]);
      const ratio = contrast(shown, channels(text));
      if (ratio < 4.5) worst.push(`${id} in ${theme}: ${ratio.toFixed(2)}:1`);
    }
  }
  assert.deepEqual(worst, []);
});

test('edits during an analysis: ranges before and after an edit are found again; a touched range is not', () => {
  const log = new EditLog();
  // "aaaa|bbbb|cccc": three parts of four characters taken before any edit
  log.record({ start: 2, end: 2, newLength: 3 }); // 3 characters typed inside the first part
  assert.equal(log.mapRange(0, 4, 0), undefined, 'the first part was edited');
  assert.deepEqual(log.mapRange(4, 8, 0), [7, 11], 'the second moved by 3');
  const since = log.length;
  log.record({ start: 12, end: 14, newLength: 0 }); // 2 characters deleted inside the third part (now 11–15)
  assert.deepEqual(log.mapRange(7, 11, since), [7, 11], 'an edit after a range leaves it');
  assert.equal(log.mapRange(8, 12, 0), undefined);
  assert.deepEqual(log.coverRange(0, 4, 0), [0, 7], 'the edited first part, with what was typed');
  assert.deepEqual(log.coverRange(8, 12, 0), [11, 13], 'the third part without the deleted characters');
});

test('text typed right at the end of a range joins it when the range is taken again', () => {
  const log = new EditLog();
  log.record({ start: 10, end: 10, newLength: 5 });
  assert.deepEqual(log.coverRange(0, 10, 0), [0, 15]);
  assert.equal(log.mapRange(0, 10, 0), undefined, 'so a part analysed meanwhile is analysed again');
});
