/**
 * One causal language model in an ONNX Runtime session: feeds whatever inputs its graph
 * declares (input_ids, attention_mask, position_ids, empty past_key_values.*, …) and
 * returns only the logits, so present.* tensors are never copied out.
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { ModelLoadError } from '../models/modelErrors';
import type { ResolvedModel } from '../models/modelSource';
import { ensureBuiltModel } from '../models/builtModelCache';
import { chooseProviders, cudaLoadFailure, type Device } from './device';

/**
 * Each session has its own thread pool; ONNX Runtime's default busy-waiting after a run
 * lets the teacher's idle threads steal the cores from the student's and the metrics'
 * runs (measured: the 6-layer student ran slower than the 12-layer teacher). Threads sleep
 * instead.
 */
export const NO_SPINNING = { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } };

export interface Logits {
  /** float32 or float16 (as raw uint16) values, [length, vocab] row-major */
  data: Float32Array | Uint16Array;
  type: 'float32' | 'float16';
  length: number;
  vocab: number;
}

export interface LoadInfo {
  device: 'cpu' | 'cuda' | 'dml';
  messages: string[];
  builtNow: boolean;
  loadMs: number;
}

export class LanguageModel {
  private constructor(
    readonly model: ResolvedModel,
    private readonly session: ort.InferenceSession,
    readonly info: LoadInfo,
  ) {}

  static async open(model: ResolvedModel, device: Device, o: { cacheDir?: string; threads?: number; onProgress?: (m: string) => void } = {}): Promise<LanguageModel> {
    const t0 = performance.now();
    const messages: string[] = [];
    let onnxPath = model.onnxPath;
    let builtNow = false;
    if (model.kind === 'checkpoint') {
      const built = ensureBuiltModel(model, o.cacheDir, o.onProgress);
      onnxPath = built.onnxPath;
      builtNow = built.built;
    }
    const choice = chooseProviders(device);
    if (choice.fallbackReason) messages.push(choice.fallbackReason);
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: choice.providers as ort.InferenceSession.ExecutionProviderConfig[],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
      ...NO_SPINNING,
    };
    let session: ort.InferenceSession;
    let used = choice.device;
    try {
      session = await createSession(onnxPath!, options, model.name);
    } catch (e) {
      if (choice.device === 'cpu' || e instanceof ModelLoadError) throw e;
      messages.push(choice.device === 'cuda' ? cudaLoadFailure(e) : `DirectML failed to load (${(e as Error).message}); using the CPU`);
      used = 'cpu';
      session = await createSession(onnxPath!, { ...options, executionProviders: ['cpu'] }, model.name);
    }
    if (!session.inputNames.includes('input_ids') || !session.outputNames.includes('logits')) {
      await session.release();
      throw new ModelLoadError(`${model.name}: the ONNX model has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}]; a causal language model with input_ids and logits is needed`);
    }
    return new LanguageModel(model, session, { device: used, messages, builtNow, loadMs: performance.now() - t0 });
  }

  get vocabSize(): number | undefined {
    const meta = this.session.outputMetadata.find((m) => m.name === 'logits');
    const last = meta && meta.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
    return typeof last === 'number' ? last : this.model.config?.vocab_size;
  }

  /** Logits for every position of one sequence. */
  async forward(ids: number[]): Promise<Logits> {
    const L = ids.length;
    const feeds: Record<string, ort.Tensor> = {};
    for (const meta of this.session.inputMetadata) {
      feeds[meta.name] = this.feedFor(meta, ids);
    }
    const out = await this.session.run(feeds, ['logits']);
    const logits = out.logits;
    const dims = logits.dims;
    const vocab = dims[dims.length - 1];
    if (logits.type !== 'float32' && logits.type !== 'float16') throw new ModelLoadError(`${this.model.name}: logits of type ${logits.type} are not supported`);
    if (dims.length !== 3 || dims[1] !== L) throw new ModelLoadError(`${this.model.name}: logits have shape [${dims}], expected [1, ${L}, vocab]`);
    return { data: logits.data as Float32Array | Uint16Array, type: logits.type, length: L, vocab };
  }

  private feedFor(meta: ort.InferenceSession.ValueMetadata, ids: number[]): ort.Tensor {
    const L = ids.length;
    const name = meta.name;
    const int64 = (values: (i: number) => number, n = L) => new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(values(i))), [1, n]);
    if (name === 'input_ids') return int64((i) => ids[i]);
    if (name === 'attention_mask') return int64(() => 1);
    if (name === 'position_ids') return int64((i) => i);
    if (name === 'token_type_ids') return int64(() => 0);
    if (!meta.isTensor) throw new ModelLoadError(`${this.model.name}: input ${name} is not a tensor`);
    if (name === 'use_cache_branch') return new ort.Tensor('bool', [false], [1]);
    if (/past|cache/.test(name)) {
      // an empty cache: past length 0, other symbolic dims from the config (batch 1)
      const shape = meta.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : /past|seq|length/i.test(d) ? 0 : this.symbolicDim(d, name)));
      const size = shape.reduce((a, b) => a * b, 1);
      const type = meta.type as 'float32' | 'float16';
      const data = type === 'float16' ? new Uint16Array(size) : new Float32Array(size);
      return new ort.Tensor(type, data, shape);
    }
    throw new ModelLoadError(`${this.model.name}: the ONNX model needs input "${name}", which Distill Lens does not know how to fill`);
  }

  private symbolicDim(dim: string, input: string): number {
    const c = this.model.config ?? {};
    if (/head/i.test(dim) && /size|dim/i.test(dim)) return c.head_dim ?? c.hidden_size / c.num_attention_heads;
    if (/head/i.test(dim)) return c.num_key_value_heads ?? c.num_attention_heads;
    throw new ModelLoadError(`${this.model.name}: cannot tell the size of dimension "${dim}" of input ${input}`);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

async function createSession(file: string, options: ort.InferenceSession.SessionOptions, name: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(file, options);
  } catch (e) {
    const msg = String((e as Error).message ?? e);
    const corrupt = /protobuf|parse|invalid model|load model|external|exceeds|out of bounds|truncat|size/i.test(msg);
    if (!corrupt) throw e;
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    throw new ModelLoadError(`${name}: ONNX Runtime cannot load ${file} (${size} bytes): ${msg.split('\n')[0].slice(0, 300)}. The file may be truncated or corrupt; re-download or re-export it`);
  }
}
