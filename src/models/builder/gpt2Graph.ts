/** GPT2LMHeadModel as an ONNX graph. */
import { GraphBuilder } from '../../onnx/graphBuilder';
import type { ModelWeights } from './weights';
import { addLayerViewOutputs, type LayerReference } from './layerView';
import { LOGITS_ROWS, bufferCache, causalAttention, causalMask, geluTanh, inputDims, keyValueCache, layerNorm, linear, mergeHeads, positionRange, splitHeads } from './transformerOps';

export interface Gpt2Config {
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_positions: number;
  vocab_size: number;
  layer_norm_epsilon?: number;
  n_inner?: number | null;
}

/** Builds the graph input_ids [B, L] int64 → logits [B, L, V] float32 (with `kvCache`, past_key_values in and present out). */
export function buildGpt2Graph(c: Gpt2Config, w: ModelWeights, o: { kvCache?: 'buffers' | 'present'; layerView?: LayerReference; onStates?: (states: string[]) => void } = {}): GraphBuilder {
  const g = new GraphBuilder('gpt2');
  const D = c.n_embd;
  const H = c.n_head;
  const hd = D / H;
  const eps = c.layer_norm_epsilon ?? 1e-5;
  const ids = g.input('input_ids', 'int64', ['batch', 'length']);
  const cache = o.kvCache === 'present' ? keyValueCache(g, c.n_layer, H, hd) : undefined;
  const buffers = o.kvCache === 'buffers' ? bufferCache(g, H, hd) : undefined;
  const d = { ...inputDims(g, ids), past: cache?.pastLength ?? buffers?.pastLength };
  const wte = w.weight(g, 'wte.weight');
  const positions = positionRange(g, d);
  const tok = g.op1('Gather', [wte, ids], { axis: 0 }); // [B, L, D]
  const pos = g.op1('Gather', [w.weight(g, 'wpe.weight'), positions], { axis: 0 }); // [L, D]
  let x = g.op1('Reshape', [g.op1('Add', [tok, pos]), g.ints([-1, D])]); // [N, D]
  // the hidden states in the Hugging Face convention: the embeddings, each layer's output but the last, ln_f's
  const states = [x];
  const mask = buffers ? undefined : causalMask(g, d);
  for (let l = 0; l < c.n_layer; l++) {
    const p = `h.${l}.`;
    const h = layerNorm(g, x, w.weight(g, p + 'ln_1.weight'), w.weight(g, p + 'ln_1.bias'), eps);
    const qkv = linear(g, h, w.weight(g, p + 'attn.c_attn.weight'), w.weight(g, p + 'attn.c_attn.bias'), false);
    const [q, kNew, vNew] = g.op('Split', [qkv, g.ints([D, D, D])], { axis: -1 }, 3).map((t) => splitHeads(g, t, d, H, hd));
    const [k, v] = cache ? cache.extend(l, kNew, vNew) : [kNew, vNew];
    const heads = buffers ? buffers.attend(l, d, q, kNew, vNew, H, 1 / Math.sqrt(hd)) : causalAttention(g, q, k, v, mask!, hd);
    const attn = mergeHeads(g, heads, D);
    x = g.op1('Add', [x, linear(g, attn, w.weight(g, p + 'attn.c_proj.weight'), w.weight(g, p + 'attn.c_proj.bias'), false)]);
    const h2 = layerNorm(g, x, w.weight(g, p + 'ln_2.weight'), w.weight(g, p + 'ln_2.bias'), eps);
    const ff = geluTanh(g, linear(g, h2, w.weight(g, p + 'mlp.c_fc.weight'), w.weight(g, p + 'mlp.c_fc.bias'), false));
    x = g.op1('Add', [x, linear(g, ff, w.weight(g, p + 'mlp.c_proj.weight'), w.weight(g, p + 'mlp.c_proj.bias'), false)]);
    if (l < c.n_layer - 1) states.push(x);
  }
  const finalNorm = (t: string) => layerNorm(g, t, w.weight(g, 'ln_f.weight'), w.weight(g, 'ln_f.bias'), eps);
  x = finalNorm(x);
  states.push(x);
  o.onStates?.(states);
  const logits2d = linear(g, x, wte, undefined, true); // [N, V]
  if (o.layerView) addLayerViewOutputs(g, states, (x) => linear(g, finalNorm(x), wte, undefined, true), logits2d, c.vocab_size, D, o.layerView);
  g.rename(logits2d, LOGITS_ROWS);
  const outShape = g.op1('Concat', [d.batchLen, g.ints([c.vocab_size])], { axis: 0 });
  g.rename(g.op1('Reshape', [logits2d, outShape]), 'logits');
  g.output('logits', 'float32', ['batch', 'length', c.vocab_size]);
  return g;
}
