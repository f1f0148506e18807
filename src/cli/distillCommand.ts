/** `distill-lens distill`: a distillation fine-tune from the command line, with a progress bar and Ctrl-C as cancel. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { CancelledError, UsageError } from '../core/errors';
import { runDistillation } from '../train/distill';
import { parseStages } from '../train/stages';
import { formatNumber } from '../core/formatNumber';
import { DEVICES, type Device } from '../shared/devices';
import {
  DISTILL_DEFAULTS,
  DISTILL_METHODS,
  GENERATION_DEFAULTS,
  LOSS_KEYS,
  SAMPLING_METHODS,
  ULD_DEFAULTS,
  type DistillMethod,
  type LossKey,
  type RunRecord,
  type StageSpec,
} from '../shared/protocol';
import { ONNX_DTYPES, type DtypeChoice } from '../shared/dtypes';
import type { SamplingOptions } from '../shared/generation';
import { addTeacherOptions, number, teacherSpec } from './cliParts';

type Parse = (name: string, min: number) => (v: string) => number;

export function addDistillCommand(
  program: Command,
  integer: Parse,
  positive: (name: string) => (v: string) => number,
  fraction: (name: string) => (v: string) => number,
): void {
  const nonNegative = (name: string) => number(name, (x) => x >= 0, 'a number ≥ 0');
  addTeacherOptions(
    program
      .command('distill')
      .description(
        'fine-tune the student against the teacher (LoRA by default) and write the result as a new model folder',
      ),
    'teacher: a model folder, a hub id, or a served teacher openai+http://host:port/v1#model (--method word, seqkd or onpolicy; key from DISTILL_LENS_TEACHER_API_KEY)',
  )
    .requiredOption(
      '--student <M>',
      'student: a safetensors checkpoint folder (Llama, Qwen2, Qwen3, Mistral, Phi-3, Gemma 3 text or GPT-2)',
    )
    .requiredOption(
      '--data <PATH>',
      'a text file, a folder of text or code files, or JSONL with "text" or "prompt"/"completion" fields',
    )
    .requiredOption('--out <DIR>', 'the new model folder (must not exist or be empty)')
    .addOption(
      new Option(
        '--method <M>',
        "word: the data's text; seqkd: completions the teacher samples for the data's prompts",
      )
        .choices([...DISTILL_METHODS])
        .default('word'),
    )
    .addOption(
      new Option(
        '--loss <KEY>',
        'the distillation loss (default fkl; ce with --method seqkd, gjsd with gkd; uld for a teacher whose tokenizer differs)',
      ).choices([...LOSS_KEYS, 'uld']),
    )
    .option(
      '--uld-weight <W>',
      `--loss uld: loss = W·ULD + C·ce (default ${ULD_DEFAULTS.weight}, the ULD paper's)`,
      nonNegative('--uld-weight'),
    )
    .option(
      '--ce-weight <C>',
      `--loss uld: the weight C of the student's cross-entropy on the text (default ${ULD_DEFAULTS.ceWeight})`,
      nonNegative('--ce-weight'),
    )
    .option(
      '--temperature <T>',
      'softmax temperature of both models in the loss',
      positive('--temperature'),
      1,
    )
    .option('--beta <B>', "gjsd's β (default 0.5); dkd's nckd weight (default 8)", positive('--beta'))
    .option(
      '--alpha <A>',
      "skl/srkl's α (0.1); dkd's tckd weight (1); atkd's easy weight (0.2)",
      positive('--alpha'),
    )
    .option(
      '--kd-ratio <R>',
      "loss = (1 − R)·ce + R·kd (default 1); minillm's pre-training term: (1 − R)·ce + R·soft-ce (default 0.5)",
      fraction('--kd-ratio'),
    )
    .option('--scale-by-t2', 'multiply the KD term by T² (default for dkd)')
    .option('--no-scale-by-t2', 'do not multiply the KD term by T²')
    .option('--full', 'train every weight instead of LoRA adapters')
    .option('--lora-rank <R>', 'LoRA rank', integer('--lora-rank', 1), DISTILL_DEFAULTS.loraRank)
    .option(
      '--lora-alpha <A>',
      'LoRA alpha (the update is scaled by alpha / rank)',
      positive('--lora-alpha'),
      DISTILL_DEFAULTS.loraAlpha,
    )
    .option(
      '--lora-targets <LIST>',
      'comma-separated projection names (default q_proj,v_proj; qkv_proj for Phi-3; c_attn for GPT-2)',
    )
    .addOption(new Option('--optimizer <O>', 'optimiser').choices(['adamw', 'sgd']).default('adamw'))
    .option('--steps <N>', 'training steps', integer('--steps', 1), DISTILL_DEFAULTS.steps)
    .option(
      '--lr <LR>',
      'peak learning rate (linear warm-up, then cosine to a tenth)',
      positive('--lr'),
      DISTILL_DEFAULTS.lr,
    )
    .option('--warmup <N>', 'warm-up steps (default a tenth of the steps)', integer('--warmup', 0))
    .option('--weight-decay <W>', 'decoupled weight decay on matrices', fraction('--weight-decay'), 0.01)
    .option('--max-grad-norm <N>', 'clip the global gradient norm (0: no clipping)', (v) => Number(v), 1)
    .option('--batch-size <N>', 'windows per step', integer('--batch-size', 1), DISTILL_DEFAULTS.batchSize)
    .option(
      '--seq-len <N>',
      `tokens per window (default ${DISTILL_DEFAULTS.seqLen}; gkd, onpolicy, minillm: --prompt-tokens + --max-new-tokens + 8)`,
      integer('--seq-len', 2),
    )
    .option(
      '--seed <N>',
      'seed for initialisation and data order (CPU runs repeat exactly)',
      integer('--seed', 0),
      0,
    )
    .addOption(new Option('--device <D>', 'execution provider').choices(DEVICES).default('cpu'))
    .option(
      '--teacher-top-k <K>',
      "give the loss only the teacher's K most probable tokens (plus the target) and one bucket for the rest: less memory for large vocabularies",
      integer('--teacher-top-k', 1),
    )
    .addOption(
      new Option('--dtype <D>', 'which file of an ONNX export teacher runs (transformers.js names)')
        .choices(['auto', ...ONNX_DTYPES])
        .default('auto'),
    )
    .option(
      '--teacher-samples <N>',
      'seqkd: completions the teacher samples per prompt',
      integer('--teacher-samples', 1),
      GENERATION_DEFAULTS.samplesPerPrompt,
    )
    .option(
      '--gen-temperature <T>',
      'temperature of the sampled completions (default 1; 0.9 with --method gkd)',
      positive('--gen-temperature'),
    )
    .option(
      '--lmbda <L>',
      "gkd: the probability that a step trains on the student's own completions (0.5)",
      fraction('--lmbda'),
    )
    .option(
      '--seq-kd',
      "gkd: off-policy steps train on the teacher's completions even where the data has some",
    )
    .option(
      '--mix-alpha <A>',
      "minillm: the teacher's share α of the sampling mix (0.2)",
      fraction('--mix-alpha'),
    )
    .option('--reward-scaling <S>', 'minillm: rewards are divided by S (0.5)', positive('--reward-scaling'))
    .option('--reward-clip <C>', 'minillm: rewards are clipped to ±C (100)', positive('--reward-clip'))
    .option('--gamma <G>', "minillm: the return's discount (0.95)", fraction('--gamma'))
    .option('--cliprange <E>', "minillm: PPO's clip on ratio·w (0.2)", fraction('--cliprange'))
    .option(
      '--ppo-epochs <N>',
      'minillm: optimiser steps over each collection of rollouts (4)',
      integer('--ppo-epochs', 1),
    )
    .addOption(
      new Option(
        '--advantage-from <T>',
        "minillm: the return from t (LMOps' code) or t+1 (the paper)",
      ).choices(['t', 't+1']),
    )
    .option('--lm-data <PATH>', "minillm: plain text for the pre-training term (LMOps' --lm-data-dir)")
    .option('--lm-coef <C>', "minillm: the pre-training term's weight (1)", (v) => Number(v))
    .option('--top-k <K>', 'sample among the K most likely tokens (0: all)', integer('--top-k', 0), 0)
    .option('--top-p <P>', 'sample among the most likely tokens up to mass P', fraction('--top-p'), 1)
    .option(
      '--max-new-tokens <N>',
      'tokens per sampled completion at most',
      integer('--max-new-tokens', 1),
      GENERATION_DEFAULTS.maxNewTokens,
    )
    .option(
      '--prompt-tokens <N>',
      'text without "prompt" records is cut into prompts of N tokens',
      integer('--prompt-tokens', 1),
      GENERATION_DEFAULTS.promptTokens,
    )
    .option(
      '--reuse-rollouts <FILE>',
      "seqkd: train on an earlier run's rollouts.jsonl instead of sampling again",
    )
    .addOption(
      new Option(
        '--feature-loss <L>',
        'feature distillation: a loss on mapped hidden states beside the logit loss',
      ).choices(['mse', 'cosine']),
    )
    .option(
      '--feature-layers <MAP>',
      '"auto" (student layer j ↔ teacher round(j·L_T/L_S)) or "s:t,s:t,…" hidden_states indices',
      parseFeatureLayers,
      'auto',
    )
    .option(
      '--feature-weight <W>',
      'W in loss = kd + W·feature (1)',
      number('--feature-weight', (x) => x >= 0, 'a number ≥ 0'),
      1,
    )
    .option(
      '--projection-lr-scale <S>',
      "the feature loss's projections learn at S × --lr (30)",
      number('--projection-lr-scale', (x) => x > 0, 'a number > 0'),
    )
    .option(
      '--stages <LIST>',
      'train in stages, e.g. "kd:100,kd+features:200" (kd, features, kd+features); their steps replace --steps',
      parseStages,
    )
    .option('--allow-remote', 'allow downloading hub model ids from huggingface.co')
    .option('--quiet', 'no progress bar')
    .option('--verbose', 'print stack traces')
    .action(async (o, command: Command) => {
      // with --stages the run's steps are theirs (an explicit --steps must agree: the run checks it)
      const steps =
        o.stages && command.getOptionValueSource('steps') === 'default'
          ? (o.stages as StageSpec[]).reduce((n, st) => n + st.steps, 0)
          : o.steps;
      if (o.projectionLrScale !== undefined && !o.featureLoss)
        throw new UsageError('--projection-lr-scale needs --feature-loss mse|cosine');
      const abort = new AbortController();
      const onSigint = () => {
        if (abort.signal.aborted) process.exit(130);
        process.stderr.write(
          '\ndistill-lens: cancelling (Ctrl-C again to quit at once); nothing will be written\n',
        );
        abort.abort();
      };
      process.on('SIGINT', onSigint);
      const bar = new SingleBar(
        {
          format: 'distilling {bar} {value}/{total} steps | loss {loss} | {tps} tok/s | {eta_formatted} left',
          hideCursor: true,
          noTTYOutput: true,
          notTTYSchedule: 5000,
          stream: process.stderr,
        },
        Presets.shades_classic,
      );
      let barStarted = false;
      try {
        const record = await runDistillation(
          {
            teacher: teacherSpec(o),
            student: o.student,
            data: { path: o.data },
            out: o.out,
            method: o.method as DistillMethod,
            generation: {
              sampling: {
                ...(o.genTemperature !== undefined ? { temperature: o.genTemperature } : {}),
                topK: o.topK,
                topP: o.topP,
              } as SamplingOptions,
              maxNewTokens: o.maxNewTokens,
              samplesPerPrompt: o.teacherSamples,
              promptTokens: o.promptTokens,
            },
            reuseRollouts: o.reuseRollouts,
            lmbda: o.lmbda,
            seqKd: o.seqKd,
            minillm:
              o.method === 'minillm'
                ? Object.fromEntries(
                    Object.entries({
                      mixAlpha: o.mixAlpha,
                      rewardScaling: o.rewardScaling,
                      rewardClip: o.rewardClip,
                      gamma: o.gamma,
                      cliprange: o.cliprange,
                      ppoEpochs: o.ppoEpochs,
                      advantageFrom: o.advantageFrom,
                      lmData: o.lmData,
                      lmCoef: o.lmCoef,
                      kdRatio: o.kdRatio,
                    }).filter(([, v]) => v !== undefined),
                  )
                : undefined,
            // ULD's cross-entropy term is the ce loss; its distance term comes with `uld`
            ...(o.loss === 'uld'
              ? {
                  uld: {
                    ...(o.uldWeight !== undefined ? { weight: o.uldWeight } : {}),
                    ...(o.ceWeight !== undefined ? { ceWeight: o.ceWeight } : {}),
                  },
                }
              : {}),
            loss: {
              key: (o.loss === 'uld'
                ? 'ce'
                : (o.loss ?? (o.method === 'seqkd' ? 'ce' : o.method === 'gkd' ? 'gjsd' : 'fkl'))) as LossKey,
              temperature: o.temperature,
              beta: o.beta,
              alpha: o.alpha,
              kdRatio: o.kdRatio,
              scaleByT2: o.scaleByT2,
            },
            mode: o.full
              ? { kind: 'full' }
              : {
                  kind: 'lora',
                  rank: o.loraRank,
                  alpha: o.loraAlpha,
                  targets: o.loraTargets
                    ?.split(',')
                    .map((s: string) => s.trim())
                    .filter(Boolean),
                },
            optimizer: { kind: o.optimizer, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm },
            steps,
            lr: o.lr,
            ...(o.featureLoss
              ? {
                  feature: {
                    loss: o.featureLoss,
                    layers: o.featureLayers,
                    weight: o.featureWeight,
                    ...(o.projectionLrScale !== undefined ? { projectionLrScale: o.projectionLrScale } : {}),
                  },
                }
              : {}),
            ...(o.stages ? { stages: o.stages } : {}),
            warmupSteps: o.warmup,
            batchSize: o.batchSize,
            // the methods that sample need a prompt and its completion in one window
            seqLen:
              o.seqLen ??
              (SAMPLING_METHODS.includes(o.method)
                ? o.promptTokens + o.maxNewTokens + 8
                : DISTILL_DEFAULTS.seqLen),
            seed: o.seed,
            device: o.device as Device,
            teacherTopK: o.teacherTopK,
            teacherDtype: o.dtype as DtypeChoice,
            allowRemote: !!o.allowRemote,
          },
          {
            signal: abort.signal,
            onProgress: (p) => {
              if (o.quiet) return;
              if (p.phase === 'train') {
                if (!barStarted) {
                  bar.start(p.steps!, 0, { loss: '-', tps: '-' });
                  barStarted = true;
                }
                bar.update(p.step!, { loss: p.loss!.toFixed(4), tps: Math.round(p.tokensPerSecond ?? 0) });
              } else if (!barStarted || p.phase === 'write') {
                if (barStarted) {
                  bar.stop();
                  barStarted = false;
                }
                process.stderr.write(`distill-lens: ${p.message}\n`);
              }
            },
          },
        );
        if (barStarted) bar.stop();
        for (const m of record.messages) process.stderr.write(`distill-lens: ${m}\n`);
        process.stdout.write(summary(record));
      } catch (e) {
        if (barStarted) bar.stop();
        if (e instanceof CancelledError) {
          process.stderr.write('distill-lens: cancelled; no model was written\n');
        }
        throw e;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}

function summary(r: RunRecord): string {
  const { before, after } = r.heldOut;
  const pct = (a: number, b: number) => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(1)}%`;
  return [
    `wrote ${r.out} (${r.lossCurve.length} steps, ${r.timings.totalSeconds.toFixed(1)} s, ${Math.round(r.timings.tokensPerSecond)} tokens/s)`,
    `held-out (${after.tokens} tokens${after.spans ? `, ${after.spans} spans` : ''})`.padEnd(24) +
      ' before     after      change',
    ...(after.uld !== undefined
      ? [
          // across tokenizers: no per-token KL; ULD over the aligned spans, and their exact log-ratio
          `  ULD (approximate)      ${formatNumber(before.uld!).padEnd(10)} ${formatNumber(after.uld).padEnd(10)} ${pct(before.uld!, after.uld)}`,
          `  span log P_T − log P_S ${formatNumber(before.spanLogRatio!).padEnd(10)} ${formatNumber(after.spanLogRatio!).padEnd(10)}`,
        ]
      : [
          `  forward KL             ${formatNumber(before.fkl).padEnd(10)} ${formatNumber(after.fkl).padEnd(10)} ${pct(before.fkl, after.fkl)}`,
          `  reverse KL             ${formatNumber(before.rkl).padEnd(10)} ${formatNumber(after.rkl).padEnd(10)} ${pct(before.rkl, after.rkl)}`,
        ]),
    `  student perplexity     ${formatNumber(before.studentPerplexity).padEnd(10)} ${formatNumber(after.studentPerplexity).padEnd(10)} ${pct(before.studentPerplexity, after.studentPerplexity)}`,
    ...(r.sampledHeldOut
      ? [
          `student's completions of ${r.sampledHeldOut.after.completions} held-out prompt(s)`,
          r.sampledHeldOut.after.spanLogRatio !== undefined
            ? // across tokenizers: the completions' aligned spans, log P_T − log Q summed per completion
              `  Σ span log P_T − log Q ${formatNumber(r.sampledHeldOut.before.spanLogRatio!).padEnd(10)} ${formatNumber(r.sampledHeldOut.after.spanLogRatio).padEnd(10)}`
            : `  Σ reverse KL per step  ${formatNumber(r.sampledHeldOut.before.reverseKl).padEnd(10)} ${formatNumber(r.sampledHeldOut.after.reverseKl).padEnd(10)} ${pct(r.sampledHeldOut.before.reverseKl, r.sampledHeldOut.after.reverseKl)}`,
          `  teacher log p / token  ${formatNumber(r.sampledHeldOut.before.teacherLogp).padEnd(10)} ${formatNumber(r.sampledHeldOut.after.teacherLogp).padEnd(10)}`,
          `  length (tokens)        ${formatNumber(r.sampledHeldOut.before.length).padEnd(10)} ${formatNumber(r.sampledHeldOut.after.length).padEnd(10)}`,
        ]
      : []),
    '',
  ].join('\n');
}

/** --feature-layers: "auto", or "s:t,s:t,…" pairs of hidden_states indices. */
function parseFeatureLayers(text: string): 'auto' | [number, number][] {
  if (text.trim() === 'auto') return 'auto';
  return text.split(',').map((part) => {
    const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(part);
    if (!m)
      throw new InvalidArgumentError(
        `"${part.trim()}" is not STUDENT:TEACHER (hidden_states indices, e.g. "2:4")`,
      );
    return [Number(m[1]), Number(m[2])];
  });
}
