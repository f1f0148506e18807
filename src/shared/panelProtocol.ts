/**
 * Messages between the extension host and the side panel's webview. Every message says who
 * sends it; the host validates everything it receives (a webview is untrusted content).
 */
import type { MetricKey } from '../core/metricKeys';
import { isMetricKey } from '../core/metricKeys';
import type { Summary, TokenRow } from '../core/tokenRows';
import type { SampleSummary, SequenceValues } from './generation';
import type { LayerView, SampledHeldOut } from './protocol';

/**
 * An analysis as the panel draws it. Compact, so that 20,000+ tokens cross to the webview
 * quickly: per row only its span and the value of the metric in use; everything else about a
 * token comes on request (RowDetails) when it is selected.
 */
export interface PanelAnalysis {
  /** changes with every analysis and edit: row indices refer to this one */
  id: number;
  /** the document's text now; spans index into it */
  text: string;
  /** where the analysed text starts (its first token has no prediction and is shown plain) */
  from: number;
  /** per row: start and end in `text`, flattened [start0, end0, start1, end1, …] */
  spans: number[];
  /** per row: the value of `metric` (six significant digits: the colour; details are exact) */
  values: number[];
  /** the rows whose text before them changed since the analysis (dimmed, out of date) */
  stale: number[];
  metric: MetricKey;
  /** of the rows that are not stale */
  summary: Summary;
  /** the ten highest values of the metric among the rows that are not stale */
  worst: { index: number; text: string; value: number; teacherP: number; studentP: number }[];
  /** how the models are shown ("built-in teacher", or the setting as written) */
  teacher: string;
  student: string;
  /** both models' folders or hub ids in full, for a tooltip */
  modelPaths?: string;
  /** a served teacher: what its distribution was known over ("top-20+rest"); the divergences are lower bounds */
  teacherSupport?: string;
  /**
   * A pair whose tokenizers differ: the spans compared (between places where both tokenizations
   * start a token) and each model's tokens inside them; rows carry their span's k1–k3
   */
  acrossTokenizers?: { spans: number; teacherTokens: number; studentTokens: number };
  documentName: string;
  /** the same text analysed with the previous student (before a distillation run) */
  baseline?: BaselineView;
  /** Analyze Layers of Selection: the layer view, its rows' texts and their indices among the panel's rows (−1: not shown) */
  layers?: { view: LayerView; tokens: string[]; rowIndex: number[]; before?: LayerView };
}

/** The previous student's numbers beside the current ones (after Use as Student and Re-analyse). */
export interface BaselineView {
  student: string;
  /** per row: the metric with the previous student, or null where the token has no counterpart (or is stale) */
  values: (number | null)[];
  /** means over the matched rows */
  meanBefore: number;
  meanAfter: number;
  fell: number;
  rose: number;
  /** the largest falls and rises (after − before) */
  fixedMost: { index: number; text: string; change: number }[];
  brokeMost: { index: number; text: string; change: number }[];
}

/** Everything about one token, sent when it is selected. */
export interface RowDetails {
  analysisId: number;
  index: number;
  /** start and end are document offsets */
  row: TokenRow;
  before: Record<MetricKey, number> | null;
  stale: boolean;
}

/** A distillation run as the panel shows it: a live loss chart, then the held-out change. */
export interface TrainingView {
  status: 'running' | 'done' | 'cancelled' | 'failed';
  /** loss, mode and steps, e.g. "fkl · LoRA r8 · 100 steps" */
  title: string;
  steps: number;
  /** reward: the sequence-level methods' mean log p − log q_old of the student's sampled tokens */
  /** kl: their per-token KL(q‖p) estimate (mean k3) */
  points: { step: number; loss: number; reward?: number; kl?: number }[];
  message?: string;
  heldOut?: {
    before: HeldOutNumbers;
    after: HeldOutNumbers;
    /** the sequence-level methods: the student's completions of held-out prompts */
    sampled?: { before: SampledHeldOut; after: SampledHeldOut };
    /** a served teacher: the KLs are over its buckets ("top-19+rest"), lower bounds */
    teacherSupport?: string;
  };
  /** training in stages: each stage's kind and its first and last step (the chart marks where each starts) */
  stages?: { kind: string; from: number; to: number }[];
  /** the prompt Run Distillation… was asked to watch: the student's continuation before and after */
  watch?: WatchView;
  /** the new model folder (done) */
  out?: string;
  /** the new model is now the student */
  used?: boolean;
}

/**
 * A prompt watched during a run: the student's continuation of it before the run and after,
 * from one seed, each token coloured by log p − log q against the teacher on one scale.
 */
export interface WatchView {
  prompt: string;
  /** e.g. "sampling the student's continuation before the run", or why one is missing */
  message?: string;
  before?: WatchedContinuation;
  after?: WatchedContinuation;
}

export interface WatchedContinuation {
  /** generated tokens in order; `cls` is the colour class (fellN/roseN), none for log p = log q */
  tokens: { text: string; logRatio: number; void: boolean; cls?: string }[];
  sequence: SequenceValues;
}

export interface HeldOutNumbers {
  fkl: number;
  rkl: number;
  studentPerplexity: number;
  /** across tokenizers (fkl and rkl NaN): the mean ULD and span log-ratio over aligned spans */
  uld?: number;
  spanLogRatio?: number;
}

/**
 * Sampled continuations as the panel draws them (the active editor is a continuation
 * document): per continuation its sequence values and, per generated token, log p − log q,
 * its return to the end and whether it is void.
 */
export interface PanelSamples {
  /** changes with every update of the run: token indices refer to this one */
  id: number;
  documentName: string;
  /** who wrote, e.g. "the student" or "the mix α·p + (1 − α)·q, α = 0.2" */
  writer: string;
  teacher: string;
  student: string;
  status: 'sampling' | 'done' | 'cancelled' | 'failed';
  /** tokens generated so far, while sampling */
  streamed: number;
  summary?: SampleSummary;
  continuations: {
    sequence: SequenceValues;
    texts: string[];
    logRatio: number[];
    returns: number[];
    void: boolean[];
  }[];
}

/** Host → panel: a new analysis (or none, to clear). */
export interface ShowAnalysisMessage {
  type: 'showAnalysis';
  analysis: PanelAnalysis | null;
  metric: MetricKey;
  /** colour by value, or by change against the baseline (distillLens.colorBy) */
  colorBy: 'value' | 'change';
  fixedMax?: number;
}
/** Host → panel: the editor selection is on row `index` (or on no row: null), with its details. */
export interface HighlightRowMessage {
  type: 'highlightRow';
  index: number | null;
  details?: RowDetails;
}
/** Host → panel: the details of a row the panel asked for. */
export interface RowDetailsMessage {
  type: 'rowDetails';
  details: RowDetails;
}
/** Host → panel: the current (or last) distillation run, or none. */
export interface ShowTrainingMessage {
  type: 'showTraining';
  training: TrainingView | null;
}
/** Host → panel: the continuations of the active continuation document (or none). */
export interface ShowSamplesMessage {
  type: 'showSamples';
  samples: PanelSamples | null;
}
export type ToPanel =
  ShowAnalysisMessage | HighlightRowMessage | RowDetailsMessage | ShowTrainingMessage | ShowSamplesMessage;

/** Panel → host: the webview has loaded and wants the current state. */
export interface PanelReadyMessage {
  type: 'ready';
}
/** Panel → host: show row `index` of analysis `analysisId` in the editor. */
export interface RevealRowMessage {
  type: 'revealRow';
  analysisId: number;
  index: number;
}
/** Panel → host: the panel selected row `index` (arrow keys): send its details. */
export interface SelectRowMessage {
  type: 'selectRow';
  analysisId: number;
  index: number;
}
/** Panel → host: the user picked another metric in the panel. */
export interface ChooseMetricMessage {
  type: 'chooseMetric';
  metric: MetricKey;
}
/** Panel → host: colour by value or by change (the editor follows). */
export interface ChooseColoringMessage {
  type: 'chooseColoring';
  colorBy: 'value' | 'change';
}
/** Panel → host: show generated token `index` of continuation `sample` (of samples `samplesId`) in its document. */
export interface RevealSampleTokenMessage {
  type: 'revealSampleToken';
  samplesId: number;
  sample: number;
  index: number;
}
/** Panel → host: use the distilled student and analyse the same text again. */
export interface UseDistilledMessage {
  type: 'useDistilled';
}
export type FromPanel =
  | PanelReadyMessage
  | RevealRowMessage
  | SelectRowMessage
  | ChooseMetricMessage
  | ChooseColoringMessage
  | UseDistilledMessage
  | RevealSampleTokenMessage;

/** Returns the message if it is well-formed, else undefined (and the host ignores it). */
export function parseFromPanel(m: unknown, rowCount: number): FromPanel | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const msg = m as Record<string, unknown>;
  const validRow = () =>
    Number.isInteger(msg.index) &&
    (msg.index as number) >= 0 &&
    (msg.index as number) < rowCount &&
    Number.isInteger(msg.analysisId);
  switch (msg.type) {
    case 'ready':
      return { type: 'ready' };
    case 'useDistilled':
      return { type: 'useDistilled' };
    case 'revealRow':
    case 'selectRow':
      return validRow()
        ? { type: msg.type, analysisId: msg.analysisId as number, index: msg.index as number }
        : undefined;
    case 'revealSampleToken':
      // checked against the run by the host (which knows its continuations' lengths)
      return [msg.samplesId, msg.sample, msg.index].every((x) => Number.isInteger(x) && (x as number) >= 0)
        ? {
            type: 'revealSampleToken',
            samplesId: msg.samplesId as number,
            sample: msg.sample as number,
            index: msg.index as number,
          }
        : undefined;
    case 'chooseMetric':
      return typeof msg.metric === 'string' && isMetricKey(msg.metric)
        ? { type: 'chooseMetric', metric: msg.metric }
        : undefined;
    case 'chooseColoring':
      return msg.colorBy === 'value' || msg.colorBy === 'change'
        ? { type: 'chooseColoring', colorBy: msg.colorBy }
        : undefined;
    default:
      return undefined;
  }
}
