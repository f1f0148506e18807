/**
 * The folder structure is the architecture: each folder of src/ may import only the folders
 * below it, so arrows point one way and there are no cycles between folders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** What each folder may import (besides itself), bottom to top. */
const ALLOWED: Record<string, string[]> = {
  core: [],
  shared: ['core'],
  onnx: ['core', 'shared'],
  models: ['core', 'shared', 'onnx'],
  inspect: ['core', 'shared', 'onnx', 'models'],
  // generation scores what it samples with the inspection's metrics
  generate: ['core', 'shared', 'onnx', 'models', 'inspect'],
  // the sequence-level methods train on what generation samples
  train: ['core', 'shared', 'onnx', 'models', 'inspect', 'generate'],
  host: ['core', 'shared', 'onnx', 'models', 'inspect', 'train', 'generate'],
  report: ['core', 'shared'],
  extension: ['core', 'shared', 'models', 'host', 'report'],
  cli: ['core', 'shared', 'onnx', 'models', 'inspect', 'train', 'generate', 'host', 'report'],
};

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? sourceFiles(path.join(dir, e.name))
        : e.name.endsWith('.ts')
          ? [path.join(dir, e.name)]
          : [],
    );
}

test('each src folder imports only the folders below it', () => {
  const folders = fs
    .readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual(folders.sort(), Object.keys(ALLOWED).sort(), 'every folder has a place in the layers');
  const violations: string[] = [];
  for (const folder of folders) {
    for (const file of sourceFiles(path.join(SRC, folder))) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = path.relative(SRC, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
        if (target === folder || target.startsWith('..')) continue; // same folder, or package.json
        if (!ALLOWED[folder].includes(target))
          violations.push(`${path.relative(SRC, file)} imports ${m[1]} (${folder} → ${target})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('only src/onnx/sessions.ts creates ONNX Runtime sessions; only src/extension imports vscode', () => {
  const creators: string[] = [];
  const vscodeUsers: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    const rel = path.relative(SRC, file);
    if (/InferenceSession\.create\(/.test(text)) creators.push(rel);
    if (/from 'vscode'/.test(text)) vscodeUsers.push(rel.split(path.sep)[0]);
  }
  assert.deepEqual(creators, [path.join('onnx', 'sessions.ts')]);
  assert.deepEqual([...new Set(vscodeUsers)], ['extension']);
});

test('the webview imports only pure code (core, shared, report)', () => {
  const webview = path.resolve(SRC, '..', 'webview');
  for (const file of sourceFiles(webview)) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/from\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
      if (target.startsWith('..')) continue;
      assert.ok(['core', 'shared', 'report'].includes(target), `${path.basename(file)} imports ${m[1]}`);
    }
  }
});
