/** Export Report: the active document's analysis as JSON, CSV or the HTML report. */
import * as vscode from 'vscode';
import { rowsToCsv } from '../report/csvExport';
import { renderHtmlReport } from '../report/htmlReport';
import { toJsonReport } from '../report/jsonReport';
import { mergeParts } from '../report/mergeParts';
import type { StoredAnalysis } from './analysisController';
import { readSettings } from './settings';

export async function exportReport(
  doc: vscode.TextDocument,
  a: StoredAnalysis,
  format?: 'json' | 'csv' | 'html',
  target?: vscode.Uri,
): Promise<vscode.Uri | undefined> {
  format ??= (
    await vscode.window.showQuickPick(
      [
        {
          label: 'JSON',
          description: 'rows, summary and ids; keys as in docs/metrics.md',
          format: 'json' as const,
        },
        { label: 'CSV', description: 'one line per token', format: 'csv' as const },
        { label: 'HTML', description: 'the self-contained report page', format: 'html' as const },
      ],
      { title: 'Distill Lens: export format' },
    )
  )?.format;
  if (!format) return undefined;
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
  // one report for the whole document: every analysed part's rows at document offsets
  const merged = mergeParts(a.parts, a.settings.metric);
  let text: string;
  if (format === 'csv') text = rowsToCsv(merged.rows);
  else if (format === 'json') text = JSON.stringify(toJsonReport(merged), null, 1);
  else text = renderHtmlReport(merged, a.documentText, a.settings.metric, readSettings().colorScaleMaximum);
  await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(text));
  return target;
}
