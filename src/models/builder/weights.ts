import type { GraphBuilder } from '../../onnx/graphBuilder';
import { ModelLoadError } from '../../core/errors';
import { tensorAsFloat32, type SafeTensorsFile } from '../safetensors';

/** What the graph builders ask of a model's weights: a value name per checkpoint weight. */
export interface ModelWeights {
  has(name: string): boolean;
  /** Adds the weight to the graph once (as an initializer, or a trainable input) and returns its value name. */
  weight(g: GraphBuilder, name: string): string;
  optional(g: GraphBuilder, name: string): string | undefined;
}

/** Looks weights up by their checkpoint names, tolerating the optional "transformer." / "model." prefixes. */
export class WeightSource implements ModelWeights {
  /** weights already added, per graph (one source may serve several graphs) */
  private added = new WeakMap<GraphBuilder, Map<string, string>>();

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

  /** The weight's values as float32 and the key it has in the checkpoint file. */
  tensor(name: string): { key: string; shape: number[]; data: Float32Array } {
    const hit = this.find(name);
    if (!hit) throw new ModelLoadError(`the checkpoint has no weight "${name}" (files: ${this.files.map((f) => f.path).join(', ')}); is config.json for this checkpoint?`);
    return { key: hit.key, ...tensorAsFloat32(hit.file, hit.key) };
  }

  /** Every tensor name in the checkpoint files. */
  keys(): string[] {
    return this.files.flatMap((f) => [...f.tensors.keys()]);
  }

  weight(g: GraphBuilder, name: string): string {
    let added = this.added.get(g);
    if (!added) this.added.set(g, (added = new Map()));
    const existing = added.get(name);
    if (existing) return existing;
    const t = this.tensor(name);
    const value = g.weight(name, 'float32', t.shape, t.data);
    added.set(name, value);
    return value;
  }

  optional(g: GraphBuilder, name: string): string | undefined {
    return this.has(name) ? this.weight(g, name) : undefined;
  }
}
