/**
 * Talks to the model process: one request per message id, progress callbacks, cancellation
 * (a request that does not stop within a grace period has its process killed), and crash
 * reporting. A crashed or killed process is started again on the next request.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { CancelledError, reviveError } from '../core/errors';
import type { SampleReport, SampleRequest, StreamedToken } from '../shared/generation';
import type {
  DistillProgress,
  DistillRequest,
  FromRuntime,
  InspectRequest,
  InspectResult,
  RunRecord,
  RuntimeStats,
  ToRuntime,
} from '../shared/protocol';

export class RuntimeCrashedError extends Error {
  override name = 'RuntimeCrashedError';
}

interface Pending {
  resolve: (r: any) => void;
  reject: (e: Error) => void;
  onProgress?: (message: string, fraction?: number, training?: DistillProgress) => void;
  onToken?: (t: StreamedToken) => void;
}

export interface CallOptions {
  onProgress?: (message: string, fraction?: number, training?: DistillProgress) => void;
  signal?: AbortSignal;
  /** sampling: each token as it is chosen */
  onToken?: (t: StreamedToken) => void;
}

export interface RuntimeClientOptions {
  /** the bundled model process script (dist/runtime.js) */
  script: string;
  env?: NodeJS.ProcessEnv;
  /** how long a cancelled request may keep running before its process is killed */
  cancelGraceMs?: number;
  execPath?: string;
  log?: (line: string) => void;
}

/**
 * The model process lives as long as the editor and opens and releases ONNX Runtime sessions
 * (models, metrics graphs) as settings change. glibc's malloc raises its mmap threshold after
 * the first large free, after which freed session arenas stay in the heap as fragments: the
 * process grew by about 2 MiB per metrics session forever (measured, test/host). A fixed
 * threshold keeps large blocks in their own mappings, returned to the system when released.
 * (Only glibc reads it.)
 */
const LONG_LIVED_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(1 << 20) };

export class RuntimeClient {
  private child?: ChildProcess;
  private nextId = 1;
  private pending = new Map<number, Pending>();

  constructor(private readonly o: RuntimeClientOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private ensureProcess(): ChildProcess {
    if (this.child && this.child.connected) return this.child;
    const child = fork(this.o.script, [], {
      env: { ...process.env, ...LONG_LIVED_MALLOC, ...this.o.env },
      execPath: this.o.execPath,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    child.stdout?.on('data', (d) => this.o.log?.(String(d).trimEnd()));
    child.stderr?.on('data', (d) => this.o.log?.(String(d).trimEnd()));
    child.on('message', (m: FromRuntime) => this.onMessage(m));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const why =
        signal === 'SIGKILL'
          ? 'was killed (out of memory?)'
          : signal
            ? `stopped on signal ${signal}`
            : `exited with code ${code}`;
      this.o.log?.(`model process ${child.pid} ${why}`);
      this.rejectAll(new RuntimeCrashedError(`the model process ${why}; it restarts on the next request`));
    });
    this.child = child;
    return child;
  }

  private onMessage(m: FromRuntime): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') {
      if (m.token) p.onToken?.(m.token);
      else p.onProgress?.(m.message, m.fraction, m.training);
    } else if (m.type === 'result') {
      this.pending.delete(m.id);
      p.resolve(m.result);
    } else if (m.type === 'error') {
      this.pending.delete(m.id);
      p.reject(reviveError(m.name, m.message, m.stack, m.role));
    }
  }

  private rejectAll(e: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }

  inspect(request: InspectRequest, o: CallOptions = {}): Promise<InspectResult> {
    return this.call((id) => ({ type: 'inspect', id, request }), o, this.o.cancelGraceMs ?? 2000);
  }

  /** Continuations from the student, the teacher or their mix, scored by both; tokens stream to `o.onToken`. */
  sample(request: SampleRequest, o: CallOptions = {}): Promise<SampleReport> {
    return this.call((id) => ({ type: 'sample', id, request }), o, this.o.cancelGraceMs ?? 2000);
  }

  /** Memory and models held by the model process (starts it if needed). */
  stats(): Promise<RuntimeStats> {
    return this.call((id) => ({ type: 'stats', id }), {}, this.o.cancelGraceMs ?? 2000);
  }

  /**
   * A distillation run. Cancelling stops it at the next step; the process is killed only if
   * a step outlasts the (long) grace period, and the output folder appears atomically either way.
   */
  distill(request: DistillRequest, o: CallOptions = {}): Promise<RunRecord> {
    return this.call(
      (id) => ({ type: 'distill', id, request }),
      o,
      Math.max(this.o.cancelGraceMs ?? 2000, 60_000),
    );
  }

  private call<T>(message: (id: number) => ToRuntime, o: CallOptions, graceMs: number): Promise<T> {
    if (o.signal?.aborted) return Promise.reject(new CancelledError());
    const child = this.ensureProcess();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress: o.onProgress, onToken: o.onToken });
      this.post(message(id));
      o.signal?.addEventListener('abort', () => {
        if (!this.pending.has(id)) return;
        this.post({ type: 'cancel', id });
        const timer = setTimeout(() => {
          // still running inside a forward pass: stop the process; it restarts next time
          if (this.pending.has(id) && this.child === child) {
            this.pending.get(id)!.reject(new CancelledError());
            this.pending.delete(id);
            child.kill('SIGKILL');
          }
        }, graceMs);
        timer.unref();
      });
    });
  }

  private post(m: ToRuntime): void {
    this.child?.send(m);
  }

  /** Asks the process to exit; kills it if it does not within a second. */
  async dispose(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    this.rejectAll(new CancelledError());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 1000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (child.connected) child.send({ type: 'shutdown' } satisfies ToRuntime);
      else child.kill('SIGKILL');
    });
  }
}
