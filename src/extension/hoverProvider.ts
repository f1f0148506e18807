/** Hover tooltips on analysed tokens: the numbers are already computed, so this is instant. */
import * as vscode from 'vscode';
import { acrossHoverMarkdown, hoverMarkdown } from '../core/hoverText';
import type { AnalysisController } from './analysisController';
import { settlesLine } from '../report/layerHeatmap';

export class TokenHoverProvider implements vscode.HoverProvider {
  constructor(private readonly controller: AnalysisController) {}

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const a = this.controller.get(document.uri);
    const hit = a?.placed.rowAt(document.offsetAt(position));
    if (!a || !hit) return undefined;
    // the metric as set now (it may have changed since the analysis); options as analysed
    // a stale token says so first: its numbers are from before the text in front of it changed
    const stale = hit.stale
      ? `**Out of date**: the text before this token changed after it was analysed, so with a causal model these numbers no longer hold. ${
          this.controller.currentSettings().reanalyze === 'onIdle'
            ? 'It is analysed again when you stop typing.'
            : 'Run Analyze Selection or Analyze Document again, or set distillLens.reanalyze to onIdle.'
        }\n\n`
      : '';
    // what ran: the ONNX file and its precision, or the graph built from a checkpoint (every
    // part of an analysis ran with the same models)
    const ran = a.parts[0]
      ? `\n\n*teacher: ${a.parts[0].result.teacher.file} · student: ${a.parts[0].result.student.file}*`
      : '';
    // Analyze Layers of Selection: where the student's prediction of this token stops changing
    let settles = '';
    for (const p of a.parts) {
      const row = p.result.layers ? p.result.rows.indexOf(hit.row) : -1;
      if (row >= 0 && row < p.result.layers!.rows) settles = `\n\n${settlesLine(p.result.layers!, row)}`;
    }
    // a served teacher: the divergences are over its top K buckets (docs/metrics.md)
    const support = a.parts[0]?.result.teacherSupport;
    const served = support
      ? `**Served teacher** (${support}): the divergences are over its top tokens, the target and the rest, so they are lower bounds of the full values (akl approximate); log p, k1–k3, tckd and uncertainty are exact.\n\n`
      : '';
    // the tokenizers differ: the span this student token is in
    const span =
      hit.row.span === undefined
        ? undefined
        : a.parts.find((p) => p.result.rows.includes(hit.row))?.result.spans?.[hit.row.span];
    const md = new vscode.MarkdownString(
      stale +
        served +
        (span
          ? acrossHoverMarkdown(hit.row, span)
          : hoverMarkdown(hit.row, { metric: this.controller.metric, ...a.settings.options })) +
        settles +
        ran,
    );
    md.isTrusted = false;
    md.supportHtml = false;
    return new vscode.Hover(
      md,
      new vscode.Range(document.positionAt(hit.start), document.positionAt(hit.end)),
    );
  }
}
