/**
 * Heatmap decorations: one decoration type per colour band (theme colours
 * distillLens.heat0 … heat9 and heatForeground0 … 9, declared in package.json so themes can
 * override them), one setDecorations call per band. The types are made for the
 * distillLens.decorationStyle in use and made again when it changes.
 */
import * as vscode from 'vscode';
import { BANDS, heatBand, heatRange } from '../report/heatmap';
import type { MetricKey } from '../core/metricKeys';
import type { DocumentAnalysis } from '../core/analysisState';

/** How a band is shown: a background with a readable text colour, or only an underline or border. */
export type DecorationStyle = 'background' | 'underline' | 'border';

function decorationType(band: number, style: DecorationStyle): vscode.TextEditorDecorationType {
  const heat = new vscode.ThemeColor(`distillLens.heat${band}`);
  const common = { rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed };
  if (style === 'underline') {
    return vscode.window.createTextEditorDecorationType({
      ...common,
      borderStyle: 'none none solid none',
      borderWidth: '0 0 3px 0',
      borderColor: heat,
    });
  }
  if (style === 'border') {
    return vscode.window.createTextEditorDecorationType({
      ...common,
      borderStyle: 'solid',
      borderWidth: '1px',
      borderRadius: '2px',
      borderColor: heat,
    });
  }
  // the text takes the band's foreground (black or white), so every band reads at 4.5:1 or more
  return vscode.window.createTextEditorDecorationType({
    ...common,
    backgroundColor: heat,
    color: new vscode.ThemeColor(`distillLens.heatForeground${band}`),
    borderRadius: '2px',
  });
}

export interface PaintedBand {
  band: number;
  start: number;
  end: number;
}

export class HeatDecorations implements vscode.Disposable {
  private types: vscode.TextEditorDecorationType[];
  private style: DecorationStyle;
  /** what was last painted per document (offsets and bands): the decorations API cannot be read back */
  readonly painted = new Map<
    string,
    { metric: MetricKey; range?: [number, number]; bands: PaintedBand[]; style: DecorationStyle }
  >();

  constructor(style: DecorationStyle = 'background') {
    this.style = style;
    this.types = Array.from({ length: BANDS }, (_, i) => decorationType(i, style));
  }

  /** Makes the decoration types for `style` (disposing the old ones clears every editor); callers repaint. */
  useStyle(style: DecorationStyle): void {
    if (style === this.style) return;
    for (const t of this.types) t.dispose();
    this.style = style;
    this.types = Array.from({ length: BANDS }, (_, i) => decorationType(i, style));
  }

  /** Paints `editor` from its document's analysis; returns the scale range used. */
  paint(
    editor: vscode.TextEditor,
    analysis: DocumentAnalysis | undefined,
    metric: MetricKey,
    fixedMax?: number,
  ): [number, number] | undefined {
    const bands: vscode.Range[][] = Array.from({ length: BANDS }, () => []);
    let range: [number, number] | undefined;
    const painted: PaintedBand[] = [];
    if (analysis && !analysis.isEmpty) {
      range = heatRange(
        analysis.rows.map((r) => r.row[metric]),
        fixedMax,
      );
      const doc = editor.document;
      for (const r of analysis.rows) {
        const band = heatBand(r.row[metric], range);
        bands[band].push(new vscode.Range(doc.positionAt(r.start), doc.positionAt(r.end)));
        painted.push({ band, start: r.start, end: r.end });
      }
    }
    this.types.forEach((t, i) => editor.setDecorations(t, bands[i]));
    this.painted.set(editor.document.uri.toString(), { metric, range, bands: painted, style: this.style });
    return range;
  }

  dispose(): void {
    for (const t of this.types) t.dispose();
  }
}
