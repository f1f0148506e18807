/**
 * Export Report: the active document's analysis as JSON, CSV or the HTML report, or, for a
 * continuation document, its scored continuations as JSON or their HTML page (as
 * `distill-lens sample` writes them).
 */
import * as vscode from 'vscode';
import { rowsToCsv } from '../report/csvExport';
import { renderHtmlReport } from '../report/htmlReport';
import { toJsonReport } from '../report/jsonReport';
import { mergeParts } from '../report/mergeParts';
import { renderSampleReport, sampleReportJson } from '../report/sampleReport';
import type { SampleReport } from '../shared/generation';
import { analysisMetric, type StoredAnalysis } from './analysisController';
import { readSettings } from './settings';

type Format = 'json' | 'csv' | 'html';

const FORMATS: { label: string; description: string; format: Format }[] = [
  { label: 'JSON', description: 'rows, summary and ids; keys as in docs/metrics.md', format: 'json' },
  { label: 'CSV', description: 'one line per token', format: 'csv' },
  { label: 'HTML', description: 'the self-contained report page', format: 'html' },
];

/** Asks for what is not given (the format among `offered`, then the file) and writes the text. */
async function writeReport(
  doc: vscode.TextDocument,
  offered: Format[],
  render: (format: Format) => string,
  format?: Format,
  target?: vscode.Uri,
): Promise<vscode.Uri | undefined> {
  format ??= (
    await vscode.window.showQuickPick(
      FORMATS.filter((f) => offered.includes(f.format)),
      { title: 'Distill Lens: export format' },
    )
  )?.format;
  if (!format || !offered.includes(format)) return undefined;
  const base =
    doc.uri.path
      .split('/')
      .pop()
      ?.replace(/\.[^.]*$/, '') || 'analysis';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  target ??= await vscode.window.showSaveDialog({
    defaultUri: folder ? vscode.Uri.joinPath(folder, `${base}.distill-lens.${format}`) : undefined,
    filters: { [format.toUpperCase()]: [format] },
    title: 'Distill Lens: export report',
  });
  if (!target) return undefined;
  await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(render(format)));
  return target;
}

export function exportReport(
  doc: vscode.TextDocument,
  a: StoredAnalysis,
  format?: Format,
  target?: vscode.Uri,
): Promise<vscode.Uri | undefined> {
  return writeReport(
    doc,
    ['json', 'csv', 'html'],
    (chosen) => {
      // one report for the whole document: every analysed part's rows at document offsets
      const metric = analysisMetric(a, readSettings());
      const merged = mergeParts(a.parts, metric);
      if (chosen === 'csv') return rowsToCsv(merged.rows);
      if (chosen === 'json') return JSON.stringify(toJsonReport(merged), null, 1);
      return renderHtmlReport(merged, a.documentText, metric, readSettings().colorScaleMaximum);
    },
    format,
    target,
  );
}

/** A continuation document's continuations: JSON or the HTML page. */
export function exportSamples(
  doc: vscode.TextDocument,
  report: SampleReport,
  format?: Format,
  target?: vscode.Uri,
): Promise<vscode.Uri | undefined> {
  return writeReport(
    doc,
    ['json', 'html'],
    (chosen) => (chosen === 'json' ? sampleReportJson(report) : renderSampleReport(report)),
    format,
    target,
  );
}
