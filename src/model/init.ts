/**
 * Seeded initial weights shared by the model builders: every pending layer's first weight (a
 * kernel or an embedding table) from its own stream of the seeded {@link Rng}, forked by layer
 * name, its other weights 0 — so the same seed gives bitwise the same weights on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/index.js';

/** He N(0, 2/fan_in) (before ReLU/GELU), Glorot N(0, 2/(fan_in + fan_out)), or unit N(0, 1). */
export type Init = 'he' | 'glorot' | 'unit';

/** A layer whose weights are to be drawn. */
export interface PendingInit {
  layer: tf.layers.Layer;
  init: Init;
  /** fan-in and fan-out of the kernel (for conv: receptive field × channels). */
  fanIn: number;
  fanOut: number;
}

/** Draw every pending layer's first weight from its own seeded stream; its other weights 0. */
export function initialiseWeights(pending: PendingInit[], seed: number): void {
  const rng = new Rng(seed);
  for (const { layer, init, fanIn, fanOut } of pending) {
    const [kernel, ...rest] = layer.getWeights();
    const std = init === 'unit' ? 1 : init === 'he' ? Math.sqrt(2 / fanIn) : Math.sqrt(2 / (fanIn + fanOut));
    const values = rng.fork(`init/${layer.name}`).normalArray(kernel!.size, std);
    const fresh = [tf.tensor(values, kernel!.shape, 'float32'), ...rest.map((t) => tf.zerosLike(t))];
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}
