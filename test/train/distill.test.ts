/**
 * Distillation runs end to end on the stories260k pair (teacher, and its first 3 layers as
 * the student): held-out forward KL falls by at least 30%; one plain SGD step changes the
 * saved weights exactly as the computed gradient says; runs repeat exactly with one seed;
 * cancellation and bad input leave nothing behind and never touch the input models.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { runDistillation } from '../../src/train/distill';
import { names } from '../../src/train/stepGraph';
import { WeightSource } from '../../src/models/builder/weights';
import { readSafetensors, tensorAsFloat32 } from '../../src/models/safetensors';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { packWindows } from '../../src/train/data';
import { InspectEngine } from '../../src/inspect/inspectEngine';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { CancelledError, UsageError } from '../../src/core/errors';
import { demoPair, storiesPair, tempDir, ORTGENAI, needs } from '../helpers';
import { ONE_SGD_STEP, storiesGradientGraph, tinyFamily, windowFeeds } from './fixtures';
import { storiesText } from './storiesText';
import { DISTILL_DEFAULTS, type DistillRequest, type RunRecord } from '../../src/shared/protocol';

function folderHash(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(dir, { recursive: true }).map(String).sort()) {
    const full = path.join(dir, f);
    if (fs.statSync(full).isFile()) h.update(f).update(fs.readFileSync(full));
  }
  return h.digest('hex');
}

function dataFile(stories: number): string {
  const file = path.join(tempDir(), 'stories.txt');
  fs.writeFileSync(file, storiesText(stories).join('\n\n'));
  return file;
}

const base = (): Omit<DistillRequest, 'out' | 'data'> => {
  const { teacher, student } = storiesPair();
  return {
    teacher,
    student,
    loss: { key: 'fkl', temperature: 1 },
    // the defaults of the CLI and the editor (LoRA rank 8, alpha 16 when mode is not given)
    steps: DISTILL_DEFAULTS.steps,
    lr: DISTILL_DEFAULTS.lr,
    batchSize: DISTILL_DEFAULTS.batchSize,
    seqLen: DISTILL_DEFAULTS.seqLen,
    seed: 1,
  };
};

test(
  'a default LoRA distillation (100 steps) of the 3-layer student lowers held-out forward KL by at least 30% and writes a loadable model',
  needs('stories260k'),
  async () => {
    const { teacher, student } = storiesPair();
    const before = folderHash(student);
    const out = path.join(tempDir(), 'distilled');
    const progress: number[] = [];
    const record = await runDistillation(
      { ...base(), data: { path: dataFile(120) }, out },
      { onProgress: (p) => p.step && progress.push(p.step) },
    );
    assert.ok(
      record.heldOut.fklChange <= -0.3,
      `held-out fkl ${record.heldOut.before.fkl} → ${record.heldOut.after.fkl}`,
    );
    assert.ok(record.heldOut.after.studentPerplexity < record.heldOut.before.studentPerplexity);
    assert.equal(record.data.heldOutIsTrainingData, false);
    assert.equal(progress.length, DISTILL_DEFAULTS.steps);
    // the folder: weights, config, tokenizer, ONNX, run.json; the input model untouched
    for (const f of [
      'model.safetensors',
      'config.json',
      'tokenizer.json',
      'onnx/model.onnx',
      'onnx/model.onnx.data',
      'run.json',
    ])
      assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.equal(folderHash(student), before, 'the student folder is unchanged');
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')) as RunRecord;
    assert.equal(saved.lossCurve.length, DISTILL_DEFAULTS.steps);
    assert.deepEqual(saved.heldOut, JSON.parse(JSON.stringify(record.heldOut)));
    assert.equal((saved.settings.mode as { kind: string }).kind, 'lora');
    const savedKeys = [...readSafetensors(path.join(out, 'model.safetensors')).tensors.keys()].sort();
    assert.deepEqual(
      savedKeys,
      [...readSafetensors(path.join(student, 'model.safetensors')).tensors.keys()].sort(),
      'same tensor names as the input checkpoint (LoRA merged)',
    );
    // the inspection engine loads the new student and agrees with the held-out improvement
    const engine = new InspectEngine();
    try {
      const text = storiesText(3, 99).join('\n\n');
      const req = {
        teacher,
        text,
        options: DEFAULT_METRIC_OPTIONS,
        metric: 'fkl' as const,
        device: 'cpu' as const,
        maxTokens: 8192,
      };
      const old = await engine.inspect({ ...req, student });
      const now = await engine.inspect({ ...req, student: out });
      assert.ok(
        now.summary.mean.fkl < 0.8 * old.summary.mean.fkl,
        `inspect fkl ${old.summary.mean.fkl} → ${now.summary.mean.fkl}`,
      );
    } finally {
      await engine.dispose();
    }
  },
);

test(
  'one plain SGD step changes the saved weights by exactly −lr × the gradient (full and LoRA)',
  needs('stories260k'),
  async () => {
    const { teacher, student } = storiesPair();
    // one short document: a single window, so the batch is known
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play in the park.';
    const dir = tempDir();
    const file = path.join(dir, 'one.txt');
    fs.writeFileSync(file, text);
    const lr = 0.01;
    const tokenizer = TextTokenizer.fromFolder(student);
    const seqLen = 64;
    const [window] = packWindows([{ source: 'one', text }], tokenizer, 400);
    assert.ok(window.mask.filter(Boolean).length < seqLen, 'the text fits one window');
    const model = await resolveModel(student);
    const weights = new WeightSource(model.weightFiles!.map(readSafetensors));
    const lm = await LanguageModel.open(await resolveModel(teacher), 'cpu');
    const [w] = packWindows([{ source: 'one', text }], tokenizer, seqLen);
    const teacherLogits = (await lm.forward(w.ids)).data as Float32Array;
    await lm.release();
    for (const mode of [
      { kind: 'full' as const },
      { kind: 'lora' as const, rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'] },
    ]) {
      const out = path.join(dir, `sgd-${mode.kind}`);
      const record = await runDistillation({
        teacher,
        student,
        data: { path: file },
        out,
        loss: { key: 'fkl', temperature: 1 },
        mode,
        ...ONE_SGD_STEP,
        lr,
        seqLen,
        seed: 5,
      });
      // the gradient from the same graph builder, run separately
      const built = storiesGradientGraph(model.config!, weights, mode, seqLen);
      const session = await ort.InferenceSession.create(built.bytes);
      const feeds = windowFeeds(w, teacherLogits, 512);
      for (const p of built.params) feeds[p.name] = new ort.Tensor('float32', p.init, p.shape);
      const res = await session.run(feeds);
      await session.release();
      assert.ok(Math.abs(Number(res.loss.data[0]) - record.lossCurve[0].loss) < 1e-6, 'the same loss');
      const saved = readSafetensors(path.join(out, 'model.safetensors'));
      let maxErr = 0;
      let maxChange = 0;
      if (mode.kind === 'full') {
        for (const p of built.params) {
          const g = res[names.grad(p.name)].data as Float32Array;
          const now = tensorAsFloat32(saved, p.weight).data;
          for (let i = 0; i < g.length; i++) {
            maxErr = Math.max(maxErr, Math.abs(now[i] - (p.init[i] - lr * g[i])));
            maxChange = Math.max(maxChange, Math.abs(now[i] - p.init[i]));
          }
        }
      } else {
        // B starts at zero, so after one step W' = W + (α/r)·(−lr·∂B)·A₀
        for (const a of built.weights.adapters) {
          const gB = res[names.grad(a.b.name)].data as Float32Array;
          const [r, inF] = a.a.shape;
          const outF = a.b.shape[0];
          const w0 = weights.tensor(a.weight).data;
          const now = tensorAsFloat32(saved, a.weight).data;
          for (let o = 0; o < outF; o++) {
            for (let i = 0; i < inF; i++) {
              let delta = 0;
              for (let k = 0; k < r; k++) delta += -lr * gB[o * r + k] * a.a.init[k * inF + i];
              const expected = w0[o * inF + i] + a.scale * delta;
              maxErr = Math.max(maxErr, Math.abs(now[o * inF + i] - expected));
              maxChange = Math.max(maxChange, Math.abs(now[o * inF + i] - w0[o * inF + i]));
            }
          }
        }
      }
      assert.ok(maxChange > 1e-5, `${mode.kind}: the step changed the weights (${maxChange})`);
      assert.ok(maxErr < 1e-6, `${mode.kind}: max |saved − (θ − lr·g)| = ${maxErr}`);
    }
  },
);

test(
  'the same seed repeats a CPU run exactly; cancelling leaves no folder; bad requests are refused before work',
  needs('stories260k', 'ortGenaiLlama'),
  async () => {
    const data = { path: dataFile(20) };
    const dir = tempDir();
    const run = (out: string, extra: Partial<DistillRequest> = {}, control = {}) =>
      runDistillation(
        {
          ...base(),
          steps: 8,
          data,
          out: path.join(dir, out),
          mode: { kind: 'full' },
          loss: { key: 'jsd', temperature: 1 },
          ...extra,
        },
        control,
      );
    const a = await run('a');
    const b = await run('b');
    assert.deepEqual(a.lossCurve, b.lossCurve);
    assert.equal(
      folderHash(path.join(dir, 'a', 'onnx')),
      folderHash(path.join(dir, 'b', 'onnx')),
      'identical weights',
    );
    assert.ok(
      fs
        .readFileSync(path.join(dir, 'a', 'model.safetensors'))
        .equals(fs.readFileSync(path.join(dir, 'b', 'model.safetensors'))),
    );

    // the teacher as its top 16 tokens (with the target) and a rest bucket
    const top = await run('top', { teacherTopK: 16, loss: { key: 'dkd', temperature: 2 } });
    assert.equal(top.settings.teacherTopK, 16);
    assert.ok(top.lossCurve.every((p) => Number.isFinite(p.loss)));
    assert.ok(top.lossCurve[7].loss < top.lossCurve[0].loss, 'the loss falls');
    fs.rmSync(path.join(dir, 'top'), { recursive: true });

    // no teacher: training from scratch with ce (how the built-in teacher is made)
    const scratch = await run('scratch', { teacher: '', loss: { key: 'ce', temperature: 1 } });
    assert.ok(scratch.lossCurve[7].loss < scratch.lossCurve[0].loss);
    assert.ok(Number.isNaN(scratch.heldOut.after.fkl) && scratch.heldOut.after.studentPerplexity > 1);
    fs.rmSync(path.join(dir, 'scratch'), { recursive: true });
    await assert.rejects(run('nt', { teacher: '', loss: { key: 'fkl', temperature: 1 } }), /needs a teacher/);

    const abort = new AbortController();
    await assert.rejects(
      run(
        'cancelled',
        {},
        { signal: abort.signal, onProgress: (p: { step?: number }) => p.step === 3 && abort.abort() },
      ),
      CancelledError,
    );
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b'], 'no partial folder');

    const { student } = storiesPair();
    await assert.rejects(
      run('x', { out: student } as Partial<DistillRequest>),
      (e: Error) => e instanceof UsageError && /never overwrites/.test(e.message),
    );
    await assert.rejects(run('y', { steps: 0 }), UsageError);
    await assert.rejects(run('z', { student: ORTGENAI }), /safetensors checkpoint/);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, ' \n\n');
    await assert.rejects(run('w', { data: { path: empty } }), /no text to train on/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b', 'empty.txt']);
  },
);

test('Phi-3 and Gemma 3 students distil end to end with their default LoRA targets (qkv_proj; q_proj and v_proj), and only those weights change', async () => {
  // tiny students with the built-in teacher's vocabulary and tokenizer
  const { teacher } = demoPair();
  for (const family of ['phi3', 'gemma3'] as const) {
    const model = tinyFamily(family, 7, 4096);
    fs.copyFileSync(path.join(teacher, 'tokenizer.json'), path.join(model.folder, 'tokenizer.json'));
    const before = folderHash(model.folder);
    const out = path.join(tempDir(), `distilled-${family}`);
    const record = await runDistillation({
      teacher,
      student: model.folder,
      data: { path: dataFile(8) },
      out,
      loss: { key: 'fkl', temperature: 1 },
      steps: 3,
      lr: 1e-2,
      batchSize: 2,
      seqLen: 16,
      seed: 1,
    });
    assert.equal(record.lossCurve.length, 3);
    assert.equal(folderHash(model.folder), before, `${family}: the student folder is unchanged`);
    const targets = family === 'phi3' ? ['qkv_proj'] : ['q_proj', 'v_proj'];
    const original = readSafetensors(path.join(model.folder, 'model.safetensors'));
    const saved = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual([...saved.tensors.keys()].sort(), [...original.tensors.keys()].sort());
    for (const name of original.tensors.keys()) {
      const was = tensorAsFloat32(original, name).data;
      const changed = tensorAsFloat32(saved, name).data.some((v, i) => v !== was[i]);
      const target = targets.some((t) => name.endsWith(`.${t}.weight`));
      assert.equal(
        changed,
        target,
        `${family}: ${name} ${target ? 'is a LoRA target and changes' : 'stays as it was'}`,
      );
    }
    // the distilled folder is a model Distill Lens opens again
    const lm = await LanguageModel.open(await resolveModel(out), 'cpu');
    await lm.release();
  }
});
