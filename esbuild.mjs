// One build, separate bundles: extension host, model runtime process, CLI (all Node), and
// the webview (browser). vscode and the native ONNX Runtime addon stay external.
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'warning',
};
const builds = [
  { ...node, entryPoints: { extension: 'src/extension/extension.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { runtime: 'src/host/modelProcess.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist' },
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: true,
    entryPoints: { webview: 'webview/main.ts' },
    outdir: 'dist',
    logLevel: 'warning',
  },
];
if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
