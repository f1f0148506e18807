/**
 * An independent float64 implementation of llama2.c's run.c (forward pass and tokenizer
 * encode), reading the .bin files directly. It shares no code with src/.
 */
import * as fs from 'node:fs';

export interface RefModel {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  w: Record<string, Float64Array>;
}

export function loadRefModel(file: string, keepLayers?: number): RefModel {
  const buf = fs.readFileSync(file);
  const h = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 28));
  const [dim, hidden, layers, heads, kvHeads, vocabRaw, seqLen] = Array.from(h);
  const vocab = Math.abs(vocabRaw);
  const f = new Float32Array(buf.buffer.slice(buf.byteOffset + 28, buf.byteOffset + buf.length));
  const kvDim = (dim * kvHeads) / heads;
  let at = 0;
  const take = (n: number) => Float64Array.from(f.subarray(at, (at += n)));
  const w: Record<string, Float64Array> = {};
  w.emb = take(vocab * dim);
  w.rmsAtt = take(layers * dim);
  w.wq = take(layers * dim * dim);
  w.wk = take(layers * kvDim * dim);
  w.wv = take(layers * kvDim * dim);
  w.wo = take(layers * dim * dim);
  w.rmsFfn = take(layers * dim);
  w.w1 = take(layers * hidden * dim);
  w.w2 = take(layers * dim * hidden);
  w.w3 = take(layers * hidden * dim);
  w.rmsFinal = take(dim);
  return { dim, hidden, layers: keepLayers ?? layers, heads, kvHeads, vocab, seqLen, w };
}

function rmsnorm(x: Float64Array, weight: Float64Array, off: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + 1e-5);
  return x.map((v, i) => v * inv * weight[off + i]);
}

/** out = W x with W (rows × cols) at offset off */
function matvec(W: Float64Array, off: number, x: Float64Array, rows: number): Float64Array {
  const cols = x.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += W[off + r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
}

/** Logits for every position of `tokens`, as run.c computes them one position at a time. */
export function referenceForward(m: RefModel, tokens: number[]): Float64Array[] {
  const { dim, hidden, heads, kvHeads } = m;
  const hs = dim / heads;
  const kvDim = hs * kvHeads;
  const kvMul = heads / kvHeads;
  const keyCache: Float64Array[][] = Array.from({ length: m.layers }, () => []);
  const valCache: Float64Array[][] = Array.from({ length: m.layers }, () => []);
  const out: Float64Array[] = [];
  tokens.forEach((token, pos) => {
    let x = Float64Array.from(m.w.emb.subarray(token * dim, (token + 1) * dim));
    for (let l = 0; l < m.layers; l++) {
      const xb = rmsnorm(x, m.w.rmsAtt, l * dim);
      const q = matvec(m.w.wq, l * dim * dim, xb, dim);
      const k = matvec(m.w.wk, l * kvDim * dim, xb, kvDim);
      const v = matvec(m.w.wv, l * kvDim * dim, xb, kvDim);
      // RoPE on adjacent pairs (2i, 2i+1) within each head, angle in float32 as run.c
      for (let i = 0; i < dim; i += 2) {
        const headDim = i % hs;
        const freq = Math.fround(1 / Math.fround(Math.pow(10000, headDim / hs)));
        const val = Math.fround(pos * freq);
        const fcr = Math.cos(val);
        const fci = Math.sin(val);
        const rotn = i < kvDim ? 2 : 1;
        for (let r = 0; r < rotn; r++) {
          const vec = r === 0 ? q : k;
          const v0 = vec[i];
          const v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      keyCache[l].push(k);
      valCache[l].push(v);
      const att = new Float64Array(dim);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / kvMul);
        const scores = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i] * keyCache[l][t][kvh * hs + i];
          scores[t] = s / Math.sqrt(hs);
        }
        const mx = Math.max(...scores);
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += scores[t] = Math.exp(scores[t] - mx);
        for (let t = 0; t <= pos; t++) {
          const a = scores[t] / sum;
          for (let i = 0; i < hs; i++) att[h * hs + i] += a * valCache[l][t][kvh * hs + i];
        }
      }
      const o = matvec(m.w.wo, l * dim * dim, att, dim);
      x = x.map((v, i) => v + o[i]);
      const xb2 = rmsnorm(x, m.w.rmsFfn, l * dim);
      const h1 = matvec(m.w.w1, l * hidden * dim, xb2, hidden);
      const h3 = matvec(m.w.w3, l * hidden * dim, xb2, hidden);
      const g = h1.map((v, i) => (v / (1 + Math.exp(-v))) * h3[i]);
      const down = matvec(m.w.w2, l * dim * hidden, g, dim);
      x = x.map((v, i) => v + down[i]);
    }
    out.push(matvec(m.w.emb, 0, rmsnorm(x, m.w.rmsFinal, 0), m.vocab));
  });
  return out;
}

export interface RefTokenizer {
  pieces: string[]; // as byte strings (latin1) so lookups compare raw bytes
  scores: number[];
}

export function loadRefTokenizer(file: string, vocab: number): RefTokenizer {
  const buf = fs.readFileSync(file);
  let at = 4;
  const pieces: string[] = [];
  const scores: number[] = [];
  for (let i = 0; i < vocab; i++) {
    scores.push(buf.readFloatLE(at));
    const len = buf.readInt32LE(at + 4);
    pieces.push(buf.subarray(at + 8, at + 8 + len).toString('latin1'));
    at += 8 + len;
  }
  return { pieces, scores };
}

/** run.c's encode(text, bos=1, eos=0). */
export function referenceEncode(t: RefTokenizer, text: string): number[] {
  const lookup = new Map<string, number>();
  t.pieces.forEach((p, i) => {
    if (!lookup.has(p)) lookup.set(p, i);
  });
  const tokens: number[] = [1];
  if (text.length > 0) tokens.push(lookup.get(' ')!);
  const bytes = Buffer.from(text, 'utf8');
  let i = 0;
  while (i < bytes.length) {
    let j = i + 1;
    while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
    const ch = bytes.subarray(i, j).toString('latin1');
    const id = lookup.get(ch);
    if (id !== undefined) tokens.push(id);
    else for (let k = i; k < j; k++) tokens.push(bytes[k] + 3);
    i = j;
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let k = 0; k < tokens.length - 1; k++) {
      const merged = t.pieces[tokens[k]] + t.pieces[tokens[k + 1]];
      const id = lookup.get(merged);
      if (id !== undefined && t.scores[id] > bestScore) {
        bestScore = t.scores[id];
        bestId = id;
        bestIdx = k;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}
