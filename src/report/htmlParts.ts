/** Pieces both self-contained HTML reports use. */

export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page's data as a JSON script element (no "</script>" or line separators can end it early), and the side panel it fills. */
export function dataAndSidePanel(data: unknown): string {
  const json = JSON.stringify(data)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `<aside class="side"><div id="details" class="muted">Hover a token for its details.</div></aside>
<script type="application/json" id="data">${json}</script>`;
}
