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

test('rows are placed at document offsets; an edit drops touched tokens and moves later ones', () => {
  // "Once upon a time" analysed at document offset 100
  const a = new DocumentAnalysis(
    [row(1, 0, 4, 'Once'), row(2, 4, 9, ' upon'), row(3, 9, 11, ' a'), row(4, 11, 16, ' time')],
    100,
  );
  assert.deepEqual(
    a.rows.map((r) => [r.start, r.end]),
    [
      [100, 104],
      [104, 109],
      [109, 111],
      [111, 116],
    ],
  );
  assert.equal(a.rowAt(105)?.row.text, ' upon');
  assert.equal(a.rowAt(99), undefined);
  a.applyEdit({ start: 106, end: 107, newLength: 3 }); // replace one character inside " upon" by three
  assert.deepEqual(
    a.rows.map((r) => [r.row.text, r.start, r.end]),
    [
      ['Once', 100, 104],
      [' a', 111, 113],
      [' time', 113, 118],
    ],
  );
  a.applyEdit({ start: 111, end: 111, newLength: 1 }); // typing at the start of " a" touches it
  assert.deepEqual(
    a.rows.map((r) => r.row.text),
    ['Once', ' time'],
  );
  a.applyEdit({ start: 0, end: 50, newLength: 0 }); // deleting text before the analysis moves everything
  assert.deepEqual(
    a.rows.map((r) => [r.start, r.end]),
    [
      [50, 54],
      [64, 69],
    ],
  );
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
  assert.deepEqual(parseFromPanel({ type: 'revealRow', index: 2 }, 3), { type: 'revealRow', index: 2 });
  assert.equal(parseFromPanel({ type: 'revealRow', index: 3 }, 3), undefined, 'out of range');
  assert.equal(parseFromPanel({ type: 'revealRow', index: 1.5 }, 3), undefined);
  assert.equal(parseFromPanel({ type: 'revealRow', index: '1' }, 3), undefined);
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

test('every colour band reads at 4.5:1 or more in the default dark, light and both high-contrast themes', () => {
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
