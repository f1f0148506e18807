/** Model settings as users write them, made absolute (no model loading here: the extension host imports it). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A model setting as the user wrote it, made absolute: `~/…` from the home folder, a relative
 * path from `baseDir` (the workspace folder) when something is there. Anything else (a hub id
 * such as `org/name`, or a path that does not exist) is returned as written, so its own
 * message names it.
 */
export function resolveModelSpec(spec: string, baseDir: string | undefined, home = os.homedir()): string {
  const value = spec.trim();
  if (value === '~' || value.startsWith('~/')) return path.join(home, value.slice(1));
  if (!value || path.isAbsolute(value) || !baseDir) return value;
  const candidate = path.resolve(baseDir, value);
  return fs.existsSync(candidate) || value.startsWith('./') || value.startsWith('../') ? candidate : value;
}
