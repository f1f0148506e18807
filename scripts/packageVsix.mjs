// npm run package: one VSIX per platform with `vsce package --target`, each carrying only
// that platform's ONNX Runtime binaries. Everything but onnxruntime-node is bundled by
// esbuild into dist/, so each package holds dist/, media/, the built-in models and
// onnxruntime-node (+ onnxruntime-common) pruned to one platform. Output: dist-vsix/.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'dist-vsix');
const STAGE = path.join(ROOT, '.package');
// the platforms onnxruntime-node ships CPU binaries for (no darwin-x64 since 1.2x)
const TARGETS = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
  'darwin-arm64': 'darwin/arm64',
};
const only = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

const copy = (from, to, filter) => fs.cpSync(path.join(ROOT, from), to, { recursive: true, filter });

fs.mkdirSync(OUT, { recursive: true });
const sizes = {};
for (const [target, binDir] of Object.entries(TARGETS)) {
  if (only.length && !only.includes(target)) continue;
  const stage = path.join(STAGE, target);
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const f of ['extension.js', 'runtime.js', 'webview.js'])
    copy(path.join('dist', f), path.join(stage, 'dist', f));
  copy('media', path.join(stage, 'media'));
  copy(path.join('models', 'demo'), path.join(stage, 'models', 'demo'));
  for (const f of ['README.md', 'LICENSE', 'CHANGELOG.md']) copy(f, path.join(stage, f));
  const ort = path.join('node_modules', 'onnxruntime-node');
  copy(ort, path.join(stage, ort), (src) => {
    const rel = path.relative(path.join(ROOT, ort, 'bin', 'napi-v6'), src);
    // keep bin/napi-v6/<this platform>/<this arch> only
    return (
      rel.startsWith('..') ||
      rel === '' ||
      binDir.startsWith(rel.split(path.sep).join('/')) ||
      rel.split(path.sep).join('/').startsWith(binDir)
    );
  });
  copy(
    path.join('node_modules', 'onnxruntime-common'),
    path.join(stage, 'node_modules', 'onnxruntime-common'),
  );
  // its install script (which needs adm-zip and global-agent) never runs from a VSIX
  const ortManifest = path.join(stage, ort, 'package.json');
  const ortPkg = JSON.parse(fs.readFileSync(ortManifest, 'utf8'));
  ortPkg.dependencies = { 'onnxruntime-common': ortPkg.dependencies['onnxruntime-common'] };
  delete ortPkg.scripts;
  fs.writeFileSync(ortManifest, JSON.stringify(ortPkg, null, 2));
  const manifest = { ...pkg };
  for (const key of ['devDependencies', 'scripts', 'bin']) delete manifest[key];
  manifest.dependencies = { 'onnxruntime-node': pkg.dependencies['onnxruntime-node'] };
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2));
  fs.writeFileSync(path.join(stage, '.vscodeignore'), '**/*.map\nnode_modules/onnxruntime-node/script/**\n');
  const file = path.join(OUT, `${pkg.name}-${pkg.version}-${target}.vsix`);
  execFileSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce'),
      'package',
      '--target',
      target,
      '--dependencies',
      '--allow-missing-repository',
      '--no-rewrite-relative-links',
      '--out',
      file,
    ],
    { cwd: stage, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  sizes[target] = fs.statSync(file).size;
}
fs.rmSync(STAGE, { recursive: true, force: true });
for (const [t, s] of Object.entries(sizes)) console.log(`${t.padEnd(14)} ${(s / 1e6).toFixed(1)} MB`);
