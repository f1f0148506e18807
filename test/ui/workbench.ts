/** Driving code-server's workbench in Chromium as a person does: the palette, Quick Open, hovering a word. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { CHROMIUM_ARGS, playwright, toolsInstalled, type CodeServer } from '../integration/codeServer';
import { tempDir } from '../helpers';

export const SHOTS = path.resolve(__dirname, '..', '..', 'test-results', 'ui');

export type Page = any;

/** Before a UI test: the tools (when the file runs alone, not through npm test) and the screenshot folder. */
export function prepareUiTest(): void {
  if (!toolsInstalled())
    execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', 'scripts', 'testTools.mjs')], {
      stdio: 'inherit',
    });
  fs.mkdirSync(SHOTS, { recursive: true });
}

/** Opens the workbench on the server's workspace in a fresh Chromium profile. */
export async function openWorkbench(server: CodeServer): Promise<{ page: Page; close: () => Promise<void> }> {
  const profile = tempDir('distill-lens-ui-chromium-');
  const { chromium } = playwright();
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  await page.goto(`${server.url}/?folder=${encodeURIComponent(server.workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  // the extension's contributions are in once its activity bar entry is
  await page
    .locator('.part.activitybar .action-label[aria-label^="Distill Lens"]')
    .waitFor({ timeout: 60_000 });
  return { page, close: () => browser.close() };
}

/** Resolves when `file` contains `text` (watching its folder: editors replace files by renaming). */
export async function untilFileContains(file: string, text: string, timeoutMs = 20_000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const contains = () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes(text);
    const stop = () => {
      watcher.close();
      clearTimeout(timer);
    };
    const watcher = fs.watch(path.dirname(file), () => {
      if (!contains()) return;
      stop();
      resolve();
    });
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${file} did not come to contain ${text} within ${timeoutMs} ms`));
    }, timeoutMs);
    if (contains()) {
      stop();
      resolve();
    }
  });
}

/** Resolves after the page has painted twice (a change of theme or decorations is on screen). */
export async function painted(page: Page): Promise<void> {
  await page.evaluate(
    'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))',
  );
}

/** Resolves once no editor shows a selection (so screenshots show the colours as they are). */
export async function selectionCleared(page: Page): Promise<void> {
  await page.waitForFunction(`document.querySelectorAll('.monaco-editor .selected-text').length === 0`);
  await painted(page);
}

/** Runs a command from the palette, clicking the row that shows `pick` (default: the title after the category). */
export async function palette(
  page: Page,
  command: string,
  pick = command.replace(/^.*?: /, ''),
): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${command}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: pick }).first().click();
}

/**
 * Accepts `folder` in code-server's own folder dialog (already open): types the path, waits for the
 * listing of `child` (a subfolder only that folder has), presses Enter and waits for the dialog to
 * close. The dialog navigates into the active row instead of accepting the typed path when one
 * is active as Enter lands (it happened on a slow CI machine), so it types the path again and
 * retries; a wrong folder accepted would still fail the caller's check of what was chosen.
 */
export async function acceptFolderInDialog(page: Page, folder: string, child: string): Promise<void> {
  const dialog = page.locator('.quick-input-widget');
  const pathInput = dialog.locator('input');
  for (let attempt = 1; ; attempt++) {
    await pathInput.waitFor({ state: 'visible' });
    await pathInput.fill(folder.endsWith('/') ? folder : folder + '/');
    await dialog.locator('.quick-input-list .monaco-list-row', { hasText: child }).first().waitFor();
    await page.keyboard.press('Enter');
    try {
      await dialog.waitFor({ state: 'hidden', timeout: attempt < 3 ? 10_000 : 20_000 });
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
  }
}

/** Moves the mouse over characters [from, to) of the first occurrence of `word` in the last editor. */
export async function hoverWord(page: Page, word: string, from = 1, to = 3): Promise<boolean> {
  // runs in the page (a string, so this Node file needs no DOM types)
  // decorations that colour text split a word over several text nodes: search their concatenation
  const box: { x: number; y: number } | null = await page.evaluate(`(() => {
    const editors = document.querySelectorAll('.monaco-editor .view-lines');
    const walker = document.createTreeWalker(editors[editors.length - 1], NodeFilter.SHOW_TEXT);
    const nodes = [];
    let text = '';
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      nodes.push({ node: n, start: text.length });
      text += n.textContent;
    }
    const i = text.indexOf(${JSON.stringify(word)});
    if (i < 0) return null;
    const at = (offset) => {
      const hit = nodes.filter((x) => x.start <= offset).pop();
      return [hit.node, Math.min(offset - hit.start, hit.node.textContent.length)];
    };
    const r = document.createRange();
    r.setStart(...at(i + ${from}));
    r.setEnd(...at(i + ${to}));
    const b = r.getBoundingClientRect();
    return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
  })()`);
  if (!box) return false;
  await page.mouse.move(box.x, box.y);
  return true;
}

/**
 * Run Distillation… from the palette on the selection: picks the loss (by a word of its
 * description), the prompt to watch (none unless `watch`), the steps, accepts the suggested output folder (returned), and waits for the
 * run to end; then Use as Student and Re-analyse (with `pressTwice`, in the panel and then in the
 * notification), and the panel's colour-by-change view.
 */
export async function distilSelection(
  page: Page,
  frame: Page,
  o: {
    loss: string;
    lossRow: string;
    steps: number;
    pressTwice?: boolean;
    watch?: string;
    /** the row to pick when asked about feature distillation (default: the logit loss only) */
    feature?: string;
  },
): Promise<string> {
  const quick = page.locator('.quick-input-widget input');
  await palette(page, 'Distill Lens: Run Distillation…');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'The selection' }).first().click();
  await quick.fill(o.loss);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: o.lossRow }).first().click();
  const title = page.locator('.quick-input-widget .quick-input-title');
  // a word-level loss: feature distillation is offered
  await title.filter({ hasText: 'feature distillation?' }).waitFor();
  await page
    .locator('.quick-input-list .monaco-list-row', { hasText: o.feature ?? 'The logit loss only' })
    .first()
    .click();
  await title.filter({ hasText: 'a prompt to watch' }).waitFor();
  await quick.fill(o.watch ?? '');
  await page.keyboard.press('Enter');
  await title.filter({ hasText: 'training steps' }).waitFor();
  await quick.fill(String(o.steps));
  await page.keyboard.press('Enter');
  // the next question suggests an output folder (a path) in the same input
  await page.waitForFunction(`document.querySelector('.quick-input-widget input')?.value.includes('/')`);
  const out: string = await quick.inputValue();
  await page.keyboard.press('Enter'); // the suggested output folder
  const done = page.locator('.notification-toast', { hasText: 'held-out forward KL' });
  await done.waitFor({ timeout: 180_000 });
  if (!/done/.test((await frame.locator('#training').getAttribute('title')) ?? ''))
    throw new Error('the panel does not show the finished run');
  if (o.pressTwice) {
    // the panel's button first, then the notification's, still on screen: the second press
    // changes nothing and says so, and the comparison stays with the student before the run
    await frame.locator('#use-distilled').click();
    await frame.locator('#comparison').waitFor({ timeout: 60_000 });
    await done.locator('.monaco-button', { hasText: 'Use as Student and Re-analyse' }).click();
    await page.locator('.notification-toast', { hasText: 'is already the student' }).waitFor();
  } else await done.locator('.monaco-button', { hasText: 'Use as Student and Re-analyse' }).click();
  await frame.locator('#comparison').waitFor({ timeout: 60_000 });
  await frame.locator('#colorBy').click(); // its options live in the element's shadow DOM: pick with the keyboard
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  return out;
}

/** Copies the extension host's logs (Distill Lens's output channel among them) to test-results/ui/<name>-logs. */
export function saveLogs(server: CodeServer, name: string): void {
  const logs = path.join(server.home, 'user-data', 'logs');
  if (fs.existsSync(logs)) fs.cpSync(logs, path.join(SHOTS, `${name}-logs`), { recursive: true });
}
