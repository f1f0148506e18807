import * as vscode from 'vscode';
import { isMetricKey, type MetricKey } from '../core/metricKeys';
import type { MetricOptions } from '../core/tokenRows';
import { DEFAULT_METRIC_OPTIONS } from '../core/tokenRows';
import { builtInPair } from '../models/builtInModels';
import { resolveModelSpec } from '../models/modelSpec';
import type { Device } from '../shared/devices';
import { ONNX_DTYPES, type DtypeChoice } from '../shared/dtypes';
import { DISTILL_DEFAULTS, GENERATION_DEFAULTS } from '../shared/protocol';
import type { SamplingOptions } from '../shared/generation';
import type { DecorationStyle } from './heatDecorations';

/** The distillLens.* settings, typed and checked. */
export interface Settings {
  teacher: string;
  student: string;
  device: Device;
  options: MetricOptions;
  metric: MetricKey;
  maxTokens: number;
  /** a served teacher's top K per position */
  servedTeacherTopK: number;
  allowRemoteModels: boolean;
  /** which file of an ONNX export runs */
  dtype: DtypeChoice;
  hubCacheDir?: string;
  /** top of the colour scale; undefined = automatic */
  colorScaleMaximum?: number;
  decorationStyle: DecorationStyle;
  /** colour by the metric, or by its change against the previous student (when there is one) */
  colorBy: 'value' | 'change';
  /** after an edit: stale tokens wait for an explicit analysis, or are analysed again on idle */
  reanalyze: 'off' | 'onIdle';
  reanalyzeDelayMs: number;
}

/** The first workspace folder on disk, which relative paths in settings are relative to. */
function workspaceFolder(): string | undefined {
  return vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file')?.uri.fsPath;
}

/** How a model setting is shown: the built-in models by name (their install path is long and says nothing). */
export function modelDisplayName(spec: string): string {
  const builtIn = builtInPair();
  if (spec === builtIn.teacher) return 'built-in teacher';
  if (spec === builtIn.student) return 'built-in student';
  return spec;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('distillLens');
  const num = (key: string, fallback: number) => {
    const v = c.get<number>(key);
    return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
  };
  const metric = c.get<string>('metric', 'fkl');
  const max = num('colorScaleMaximum', 0);
  return {
    // empty settings mean the built-in pair, so the first run needs no configuration;
    // relative folders are relative to the workspace folder, not the editor's working directory
    teacher: resolveModelSpec(c.get<string>('teacher', ''), workspaceFolder()) || builtInPair().teacher,
    student: resolveModelSpec(c.get<string>('student', ''), workspaceFolder()) || builtInPair().student,
    device: (['auto', 'cpu', 'cuda', 'dml'].includes(c.get<string>('device', 'cpu'))
      ? c.get<string>('device', 'cpu')
      : 'cpu') as Device,
    options: {
      ...DEFAULT_METRIC_OPTIONS,
      temperature: num('temperature', 1) > 0 ? num('temperature', 1) : 1,
      beta: Math.min(1, Math.max(0, num('beta', 0.5))),
      alpha: Math.min(1, Math.max(0, num('alpha', 0.1))),
      topK: Math.min(32, Math.max(1, Math.round(num('topK', 5)))),
    },
    metric: isMetricKey(metric) ? metric : 'fkl',
    maxTokens: Math.max(2, Math.round(num('maxTokens', 8192))),
    servedTeacherTopK: Math.max(1, Math.round(num('servedTeacherTopK', 20))),
    allowRemoteModels: c.get<boolean>('allowRemoteModels', false),
    dtype: (['auto', ...ONNX_DTYPES] as string[]).includes(c.get<string>('dtype', 'auto'))
      ? (c.get<string>('dtype', 'auto') as DtypeChoice)
      : 'auto',
    hubCacheDir: resolveModelSpec(c.get<string>('hubCacheDir', ''), workspaceFolder()) || undefined,
    colorScaleMaximum: max > 0 ? max : undefined,
    decorationStyle:
      (['background', 'underline', 'border'] as const).find((v) => v === c.get('decorationStyle')) ??
      'background',
    colorBy: c.get<string>('colorBy') === 'change' ? 'change' : 'value',
    reanalyze: c.get<string>('reanalyze') === 'onIdle' ? 'onIdle' : 'off',
    reanalyzeDelayMs: Math.max(200, num('reanalyzeDelay', 1500)),
  };
}

/** The distillLens.distill.* settings: defaults of Run Distillation…. */
export interface DistillSettings {
  loss: string;
  steps: number;
  mode: 'lora' | 'full';
  learningRate: number;
  loraRank: number;
  batchSize: number;
  sequenceLength: number;
  /** the sequence-level methods: tokens per sampled completion, and prompt length for plain text */
  maxNewTokens: number;
  promptTokens: number;
  /** feature distillation: W in loss = kd + W·feature */
  featureWeight: number;
}

export function readDistillSettings(): DistillSettings {
  const c = vscode.workspace.getConfiguration('distillLens.distill');
  const int = (key: string, fallback: number, min: number) => {
    const v = c.get<number>(key);
    return typeof v === 'number' && Number.isInteger(v) && v >= min ? v : fallback;
  };
  const d = DISTILL_DEFAULTS;
  const lr = c.get<number>('learningRate', d.lr);
  return {
    loss: c.get<string>('loss', 'fkl'),
    steps: int('steps', d.steps, 1),
    mode: c.get<string>('mode', 'lora') === 'full' ? 'full' : 'lora',
    learningRate: typeof lr === 'number' && lr > 0 ? lr : d.lr,
    loraRank: int('loraRank', d.loraRank, 1),
    batchSize: int('batchSize', d.batchSize, 1),
    sequenceLength: int('sequenceLength', d.seqLen, 2),
    maxNewTokens: int('maxNewTokens', 64, 1),
    promptTokens: int('promptTokens', GENERATION_DEFAULTS.promptTokens, 1),
    featureWeight: (() => {
      const w = c.get<number>('featureWeight', 1);
      return typeof w === 'number' && w >= 0 && Number.isFinite(w) ? w : 1;
    })(),
  };
}

/** The distillLens.sampling.* settings: how Continue with … and Compare Continuations sample. */
export interface SamplingSettings {
  sampling: SamplingOptions;
  maxNewTokens: number;
  samples: number;
  seed: number;
  stop: string[];
  mixAlpha: number;
  voidThreshold: number;
}

export function readSamplingSettings(): SamplingSettings {
  const c = vscode.workspace.getConfiguration('distillLens.sampling');
  // a value outside its range falls back to the default, as package.json's schema says
  const num = (key: string, fallback: number, ok: (x: number) => boolean) => {
    const v = c.get<number>(key);
    return typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : fallback;
  };
  const stop = c.get<unknown>('stop', []);
  return {
    sampling: {
      greedy: c.get<boolean>('greedy', false) === true,
      temperature: num('temperature', 1, (x) => x > 0),
      topK: num('topK', 0, (x) => Number.isInteger(x) && x >= 0),
      topP: num('topP', 1, (x) => x > 0 && x <= 1),
      minP: num('minP', 0, (x) => x >= 0 && x <= 1),
      repetitionPenalty: num('repetitionPenalty', 1, (x) => x > 0),
    },
    maxNewTokens: num('maxNewTokens', 64, (x) => Number.isInteger(x) && x >= 1 && x <= 4096),
    samples: num('samples', 1, (x) => Number.isInteger(x) && x >= 1 && x <= 16),
    seed: num('seed', 0, (x) => Number.isInteger(x) && x >= 0),
    stop: Array.isArray(stop) ? stop.filter((s): s is string => typeof s === 'string' && s.length > 0) : [],
    mixAlpha: num('mixAlpha', 0.2, (x) => x >= 0 && x <= 1),
    voidThreshold: num('voidThreshold', 1e-3, (x) => x > 0 && x < 1),
  };
}
