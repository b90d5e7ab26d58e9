/**
 * Gradient overrides for tfjs-core ops whose stock gradient is slow, wrong or missing, and two
 * tfjs-layers calls autodiff cannot trace.
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
 * present; layers with both γ and β keep tfjs's own call. `BatchNormalization` has the same bug
 * (in inference; in training tfjs reads the missing γ or β and throws): without γ or β its call is
 * (x − m)·(v + ε)^−½ [·γ] [+β] along its axis, m, v the moving statistics in inference, the batch
 * moments in training (which also update the moving statistics, as tfjs does).
 *
 * `AvgPool`, `AvgPool3D`: the forward divides each window's sum by the number of input elements it
 * covers, but tfjs 4.22's gradient (cpu and wasm `AvgPoolGrad` / `AvgPool3DGrad`) divides by the
 * full window size, wrong wherever a window overlaps 'same' padding (a Conv2D →
 * AveragePooling2D('same') eNTK was 0.39 off). Here dy is first multiplied by (window size) /
 * (elements covered), then the stock kernel runs: ∂y_w/∂x_i = 1/count_w for each window w ∋ i.
 * Unchanged (bit for bit) when no window touches padding.
 *
 * Comparisons (`Greater`, `Less`, `LessEqual`, `Equal`, `NotEqual`) and the boolean reductions
 * `Any` / `All` have no gradient in tfjs 4.22, so ThresholdedReLU (x·[x > θ]) and Masking could not
 * be differentiated: their outputs are piecewise constant, so the gradient is exactly 0 (almost
 * everywhere), as tfjs's own `GreaterEqual` gradient.
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

/**
 * Replace a normalisation layer class's call, for layers without γ or β, by `replacement` (the same
 * normalisation in differentiable ops; see the module comment); `layer` is any instance of the class.
 */
function replaceCallWithoutAffine<L extends { center: boolean; scale: boolean }>(
  layer: object,
  replacement: (layer: L, x: tf.Tensor, kwargs: { training?: boolean }) => tf.Tensor,
): void {
  const proto = Object.getPrototypeOf(layer) as {
    call(this: L, inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor;
  };
  const stock = proto.call;
  proto.call = function (this: L, inputs, kwargs) {
    if (this.center && this.scale) return stock.call(this, inputs, kwargs);
    return replacement(this, Array.isArray(inputs) ? inputs[0]! : inputs, kwargs ?? {});
  };
}

interface BatchNormLike {
  axis: number;
  epsilon: number;
  momentum: number;
  center: boolean;
  scale: boolean;
  gamma: { read(): tf.Tensor } | null;
  beta: { read(): tf.Tensor } | null;
  movingMean: { read(): tf.Tensor; write(t: tf.Tensor): void };
  movingVariance: { read(): tf.Tensor; write(t: tf.Tensor): void };
}

/** BatchNormalization without γ or β, differentiable (see the module comment). */
export function batchNormWithoutAffine(layer: BatchNormLike, x: tf.Tensor, training: boolean): tf.Tensor {
  return tf.tidy(() => {
    const axis = layer.axis >= 0 ? layer.axis : layer.axis + x.rank;
    const reduction = x.shape.map((_, i) => i).filter((i) => i !== axis);
    // m, v, γ, β broadcast as [1, …, C, …, 1] along the normalised axis.
    const shape = x.shape.map((d, i) => (i === axis ? d : 1));
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    if (training) {
      ({ mean, variance } = tf.moments(x, reduction));
      // Moving statistics: s ← s − (s − batch value)·(1 − momentum), as tfjs-layers does.
      for (const [variable, value] of [
        [layer.movingMean, mean],
        [layer.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const old = variable.read();
          variable.write(tf.sub(old, tf.mul(tf.sub(old, value), 1 - layer.momentum)));
        });
      }
    } else {
      mean = layer.movingMean.read();
      variance = layer.movingVariance.read();
    }
    let y = tf.mul(
      tf.sub(x, tf.reshape(mean, shape)),
      tf.rsqrt(tf.add(tf.reshape(variance, shape), layer.epsilon)),
    );
    if (layer.scale) y = tf.mul(y, tf.reshape(layer.gamma!.read(), shape));
    if (layer.center) y = tf.add(y, tf.reshape(layer.beta!.read(), shape));
    return y;
  });
}

/** Valid (non-padding) positions of each window along one axis: window j covers [j·s − pad, j·s − pad + k). */
function windowCounts(out: number, size: number, stride: number, k: number, pad: number): number[] {
  return Array.from(
    { length: out },
    (_, j) => Math.min(size, j * stride - pad + k) - Math.max(0, j * stride - pad),
  );
}

/**
 * dx of an average pooling (2-D: x [n, h, w, c]; 3-D: x [n, d, h, w, c]) whose forward divides by
 * the number of covered elements (see the module comment). `info` from computePool2DInfo /
 * computePool3DInfo of the forward; `stock(dy)` runs tfjs's gradient kernel (division by the full
 * window size).
 */
export function avgPoolGradient(
  dy: tf.Tensor,
  axes: { out: number; size: number; stride: number; k: number; pad: number }[],
  stock: (dy: tf.Tensor) => tf.Tensor,
): tf.Tensor {
  const counts = axes.map((a) => windowCounts(a.out, a.size, a.stride, a.k, a.pad));
  if (counts.every((c, i) => c.every((v) => v === axes[i]!.k))) return stock(dy);
  return tf.tidy(() => {
    // factor[j₁, j₂, (j₃)] = Π k / Π count: the outer product of the per-axis counts.
    const full = axes.reduce((p, a) => p * a.k, 1);
    let cells = [1];
    for (const c of counts) cells = cells.flatMap((v) => c.map((w) => v * w));
    const factor = tf.tensor(
      cells.map((v) => full / v),
      [1, ...axes.map((a) => a.out), 1],
    );
    return stock(tf.mul(dy, factor));
  });
}

/**
 * The AvgPool (2-D) and AvgPool3D gradients through avgPoolGradient: per spatial axis (`dims`: the
 * pool info's field suffix and its leading-padding field) the output and input sizes, stride,
 * window and padding; `gradKernel` is tfjs's own gradient kernel.
 */
function registerAvgPoolGradient(
  kernelName: 'AvgPool' | 'AvgPool3D',
  gradKernel: 'AvgPoolGrad' | 'AvgPool3DGrad',
  dims: Array<[string, string]>,
): void {
  tf.registerGradient({
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as tf.Tensor[];
      const a = attrs as unknown as {
        filterSize: [number, number] & [number, number, number];
        strides: [number, number] & [number, number, number];
        pad: 'valid' | 'same' | number;
        dimRoundingMode?: 'floor' | 'round' | 'ceil';
      };
      const args = [a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode] as const;
      const info = (kernelName === 'AvgPool'
        ? tf.backend_util.computePool2DInfo(x!.shape as [number, number, number, number], ...args)
        : tf.backend_util.computePool3DInfo(
            x!.shape as [number, number, number, number, number],
            ...args,
          )) as unknown as Record<string, number> & { padInfo: Record<string, number> };
      const axes = dims.map(([d, pad]) => ({
        out: info[`out${d}`]!,
        size: info[`in${d}`]!,
        stride: info[`stride${d}`]!,
        k: info[`filter${d}`]!,
        pad: info.padInfo[pad]!,
      }));
      const stock = (g: tf.Tensor) =>
        tf.engine().runKernel(gradKernel, { dy: g, input: x! }, {
          filterSize: a.filterSize,
          strides: a.strides,
          pad: a.pad,
          ...(kernelName === 'AvgPool3D' ? { dimRoundingMode: a.dimRoundingMode } : {}),
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
      // TensorFlow's own AvgPoolGrad (tfjs-node, backend 'tensorflow') already divides by the covered
      // elements, like its forward: only the cpu, wasm and webgl kernels need the correction.
      if (tf.getBackend() === 'tensorflow') return { x: () => stock(dy as tf.Tensor) };
      return { x: () => avgPoolGradient(dy as tf.Tensor, axes, stock) };
    },
  });
}

function registerAvgPoolGradients(): void {
  registerAvgPoolGradient('AvgPool', 'AvgPoolGrad', [
    ['Height', 'top'],
    ['Width', 'left'],
  ]);
  registerAvgPoolGradient('AvgPool3D', 'AvgPool3DGrad', [
    ['Depth', 'front'],
    ['Height', 'top'],
    ['Width', 'left'],
  ]);
}

/** Piecewise-constant ops without a tfjs gradient: 0 for every input (see the module comment). */
const PIECEWISE_CONSTANT_OPS = ['Greater', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'Any', 'All'] as const;

function registerZeroGradients(): void {
  for (const kernelName of PIECEWISE_CONSTANT_OPS) {
    // (tfjs 4.22 has none; a later tfjs's own gradient is kept)
    if (tf.getGradient(kernelName)) continue;
    const inputs = kernelName === 'Any' || kernelName === 'All' ? ['x'] : ['a', 'b'];
    tf.registerGradient({
      kernelName,
      inputsToSave: inputs,
      gradFunc: (_dy, saved) =>
        Object.fromEntries(
          inputs.map((name, i) => [name, () => tf.zeros((saved as tf.Tensor[])[i]!.shape, 'float32')]),
        ),
    });
  }
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
  replaceCallWithoutAffine<LayerNormLike>(tf.layers.layerNormalization({}), (layer, x) =>
    layerNormWithoutAffine(layer, x),
  );
  replaceCallWithoutAffine<BatchNormLike>(tf.layers.batchNormalization({}), (layer, x, kwargs) =>
    batchNormWithoutAffine(layer, x, kwargs.training === true),
  );
  registerAvgPoolGradients();
  registerZeroGradients();
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
