/**
 * Heatmap decorations: one decoration type per colour band (theme colours
 * distillLens.heat0 … heat9, declared in package.json so themes can override them), one
 * setDecorations call per band.
 */
import * as vscode from 'vscode';
import { scalePosition, scaleRange } from '../core/colorScale';
import type { MetricKey } from '../core/metricKeys';
import type { DocumentAnalysis } from '../core/analysisState';

export const BANDS = 10;

export interface PaintedBand {
  band: number;
  start: number;
  end: number;
}

export class HeatDecorations implements vscode.Disposable {
  private readonly types: vscode.TextEditorDecorationType[];
  /** what was last painted per document (offsets and bands): the decorations API cannot be read back */
  readonly painted = new Map<string, { metric: MetricKey; range?: [number, number]; bands: PaintedBand[] }>();

  constructor() {
    this.types = Array.from({ length: BANDS }, (_, i) =>
      vscode.window.createTextEditorDecorationType({
        backgroundColor: new vscode.ThemeColor(`distillLens.heat${i}`),
        borderRadius: '2px',
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      }),
    );
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
      range = scaleRange(
        analysis.rows.map((r) => r.row[metric]),
        fixedMax,
      );
      const doc = editor.document;
      for (const r of analysis.rows) {
        const band = Math.min(BANDS - 1, Math.floor(scalePosition(r.row[metric], range) * BANDS));
        bands[band].push(new vscode.Range(doc.positionAt(r.start), doc.positionAt(r.end)));
        painted.push({ band, start: r.start, end: r.end });
      }
    }
    this.types.forEach((t, i) => editor.setDecorations(t, bands[i]));
    this.painted.set(editor.document.uri.toString(), { metric, range, bands: painted });
    return range;
  }

  dispose(): void {
    for (const t of this.types) t.dispose();
  }
}
