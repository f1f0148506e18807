/** An error caused by how the program was called; the CLI exits with code 2 for it. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Input that cannot be used (a bad file, bad numbers); the CLI exits with code 1. */
export class InputError extends Error {
  override name = 'InputError';
}

/** A request the user cancelled. */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor() {
    super('cancelled');
  }
}

/** A model folder or file that cannot be used; the message says what to do. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

/**
 * The error classes that cross the process boundary by name: the model process sends
 * `error.name`, and the client rebuilds the same class, so callers classify errors with
 * `instanceof`, never by their message text.
 */
const BY_NAME: Record<string, new (message: string) => Error> = { UsageError, InputError, ModelLoadError };

/** The error of class `name` (or a plain Error), with `message` and the remote stack. */
export function reviveError(name: string, message: string, stack?: string): Error {
  if (name === 'CancelledError') return new CancelledError();
  const Class = BY_NAME[name];
  const e = Class ? new Class(message) : Object.assign(new Error(message), { name });
  if (stack) e.stack = stack;
  return e;
}
