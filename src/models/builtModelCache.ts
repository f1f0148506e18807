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
import { buildGpt2Graph, type Gpt2Config } from './builder/gpt2Graph';
import type { GraphBuilder } from '../onnx/graphBuilder';

/** Bump when the graphs the builder emits change, so stale cached models are rebuilt. */
const BUILDER_VERSION = 1;

export function defaultBuildCacheDir(): string {
  return process.env.DISTILL_LENS_CACHE ?? path.join(os.homedir(), '.cache', 'distill-lens');
}

export function buildGraphFor(model: ResolvedModel): GraphBuilder {
  const files = model.weightFiles!.map(readSafetensors);
  if (model.architecture === 'llama') return buildLlamaGraph(model.config as LlamaConfig, new WeightSource(files));
  return buildGpt2Graph(model.config as Gpt2Config, new WeightSource(files, ['', 'transformer.']));
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
  h.update(`builder ${BUILDER_VERSION}\n${JSON.stringify(model.config)}\n`);
  for (const f of model.weightFiles!) h.update(await fileHash(f, memo, checkCancelled));
  const key = h.digest('hex').slice(0, 32);
  fs.writeFileSync(memoFile, JSON.stringify(memo));
  const dir = path.join(cacheDir, 'built', key);
  const onnxPath = path.join(dir, 'model.onnx');
  if (fs.existsSync(onnxPath)) return { onnxPath, built: false };
  o.onProgress?.(`building the ONNX graph for ${model.name}`);
  await new Promise((resolve) => setImmediate(resolve)); // let a pending Cancel arrive before the build
  checkCancelled();
  const graph = buildGraphFor(model);
  checkCancelled();
  fs.mkdirSync(path.join(cacheDir, 'built'), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheDir, 'built', `.${key}-`));
  try {
    writeOnnxModel(graph, tmp);
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (fs.existsSync(onnxPath)) return { onnxPath, built: false }; // another process finished first
    throw e;
  }
  return { onnxPath, built: true };
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
