/**
 * Runs the fused metrics graph over logits in chunks of positions and turns its outputs
 * into rows. Used by inspection (model logits) and by `distill-lens metrics` (logits given
 * as JSON), so both print numbers from the same code.
 */
import * as ort from 'onnxruntime-node';
import { AKL_MEMBERS, buildMetricsGraph } from './metricsGraph';
import {
  rowFromReductions,
  type MetricOptions,
  type PositionReductions,
  type TokenRow,
} from '../core/tokenRows';
import { aklWeightsFullRow } from '../core/aklHead';
import { halfToFloat32 } from '../models/safetensors';
import { openSession } from '../onnx/sessions';
import type { Device } from '../shared/devices';

export type LogitsType = 'float32' | 'float16' | 'float64';
export type LogitsData = Float32Array | Uint16Array | Float64Array;

export interface RowSource {
  /** position in the logits matrix whose distribution predicts `target` */
  position: number;
  target: number;
  index: number;
  text: string;
  start: number;
  end: number;
}

/** Positions per metrics run: small enough that float64 intermediates stay in cache. */
const CHUNK = 16;

/** Metric sessions kept per runner: the options in use and the previous ones (a metric switch and back). */
const MAX_SESSIONS = 2;

export class MetricsRunner {
  /** one session per (logits type, T, β, α, μ, k, boundary tokens), least recently used first */
  private sessions = new Map<string, { session: Promise<ort.InferenceSession>; users: number }>();

  /** Rows whose AKL head the graph's boundary bucket did not settle, split on the full row in JavaScript (bench, tests). */
  fullRowAklSplits = 0;

  constructor(private readonly device: Device = 'cpu') {}

  /** How many metrics sessions are open. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /**
   * The metrics graph for these options. T, β, α, μ and k are constants of the graph (as inputs
   * they would cost extra passes over the T×V logits at T = 1 and β = ½), so each set of
   * options has its own session; only the most recent few are kept, older ones are released.
   */
  private async acquire(
    type: LogitsType,
    o: MetricOptions,
    k: number,
    vocab: number,
  ): Promise<{ session: ort.InferenceSession; done: () => Promise<void> }> {
    const members = Math.min(vocab, AKL_MEMBERS + 1);
    const key = `${type}|${o.temperature}|${o.beta}|${o.alpha}|${o.mu}|${k}|${members}`;
    let entry = this.sessions.get(key);
    if (entry)
      this.sessions.delete(key); // re-inserted below as the most recent
    else {
      const bytes = buildMetricsGraph({
        logitsType: type,
        temperature: o.temperature,
        beta: o.beta,
        alpha: o.alpha,
        topK: k,
        mu: o.mu,
        aklMembers: members,
      });
      const opening = openSession({ model: bytes, device: this.device, name: 'the metrics graph' }).then(
        (opened) => opened.session,
      );
      entry = { session: opening, users: 0 };
      opening.catch(() => this.sessions.get(key) === entry && this.sessions.delete(key));
    }
    this.sessions.set(key, entry);
    entry.users++;
    const mine = entry;
    const done = async () => {
      mine.users--;
      await this.evictOld();
    };
    try {
      return { session: await mine.session, done };
    } catch (e) {
      await done();
      throw e;
    }
  }

  private async evictOld(): Promise<void> {
    for (const [key, entry] of this.sessions) {
      if (this.sessions.size <= MAX_SESSIONS) return;
      if (entry.users > 0) continue;
      this.sessions.delete(key);
      await (await entry.session.catch(() => undefined))?.release();
    }
  }

  /**
   * Rows for the given positions of two [length, vocab] logits matrices.
   * `checkCancelled` is called between chunks and may throw.
   */
  async rows(
    teacher: LogitsData,
    student: LogitsData,
    type: LogitsType,
    vocab: number,
    sources: RowSource[],
    o: MetricOptions,
    decode: (id: number) => string,
    checkCancelled: () => void = () => {},
  ): Promise<TokenRow[]> {
    const k = Math.min(vocab, Math.max(o.topK, 32));
    const { session, done } = await this.acquire(type, o, k, vocab);
    try {
      const rows: TokenRow[] = [];
      const ortType = type === 'float64' ? 'float64' : type;
      for (let c = 0; c < sources.length; c += CHUNK) {
        checkCancelled();
        const part = sources.slice(c, c + CHUNK);
        // positions in one chunk are usually consecutive: pass a view, else gather the rows
        const first = part[0].position;
        const consecutive = part.every((s, i) => s.position === first + i);
        const pick = (data: LogitsData) => {
          if (consecutive) return data.subarray(first * vocab, (first + part.length) * vocab);
          const out = new (data.constructor as any)(part.length * vocab) as LogitsData;
          part.forEach((s, i) =>
            out.set(data.subarray(s.position * vocab, (s.position + 1) * vocab), i * vocab),
          );
          return out;
        };
        const feeds = {
          teacher_logits: new ort.Tensor(ortType, pick(teacher), [part.length, vocab]),
          student_logits: new ort.Tensor(ortType, pick(student), [part.length, vocab]),
          targets: new ort.Tensor(
            'int64',
            BigInt64Array.from(part, (s) => BigInt(s.target)),
            [part.length],
          ),
        };
        const out = await session.run(feeds);
        const f = (name: string) => out[name].data as Float64Array;
        const n = (name: string) => out[name].data as BigInt64Array;
        const int = (name: string) => out[name].data as Int32Array;
        // the AKL boundary bucket's tokens: m per row
        const m = Math.min(vocab, AKL_MEMBERS + 1);
        const [memberU, memberP, memberDiff] = [f('akl_member_u'), f('akl_member_p'), f('akl_member_diff')];
        part.forEach((s, i) => {
          const top = (vals: Float64Array, idx: BigInt64Array) =>
            Array.from({ length: k }, (_, j) => ({ lp: vals[i * k + j], id: Number(idx[i * k + j]) }));
          const reductions: PositionReductions = {
            entT: f('ent_t')[i],
            entS: f('ent_s')[i],
            crossPQ: f('cross_pq')[i],
            crossQP: f('cross_qp')[i],
            sumSLogS: f('sum_slogs')[i],
            gjsdP: f('gjsd_p')[i],
            gjsdQ: f('gjsd_q')[i],
            sklP: f('skl_p')[i],
            srklQ: f('srkl_q')[i],
            l1: f('l1')[i],
            logpY: f('logp_y')[i],
            logqY: f('logq_y')[i],
            logNonTargetT: f('lognt_t')[i],
            logNonTargetS: f('lognt_s')[i],
            nckd: f('nckd')[i],
            nllT: f('nll_t')[i],
            nllS: f('nll_s')[i],
            rankT: int('rank_t')[i],
            rankS: int('rank_s')[i],
            topT: top(f('top_t_val'), n('top_t_idx')).map((e) => ({ logp: e.lp, id: e.id })),
            topS: top(f('top_s_val'), n('top_s_idx')).map((e) => ({ logq: e.lp, id: e.id })),
            aklHead: {
              found: int('akl_found')[i] === 1,
              massBefore: f('akl_mass_before')[i],
              diffBefore: f('akl_diff_before')[i],
              members: Array.from({ length: m }, (_, j) => ({
                u: memberU[i * m + j],
                p: memberP[i * m + j],
                diff: memberDiff[i * m + j],
              })),
            },
          };
          rows.push(
            rowFromReductions(reductions, o, {
              ...s,
              decode,
              aklFallback: () => {
                this.fullRowAklSplits++;
                return aklWeightsFullRow(
                  softmaxRow(teacher, type, s.position, vocab, o.temperature),
                  softmaxRow(student, type, s.position, vocab, o.temperature),
                  o.mu,
                );
              },
            }),
          );
        });
      }
      return rows;
    } finally {
      await done();
    }
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const e of all) await (await e.session.catch(() => undefined))?.release();
  }
}

/** One row's softmax at temperature T in float64. */
export function softmaxRow(
  data: LogitsData,
  type: LogitsType,
  position: number,
  vocab: number,
  temperature: number,
): Float64Array {
  const raw = data.subarray(position * vocab, (position + 1) * vocab);
  const z = type === 'float16' ? halfToFloat32(raw as Uint16Array) : raw;
  const out = new Float64Array(vocab);
  const invT = 1 / temperature;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (z[i] > max) max = z[i];
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += out[i] = Math.exp((z[i] - max) * invT);
  const inv = 1 / sum;
  for (let i = 0; i < vocab; i++) out[i] *= inv;
  return out;
}
