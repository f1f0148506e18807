/**
 * Rotary position embeddings as Hugging Face's modeling_rope_utils computes them: the inverse
 * frequency of each rotated pair of dimensions, after the checkpoint's `rope_scaling`.
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
 *
 * Every other scaling (YaRN, LongRoPE, …) is refused by name: computing it as the default
 * would put every rotary angle of the low frequencies off, silently.
 */
import { ModelLoadError } from '../../core/errors';

/** The rope_scaling types computed exactly. */
export const ROPE_TYPES = ['default', 'linear', 'llama3', 'dynamic'] as const;

interface RopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  [key: string]: unknown;
}

/** The keys each scaling type uses (others in `rope_scaling` would be ignored, so they are refused). */
const ROPE_KEYS: Record<(typeof ROPE_TYPES)[number], string[]> = {
  default: ['rope_type', 'type'],
  linear: ['rope_type', 'type', 'factor'],
  llama3: ['rope_type', 'type', 'factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  // an original_max_position_embeddings below max_position_embeddings would move where the
  // scaling starts (newer transformers): not accepted, so refused as an unknown key
  dynamic: ['rope_type', 'type', 'factor'],
};

/** The scaling type of a config's `rope_scaling` (null or absent: default), refused when not computed exactly. */
export function ropeType(scaling: unknown, model: string): (typeof ROPE_TYPES)[number] {
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
  const known = ROPE_KEYS[type as (typeof ROPE_TYPES)[number]];
  const unknown = Object.keys(s).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new ModelLoadError(
      `${model}: config.json rope_scaling has ${unknown.map((k) => `${k} = ${JSON.stringify(s[k])}`).join(', ')}, which the "${type}" scaling does not use; refused rather than ignored`,
    );
  }
  const need = known.filter((k) => k !== 'rope_type' && k !== 'type');
  for (const k of need) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k] as number)) {
      throw new ModelLoadError(`${model}: config.json rope_scaling.${k} must be a number for the "${type}" scaling (got ${JSON.stringify(s[k])})`);
    }
  }
  return type as (typeof ROPE_TYPES)[number];
}

/**
 * The inverse frequencies (float32 values, as transformers computes them in float32) of a
 * head of `dim` rotated dimensions.
 */
export function ropeInverseFrequencies(dim: number, theta: number, scaling: unknown, model: string): Float32Array {
  const type = ropeType(scaling, model);
  const s = (scaling ?? {}) as RopeScaling;
  const invFreq = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    // base ** (2i / d) in float32, then its reciprocal in float32
    const base = Math.fround(Math.pow(theta, Math.fround((2 * i) / dim)));
    invFreq[i] = Math.fround(1 / base);
  }
  if (type === 'linear') {
    for (let i = 0; i < invFreq.length; i++) invFreq[i] = Math.fround(invFreq[i] / s.factor!);
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
        invFreq[i] = Math.fround(f / factor); // low frequencies: stretched by the factor
        continue;
      }
      const smooth = (context / wavelength - low) / (high - low);
      invFreq[i] = Math.fround((1 - smooth) * (f / factor) + smooth * f);
    }
  }
  return invFreq;
}
