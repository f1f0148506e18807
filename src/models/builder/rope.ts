/**
 * Rotary position embeddings as Hugging Face's modeling_rope_utils computes them (the current
 * transformers; see docs/metrics.md, "Model families"): the inverse frequency of each rotated
 * pair of dimensions after the checkpoint's `rope_scaling`, and the attention factor that
 * multiplies cos and sin. d = head_dim · partial_rotary_factor rotated dimensions, θ = rope_theta.
 *
 *   default:  inv_freq[i] = 1 / θ^(2i / d)                       i = 0 … d/2 − 1
 *   linear:   inv_freq[i] / factor
 *   llama3:   by wavelength λ = 2π / inv_freq against the original context C:
 *               λ < C / high_freq_factor  (high frequencies):  inv_freq           (kept)
 *               λ > C / low_freq_factor   (low frequencies):   inv_freq / factor  (stretched)
 *               in between: (1 − s)·inv_freq/factor + s·inv_freq,
 *                 s = (C/λ − low_freq_factor) / (high_freq_factor − low_freq_factor)
 *   dynamic:  (NTK) the default up to max_position_embeddings positions; transformers raises
 *             θ only for longer sequences. Inspection windows longer texts to that length
 *             and distillation refuses longer training sequences, so every position
 *             computed has the default frequencies, exactly as transformers has them.
 *   yarn:     C = rope_scaling.original_max_position_embeddings, else max_position_embeddings;
 *             dim(r) = d·ln(C / (2π·r)) / (2·ln θ), low = dim(beta_fast), high = dim(beta_slow)
 *             (floored and ceiled unless truncate is false), clamped to [0, d − 1];
 *             ramp[i] = clamp((i − low) / (high − low), 0, 1), e = 1 − ramp[i];
 *             inv_freq[i] = (1/θ^(2i/d)) / factor · (1 − e) + (1/θ^(2i/d)) · e;
 *             attention factor = attention_factor, else mscale(factor, mscale) / mscale(factor,
 *             mscale_all_dim) when both are set, else mscale(factor, 1),
 *             with mscale(s, m) = 0.1·m·ln s + 1 (1 when s ≤ 1). `factor` is used as given.
 *   longrope: (Phi-3) inv_freq[i] = 1 / (ext[i] · θ^(2i/d)) with ext = long_factor when the
 *             sequence is longer than C = the config's original_max_position_embeddings (else
 *             max_position_embeddings), short_factor otherwise, chosen per run in the graph;
 *             factor = max_position_embeddings / C when the config names C, else
 *             rope_scaling.factor; attention factor = attention_factor, else
 *             √(1 + ln factor / ln C) (1 when factor ≤ 1).
 *
 * Every other scaling is refused by name: computing it as the default would put every
 * rotary angle of the low frequencies off, silently. Every step is rounded to float32, as
 * transformers computes these tensors in float32.
 */
import { ModelLoadError } from '../../core/errors';

/** The rope_scaling types computed exactly. */
export const ROPE_TYPES = ['default', 'linear', 'llama3', 'dynamic', 'yarn', 'longrope'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

interface RopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  attention_factor?: number;
  beta_fast?: number;
  beta_slow?: number;
  mscale?: number;
  mscale_all_dim?: number;
  truncate?: boolean;
  short_factor?: number[];
  long_factor?: number[];
  [key: string]: unknown;
}

/** The keys each scaling type reads (others in `rope_scaling` would be ignored, so they are refused). */
const ROPE_KEYS: Record<RopeType, { required: string[]; optional: string[] }> = {
  default: { required: [], optional: [] },
  linear: { required: ['factor'], optional: [] },
  llama3: { required: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'], optional: [] },
  // an original_max_position_embeddings below max_position_embeddings would move where the
  // scaling starts (newer transformers): not accepted, so refused as an unknown key
  dynamic: { required: ['factor'], optional: [] },
  yarn: {
    required: ['factor'],
    optional: ['attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'original_max_position_embeddings', 'truncate'],
  },
  // original_max_position_embeddings is read from the config itself (Phi-3), not from here
  longrope: { required: ['short_factor', 'long_factor'], optional: ['factor', 'attention_factor'] },
};

/** The scaling type of a config's `rope_scaling` (null or absent: default), refused when not computed exactly. */
export function ropeType(scaling: unknown, model: string): RopeType {
  if (scaling === null || scaling === undefined) return 'default';
  if (typeof scaling !== 'object') throw new ModelLoadError(`${model}: config.json rope_scaling ${JSON.stringify(scaling)} is not an object`);
  const s = scaling as RopeScaling;
  // "type" is the older spelling of "rope_type"
  const type = s.rope_type ?? s.type ?? 'default';
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ModelLoadError(
      `${model}: config.json rope_scaling type "${type}" is not supported yet (supported: ${ROPE_TYPES.join(', ')}); Distill Lens refuses it rather than compute every rotary angle without it`,
    );
  }
  const { required, optional } = ROPE_KEYS[type as RopeType];
  const known = ['rope_type', 'type', ...required, ...optional];
  const unknown = Object.keys(s).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new ModelLoadError(
      `${model}: config.json rope_scaling has ${unknown.map((k) => `${k} = ${JSON.stringify(s[k])}`).join(', ')}, which the "${type}" scaling does not use; refused rather than ignored`,
    );
  }
  for (const k of [...required, ...optional]) {
    const v = s[k];
    if (v === undefined && optional.includes(k)) continue;
    // transformers reads beta_fast / beta_slow with `or`, so null means the default there too
    if (v === null && optional.includes(k)) continue;
    const ok =
      k === 'truncate'
        ? typeof v === 'boolean'
        : k === 'short_factor' || k === 'long_factor'
          ? Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)
          : typeof v === 'number' && Number.isFinite(v);
    if (!ok) {
      const what = k === 'truncate' ? 'true or false' : k === 'short_factor' || k === 'long_factor' ? 'a list of positive numbers' : 'a number';
      throw new ModelLoadError(`${model}: config.json rope_scaling.${k} must be ${what} for the "${type}" scaling (got ${JSON.stringify(v)})`);
    }
  }
  return type as RopeType;
}

/** What a rotary embedding needs, from the config keys that shape it. */
export interface RotaryConfig {
  headDim: number;
  theta: number;
  scaling: unknown;
  /** config.max_position_embeddings */
  maxPositions?: number;
  /** config.original_max_position_embeddings (Phi-3; read by LongRoPE only) */
  originalMaxPositions?: number;
  /** config.partial_rotary_factor: only the first head_dim·factor dimensions are rotated */
  partialRotaryFactor?: number;
}

/** The rotation of one attention: frequencies, and the factor on cos and sin. */
export interface RotaryPlan {
  /** rotated dimensions per head (the first ones; the rest pass through) */
  rotaryDim: number;
  /** inverse frequency of each rotated pair (float32 values) */
  invFreq: Float32Array;
  /** cos and sin are multiplied by it (YaRN, LongRoPE); 1 otherwise */
  attentionFactor: number;
  /** LongRoPE: these frequencies instead for runs longer than `longerThan` positions */
  long?: { invFreq: Float32Array; longerThan: number };
}

const f32 = Math.fround;

/** 1 / θ^(2i/d) for the d/2 pairs: θ^(2i/d) in float32, then its reciprocal in float32. */
function powers(dim: number, theta: number): Float32Array {
  return Float32Array.from({ length: dim / 2 }, (_, i) => f32(Math.pow(theta, f32((2 * i) / dim))));
}

export function rotaryPlan(c: RotaryConfig, model: string): RotaryPlan {
  const type = ropeType(c.scaling, model);
  const s = (c.scaling ?? {}) as RopeScaling;
  const dim = Math.trunc(c.headDim * (c.partialRotaryFactor ?? 1));
  if (dim < 2 || dim % 2 !== 0 || dim > c.headDim)
    throw new ModelLoadError(`${model}: config.json partial_rotary_factor = ${c.partialRotaryFactor} gives ${dim} rotated dimensions of ${c.headDim}; it must be an even number from 2 to head_dim`);
  const base = powers(dim, c.theta);
  const invFreq = base.map((b) => f32(1 / b));
  let attentionFactor = 1;
  let long: RotaryPlan['long'];
  if (type === 'linear') {
    for (let i = 0; i < invFreq.length; i++) invFreq[i] = f32(invFreq[i] / s.factor!);
  } else if (type === 'llama3') {
    const factor = s.factor!;
    const low = s.low_freq_factor!;
    const high = s.high_freq_factor!;
    const context = s.original_max_position_embeddings!;
    const lowFreqWavelength = context / low;
    const highFreqWavelength = context / high;
    for (let i = 0; i < invFreq.length; i++) {
      const f = invFreq[i];
      const wavelength = (2 * Math.PI) / f;
      if (wavelength < highFreqWavelength) continue; // high frequencies: kept
      if (wavelength > lowFreqWavelength) {
        invFreq[i] = f32(f / factor); // low frequencies: stretched by the factor
        continue;
      }
      const smooth = (context / wavelength - low) / (high - low);
      invFreq[i] = f32((1 - smooth) * (f / factor) + smooth * f);
    }
  } else if (type === 'yarn') {
    const factor = s.factor!;
    const context = s.original_max_position_embeddings ?? c.maxPositions;
    if (context === undefined) throw new ModelLoadError(`${model}: config.json has no max_position_embeddings, which the "yarn" rope_scaling needs`);
    const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
    if (typeof s.attention_factor === 'number') attentionFactor = s.attention_factor;
    else if (s.mscale && s.mscale_all_dim) attentionFactor = mscale(factor, s.mscale) / mscale(factor, s.mscale_all_dim);
    else attentionFactor = mscale(factor);
    // the dimension (in pairs' units of d) whose wavelength makes r turns over the context
    const correctionDim = (turns: number) => (dim * Math.log(context / (turns * 2 * Math.PI))) / (2 * Math.log(c.theta));
    let low = correctionDim(s.beta_fast || 32);
    let high = correctionDim(s.beta_slow || 1);
    if (s.truncate !== false) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, dim - 1);
    if (low === high) high += 0.001; // as transformers avoids the division by zero
    for (let i = 0; i < invFreq.length; i++) {
      const extrapolation = invFreq[i];
      const interpolation = f32(1 / f32(factor * base[i]));
      const ramp = Math.min(1, Math.max(0, f32(f32(i - low) / f32(high - low))));
      const extrapolationShare = f32(1 - ramp);
      invFreq[i] = f32(f32(interpolation * f32(1 - extrapolationShare)) + f32(extrapolation * extrapolationShare));
    }
  } else if (type === 'longrope') {
    const context = c.originalMaxPositions ?? c.maxPositions;
    let factor = s.factor;
    if (c.originalMaxPositions !== undefined) {
      if (c.maxPositions === undefined) throw new ModelLoadError(`${model}: config.json has no max_position_embeddings, which the "longrope" rope_scaling needs`);
      factor = c.maxPositions / c.originalMaxPositions;
    }
    if (context === undefined) throw new ModelLoadError(`${model}: config.json has no max_position_embeddings, which the "longrope" rope_scaling needs`);
    if (typeof s.attention_factor === 'number') attentionFactor = s.attention_factor;
    else if (factor === undefined)
      throw new ModelLoadError(`${model}: config.json rope_scaling "longrope" has neither factor, attention_factor nor a config original_max_position_embeddings, so its attention factor is undefined`);
    else attentionFactor = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(context));
    const scaled = (ext: number[], key: string) => {
      if (ext.length !== dim / 2)
        throw new ModelLoadError(`${model}: config.json rope_scaling.${key} has ${ext.length} entries; the "longrope" scaling needs one per rotated pair (${dim / 2})`);
      return base.map((b, i) => f32(1 / f32(f32(ext[i]) * b)));
    };
    invFreq.set(scaled(s.short_factor!, 'short_factor'));
    long = { invFreq: scaled(s.long_factor!, 'long_factor'), longerThan: context };
  }
  return { rotaryDim: dim, invFreq, attentionFactor: f32(attentionFactor), long };
}
