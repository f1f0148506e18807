/**
 * Feature (hidden-state) distillation as an ONNX subgraph, as DistillKit computes it: for
 * each mapped pair k of a student state s_k and a teacher state t_k (Hugging Face's
 * hidden_states indices), a bias-free linear projection W_k [D_T, D_S] of the student's state,
 * trained with the student (used even when the widths match), then over the M positions with
 * the logit loss's mask m:
 *
 *   P_k       = H^S_{s_k} · W_kᵀ                                        [M, D_T]
 *   mse_k     = Σ_r m_r Σ_d (P_k[r, d] − H^T_{t_k}[r, d])² / (Σ_r m_r · D_T)
 *   cosine_k  = Σ_r m_r (1 − cos(P_k[r], H^T_{t_k}[r])) / Σ_r m_r,
 *               cos(a, b) = a·b / √(|a|²·|b|² + ε²), ε = 1e-8
 *   feature   = mean_k of mse_k (or cosine_k)
 *
 * The teacher's states are inputs (no gradient); the gradient reaches the student's weights
 * through H^S and the projections through W_k.
 */
import type { GraphBuilder } from '../onnx/graphBuilder';
import type { Rng } from '../core/random';
import { UsageError } from '../core/errors';
import type { FeatureSettings } from '../shared/protocol';
import { writeSafetensors } from '../models/safetensors';
import type { Param } from './trainableWeights';
import { mappedTeacherEntry } from '../core/layerMapping';

export type FeatureLossKind = 'mse' | 'cosine';

export interface FeatureLossSpec {
  kind: FeatureLossKind;
  /** [student state, teacher state] per pair, Hugging Face hidden_states indices */
  pairs: [number, number][];
  teacherWidth: number;
  /** the projections' learning rate as a multiple of the run's */
  projectionLrScale: number;
}

/**
 * The projections learn at 30 × the run's learning rate unless told otherwise. Measured on the
 * stories260K pair (README, "Feature distillation"): at 1 × (DistillKit's single parameter group)
 * the student's states chase a random projection of the teacher's, so the mapped layers' CKA
 * falls below a run without the feature loss; at 30 × the projection fits first and CKA rises.
 */
export const DEFAULT_PROJECTION_LR_SCALE = 30;

export const featureInput = (k: number) => `teacher_hidden_${k}`;
export const projectionName = (k: number) => `projection_${k}`;

/**
 * The projections' parameters, Xavier (Glorot) uniform from `rng`: U(−a, a) with
 * a = √(6 / (D_S + D_T)), as torch.nn.init.xavier_uniform_ on an nn.Linear(D_S, D_T).
 */
export function projectionParams(spec: FeatureLossSpec, studentWidth: number, rng: Rng): Param[] {
  const D = spec.teacherWidth;
  const bound = Math.sqrt(6 / (studentWidth + D));
  return spec.pairs.map((_, k) => ({
    name: projectionName(k),
    shape: [D, studentWidth],
    init: Float32Array.from({ length: D * studentWidth }, () => (2 * rng() - 1) * bound),
    decay: true,
    weight: projectionName(k),
    role: 'projection' as const,
    lrScale: spec.projectionLrScale,
  }));
}

/** The mean feature loss over the pairs; `states` are the student's [M, D_S] states, `mask` [M]. */
export function buildFeatureLoss(
  g: GraphBuilder,
  spec: FeatureLossSpec,
  states: string[],
  projections: Param[],
  mask: string,
  rows: number,
): string {
  const op = (t: string, i: string[], a: Record<string, any> = {}) => g.op1(t, i, a);
  const s = (v: number) => g.scalar(v);
  const D = spec.teacherWidth;
  const tokens = op('Max', [op('ReduceSum', [mask, g.ints([0])], { keepdims: 0 }), s(1)]);
  const maskedSum = (perRow: string) =>
    op('ReduceSum', [op('Mul', [perRow, mask]), g.ints([0])], { keepdims: 0 });
  const rowSum = (x: string) => op('ReduceSum', [x, g.ints([-1])], { keepdims: 0 }); // [M, D] → [M]
  const terms = spec.pairs.map(([student], k) => {
    const target = g.input(featureInput(k), 'float32', [rows, D]);
    const projection = g.input(projections[k].name, 'float32', projections[k].shape);
    const projected = op('Gemm', [states[student], projection], { transB: 1 }); // [M, D_T]
    if (spec.kind === 'mse') {
      const diff = op('Sub', [projected, target]);
      return op('Div', [maskedSum(rowSum(op('Mul', [diff, diff]))), op('Mul', [tokens, s(D)])]);
    }
    const dot = rowSum(op('Mul', [projected, target]));
    const norms = op('Mul', [rowSum(op('Mul', [projected, projected])), rowSum(op('Mul', [target, target]))]);
    const cos = op('Div', [dot, op('Sqrt', [op('Add', [norms, s(1e-16)])])]);
    return op('Div', [maskedSum(op('Sub', [s(1), cos])), tokens]);
  });
  const total = terms.reduce((a, b) => op('Add', [a, b]));
  return terms.length > 1 ? op('Div', [total, s(terms.length)]) : total;
}

/** Hidden layers and width of a checkpoint's config (Llama, Gemma: num_hidden_layers / hidden_size; GPT-2: n_layer / n_embd). */
export function depthAndWidth(config: Record<string, any>): { layers: number; width: number } {
  return {
    layers: Number(config.num_hidden_layers ?? config.n_layer),
    width: Number(config.hidden_size ?? config.n_embd),
  };
}

/** 'auto': student state j ↔ teacher state round(j·L_T/L_S) for j = 1 … L_S (the embeddings are left out). */
export function autoPairs(studentLayers: number, teacherLayers: number): [number, number][] {
  return Array.from({ length: studentLayers }, (_, i) => [
    i + 1,
    mappedTeacherEntry(i + 1, studentLayers, teacherLayers),
  ]);
}

/** The loss's pairs and widths for these models, with the pairs checked against their depths. */
export function featureSpec(
  settings: FeatureSettings,
  studentConfig: Record<string, any>,
  teacherConfig: Record<string, any>,
): FeatureLossSpec {
  const s = depthAndWidth(studentConfig);
  const t = depthAndWidth(teacherConfig);
  const pairs = settings.layers === 'auto' ? autoPairs(s.layers, t.layers) : settings.layers;
  const bad = pairs.filter(([a, b]) => !(a >= 0 && a <= s.layers && b >= 0 && b <= t.layers));
  if (bad.length > 0)
    throw new UsageError(
      `--feature-layers ${bad.map(([a, b]) => `${a}:${b}`).join(',')}: the student's hidden states are 0…${s.layers} and the teacher's 0…${t.layers} (0 the embeddings, the last after the final norm)`,
    );
  const projectionLrScale = settings.projectionLrScale ?? DEFAULT_PROJECTION_LR_SCALE;
  if (!(projectionLrScale > 0 && Number.isFinite(projectionLrScale)))
    throw new UsageError(`--projection-lr-scale ${projectionLrScale}: give a positive number`);
  return { kind: settings.loss, pairs, teacherWidth: t.width, projectionLrScale };
}

/** projections.safetensors: projection_k [D_T, D_S] per pair, and the pairs in its metadata. */
export function writeProjections(
  file: string,
  params: Param[],
  values: Float32Array[],
  spec: FeatureLossSpec,
): void {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  params.forEach((p, i) => {
    if (p.role === 'projection') tensors[p.name] = { shape: p.shape, data: values[i] };
  });
  writeSafetensors(file, tensors, {
    format: 'pt',
    pairs: spec.pairs.map(([a, b]) => `${a}:${b}`).join(','),
    loss: spec.kind,
  });
}
