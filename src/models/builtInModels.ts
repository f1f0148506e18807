/**
 * The built-in model pair shipped in models/demo (made by `npm run build:demo-models`): the
 * default teacher and student when none is set, so the first run works offline.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** models/demo inside the installed package: beside dist/ in the bundles, beside src/ under tsx. */
export function builtInModelsFolder(): string {
  for (const up of [['..'], ['..', '..']]) {
    const dir = path.resolve(__dirname, ...up, 'models', 'demo');
    if (fs.existsSync(path.join(dir, 'teacher', 'config.json'))) return dir;
  }
  return path.resolve(__dirname, '..', 'models', 'demo');
}

export function builtInPair(root = builtInModelsFolder()): { teacher: string; student: string } {
  return { teacher: path.join(root, 'teacher'), student: path.join(root, 'student') };
}

/** A TypeScript declaration written for the demo (not from the training corpus). */
export const DEMO_TEXT = `/** A queue that hands out items in priority order. */
interface PriorityQueue<T> {
    /** Adds an item with the given priority; lower numbers come out first. */
    push(item: T, priority: number): void;
    /** Removes and returns the item with the lowest priority, or undefined when empty. */
    pop(): T | undefined;
    /** The number of items in the queue. */
    readonly size: number;
}

declare function createQueue<T>(items?: readonly T[]): PriorityQueue<T>;
`;
