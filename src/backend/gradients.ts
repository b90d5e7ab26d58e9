/**
 * Gradient overrides for tfjs-core ops whose stock gradient is correct but needlessly slow.
 *
 * `Tile`: tfjs 4.22 sums the gradient with one slice + add per repetition (tfjs-layers'
 * LayerNormalization tiles γ, β, mean and variance over every position, so a [32, 32, 64]
 * activation cost 10 240 slices per LayerNorm backward: 1.3 s of a 2 s transformer step on wasm).
 * Here: dx = Σ over the repetition axes of dy reshaped to [r₀, s₀, r₁, s₁, …] (output index
 * i·s_d + j along axis d ↔ (i, j)), one reshape and one sum, the same values up to summation order.
 * Checked against tfjs's own loop in test/backend/gradients.test.ts.
 *
 * `Max`, `Min` (tf.max / tf.min: GlobalMaxPooling1D/2D, …): tfjs 4.22 gives every element equal to
 * the maximum the whole dy, so k tied maxima count k times. Ties are common in practice: identical
 * input patches (blank regions of an image) give identical convolution outputs, and a global
 * max-pool over them made the eNTK of such a model 10–300× too large (checked against float64
 * finite differences). Here dy is split evenly among the tied elements (as TensorFlow and PyTorch
 * do): exact when tied elements move together, and unchanged (bit for bit) without ties.
 *
 * `LayerNormalization` with `center: false` or `scale: false`: tfjs-layers 4.22 calls the
 * FusedBatchNorm op with a null offset or scale, which autodiff cannot trace (the engine saves and
 * walks the missing input: "Cannot read properties of undefined"), so such a layer could be neither
 * trained nor differentiated (the Jacobian eNTK path) on any backend. Its call is replaced by the
 * same normalisation written with differentiable ops, (x − μ)·(σ² + ε)^−½ then ·γ and +β where
 * present; layers with both γ and β keep tfjs's own call.
 */
import * as tf from '@tensorflow/tfjs';

let installed = false;

/** dTile/dx for x of `shape` tiled `reps` times: dy [r₀s₀, r₁s₁, …] → [s₀, s₁, …]. */
export function tileGradient(dy: tf.Tensor, shape: number[], reps: number[]): tf.Tensor {
  return tf.tidy(() => {
    const split = shape.flatMap((s, d) => [reps[d]!, s]);
    const axes = shape.flatMap((_, d) => (reps[d]! > 1 ? [2 * d] : []));
    const r = tf.reshape(dy, split);
    return tf.reshape(axes.length > 0 ? tf.sum(r, axes) : r, shape);
  });
}

interface LayerNormLike {
  axis: number[];
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: { read(): tf.Tensor } | null;
  beta: { read(): tf.Tensor } | null;
}

/** LayerNormalization without γ or β, differentiable (see the module comment). */
export function layerNormWithoutAffine(layer: LayerNormLike, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, layer.axis, true);
    // γ and β broadcast as [1, …, d, …] over the normalised axes.
    const shape = x.shape.map((d, i) => (layer.axis.includes(i) ? d : 1));
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, layer.epsilon)));
    if (layer.scale) y = tf.mul(y, tf.reshape(layer.gamma!.read(), shape));
    if (layer.center) y = tf.add(y, tf.reshape(layer.beta!.read(), shape));
    return y;
  });
}

function installLayerNormFix(): void {
  const proto = Object.getPrototypeOf(tf.layers.layerNormalization({})) as {
    call(this: LayerNormLike, inputs: tf.Tensor | tf.Tensor[], kwargs: unknown): tf.Tensor;
  };
  const stock = proto.call;
  proto.call = function (this: LayerNormLike, inputs, kwargs) {
    if (this.center && this.scale) return stock.call(this, inputs, kwargs);
    return layerNormWithoutAffine(this, Array.isArray(inputs) ? inputs[0]! : inputs);
  };
}

/**
 * Gradient of y = max (or min) of x over `axes`: dy split evenly among the elements equal to y
 * (see the module comment). dy and y as the reduction returned them (keepDims or not).
 */
export function extremumGradient(dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor, axes: number[]): tf.Tensor {
  return tf.tidy(() => {
    const kept = tf.backend_util.expandShapeToKeepDim(y.shape, axes);
    const mask = tf.cast(tf.equal(x, tf.reshape(y, y.rank < x.rank ? kept : y.shape)), 'float32');
    const share = tf.div(mask, tf.sum(mask, axes, true));
    return tf.mul(
      tf.reshape(dy, dy.rank < x.rank ? tf.backend_util.expandShapeToKeepDim(dy.shape, axes) : dy.shape),
      share,
    );
  });
}

function registerExtremumGradient(kernelName: 'Max' | 'Min'): void {
  tf.registerGradient({
    kernelName,
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved as tf.Tensor[];
      // (Max names its axes reductionIndices, Min axis.)
      const a = attrs as unknown as { reductionIndices?: number | number[]; axis?: number | number[] };
      // (null: every axis)
      const axes = tf.util.parseAxisParam((a.reductionIndices ?? a.axis ?? null) as number[], x!.shape);
      return { x: () => extremumGradient(dy as tf.Tensor, x!, y!, axes) };
    },
  });
}

/** Register the overrides (idempotent). */
export function installGradientFixes(): void {
  if (installed) return;
  installed = true;
  installLayerNormFix();
  registerExtremumGradient('Max');
  registerExtremumGradient('Min');
  tf.registerGradient({
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as tf.Tensor[];
      const reps = (attrs as unknown as { reps: number[] }).reps;
      return { x: () => tileGradient(dy as tf.Tensor, x!.shape, reps) };
    },
  });
}
