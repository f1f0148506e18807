/**
 * `distill-lens demo`: the README's main job. Until the built-in model pair exists, it uses
 * the stories260k model from ../shared as teacher and its first 3 layers as student,
 * converted once into the cache.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../core/errors';
import type { MetricKey } from '../core/metricKeys';
import type { MetricOptions } from '../core/tokenRows';
import { convertLlama2c } from '../models/llama2c';
import { defaultBuildCacheDir } from '../models/builtModelCache';
import { InspectEngine } from '../runtime/inspectEngine';
import { formatTable } from './tableFormat';
import { renderHtmlReport } from './htmlReport';

export const DEMO_TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high. Her mom said, "Be careful, Lily!"';

export function sharedFolder(): string {
  return process.env.DISTILL_LENS_SHARED ?? path.resolve(__dirname, '..', '..', 'shared');
}

/** Converts the stories260k checkpoint (teacher) and its 3-layer truncation (student) once. */
export function demoPair(): { teacher: string; student: string } {
  const src = path.join(sharedFolder(), 'models', 'stories260k');
  const checkpoint = path.join(src, 'stories260K.bin');
  const tokenizer = path.join(src, 'tok512.bin');
  if (!fs.existsSync(checkpoint)) throw new InputError(`the demo needs ${checkpoint} (../shared beside the project); set DISTILL_LENS_SHARED to its folder`);
  const root = path.join(defaultBuildCacheDir(), 'demo');
  const teacher = path.join(root, 'stories260k');
  const student = path.join(root, 'stories260k-3layers');
  if (!fs.existsSync(path.join(teacher, 'config.json'))) convertLlama2c({ checkpoint, tokenizer, out: teacher });
  if (!fs.existsSync(path.join(student, 'config.json'))) convertLlama2c({ checkpoint, tokenizer, out: student, layers: 3 });
  return { teacher, student };
}

export async function runDemo(o: { metric: MetricKey; options: MetricOptions; htmlOut: string }): Promise<void> {
  const { teacher, student } = demoPair();
  const engine = new InspectEngine();
  try {
    const result = await engine.inspect({ teacher, student, text: DEMO_TEXT, options: o.options, metric: o.metric, device: 'cpu', maxTokens: 8192 });
    process.stdout.write(formatTable(result, DEMO_TEXT, o.metric));
    fs.writeFileSync(o.htmlOut, renderHtmlReport(result, DEMO_TEXT, o.metric));
    process.stdout.write(`\nHTML report: ${path.resolve(o.htmlOut)}\n`);
  } finally {
    await engine.dispose();
  }
}
