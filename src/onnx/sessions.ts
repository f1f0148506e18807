/**
 * The one place that creates ONNX Runtime sessions: which execution provider (CUDA,
 * DirectML or the CPU), the fallback to the CPU with a message that says why and how to
 * enable the GPU, thread settings, and the classification of load failures. Model
 * inference, the metrics graph and the training graphs all open their sessions here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Device, UsedDevice } from '../shared/devices';
import { ModelLoadError } from '../core/errors';

export interface ProviderChoice {
  providers: string[];
  /** the device that will be used */
  device: UsedDevice;
  /** why the requested device is not used, with what to do */
  fallbackReason?: string;
}

const HOW_TO_CUDA =
  'install the CUDA provider with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (needs CUDA 12 and cuDNN 9; see the README, "GPU")';

function bundled(name: string): boolean {
  return ort.listSupportedBackends().some((b) => b.name === name && b.bundled);
}

/** Whether onnxruntime-node's install script has put the CUDA provider library beside the binding. */
export function cudaProviderInstalled(): boolean {
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda')) return false;
  try {
    const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    const lib =
      process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return fs.existsSync(path.join(dir, lib));
  } catch {
    return false;
  }
}

/** Decides the providers to try for a requested device; whether CUDA works is seen when a session opens. */
export function chooseProviders(requested: Device): ProviderChoice {
  if (requested === 'cpu') return { providers: ['cpu'], device: 'cpu' };
  if (requested === 'dml' || (requested === 'auto' && process.platform === 'win32' && bundled('dml'))) {
    if (process.platform !== 'win32' || !bundled('dml')) {
      return {
        providers: ['cpu'],
        device: 'cpu',
        fallbackReason: 'DirectML runs only on Windows; using the CPU',
      };
    }
    return { providers: ['dml', 'cpu'], device: 'dml' };
  }
  // cuda, or auto elsewhere
  if (!cudaProviderInstalled()) {
    return requested === 'auto'
      ? { providers: ['cpu'], device: 'cpu' }
      : {
          providers: ['cpu'],
          device: 'cpu',
          fallbackReason: `this onnxruntime-node build has no CUDA provider; using the CPU. To use the GPU, ${HOW_TO_CUDA}`,
        };
  }
  return { providers: ['cuda', 'cpu'], device: 'cuda' };
}

/**
 * Each session has its own thread pool; ONNX Runtime's default busy-waiting after a run
 * lets the teacher's idle threads steal the cores from the student's and the metrics'
 * runs (measured: the 6-layer student ran slower than the 12-layer teacher). Threads sleep
 * instead.
 */
const NO_SPINNING = { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } };

export interface SessionRequest {
  /** an .onnx file or the serialised model */
  model: string | Uint8Array;
  device: Device;
  /** a readable name for messages (the model's folder or the graph's purpose) */
  name: string;
  threads?: number;
  /** full graph optimisation (models); the small generated graphs use ONNX Runtime's default */
  optimize?: boolean;
  /**
   * false: ONNX Runtime does not repack the float32 weight matrices at load. Measured on the
   * GPT-2-small pair (npm run bench): loading took 1.8 s instead of 0.6 s and kept a second
   * copy of every weight (2.0 GB peak instead of 1.7 GB), for runs about 5% faster; the
   * weights of a built model's external data file are then read in place (memory-mapped).
   * Quantized exports keep it: MatMulNBits needs its packed layout.
   */
  prepack?: boolean;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  device: UsedDevice;
  /** fallbacks that happened, each saying why and what to do */
  messages: string[];
}

/**
 * Opens a session on the requested device. A GPU provider that fails to start falls back to
 * the CPU with a message; a file ONNX Runtime cannot parse is a ModelLoadError naming it.
 */
export async function openSession(r: SessionRequest): Promise<OpenedSession> {
  const choice = chooseProviders(r.device);
  const messages = choice.fallbackReason ? [choice.fallbackReason] : [];
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: choice.providers as ort.InferenceSession.ExecutionProviderConfig[],
    logSeverityLevel: 3,
    ...(r.optimize ? { graphOptimizationLevel: 'all' as const } : {}),
    ...(r.threads ? { intraOpNumThreads: r.threads } : {}),
    extra: { session: { ...NO_SPINNING, ...(r.prepack === false ? { disable_prepacking: '1' } : {}) } },
  };
  try {
    return { session: await create(r, options), device: choice.device, messages };
  } catch (e) {
    if (choice.device === 'cpu' || e instanceof ModelLoadError) throw e;
    // a provider may load but fail, or lack a kernel this graph needs: run on the CPU instead
    const why = String((e as Error).message ?? e).split('\n')[0];
    messages.push(
      choice.device === 'cuda'
        ? `the CUDA provider could not run ${r.name} (${why}); using the CPU. Check the CUDA 12 / cuDNN 9 libraries are on the library path, or ${HOW_TO_CUDA}`
        : `DirectML could not run ${r.name} (${why}); using the CPU`,
    );
    return { session: await create(r, { ...options, executionProviders: ['cpu'] }), device: 'cpu', messages };
  }
}

async function create(
  r: SessionRequest,
  options: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  try {
    // (the two overloads of create, one for a path and one for bytes)
    return await ort.InferenceSession.create(r.model as string, options);
  } catch (e) {
    if (typeof r.model !== 'string' || !options.executionProviders?.every((p) => p === 'cpu')) throw e;
    // On the CPU, a model file that does not open is the file's fault (ONNX Runtime gives no
    // error codes to tell parse errors from others): say which file and what to do.
    const msg = String((e as Error).message ?? e);
    const size = fs.existsSync(r.model) ? fs.statSync(r.model).size : 0;
    throw new ModelLoadError(
      `${r.name}: ONNX Runtime cannot load ${r.model} (${size} bytes): ${msg.split('\n')[0].slice(0, 300)}. The file may be truncated or corrupt; re-download or re-export it`,
    );
  }
}
