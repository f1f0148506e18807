/**
 * The built-in pair in models/demo: small enough to ship, loadable with no settings, and
 * meaningful: on text outside its training corpus the teacher predicts better than the
 * student, and the student is close to the teacher (measured here, not read from the log).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtInModelsFolder, builtInPair, DEMO_TEXT } from '../../src/models/builtInModels';
import { InspectEngine } from '../../src/inspect/inspectEngine';
import { ModelPool } from '../../src/models/modelPool';
import { ModelLoadError } from '../../src/core/errors';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { TextTokenizer } from '../../src/models/tokenizer';
import { readSafetensors } from '../../src/models/safetensors';

test('built-in pair: at most 8 MB of weights, one tokenizer, float16, a model card and a training log', () => {
  const root = builtInModelsFolder();
  const { teacher, student } = builtInPair();
  const bytes = [teacher, student].reduce((n, d) => n + fs.statSync(path.join(d, 'model.safetensors')).size, 0);
  assert.ok(bytes <= 8e6, `${bytes} bytes of weights`);
  assert.equal(fs.readFileSync(path.join(teacher, 'tokenizer.json'), 'utf8'), fs.readFileSync(path.join(student, 'tokenizer.json'), 'utf8'));
  assert.equal(TextTokenizer.fromFolder(teacher).vocabSize, 4096);
  for (const d of [teacher, student]) assert.ok([...readSafetensors(path.join(d, 'model.safetensors')).tensors.values()].every((t) => t.dtype === 'F16'));
  assert.match(fs.readFileSync(path.join(root, 'MODEL_CARD.md'), 'utf8'), /Apache License 2\.0/);
  const log = JSON.parse(fs.readFileSync(path.join(root, 'training-log.json'), 'utf8'));
  assert.deepEqual(log.corpus.map((p: { licence: string }) => p.licence).sort(), ['Apache-2.0', 'MIT', 'MIT']);
});

test('built-in pair on declarations it never saw: the teacher predicts them better than the student, and the student follows the teacher', async () => {
  // the demo declaration, and declaration files of packages outside the training corpus
  const root = path.resolve(__dirname, '..', '..');
  const texts = [DEMO_TEXT, ...['@types/cli-progress/index.d.ts', '@types/sarif/index.d.ts'].map((f) => fs.readFileSync(path.join(root, 'node_modules', f), 'utf8').slice(0, 8000))];
  const engine = new InspectEngine();
  try {
    for (const text of texts) {
      const r = await engine.inspect({ ...builtInPair(), text, options: DEFAULT_METRIC_OPTIONS, metric: 'fkl', device: 'cpu', maxTokens: 8192 });
      const s = r.summary;
      assert.ok(s.teacherPerplexity < 0.95 * s.studentPerplexity, `teacher perplexity ${s.teacherPerplexity} vs student ${s.studentPerplexity}`);
      assert.ok(s.teacherPerplexity < 150, `the teacher has learned TypeScript declarations: perplexity ${s.teacherPerplexity} (a uniform guess: 4096)`);
      assert.ok(s.mean.fkl < 1, `the student is distilled from the teacher: mean fkl ${s.mean.fkl}`);
    }
  } finally {
    await engine.dispose();
  }
});

test('a teacher that fails to load is reported at once, without waiting for the student (whose lease is given back when it arrives)', { timeout: 30_000 }, async () => {
  const { student } = builtInPair();
  // a pool whose student load waits until the test lets it go: the error must come before
  let letStudentLoad!: () => void;
  const studentGate = new Promise<void>((resolve) => (letStudentLoad = resolve));
  let studentReleased = false;
  class GatedPool extends ModelPool {
    override async acquire(spec: string, o: Parameters<ModelPool['acquire']>[1]) {
      if (spec !== student) return super.acquire(spec, o);
      o.onProgress?.(`loading ${spec}`);
      await studentGate;
      o.onProgress?.(`loading ${spec}: still going`);
      const lease = await super.acquire(spec, o);
      return { model: lease.model, release: async () => ((studentReleased = true), lease.release()) };
    }
  }
  const engine = new InspectEngine(new GatedPool());
  const progress: string[] = [];
  try {
    const request = engine.inspect(
      { teacher: path.join(builtInModelsFolder(), 'no-such-teacher'), student, text: DEMO_TEXT, options: DEFAULT_METRIC_OPTIONS, metric: 'fkl', device: 'cpu', maxTokens: 8192 },
      { onProgress: (m) => progress.push(m) },
    );
    await assert.rejects(request, (e: Error) => e instanceof ModelLoadError && e.role === 'teacher' && /no-such-teacher/.test(e.message));
    const shownBeforeTheError = progress.length;
    letStudentLoad();
    for (let i = 0; i < 200 && !studentReleased; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(studentReleased, 'the student lease that arrived later was released');
    assert.equal(progress.length, shownBeforeTheError, `no progress after the error: ${progress.slice(shownBeforeTheError).join(' | ')}`);
  } finally {
    await engine.dispose();
  }
});
