// Deterministic model weights for tests (independent of the layer initialisers' randomness).
import * as tf from '@tensorflow/tfjs';

/**
 * Overwrite every weight of `model` with a fixed pattern: weight tensor k (1-based, in
 * `getWeights()` order), element i gets `scale · sin(12.9898 k + 78.233 i)`, so values lie in
 * [−scale, scale]. Leaves no tensors behind.
 */
export function setDeterministicWeights(model: tf.LayersModel, scale: number): void {
  const values = model.getWeights().map((w, index) => {
    const k = index + 1;
    const v = Float32Array.from({ length: w.size }, (_, i) => Math.sin(k * 12.9898 + i * 78.233) * scale);
    return tf.tensor(v, w.shape);
  });
  model.setWeights(values);
  tf.dispose(values);
}
