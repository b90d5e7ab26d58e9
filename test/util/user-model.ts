// A small "user's model" for the tests of --model paths (a tfjs layers model saved with saveModel,
// points in a CSV file), and a snapshot of its files to check they are left untouched.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setDeterministicWeights } from './weights.js';

/**
 * D → `hidden` tanh units (layer 'hidden') → V outputs (layer `output.name`, default 'logits', with
 * `output.activation`, default linear), weights from setDeterministicWeights(model, scale).
 */
export function denseClassifier(
  D: number,
  hidden: number,
  V: number,
  scale: number,
  output: { name?: string; activation?: 'softmax' } = {},
): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [D], units: hidden, activation: 'tanh', name: 'hidden' }),
      tf.layers.dense({ units: V, name: output.name ?? 'logits', activation: output.activation }),
    ],
  });
  setDeterministicWeights(model, scale);
  return model;
}

/**
 * Token ids of D positions → Embedding of `rows` rows (layer 'emb', width 2) → Flatten → V outputs
 * (layer 'out'), weights from setDeterministicWeights(model, scale): the model of the token-id checks.
 */
export function embeddingClassifier(D: number, rows: number, V: number, scale: number): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.embedding({ inputDim: rows, outputDim: 2, inputLength: D, name: 'emb' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: V, name: 'out' }),
    ],
  });
  setDeterministicWeights(model, scale);
  return model;
}

/** Every file of a directory (a saved model's) by name, sorted: equal snapshots = untouched files. */
export async function modelFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const f of (await fs.readdir(dir)).sort()) files.set(f, await fs.readFile(path.join(dir, f)));
  return files;
}

/** A CSV file: the header line, then one line per row (no trailing newline). */
export async function writeCsv(
  file: string,
  header: string[],
  rows: Array<Array<string | number>>,
): Promise<void> {
  await fs.writeFile(file, [header.join(','), ...rows.map((r) => r.join(','))].join('\n'));
}
