/**
 * The model process: requests answered across the process boundary, cancellation, and a
 * crash reported and recovered from on the next request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { RuntimeClient, RuntimeCrashedError, RemoteError } from '../../src/runtime/runtimeClient';
import { CancelledError } from '../../src/core/errors';
import { DEFAULT_METRIC_OPTIONS } from '../../src/core/tokenRows';
import { demoPair } from '../helpers';

const SCRIPT = path.resolve(__dirname, '..', '..', 'dist', 'runtime.js');
const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ';

function request(text: string, extra: object = {}) {
  const { teacher, student } = demoPair();
  return { teacher, student, text, options: DEFAULT_METRIC_OPTIONS, metric: 'fkl' as const, device: 'cpu' as const, maxTokens: 100_000, ...extra };
}

test('the model process answers, reports progress, and keeps sessions across requests', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    const progress: string[] = [];
    const first = await client.inspect(request(STORY), { onProgress: (m) => progress.push(m) });
    assert.equal(first.rows.length, first.ids.length - 1);
    assert.ok(progress.some((m) => /teacher forward pass/.test(m)));
    const pid = client.pid;
    const second = await client.inspect(request(STORY));
    assert.equal(client.pid, pid, 'same process');
    assert.ok(second.timings.loadMs < first.timings.loadMs, 'models stay loaded');
    assert.deepEqual(second.rows.map((r) => r.fkl), first.rows.map((r) => r.fkl));
    // errors keep their kind across the boundary
    await assert.rejects(client.inspect(request('')), (e: Error) => e instanceof RemoteError && e.name === 'UsageError' && /text is empty/.test(e.message));
  } finally {
    await client.dispose();
  }
});

test('cancellation stops a long request; the process stays usable', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    await client.inspect(request(STORY)); // load models first
    const abort = new AbortController();
    const long = client.inspect(request(STORY.repeat(150), { window: 64 }), {
      onProgress: (m) => {
        if (/window 3\//.test(m)) abort.abort();
      },
      signal: abort.signal,
    });
    await assert.rejects(long, CancelledError);
    const after = await client.inspect(request(STORY));
    assert.ok(after.rows.length > 0);
  } finally {
    await client.dispose();
  }
});

test('a crash of the model process is reported, and the next request starts a new one', async () => {
  const client = new RuntimeClient({ script: SCRIPT });
  try {
    await client.inspect(request(STORY));
    const pid = client.pid!;
    const pending = client.inspect(request(STORY.repeat(150), { window: 64 }), {
      onProgress: (m) => {
        if (/window 2\//.test(m)) process.kill(pid, 'SIGKILL');
      },
    });
    await assert.rejects(pending, (e: Error) => e instanceof RuntimeCrashedError && /model process was killed \(out of memory\?\); it restarts on the next request/.test(e.message));
    const again = await client.inspect(request(STORY));
    assert.notEqual(client.pid, pid);
    assert.ok(again.rows.length > 0);
  } finally {
    await client.dispose();
  }
});
