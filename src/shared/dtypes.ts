/**
 * The precisions an ONNX export may ship, by transformers.js's names: one file each
 * (model.onnx, model_fp16.onnx, model_quantized.onnx, …). Here, below the models layer, so
 * that requests, settings and the CLI can name them.
 */
/** transformers.js's file suffix per dtype. */
export const DTYPE_SUFFIXES = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;

export type OnnxDtype = keyof typeof DTYPE_SUFFIXES;
export const ONNX_DTYPES = Object.keys(DTYPE_SUFFIXES) as OnnxDtype[];
/** `auto`: full precision when the folder has it, else the most precise variant it has. */
export type DtypeChoice = OnnxDtype | 'auto';
