/**
 * The rollout side of the on-policy methods (docs/metrics.md, "Sequence-level methods"),
 * plain float64 arithmetic on each completion's tokens — every token of a completion up to
 * and including its first EOS, which is where generation stops, so an EOS counts once:
 *
 *   on-policy (Thinking Machines' recipe):  A_t = log p(y_t) − log q_old(y_t)
 *
 *   MiniLLM (microsoft/LMOps):
 *     r_t  = clip((log p(y_t) − log q_old(y_t)) / rewardScaling, −rewardClip, +rewardClip)
 *     R_t  = r_t + γ·R_{t+1}                   the return from t, r_t included
 *     A_t  = R_t / (n − t)                     length-normalised: n − t tokens remain, t included
 *   or, with `from: 't+1'` (the paper):
 *     A_t  = (Σ_{t' > t} r_t') / (n − t − 1)   0 for the last token
 *   then whitened over the batch's valid tokens:  A ← (A − mean) / √(var + 1e-8), var unbiased
 *   (LMOps whitens over every B × T entry, its padding zeros included; over valid tokens only,
 *   a completion's numbers do not depend on how long the others are).
 *
 *   teacher-mixed sampling's importance weight:  w_t = q_old(y_t) / (α·p(y_t) + (1 − α)·q_old(y_t))
 *
 * All of it is data for the training step: nothing here carries a gradient (the detach points).
 */

export interface MiniLlmAdvantageOptions {
  /** rewards are divided by it (LMOps' scripts: 0.5, i.e. doubled) */
  rewardScaling: number;
  /** then clipped to ±rewardClip (LMOps' scripts: 100) */
  rewardClip: number;
  /** discount of the return (LMOps: 0.95) */
  gamma: number;
  /** the return from t (LMOps' code, default) or from t + 1 undiscounted (the paper) */
  from: 't' | 't+1';
}

export const MINILLM_ADVANTAGE_DEFAULTS: MiniLlmAdvantageOptions = {
  rewardScaling: 0.5,
  rewardClip: 100,
  gamma: 0.95,
  from: 't',
};

/** One completion's sampled tokens: the teacher's and the sampling student's log-probability of each. */
export interface CompletionLogps {
  logpTeacher: number[];
  oldLogpStudent: number[];
}

/** On-policy distillation: A_t = log p(y_t) − log q_old(y_t), no discount, no normalisation. */
export function onPolicyAdvantages(completions: CompletionLogps[]): number[][] {
  return completions.map((c) => c.logpTeacher.map((lp, t) => lp - c.oldLogpStudent[t]));
}

export interface MiniLlmAdvantages {
  rewards: number[][];
  returns: number[][];
  /** whitened over the batch's tokens */
  advantages: number[][];
}

export function miniLlmAdvantages(
  completions: CompletionLogps[],
  o: MiniLlmAdvantageOptions,
): MiniLlmAdvantages {
  const rewards = completions.map((c) =>
    c.logpTeacher.map((lp, t) => {
      const scaled = (lp - c.oldLogpStudent[t]) / o.rewardScaling;
      return Math.min(o.rewardClip, Math.max(-o.rewardClip, scaled));
    }),
  );
  const returns: number[][] = [];
  const normalised = rewards.map((r) => {
    const n = r.length;
    const ret = new Array<number>(n);
    const adv = new Array<number>(n);
    if (o.from === 't') {
      // R_t = r_t + γ·R_{t+1}, backwards; divided by the n − t tokens that remain
      let next = 0;
      for (let t = n - 1; t >= 0; t--) {
        next = r[t] + o.gamma * next;
        ret[t] = next;
        adv[t] = next / (n - t);
      }
    } else {
      // the paper: Σ_{t' > t} r_t' undiscounted, divided by n − t − 1 (nothing follows the last token)
      let after = 0;
      for (let t = n - 1; t >= 0; t--) {
        ret[t] = after;
        adv[t] = n - t - 1 > 0 ? after / (n - t - 1) : 0;
        after += r[t];
      }
    }
    returns.push(ret);
    return adv;
  });
  return { rewards, returns, advantages: whiten(normalised) };
}

/** (x − mean) / √(var + 1e-8) over every value of the batch, var unbiased (as torch.var). */
export function whiten(values: number[][]): number[][] {
  const all = values.flat();
  const n = all.length;
  if (n === 0) return values.map(() => []);
  const mean = all.reduce((a, v) => a + v, 0) / n;
  const variance = n > 1 ? all.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1) : 0;
  const scale = 1 / Math.sqrt(variance + 1e-8);
  return values.map((row) => row.map((v) => (v - mean) * scale));
}

/**
 * MiniLLM's importance weight of a token drawn from the mix α·p + (1 − α)·q: the student's
 * probability over the mix's, both of the processed distributions the token was drawn from.
 */
export function mixImportanceWeight(logpStudent: number, logpTeacher: number, alpha: number): number {
  // log(α·e^{lp} + (1 − α)·e^{lq}) without underflow
  const a = Math.log(alpha) + logpTeacher;
  const b = Math.log(1 - alpha) + logpStudent;
  const m = Math.max(a, b);
  const logMix = m + Math.log(Math.exp(a - m) + Math.exp(b - m));
  return Math.exp(logpStudent - logMix);
}
