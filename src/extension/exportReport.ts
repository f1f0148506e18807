/** Export Report: the active document's analysis as JSON, CSV or the HTML report. */
import * as vscode from 'vscode';
import { rowsToCsv } from '../core/csvExport';
import { renderHtmlReport } from '../cli/htmlReport';
import { toJsonReport } from '../cli/jsonReport';
import type { StoredAnalysis } from './analysisController';
import { summarize } from '../core/tokenRows';
import type { InspectResult } from '../runtime/inspectEngine';

export async function exportReport(doc: vscode.TextDocument, a: StoredAnalysis, format?: 'json' | 'csv' | 'html', target?: vscode.Uri): Promise<vscode.Uri | undefined> {
  format ??= (
    await vscode.window.showQuickPick(
      [
        { label: 'JSON', description: 'rows, summary and ids, keys of kd-spec.md', format: 'json' as const },
        { label: 'CSV', description: 'one line per token', format: 'csv' as const },
        { label: 'HTML', description: 'the self-contained report page', format: 'html' as const },
      ],
      { title: 'Distill Lens: export format' },
    )
  )?.format;
  if (!format) return undefined;
  const base = doc.uri.path.split('/').pop()?.replace(/\.[^.]*$/, '') || 'analysis';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  target ??= await vscode.window.showSaveDialog({
    defaultUri: folder ? vscode.Uri.joinPath(folder, `${base}.distill-lens.${format}`) : undefined,
    filters: { [format.toUpperCase()]: [format] },
    title: 'Distill Lens: export report',
  });
  if (!target) return undefined;
  // one report for the whole document: rows of every analysed part at document offsets
  const rows = a.parts.flatMap((p) => p.result.rows.map((r) => ({ ...r, start: r.start + p.baseOffset, end: r.end + p.baseOffset })));
  const merged: InspectResult = { ...a.parts[0].result, rows, ids: a.parts.flatMap((p) => p.result.ids), summary: summarize(rows, a.settings.metric) };
  let text: string;
  if (format === 'csv') text = rowsToCsv(rows);
  else if (format === 'json') text = JSON.stringify(toJsonReport(merged), null, 1);
  else text = renderHtmlReport(merged, a.documentText, a.settings.metric);
  await vscode.workspace.fs.writeFile(target, new TextEncoder().encode(text));
  return target;
}
