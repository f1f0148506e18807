/**
 * `distill-lens metrics`: rows and summary from logits given as JSON, so anyone can check
 * our numbers against another tool's logits. Runs the same metrics graph as `inspect`, on
 * float64 inputs.
 */
import * as fs from 'node:fs';
import { InputError } from '../core/errors';
import type { MetricKey } from '../core/metricKeys';
import { markHard, summarize, type MetricOptions } from '../core/tokenRows';
import { MetricsRunner, type RowSource } from '../inspect/metricsRunner';

export interface LogitsInput {
  teacher: Float64Array;
  student: Float64Array;
  targets: number[];
  vocab: number;
}

export function parseLogitsInput(text: string, source: string): LogitsInput {
  let json: any;
  try {
    json = JSON.parse(text);
  } catch (e) {
    if (/\bNaN\b|\bInfinity\b/.test(text))
      throw new InputError(`${source} contains NaN or Infinity: logits must be finite numbers`);
    throw new InputError(`${source} is not valid JSON (${(e as Error).message})`);
  }
  const { teacher, student, targets } = json ?? {};
  if (!Array.isArray(teacher) || !Array.isArray(student) || !Array.isArray(targets)) {
    throw new InputError(
      `${source} must be {"teacher": number[][], "student": number[][], "targets": number[]}`,
    );
  }
  const n = targets.length;
  if (n === 0) throw new InputError(`${source} has no targets: give one logit row per target token`);
  if (teacher.length !== n || student.length !== n)
    throw new InputError(
      `${source} has ${teacher.length} teacher rows, ${student.length} student rows and ${n} targets: give one row of each per target`,
    );
  const vocab = Array.isArray(teacher[0]) ? teacher[0].length : 0;
  if (vocab < 2) throw new InputError(`${source}: each logit row needs at least 2 entries`);
  const flatten = (rows: unknown[], who: string) => {
    const out = new Float64Array(n * vocab);
    rows.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== vocab)
        throw new InputError(
          `${source}: ${who} row ${i} has ${Array.isArray(row) ? row.length : 'no'} entries, but row 0 has ${vocab} (ragged rows)`,
        );
      row.forEach((v, j) => {
        if (typeof v !== 'number' || !Number.isFinite(v))
          throw new InputError(
            `${source}: ${who} row ${i}, entry ${j} is ${JSON.stringify(v)}; logits must be finite numbers`,
          );
        out[i * vocab + j] = v;
      });
    });
    return out;
  };
  const t = flatten(teacher, 'teacher');
  const s = flatten(student, 'student');
  targets.forEach((y, i) => {
    if (!Number.isInteger(y) || y < 0 || y >= vocab)
      throw new InputError(
        `${source}: target ${i} is ${JSON.stringify(y)}; targets must be integers from 0 to ${vocab - 1}`,
      );
  });
  return { teacher: t, student: s, targets, vocab };
}

export async function metricsFromLogits(input: LogitsInput, options: MetricOptions, metric: MetricKey) {
  const runner = new MetricsRunner();
  try {
    const sources: RowSource[] = input.targets.map((target, i) => ({
      position: i,
      target,
      index: i,
      text: '',
      start: 0,
      end: 0,
    }));
    const rows = await runner.rows(
      input.teacher,
      input.student,
      'float64',
      input.vocab,
      sources,
      options,
      (id) => String(id),
    );
    markHard(rows);
    return { rows, summary: summarize(rows, metric) };
  } finally {
    await runner.release();
  }
}

export async function runMetricsCommand(file: string, options: MetricOptions, metric: MetricKey) {
  if (file !== '-' && !fs.existsSync(file)) throw new InputError(`file ${file} does not exist`);
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  return metricsFromLogits(parseLogitsInput(text, file === '-' ? 'standard input' : file), options, metric);
}
