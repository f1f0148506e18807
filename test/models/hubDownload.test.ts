/**
 * Hub downloads against a local server on the loopback address that answers as the hub does
 * (HF_ENDPOINT): /api/models/<id>/revision/<rev> with the commit and file list,
 * /<id>/resolve/<rev>/<file> with X-Repo-Commit and ETag headers, large (LFS) files as a
 * redirect to storage with X-Linked-Etag (their sha256) and X-Linked-Size, 401 for a gated
 * repository without a token, 404 for what does not exist. Checks the cache layout of
 * Python's huggingface_hub, that a second run downloads nothing and works offline, a gated
 * repository's message, and that an interrupted download leaves nothing half-written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { resolveModel } from '../../src/models/modelSource';
import { ModelLoadError } from '../../src/core/errors';
import { writeSafetensors } from '../../src/models/safetensors';
import { demoPair, maxLogitError, tempDir } from '../helpers';
import { rng } from '../reference/kdReference';
import { randomLlamaWeights, referenceLlamaHf } from '../reference/llamaHfReference';

interface FakeRepo {
  sha: string;
  files: Map<string, { content: Buffer; lfs: boolean }>;
  gatedToken?: string;
}

/** A hub on 127.0.0.1 that serves `repos` and counts what it is asked. */
async function fakeHub(repos: Map<string, FakeRepo>) {
  const counts = { listings: 0, heads: 0, contents: 0 };
  /** storage paths (sha256) whose next download stops half-way */
  const interruptOnce = new Set<string>();
  /** files whose next HEAD drops the connection without an answer */
  const dropOnce = new Set<string>();
  const blobs = new Map<string, Buffer>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const listing = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const storage = /^\/storage\/([0-9a-f]{64})$/.exec(url.pathname);
    const repo = repos.get((listing ?? resolve)?.[1] ?? '');
    if ((listing || resolve) && !repo) return res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('Repository not found');
    if (repo?.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`)
      return res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('Access to this model is restricted');
    if (listing) {
      counts.listings++;
      const body = { id: listing[1], sha: repo!.sha, siblings: [...repo!.files.keys()].map((rfilename) => ({ rfilename })) };
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    }
    if (resolve) {
      if (dropOnce.delete(decodeURIComponent(resolve[3]))) return req.socket.destroy();
      const file = repo!.files.get(decodeURIComponent(resolve[3]));
      if (!file) return res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
      if (req.method === 'HEAD') counts.heads++;
      if (file.lfs) {
        const sha256 = crypto.createHash('sha256').update(file.content).digest('hex');
        blobs.set(sha256, file.content);
        return res
          .writeHead(302, {
            location: `http://127.0.0.1:${port}/storage/${sha256}`,
            'x-repo-commit': repo!.sha,
            'x-linked-etag': `"${sha256}"`,
            'x-linked-size': String(file.content.length),
          })
          .end();
      }
      // a small file: its git blob id as the ETag
      const gitSha = crypto.createHash('sha1').update(`blob ${file.content.length}\0`).update(file.content).digest('hex');
      res.writeHead(200, { etag: `"${gitSha}"`, 'x-repo-commit': repo!.sha, 'content-length': String(file.content.length) });
      if (req.method === 'HEAD') return res.end();
      counts.contents++;
      return res.end(file.content);
    }
    if (storage && blobs.has(storage[1])) {
      counts.contents++;
      const content = blobs.get(storage[1])!;
      res.writeHead(200, { 'content-length': String(content.length) });
      if (interruptOnce.delete(storage[1])) {
        res.write(content.subarray(0, content.length >> 1));
        return setTimeout(() => res.destroy(), 20); // the connection drops half-way
      }
      return res.end(content);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    interruptOnce,
    dropOnce,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A small Llama checkpoint laid out as on the hub: config, tokenizer, two shards and their index. */
function shardedRepo(sha: string): { repo: FakeRepo; weights: ReturnType<typeof randomLlamaWeights>; config: any } {
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 128,
  };
  const weights = randomLlamaWeights(config, rng(21));
  for (const k of Object.keys(weights)) if (k.endsWith('.bias')) delete weights[k];
  const dir = tempDir();
  const names = Object.keys(weights).sort();
  const shards = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const files = new Map<string, { content: Buffer; lfs: boolean }>();
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(dir, name), Object.fromEntries(shard.map((n) => [n, weights[n]])));
    files.set(name, { content: fs.readFileSync(path.join(dir, name)), lfs: true });
    for (const n of shard) weightMap[n] = name;
  });
  files.set('model.safetensors.index.json', { content: Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap })), lfs: false });
  files.set('config.json', { content: Buffer.from(JSON.stringify(config)), lfs: false });
  files.set('tokenizer.json', { content: fs.readFileSync(path.join(demoPair().teacher, 'tokenizer.json')), lfs: true });
  files.set('README.md', { content: Buffer.from('# a model card, not downloaded'), lfs: false });
  return { repo: { sha, files }, weights, config };
}

/** Runs `body` with HF_ENDPOINT (and HF_TOKEN when given) set, restoring them after. */
async function withHub<T>(endpoint: string, token: string | undefined, body: () => Promise<T>): Promise<T> {
  const saved = { endpoint: process.env.HF_ENDPOINT, token: process.env.HF_TOKEN };
  process.env.HF_ENDPOINT = endpoint;
  if (token === undefined) delete process.env.HF_TOKEN;
  else process.env.HF_TOKEN = token;
  try {
    return await body();
  } finally {
    for (const [key, value] of [['HF_ENDPOINT', saved.endpoint], ['HF_TOKEN', saved.token]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

const SHA = 'a'.repeat(39) + '1';

test("a sharded checkpoint from the hub: huggingface_hub's cache layout, a second run downloads nothing, and works offline", async () => {
  const { repo, weights, config } = shardedRepo(SHA);
  const hub = await fakeHub(new Map([['acme/tiny-llama', repo]]));
  const cacheDir = tempDir();
  const progress: string[] = [];
  try {
    const first = await withHub(hub.url, undefined, () =>
      resolveModel('acme/tiny-llama', { allowRemote: true, cacheDir, onProgress: (m) => progress.push(m) }),
    );
    const storage = path.join(cacheDir, 'models--acme--tiny-llama');
    assert.equal(path.resolve(first.folder), path.join(storage, 'snapshots', SHA));
    assert.equal(fs.readFileSync(path.join(storage, 'refs', 'main'), 'utf8'), SHA);
    for (const [name, file] of repo.files) {
      const pointer = path.join(storage, 'snapshots', SHA, name);
      if (name === 'README.md') {
        assert.ok(!fs.existsSync(pointer), 'only what the model needs is downloaded');
        continue;
      }
      // a relative link to the blob, named by sha256 for large files, by git blob id for small ones
      const target = fs.readlinkSync(pointer);
      assert.match(target, /^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
      if (file.lfs) assert.equal(path.basename(target), crypto.createHash('sha256').update(file.content).digest('hex'));
      assert.deepEqual(fs.readFileSync(pointer), file.content);
    }
    assert.ok(progress.some((m) => m.includes('downloading acme/tiny-llama/model-00001-of-00002.safetensors')), progress.join(' | '));
    // the downloaded model is the one on the hub
    const tokens = [5, 300, 17, 42, 4000, 9];
    const err = await maxLogitError(first.folder, tokens, referenceLlamaHf(weights, config, tokens));
    assert.ok(err < 1e-4, `max |logit − reference| = ${err}`);

    const contents = hub.counts.contents;
    const again = await withHub(hub.url, undefined, () => resolveModel('acme/tiny-llama', { allowRemote: true, cacheDir }));
    assert.equal(again.folder, first.folder);
    assert.equal(hub.counts.contents, contents, 'the second run downloads nothing');
  } finally {
    await hub.close();
  }
  // the hub gone: the cached snapshot is used as it is
  const offline = await withHub(hub.url, undefined, () => resolveModel('acme/tiny-llama', { allowRemote: true, cacheDir }));
  assert.equal(offline.kind, 'checkpoint');
});

test('a gated repository without a token says what to do; with the token it downloads', async () => {
  const { repo } = shardedRepo(SHA);
  repo.gatedToken = 'hf_secret';
  const hub = await fakeHub(new Map([['acme/gated', repo]]));
  const cacheDir = tempDir();
  try {
    await withHub(hub.url, undefined, () =>
      assert.rejects(
        resolveModel('acme/gated', { allowRemote: true, cacheDir }),
        (e: Error) => e instanceof ModelLoadError && /acme\/gated needs access on the hub \(HTTP 401.*set HF_TOKEN/.test(e.message),
      ),
    );
    await withHub(hub.url, 'hf_wrong', () =>
      assert.rejects(resolveModel('acme/gated', { allowRemote: true, cacheDir }), /the token in HF_TOKEN has no access to it/),
    );
    await withHub(hub.url, undefined, () =>
      assert.rejects(resolveModel('acme/no-such-model', { allowRemote: true, cacheDir }), /not found on the hub \(HTTP 404\); check the model id/),
    );
    const model = await withHub(hub.url, 'hf_secret', () => resolveModel('acme/gated', { allowRemote: true, cacheDir }));
    assert.equal(model.kind, 'checkpoint');
  } finally {
    await hub.close();
  }
});

test('an interrupted download leaves nothing half-written in place; the next run completes it', async () => {
  const { repo } = shardedRepo(SHA);
  const hub = await fakeHub(new Map([['acme/flaky', repo]]));
  const cacheDir = tempDir();
  const shard = repo.files.get('model-00001-of-00002.safetensors')!.content;
  const sha256 = crypto.createHash('sha256').update(shard).digest('hex');
  hub.interruptOnce.add(sha256);
  const storage = path.join(cacheDir, 'models--acme--flaky');
  try {
    await withHub(hub.url, undefined, () =>
      assert.rejects(resolveModel('acme/flaky', { allowRemote: true, cacheDir }), /acme\/flaky\/model-00001-of-00002\.safetensors .*(interrupted|stopped after)/),
    );
    assert.ok(!fs.existsSync(path.join(storage, 'blobs', sha256)), 'no blob under its final name');
    assert.ok(!fs.existsSync(path.join(storage, 'blobs', `${sha256}.incomplete`)), 'no partial file left');
    assert.ok(!fs.existsSync(path.join(storage, 'snapshots', SHA, 'model-00001-of-00002.safetensors')), 'not in the snapshot');
    // the connection lost between two files: said so, and what was downloaded is kept
    hub.dropOnce.add('tokenizer.json');
    await withHub(hub.url, undefined, () =>
      assert.rejects(
        resolveModel('acme/flaky', { allowRemote: true, cacheDir }),
        /lost the connection to the Hugging Face hub while downloading acme\/flaky\/tokenizer\.json .*run it again to download the rest/,
      ),
    );
    assert.ok(fs.existsSync(path.join(storage, 'snapshots', SHA, 'config.json')), 'the files before it are kept');
    const model = await withHub(hub.url, undefined, () => resolveModel('acme/flaky', { allowRemote: true, cacheDir }));
    assert.deepEqual(fs.readFileSync(path.join(model.folder, 'model-00001-of-00002.safetensors')), shard);
  } finally {
    await hub.close();
  }
});
