/**
 * Entry point of the model process, forked by RuntimeClient. It owns every ONNX Runtime
 * session so that a native crash or an out-of-memory here cannot take the editor down.
 * Inspection and distillation share one model pool: at most the current teacher, the
 * current student and one baseline student stay loaded, so memory stays bounded however
 * many students the user tries.
 */
import { CancelledError, ModelLoadError } from '../core/errors';
import { InspectEngine } from '../inspect/inspectEngine';
import { ModelPool } from '../models/modelPool';
import type { FromRuntime, ToRuntime } from '../shared/protocol';
import { runDistillation } from '../train/distill';
import { SampleEngine } from '../generate/sampleEngine';

const models = new ModelPool({ capacity: 3, cacheDir: process.env.DISTILL_LENS_CACHE || undefined });
const engine = new InspectEngine(models);
const sampler = new SampleEngine(models);
const cancelled = new Set<number>();
const aborts = new Map<number, AbortController>();
const send = (m: FromRuntime) => process.send?.(m);

async function handle(m: Exclude<ToRuntime, { type: 'cancel' } | { type: 'shutdown' }>): Promise<void> {
  const abort = new AbortController();
  aborts.set(m.id, abort);
  try {
    if (m.type === 'inspect') {
      const result = await engine.inspect(m.request, {
        onProgress: (message, fraction) => send({ type: 'progress', id: m.id, message, fraction }),
        checkCancelled: () => {
          if (cancelled.has(m.id)) throw new CancelledError();
        },
      });
      send({ type: 'result', id: m.id, result });
    } else if (m.type === 'sample') {
      const result = await sampler.run(m.request, {
        onProgress: (message) => send({ type: 'progress', id: m.id, message }),
        onToken: (token) => send({ type: 'progress', id: m.id, message: 'generating', token }),
        checkCancelled: () => {
          if (cancelled.has(m.id)) throw new CancelledError();
        },
      });
      send({ type: 'result', id: m.id, result });
    } else if (m.type === 'distill') {
      const result = await runDistillation(m.request, {
        signal: abort.signal,
        models,
        onProgress: (p) =>
          send({
            type: 'progress',
            id: m.id,
            message: p.message,
            fraction: p.step && p.steps ? p.step / p.steps : undefined,
            training: p,
          }),
      });
      send({ type: 'result', id: m.id, result });
    } else {
      send({
        type: 'result',
        id: m.id,
        result: {
          pid: process.pid,
          rssBytes: process.memoryUsage().rss,
          loadedModels: models.size,
          metricsSessions: engine.metricsSessions,
        },
      });
    }
  } catch (e) {
    const err = e as Error;
    send({
      type: 'error',
      id: m.id,
      name: err.name ?? 'Error',
      message: err.message ?? String(e),
      stack: err.stack,
      role: e instanceof ModelLoadError ? e.role : undefined,
    });
  } finally {
    cancelled.delete(m.id);
    aborts.delete(m.id);
  }
}

process.on('message', async (m: ToRuntime) => {
  if (m.type === 'cancel') {
    cancelled.add(m.id);
    aborts.get(m.id)?.abort();
  } else if (m.type === 'shutdown') {
    await sampler.dispose();
    await engine.dispose();
    process.exit(0);
  } else await handle(m);
});
// the client going away (editor closed, crashed) ends this process too
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
