/**
 * Feature distillation end to end on the stories260K pair (5-layer teacher, its first 3 layers
 * as the student): the feature term falls as the student and projections learn, both terms
 * are reported per step, the projections are saved beside the student and never inside it,
 * run.json records the pairs and stages, and the stages switch the loss's terms; with it the
 * mapped layers' CKA rises above where it started and above a run without it, while held-out
 * KL falls as far.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { runDistillation } from '../../src/train/distill';
import { names } from '../../src/train/stepGraph';
import type { FeatureLossSpec } from '../../src/train/featureLoss';
import { WeightSource } from '../../src/models/builder/weights';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { TextTokenizer } from '../../src/models/tokenizer';
import { packWindows } from '../../src/train/data';
import { readSafetensors, tensorAsFloat32 } from '../../src/models/safetensors';
import { UsageError } from '../../src/core/errors';
import type { DistillRequest } from '../../src/shared/protocol';
import { storiesPair, tempDir, needs, inspectOnce } from '../helpers';
import { storiesText } from './storiesText';
import { meanMappedCka } from '../../src/core/layerMapping';
import { ONE_SGD_STEP, storiesGradientGraph, windowFeeds } from './fixtures';

function request(out: string, extra: Partial<DistillRequest> = {}): DistillRequest {
  const { teacher, student } = storiesPair();
  const data = path.join(tempDir(), 'stories.txt');
  fs.writeFileSync(data, storiesText(50, 1).join('\n\n'));
  return {
    teacher,
    student,
    data: { path: data },
    out,
    loss: { key: 'fkl', temperature: 1 },
    steps: 100,
    lr: 2e-3,
    batchSize: 4,
    seqLen: 128,
    seed: 1,
    ...extra,
  };
}

test(
  'feature distillation (MSE, auto pairs): the feature term falls, both terms reported; projections beside the student, not in it',
  needs('stories260k'),
  async () => {
    const out = path.join(tempDir(), 'features');
    const record = await runDistillation(
      request(out, { feature: { loss: 'mse', layers: 'auto', weight: 1 } }),
    );
    const feature = record.settings.feature as { layers: [number, number][]; teacherWidth: number };
    // auto: student layer j ↔ teacher round(j·5/3)
    assert.deepEqual(feature.layers, [
      [1, 2],
      [2, 3],
      [3, 5],
    ]);
    const curve = record.lossCurve;
    const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
    const first = mean(curve.slice(0, 10).map((p) => p.featureLoss!));
    const last = mean(curve.slice(-10).map((p) => p.featureLoss!));
    assert.ok(last < 0.6 * first, `the feature loss falls: ${first} → ${last}`);
    curve.forEach((p) => assert.ok(Math.abs(p.loss - (p.kdLoss! + p.featureLoss!)) < 1e-4 * (1 + p.loss)));

    assert.ok(record.heldOut.fklChange < -0.5, `held-out fkl ${record.heldOut.fklChange}`);
    const projections = readSafetensors(path.join(out, 'projections.safetensors'));
    assert.deepEqual([...projections.tensors.keys()].sort(), [
      'projection_0',
      'projection_1',
      'projection_2',
    ]);
    assert.deepEqual(projections.tensors.get('projection_0')!.shape, [feature.teacherWidth, 64]);
    assert.equal(projections.metadata.pairs, '1:2,2:3,3:5');
    const student = readSafetensors(path.join(out, 'model.safetensors'));
    assert.ok(
      ![...student.tensors.keys()].some((n) => n.startsWith('projection')),
      'the student has no projection',
    );
  },
);

/** Mean linear CKA of the auto-mapped pairs (student j ↔ teacher round(j·5/3)) on held-out text. */
async function mappedCka(teacher: string, student: string, text: string): Promise<number> {
  return meanMappedCka((await inspectOnce({ teacher, student, text, layers: true })).layers!.cka);
}

test(
  "the feature loss raises the mapped layers' CKA above where it started and above a run without it, and held-out KL falls as far (full fine-tune, W 0.3)",
  needs('stories260k'),
  async (t) => {
    const { teacher, student } = storiesPair();
    const heldOut = storiesText(3, 99).join('\n\n');
    const settings = { mode: { kind: 'full' as const }, lr: 5e-4 };
    const without = await runDistillation(request(path.join(tempDir(), 'kd'), settings));
    const withFeatures = await runDistillation(
      request(path.join(tempDir(), 'kd+features'), {
        ...settings,
        feature: { loss: 'mse', layers: 'auto', weight: 0.3 },
      }),
    );
    const before = await mappedCka(teacher, student, heldOut);
    const ckaWithout = await mappedCka(teacher, without.out, heldOut);
    const ckaWith = await mappedCka(teacher, withFeatures.out, heldOut);
    const fklBefore = without.heldOut.before.fkl;
    const [fklWithout, fklWith] = [without.heldOut.after.fkl, withFeatures.heldOut.after.fkl];
    const said = `mapped CKA before ${before}, kd ${ckaWithout}, kd+features ${ckaWith}; held-out fkl before ${fklBefore}, kd ${fklWithout}, kd+features ${fklWith}`;
    t.diagnostic(said);
    assert.ok(ckaWith > before && ckaWith > ckaWithout + 0.005, said);
    // "as far": the fall in held-out fkl within 1% of the run without's (the same seed and data;
    // measured: 99.9% of it, the feature term's share of the step costing a little logit fit)
    assert.ok(fklBefore - fklWith >= 0.99 * (fklBefore - fklWithout), said);
  },
);

test(
  'stages: kd, then the features alone, then both; each step reports its stage and the loss its terms',
  needs('stories260k'),
  async () => {
    const out = path.join(tempDir(), 'stages');
    const record = await runDistillation(
      request(out, {
        steps: 30,
        feature: { loss: 'cosine', layers: [[2, 3]], weight: 0.5 },
        stages: [
          { kind: 'kd', steps: 10 },
          { kind: 'features', steps: 10 },
          { kind: 'kd+features', steps: 10 },
        ],
      }),
    );
    assert.deepEqual(record.settings.stages, [
      { kind: 'kd', steps: 10, from: 1, to: 10 },
      { kind: 'features', steps: 10, from: 11, to: 20 },
      { kind: 'kd+features', steps: 10, from: 21, to: 30 },
    ]);
    for (const p of record.lossCurve) {
      const expected = [p.kdLoss!, 0.5 * p.featureLoss!, p.kdLoss! + 0.5 * p.featureLoss!][p.stage!];
      assert.equal(p.stage, Math.floor((p.step - 1) / 10));
      assert.ok(
        Math.abs(p.loss - expected) < 1e-4 * (1 + p.loss),
        `step ${p.step}: ${p.loss} vs ${expected}`,
      );
    }
    await assert.rejects(
      runDistillation(request(path.join(tempDir(), 'x'), { steps: 30, stages: [{ kind: 'kd', steps: 20 }] })),
      (e: Error) =>
        e instanceof UsageError && /--stages add up to 20 steps but the run has 30/.test(e.message),
    );
    await assert.rejects(
      runDistillation(
        request(path.join(tempDir(), 'y'), { feature: { loss: 'mse', layers: [[4, 1]], weight: 1 } }),
      ),
      (e: Error) =>
        e instanceof UsageError &&
        /--feature-layers 4:1: the student's hidden states are 0…3/.test(e.message),
    );
  },
);

test(
  'one plain SGD step with the feature loss moves the saved weights by exactly −lr × the gradient, the projections by −3·lr × it (--projection-lr-scale 3)',
  needs('stories260k'),
  async () => {
    const { teacher, student } = storiesPair();
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play in the park.';
    const file = path.join(tempDir(), 'one.txt');
    fs.writeFileSync(file, text);
    const lr = 0.01;
    const seqLen = 64;
    const feature: FeatureLossSpec = { kind: 'mse', pairs: [[2, 4]], teacherWidth: 64, projectionLrScale: 3 };
    const out = path.join(tempDir(), 'sgd');
    const record = await runDistillation(
      request(out, {
        data: { path: file },
        // the projections' own learning rate: 3 × lr
        feature: { loss: 'mse', layers: [[2, 4]], weight: 0.5, projectionLrScale: 3 },
        mode: { kind: 'full' },
        ...ONE_SGD_STEP,
        lr,
        seqLen,
        seed: 5,
      }),
    );
    // the gradient from the same graph builder, with the teacher's logits and states of the window
    const tokenizer = TextTokenizer.fromFolder(student);
    const [w] = packWindows([{ source: 'one', text }], tokenizer, seqLen);
    const model = await resolveModel(student);
    const teacherLm = await LanguageModel.open(await resolveModel(teacher), 'cpu', { layerView: 'states' });
    const layers = await teacherLm.forwardLayers(w.ids);
    await teacherLm.release();
    const built = storiesGradientGraph(
      model.config!,
      new WeightSource(model.weightFiles!.map(readSafetensors)),
      { kind: 'full' },
      seqLen,
      feature,
    );
    const session = await ort.InferenceSession.create(built.bytes);
    const feeds: Record<string, ort.Tensor> = {
      ...windowFeeds(w, layers.logits.data as Float32Array, 512),
      teacher_hidden_0: new ort.Tensor('float32', layers.hidden.slice(4 * seqLen * 64, 5 * seqLen * 64), [
        seqLen,
        64,
      ]),
      kd_weight: new ort.Tensor('float32', Float32Array.of(1), []),
      feature_weight: new ort.Tensor('float32', Float32Array.of(0.5), []),
    };
    for (const p of built.params) feeds[p.name] = new ort.Tensor('float32', p.init, p.shape);
    const res = await session.run(feeds);
    await session.release();
    assert.ok(Math.abs(Number(res.loss.data[0]) - record.lossCurve[0].loss) < 1e-5, 'the same loss');
    const saved = readSafetensors(path.join(out, 'model.safetensors'));
    const projections = readSafetensors(path.join(out, 'projections.safetensors'));
    let maxErr = 0;
    let maxChange = 0;
    for (const p of built.params) {
      const g = res[names.grad(p.name)].data as Float32Array;
      const now = tensorAsFloat32(p.role === 'projection' ? projections : saved, p.weight).data;
      const groupLr = p.role === 'projection' ? 3 * lr : lr;
      for (let i = 0; i < g.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(now[i] - (p.init[i] - groupLr * g[i])));
        if (p.role === 'projection') maxChange = Math.max(maxChange, Math.abs(now[i] - p.init[i]));
      }
    }
    assert.ok(maxErr < 1e-6, `saved = init − lr·grad (3·lr for the projections) within ${maxErr}`);
    assert.ok(maxChange > 1e-5, `the projection moved (${maxChange})`);
  },
);
