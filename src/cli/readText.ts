import * as fs from 'node:fs';
import { InputError } from '../core/errors';

/** Reads a text file strictly as UTF-8: a file in another encoding gets a clear message, not mojibake. */
export function readTextFile(file: string): string {
  if (!fs.existsSync(file)) throw new InputError(`file ${file} does not exist`);
  const bytes = fs.readFileSync(file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    throw new InputError(
      `${file} is not valid UTF-8: convert it (e.g. iconv -f latin1 -t utf-8) and try again`,
    );
  }
}
