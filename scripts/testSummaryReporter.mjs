// A node:test reporter that counts what ran, passed, failed and was skipped (with each skip's
// reason) and writes it as one JSON object; scripts/runTests.mjs prints the last line from it.
export default async function* testSummaryReporter(source) {
  const summary = { passed: 0, failed: 0, skipped: 0, skipReasons: {} };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.details?.type === 'suite') continue; // count tests, not the describe() around them
    if (data.skip !== undefined && data.skip !== false) {
      summary.skipped++;
      const reason = typeof data.skip === 'string' ? data.skip : 'skipped';
      summary.skipReasons[reason] = (summary.skipReasons[reason] ?? 0) + 1;
    } else if (event.type === 'test:pass') summary.passed++;
    else summary.failed++;
  }
  yield JSON.stringify(summary);
}
