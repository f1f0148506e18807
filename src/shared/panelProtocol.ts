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
  teacher: string;
  student: string;
  documentName: string;
}

/** Host → panel: a new analysis (or none, to clear). */
export interface ShowAnalysisMessage {
  type: 'showAnalysis';
  analysis: PanelAnalysis | null;
  metric: MetricKey;
  fixedMax?: number;
}
/** Host → panel: the metric changed. */
export interface SetMetricToPanel {
  type: 'setMetric';
  metric: MetricKey;
}
/** Host → panel: the editor selection is on row `index` (or on no row: null). */
export interface HighlightRowMessage {
  type: 'highlightRow';
  index: number | null;
}
export type ToPanel = ShowAnalysisMessage | SetMetricToPanel | HighlightRowMessage;

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
export type FromPanel = PanelReadyMessage | RevealRowMessage | ChooseMetricMessage;

/** Returns the message if it is well-formed, else undefined (and the host ignores it). */
export function parseFromPanel(m: unknown, rowCount: number): FromPanel | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const msg = m as Record<string, unknown>;
  switch (msg.type) {
    case 'ready':
      return { type: 'ready' };
    case 'revealRow':
      return Number.isInteger(msg.index) && (msg.index as number) >= 0 && (msg.index as number) < rowCount ? { type: 'revealRow', index: msg.index as number } : undefined;
    case 'chooseMetric':
      return typeof msg.metric === 'string' && isMetricKey(msg.metric) ? { type: 'chooseMetric', metric: msg.metric } : undefined;
    default:
      return undefined;
  }
}
