/**
 * The UI as a person sees it: the packaged linux-x64 VSIX installed in code-server, driven
 * through Chromium: Analyze Selection from the command
 * palette, a hover over a token, the panel's heatmap, the heatmap in light and high-contrast
 * themes, Run Distillation with its before/after view, Analyze Document cancelled from its notification, Choose Student
 * with a folder from the open dialog and Choose Teacher with a hub id. Screenshots go to test-results/ui/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { installPackagedExtension, startCodeServer } from '../integration/codeServer';
import {
  acceptFolderInDialog,
  distilSelection,
  hoverWord,
  openWorkbench,
  prepareUiTest,
  painted,
  palette as runPalette,
  selectionCleared,
  SHOTS,
  untilFileContains,
} from './workbench';
import { storiesPair, tempDir, needs, needsVscode } from '../helpers';

test(
  'in the browser: analyse, hover, read the panel, switch themes, choose a teacher',
  { timeout: 300_000, ...needs('stories260k'), ...needsVscode() },
  async () => {
    prepareUiTest();
    const { teacher, student } = storiesPair();
    const workspace = tempDir('distill-lens-ui-ws-');
    fs.writeFileSync(
      path.join(workspace, 'story.txt'),
      'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.\n',
    );
    fs.writeFileSync(
      path.join(workspace, 'long.txt'),
      'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.\n\n'.repeat(
        12_000,
      ),
    );
    const extensionsDir = installPackagedExtension();
    const server = await startCodeServer({
      workspace,
      smokeTestDriver: false,
      extensionsDir,
      settings: {
        'distillLens.teacher': teacher,
        'distillLens.student': student,
        'workbench.colorTheme': 'Default Dark Modern',
        'editor.fontSize': 16,
        'editor.minimap.enabled': false,
      },
    });
    const { page, close } = await openWorkbench(server);
    const palette = (command: string) => runPalette(page, command, command.replace(/^Distill Lens: /, ''));
    try {
      // open the story and select its line
      await page.keyboard.press('Control+P');
      await page.locator('.quick-input-widget input').fill('story.txt');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'story.txt' }).first().click();
      const lines = page.locator('.monaco-editor .view-lines');
      await lines.waitFor();
      await lines.click();
      await page.keyboard.press('Control+Home');
      await page.keyboard.press('Shift+End');
      await palette('Distill Lens: Analyze Selection');
      // the legend appears in the status bar when the decorations are painted
      const legend = page.locator('.statusbar-item', { hasText: /fkl 0–/ });
      await legend.waitFor({ timeout: 120_000 });
      await page.keyboard.press('Control+Home'); // drop the selection so the colours show as they are
      await selectionCleared(page);
      await page.screenshot({ path: path.join(SHOTS, 'heatmap.png') });

      // hover the token " girl"
      assert.ok(await hoverWord(page, 'girl'), 'the word is on screen');
      const hover = page.locator('.monaco-hover', { hasText: 'Distill Lens' });
      await hover.waitFor({ timeout: 20_000 });
      const hoverText = await hover.innerText();
      for (const s of ['Divergences', 'Top tokens', 'teacher', 'student', 'nckd'])
        assert.ok(hoverText.includes(s), `hover shows ${s}`);
      await page.screenshot({ path: path.join(SHOTS, 'hover.png') });

      // the panel's heatmap
      await page.mouse.move(5, 5);
      await palette('Distill Lens: Open Panel');
      const frame = page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
      await frame.locator('#heatmap .tok').first().waitFor({ timeout: 60_000 });
      const tokens = await frame.locator('#heatmap .tok').allInnerTexts();
      assert.ok(tokens.join('').includes('little girl named Lily'), tokens.join('|'));
      await frame.locator('#heatmap .tok', { hasText: 'Lily' }).first().click();
      await frame.locator('#details').waitFor();
      // the editor selects the token, and the panel keeps showing that token
      await frame.locator('#details[data-token*="Lily"]').waitFor();
      assert.match(await frame.locator('#summary').innerText(), /teacher perplexity/);
      await page.screenshot({ path: path.join(SHOTS, 'panel.png') });
      // the heatmap is one tab stop: its arrow keys move between tokens
      assert.equal(await frame.locator('#heatmap [tabindex]').count(), 0, 'no tab stop per token');
      await frame.locator('#heatmap').focus();
      await page.keyboard.press('ArrowRight');
      await frame.locator('#details:not([data-token*="Lily"])').waitFor();
      assert.equal(await frame.locator('#heatmap .tok.selected').count(), 1, 'one highlighted token');

      // Analyze Layers of Selection: the panel's Layers section, and a cell reveals its token
      await lines.click();
      await page.keyboard.press('Control+Home');
      await page.keyboard.press('Shift+End');
      await palette('Distill Lens: Analyze Layers of Selection');
      await frame.locator('#layers-student rect').first().waitFor({ timeout: 60_000 });
      assert.equal(
        await frame.locator('#cka tr').count(),
        1 + 4,
        "a row per student state (stories260K's student: 3 layers)",
      );
      await frame.locator('#layers').scrollIntoViewIfNeeded();
      await frame.locator('#layers-teacher rect[data-row="5"][data-state="2"]').click();
      await frame.locator('#heatmap .tok.selected').waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'layers.png') });

      // Run Distillation… on the story from the palette, with the feature loss: the loss chart
      // fills in, then the new student analyses the same text and the panel colours each token
      // by its change
      await lines.click();
      await page.keyboard.press('Control+A');
      await distilSelection(page, frame, {
        loss: 'jsd',
        lossRow: 'Jensen',
        steps: 20,
        watch: 'Once upon a time, there was a little girl named',
        feature: '+ feature loss (MSE)',
      });
      await frame
        .locator(
          '#heatmap .tok.fell0, #heatmap .tok.fell1, #heatmap .tok.fell2, #heatmap .tok.fell3, #heatmap .tok.fell4',
        )
        .first()
        .waitFor({ timeout: 10_000 });
      await page.keyboard.press('Control+Home');
      await page.screenshot({ path: path.join(SHOTS, 'distillation.png') });
      // the watched prompt: the student's continuation before and after the run, painted
      await frame
        .locator('#watch-after span[class*="fell"], #watch-after span[class*="rose"]')
        .first()
        .waitFor();
      await frame.locator('#watch').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(SHOTS, 'distillation-watch.png') });
      // the layer view re-analysed with the distilled student: its lens now and before, the
      // mapped layers' CKA now and before
      await frame.locator('#layers-student-before rect').first().waitFor({ timeout: 60_000 });
      assert.match(
        await frame.locator('#mapped-cka').innerText(),
        /mean CKA .*: [0-9.]+; before distillation [0-9.]+/,
      );
      await frame.locator('#layers').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(SHOTS, 'layers-after.png') });

      // the same heatmap in the light and both high-contrast themes, picked from the palette,
      // without a selection so that the colours show as they are
      await page.locator('.monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+End');
      await selectionCleared(page);
      for (const [theme, themeClass, shot] of [
        ['Light Modern', 'vs', 'heatmap-light.png'],
        ['Dark High Contrast', 'hc-black', 'heatmap-high-contrast.png'],
        ['Light High Contrast', 'hc-light', 'heatmap-high-contrast-light.png'],
      ]) {
        await palette('Preferences: Color Theme');
        const input = page.locator('.quick-input-widget input');
        await input.fill(theme);
        await page.locator('.quick-input-list .monaco-list-row', { hasText: theme }).first().click();
        await page.locator(`.monaco-workbench.${themeClass}`).waitFor({ timeout: 20_000 });
        await painted(page);
        await page.screenshot({ path: path.join(SHOTS, shot) });
      }

      // Analyze Document on a long file, cancelled from the progress notification's Cancel button
      await page.keyboard.press('Control+P');
      await page.locator('.quick-input-widget input').fill('long.txt');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'long.txt' }).first().click();
      await page.locator('.tab.active', { hasText: 'long.txt' }).waitFor();
      await palette('Distill Lens: Analyze Document');
      const toast = page.locator('.notification-toast', { hasText: 'analysing long.txt' });
      await toast.waitFor({ timeout: 30_000 });
      await toast.locator('.monaco-button', { hasText: 'Cancel' }).click();
      await page.locator('.statusbar-item', { hasText: 'analysis cancelled' }).waitFor({ timeout: 20_000 });
      await toast.waitFor({ state: 'detached', timeout: 20_000 });
      // parts finished before the Cancel stay painted (the status bar said how many); none is half-done

      // Choose Student…: a folder picked in the open dialog (code-server's own file dialog: type
      // the path), a copy of the teacher with a subfolder of its own
      const picked = path.join(tempDir('distill-lens-ui-pick-'), 'picked-student');
      fs.cpSync(teacher, picked, { recursive: true });
      fs.mkdirSync(path.join(picked, 'earlier-runs'));
      await palette('Distill Lens: Choose Student…');
      await page
        .locator('.quick-input-list .monaco-list-row', { hasText: 'Choose a folder' })
        .first()
        .click();
      // code-server's own file dialog: type the path, wait for its listing, accept
      await acceptFolderInDialog(page, picked, 'earlier-runs');

      // Choose Teacher…: a hub id typed into the input box lands in the user settings
      await palette('Distill Lens: Choose Teacher…');
      await page
        .locator('.quick-input-list .monaco-list-row', { hasText: 'Enter a hub model id' })
        .first()
        .click();
      const idInput = page.locator('.quick-input-widget input');
      await idInput.fill('HuggingFaceTB/SmolLM2-360M');
      await page.keyboard.press('Enter');
      const settingsFile = path.join(server.home, 'user-data', 'User', 'settings.json');
      await untilFileContains(settingsFile, 'HuggingFaceTB/SmolLM2-360M');
      assert.equal(
        JSON.parse(fs.readFileSync(settingsFile, 'utf8'))['distillLens.student'],
        picked,
        'the folder chosen in the dialog is the student',
      );
    } catch (e) {
      await page.screenshot({ path: path.join(SHOTS, 'failure.png') }).catch(() => {});
      throw e;
    } finally {
      await close();
      await server.stop();
    }
  },
);
