/**
 * The first run of a new user: the packaged linux-x64 VSIX installed in code-server, no
 * settings at all (the built-in pair), driven through Chromium. Opens the walkthrough, the
 * sample text, analyses it, reads a hover, opens the panel, runs a 20-step distillation and
 * the before/after view. Screenshots go to test-results/ui/first-run-*.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { installPackagedExtension, startCodeServer } from '../integration/codeServer';
import {
  distilSelection,
  hoverWord,
  openWorkbench,
  prepareUiTest,
  palette as runPalette,
  selectionCleared,
  SHOTS,
} from './workbench';
import { tempDir, needsVscode } from '../helpers';

test(
  'first run with the packaged extension and the built-in models: walkthrough, analyse, hover, panel, distil',
  { timeout: 300_000, ...needsVscode() },
  async () => {
    prepareUiTest();
    const workspace = tempDir('distill-lens-first-run-');
    const server = await startCodeServer({
      workspace,
      smokeTestDriver: false,
      extensionsDir: installPackagedExtension(),
      settings: {
        'workbench.colorTheme': 'Default Dark Modern',
        'editor.fontSize': 15,
        'editor.minimap.enabled': false,
      },
    });
    const { page, close } = await openWorkbench(server);
    const palette = (command: string, pick?: string) => runPalette(page, command, pick);
    try {
      // the walkthrough is listed and opens
      await palette('Welcome: Open Walkthrough', 'Open Walkthrough');
      await page
        .locator('.quick-input-list .monaco-list-row', { hasText: 'Get started with Distill Lens' })
        .first()
        .click();
      await page
        .locator('.getting-started-category, .gettingStartedSlideDetails', { hasText: 'Analyse a selection' })
        .first()
        .waitFor({ timeout: 20_000 });
      await page.screenshot({ path: path.join(SHOTS, 'first-run-walkthrough.png') });

      // the walkthrough's own buttons, as a new user presses them on the Welcome page: the
      // sample opens in an editor; back on the Welcome page, Analyze Selection acts on it
      const walkthroughTab = page.locator('.tab.active');
      const walkthroughTitle = (await walkthroughTab.innerText()).trim();
      await page.getByRole('button', { name: 'Open the sample' }).first().click();
      const lines = page.locator('.monaco-editor .view-lines').last();
      await lines.waitFor();
      await page.locator('.tab', { hasText: walkthroughTitle }).first().click();
      const analyseStep = page.locator('.getting-started-step', { hasText: 'Analyse a selection' });
      assert.equal(
        await analyseStep.locator('[role="checkbox"]').first().getAttribute('aria-checked'),
        'false',
        'not done before an analysis',
      );
      await page.getByRole('button', { name: 'Analyze Selection' }).first().click();
      const legend = page.locator('.statusbar-item', { hasText: /fkl 0–/ });
      await legend.waitFor({ timeout: 120_000 });
      // the step is ticked once the analysis has succeeded (not when the button was pressed)
      await page.locator('.tab', { hasText: walkthroughTitle }).first().click();
      await analyseStep
        .locator('[role="checkbox"][aria-checked="true"]')
        .first()
        .waitFor({ timeout: 20_000 });
      await page.screenshot({ path: path.join(SHOTS, 'first-run-walkthrough-done.png') });
      await page.locator('.tab', { hasText: 'Untitled' }).first().click();
      await lines.click();
      await page.keyboard.press('Control+Home');
      await selectionCleared(page);
      await page.screenshot({ path: path.join(SHOTS, 'first-run-heatmap.png') });

      // a hover on "PriorityQueue"
      assert.ok(await hoverWord(page, 'PriorityQueue', 2, 4), 'the sample is on screen');
      const hover = page.locator('.monaco-hover', { hasText: 'Distill Lens' });
      await hover.waitFor({ timeout: 20_000 });
      assert.match(await hover.innerText(), /teacher[\s\S]*student/);
      await page.screenshot({ path: path.join(SHOTS, 'first-run-hover.png') });
      await page.mouse.move(5, 5);

      // the panel
      await palette('Distill Lens: Open Panel');
      const frame = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
      await frame.locator('#heatmap .tok').first().waitFor({ timeout: 60_000 });
      assert.ok((await frame.locator('#heatmap').innerText()).includes('PriorityQueue'));
      assert.match(await frame.locator('#summary').innerText(), /teacher perplexity/);
      await page.screenshot({ path: path.join(SHOTS, 'first-run-panel.png') });

      // a 20-step distillation of the built-in student on the sample, then before/after
      await lines.click();
      await page.keyboard.press('Control+A');
      const out = await distilSelection(page, frame, {
        loss: 'fkl',
        lossRow: 'forward KL',
        steps: 20,
        pressTwice: true,
      });
      assert.match(
        await frame.locator('#comparison').innerText(),
        /before: built-in student/,
        'the baseline is still the student before the run',
      );
      assert.match(
        out,
        /distill-lens-models[\\/]demo-student-fkl-/,
        'the built-in student is never the output: a folder in the workspace is suggested',
      );
      await page.keyboard.press('Control+Home');
      await page.screenshot({ path: path.join(SHOTS, 'first-run-distillation.png') });
      const written = fs.readdirSync(path.join(workspace, 'distill-lens-models'));
      assert.equal(written.length, 1);
      const run = JSON.parse(
        fs.readFileSync(path.join(workspace, 'distill-lens-models', written[0], 'run.json'), 'utf8'),
      );
      assert.equal(run.lossCurve.length, 20);
    } catch (e) {
      await page.screenshot({ path: path.join(SHOTS, 'first-run-failure.png') }).catch(() => {});
      throw e;
    } finally {
      await close();
      await server.stop();
    }
  },
);
