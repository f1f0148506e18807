/**
 * A served teacher's targets for word-level distillation: per window, the teacher's top K + 1
 * tokens of each position from the server (models/servedTeacher.ts), laid out as the teacher
 * top-k buckets (teacherBuckets.ts): the K most probable ids plus the target (or the
 * (K + 1)-th id when the target is among the K), their log-probabilities at T = 1, and the
 * rest's mass. Answers are cached on disk by content hash (server, model, K, token ids), so a
 * run that stopped (a dropped connection past the retries, a Cancel) starts again without
 * asking twice, and the same data is scored once.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelLoadError } from '../core/errors';
import type { ServedTeacherRow } from '../core/bucketedRows';
import type { ServedTeacher } from '../models/servedTeacher';
import type { TeacherBuckets } from './teacherBuckets';
import type { Window } from './data';

/** K for a served teacher unless told: it sends K + 1 per position, and vLLM allows 20 by default (--max-logprobs). */
export const SERVED_DISTILL_TOP_K = 19;

/** Smallest mass the rest bucket keeps, as teacherBuckets.ts. */
const MIN_REST = 1e-30;

/** The tokens of a window the teacher scores: up to the last target (padding and the unscored last position left out). */
export function scoredPrefix(w: Window): number[] {
  const last = w.mask.lastIndexOf(1);
  return w.ids.slice(0, last + 2);
}

/**
 * The buckets of a window from the server's rows for its scored prefix (row r predicts
 * prefix[r + 1]). Rows that are not trained on (mask 0) get a placeholder bucket: finite, and
 * multiplied by 0 in the loss.
 */
export function bucketsFromServed(rows: ServedTeacherRow[], w: Window, k: number): TeacherBuckets {
  const L = w.ids.length;
  const k1 = k + 1;
  const ids = new BigInt64Array(L * k1);
  const logprobs = new Float32Array(L * (k1 + 1));
  const target = new BigInt64Array(L);
  for (let pos = 0; pos < L; pos++) {
    const row = rows[pos];
    if (!w.mask[pos] || !row) {
      for (let j = 0; j < k1; j++) ids[pos * k1 + j] = BigInt(j);
      logprobs.fill(-Math.log(k1 + 1), pos * (k1 + 1), (pos + 1) * (k1 + 1));
      continue;
    }
    const y = w.targets[pos];
    if (row.top.length < k1)
      throw new ModelLoadError(
        `the served teacher listed ${row.top.length} tokens at position ${pos}, not the ${k1} asked for (its top ${k} and one more): lower --teacher-top-k, or raise the server's limit (vLLM: --max-logprobs); a server that sends token texts instead of ids (the OpenAI completions API) lists fewer when some texts are several tokens'`,
        'teacher',
      );
    const top = [...row.top].sort((a, b) => b.logp - a.logp || a.id - b.id).slice(0, k1);
    // the K most probable and the target, or the (K + 1)-th when the target is among the K
    const picked = top.slice(0, k).some((t) => t.id === y)
      ? top
      : [...top.slice(0, k), { id: y, logp: row.targetLogp }];
    let listed = 0;
    picked.forEach((t, j) => {
      ids[pos * k1 + j] = BigInt(t.id);
      logprobs[pos * (k1 + 1) + j] = t.logp;
      listed += Math.exp(t.logp);
    });
    // 1 − Σ listed, from the listed mass's logarithm (no cancellation when it is small)
    logprobs[pos * (k1 + 1) + k1] = Math.log(Math.max(MIN_REST, -Math.expm1(Math.log(listed))));
    target[pos] = BigInt(picked.findIndex((t) => t.id === y));
  }
  return { ids, logprobs, target };
}

/** The served answers' cache is kept under this size: the least recently used answers go first. */
export const SERVED_CACHE_BYTES = 1 << 30;

/**
 * Deletes the least recently used files of `dir` (by modification time: a cache hit touches
 * its file) until they take at most `maxBytes` × 0.8, when they take more than `maxBytes`.
 * Returns how many it deleted.
 */
export function pruneCache(dir: string, maxBytes: number): number {
  let files: { file: string; bytes: number; used: number }[];
  try {
    files = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => {
        const st = fs.statSync(path.join(dir, f));
        return { file: path.join(dir, f), bytes: st.size, used: st.mtimeMs };
      });
  } catch {
    return 0; // no cache yet, or another run pruning it
  }
  let total = files.reduce((n, f) => n + f.bytes, 0);
  if (total <= maxBytes) return 0;
  let deleted = 0;
  for (const f of files.sort((a, b) => a.used - b.used)) {
    if (total <= 0.8 * maxBytes) break;
    try {
      fs.rmSync(f.file);
      total -= f.bytes;
      deleted++;
    } catch {
      // gone already (another run)
    }
  }
  return deleted;
}

/** Each window's buckets from the served teacher, through the disk cache. */
export class ServedTeacherTargets {
  /** windows answered from the cache, and asked of the server */
  cached = 0;
  asked = 0;

  constructor(
    readonly client: ServedTeacher,
    private readonly cacheDir: string,
    private readonly cacheBytes = SERVED_CACHE_BYTES,
  ) {
    // a long-lived cache stays bounded: pruned once per run, before it grows
    pruneCache(cacheDir, cacheBytes);
  }

  /**
   * The teacher's log p of each token of `ids` from index `from` on (the server's prompt
   * log-probabilities of the actual tokens: exact); the on-policy methods' samples are new each
   * time, so not cached.
   */
  async logps(ids: number[], from: number): Promise<number[]> {
    const rows = await this.client.promptLogprobs(ids, 1);
    this.asked++;
    return rows.slice(from - 1).map((r) => r.targetLogp);
  }

  async buckets(w: Window, k: number): Promise<TeacherBuckets> {
    const prefix = scoredPrefix(w);
    const key = crypto
      .createHash('sha256')
      .update(
        JSON.stringify({
          url: this.client.spec.baseUrl,
          model: this.client.spec.model,
          k: k + 1,
          ids: prefix,
        }),
      )
      .digest('hex');
    const file = path.join(this.cacheDir, `${key}.json`);
    let rows: ServedTeacherRow[] | undefined;
    try {
      rows = JSON.parse(fs.readFileSync(file, 'utf8'));
      this.cached++;
      // recently used: the last to be pruned
      const now = new Date();
      fs.utimesSync(file, now, now);
    } catch {
      rows = await this.client.promptLogprobs(prefix, k + 1);
      this.asked++;
      // written whole, then renamed: a cut-off run leaves no half file
      fs.mkdirSync(this.cacheDir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(rows));
      fs.renameSync(tmp, file);
      // a run that writes many answers keeps the cache bounded as it goes
      if (this.asked % 256 === 0) pruneCache(this.cacheDir, this.cacheBytes);
    }
    return bucketsFromServed(rows!, w, k);
  }
}
