/**
 * The devices a user can ask for. Kept apart from the ONNX Runtime code (src/onnx/sessions.ts)
 * so that the extension can list them without loading ONNX Runtime.
 */
export type Device = 'cpu' | 'cuda' | 'dml' | 'auto';
export const DEVICES: Device[] = ['auto', 'cpu', 'cuda', 'dml'];
/** The device a session actually runs on. */
export type UsedDevice = 'cpu' | 'cuda' | 'dml';
