/**
 * Integration tests inside a real VS Code extension host (code-server, offline, driven by
 * Chromium): the suite in test/integration/suite runs in the extension host and reports
 * back through the smoke-test driver.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as esbuild from 'esbuild';
import { CHROMIUM_ARGS, playwright, startCodeServer, toolsInstalled } from './codeServer';
import { demoPair, tempDir, needsVscode } from '../helpers';
import { startFakeServer } from '../served/fakeServer';
import { trainByteLevelBpe } from '../../src/models/bpeTrainer';
import { llamaCheckpoint } from '../models/randomCheckpoints';

const ROOT = path.resolve(__dirname, '..', '..');

test(
  'extension tests in a real VS Code (code-server 4.139, VS Code 1.139)',
  { timeout: 600_000, ...needsVscode() },
  async () => {
    // run alone (not through npm test), the tools may still be missing
    if (!toolsInstalled())
      execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'testTools.mjs')], { stdio: 'inherit' });
    assert.ok(
      toolsInstalled(),
      'needs /usr/bin/chromium (apt-get install chromium) and the tools from scripts/testTools.mjs',
    );
    const suite = path.join(ROOT, 'dist-test', 'suite.js');
    await esbuild.build({
      entryPoints: [path.join(__dirname, 'suite', 'index.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      outfile: suite,
      external: ['vscode', 'onnxruntime-node'],
      logLevel: 'warning',
    });
    await esbuild.stop(); // its service process would keep this test file from exiting

    const { teacher, student } = demoPair();
    // a served teacher for the suite: the fake vLLM server computing from the built-in teacher
    const served = await startFakeServer(teacher, { protocol: 'vllm', apiKey: 'sesame' });
    // a student whose tokenizer differs from the built-in teacher's: a random Llama with a BPE
    // vocabulary trained here on declarations like the sample's
    const corpus = Array.from(
      { length: 30 },
      (_, i) =>
        `/** Returns the number of items ${i}. */\ndeclare function count${i % 4}<T>(items: readonly T[]): number;\ninterface Queue<T> { push(item: T, priority: number): void; }`,
    );
    const acrossStudent = llamaCheckpoint(1, 71, {
      vocab: 320,
      tokenizer: trainByteLevelBpe(corpus, 320).json,
    }).folder;
    const workspace = tempDir('distill-lens-ws-');
    fs.writeFileSync(
      path.join(workspace, 'sample.txt'),
      // two paragraphs of declarations (the built-in pair's kind of text); tests analyse the first line
      '/** Returns the number of items in the list, counting each item once, without changing the list. */\n' +
        'declare function countItems<T>(items: readonly T[]): number;\n\n' +
        '/** A queue that hands out items in priority order. */\n' +
        'interface PriorityQueue<T> {\n    push(item: T, priority: number): void;\n    pop(): T | undefined;\n}\n',
    );
    const server = await startCodeServer({
      workspace,
      smokeTestDriver: true,
      settings: {
        'distillLens.teacher': teacher,
        'distillLens.student': student,
        // short continuations, the same in every run (the suite compares them with the CLI's)
        'distillLens.sampling.maxNewTokens': 20,
        'distillLens.sampling.seed': 3,
      },
    });
    const profile = tempDir('distill-lens-chromium-');
    const { chromium } = playwright();
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
    });
    const output: string[] = [];
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const exitCode = new Promise<number>((resolve) => {
        void page.exposeFunction('codeAutomationExit', (code: number) => resolve(code));
      });
      await page.exposeFunction('codeAutomationLog', (type: string, args: unknown[]) => {
        const line = (Array.isArray(args) ? args : [args])
          .map((a) => (typeof a === 'string' ? a : JSON.stringify(a)))
          .join(' ');
        output.push(line);
      });
      const remote = (p: string) => `vscode-remote://127.0.0.1:${server.port}${p}`;
      const payload = [
        ['extensionDevelopmentPath', remote(ROOT)],
        ['extensionTestsPath', remote(suite)],
        [
          'extensionEnvironment',
          JSON.stringify({
            DISTILL_LENS_CACHE: process.env.DISTILL_LENS_CACHE,
            DISTILL_LENS_TEST_WORKSPACE: workspace,
            DISTILL_LENS_TEST_FILTER: process.env.DISTILL_LENS_TEST_FILTER ?? '',
            DISTILL_LENS_TEST_SERVED_TEACHER: `openai+${served.url}#demo-teacher`,
            DISTILL_LENS_TEST_ACROSS_STUDENT: acrossStudent,
          }),
        ],
      ];
      await page.goto(
        `${server.url}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`,
      );
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<number>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`timed out; output so far:\n${output.join('\n')}`)),
            420_000,
          )),
      );
      // the timer is cleared at once: a pending one would keep this test file alive for minutes
      const code = await Promise.race([exitCode, timeout]).finally(() => clearTimeout(timer));
      const summary = output.filter((l) => /^(ok|not ok|#|\d+ passed)/.test(l));
      process.stdout.write(summary.map((l) => `# [vscode] ${l}`).join('\n') + '\n');
      assert.equal(code, 0, `extension tests failed:\n${output.join('\n')}`);
      assert.ok(
        output.some((l) => /^\d+ passed, 0 failed$/.test(l)),
        `no test summary in:\n${output.join('\n')}`,
      );
    } finally {
      await browser.close();
      await server.stop();
      await served.close();
    }
  },
);
