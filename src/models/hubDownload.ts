/**
 * Hugging Face hub ids (e.g. Xenova/gpt2), downloaded into the cache layout Python's
 * huggingface_hub uses, so that each reuses what the other downloaded:
 *
 *   <cache>/models--<owner>--<name>/refs/<revision>                 the commit hash it points to
 *   <cache>/models--<owner>--<name>/blobs/<etag>                    file contents (sha256 for LFS files)
 *   <cache>/models--<owner>--<name>/snapshots/<commit>/<file>       symlink to ../../blobs/<etag>
 *
 * Written here rather than with @huggingface/hub: that library puts each file under the
 * commit that last changed it (one model spread over several snapshot folders) and writes no
 * refs, so a second run could not work offline and Python's downloads were not found.
 *
 * Per file, as huggingface_hub's hf_hub_download: a HEAD of /<repo>/resolve/<revision>/<file>
 * gives the commit (X-Repo-Commit), the blob id (X-Linked-Etag or ETag) and size; a file
 * already in the snapshot is not downloaded again; a blob already present is linked; else the
 * file is streamed to blobs/<etag>.incomplete, its size checked, and renamed into place, so
 * nothing half-written is ever used. Without a connection, a snapshot the refs point to is
 * used as it is. Only reached when the user allows remote models.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { chooseOnnxFile } from './onnxLayout';
import type { DtypeChoice } from '../shared/dtypes';
import { ModelLoadError } from '../core/errors';

export function looksLikeHubId(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(spec) && !spec.startsWith('.');
}

export function defaultHubCacheDir(): string {
  return process.env.HF_HUB_CACHE ?? path.join(process.env.HF_HOME ?? path.join(os.homedir(), '.cache', 'huggingface'), 'hub');
}

/** The files inspection and distillation need, from a repository's file list. */
export function filesToDownload(files: string[], dtype: DtypeChoice): string[] {
  const wanted = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'genai_config.json'].filter((f) => files.includes(f));
  // only the file of the chosen precision (a repository may hold eight)
  const onnx = chooseOnnxFile(files, dtype)?.file;
  if (onnx) wanted.push(onnx, ...files.filter((f) => f.startsWith(onnx + '_data') || f.startsWith(onnx + '.data')));
  else if (files.includes('model.safetensors')) wanted.push('model.safetensors');
  else wanted.push(...files.filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f) || f === 'model.safetensors.index.json'));
  return wanted;
}

/** A failure to reach the hub at all (as opposed to an answer from it). */
class Unreachable extends Error {}

interface HubContext {
  repo: string;
  endpoint: string;
  token?: string;
  revision: string;
  storage: string;
  onProgress?: (m: string) => void;
}

/** Downloads what inspection needs (tokenizer, config, one ONNX model or the safetensors) and returns the snapshot folder. */
export async function downloadHubModel(repo: string, cacheDir = defaultHubCacheDir(), onProgress?: (m: string) => void, dtype: DtypeChoice = 'auto'): Promise<string> {
  const hub: HubContext = {
    repo,
    // a mirror, as huggingface_hub reads it
    endpoint: (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    token: process.env.HF_TOKEN,
    revision: 'main',
    storage: path.join(cacheDir, `models--${repo.replace(/\//g, '--')}`),
    onProgress,
  };
  let listing: { sha: string; files: string[] };
  try {
    listing = await listRepository(hub);
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
    // offline: the snapshot an earlier download (ours or Python's) left is used as it is
    const cached = cachedSnapshot(hub);
    if (cached) {
      onProgress?.(`the hub is unreachable: using the cached ${repo}`);
      return cached;
    }
    throw new ModelLoadError(`cannot reach the Hugging Face hub to download ${repo} (offline?), and it is not in the cache (${cacheDir}): download the model folder elsewhere and give its path`);
  }
  if (!listing.files.includes('tokenizer.json')) throw new ModelLoadError(`hub model ${repo} has no tokenizer.json`);
  let wanted: string[];
  try {
    wanted = filesToDownload(listing.files, dtype);
  } catch (e) {
    throw new ModelLoadError(`${repo} ${(e as Error).message}: choose one of those (distillLens.dtype, --dtype)`);
  }
  let snapshot = '';
  for (const [i, file] of wanted.entries()) {
    let where: string;
    try {
      where = await downloadFile(hub, file, `(${i + 1}/${wanted.length})`);
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      throw new ModelLoadError(
        `lost the connection to the Hugging Face hub while downloading ${repo}/${file} (${i} of ${wanted.length} files done, kept in ${cacheDir}): run it again to download the rest`,
      );
    }
    snapshot = where.slice(0, where.length - file.length);
  }
  return snapshot;
}

/** The commit and file names of the revision (GET /api/models/<repo>/revision/<revision>). */
async function listRepository(hub: HubContext): Promise<{ sha: string; files: string[] }> {
  const response = await request(hub, `${hub.endpoint}/api/models/${hub.repo}/revision/${hub.revision}`, 'GET');
  await refuseErrors(hub, response, 'the file list');
  const body = (await response.json()) as { sha?: string; siblings?: { rfilename: string }[] };
  if (!body.sha || !Array.isArray(body.siblings)) throw new ModelLoadError(`the hub's answer for ${hub.repo} has no commit or file list`);
  return { sha: body.sha, files: body.siblings.map((s) => s.rfilename) };
}

/** The snapshot folder refs/<revision> points to, when an earlier download left one. */
function cachedSnapshot(hub: HubContext): string | undefined {
  const ref = path.join(hub.storage, 'refs', hub.revision);
  if (!fs.existsSync(ref)) return undefined;
  const folder = path.join(hub.storage, 'snapshots', fs.readFileSync(ref, 'utf8').trim());
  return fs.existsSync(path.join(folder, 'tokenizer.json')) ? folder + path.sep : undefined;
}

/** One file into the cache, as hf_hub_download does; returns its path in the snapshot. */
async function downloadFile(hub: HubContext, file: string, counter: string): Promise<string> {
  const url = `${hub.endpoint}/${hub.repo}/resolve/${hub.revision}/${file.split('/').map(encodeURIComponent).join('/')}`;
  // the metadata: relative redirects (a renamed repository) are followed, the one to the
  // file storage is not: its headers already say what the file is
  let head = await request(hub, url, 'HEAD');
  for (let hops = 0; hops < 5 && isRedirect(head) && head.headers.get('location')?.startsWith('/'); hops++)
    head = await request(hub, new URL(head.headers.get('location')!, hub.endpoint).toString(), 'HEAD');
  await refuseErrors(hub, head, file);
  const commit = head.headers.get('x-repo-commit');
  const etag = normaliseEtag(head.headers.get('x-linked-etag') ?? head.headers.get('etag'));
  const size = Number(head.headers.get('x-linked-size') ?? head.headers.get('content-length') ?? NaN);
  if (!commit || !etag) throw new ModelLoadError(`the hub's answer for ${hub.repo}/${file} has no commit or ETag header`);
  if (!/^[\w.-]+$/.test(etag) || !/^[0-9a-f]{40}$/.test(commit)) throw new ModelLoadError(`the hub's answer for ${hub.repo}/${file} has a malformed commit or ETag`);

  fs.mkdirSync(path.join(hub.storage, 'refs'), { recursive: true });
  if (hub.revision !== commit) fs.writeFileSync(path.join(hub.storage, 'refs', hub.revision), commit);
  const pointer = path.join(hub.storage, 'snapshots', commit, file);
  const blob = path.join(hub.storage, 'blobs', etag);
  if (fs.existsSync(pointer)) return pointer; // downloaded before, by us or by Python
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  if (!fs.existsSync(blob)) {
    const from = isRedirect(head) ? new URL(head.headers.get('location')!, hub.endpoint).toString() : url;
    await downloadBlob(hub, from, blob, size, `${hub.repo}/${file} ${counter}`);
  }
  linkIntoSnapshot(blob, pointer);
  return pointer;
}

/** Streams the file to <blob>.incomplete, checks its size, and renames it into place. */
async function downloadBlob(hub: HubContext, url: string, blob: string, size: number, label: string): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  const response = await request(hub, url, 'GET', true);
  await refuseErrors(hub, response, label);
  const total = Number.isFinite(size) ? size : Number(response.headers.get('content-length') ?? NaN);
  let received = 0;
  let lastReport = 0;
  const progress = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      received += chunk.byteLength;
      const now = Date.now();
      if (now - lastReport > 250) {
        lastReport = now;
        hub.onProgress?.(`downloading ${label}: ${megabytes(received)}${Number.isFinite(total) ? ` of ${megabytes(total)} (${Math.floor((100 * received) / total)}%)` : ''}`);
      }
      controller.enqueue(chunk);
    },
  });
  hub.onProgress?.(`downloading ${label}${Number.isFinite(total) ? `: ${megabytes(total)}` : ''}`);
  try {
    await pipeline(Readable.fromWeb(response.body!.pipeThrough(progress) as any), fs.createWriteStream(incomplete));
  } catch (e) {
    fs.rmSync(incomplete, { force: true });
    throw new ModelLoadError(`downloading ${label} was interrupted (${(e as Error).message}); nothing was kept, so the next try starts again`);
  }
  if (Number.isFinite(total) && received !== total) {
    fs.rmSync(incomplete, { force: true });
    throw new ModelLoadError(`downloading ${label} stopped after ${received} of ${total} bytes; nothing was kept, so the next try starts again`);
  }
  fs.renameSync(incomplete, blob);
}

/** snapshots/<commit>/<file> → ../../blobs/<etag> (a relative link, as huggingface_hub makes; a copy where links are not allowed). */
function linkIntoSnapshot(blob: string, pointer: string): void {
  try {
    fs.symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch {
    fs.copyFileSync(blob, pointer);
  }
}

async function request(hub: HubContext, url: string, method: 'GET' | 'HEAD', follow = false): Promise<Response> {
  // the token goes to the hub only, never to the storage a download is redirected to
  const sameHost = new URL(url).origin === new URL(hub.endpoint).origin;
  const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'distill-lens' };
  if (hub.token && sameHost) headers.authorization = `Bearer ${hub.token}`;
  try {
    return await fetch(url, { method, headers, redirect: follow ? 'follow' : 'manual' });
  } catch (e) {
    throw new Unreachable(`${(e as Error).message}: ${String((e as { cause?: unknown }).cause ?? '')}`);
  }
}

/** The hub's answers that mean "no": not found, gated, no access, rate limited, server errors. */
async function refuseErrors(hub: HubContext, response: Response, what: string): Promise<void> {
  if (response.ok || isRedirect(response)) return;
  const detail = (await response.text().catch(() => '')).slice(0, 200);
  if (response.status === 401 || response.status === 403) {
    throw new ModelLoadError(
      `${hub.repo} needs access on the hub (HTTP ${response.status}${detail ? `: ${detail}` : ''}): ${hub.token ? 'the token in HF_TOKEN has no access to it; accept its licence on its hub page' : 'it is gated or private; accept its licence on its hub page and set HF_TOKEN to an access token'}`,
    );
  }
  if (response.status === 404) throw new ModelLoadError(`${hub.repo}: ${what} was not found on the hub (HTTP 404); check the model id`);
  throw new ModelLoadError(`downloading ${hub.repo} failed: ${what}: HTTP ${response.status}${detail ? ` (${detail})` : ''}`);
}

function isRedirect(r: Response): boolean {
  return r.status >= 300 && r.status < 400 && r.headers.has('location');
}

/** An ETag without quotes or weak-validator prefix, as huggingface_hub stores it. */
function normaliseEtag(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, '').replace(/"/g, '') || undefined;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
