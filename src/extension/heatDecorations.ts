/**
 * Heatmap decorations: one decoration type per colour class, one setDecorations call per
 * class. Classes: the value bands heat0 … heat9 (theme colours distillLens.heat0 … 9 and
 * heatForeground0 … 9), the change steps fell0 … 4 / rose0 … 4 (distillLens.fell*, rose*,
 * changeForeground), and `stale` for tokens whose text before them changed since the
 * analysis (dimmed, no colour). All are declared in package.json so themes can override
 * them. The types are made for the distillLens.decorationStyle in use, again when it changes.
 */
import * as vscode from 'vscode';
import { BANDS, CHANGE_STEPS } from '../report/heatmap';

/** How a band is shown: a background with a readable text colour, or only an underline or border. */
export type DecorationStyle = 'background' | 'underline' | 'border';

/** Every colour class, in the order of their decoration types. */
export const DECORATION_CLASSES: readonly string[] = [
  ...Array.from({ length: BANDS }, (_, i) => `heat${i}`),
  ...Array.from({ length: CHANGE_STEPS }, (_, i) => `fell${i}`),
  ...Array.from({ length: CHANGE_STEPS }, (_, i) => `rose${i}`),
  'stale',
];

function decorationType(cls: string, style: DecorationStyle): vscode.TextEditorDecorationType {
  const common = { rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed };
  if (cls === 'stale') {
    // out of date: no colour, the text dimmed, a dotted underline says it was analysed
    return vscode.window.createTextEditorDecorationType({
      ...common,
      opacity: '0.55',
      borderStyle: 'none none dotted none',
      borderWidth: '0 0 1px 0',
      borderColor: new vscode.ThemeColor('editorWhitespace.foreground'),
    });
  }
  const colour = new vscode.ThemeColor(`distillLens.${cls}`);
  const foreground = new vscode.ThemeColor(
    cls.startsWith('heat') ? `distillLens.heatForeground${cls.slice(4)}` : 'distillLens.changeForeground',
  );
  if (style === 'underline') {
    return vscode.window.createTextEditorDecorationType({
      ...common,
      borderStyle: 'none none solid none',
      borderWidth: '0 0 3px 0',
      borderColor: colour,
    });
  }
  if (style === 'border') {
    return vscode.window.createTextEditorDecorationType({
      ...common,
      borderStyle: 'solid',
      borderWidth: '1px',
      borderRadius: '2px',
      borderColor: colour,
    });
  }
  // the text takes the class's foreground (black or white), so every band reads at 4.5:1 or more
  return vscode.window.createTextEditorDecorationType({
    ...common,
    backgroundColor: colour,
    color: foreground,
    borderRadius: '2px',
  });
}

/** One painted token: its colour class and document offsets. */
export interface PaintedToken {
  cls: string;
  start: number;
  end: number;
}

/** What was painted in a document, as the decorations API cannot be read back (for tests). */
export interface PaintedDocument {
  /** what the colours show, e.g. "fkl" or "change of fkl" */
  coloring: string;
  tokens: PaintedToken[];
  style: DecorationStyle;
}

export class HeatDecorations implements vscode.Disposable {
  private types: Map<string, vscode.TextEditorDecorationType>;
  private style: DecorationStyle;
  readonly painted = new Map<string, PaintedDocument>();

  constructor(style: DecorationStyle = 'background') {
    this.style = style;
    this.types = makeTypes(style);
  }

  /** Makes the decoration types for `style` (disposing the old ones clears every editor); callers repaint. */
  useStyle(style: DecorationStyle): void {
    if (style === this.style) return;
    for (const t of this.types.values()) t.dispose();
    this.style = style;
    this.types = makeTypes(style);
  }

  /** Paints `editor` with these tokens (an empty list clears it). */
  paint(editor: vscode.TextEditor, coloring: string, tokens: PaintedToken[]): void {
    const byClass = new Map<string, vscode.Range[]>(DECORATION_CLASSES.map((c) => [c, []]));
    const doc = editor.document;
    for (const t of tokens)
      byClass.get(t.cls)?.push(new vscode.Range(doc.positionAt(t.start), doc.positionAt(t.end)));
    for (const [cls, type] of this.types) editor.setDecorations(type, byClass.get(cls)!);
    this.painted.set(doc.uri.toString(), { coloring, tokens, style: this.style });
  }

  dispose(): void {
    for (const t of this.types.values()) t.dispose();
  }
}

function makeTypes(style: DecorationStyle): Map<string, vscode.TextEditorDecorationType> {
  return new Map(DECORATION_CLASSES.map((c) => [c, decorationType(c, style)]));
}
