/** Small pieces every command shares: number flags checked as they are parsed, and where output goes. */
import { InvalidArgumentError } from 'commander';
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
