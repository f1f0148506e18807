/**
 * Training in stages (the write-up's two-stage recipe: first the last layer, then the
 * intermediate ones): a sequence of `kd` (the logit loss alone), `features` (the feature loss
 * alone, × W) and `kd+features` (kd + W·feature) with their step counts, run one after the
 * other on one optimiser and one learning-rate schedule over all the steps.
 */
import { UsageError } from '../core/errors';
import { STAGE_KINDS, type DistillRequest, type StageSpec } from '../shared/protocol';

export { stageAt, stageBoundaries } from '../core/stages';

/** Parses `--stages "kd:100,kd+features:200"`. */
export function parseStages(text: string): StageSpec[] {
  const stages = text.split(',').map((part) => {
    const m = /^\s*([a-z+]+)\s*:\s*(\d+)\s*$/.exec(part);
    if (!m || !(STAGE_KINDS as readonly string[]).includes(m[1]) || Number(m[2]) < 1)
      throw new UsageError(
        `--stages: "${part.trim()}" is not KIND:STEPS with KIND one of ${STAGE_KINDS.join(', ')} and STEPS ≥ 1 (e.g. "kd:100,kd+features:200")`,
      );
    return { kind: m[1] as StageSpec['kind'], steps: Number(m[2]) };
  });
  return stages;
}

/** The run's stages: as asked, or one stage of all the steps (kd+features with feature settings, else kd). */
export function resolveStages(req: DistillRequest): StageSpec[] {
  if (!req.stages || req.stages.length === 0)
    return [{ kind: req.feature ? 'kd+features' : 'kd', steps: req.steps }];
  const total = req.stages.reduce((n, s) => n + s.steps, 0);
  if (total !== req.steps)
    throw new UsageError(`--stages add up to ${total} steps but the run has ${req.steps} (--steps)`);
  if (!req.feature && req.stages.some((s) => s.kind !== 'kd'))
    throw new UsageError(
      '--stages with features needs the feature loss: give --feature-loss mse|cosine (and --feature-weight)',
    );
  return req.stages;
}
