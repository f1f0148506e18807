/**
 * The student being trained, as a model that generates: the inference graph of its family
 * (with key/value cache buffers, as `generate` decodes) built over the same trainable
 * parameters as the step graph, as graph inputs. Every decoding step is fed the parameters'
 * current values (and LoRA's frozen weights, the trainer's one copy), so the on-policy methods
 * sample from the student as it is now without merging or rebuilding anything per step.
 */
import * as ort from 'onnxruntime-node';
import { buildGemmaGraph, type GemmaConfig } from '../models/builder/gemmaGraph';
import { buildGpt2Graph, type Gpt2Config } from '../models/builder/gpt2Graph';
import { buildLlamaGraph, type LlamaConfig } from '../models/builder/llamaGraph';
import { layerWindows } from '../models/checkpointConfig';
import { LanguageModel } from '../models/languageModel';
import type { ResolvedModel } from '../models/modelSource';
import type { WeightSource } from '../models/builder/weights';
import { seededRandom } from '../core/random';
import type { Device } from '../shared/devices';
import { TrainableWeights, type LoraAdapter, type Param, type TrainMode } from './trainableWeights';

/** What the policy reads at every run: each trained parameter's value now (by name), and the frozen weights. */
export interface PolicyWeights {
  values: () => Map<string, Float32Array>;
  frozenFeeds: Record<string, ort.Tensor>;
}

export interface PolicyModel {
  lm: LanguageModel;
  /** the parameters its graph reads (the step graph's names and shapes) and LoRA's adapters */
  params: Param[];
  adapters: LoraAdapter[];
}

export async function openPolicyModel(
  student: ResolvedModel,
  weights: WeightSource,
  mode: TrainMode,
  device: Device,
  current: PolicyWeights,
): Promise<PolicyModel> {
  // the same parameter and frozen-input names as the step graph's (initial values unused)
  const trainable = new TrainableWeights(weights, mode, student.architecture!, seededRandom(0), false, true);
  const config = student.config!;
  const g =
    student.architecture === 'llama'
      ? buildLlamaGraph(config as LlamaConfig, trainable, {
          layerWindows: layerWindows(config),
          model: student.name,
          kvCache: 'buffers',
        })
      : student.architecture === 'gemma3'
        ? buildGemmaGraph(config as GemmaConfig, trainable, { model: student.name, kvCache: 'buffers' })
        : buildGpt2Graph(config as Gpt2Config, trainable, { kvCache: 'buffers' });
  const params = trainable.params;
  const lm = await LanguageModel.fromGraph(student, g.encode().model, device, () => {
    const values = current.values();
    const feeds: Record<string, ort.Tensor> = { ...current.frozenFeeds };
    for (const p of params) {
      const value = values.get(p.name);
      if (!value) throw new Error(`the policy graph reads ${p.name}, which the trainer does not have`);
      feeds[p.name] = new ort.Tensor('float32', value, p.shape);
    }
    return feeds;
  });
  return { lm, params, adapters: trainable.adapters };
}
