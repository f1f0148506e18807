/**
 * The layer view's outputs, added to a family's graph (inspection only): every hidden state in
 * the Hugging Face convention (index 0 the embedding output, index l the output of layer l,
 * the last one after the final norm), each read through the model's own final norm and head
 * (the logit lens), reduced per row in the graph so that no [layers, N, V] tensor leaves it:
 *
 *   lens_l      = log_softmax(head(norm(h_l)))       (l < L; the last entry is the model's own logits)
 *   lens_kl     reference 'input': KL(r ‖ lens_l) = Σ_v r(v)·(log r(v) − lens_l(v)),
 *                 r = softmax(reference_logits)      (a student against the teacher's final)
 *               reference 'self':  KL(lens_l ‖ f) = Σ_v lens_l(v)·(log lens_l(v) − log f(v)),
 *                 f = the model's own final distribution (a teacher against itself)
 *   lens_argmax argmax_v lens_l(v)
 *   layer_gram  X_l·X_lᵀ with X_l = h_l − mean over the rows of h_l: the centred Gram matrix that
 *               linear CKA compares across models of any widths
 *   layer_hidden the states themselves (per-token cosine between models of equal widths)
 *
 * Everything after the head is float64, as the metrics graph (docs/metrics.md, "Numerics").
 */
import type { GraphBuilder } from '../../onnx/graphBuilder';

/** 'input': the lens against reference_logits; 'self': against the model's own; 'states': the hidden states only (feature distillation's teacher) */
export type LayerReference = 'input' | 'self' | 'states';

export const LAYER_OUTPUTS = ['layer_hidden', 'layer_gram', 'lens_kl', 'lens_argmax'] as const;

/**
 * `states`: the L + 1 hidden states [N, D]; `lens(l)`: the logits [N, V] of state l through
 * the final norm and the head (for the last state: the model's logits, already normed).
 */
export function addLayerViewOutputs(
  g: GraphBuilder,
  states: string[],
  lens: (l: number) => string,
  vocab: number,
  width: number,
  reference: LayerReference,
): void {
  const double = (x: string) => g.op1('Cast', [x], { to: 11 });
  const stack = (xs: string[]) =>
    xs.length === 1
      ? g.op1('Unsqueeze', [xs[0], g.ints([0])])
      : g.op1(
          'Concat',
          xs.map((x) => g.op1('Unsqueeze', [x, g.ints([0])])),
          { axis: 0 },
        );
  const lastAxis = g.ints([-1]);
  const klRows = (logA: string, logB: string) =>
    g.op1('ReduceSum', [g.op1('Mul', [g.op1('Exp', [logA]), g.op1('Sub', [logA, logB])]), lastAxis], {
      keepdims: 0,
    });

  const L = states.length - 1;
  if (reference === 'states') {
    g.rename(g.op1('Identity', [stack(states)]), 'layer_hidden');
    g.output('layer_hidden', 'float32', [L + 1, 'rows', width]);
    return;
  }
  const lensLogits = states.map((_, l) => lens(l));
  const lensLog = lensLogits.map((z) => g.op1('LogSoftmax', [double(z)], { axis: -1 }));
  let referenceLog: string;
  if (reference === 'input') {
    const r = g.input('reference_logits', 'float32', ['batch', 'length', vocab]);
    referenceLog = g.op1('LogSoftmax', [double(g.op1('Reshape', [r, g.ints([-1, vocab])]))], { axis: -1 });
  } else referenceLog = lensLog[L];
  const kls = lensLog.map((ll) => (reference === 'input' ? klRows(referenceLog, ll) : klRows(ll, referenceLog)));
  g.rename(stack(kls), 'lens_kl');
  g.output('lens_kl', 'float64', [L + 1, 'rows']);
  g.rename(stack(lensLogits.map((z) => g.op1('ArgMax', [z], { axis: -1, keepdims: 0 }))), 'lens_argmax');
  g.output('lens_argmax', 'int64', [L + 1, 'rows']);

  const hidden = stack(states); // [L + 1, N, D]
  g.rename(g.op1('Identity', [hidden]), 'layer_hidden');
  g.output('layer_hidden', 'float32', [L + 1, 'rows', width]);
  const h64 = double(hidden);
  const centred = g.op1('Sub', [h64, g.op1('ReduceMean', [h64, g.ints([1])], { keepdims: 1 })]);
  g.rename(g.op1('MatMul', [centred, g.op1('Transpose', [centred], { perm: [0, 2, 1] })]), 'layer_gram');
  g.output('layer_gram', 'float64', [L + 1, 'rows', 'rows']);
}
