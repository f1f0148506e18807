/**
 * Training in stages, the arithmetic only (src/train/stages.ts parses and checks them): which
 * stage a step belongs to, and each stage's first and last step.
 */

/** The index of the stage that step s (from 0) belongs to. */
export function stageAt(stages: { steps: number }[], s: number): number {
  let end = 0;
  for (const [i, st] of stages.entries()) {
    end += st.steps;
    if (s < end) return i;
  }
  return stages.length - 1;
}

/** For run.json and the loss chart: each stage with its first and last step (from 1). */
export function stageBoundaries<T extends { steps: number }>(
  stages: T[],
): (T & { from: number; to: number })[] {
  let from = 1;
  return stages.map((s) => {
    const out = { ...s, from, to: from + s.steps - 1 };
    from += s.steps;
    return out;
  });
}
