/**
 * One training step as one ONNX graph: the student's forward pass (the same graph builder
 * as inference, with trained weights as inputs), the distillation loss, every gradient by
 * reverse-mode differentiation, gradient clipping and the optimiser update. ONNX Runtime
 * runs all of it in one call; JavaScript only feeds the batch and keeps the returned state.
 *
 *   inputs:  input_ids [B, L], teacher_logits [B, L, V], targets [B·L, 1], mask [B·L],
 *            every trained parameter, its optimiser state, lr, bias corrections
 *   outputs: loss, grad_norm, the updated parameters and state
 */
import { GraphBuilder } from '../onnx/graphBuilder';
import { buildGpt2Graph, type Gpt2Config } from '../models/builder/gpt2Graph';
import { buildLlamaGraph, type LlamaConfig } from '../models/builder/llamaGraph';
import { buildGemmaGraph, type GemmaConfig } from '../models/builder/gemmaGraph';
import { layerWindows } from '../models/checkpointConfig';
import type { WeightSource } from '../models/builder/weights';
import { LOGITS_ROWS } from '../models/builder/transformerOps';
import type { Architecture } from '../models/checkpointConfig';
import { addGradients } from './autodiff';
import { GraphShapes } from './graphShapes';
import { buildEvalSums, buildLoss, buildPolicyLoss, type LossInputs, type PolicyLossOptions } from './losses';
import { seededRandom } from '../core/random';
import { buildFeatureLoss, depthAndWidth, projectionParams, type FeatureLossSpec } from './featureLoss';
import { TrainableWeights, type Param, type TrainMode } from './trainableWeights';
import { buildUldEvalSums, buildUldLoss, type UldInputs } from './uldLoss';
import type { LossOptions, OptimizerSpec, UldSettings } from '../shared/protocol';

export const DEFAULT_OPTIMIZER: OptimizerSpec = {
  kind: 'adamw',
  weightDecay: 0.01,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1,
};

export interface StepGraphSpec {
  architecture: Architecture;
  config: Record<string, any>;
  weights: WeightSource;
  mode: TrainMode;
  batch: number;
  seqLen: number;
  vocab: number;
  loss: LossOptions;
  optimizer: OptimizerSpec;
  /** step: the full update; gradients: loss and raw gradients (tests); eval: held-out sums */
  purpose: 'step' | 'gradients' | 'eval';
  seed: number;
  /** give the teacher as its top-k (plus the target) and one rest bucket instead of full logits */
  teacherTopK?: number;
  /** no teacher: training from scratch with the ce loss */
  noTeacher?: boolean;
  /**
   * The on-policy methods' policy-gradient loss instead of `loss`: extra inputs old_logp,
   * advantages [B·L] (and weights, and teacher_logits for MiniLLM's single-step term)
   */
  policy?: PolicyLossOptions;
  /**
   * Feature distillation: the teacher's mapped states as inputs teacher_hidden_k [B·L, D_T], the
   * projections as trained parameters, and loss = kd_weight·kd + feature_weight·feature with
   * both weights as scalar inputs (the stages); feature_loss and kd_loss come out too
   */
  feature?: FeatureLossSpec;
  /**
   * A teacher whose vocabulary differs: the ULD loss (uldLoss.ts) on aligned groups instead of
   * `loss`, with the groups' inputs (uld_*) in place of the teacher's logits
   */
  uld?: UldSettings;
  /** the evaluation graph over teacher top-k buckets (a served teacher) instead of full logits */
  evalOnBuckets?: boolean;
  /** every float tensor in float64 (gradient checks) */
  float64?: boolean;
  randomLoraB?: boolean;
  /** frozen weights as graph inputs (shared between sessions) rather than initializers */
  frozenAsInputs?: boolean;
}

export interface StepGraph {
  bytes: Uint8Array;
  params: Param[];
  weights: TrainableWeights;
  /** names of the optimiser state inputs per parameter */
  stateNames: string[];
}

export const names = {
  next: (p: string) => `next:${p}`,
  grad: (p: string) => `grad:${p}`,
  state: (s: string, p: string) => `${s}:${p}`,
  nextState: (s: string, p: string) => `next_${s}:${p}`,
};

/** Builds the graph; the same spec and seed always give the same parameter initialisation. */
export function buildStepGraph(spec: StepGraphSpec): StepGraph {
  const fresh = new TrainableWeights(
    spec.weights,
    spec.mode,
    spec.architecture,
    seededRandom(spec.seed),
    spec.randomLoraB,
    spec.frozenAsInputs,
  );
  // the student's hidden states, for the feature loss
  let states: string[] = [];
  const onStates = (s: string[]) => (states = s);
  const g: GraphBuilder =
    spec.architecture === 'llama'
      ? buildLlamaGraph(spec.config as LlamaConfig, fresh, {
          layerWindows: layerWindows(spec.config as Record<string, unknown>),
          onStates,
        })
      : spec.architecture === 'gemma3'
        ? buildGemmaGraph(spec.config as GemmaConfig, fresh, { onStates })
        : buildGpt2Graph(spec.config as Gpt2Config, fresh, { onStates });
  g.clearOutputs();
  const feature = spec.purpose !== 'eval' ? spec.feature : undefined;
  // the projections come after the student's parameters, from their own stream of the seed
  const projections = feature
    ? projectionParams(feature, depthAndWidth(spec.config).width, seededRandom(spec.seed ^ 0x5eed))
    : [];
  const params = [...fresh.params, ...projections];
  const { batch: B, seqLen: L, vocab: V } = spec;
  const M = B * L;
  const targets = g.input('targets', 'int64', [M, 1]);
  const mask = g.input('mask', 'float32', [M]);
  const K = spec.teacherTopK;
  let lossInputs: LossInputs;
  // ULD's groups: at most one per position of the batch
  const uld: UldInputs | undefined = spec.uld
    ? { student: LOGITS_ROWS, targets, mask, rows: M, vocab: V, batch: B, seqLen: L }
    : undefined;
  if (uld) {
    lossInputs = { student: LOGITS_ROWS, teacher: '', targets, mask, rows: M, vocab: V };
  } else if (K && (spec.purpose !== 'eval' || spec.evalOnBuckets)) {
    const buckets = {
      ids: g.input('teacher_topk_ids', 'int64', [M, K + 1]),
      logprobs: g.input('teacher_topk_logprobs', 'float32', [M, K + 2]),
      target: g.input('teacher_topk_target', 'int64', [M, 1]),
      k: K + 1,
    };
    lossInputs = { student: LOGITS_ROWS, teacher: '', buckets, targets, mask, rows: M, vocab: V };
  } else if (spec.noTeacher) {
    if (spec.loss.key !== 'ce' && !spec.policy) throw new Error(`the ${spec.loss.key} loss needs a teacher`);
    lossInputs = { student: LOGITS_ROWS, teacher: '', targets, mask, rows: M, vocab: V };
  } else {
    const teacher = g.input('teacher_logits', 'float32', [B, L, V]);
    lossInputs = {
      student: LOGITS_ROWS,
      teacher: g.op1('Reshape', [teacher, g.ints([M, V])]),
      targets,
      mask,
      rows: M,
      vocab: V,
    };
  }
  const stateNames: string[] = [];

  if (spec.purpose === 'eval') {
    const sums: Record<string, string | undefined> = uld
      ? buildUldEvalSums(g, uld)
      : buildEvalSums(g, lossInputs);
    for (const [k, v] of Object.entries(sums)) {
      if (!v) continue;
      g.rename(v, k);
      g.output(k, 'float32', k === 'span_logp' ? [M] : []);
    }
  } else {
    const kdLoss = spec.policy
      ? buildPolicyLoss(
          g,
          {
            student: LOGITS_ROWS,
            teacher: lossInputs.teacher || undefined,
            targets,
            mask,
            oldLogp: g.input('old_logp', 'float32', [M]),
            advantages: g.input('advantages', 'float32', [M]),
            weights: spec.policy.kind === 'minillm' ? g.input('weights', 'float32', [M]) : undefined,
            ptMask: spec.policy.pretrain ? g.input('pt_mask', 'float32', [M]) : undefined,
            rows: M,
            vocab: V,
          },
          spec.policy,
        )
      : uld
        ? buildUldLoss(g, uld, spec.uld!)
        : buildLoss(g, lossInputs, spec.loss);
    let loss = kdLoss;
    if (feature) {
      const featureLoss = buildFeatureLoss(g, feature, states, projections, mask, M);
      for (const [value, name] of [
        [featureLoss, 'feature_loss'],
        [kdLoss, 'kd_loss'],
      ]) {
        g.rename(g.op1('Identity', [value]), name);
        g.output(name, 'float32', []);
      }
      loss = g.op1('Add', [
        g.op1('Mul', [kdLoss, g.input('kd_weight', 'float32', [])]),
        g.op1('Mul', [featureLoss, g.input('feature_weight', 'float32', [])]),
      ]);
    }
    const shapes = new GraphShapes(g, { input_ids: [B, L] });
    const grads = addGradients(
      g,
      shapes,
      loss,
      params.map((p) => p.name),
    );
    g.rename(loss, 'loss');
    g.output('loss', 'float32', []);
    if (spec.purpose === 'gradients') {
      for (const p of params) {
        g.rename(grads.get(p.name)!, names.grad(p.name));
        g.output(names.grad(p.name), 'float32', p.shape);
      }
    } else {
      stateNames.push(...addOptimizer(g, params, grads, spec.optimizer));
    }
  }
  if (spec.float64) g.promoteToFloat64();
  return { bytes: g.encode().model, params, weights: fresh, stateNames };
}

/** Global-norm clipping and the AdamW / SGD update, in the graph. Returns the state names. */
function addOptimizer(
  g: GraphBuilder,
  params: Param[],
  grads: Map<string, string>,
  o: OptimizerSpec,
): string[] {
  const lr = g.input('lr', 'float32', []);
  const sumSquares = params.map((p) => g.op1('ReduceSumSquare', [grads.get(p.name)!], { keepdims: 0 }));
  const norm = g.op1('Sqrt', [sumSquares.reduce((a, b) => g.op1('Add', [a, b]))]);
  g.rename(norm, 'grad_norm');
  g.output('grad_norm', 'float32', []);
  const coef =
    o.maxGradNorm > 0
      ? g.op1('Min', [
          g.scalar(1),
          g.op1('Div', [g.scalar(o.maxGradNorm), g.op1('Add', [norm, g.scalar(1e-6)])]),
        ])
      : undefined;
  const states = o.kind === 'adamw' ? ['m', 'v'] : [];
  const bc1 = o.kind === 'adamw' ? g.input('bias_correction1', 'float32', []) : '';
  const bc2 = o.kind === 'adamw' ? g.input('bias_correction2', 'float32', []) : '';
  for (const p of params) {
    const grad = coef ? g.op1('Mul', [grads.get(p.name)!, coef]) : grads.get(p.name)!;
    // a parameter group with its own learning rate (the feature loss's projections)
    const groupLr = p.lrScale !== undefined && p.lrScale !== 1 ? g.op1('Mul', [lr, g.scalar(p.lrScale)]) : lr;
    // decoupled weight decay (AdamW, as PyTorch): θ ← θ·(1 − lr·wd)
    const theta =
      p.decay && o.weightDecay > 0
        ? g.op1('Mul', [
            p.name,
            g.op1('Sub', [g.scalar(1), g.op1('Mul', [groupLr, g.scalar(o.weightDecay)])]),
          ])
        : p.name;
    let step: string;
    if (o.kind === 'sgd') {
      step = grad;
    } else {
      const m = g.input(names.state('m', p.name), 'float32', p.shape);
      const v = g.input(names.state('v', p.name), 'float32', p.shape);
      const m2 = g.op1('Add', [
        g.op1('Mul', [m, g.scalar(o.beta1)]),
        g.op1('Mul', [grad, g.scalar(1 - o.beta1)]),
      ]);
      const v2 = g.op1('Add', [
        g.op1('Mul', [v, g.scalar(o.beta2)]),
        g.op1('Mul', [g.op1('Mul', [grad, grad]), g.scalar(1 - o.beta2)]),
      ]);
      g.rename(m2, names.nextState('m', p.name));
      g.output(names.nextState('m', p.name), 'float32', p.shape);
      g.rename(v2, names.nextState('v', p.name));
      g.output(names.nextState('v', p.name), 'float32', p.shape);
      const denom = g.op1('Add', [g.op1('Sqrt', [g.op1('Div', [v2, bc2])]), g.scalar(o.eps)]);
      step = g.op1('Div', [g.op1('Div', [m2, bc1]), denom]);
    }
    const next = g.op1('Sub', [theta, g.op1('Mul', [step, groupLr])]);
    g.rename(next, names.next(p.name));
    g.output(names.next(p.name), 'float32', p.shape);
  }
  return states;
}

/** Linear warm-up, then cosine decay to a tenth of the peak. */
export function learningRate(step: number, steps: number, peak: number, warmup: number): number {
  if (warmup > 0 && step < warmup) return (peak * (step + 1)) / warmup;
  const progress = steps > warmup ? (step - warmup) / Math.max(1, steps - warmup - 1) : 1;
  const floor = 0.1;
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}
