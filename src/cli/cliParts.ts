/** Small pieces every command shares: number flags checked as they are parsed, and where output goes. */
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../core/errors';
import * as fs from 'node:fs';

/** A numeric flag's parser: the value, or a usage error naming the flag and the rule. */
export const number = (name: string, check: (v: number) => boolean, rule: string) => (v: string) => {
  const x = Number(v);
  if (!Number.isFinite(x) || !check(x)) throw new InvalidArgumentError(`${name} must be ${rule}`);
  return x;
};

export const integer = (name: string, min: number) =>
  number(name, (x) => Number.isInteger(x) && x >= min, `an integer ≥ ${min}`);

/** Writes to `out` when given, else to standard output (ending with a newline). */
export function writeOut(text: string, out?: string): void {
  if (out) fs.writeFileSync(out, text);
  else process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** --teacher, and its other form for a served teacher: --teacher-endpoint URL --teacher-model NAME. */
export function addTeacherOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--teacher <M>', what)
    .option(
      '--teacher-endpoint <URL>',
      'a served teacher by its URL (http://host:port/v1), with --teacher-model: the same as --teacher openai+URL#NAME',
    )
    .option('--teacher-model <NAME>', "the served teacher's model name (with --teacher-endpoint)");
}

/** The teacher's spec from --teacher, or from --teacher-endpoint and --teacher-model (a served teacher). */
export function teacherSpec(o: {
  teacher?: string;
  teacherEndpoint?: string;
  teacherModel?: string;
}): string {
  if (o.teacherEndpoint === undefined && o.teacherModel === undefined) {
    if (!o.teacher)
      throw new UsageError(
        'give the teacher: --teacher (a model folder, a hub id or openai+http://host:port/v1#model), or --teacher-endpoint with --teacher-model',
      );
    return o.teacher;
  }
  if (o.teacher)
    throw new UsageError(
      'give the teacher with --teacher, or with --teacher-endpoint and --teacher-model, not both',
    );
  if (!o.teacherEndpoint || !o.teacherModel)
    throw new UsageError(
      "--teacher-endpoint and --teacher-model go together: the server's URL (http://host:port/v1) and the model it serves",
    );
  if (!/^https?:\/\/\S+$/.test(o.teacherEndpoint))
    throw new UsageError(`--teacher-endpoint must be an http:// or https:// URL (got ${o.teacherEndpoint})`);
  return `openai+${o.teacherEndpoint}#${o.teacherModel}`;
}
