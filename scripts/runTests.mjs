// `npm test`: runs every test/**/*.test.ts with Node's test runner (Node 20's --test does not
// expand globs or find .ts files itself), after installing what the tests in a real VS Code
// need (scripts/testTools.mjs). Extra arguments filter test files by path substring.
// The last line says how many tests ran and how many were skipped, and why.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensureVscodeTools } from './testTools.mjs';

const filters = process.argv.slice(2);
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.ts') && (filters.length === 0 || filters.some((f) => p.includes(f))))
      files.push(p);
  }
};
walk('test');

const env = { ...process.env };
if (files.some((f) => f.startsWith(join('test', 'integration')) || f.startsWith(join('test', 'ui')))) {
  const reason = ensureVscodeTools();
  // the tests in a real VS Code read this and skip themselves with the reason
  if (reason) env.DISTILL_LENS_NO_VSCODE = reason;
}

mkdirSync('.test-cache', { recursive: true });
const summaryFile = join('.test-cache', 'test-summary.json');
const run = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=./scripts/testSummaryReporter.mjs',
    `--test-reporter-destination=${summaryFile}`,
    ...files,
  ],
  { stdio: 'inherit', env },
);

let summary;
try {
  summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch {
  console.log(`npm test: the test runner stopped before reporting (exit ${run.status ?? run.signal})`);
  process.exit(run.status || 1);
}
// one line per missing fixture (a test that needs two names both), with how many tests need it
const byReason = new Map();
for (const [reason, count] of Object.entries(summary.skipReasons)) {
  for (const part of reason.split(/; (?=needs )/)) byReason.set(part, (byReason.get(part) ?? 0) + count);
}
if (byReason.size > 0) {
  console.log('\nskipped:');
  for (const [reason, count] of byReason) console.log(`  ${count} test${count === 1 ? '' : 's'}: ${reason}`);
}
const ran = summary.passed + summary.failed;
console.log(
  `\nnpm test: ${ran} tests ran (${summary.passed} passed, ${summary.failed} failed), ${summary.skipped} skipped`,
);
process.exit(run.status ?? 1);
