import { UsageError } from './errors';

/** The per-token metric keys of docs/metrics.md, in the order the CLI and panel list them. */
export const METRIC_KEYS = [
  'fkl',
  'rkl',
  'jeffreys',
  'jsd',
  'gjsd',
  'tvd',
  'skl',
  'srkl',
  'akl',
  'tckd',
  'nckd',
  'uncertainty',
  'k1',
  'k2',
  'k3',
] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

export const METRIC_LABELS: Record<MetricKey, string> = {
  fkl: 'forward KL(p‖q)',
  rkl: 'reverse KL(q‖p)',
  jeffreys: 'Jeffreys ½(fkl+rkl)',
  jsd: 'Jensen–Shannon',
  gjsd: 'generalised JSD (β)',
  tvd: 'total variation',
  skl: 'skew KL (α)',
  srkl: 'skew reverse KL (α)',
  akl: 'adaptive KL',
  tckd: 'target-class KD',
  nckd: 'non-target KD',
  uncertainty: 'teacher uncertainty 1−p_y',
  k1: 'k1 = −log(p_y/q_y)',
  k2: 'k2 = ½ log²(p_y/q_y)',
  k3: 'k3 = r − 1 − log r',
};

/** The metrics defined on a span when the tokenizers differ (the others need one vocabulary). */
export const SPAN_METRIC_KEYS: readonly MetricKey[] = ['k1', 'k2', 'k3'];

/**
 * The metric an analysis is shown by: the chosen one, or k3 when the tokenizers differ and the
 * chosen one is not defined on spans.
 */
export function shownMetric(metric: MetricKey, acrossTokenizers: boolean): MetricKey {
  return acrossTokenizers && !SPAN_METRIC_KEYS.includes(metric) ? 'k3' : metric;
}

export function isMetricKey(key: string): key is MetricKey {
  return (METRIC_KEYS as readonly string[]).includes(key);
}

/** Throws a message listing the valid keys when `key` is not one. */
export function parseMetricKey(key: string): MetricKey {
  if (!isMetricKey(key))
    throw new UsageError(`unknown metric "${key}": choose one of ${METRIC_KEYS.join(', ')}`);
  return key;
}
