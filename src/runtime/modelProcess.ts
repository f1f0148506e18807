/**
 * Entry point of the model process, forked by RuntimeClient. It owns every ONNX Runtime
 * session so that a native crash or an out-of-memory here cannot take the editor down.
 */
import { InspectEngine } from './inspectEngine';
import { runDistillation } from '../train/distill';
import { CancelledError } from '../core/errors';
import type { FromRuntime, ToRuntime } from '../shared/protocol';

const engine = new InspectEngine({ cacheDir: process.env.DISTILL_LENS_CACHE || undefined });
const cancelled = new Set<number>();
const aborts = new Map<number, AbortController>();
const send = (m: FromRuntime) => process.send?.(m);

process.on('message', async (m: ToRuntime) => {
  if (m.type === 'cancel') {
    cancelled.add(m.id);
    aborts.get(m.id)?.abort();
    return;
  }
  if (m.type === 'shutdown') {
    await engine.dispose();
    process.exit(0);
  }
  if (m.type === 'inspect' || m.type === 'distill') {
    try {
      if (m.type === 'inspect') {
        const result = await engine.inspect(m.request, {
          onProgress: (message, fraction) => send({ type: 'progress', id: m.id, message, fraction }),
          checkCancelled: () => {
            if (cancelled.has(m.id)) throw new CancelledError();
          },
        });
        send({ type: 'result', id: m.id, result });
      } else {
        const abort = new AbortController();
        aborts.set(m.id, abort);
        const result = await runDistillation(m.request, {
          signal: abort.signal,
          onProgress: (p) => send({ type: 'progress', id: m.id, message: p.message, fraction: p.step && p.steps ? p.step / p.steps : undefined, training: p }),
        });
        send({ type: 'result', id: m.id, result });
      }
    } catch (e) {
      const err = e as Error;
      send({ type: 'error', id: m.id, name: err.name ?? 'Error', message: err.message ?? String(e), stack: err.stack });
    } finally {
      cancelled.delete(m.id);
      aborts.delete(m.id);
    }
  }
});
// the client going away (editor closed, crashed) ends this process too
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
