/**
 * Turns what the user typed (a folder, or a hub id when remote models are allowed) into a
 * model the runtime can open: an ONNX file, or a safetensors checkpoint to build into ONNX.
 */
import { parseServedTeacher } from './servedTeacher';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { downloadHubModel, looksLikeHubId } from './hubDownload';
import { chooseOnnxFile } from './onnxLayout';
import type { DtypeChoice, OnnxDtype } from '../shared/dtypes';
import { ModelLoadError } from '../core/errors';
import { checkCheckpointConfig, withOlderRopeKeys, type Architecture } from './checkpointConfig';

export type ModelKind = 'onnx' | 'checkpoint';

export interface ResolvedModel {
  /** what the user asked for, for messages */
  name: string;
  folder: string;
  kind: ModelKind;
  /** the ONNX file (kind onnx) */
  onnxPath?: string;
  /** which precision of an ONNX export runs, and its file relative to the folder (kind onnx) */
  onnxFile?: { file: string; dtype: OnnxDtype };
  /** config.json, when the folder has one */
  config?: Record<string, any>;
  /** for checkpoints */
  architecture?: Architecture;
  weightFiles?: string[];
  /** the longest sequence the model accepts */
  contextLength: number;
}

export interface ResolveOptions {
  /** which of an ONNX export's files runs (transformers.js's dtype names) */
  dtype?: DtypeChoice;
  allowRemote?: boolean;
  cacheDir?: string;
  onProgress?: (message: string) => void;
  /**
   * A folder with both an ONNX export and a safetensors checkpoint (a distilled student) is
   * read as the checkpoint: training and the layer view need the graph Distill Lens builds
   */
  preferCheckpoint?: boolean;
}

const LLAMA_ARCHS = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'MistralForCausalLM', 'Phi3ForCausalLM'];
const GPT2_ARCHS = ['GPT2LMHeadModel'];
// the text-only Gemma 3 models (1B, 270M); the larger ones are Gemma3ForConditionalGeneration (vision + text)
const GEMMA3_ARCHS = ['Gemma3ForCausalLM'];

export async function resolveModel(spec: string, o: ResolveOptions = {}): Promise<ResolvedModel> {
  if (!spec) throw new ModelLoadError('no model given: pass a model folder (or a hub id with remote models allowed)');
  if (parseServedTeacher(spec))
    throw new ModelLoadError(
      `${spec} is a served teacher: it scores text (analysis, word-level distillation) but does not run here, so it cannot generate, be a student or give hidden states; use a local model for this`,
    );
  let folder = path.resolve(spec);
  if (!fs.existsSync(folder)) {
    if (!looksLikeHubId(spec)) throw new ModelLoadError(`model folder ${spec} does not exist`);
    if (!o.allowRemote) {
      throw new ModelLoadError(`${spec} is not a local folder; to download it from the Hugging Face hub allow remote models (--allow-remote, or the setting distillLens.allowRemoteModels)`);
    }
    folder = await downloadHubModel(spec, o.cacheDir, o.onProgress, o.dtype ?? 'auto');
  }
  if (!fs.statSync(folder).isDirectory()) throw new ModelLoadError(`${spec} is a file; give the model's folder`);
  if (!fs.existsSync(path.join(folder, 'tokenizer.json'))) {
    throw new ModelLoadError(`${spec} has no tokenizer.json: Distill Lens needs the Hugging Face tokenizer file beside the model`);
  }
  const config = readJsonIfPresent(path.join(folder, 'config.json'));
  const genai = readJsonIfPresent(path.join(folder, 'genai_config.json'));
  let onnxFile: ResolvedModel['onnxFile'];
  try {
    onnxFile = chooseOnnxFile(onnxFilesIn(folder), o.dtype ?? 'auto');
  } catch (e) {
    throw new ModelLoadError(`${spec} ${(e as Error).message}: choose one of those (distillLens.dtype, --dtype)`);
  }
  const onnxPath = onnxFile && path.join(folder, onnxFile.file);
  const contextLength =
    config?.max_position_embeddings ?? config?.n_positions ?? config?.n_ctx ?? genai?.model?.context_length ?? 2048;
  const weightFiles = safetensorsFiles(folder);
  if (onnxPath && !(o.preferCheckpoint && weightFiles.length > 0 && config))
    return { name: spec, folder, kind: 'onnx', onnxPath, onnxFile, config, contextLength };

  if (weightFiles.length === 0) {
    throw new ModelLoadError(`${spec} has neither an ONNX model (onnx/model.onnx, model.onnx or an Optimum decoder_model*.onnx) nor model.safetensors`);
  }
  if (!config) throw new ModelLoadError(`${spec} has model weights but no config.json`);
  const archs: string[] = config.architectures ?? [];
  const architecture: Architecture | undefined = archs.some((a) => LLAMA_ARCHS.includes(a)) || config.model_type === 'llama'
    ? 'llama'
    : archs.some((a) => GPT2_ARCHS.includes(a)) || config.model_type === 'gpt2'
      ? 'gpt2'
      : archs.some((a) => GEMMA3_ARCHS.includes(a)) || config.model_type === 'gemma3_text'
        ? 'gemma3'
        : undefined;
  if (!architecture) {
    throw new ModelLoadError(`${spec}: architecture ${archs.join(', ') || config.model_type || 'unknown'} is not supported for safetensors checkpoints (supported: ${[...LLAMA_ARCHS, ...GEMMA3_ARCHS, ...GPT2_ARCHS].join(', ')}); export it to ONNX instead`);
  }
  // every config key that changes the numbers is built exactly, or the load stops here naming it
  const understood = withOlderRopeKeys(config, spec);
  checkCheckpointConfig(architecture, understood, spec);
  return { name: spec, folder, kind: 'checkpoint', config: understood, architecture, weightFiles, contextLength };
}

/** The .onnx files in a folder and its onnx/ subfolder, relative to the folder. */
function onnxFilesIn(folder: string): string[] {
  const list = (sub: string) =>
    fs.existsSync(path.join(folder, sub)) ? fs.readdirSync(path.join(folder, sub)).filter((f) => f.endsWith('.onnx')).map((f) => (sub ? `${sub}/${f}` : f)) : [];
  return [...list(''), ...list('onnx')];
}

function safetensorsFiles(folder: string): string[] {
  const single = path.join(folder, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  const index = readJsonIfPresent(path.join(folder, 'model.safetensors.index.json'));
  if (index?.weight_map) return [...new Set(Object.values(index.weight_map as Record<string, string>))].map((f) => path.join(folder, f));
  return [];
}

function readJsonIfPresent(file: string): Record<string, any> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** Which file runs for a model, for reports: "onnx/model_q4.onnx (q4)", or the checkpoint it is built from. */
export function modelFileLabel(model: ResolvedModel): string {
  if (model.onnxFile) return `${model.onnxFile.file} (${model.onnxFile.dtype})`;
  return model.kind === 'checkpoint' ? `built from the ${model.architecture} checkpoint (float32)` : 'model.onnx';
}
