import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Fills a temporary sibling folder, then renames it to `target`, so the target either does
 * not exist or is complete. Refuses to replace an existing non-empty folder: the user's
 * files are never overwritten.
 */
export function writeFolderAtomically(target: string, fill: (dir: string) => void): void {
  const abs = path.resolve(target);
  if (fs.existsSync(abs) && (!fs.statSync(abs).isDirectory() || fs.readdirSync(abs).length > 0)) {
    throw new Error(`${target} already exists and is not empty: choose a new output folder`);
  }
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(path.dirname(abs), `.${path.basename(abs)}.partial-`));
  try {
    fs.chmodSync(tmp, 0o755); // mkdtemp makes it private; the result is an ordinary folder
    fill(tmp);
    if (fs.existsSync(abs)) fs.rmdirSync(abs); // empty folder, checked above
    fs.renameSync(tmp, abs);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
