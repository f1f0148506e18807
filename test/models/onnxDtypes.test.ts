/**
 * ONNX exports as transformers.js and onnx-community repositories ship them: one file per
 * precision (onnx/model.onnx, onnx/model_q4.onnx, …). The dtype picks the file as
 * transformers.js does, a missing one is refused with what the folder has, and the report
 * says which file ran. The q4 file here uses MatMulNBits (4-bit blocks, as 4-bit exports
 * do): its logits are checked against a float64 reference on the dequantised weights. An
 * export with com.microsoft's GroupQueryAttention (rotary inside, empty past_key_values,
 * lengths from attention_mask) runs with the inputs the engine fills.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from '../../src/onnx/proto/onnx';
import { resolveModel } from '../../src/models/modelSource';
import { LanguageModel } from '../../src/models/languageModel';
import { InspectEngine } from '../../src/inspect/inspectEngine';
import { runDistillation } from '../../src/train/distill';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { demoPair, tempDir } from '../helpers';
import { rng } from '../reference/kdReference';
import { referenceRope } from '../reference/llamaHfReference';

const V = 4096; // the built-in tokenizer's vocabulary
const D = 32;
const BLOCK = 16;

const tensor = (name: string, dataType: number, dims: number[], bytes: ArrayBufferView): onnx.ITensorProto => ({
  name,
  dataType,
  dims,
  rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
});

/** A graph input or output of `elemType` with fixed or named dimensions. */
const io = (name: string, elemType: number, dims: (number | string)[]): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

/**
 * A model whose logits are embedding · headᵀ: with a float32 MatMul, or with com.microsoft's
 * MatMulNBits on 4-bit blocks of the head (B [V, D/16, 8] bytes, low nibble first, zero point 8).
 */
function writeModel(file: string, embedding: Float32Array, head: { float?: Float32Array; q4?: { packed: Uint8Array; scales: Float32Array } }): void {
  const nodes: onnx.INodeProto[] = [{ opType: 'Gather', input: ['embedding', 'input_ids'], output: ['hidden'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] }];
  const initializers = [tensor('embedding', onnx.TensorProto.DataType.FLOAT, [V, D], embedding)];
  if (head.float) {
    initializers.push(tensor('head_t', onnx.TensorProto.DataType.FLOAT, [D, V], head.float));
    nodes.push({ opType: 'MatMul', input: ['hidden', 'head_t'], output: ['logits'] });
  } else {
    initializers.push(tensor('head_q4', onnx.TensorProto.DataType.UINT8, [V, D / BLOCK, BLOCK / 2], head.q4!.packed));
    initializers.push(tensor('head_scales', onnx.TensorProto.DataType.FLOAT, [V * (D / BLOCK)], head.q4!.scales));
    const int = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
    nodes.push({ opType: 'MatMulNBits', domain: 'com.microsoft', input: ['hidden', 'head_q4', 'head_scales'], output: ['logits'], attribute: [int('K', D), int('N', V), int('bits', 4), int('block_size', BLOCK)] });
  }
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'tiny',
      node: nodes,
      input: [io('input_ids', onnx.TensorProto.DataType.INT64, ['batch', 'length'])],
      output: [io('logits', onnx.TensorProto.DataType.FLOAT, ['batch', 'length', V])],
      initializer: initializers,
    },
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish());
}

/** A folder with onnx/model.onnx (fp32 head) and onnx/model_q4.onnx (another head, 4-bit), and the reference logits of each. */
function exportFolder(files: ('fp32' | 'q4')[]) {
  const r = rng(31);
  const uniform = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (2 * r() - 1));
  const embedding = uniform(V * D, 1);
  const floatHead = uniform(V * D, 0.5); // [V, D]
  const floatHeadT = new Float32Array(D * V);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) floatHeadT[d * V + v] = floatHead[v * D + d];
  // a 4-bit head: codes 0…15 per weight, a scale per block of 16; dequantised (q − 8)·scale
  const codes = Uint8Array.from({ length: V * D }, () => Math.floor(16 * r()));
  const scales = uniform(V * (D / BLOCK), 0.1);
  const packed = new Uint8Array((V * D) / 2);
  for (let i = 0; i < V * D; i += 2) packed[i / 2] = codes[i] | (codes[i + 1] << 4);
  const dequantised = (v: number, d: number) => (codes[v * D + d] - 8) * scales[v * (D / BLOCK) + Math.floor(d / BLOCK)];
  const folder = tempDir();
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  if (files.includes('fp32')) writeModel(path.join(folder, 'onnx', 'model.onnx'), embedding, { float: floatHeadT });
  if (files.includes('q4')) writeModel(path.join(folder, 'onnx', 'model_q4.onnx'), embedding, { q4: { packed, scales } });
  const reference = (tokens: number[], head: (v: number, d: number) => number) =>
    tokens.map((t) => Float64Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += embedding[t * D + d] * head(v, d);
      return s;
    }));
  return { folder, fp32: (tokens: number[]) => reference(tokens, (v, d) => floatHead[v * D + d]), q4: (tokens: number[]) => reference(tokens, dequantised) };
}

async function maxError(folder: string, dtype: 'auto' | 'fp32' | 'q4', tokens: number[], ref: Float64Array[]): Promise<number> {
  const lm = await LanguageModel.open(await resolveModel(folder, { dtype }), 'cpu');
  try {
    const logits = await lm.forward(tokens);
    let err = 0;
    ref.forEach((row, t) => row.forEach((v, i) => (err = Math.max(err, Math.abs((logits.data as Float32Array)[t * V + i] - v)))));
    return err;
  } finally {
    await lm.release();
  }
}

test('the dtype picks the file of an ONNX export (MatMulNBits 4-bit included); a missing one is refused with what there is', async () => {
  const tokens = [3, 900, 17, 4095, 256];
  const both = exportFolder(['fp32', 'q4']);
  assert.ok((await maxError(both.folder, 'auto', tokens, both.fp32(tokens))) < 1e-4, 'auto: full precision');
  assert.ok((await maxError(both.folder, 'q4', tokens, both.q4(tokens))) < 1e-4, 'q4: the MatMulNBits file, as dequantised');
  assert.ok((await maxError(both.folder, 'q4', tokens, both.fp32(tokens))) > 0.1, 'the two files differ');
  await assert.rejects(resolveModel(both.folder, { dtype: 'fp16' }), /has no fp16 ONNX file \(onnx\/model_fp16\.onnx\); it has fp32 \(onnx\/model\.onnx\), q4 \(onnx\/model_q4\.onnx\)/);
  // only a 4-bit file: auto takes it
  const q4only = exportFolder(['q4']);
  assert.ok((await maxError(q4only.folder, 'auto', tokens, q4only.q4(tokens))) < 1e-4);
  // the report says which file ran
  const engine = new InspectEngine();
  try {
    const r = await engine.inspect({ teacher: both.folder, student: both.folder, text: 'export declare function f(x: number): string;', options: DEFAULT_METRIC_OPTIONS, metric: 'fkl', device: 'cpu', maxTokens: 100, dtype: 'q4' });
    assert.equal(r.teacher.file, 'onnx/model_q4.onnx (q4)');
  } finally {
    await engine.dispose();
  }
});

test('a distillation teacher runs the file its dtype picks, and the run record names it', async () => {
  const both = exportFolder(['fp32', 'q4']);
  const data = path.join(tempDir(), 'text.txt');
  fs.writeFileSync(data, 'Once upon a time there was a tiny model. It learned from a bigger one. '.repeat(20));
  const heldOutFkl: number[] = [];
  for (const [dtype, file] of [
    ['q4', 'onnx/model_q4.onnx (q4)'],
    ['auto', 'onnx/model.onnx (fp32)'],
  ] as const) {
    const record = await runDistillation({
      teacher: both.folder,
      teacherDtype: dtype,
      student: demoPair().student,
      data: { path: data },
      out: path.join(tempDir(), `out-${dtype}`),
      loss: { key: 'fkl', temperature: 1 },
      steps: 1,
      lr: 1e-3,
      batchSize: 1,
      seqLen: 16,
      seed: 1,
    });
    assert.equal(record.settings.teacherFile, file);
    heldOutFkl.push(record.heldOut.before.fkl);
  }
  // the two teachers differ, so the same student is measured against different distributions
  assert.ok(Math.abs(heldOutFkl[0] - heldOutFkl[1]) > 1e-3, `held-out fkl ${heldOutFkl.join(' vs ')}`);
});

test('an export with GroupQueryAttention (rotary inside, past_key_values inputs, lengths from attention_mask) runs exactly', async () => {
  // one attention layer as onnxruntime-genai and onnx-community exports write it
  const H = 4;
  const KV = 2;
  const hd = 16;
  const MAXPOS = 64;
  const r = rng(41);
  const uniform = (n: number, s: number) => Float32Array.from({ length: n }, () => s * (2 * r() - 1));
  const E = uniform(V * D, 1);
  const Wq = uniform(H * hd * D, 0.4); // [H·hd, D]
  const Wk = uniform(KV * hd * D, 0.4);
  const Wv = uniform(KV * hd * D, 0.4);
  const Wo = uniform(D * H * hd, 0.4); // [D, H·hd]
  const head = uniform(V * D, 0.5); // [V, D]
  const transpose = (w: Float32Array, rows: number, cols: number) => {
    const t = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j];
    return t;
  };
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / hd));
  const cosCache = Float32Array.from({ length: MAXPOS * (hd / 2) }, (_, k) => Math.cos(Math.floor(k / (hd / 2)) * invFreq[k % (hd / 2)]));
  const sinCache = Float32Array.from({ length: MAXPOS * (hd / 2) }, (_, k) => Math.sin(Math.floor(k / (hd / 2)) * invFreq[k % (hd / 2)]));
  const T = onnx.TensorProto.DataType;
  const int = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
  const ints = (name: string, values: number[]) => tensor(name, T.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'gqa',
      node: [
        { opType: 'Gather', input: ['E', 'input_ids'], output: ['x'], attribute: [int('axis', 0)] },
        { opType: 'MatMul', input: ['x', 'WqT'], output: ['q'] },
        { opType: 'MatMul', input: ['x', 'WkT'], output: ['k'] },
        { opType: 'MatMul', input: ['x', 'WvT'], output: ['v'] },
        // seqlens_k = Σ attention_mask − 1 (int32), total length = its width, as the exports compute them
        { opType: 'ReduceSum', input: ['attention_mask', 'axis1'], output: ['mask_sum'], attribute: [int('keepdims', 0)] },
        { opType: 'Sub', input: ['mask_sum', 'one'], output: ['lens64'] },
        { opType: 'Cast', input: ['lens64'], output: ['seqlens_k'], attribute: [int('to', T.INT32)] },
        { opType: 'Shape', input: ['attention_mask'], output: ['mask_shape'] },
        { opType: 'Gather', input: ['mask_shape', 'one_scalar'], output: ['total64'], attribute: [int('axis', 0)] },
        { opType: 'Cast', input: ['total64'], output: ['total_len'], attribute: [int('to', T.INT32)] },
        {
          opType: 'GroupQueryAttention',
          domain: 'com.microsoft',
          input: ['q', 'k', 'v', 'past_key_values.0.key', 'past_key_values.0.value', 'seqlens_k', 'total_len', 'cos_cache', 'sin_cache'],
          output: ['attn', 'present.0.key', 'present.0.value'],
          attribute: [int('num_heads', H), int('kv_num_heads', KV), int('do_rotary', 1), int('rotary_interleaved', 0)],
        },
        { opType: 'MatMul', input: ['attn', 'WoT'], output: ['o'] },
        { opType: 'Add', input: ['x', 'o'], output: ['h'] },
        { opType: 'MatMul', input: ['h', 'headT'], output: ['logits'] },
      ],
      input: [
        io('input_ids', T.INT64, ['batch', 'sequence_length']),
        io('attention_mask', T.INT64, ['batch', 'total_sequence_length']),
        io('past_key_values.0.key', T.FLOAT, ['batch', KV, 'past_sequence_length', hd]),
        io('past_key_values.0.value', T.FLOAT, ['batch', KV, 'past_sequence_length', hd]),
      ],
      output: [
        io('logits', T.FLOAT, ['batch', 'sequence_length', V]),
        io('present.0.key', T.FLOAT, ['batch', KV, 'total_sequence_length', hd]),
        io('present.0.value', T.FLOAT, ['batch', KV, 'total_sequence_length', hd]),
      ],
      initializer: [
        tensor('E', T.FLOAT, [V, D], E),
        tensor('WqT', T.FLOAT, [D, H * hd], transpose(Wq, H * hd, D)),
        tensor('WkT', T.FLOAT, [D, KV * hd], transpose(Wk, KV * hd, D)),
        tensor('WvT', T.FLOAT, [D, KV * hd], transpose(Wv, KV * hd, D)),
        tensor('WoT', T.FLOAT, [H * hd, D], transpose(Wo, D, H * hd)),
        tensor('headT', T.FLOAT, [D, V], transpose(head, V, D)),
        tensor('cos_cache', T.FLOAT, [MAXPOS, hd / 2], cosCache),
        tensor('sin_cache', T.FLOAT, [MAXPOS, hd / 2], sinCache),
        ints('axis1', [1]),
        tensor('one', T.INT64, [], BigInt64Array.from([1n])),
        tensor('one_scalar', T.INT64, [], BigInt64Array.from([1n])),
      ],
    },
  };
  const folder = tempDir();
  fs.mkdirSync(path.join(folder, 'onnx'));
  fs.writeFileSync(path.join(folder, 'onnx', 'model.onnx'), onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish());
  fs.copyFileSync(path.join(demoPair().teacher, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ model_type: 'llama', max_position_embeddings: MAXPOS, num_key_value_heads: KV, head_dim: hd }));

  // the float64 reference: rotary on q and k (half-split), causal attention, KV groups of H / KV heads
  const tokens = [7, 1000, 33, 2048, 5, 4000, 12, 99, 300, 1];
  const lin = (x: Float64Array, W: Float32Array, out: number) =>
    Float64Array.from({ length: out }, (_, o) => x.reduce((s, v, i) => s + W[o * x.length + i] * v, 0));
  const xs = tokens.map((t) => Float64Array.from(E.subarray(t * D, (t + 1) * D)));
  const qs = xs.map((x, pos) => referenceRope(lin(x, Wq, H * hd), H, hd, pos, invFreq));
  const ks = xs.map((x, pos) => referenceRope(lin(x, Wk, KV * hd), KV, hd, pos, invFreq));
  const vs = xs.map((x) => lin(x, Wv, KV * hd));
  const ref = xs.map((x, t) => {
    const att = new Float64Array(H * hd);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      const scores = Array.from({ length: t + 1 }, (_, s) => {
        let dot = 0;
        for (let i = 0; i < hd; i++) dot += qs[t][h * hd + i] * ks[s][g * hd + i];
        return dot / Math.sqrt(hd);
      });
      const m = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      e.forEach((a, s) => {
        for (let i = 0; i < hd; i++) att[h * hd + i] += (a / z) * vs[s][g * hd + i];
      });
    }
    const o = lin(att, Wo, D);
    return lin(
      x.map((v, i) => v + o[i]),
      head,
      V,
    );
  });
  const lm = await LanguageModel.open(await resolveModel(folder), 'cpu');
  try {
    const logits = await lm.forward(tokens);
    let err = 0;
    ref.forEach((row, t) => row.forEach((v, i) => (err = Math.max(err, Math.abs((logits.data as Float32Array)[t * V + i] - v)))));
    assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);
  } finally {
    await lm.release();
  }
});
