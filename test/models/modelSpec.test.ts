/** Model settings resolve against the workspace folder, not the editor's working directory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModelSpec } from '../../src/models/modelSpec';
import { tempDir } from '../helpers';

test('relative model folders resolve against the workspace folder; hub ids and absolute paths stay', () => {
  const ws = tempDir();
  fs.mkdirSync(path.join(ws, 'models', 'student'), { recursive: true });
  fs.mkdirSync(path.join(ws, 'org', 'name'), { recursive: true });
  assert.equal(resolveModelSpec('models/student', ws), path.join(ws, 'models', 'student'));
  assert.equal(resolveModelSpec(' ./models/student ', ws), path.join(ws, 'models', 'student'));
  assert.equal(resolveModelSpec('./missing', ws), path.join(ws, 'missing'), 'an explicit relative path stays a path');
  assert.equal(resolveModelSpec('HuggingFaceTB/SmolLM2-135M', ws), 'HuggingFaceTB/SmolLM2-135M', 'a hub id');
  assert.equal(resolveModelSpec('org/name', ws), path.join(ws, 'org', 'name'), 'a folder in the workspace wins');
  assert.equal(resolveModelSpec('/abs/model', ws), '/abs/model');
  assert.equal(resolveModelSpec('~/models/x', ws, '/home/u'), path.join('/home/u', 'models', 'x'));
  assert.equal(resolveModelSpec('models/student', undefined), 'models/student', 'no workspace: as written');
  assert.equal(resolveModelSpec('   ', ws), '');
});
