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
