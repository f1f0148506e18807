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

/** Which model of the pair an error is about, when it is about one. */
export type ModelRole = 'teacher' | 'student';

/** A model folder or file that cannot be used; the message says what to do. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  constructor(
    message: string,
    readonly role?: ModelRole,
  ) {
    super(message);
  }
}

/** The error about the teacher or the student, said so in its message (ModelLoadErrors keep their class). */
export function errorForRole(e: unknown, role: ModelRole): unknown {
  if (!(e instanceof ModelLoadError) || e.role) return e;
  const named = new ModelLoadError(`the ${role}: ${e.message}`, role);
  named.stack = e.stack;
  return named;
}

/**
 * The error classes that cross the process boundary by name: the model process sends
 * `error.name`, and the client rebuilds the same class, so callers classify errors with
 * `instanceof`, never by their message text.
 */
const BY_NAME: Record<string, new (message: string) => Error> = { UsageError, InputError, ModelLoadError };

/** The error of class `name` (or a plain Error), with `message` and the remote stack. */
export function reviveError(name: string, message: string, stack?: string, role?: ModelRole): Error {
  if (name === 'CancelledError') return new CancelledError();
  if (name === 'ModelLoadError')
    return Object.assign(new ModelLoadError(message, role), stack ? { stack } : {});
  const Class = BY_NAME[name];
  const e = Class ? new Class(message) : Object.assign(new Error(message), { name });
  if (stack) e.stack = stack;
  return e;
}
