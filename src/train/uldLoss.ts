/**
 * The Universal Logit Distillation loss (Boizard et al. 2024) for a teacher and a student whose
 * vocabularies differ, as an ONNX subgraph over the student's logits rows [M, V_S]. The
 * comparison points are the aligned groups of core/spanAlignment.ts: the tokens of both
 * tokenizations between two places where both start a token. For a group g of student tokens
 * [a, b) (token i predicted by row i − 1), GOLD's "bayesian" merge (the chain rule):
 *
 *   row_g(v)  = q(v | < b−1) · Π_{a ≤ i < b−1} q(s_i | < i)              unnormalised, [V_S]
 *   uld_g     = Σ_r | sort↓(row_g)_r − sort↓(teacherRow_g)_r |           shorter side zero-padded
 *   loss      = w_uld · (Σ_g mask_g · uld_g) / Σ_g mask_g  +  w_ce · CE(student, text)
 *
 * The teacher's side is data (no gradient): its merged rows, sorted and cut or zero-padded to
 * V_S entries (`uld_teacher`), and the mass it ranks beyond V_S (`uld_tail`), computed in
 * TypeScript (acrossTokenizers.ts). The sort of the student's row is a permutation chosen by
 * TopK; the gradient flows through the values, as autograd through PyTorch's sort does:
 * rank_v = the position of v in the student's sorted row, and
 *
 *   uld_g = Σ_v | row_g(v) − teacherSorted_g(rank_v) | + tail_g.
 */
import type { GraphBuilder } from '../onnx/graphBuilder';
import { buildEvalSums, buildLoss } from './losses';
import type { UldSettings } from '../shared/protocol';

export interface UldInputs {
  /** student logits rows [M, V] (the trainable path) */
  student: string;
  /** target ids [M, 1] int64 (the text's next tokens, for the CE term and the chain rule) */
  targets: string;
  /** 1 for a valid target [M] */
  mask: string;
  rows: number;
  vocab: number;
  /** windows per batch and their length: each window's groups sit in its own L slots (padding: uld_mask 0) */
  batch: number;
  seqLen: number;
}

/** The graph inputs of the groups: acrossTokenizers.ts's uldGroupFeeds says what each holds. */
export const ULD_INPUTS = {
  last: 'uld_last',
  earlier: 'uld_earlier',
  teacher: 'uld_teacher',
  tail: 'uld_tail',
  mask: 'uld_mask',
} as const;

/** The per-group distance uld_g [G] and the student's log-probability of each group's tokens [G]. */
function groupTerms(g: GraphBuilder, x: UldInputs): { distance: string; spanLogp: string; mask: string } {
  const { batch: B, seqLen: L, rows: M, vocab: V } = x;
  const G = B * L;
  const last = g.input(ULD_INPUTS.last, 'int64', [G]);
  // per window, which of its rows predict a group's earlier tokens: [B, L groups, L rows]
  const earlier = g.input(ULD_INPUTS.earlier, 'float32', [B, L, L]);
  const teacherSorted = g.input(ULD_INPUTS.teacher, 'float32', [G, V]);
  const tail = g.input(ULD_INPUTS.tail, 'float32', [G]);
  const mask = g.input(ULD_INPUTS.mask, 'float32', [G]);

  const logq = g.op1('LogSoftmax', [x.student], { axis: -1 }); // [M, V]
  const targetLogq = g.op1('GatherElements', [logq, x.targets], { axis: 1 }); // [M, 1]: log q(s_{i+1} | ≤ i)
  // [G, 1]: Σ log q of the earlier tokens, window by window
  const earlierLogp = g.op1('Reshape', [
    g.op1('MatMul', [earlier, g.op1('Reshape', [targetLogq, g.ints([B, L, 1])])]),
    g.ints([G, 1]),
  ]);
  const lastRowLogq = g.op1('Gather', [logq, last], { axis: 0 }); // [G, V]
  const mergedRow = g.op1('Exp', [g.op1('Add', [lastRowLogq, earlierLogp])]); // [G, V]

  // rank of each vocabulary entry in the row sorted descending (the inverse of TopK's order)
  const [, order] = g.op('TopK', [lastRowLogq, g.ints([V])], { axis: -1, largest: 1, sorted: 1 }, 2);
  const positions = g.op1('Expand', [
    g.op1('Range', [g.scalar(0, 'int64'), g.scalar(V, 'int64'), g.scalar(1, 'int64')]),
    g.ints([G, V]),
  ]);
  const rank = g.op1('ScatterElements', [positions, order, positions], { axis: 1 });
  const teacherAtRank = g.op1('GatherElements', [teacherSorted, rank], { axis: 1 }); // [G, V]

  const l1 = g.op1('ReduceSum', [g.op1('Abs', [g.op1('Sub', [mergedRow, teacherAtRank])]), g.ints([1])], {
    keepdims: 0,
  });
  const distance = g.op1('Add', [l1, tail]); // [G]
  // log q of the whole group: its earlier tokens and its last
  const lastTargetLogq = g.op1('Gather', [g.op1('Reshape', [targetLogq, g.ints([M])]), last], { axis: 0 });
  const spanLogp = g.op1('Add', [g.op1('Reshape', [earlierLogp, g.ints([G])]), lastTargetLogq]);
  return { distance, spanLogp, mask };
}

/** The training loss: w_uld · mean over groups of uld_g + w_ce · the mean CE over valid targets. */
export function buildUldLoss(g: GraphBuilder, x: UldInputs, w: UldSettings): string {
  const { distance, mask } = groupTerms(g, x);
  const maskedSum = (v: string) =>
    g.op1('ReduceSum', [g.op1('Mul', [v, mask]), g.ints([0])], { keepdims: 0 });
  const groupCount = g.op1('Max', [g.op1('ReduceSum', [mask, g.ints([0])], { keepdims: 0 }), g.scalar(1)]);
  const uld = g.op1('Div', [maskedSum(distance), groupCount]);
  const weighted = g.op1('Mul', [uld, g.scalar(w.weight)]);
  if (w.ceWeight === 0) return weighted;
  const ce = buildLoss(
    g,
    { student: x.student, teacher: '', targets: x.targets, mask: x.mask, rows: x.rows, vocab: x.vocab },
    { key: 'ce', temperature: 1 },
  );
  return g.op1('Add', [weighted, g.op1('Mul', [ce, g.scalar(w.ceWeight)])]);
}

/**
 * Held-out sums: Σ mask_g·uld_g and Σ mask_g over the groups, the student's log P of each
 * group's text ([G], for the exact span comparison), and the student's Σ nll and count.
 */
export function buildUldEvalSums(g: GraphBuilder, x: UldInputs): Record<string, string> {
  const { distance, spanLogp, mask } = groupTerms(g, x);
  const base = buildEvalSums(g, {
    student: x.student,
    teacher: '',
    targets: x.targets,
    mask: x.mask,
    rows: x.rows,
    vocab: x.vocab,
  });
  return {
    nll: base.nll,
    count: base.count,
    uld: g.op1('ReduceSum', [g.op1('Mul', [distance, mask]), g.ints([0])], { keepdims: 0 }),
    groups: g.op1('ReduceSum', [mask, g.ints([0])], { keepdims: 0 }),
    span_logp: spanLogp,
  };
}
