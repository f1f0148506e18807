/**
 * Hugging Face hub ids (e.g. Xenova/gpt2), downloaded with @huggingface/hub into the same
 * cache layout Python's huggingface_hub uses. Only reached when the user allows remote
 * models; offline, the message says so.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { ONNX_CANDIDATES } from './onnxLayout';
import { ModelLoadError } from '../core/errors';

export function looksLikeHubId(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(spec) && !spec.startsWith('.');
}

export function defaultHubCacheDir(): string {
  return process.env.HF_HUB_CACHE ?? path.join(process.env.HF_HOME ?? path.join(os.homedir(), '.cache', 'huggingface'), 'hub');
}

/** Downloads what inspection needs (tokenizer, config, one ONNX model or the safetensors) and returns the snapshot folder. */
export async function downloadHubModel(repo: string, cacheDir = defaultHubCacheDir(), onProgress?: (m: string) => void): Promise<string> {
  const hub = await import('@huggingface/hub');
  const accessToken = process.env.HF_TOKEN;
  const hubUrl = process.env.HF_ENDPOINT; // a mirror, as huggingface_hub reads it
  try {
    const files: string[] = [];
    for await (const f of hub.listFiles({ repo, recursive: true, accessToken, hubUrl })) if (f.type === 'file') files.push(f.path);
    const wanted = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'genai_config.json'].filter((f) => files.includes(f));
    const onnx = ONNX_CANDIDATES.find((f) => files.includes(f));
    if (onnx) wanted.push(onnx, ...files.filter((f) => f.startsWith(onnx + '_data') || f.startsWith(onnx + '.data')));
    else if (files.includes('model.safetensors')) wanted.push('model.safetensors');
    else wanted.push(...files.filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f) || f === 'model.safetensors.index.json'));
    if (!files.includes('tokenizer.json')) throw new ModelLoadError(`hub model ${repo} has no tokenizer.json`);
    let snapshot = '';
    for (const [i, file] of wanted.entries()) {
      onProgress?.(`downloading ${repo}/${file} (${i + 1}/${wanted.length})`);
      const local = await hub.downloadFileToCacheDir({ repo, path: file, cacheDir, accessToken, hubUrl });
      snapshot = local.slice(0, local.length - file.length);
    }
    return snapshot;
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    const msg = (e as Error).message ?? String(e);
    if (/fetch failed|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|network/i.test(msg + String((e as any).cause ?? ''))) {
      throw new ModelLoadError(`cannot reach the Hugging Face hub to download ${repo} (offline?): download the model folder elsewhere and give its path`);
    }
    throw new ModelLoadError(`downloading ${repo} failed: ${msg}`);
  }
}
