/**
 * Building seeded `tf.Sequential` models from a {@link ModelSpec}.
 *
 * Structure (the layer contract in src/model/layers.ts): parameterised layers (`Dense`,
 * `ScaledDense`, `Conv2D`) never carry a fused activation; each non-linearity is its own layer
 * (`Activation` for relu/tanh/gelu, `ElementwiseActivation` for erf); the model outputs logits
 * (no softmax layer). Layer names are deterministic (`dense_1`, `activation_1`, ..., `logits`).
 *
 * Layers are created with zero initialisers (tfjs's own initialisers are not seeded); the initial
 * weights then come from the seeded {@link Rng} (one stream per layer, forked by layer name),
 * so the same seed gives bitwise the same weights on every backend:
 * - standard: kernels ~ N(0, 2/fan_in) (He) before ReLU/GELU, N(0, 2/(fan_in+fan_out)) (Glorot)
 *   before tanh/erf and for the output layer; biases 0.
 * - ntk: kernels ~ N(0, 1), biases 0; the 1/sqrt(fan_in) lives in the forward pass (`ScaledDense`).
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmKernelFixes } from '../backend/index.js';
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { assertFits, MAX_TYPED_ARRAY_LENGTH, memoryBudget } from '../util/index.js';
import { type Init, initialiseWeights, type PendingInit } from './init.js';
import { ElementwiseActivation, Scale, ScaledDense } from './layers.js';
import { type ActivationName, type CnnSpec, type MlpSpec, type ModelSpec, resolveModelSpec } from './spec.js';
import { buildTransformer } from './transformer.js';

/** Options of {@link buildModel}. */
export interface BuildModelOptions {
  /** Shape of one example, e.g. [64] for digits vectors or [8, 8, 1] for digits images. */
  inputShape: number[];
  /** Number of classes V (= number of logits, >= 2). */
  numClasses: number;
  /** Seed of the initial weights (integer). */
  seed: number;
  /** Transformers: the token vocabulary size when the spec has none (the tokenizer's). */
  vocabSize?: number;
}

/** The activation layer for `name` (tfjs built-ins where they exist; erf is custom). */
function activationLayer(name: ActivationName, layerName: string): tf.layers.Layer {
  if (name === 'erf') return new ElementwiseActivation({ fn: 'erf', name: layerName });
  return tf.layers.activation({ activation: name, name: layerName });
}

/** Kernel initialisation for a layer feeding into `activation` (standard parameterisation). */
function standardInit(activation: ActivationName | null): Init {
  return activation === 'relu' || activation === 'gelu' ? 'he' : 'glorot';
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Build a seeded model (a `tf.Sequential`; a functional `tf.LayersModel` for transformers) that maps inputs [n, ...inputShape] to logits [n, numClasses].
 *
 * @example
 * const model = buildModel(resolveModelSpec('mlp'), { inputShape: [64], numClasses: 10, seed: 0 });
 * const logits = model.predict(tf.zeros([5, 64])) as tf.Tensor; // shape [5, 10]
 */
export function buildModel(spec: ModelSpec, options: BuildModelOptions): tf.LayersModel {
  installWasmKernelFixes();
  const resolved = resolveModelSpec(spec);
  const { inputShape, numClasses, seed } = options;
  assertArgument(
    Array.isArray(inputShape) &&
      inputShape.length >= 1 &&
      inputShape.every((d) => Number.isInteger(d) && d > 0),
    'inputShape',
    inputShape,
    'a non-empty array of positive integers',
  );
  assertArgument(
    Number.isInteger(numClasses) && numClasses >= 2,
    'numClasses',
    numClasses,
    'an integer >= 2',
  );
  assertArgument(Number.isSafeInteger(seed), 'seed', seed, 'an integer');
  if (resolved.kind === 'transformer') return buildTransformer(resolved, options);

  const layers: tf.layers.Layer[] = [];
  const pending: PendingInit[] = [];
  let first = true;
  /** Standard layer args: the first layer carries the input shape. */
  const head = (name: string) => {
    const args: { name: string; inputShape?: number[] } = { name };
    if (first) args.inputShape = inputShape;
    first = false;
    return args;
  };

  if (resolved.kind === 'linear' || resolved.kind === 'mlp') {
    const mlp: MlpSpec =
      resolved.kind === 'linear'
        ? { kind: 'mlp', widths: [], activation: 'relu', parameterization: 'standard' }
        : resolved;
    checkMlpSize(product(inputShape), mlp.widths, numClasses);
    let width = product(inputShape);
    if (inputShape.length > 1) layers.push(tf.layers.flatten(head('flatten')));
    const ntk = mlp.parameterization === 'ntk';
    const dense = (units: number, name: string, next: ActivationName | null) => {
      const layer = ntk
        ? new ScaledDense({ units, weightScale: 1 / Math.sqrt(width), biasScale: 1, ...head(name) })
        : tf.layers.dense({
            units,
            activation: 'linear',
            useBias: true,
            kernelInitializer: 'zeros',
            ...head(name),
          });
      layers.push(layer);
      pending.push({ layer, init: ntk ? 'unit' : standardInit(next), fanIn: width, fanOut: units });
      width = units;
    };
    mlp.widths.forEach((w, i) => {
      dense(w, `dense_${i + 1}`, mlp.activation);
      layers.push(activationLayer(mlp.activation, `activation_${i + 1}`));
    });
    dense(numClasses, 'logits', null);
    if (mlp.outputScale !== undefined && mlp.outputScale !== 1) {
      layers.push(new Scale({ factor: mlp.outputScale, name: 'output_scale' }));
    }
  } else {
    buildCnn(resolved, inputShape, numClasses, layers, pending, head);
  }

  const model = tf.sequential({ layers, name: resolved.kind });
  initialiseWeights(pending, seed);
  return model;
}

/**
 * Refuse an MLP too large to build before tfjs allocates it: one weight matrix must fit in a typed
 * array, and the parameters (float32) about four times over — weights, gradients, optimiser state,
 * a checkpoint being written — in memory.
 */
export function checkMlpSize(inputDim: number, widths: number[], numClasses: number): void {
  const dims = [inputDim, ...widths, numClasses];
  let parameters = 0;
  let largest = 0;
  for (let i = 0; i + 1 < dims.length; i++) {
    const matrix = dims[i]! * dims[i + 1]!;
    parameters += matrix + dims[i + 1]!;
    largest = Math.max(largest, matrix);
  }
  const received = widths.join(',');
  const argument = 'model.widths (--widths)';
  assertFits({
    what: `an MLP of ${parameters} parameters (${dims.join('→')}; float32 weights, gradients and optimiser state, ×4)`,
    bytes: parameters * 4 * 4,
    available: memoryBudget(),
    argument,
    received,
  });
  if (largest > MAX_TYPED_ARRAY_LENGTH) {
    throw new InvalidArgumentError(
      argument,
      received,
      `widths whose largest weight matrix has at most ${MAX_TYPED_ARRAY_LENGTH} entries (it has ${largest})`,
    );
  }
}

/** A flat input of s·s features as a one-channel image [s, s, 1], or null when it is not square. */
export function squareImageShape(inputShape: number[]): number[] | null {
  if (inputShape.length !== 1) return null;
  const side = Math.round(Math.sqrt(inputShape[0]!));
  return side * side === inputShape[0] ? [side, side, 1] : null;
}

function buildCnn(
  spec: CnnSpec,
  inputShape: number[],
  numClasses: number,
  layers: tf.layers.Layer[],
  pending: PendingInit[],
  head: (name: string) => { name: string; inputShape?: number[] },
): void {
  const filters = spec.filters ?? [16, 32];
  const denseWidths = spec.dense ?? [64];
  const activation = spec.activation ?? 'relu';
  let [h, w, c] = inputShape as [number, number, number];
  if (inputShape.length === 1) {
    const image = squareImageShape(inputShape);
    if (!image) {
      throw new InvalidArgumentError(
        'inputShape',
        inputShape,
        'an image shape [h, w, c] (or [s*s]) for a CNN',
      );
    }
    layers.push(tf.layers.reshape({ targetShape: image, ...head('reshape') }));
    [h, w, c] = image as [number, number, number];
  } else if (inputShape.length !== 3) {
    throw new InvalidArgumentError('inputShape', inputShape, 'an image shape [h, w, c] (or [s*s]) for a CNN');
  }
  let act = 0;
  filters.forEach((f, i) => {
    const conv = tf.layers.conv2d({
      filters: f,
      kernelSize: 3,
      padding: 'same',
      activation: 'linear',
      useBias: true,
      kernelInitializer: 'zeros',
      ...head(`conv_${i + 1}`),
    });
    layers.push(conv);
    pending.push({ layer: conv, init: standardInit(activation), fanIn: 9 * c, fanOut: 9 * f });
    layers.push(activationLayer(activation, `activation_${++act}`));
    c = f;
    if (h >= 2 && w >= 2) {
      layers.push(
        tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: `pool_${i + 1}` }),
      );
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
  });
  layers.push(tf.layers.flatten({ name: 'flatten' }));
  let width = h * w * c;
  checkMlpSize(width, denseWidths, numClasses); // the dense head dominates the CNN's parameters
  denseWidths.forEach((units, i) => {
    const dense = tf.layers.dense({
      units,
      activation: 'linear',
      kernelInitializer: 'zeros',
      name: `dense_${i + 1}`,
    });
    layers.push(dense);
    pending.push({ layer: dense, init: standardInit(activation), fanIn: width, fanOut: units });
    layers.push(activationLayer(activation, `activation_${++act}`));
    width = units;
  });
  const logits = tf.layers.dense({
    units: numClasses,
    activation: 'linear',
    kernelInitializer: 'zeros',
    name: 'logits',
  });
  layers.push(logits);
  pending.push({ layer: logits, init: 'glorot', fanIn: width, fanOut: numClasses });
}

/** Number of trainable parameters P of a model or layer (sum of the sizes of its trainable weights). */
export function countParameters(model: tf.layers.Layer): number {
  return model.trainableWeights.reduce((sum, w) => sum + product(w.shape as number[]), 0);
}
