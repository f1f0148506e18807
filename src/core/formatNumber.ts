/** How every surface (terminal, hover, panel, status bar) prints a metric value. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  if (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5) return x.toExponential(3);
  return x.toFixed(4);
}
