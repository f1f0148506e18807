/**
 * llama2.c checkpoints (legacy v0 float32 format) and tokenizers, and their conversion to a
 * Hugging Face Llama folder (config.json, model.safetensors, tokenizer.json) that every
 * other command loads like any other checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../core/errors';
import { writeSafetensors } from './safetensors';
import { writeFolderAtomically } from './atomicFolder';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

export interface Llama2cWeights {
  config: Llama2cConfig;
  tokenEmbedding: Float32Array; // (vocab, dim)
  rmsAtt: Float32Array[]; // per layer (dim)
  wq: Float32Array[]; // (dim, dim) (out, in)
  wk: Float32Array[]; // (kvDim, dim)
  wv: Float32Array[];
  wo: Float32Array[];
  rmsFfn: Float32Array[];
  w1: Float32Array[]; // (hidden, dim)
  w2: Float32Array[]; // (dim, hidden)
  w3: Float32Array[];
  rmsFinal: Float32Array;
  classifier: Float32Array; // (vocab, dim)
}

export function readLlama2cCheckpoint(file: string): Llama2cWeights {
  const buf = readOrExplain(file, 'checkpoint');
  if (buf.length < 28) throw new InputError(`${file} is too short to be a llama2.c checkpoint (${buf.length} bytes)`);
  const h = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(i * 4));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h;
  const config: Llama2cConfig = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), seqLen, sharedClassifier: rawVocab > 0 };
  if (!(dim > 0 && hiddenDim > 0 && nLayers > 0 && nHeads > 0 && nKvHeads > 0 && dim % nHeads === 0 && nHeads % nKvHeads === 0 && seqLen > 0 && config.vocabSize > 0)) {
    throw new InputError(`${file} does not start with a llama2.c header (read ${h.join(', ')})`);
  }
  const headSize = dim / nHeads;
  const kvDim = (dim * nKvHeads) / nHeads;
  const V = config.vocabSize;
  const L = nLayers;
  const floats =
    V * dim + L * dim + L * dim * dim + 2 * L * kvDim * dim + L * dim * dim + L * dim + 3 * L * hiddenDim * dim + dim + seqLen * headSize + (config.sharedClassifier ? 0 : V * dim);
  const expected = 28 + floats * 4;
  if (buf.length !== expected) {
    throw new InputError(`${file}: the header describes a model of ${expected} bytes but the file has ${buf.length}; the checkpoint is truncated or not in the legacy llama2.c format`);
  }
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset + 28, buf.byteOffset + buf.length));
  let at = 0;
  const take = (n: number) => all.subarray(at, (at += n));
  const perLayer = (n: number) => Array.from({ length: L }, () => take(n));
  const tokenEmbedding = take(V * dim);
  const rmsAtt = perLayer(dim);
  const wq = perLayer(dim * dim);
  const wk = perLayer(kvDim * dim);
  const wv = perLayer(kvDim * dim);
  const wo = perLayer(dim * dim);
  const rmsFfn = perLayer(dim);
  const w1 = perLayer(hiddenDim * dim);
  const w2 = perLayer(dim * hiddenDim);
  const w3 = perLayer(hiddenDim * dim);
  const rmsFinal = take(dim);
  take(seqLen * headSize); // freq_cis_real and _imag (seqLen × headSize/2 each): RoPE is recomputed
  const classifier = config.sharedClassifier ? tokenEmbedding : take(V * dim);
  return { config, tokenEmbedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, classifier };
}

export interface Llama2cTokenizer {
  maxTokenLength: number;
  pieces: Uint8Array[]; // raw bytes of each piece (spaces are real spaces)
  scores: Float32Array;
}

export function readLlama2cTokenizer(file: string, vocabSize?: number): Llama2cTokenizer {
  const buf = readOrExplain(file, 'tokenizer');
  const bad = (why: string) => new InputError(`${file} is not a llama2.c tokenizer (${why})`);
  if (buf.length < 4) throw bad('too short');
  const maxTokenLength = buf.readInt32LE(0);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let at = 4;
  while (at < buf.length && (vocabSize === undefined || pieces.length < vocabSize)) {
    if (at + 8 > buf.length) throw bad(`truncated at piece ${pieces.length}`);
    scores.push(buf.readFloatLE(at));
    const len = buf.readInt32LE(at + 4);
    at += 8;
    if (len < 0 || len > maxTokenLength || at + len > buf.length) throw bad(`piece ${pieces.length} has length ${len}`);
    pieces.push(new Uint8Array(buf.subarray(at, at + len)));
    at += len;
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) throw bad(`it has ${pieces.length} pieces but the checkpoint's vocabulary is ${vocabSize}`);
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}

function readOrExplain(file: string, what: string): Buffer {
  if (!fs.existsSync(file)) throw new InputError(`${what} file ${file} does not exist`);
  return fs.readFileSync(file);
}

/**
 * The Hugging Face tokenizer.json for a llama2.c (SentencePiece BPE) vocabulary.
 * Merges are every split of a piece into two pieces, ranked by the merged piece's score,
 * which reproduces llama2.c's "merge the best-scoring adjacent pair" loop.
 */
export function llama2cTokenizerJson(tok: Llama2cTokenizer): object {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const names = tok.pieces.map((bytes, id) => {
    if (id === 0) return '<unk>';
    if (id === 1) return '<s>';
    if (id === 2) return '</s>';
    const text = decoder.decode(bytes);
    if (/^<0x[0-9A-F]{2}>$/.test(text)) return text;
    return text.replace(/ /g, '\u2581');
  });
  const vocab: Record<string, number> = {};
  names.forEach((name, id) => {
    if (!(name in vocab)) vocab[name] = id;
  });
  const merges: { rank: number; left: number; right: number; pair: [string, string] }[] = [];
  names.forEach((name, id) => {
    if (id < 3 || /^<0x[0-9A-F]{2}>$/.test(name)) return;
    const chars = Array.from(name);
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join('');
      const right = chars.slice(i).join('');
      if (left in vocab && right in vocab) merges.push({ rank: tok.scores[id], left: vocab[left], right: vocab[right], pair: [left, right] });
    }
  });
  // highest score first; ties by the ids of the parts, as Hugging Face's converter orders them
  merges.sort((a, b) => b.rank - a.rank || a.left - b.left || a.right - b.right);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.pair),
    },
  };
}

/** Reorders q/k rows from llama2.c's adjacent rotary pairs to Hugging Face's half split. */
export function permuteRotary(w: Float32Array, nHeads: number, rowsPerHead: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = rowsPerHead / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (const part of [0, 1]) {
        const src = (h * rowsPerHead + 2 * i + part) * cols;
        const dst = (h * rowsPerHead + part * half + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

export interface ConvertOptions {
  checkpoint: string;
  tokenizer: string;
  out: string;
  /** keep only the first N transformer layers */
  layers?: number;
}

/** Writes a Hugging Face LlamaForCausalLM folder; the folder appears only when complete. */
export function convertLlama2c(o: ConvertOptions): { config: Record<string, unknown> } {
  const w = readLlama2cCheckpoint(o.checkpoint);
  const c = w.config;
  const tok = readLlama2cTokenizer(o.tokenizer, c.vocabSize);
  const layers = o.layers ?? c.nLayers;
  if (!(Number.isInteger(layers) && layers >= 1 && layers <= c.nLayers)) {
    throw new RangeError(`--layers must be an integer from 1 to ${c.nLayers} (the checkpoint has ${c.nLayers} layers)`);
  }
  const headSize = c.dim / c.nHeads;
  const kvDim = headSize * c.nKvHeads;
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
    'model.embed_tokens.weight': { shape: [c.vocabSize, c.dim], data: w.tokenEmbedding },
    'model.norm.weight': { shape: [c.dim], data: w.rmsFinal },
  };
  if (!c.sharedClassifier) tensors['lm_head.weight'] = { shape: [c.vocabSize, c.dim], data: w.classifier };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    tensors[p + 'input_layernorm.weight'] = { shape: [c.dim], data: w.rmsAtt[l] };
    tensors[p + 'post_attention_layernorm.weight'] = { shape: [c.dim], data: w.rmsFfn[l] };
    tensors[p + 'self_attn.q_proj.weight'] = { shape: [c.dim, c.dim], data: permuteRotary(w.wq[l], c.nHeads, headSize, c.dim) };
    tensors[p + 'self_attn.k_proj.weight'] = { shape: [kvDim, c.dim], data: permuteRotary(w.wk[l], c.nKvHeads, headSize, c.dim) };
    tensors[p + 'self_attn.v_proj.weight'] = { shape: [kvDim, c.dim], data: w.wv[l] };
    tensors[p + 'self_attn.o_proj.weight'] = { shape: [c.dim, c.dim], data: w.wo[l] };
    tensors[p + 'mlp.gate_proj.weight'] = { shape: [c.hiddenDim, c.dim], data: w.w1[l] };
    tensors[p + 'mlp.down_proj.weight'] = { shape: [c.dim, c.hiddenDim], data: w.w2[l] };
    tensors[p + 'mlp.up_proj.weight'] = { shape: [c.hiddenDim, c.dim], data: w.w3[l] };
  }
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: layers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    hidden_act: 'silu',
    tie_word_embeddings: c.sharedClassifier,
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
  writeFolderAtomically(o.out, (dir) => {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(llama2cTokenizerJson(tok)));
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false, model_max_length: c.seqLen, clean_up_tokenization_spaces: false, legacy: true }, null, 2),
    );
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }, null, 2));
  });
  return { config };
}
