/**
 * Entry point of the model process, forked by RuntimeClient. It owns every ONNX Runtime
 * session so that a native crash or an out-of-memory here cannot take the editor down.
 */
import { InspectEngine } from './inspectEngine';
import { CancelledError } from '../core/errors';
import type { FromRuntime, ToRuntime } from '../shared/protocol';

const engine = new InspectEngine({ cacheDir: process.env.DISTILL_LENS_CACHE || undefined });
const cancelled = new Set<number>();
const send = (m: FromRuntime) => process.send?.(m);

process.on('message', async (m: ToRuntime) => {
  if (m.type === 'cancel') {
    cancelled.add(m.id);
    return;
  }
  if (m.type === 'shutdown') {
    await engine.dispose();
    process.exit(0);
  }
  if (m.type === 'inspect') {
    try {
      const result = await engine.inspect(m.request, {
        onProgress: (message, fraction) => send({ type: 'progress', id: m.id, message, fraction }),
        checkCancelled: () => {
          if (cancelled.has(m.id)) throw new CancelledError();
        },
      });
      send({ type: 'result', id: m.id, result });
    } catch (e) {
      const err = e as Error;
      send({ type: 'error', id: m.id, name: err.name ?? 'Error', message: err.message ?? String(e), stack: err.stack });
    } finally {
      cancelled.delete(m.id);
    }
  }
});
// the client going away (editor closed, crashed) ends this process too
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
