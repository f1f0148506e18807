/**
 * The layer view drawn (pure: strings, shared by the HTML report and the panel): a hidden
 * state × token heatmap of the logit lens's KL for each model, and the CKA matrix. Colours
 * come from the heatmap's scale on log(1 + KL) (the embeddings' lens is far from the final
 * distribution and would flatten every later layer on a linear scale); each cell names its
 * row (`data-row`) so a click can reveal the token.
 */
import { heatColor, textColorOn, toHex } from '../core/colorScale';
import { formatNumber } from '../core/formatNumber';
import type { LayerView } from '../shared/protocol';
import { escapeHtml } from './htmlParts';

/** The name of hidden state l of L + 1: the embeddings, a layer, or the output. */
export function stateName(l: number, states: number): string {
  return l === 0 ? 'embeddings' : l === states - 1 ? `layer ${l} (output)` : `layer ${l}`;
}

/** Per model, its entries' per-row KL and what they mean. */
export function lensRows(v: LayerView): { model: 'student' | 'teacher'; what: string; values: number[][] }[] {
  return [
    {
      model: 'student',
      what: "KL(teacher final ‖ student's lens)",
      values: v.student.map((e) => e.klToTeacherFinal),
    },
    {
      model: 'teacher',
      what: "KL(teacher's lens ‖ teacher final)",
      values: v.teacher.map((e) => e.klToFinal),
    },
  ];
}

/**
 * One model's heatmap: a row per hidden state (embeddings at the top), a column per token row;
 * `tokens` are the rows' texts (for the cells' titles).
 */
export function layerHeatmapSvg(values: number[][], tokens: string[], label: string): string {
  const rows = tokens.length;
  const cell = Math.max(2, Math.min(14, Math.floor(720 / Math.max(1, rows))));
  const H = 14;
  const left = 120;
  const top = Math.max(1e-12, ...values.flat().filter(Number.isFinite));
  const shade = (v: number) => heatColor(Math.log1p(Math.max(0, v)) / Math.log1p(top));
  const parts: string[] = [];
  values.forEach((entry, l) => {
    const y = l * H;
    parts.push(
      `<text x="${left - 6}" y="${y + H - 3}" text-anchor="end">${escapeHtml(stateName(l, values.length))}</text>`,
    );
    entry.forEach((v, r) => {
      const title = `${JSON.stringify(tokens[r])} · ${stateName(l, values.length)} · ${formatNumber(v)}`;
      parts.push(
        `<rect x="${left + r * cell}" y="${y}" width="${cell}" height="${H - 1}" fill="${toHex(shade(v))}" data-row="${r}" data-state="${l}"><title>${escapeHtml(title)}</title></rect>`,
      );
    });
  });
  const width = left + rows * cell;
  const height = values.length * H;
  return `<svg class="layer-heatmap" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="11" fill="currentColor">${parts.join('')}</svg>`;
}

/** The CKA matrix as a table: student states down, teacher states across, each cell coloured by its value in [0, 1]. */
export function ckaTableHtml(v: LayerView): string {
  const head = v.teacher
    .map((_, j) => `<th title="${escapeHtml(stateName(j, v.teacher.length))}">${j}</th>`)
    .join('');
  const body = v.cka
    .map((row, i) => {
      const cells = row
        .map((x) => {
          const bg = heatColor(x);
          return `<td class="num" style="background:${toHex(bg)};color:${toHex(textColorOn(bg))}">${x.toFixed(2)}</td>`;
        })
        .join('');
      return `<tr><th title="${escapeHtml(stateName(i, v.student.length))}">${i}</th>${cells}</tr>`;
    })
    .join('');
  return `<table class="cka"><tr><th>student ↓ teacher →</th>${head}</tr>${body}</table>`;
}

/** The hover's line: where the student's prediction of this row stops changing. */
export function settlesLine(v: LayerView, row: number): string {
  const L = v.student.length - 1;
  return `student settles at layer ${v.studentSettles[row]} of ${L} (teacher: ${v.teacherSettles[row]} of ${v.teacher.length - 1})`;
}
