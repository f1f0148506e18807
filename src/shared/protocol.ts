/**
 * Messages between the extension host (or any client) and the model process. Every
 * message says who sends it. No vscode, no DOM.
 */
import type { InspectRequest, InspectResult } from '../runtime/inspectEngine';
import type { DistillProgress, DistillRequest, RunRecord } from '../train/distill';

/** Client → model process: analyse a text. */
export interface InspectMessage {
  type: 'inspect';
  id: number;
  request: InspectRequest;
}
/** Client → model process: run a distillation fine-tune. */
export interface DistillMessage {
  type: 'distill';
  id: number;
  request: DistillRequest;
}
/** Client → model process: stop request `id` as soon as possible. */
export interface CancelMessage {
  type: 'cancel';
  id: number;
}
/** Client → model process: release sessions and exit. */
export interface ShutdownMessage {
  type: 'shutdown';
}
export type ToRuntime = InspectMessage | DistillMessage | CancelMessage | ShutdownMessage;

/** Model process → client: progress of request `id`. */
export interface ProgressMessage {
  type: 'progress';
  id: number;
  message: string;
  fraction?: number;
  /** a distillation's step, loss and speed */
  training?: DistillProgress;
}
/** Model process → client: the answer to request `id`. */
export interface ResultMessage {
  type: 'result';
  id: number;
  result: InspectResult | RunRecord;
}
/** Model process → client: request `id` failed; `name` keeps the error's class for the client. */
export interface ErrorMessage {
  type: 'error';
  id: number;
  name: string;
  message: string;
  stack?: string;
}
/** Model process → client: the process is up. */
export interface ReadyMessage {
  type: 'ready';
  pid: number;
}
export type FromRuntime = ProgressMessage | ResultMessage | ErrorMessage | ReadyMessage;
