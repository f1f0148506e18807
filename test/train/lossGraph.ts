/** A loss subgraph run as the gradient checks need it: the loss and ∂loss/∂(student logits), in float64. */
import * as ort from 'onnxruntime-node';
import type { GraphBuilder } from '../../src/onnx/graphBuilder';
import { addGradients } from '../../src/train/autodiff';
import { GraphShapes } from '../../src/train/graphShapes';

/** Adds the gradient of `loss` with respect to `student` [rows, vocab], promotes the graph to float64 and opens it. */
export async function lossGradientSession(
  g: GraphBuilder,
  loss: string,
  student: string,
  rows: number,
  vocab: number,
): Promise<ort.InferenceSession> {
  const grads = addGradients(g, new GraphShapes(g, {}), loss, [student]);
  g.rename(loss, 'loss');
  g.output('loss', 'float32', []);
  g.rename(grads.get(student)!, 'grad');
  g.output('grad', 'float32', [rows, vocab]);
  g.promoteToFloat64();
  return ort.InferenceSession.create(g.encode().model);
}
