/** A model folder or file that cannot be used; the message says what to do. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}
