/**
 * The models a long-lived process keeps loaded: an ONNX Runtime session and a tokenizer per
 * model, at most `capacity` of them (the current teacher, the current student and one
 * baseline student by default). Loading one more releases the least recently used model's
 * native session, as soon as no request is using it.
 */
import type { DtypeChoice } from '../shared/dtypes';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Device } from '../shared/devices';
import { LanguageModel } from './languageModel';
import { resolveModel } from './modelSource';
import { TextTokenizer } from './tokenizer';
import type { LayerReference } from './builder/layerView';

export interface LoadedModel {
  lm: LanguageModel;
  tokenizer: TextTokenizer;
}

export interface LoadOptions {
  device: Device;
  /** which file of an ONNX export runs */
  dtype?: DtypeChoice;
  allowRemote?: boolean;
  hubCacheDir?: string;
  onProgress?: (message: string) => void;
  /** throws when the request that asked for the model was cancelled (checked while hashing and building) */
  checkCancelled?: () => void;
  /** the graph with the layer view's outputs, against a reference's logits or the model's own */
  layerView?: LayerReference;
}

/** A model in use by one request; `release()` hands it back to the pool (it stays loaded). */
export interface ModelLease {
  model: LoadedModel;
  release(): Promise<void>;
}

interface Entry {
  key: string;
  loading: Promise<LoadedModel>;
  /** set once loaded */
  model?: LoadedModel;
  users: number;
  lastUsed: number;
}

export class ModelPool {
  private entries = new Map<string, Entry>();
  /** tokenizers by file content: a teacher and student with one tokenizer parse it once */
  private tokenizers = new Map<string, TextTokenizer>();
  private clock = 0;

  constructor(private readonly o: { capacity?: number; cacheDir?: string; threads?: number } = {}) {}

  get capacity(): number {
    return this.o.capacity ?? 3;
  }

  /** How many models are loaded or loading now. */
  get size(): number {
    return this.entries.size;
  }

  /** Loads `spec` (or reuses it) and pins it until the lease is released. */
  async acquire(spec: string, o: LoadOptions): Promise<ModelLease> {
    const key = `${spec}|${o.device}|${o.dtype ?? 'auto'}|${o.layerView ?? ''}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, loading: this.load(spec, o), users: 0, lastUsed: 0 };
      this.entries.set(key, entry);
      const failed = entry;
      // a failed load is forgotten, so the next request tries again
      failed.loading.catch(() => this.entries.get(key) === failed && this.entries.delete(key));
    }
    entry.users++;
    entry.lastUsed = ++this.clock;
    const pinned = entry;
    let model: LoadedModel;
    try {
      model = pinned.model = await pinned.loading;
    } catch (e) {
      pinned.users--;
      throw e;
    }
    await this.evictOverCapacity();
    let released = false;
    return {
      model,
      release: async () => {
        if (released) return;
        released = true;
        pinned.users--;
        await this.evictOverCapacity();
      },
    };
  }

  private async load(spec: string, o: LoadOptions): Promise<LoadedModel> {
    // the layer view builds the graph itself: a distilled student's checkpoint, not its export
    const resolved = await resolveModel(spec, { dtype: o.dtype, allowRemote: o.allowRemote, cacheDir: o.hubCacheDir, onProgress: o.onProgress, preferCheckpoint: !!o.layerView });
    o.onProgress?.(`loading ${spec}`);
    // ONNX Runtime loads on its own threads while this thread parses the tokenizer
    const opening = LanguageModel.open(resolved, o.device, { cacheDir: this.o.cacheDir, threads: this.o.threads, onProgress: o.onProgress, checkCancelled: o.checkCancelled, layerView: o.layerView });
    let tokenizer: TextTokenizer;
    try {
      tokenizer = this.tokenizerFor(resolved.folder);
    } catch (e) {
      // the session may still open: release it rather than leak it
      void opening.then((lm) => lm.release(), () => undefined);
      throw e;
    }
    return { lm: await opening, tokenizer };
  }

  private tokenizerFor(folder: string): TextTokenizer {
    const h = crypto.createHash('sha256');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      const file = path.join(folder, f);
      if (fs.existsSync(file)) h.update(fs.readFileSync(file));
      h.update('\0');
    }
    const key = h.digest('hex');
    let t = this.tokenizers.get(key);
    if (!t) this.tokenizers.set(key, (t = TextTokenizer.fromFolder(folder)));
    return t;
  }

  /** Releases least recently used models that nobody uses until at most `capacity` remain. */
  private async evictOverCapacity(): Promise<void> {
    while (this.entries.size > this.capacity) {
      const idle = [...this.entries.values()].filter((e) => e.users === 0).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!idle) return; // everything is in use: evicted when a lease ends
      this.entries.delete(idle.key);
      const m = await idle.loading.catch(() => undefined);
      await m?.lm.release();
    }
    // tokenizers of models no longer loaded are dropped too (not while one is still loading)
    const entries = [...this.entries.values()];
    if (this.tokenizers.size > this.capacity && entries.every((e) => e.model)) {
      const live = new Set(entries.map((e) => e.model!.tokenizer));
      for (const [k, t] of this.tokenizers) if (!live.has(t)) this.tokenizers.delete(k);
    }
  }

  /** Releases every model. */
  async dispose(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    this.tokenizers.clear();
    for (const e of all) await (await e.loading.catch(() => undefined))?.lm.release();
  }
}
