/**
 * `distill-lens demo`: the README's main job. Analyses a TypeScript declaration with the
 * built-in pair (models/demo: a teacher trained by the project and a student distilled from
 * it), prints the terminal heatmap and summary and writes the HTML report.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MetricKey } from '../core/metricKeys';
import type { MetricOptions } from '../core/tokenRows';
import { builtInPair, DEMO_TEXT } from '../models/builtInModels';
import { InspectEngine } from '../inspect/inspectEngine';
import { formatTable } from './tableFormat';
import { renderHtmlReport } from '../report/htmlReport';

export async function runDemo(o: {
  metric: MetricKey;
  options: MetricOptions;
  htmlOut: string;
}): Promise<void> {
  const { teacher, student } = builtInPair();
  const engine = new InspectEngine();
  try {
    const result = await engine.inspect({
      teacher,
      student,
      text: DEMO_TEXT,
      options: o.options,
      metric: o.metric,
      device: 'cpu',
      maxTokens: 8192,
    });
    process.stdout.write(formatTable(result, DEMO_TEXT, o.metric));
    fs.writeFileSync(o.htmlOut, renderHtmlReport(result, DEMO_TEXT, o.metric));
    process.stdout.write(`\nHTML report: ${path.resolve(o.htmlOut)}\n`);
  } finally {
    await engine.dispose();
  }
}
