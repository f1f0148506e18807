/**
 * The layer view's outputs, added to a family's graph (inspection only): every hidden state in
 * the Hugging Face convention (index 0 the embedding output, index l the output of layer l,
 * the last one after the final norm), each read through the model's own final norm and head
 * (the logit lens), reduced per row in the graph so that no [layers, N, V] tensor leaves it:
 *
 *   lens_l      = log_softmax(head(norm(h_l)))       (l < L; the last entry is the model's own logits)
 *   lens_kl     reference 'input': KL(r ‖ lens_l) = Σ_v r(v)·log r(v) − Σ_v r(v)·lens_l(v),
 *                 r = softmax(reference_logits)      (a student against the teacher's final)
 *               reference 'self':  KL(lens_l ‖ f) = Σ_v q_l(v)·(lens_l(v) − log f(v)),
 *                 q_l = softmax of the lens's logits, f = the model's own final distribution
 *                 (a teacher against itself)
 *   lens_argmax argmax_v lens_l(v)
 *   layer_gram  X_l·X_lᵀ with X_l = h_l − mean over the rows of h_l: the centred Gram matrix that
 *               linear CKA compares across models of any widths
 *   layer_hidden the states themselves (per-token cosine between models of equal widths)
 *
 * The lens is float32 after the head (a float64 lens cost 6× a plain inspect on GPT-2 small,
 * float32 2.5×; its KL agrees with the float64 reference within 1e-4), its outputs float64;
 * the Gram matrices are float64. Over [N, V] it uses ONNX Runtime's fused LogSoftmax and
 * Softmax (about 25 ms each for 512 × 50257 on two cores) rather than ReduceLogSumExp (130 ms)
 * or Exp of a log-softmax (60 ms); the head's products are most of the cost (README).
 */
import type { GraphBuilder } from '../../onnx/graphBuilder';

/** 'input': the lens against reference_logits; 'self': against the model's own; 'states': the hidden states only (feature distillation's teacher) */
export type LayerReference = 'input' | 'self' | 'states';

/** The layer view's outputs ('states' graphs have layer_hidden only). */
export const LAYER_OUTPUTS = ['layer_hidden', 'layer_gram', 'lens_kl', 'lens_argmax'] as const;

/**
 * `states`: the L + 1 hidden states [N, D]; `lens(x)`: the logits [N, V] of a state through the
 * final norm and the head; `final`: the model's logits (the last state's, already normed).
 */
export function addLayerViewOutputs(
  g: GraphBuilder,
  states: string[],
  lens: (state: string) => string,
  final: string,
  vocab: number,
  width: number,
  mode: LayerReference,
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
  const rowSum = (x: string) => g.op1('ReduceSum', [x, lastAxis], { keepdims: 0 });

  const L = states.length - 1;
  if (mode === 'states') {
    g.rename(g.op1('Identity', [stack(states)]), 'layer_hidden');
    g.output('layer_hidden', 'float32', [L + 1, 'rows', width]);
    return;
  }
  const finalLog = mode === 'self' ? g.op1('LogSoftmax', [final], { axis: -1 }) : '';
  let reference: { p: string; negEntropy: string } | undefined;
  if (mode === 'input') {
    const r = g.input('reference_logits', 'float32', ['rows', vocab]);
    const logR = g.op1('LogSoftmax', [r], { axis: -1 });
    const p = g.op1('Exp', [logR]);
    reference = { p, negEntropy: rowSum(g.op1('Mul', [p, logR])) };
  }
  const kls: string[] = [];
  const argmaxes: string[] = [];
  // each state's head waits for the previous state's KL (through a term that is always 0, even
  // for a NaN), so the states' [N, V] tensors are not all made at once; measured on GPT-2 small,
  // 512 tokens, the peak went only from 4.35 to 4.15 GB: ONNX Runtime still holds several (README)
  let after = '';
  for (let l = 0; l <= L; l++) {
    const input = after ? g.op1('Add', [states[l], after]) : states[l];
    const z = l === L ? final : lens(input);
    if (reference) {
      const logQ = g.op1('LogSoftmax', [z], { axis: -1 });
      kls.push(g.op1('Sub', [reference.negEntropy, rowSum(g.op1('Mul', [reference.p, logQ]))]));
    } else if (l < L) {
      const q = g.op1('Softmax', [z], { axis: -1 });
      const logQ = g.op1('LogSoftmax', [z], { axis: -1 });
      kls.push(rowSum(g.op1('Mul', [q, g.op1('Sub', [logQ, finalLog])])));
    }
    // the final state against itself: 0 (a row of zeros shaped [N], without another pass over V)
    else kls.push(g.op1('Mul', [g.op1('ReduceMax', [finalLog, lastAxis], { keepdims: 0 }), g.scalar(0)]));
    argmaxes.push(g.op1('ArgMax', [z], { axis: -1, keepdims: 0 }));
    const done = g.op1('Greater', [g.op1('ReduceSum', [kls[l], g.ints([0])], { keepdims: 0 }), g.scalar(-1)]);
    after = g.op1('Mul', [g.op1('Cast', [done], { to: 1 }), g.scalar(0)]);
  }
  g.rename(double(stack(kls)), 'lens_kl');
  g.output('lens_kl', 'float64', [L + 1, 'rows']);
  g.rename(stack(argmaxes), 'lens_argmax');
  g.output('lens_argmax', 'int64', [L + 1, 'rows']);

  const hidden = stack(states); // [L + 1, N, D]
  g.rename(g.op1('Identity', [hidden]), 'layer_hidden');
  g.output('layer_hidden', 'float32', [L + 1, 'rows', width]);
  const h64 = double(hidden);
  const centred = g.op1('Sub', [h64, g.op1('ReduceMean', [h64, g.ints([1])], { keepdims: 1 })]);
  g.rename(g.op1('MatMul', [centred, g.op1('Transpose', [centred], { perm: [0, 2, 1] })]), 'layer_gram');
  g.output('layer_gram', 'float64', [L + 1, 'rows', 'rows']);
}
