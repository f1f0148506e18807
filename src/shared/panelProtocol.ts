/**
 * Messages between the extension host and the side panel's webview. Every message says who
 * sends it; the host validates everything it receives (a webview is untrusted content).
 */
import type { MetricKey } from '../core/metricKeys';
import { isMetricKey } from '../core/metricKeys';
import type { Summary, TokenRow } from '../core/tokenRows';

export interface PanelAnalysis {
  /** the analysed text; row spans index into it */
  text: string;
  rows: TokenRow[];
  summary: Summary;
  /** how the models are shown ("built-in teacher", or the setting as written) */
  teacher: string;
  student: string;
  /** both models' folders or hub ids in full, for a tooltip */
  modelPaths?: string;
  documentName: string;
  /**
   * The same text analysed with the previous student (before a distillation run), per row
   * of `rows`: its metric values, or null where that token has no counterpart.
   */
  baseline?: { student: string; rows: (Record<MetricKey, number> | null)[] };
}

/** A distillation run as the panel shows it: a live loss chart, then the held-out change. */
export interface TrainingView {
  status: 'running' | 'done' | 'cancelled' | 'failed';
  /** loss, mode and steps, e.g. "fkl · LoRA r8 · 100 steps" */
  title: string;
  steps: number;
  points: { step: number; loss: number }[];
  message?: string;
  heldOut?: { before: HeldOutNumbers; after: HeldOutNumbers };
  /** the new model folder (done) */
  out?: string;
  /** the new model is now the student */
  used?: boolean;
}

export interface HeldOutNumbers {
  fkl: number;
  rkl: number;
  studentPerplexity: number;
}

/** Host → panel: a new analysis (or none, to clear). */
export interface ShowAnalysisMessage {
  type: 'showAnalysis';
  analysis: PanelAnalysis | null;
  metric: MetricKey;
  fixedMax?: number;
}
/** Host → panel: the editor selection is on row `index` (or on no row: null). */
export interface HighlightRowMessage {
  type: 'highlightRow';
  index: number | null;
}
/** Host → panel: the current (or last) distillation run, or none. */
export interface ShowTrainingMessage {
  type: 'showTraining';
  training: TrainingView | null;
}
export type ToPanel = ShowAnalysisMessage | HighlightRowMessage | ShowTrainingMessage;

/** Panel → host: the webview has loaded and wants the current state. */
export interface PanelReadyMessage {
  type: 'ready';
}
/** Panel → host: show row `index` (position in rows) in the editor. */
export interface RevealRowMessage {
  type: 'revealRow';
  index: number;
}
/** Panel → host: the user picked another metric in the panel. */
export interface ChooseMetricMessage {
  type: 'chooseMetric';
  metric: MetricKey;
}
/** Panel → host: use the distilled student and analyse the same text again. */
export interface UseDistilledMessage {
  type: 'useDistilled';
}
export type FromPanel = PanelReadyMessage | RevealRowMessage | ChooseMetricMessage | UseDistilledMessage;

/** Returns the message if it is well-formed, else undefined (and the host ignores it). */
export function parseFromPanel(m: unknown, rowCount: number): FromPanel | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const msg = m as Record<string, unknown>;
  switch (msg.type) {
    case 'ready':
      return { type: 'ready' };
    case 'useDistilled':
      return { type: 'useDistilled' };
    case 'revealRow':
      return Number.isInteger(msg.index) && (msg.index as number) >= 0 && (msg.index as number) < rowCount
        ? { type: 'revealRow', index: msg.index as number }
        : undefined;
    case 'chooseMetric':
      return typeof msg.metric === 'string' && isMetricKey(msg.metric)
        ? { type: 'chooseMetric', metric: msg.metric }
        : undefined;
    default:
      return undefined;
  }
}
