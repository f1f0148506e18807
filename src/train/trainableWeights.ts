/**
 * Which weights a fine-tune trains: every weight (full fine-tuning), or low-rank adapters
 * on chosen projections (LoRA) with the base weights frozen. The graph builders ask for
 * weights by checkpoint name; trained ones become graph inputs, so each training step feeds
 * the current values and receives the updated ones.
 */
import type { GraphBuilder } from '../onnx/graphBuilder';
import type { ModelWeights, WeightSource } from '../models/builder/weights';
import { familyOf, type Architecture } from '../models/checkpointConfig';
import type { Rng } from '../core/random';
import type { TrainMode } from '../shared/protocol';

export type { TrainMode };

/** PEFT's defaults: the query and value projections (Phi-3 fuses them into qkv_proj, GPT-2 into c_attn). */
export function defaultLoraTargets(arch: Architecture, config: Record<string, unknown> = {}): string[] {
  if (arch === 'gpt2') return ['c_attn'];
  if (arch === 'llama' && familyOf(config) === 'phi3') return ['qkv_proj'];
  return ['q_proj', 'v_proj'];
}

export interface Param {
  /** graph input name */
  name: string;
  shape: number[];
  /** initial value */
  init: Float32Array;
  /** decoupled weight decay applies (matrices, not biases or norm gains) */
  decay: boolean;
  /** the checkpoint weight this parameter belongs to */
  weight: string;
  /** projection: feature distillation's student → teacher map, trained but never part of the student */
  role: 'weight' | 'lora_A' | 'lora_B' | 'projection';
  /** its learning rate (and weight decay's) as a multiple of the step's: a parameter group of its own; 1 when absent */
  lrScale?: number;
}

export interface LoraAdapter {
  weight: string;
  a: Param;
  b: Param;
  /** alpha / rank */
  scale: number;
  /** GPT-2's Conv1D stores [in, out]; Linear stores [out, in] */
  conv1d: boolean;
}

/** A frozen weight fed as a graph input, so that several graphs share one copy of it. */
export interface FrozenInput {
  name: string;
  shape: number[];
  data: Float32Array;
}

export class TrainableWeights implements ModelWeights {
  readonly params: Param[] = [];
  /** with `frozenAsInputs`, the frozen weights the graph expects as inputs */
  readonly frozen: FrozenInput[] = [];
  readonly adapters: LoraAdapter[] = [];
  private added = new Map<string, string>();

  constructor(
    readonly base: WeightSource,
    readonly mode: TrainMode,
    private readonly architecture: Architecture,
    private readonly rng: Rng,
    /** tests start B random too, so that both adapter matrices get a gradient */
    private readonly randomLoraB = false,
    /**
     * Frozen weights become graph inputs instead of initializers: the step and evaluation
     * graphs then share the caller's one copy instead of each session holding its own.
     */
    private readonly frozenAsInputs = false,
  ) {}

  private frozenWeight(g: GraphBuilder, name: string): string {
    if (!this.frozenAsInputs) return this.base.weight(g, name);
    const t = this.base.tensor(name);
    this.frozen.push({ name: `frozen:${name}`, shape: t.shape, data: t.data });
    return g.input(`frozen:${name}`, 'float32', t.shape);
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  optional(g: GraphBuilder, name: string): string | undefined {
    return this.has(name) ? this.weight(g, name) : undefined;
  }

  isLoraTarget(name: string): boolean {
    if (this.mode.kind !== 'lora' || !name.endsWith('.weight')) return false;
    const module = name.slice(0, -'.weight'.length).split('.').pop()!;
    return this.mode.targets.includes(module);
  }

  weight(g: GraphBuilder, name: string): string {
    const existing = this.added.get(name);
    if (existing) return existing;
    let value: string;
    if (this.mode.kind === 'full') {
      const t = this.base.tensor(name);
      value = this.declare(g, {
        name,
        shape: t.shape,
        init: t.data,
        decay: t.shape.length >= 2,
        weight: name,
        role: 'weight',
      });
    } else if (this.isLoraTarget(name)) {
      value = this.adapted(g, name, this.mode.rank, this.mode.alpha);
    } else {
      value = this.frozenWeight(g, name);
    }
    this.added.set(name, value);
    return value;
  }

  private declare(g: GraphBuilder, p: Param): string {
    this.params.push(p);
    return g.input(p.name, 'float32', p.shape);
  }

  /** W + (α/r)·B·A in the weight's own layout */
  private adapted(g: GraphBuilder, name: string, rank: number, alpha: number): string {
    const frozen = this.frozenWeight(g, name);
    const shape = this.base.tensor(name).shape;
    if (shape.length !== 2) throw new Error(`LoRA target ${name} is not a matrix`);
    const conv1d = this.architecture === 'gpt2';
    const [inF, outF] = conv1d ? shape : [shape[1], shape[0]];
    const bound = 1 / Math.sqrt(inF); // PEFT: kaiming_uniform(a=√5) for A, zeros for B
    const aInit = Float32Array.from({ length: rank * inF }, () => (2 * this.rng() - 1) * bound);
    const bInit = this.randomLoraB
      ? Float32Array.from({ length: outF * rank }, () => (2 * this.rng() - 1) * bound)
      : new Float32Array(outF * rank);
    const a: Param = {
      name: `${name}.lora_A`,
      shape: [rank, inF],
      init: aInit,
      decay: true,
      weight: name,
      role: 'lora_A',
    };
    const b: Param = {
      name: `${name}.lora_B`,
      shape: [outF, rank],
      init: bInit,
      decay: true,
      weight: name,
      role: 'lora_B',
    };
    const aIn = this.declare(g, a);
    const bIn = this.declare(g, b);
    const scale = alpha / rank;
    this.adapters.push({ weight: name, a, b, scale, conv1d });
    let delta = g.op1('MatMul', [bIn, aIn]); // [out, in]
    if (conv1d) delta = g.op1('Transpose', [delta], { perm: [1, 0] });
    return g.op1('Add', [frozen, g.op1('Mul', [delta, g.scalar(scale)])]);
  }
}

/** The merged weight W + (α/r)·B·A, as a new array in W's layout. */
export function mergeAdapter(
  w: Float32Array,
  adapter: LoraAdapter,
  a: Float32Array,
  b: Float32Array,
): Float32Array {
  const [r, inF] = adapter.a.shape;
  const outF = adapter.b.shape[0];
  const merged = Float32Array.from(w);
  const row = new Float64Array(inF);
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      for (let i = 0; i < inF; i++) row[i] += bk * a[k * inF + i];
    }
    for (let i = 0; i < inF; i++) {
      const at = adapter.conv1d ? i * outF + o : o * inF + i;
      merged[at] += adapter.scale * row[i];
    }
  }
  return merged;
}
