/**
 * The distilled student as a new model folder, written atomically: model.safetensors with
 * LoRA merged (float32, the checkpoint's own tensor names, loadable by transformers),
 * config.json, the tokenizer files, its ONNX export in onnx/, run.json, and the run's other
 * files (the rollouts of the sequence-level methods).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFolderAtomically } from '../models/atomicFolder';
import { buildGraphFor, writeOnnxModel } from '../models/builtModelCache';
import type { ResolvedModel } from '../models/modelSource';
import { writeSafetensors } from '../models/safetensors';
import type { WeightSource } from '../models/builder/weights';
import { mergeAdapter, type LoraAdapter, type Param } from './trainableWeights';

const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'generation_config.json',
];

/** The student's tensors after training, by checkpoint key. */
export function trainedTensors(
  weights: WeightSource,
  params: Param[],
  values: Float32Array[],
  adapters: LoraAdapter[],
): Record<string, { shape: number[]; data: Float32Array }> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const key of weights.keys()) {
    const t = weights.tensor(key);
    tensors[key] = { shape: t.shape, data: t.data };
  }
  const valueOf = new Map(params.map((p, i) => [p.name, values[i]]));
  for (const p of params) {
    if (p.role !== 'weight') continue;
    const key = weights.tensor(p.weight).key;
    tensors[key] = { shape: p.shape, data: valueOf.get(p.name)! };
  }
  for (const a of adapters) {
    const base = weights.tensor(a.weight);
    tensors[base.key] = {
      shape: base.shape,
      data: mergeAdapter(base.data, a, valueOf.get(a.a.name)!, valueOf.get(a.b.name)!),
    };
  }
  return tensors;
}

export function writeDistilledStudent(
  out: string,
  student: ResolvedModel,
  weights: WeightSource,
  params: Param[],
  values: Float32Array[],
  adapters: LoraAdapter[],
  record: object,
  /** more files of the run (rollouts.jsonl; projections.safetensors: a function writing the file), by name */
  extraFiles: Record<string, string | ((file: string) => void)> = {},
): void {
  const tensors = trainedTensors(weights, params, values, adapters);
  writeFolderAtomically(out, (dir) => {
    const weightsFile = path.join(dir, 'model.safetensors');
    writeSafetensors(weightsFile, tensors, { format: 'pt' });
    const config = { ...student.config, torch_dtype: 'float32' };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    for (const f of TOKENIZER_FILES) {
      const from = path.join(student.folder, f);
      if (fs.existsSync(from)) fs.copyFileSync(from, path.join(dir, f));
    }
    writeOnnxModel(
      buildGraphFor({ ...student, folder: dir, weightFiles: [weightsFile] }),
      path.join(dir, 'onnx'),
    );
    fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify(record, null, 2) + '\n');
    for (const [name, content] of Object.entries(extraFiles))
      if (typeof content === 'string') fs.writeFileSync(path.join(dir, name), content);
      else content(path.join(dir, name));
  });
}
