/**
 * Where ONNX language models sit in a folder, in order of preference: the transformers.js
 * layout, a bare export, then Optimum's decoder exports (older Xenova/* repositories).
 *
 * transformers.js and onnx-community repositories ship one file per precision, named with
 * transformers.js's suffixes (model.onnx, model_fp16.onnx, model_quantized.onnx, …); the
 * dtype chooses among them as transformers.js's `dtype` option does.
 */
import { DTYPE_SUFFIXES, ONNX_DTYPES, type DtypeChoice, type OnnxDtype } from '../shared/dtypes';

export const ONNX_CANDIDATES = ['onnx/model.onnx', 'model.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_model.onnx', 'decoder_model_merged.onnx', 'decoder_model.onnx'];

/** The file of `dtype` for each candidate location, in preference order. */
function filesOf(dtype: OnnxDtype): string[] {
  return ONNX_CANDIDATES.map((f) => f.replace(/\.onnx$/, `${DTYPE_SUFFIXES[dtype]}.onnx`));
}

/**
 * The ONNX file to run among `files` (paths relative to the model folder), with its dtype;
 * undefined when the folder has no ONNX model at all. An explicit dtype the folder lacks is
 * an error that lists what it has.
 */
export function chooseOnnxFile(files: readonly string[], choice: DtypeChoice): { file: string; dtype: OnnxDtype } | undefined {
  const present = new Set(files);
  const find = (dtype: OnnxDtype) => filesOf(dtype).find((f) => present.has(f));
  if (choice !== 'auto') {
    const file = find(choice);
    if (file) return { file, dtype: choice };
    const available = ONNX_DTYPES.filter((d) => find(d));
    if (available.length === 0) return undefined;
    throw new Error(`has no ${choice} ONNX file (${filesOf(choice)[0]}); it has ${available.map((d) => `${d} (${find(d)})`).join(', ')}`);
  }
  for (const dtype of ONNX_DTYPES) {
    const file = find(dtype);
    if (file) return { file, dtype };
  }
  return undefined;
}
