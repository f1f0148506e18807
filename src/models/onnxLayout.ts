/**
 * Where ONNX language models sit in a folder, in order of preference: the transformers.js
 * layout, a bare export, then Optimum's decoder exports (older Xenova/* repositories).
 */
export const ONNX_CANDIDATES = ['onnx/model.onnx', 'model.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_model.onnx', 'decoder_model_merged.onnx', 'decoder_model.onnx'];
