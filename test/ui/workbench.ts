/** Driving code-server's workbench in Chromium as a person does: the palette, Quick Open, hovering a word. */
import * as path from 'node:path';
import { CHROMIUM_ARGS, playwright, type CodeServer } from '../integration/codeServer';
import { tempDir } from '../helpers';

export const SHOTS = path.resolve(__dirname, '..', '..', 'test-results', 'ui');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Page = any;

/** Opens the workbench on the server's workspace in a fresh Chromium profile. */
export async function openWorkbench(server: CodeServer): Promise<{ page: Page; close: () => Promise<void> }> {
  const profile = tempDir('distill-lens-ui-chromium-');
  const { chromium } = playwright();
  const browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1400, height: 900 }, args: CHROMIUM_ARGS, env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile } });
  const page = browser.pages()[0] ?? (await browser.newPage());
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(2000);
  return { page, close: () => browser.close() };
}

/** Runs a command from the palette, clicking the row that shows `pick` (default: the title after the category). */
export async function palette(page: Page, command: string, pick = command.replace(/^.*?: /, '')): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${command}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: pick }).first().click();
}

/** Moves the mouse over characters [from, to) of the first occurrence of `word` in the last editor. */
export async function hoverWord(page: Page, word: string, from = 1, to = 3): Promise<boolean> {
  // runs in the page (a string, so this Node file needs no DOM types)
  const box: { x: number; y: number } | null = await page.evaluate(`(() => {
    const editors = document.querySelectorAll('.monaco-editor .view-lines');
    const walker = document.createTreeWalker(editors[editors.length - 1], NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const i = n.textContent.indexOf(${JSON.stringify(word)});
      if (i >= 0) {
        const r = document.createRange();
        r.setStart(n, i + ${from});
        r.setEnd(n, i + ${to});
        const b = r.getBoundingClientRect();
        return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
      }
    }
    return null;
  })()`);
  if (!box) return false;
  await page.mouse.move(box.x, box.y);
  return true;
}
