/** What a result says about a model that ran here: its name, folder, device, vocabulary, context and file. */
import { modelFileLabel } from '../models/modelSource';
import type { LoadedModel } from '../models/modelPool';
import type { ModelReport } from '../shared/protocol';

export function modelReport(m: LoadedModel): ModelReport {
  return {
    name: m.lm.model.name,
    folder: m.lm.model.folder,
    device: m.lm.info.device,
    vocab: m.lm.vocabSize ?? m.tokenizer.vocabSize,
    contextLength: m.lm.model.contextLength,
    file: modelFileLabel(m.lm.model),
  };
}
