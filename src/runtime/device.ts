/**
 * Which ONNX Runtime execution provider to use. The choice lives here only, as in
 * transformers.js's backend file. An unavailable provider falls back to the CPU with a
 * message that says why and how to enable it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';

export type Device = 'cpu' | 'cuda' | 'dml' | 'auto';
export const DEVICES: Device[] = ['auto', 'cpu', 'cuda', 'dml'];

export interface ProviderChoice {
  providers: string[];
  /** the device actually used */
  device: 'cpu' | 'cuda' | 'dml';
  /** why the requested device was not used, with what to do */
  fallbackReason?: string;
}

const HOW_TO_CUDA =
  'install the CUDA provider with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (needs CUDA 12 and cuDNN 9; see the README, "GPU")';

function bundled(name: string): boolean {
  return ort.listSupportedBackends().some((b) => b.name === name && b.bundled);
}

/** Whether onnxruntime-node's install script has put the CUDA provider library beside the binding. */
function cudaInstalled(): boolean {
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda')) return false;
  try {
    const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return fs.existsSync(path.join(dir, lib));
  } catch {
    return false;
  }
}

/** Decides the providers to try; `cudaWorks` is checked by actually opening a session. */
export function chooseProviders(requested: Device): ProviderChoice {
  if (requested === 'cpu') return { providers: ['cpu'], device: 'cpu' };
  if (requested === 'dml' || (requested === 'auto' && process.platform === 'win32' && bundled('dml'))) {
    if (process.platform !== 'win32' || !bundled('dml')) {
      return { providers: ['cpu'], device: 'cpu', fallbackReason: 'DirectML runs only on Windows; using the CPU' };
    }
    return { providers: ['dml', 'cpu'], device: 'dml' };
  }
  // cuda, or auto elsewhere
  if (!cudaInstalled()) {
    return requested === 'auto'
      ? { providers: ['cpu'], device: 'cpu' }
      : { providers: ['cpu'], device: 'cpu', fallbackReason: `this onnxruntime-node build has no CUDA provider; using the CPU. To use the GPU, ${HOW_TO_CUDA}` };
  }
  return { providers: ['cuda', 'cpu'], device: 'cuda' };
}

export function cudaLoadFailure(e: unknown): string {
  return `the CUDA provider failed to load (${String((e as Error).message ?? e).split('\n')[0]}); using the CPU. Check the CUDA 12 / cuDNN 9 libraries are on the library path, or ${HOW_TO_CUDA}`;
}
