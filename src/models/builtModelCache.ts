/**
 * Safetensors checkpoints are built into ONNX once and cached, keyed by the sha256 of the
 * weights' content and the config (so an edited file is rebuilt, a moved one is not).
 * Hashing is remembered per (path, size, mtime) so a warm start does not re-read gigabytes.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ResolvedModel } from './modelSource';
import { readSafetensors } from './safetensors';
import { WeightSource } from './builder/weights';
import { buildLlamaGraph, type LlamaConfig } from './builder/llamaGraph';
import { layerWindows } from './checkpointConfig';
import { buildGemmaGraph, type GemmaConfig } from './builder/gemmaGraph';
import { buildGpt2Graph, type Gpt2Config } from './builder/gpt2Graph';
import type { GraphBuilder } from '../onnx/graphBuilder';
import type { LayerReference } from './builder/layerView';

/** Bump when the graphs the builder emits change, so stale cached models are rebuilt. */
// 2: rope_scaling (linear, llama3), sliding windows, biases as the config says, Gemma 3
// 3: YaRN, LongRoPE, partial_rotary_factor, per-layer sliding windows (Qwen2 / Qwen3 layer_types)
// 4: key/value cache inputs and outputs (Llama family, GPT-2) for generation
// 5: the cache in buffers the caller owns (no copy of it per step), Gemma 3 too
const BUILDER_VERSION = 5;

export function defaultBuildCacheDir(): string {
  return process.env.DISTILL_LENS_CACHE ?? path.join(os.homedir(), '.cache', 'distill-lens');
}

/** The inference graph of a checkpoint; with `layerView`, also the layer view's outputs (builder/layerView.ts). */
export function buildGraphFor(model: ResolvedModel, files = model.weightFiles!.map(readSafetensors), layerView?: LayerReference): GraphBuilder {
  if (model.architecture === 'gemma3')
    return buildGemmaGraph(model.config as GemmaConfig, new WeightSource(files), { model: model.name, kvCache: 'buffers', layerView });
  if (model.architecture === 'llama')
    return buildLlamaGraph(model.config as LlamaConfig, new WeightSource(files), {
      layerWindows: layerWindows(model.config ?? {}),
      model: model.name,
      kvCache: 'buffers',
      layerView,
    });
  return buildGpt2Graph(model.config as Gpt2Config, new WeightSource(files, ['', 'transformer.']), { kvCache: 'buffers', layerView });
}

/** Lets messages that arrived meanwhile (a Cancel) be handled, then checks for cancellation. */
async function yieldAndCheck(checkCancelled: () => void): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  checkCancelled();
}

/**
 * sha256 of a file, read in 16 MiB chunks. Asynchronous, so that a model process stays
 * responsive while it hashes gigabytes: a Cancel arriving meanwhile is seen between chunks.
 */
async function fileHash(file: string, memo: Record<string, string>, checkCancelled: () => void): Promise<string> {
  const st = fs.statSync(file);
  const key = `${path.resolve(file)}|${st.size}|${st.mtimeMs}`;
  if (memo[key]) return memo[key];
  const h = crypto.createHash('sha256');
  const handle = await fs.promises.open(file, 'r');
  const chunk = Buffer.allocUnsafe(1 << 24);
  try {
    let n: number;
    while ((n = (await handle.read(chunk, 0, chunk.length, null)).bytesRead) > 0) {
      h.update(chunk.subarray(0, n));
      checkCancelled();
    }
  } finally {
    await handle.close();
  }
  return (memo[key] = h.digest('hex'));
}

export interface BuildOptions {
  cacheDir?: string;
  onProgress?: (m: string) => void;
  /** throws (a CancelledError) when the request was cancelled; called between long steps */
  checkCancelled?: () => void;
  /** the graph with the layer view's outputs (a separate build, cached beside the plain one) */
  layerView?: LayerReference;
}

/** Returns the path of the built ONNX model for a checkpoint, building it on first use. */
export async function ensureBuiltModel(model: ResolvedModel, o: BuildOptions = {}): Promise<{ onnxPath: string; built: boolean }> {
  const cacheDir = o.cacheDir ?? defaultBuildCacheDir();
  const checkCancelled = o.checkCancelled ?? (() => {});
  fs.mkdirSync(cacheDir, { recursive: true });
  const memoFile = path.join(cacheDir, 'hashes.json');
  let memo: Record<string, string>;
  try {
    memo = JSON.parse(fs.readFileSync(memoFile, 'utf8'));
  } catch {
    memo = {};
  }
  const h = crypto.createHash('sha256');
  // the layer view's graphs: "layer view 2" since each state's lens is reduced before the next runs
  h.update(`builder ${BUILDER_VERSION}\n${o.layerView ? `layer view 5 ${o.layerView}\n` : ''}${JSON.stringify(model.config)}\n`);
  for (const f of model.weightFiles!) h.update(await fileHash(f, memo, checkCancelled));
  const key = h.digest('hex').slice(0, 32);
  fs.writeFileSync(memoFile, JSON.stringify(memo));
  const dir = path.join(cacheDir, 'built', key);
  const onnxPath = path.join(dir, 'model.onnx');
  if (fs.existsSync(onnxPath)) return { onnxPath, built: false };
  o.onProgress?.(`building the ONNX graph for ${model.name}`);
  // Long synchronous steps (reading each weights file, building, encoding, writing) are
  // separated by points where a Cancel that arrived meanwhile is seen.
  const files = [];
  for (const f of model.weightFiles!) {
    await yieldAndCheck(checkCancelled);
    files.push(readSafetensors(f));
  }
  await yieldAndCheck(checkCancelled);
  const graph = buildGraphFor(model, files, o.layerView);
  await yieldAndCheck(checkCancelled);
  fs.mkdirSync(path.join(cacheDir, 'built'), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheDir, 'built', `.${key}-`));
  try {
    await writeOnnxModelAsync(graph, tmp, checkCancelled);
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (fs.existsSync(onnxPath)) return { onnxPath, built: false }; // another process finished first
    throw e;
  }
  return { onnxPath, built: true };
}

/** As writeOnnxModel, writing the weights in about 64 MiB pieces with a cancellation check between them. */
async function writeOnnxModelAsync(graph: GraphBuilder, dir: string, checkCancelled: () => void): Promise<void> {
  const { model: bytes, externalData } = graph.encode({ fileName: 'model.onnx.data', minBytes: 1024 });
  await yieldAndCheck(checkCancelled);
  fs.mkdirSync(dir, { recursive: true });
  const handle = await fs.promises.open(path.join(dir, 'model.onnx.data'), 'w');
  try {
    let sinceCheck = 0;
    for (const part of externalData) {
      await handle.write(part);
      sinceCheck += part.byteLength;
      if (sinceCheck >= 64 << 20) {
        checkCancelled();
        sinceCheck = 0;
      }
    }
  } finally {
    await handle.close();
  }
  await fs.promises.writeFile(path.join(dir, 'model.onnx'), bytes);
}

/** Writes model.onnx with its weights in model.onnx.data beside it (protobuf's 2 GB limit). */
export function writeOnnxModel(graph: GraphBuilder, dir: string): string {
  const { model: bytes, externalData } = graph.encode({ fileName: 'model.onnx.data', minBytes: 1024 });
  fs.mkdirSync(dir, { recursive: true });
  const fd = fs.openSync(path.join(dir, 'model.onnx.data'), 'w');
  try {
    for (const part of externalData) fs.writeSync(fd, part);
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(path.join(dir, 'model.onnx'), bytes);
  return path.join(dir, 'model.onnx');
}
