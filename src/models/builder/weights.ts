import type { GraphBuilder } from '../../onnx/graphBuilder';
import { CorruptFileError, tensorAsFloat32, type SafeTensorsFile } from '../safetensors';

/** Looks weights up by their checkpoint names, tolerating the optional "transformer." / "model." prefixes. */
export class WeightSource {
  private added = new Map<string, string>();

  constructor(private readonly files: SafeTensorsFile[], private readonly prefixes: string[] = ['']) {}

  private find(name: string): { file: SafeTensorsFile; key: string } | undefined {
    for (const prefix of this.prefixes) {
      for (const file of this.files) if (file.tensors.has(prefix + name)) return { file, key: prefix + name };
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.find(name) !== undefined;
  }

  /** Adds the weight to the graph once and returns its value name. */
  weight(g: GraphBuilder, name: string): string {
    const existing = this.added.get(name);
    if (existing) return existing;
    const hit = this.find(name);
    if (!hit) throw new CorruptFileError(`the checkpoint has no weight "${name}" (files: ${this.files.map((f) => f.path).join(', ')}); is config.json for this checkpoint?`);
    const t = tensorAsFloat32(hit.file, hit.key);
    const value = g.weight(name, 'float32', t.shape, t.data);
    this.added.set(name, value);
    return value;
  }

  optional(g: GraphBuilder, name: string): string | undefined {
    return this.has(name) ? this.weight(g, name) : undefined;
  }
}
