/**
 * The heatmap colour scale shared by the terminal table, the HTML report and the editor:
 * a sequential yellow → orange → red → purple ramp (after ColorBrewer's YlOrRd, extended)
 * that keeps its order in light and dark themes.
 */
export type Rgb = [number, number, number];

const STOPS: Rgb[] = [
  [255, 255, 204],
  [254, 217, 118],
  [253, 141, 60],
  [227, 26, 28],
  [128, 0, 38],
  [63, 0, 60],
];

/** Colour for t in [0, 1] (clamped). */
export function heatColor(t: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 1)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f)) as Rgb;
}

/** Black or white, whichever reads better on `bg` (WCAG relative luminance). */
export function textColorOn(bg: Rgb): Rgb {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const L = 0.2126 * lin(bg[0]) + 0.7152 * lin(bg[1]) + 0.0722 * lin(bg[2]);
  return L > 0.179 ? [0, 0, 0] : [255, 255, 255];
}

/**
 * The values mapped to the bottom and top of the scale: 0 (or the minimum, for metrics that
 * go negative such as k1) up to a fixed maximum or the largest finite value.
 */
export function scaleRange(values: number[], fixedMax?: number): [number, number] {
  let min = 0;
  let max = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  if (fixedMax !== undefined && fixedMax > 0) max = fixedMax;
  return max > min ? [min, max] : [min, min + 1];
}

/** Position of `v` on the scale, in [0, 1]. */
export function scalePosition(v: number, [lo, hi]: [number, number]): number {
  return Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
}

export function toHex(c: Rgb): string {
  return '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
}
