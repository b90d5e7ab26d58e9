/**
 * Tiny seeded networks of the shapes researchers use, for the structured-path-on-any-graph tests:
 * residual blocks, merges, nested models, shared layers, sequence models and every layer rule.
 * Each comes with the rule the plan must report per selected layer.
 */
import * as tf from '@tensorflow/tfjs';
import { ScaledDense } from '../../src/model/index.js';
import { normalPoints, randomizeWeights, tokenPoints } from './helpers.js';

export interface GraphNet {
  name: string;
  model: tf.LayersModel;
  x1: tf.Tensor;
  x2: tf.Tensor;
  /** [className, rule] per selected layer. */
  rules: Array<[string, string]>;
  /**
   * Dilated convolutions: tfjs has no gradient for them, so the Jacobian path and the hybrid on
   * conv layers cannot run (the structured rule needs none: it convolves with a dilated kernel).
   */
  dilated?: boolean;
}

type ST = tf.SymbolicTensor;
const L = tf.layers;

/** Seeded weights; moving variances made positive (a batch norm divides by √(σ² + ε)). */
export function seedWeights(model: tf.LayersModel, seed: number): void {
  randomizeWeights(model, seed, 0.5);
  for (const w of model.weights) {
    if (/moving_variance/.test(w.name)) {
      const t = tf.tidy(() => tf.add(tf.abs(w.read()), 0.5));
      w.write(t);
      t.dispose();
    }
  }
}

function net(
  name: string,
  model: tf.LayersModel,
  shape: number[],
  seed: number,
  rules: Array<[string, string]>,
  vocab?: number,
  dilated = false,
): GraphNet {
  seedWeights(model, seed);
  const make = (n: number, s: number) =>
    vocab ? tokenPoints(n, shape[0]!, vocab, s) : normalPoints(n, shape, s);
  return { name, model, x1: make(3, seed + 1), x2: make(2, seed + 2), rules, dilated };
}

function functional(input: ST, output: ST): tf.LayersModel {
  return tf.model({ inputs: input, outputs: output });
}

/** Networks whose every op has a gradient on the wasm backend. */
export function graphNets(): GraphNet[] {
  const nets: GraphNet[] = [];
  {
    // Residual MLP: x → dense → relu → dense → + x → dense.
    const x = tf.input({ shape: [5] });
    const h = L.dense({ units: 5, activation: 'relu' }).apply(x) as ST;
    const r = L.dense({ units: 5 }).apply(h) as ST;
    const s = L.add().apply([x, r]) as ST;
    const out = L.dense({ units: 3 }).apply(L.activation({ activation: 'tanh' }).apply(s) as ST) as ST;
    nets.push(
      net('residual MLP', functional(x, out), [5], 100, [
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // CNN: conv → batch norm → relu → average pool → residual conv block → flatten → dense.
    const x = tf.input({ shape: [6, 6, 2] });
    const c = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }).apply(x) as ST;
    const bn = L.batchNormalization().apply(c) as ST;
    const a = L.activation({ activation: 'relu' }).apply(bn) as ST;
    const p = L.averagePooling2d({ poolSize: 2 }).apply(a) as ST;
    const c2 = L.conv2d({ filters: 3, kernelSize: 2, padding: 'same', activation: 'tanh' }).apply(p) as ST;
    const s = L.add().apply([p, c2]) as ST;
    const out = L.dense({ units: 3 }).apply(L.flatten().apply(s) as ST) as ST;
    nets.push(
      net('residual CNN with BatchNorm', functional(x, out), [6, 6, 2], 112, [
        ['Conv2D', 'conv2d-explicit'],
        ['BatchNormalization', 'batchnorm'],
        ['Conv2D', 'conv2d-explicit'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // Transformer-style block over a sequence [T, d]: dense over positions, layer norm, gelu MLP,
    // residual, global average pooling, dense head.
    const x = tf.input({ shape: [4, 3] });
    const e = L.dense({ units: 4 }).apply(x) as ST;
    const n = L.layerNormalization().apply(e) as ST;
    const m = L.dense({ units: 4, activation: 'gelu' }).apply(n) as ST;
    const s = L.add().apply([e, m]) as ST;
    const g = L.globalAveragePooling1d().apply(s) as ST;
    const out = L.dense({ units: 3 }).apply(g) as ST;
    nets.push(
      net('LayerNorm block over a sequence', functional(x, out), [4, 3], 120, [
        ['Dense', 'dense-explicit'],
        ['LayerNormalization', 'layernorm'],
        ['Dense', 'dense-explicit'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // Conv1D: strided 'same', dilated 'valid'.
    const model = tf.sequential({
      layers: [
        L.conv1d({
          inputShape: [9, 2],
          filters: 3,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          activation: 'relu',
        }),
        L.conv1d({ filters: 2, kernelSize: 2, dilationRate: 2, padding: 'valid', activation: 'tanh' }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net(
        'Conv1D strided and dilated',
        model,
        [9, 2],
        130,
        [
          ['Conv1D', 'conv1d-explicit'],
          ['Conv1D', 'conv1d-explicit'],
          ['Dense', 'dense-identity'],
        ],
        undefined,
        true,
      ),
    );
  }
  {
    // Conv2D with dilation 2 ('same') and asymmetric strides.
    const model = tf.sequential({
      layers: [
        L.conv2d({
          inputShape: [7, 7, 1],
          filters: 2,
          kernelSize: 3,
          dilationRate: 2,
          padding: 'same',
          activation: 'tanh',
        }),
        L.conv2d({ filters: 2, kernelSize: [2, 3], strides: [2, 1], padding: 'valid' }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net(
        'Conv2D dilated and strided',
        model,
        [7, 7, 1],
        140,
        [
          ['Conv2D', 'conv2d-explicit'],
          ['Conv2D', 'conv2d-explicit'],
          ['Dense', 'dense-identity'],
        ],
        undefined,
        true,
      ),
    );
  }
  {
    // A shared dense layer on two branches, concatenated.
    const x = tf.input({ shape: [4] });
    const shared = L.dense({ units: 4, activation: 'tanh' });
    const b1 = shared.apply(x) as ST;
    const b2 = shared.apply(L.dense({ units: 4 }).apply(x) as ST) as ST;
    const c = L.concatenate().apply([b1, b2]) as ST;
    const out = L.dense({ units: 3 }).apply(c) as ST;
    nets.push(
      net('shared layer + Concatenate', functional(x, out), [4], 150, [
        ['Dense', 'dense-explicit'],
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // Multiply and Average merges.
    const x = tf.input({ shape: [4] });
    const a = L.dense({ units: 5, activation: 'tanh' }).apply(x) as ST;
    const b = L.dense({ units: 5, activation: 'sigmoid' }).apply(x) as ST;
    const m = L.multiply().apply([a, b]) as ST;
    const c = L.dense({ units: 5 }).apply(x) as ST;
    const v = L.average().apply([m, c]) as ST;
    const out = L.dense({ units: 3 }).apply(v) as ST;
    nets.push(
      net('Multiply and Average merges', functional(x, out), [4], 160, [
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // A nested functional model (with its own residual) inside a Sequential, then a dense head.
    const xi = tf.input({ shape: [4] });
    const hi = L.dense({ units: 4, activation: 'relu' }).apply(xi) as ST;
    const inner = functional(xi, L.add().apply([xi, hi]) as ST);
    const model = tf.sequential({
      layers: [L.dense({ inputShape: [3], units: 4 }), inner, L.dense({ units: 3 })],
    });
    nets.push(
      net('nested model with a residual', model, [3], 170, [
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-factored'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // PReLU with a shared axis on a sequence, and one without, entk's ScaledDense.
    const model = tf.sequential({
      layers: [
        new ScaledDense({ inputShape: [3, 2], units: 3, weightScale: 0.7, biasScale: 0.4 }),
        L.prelu({ sharedAxes: [1] }),
        L.flatten(),
        L.dense({ units: 4 }),
        L.prelu(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net('PReLU and ScaledDense over positions', model, [3, 2], 180, [
        ['ScaledDense', 'dense-explicit'],
        ['PReLU', 'prelu'],
        ['Dense', 'dense-factored'],
        ['PReLU', 'prelu'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    // Embedding (4 positions < 6 rows: 'embedding-sparse') → layer norm → dense over positions → flatten.
    const model = tf.sequential({
      layers: [
        L.embedding({ inputDim: 6, outputDim: 3, inputLength: 4 }),
        L.layerNormalization({ epsilon: 1e-2 }),
        L.dense({ units: 2, activation: 'tanh' }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net(
        'Embedding + LayerNorm',
        model,
        [4],
        190,
        [
          ['Embedding', 'embedding-sparse'],
          ['LayerNormalization', 'layernorm'],
          ['Dense', 'dense-explicit'],
          ['Dense', 'dense-identity'],
        ],
        6,
      ),
    );
  }
  {
    const model = tf.sequential({
      layers: [
        L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same' }),
        L.batchNormalization(),
        L.activation({ activation: 'relu' }),
        L.maxPooling2d({ poolSize: 2 }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net('CNN BatchNorm → MaxPool', model, [6, 6, 2], 200, [
        ['Conv2D', 'conv2d-explicit'],
        ['BatchNormalization', 'batchnorm'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  return nets;
}

/**
 * Networks with depthwise convolutions (DepthwiseConv2D, SeparableConv2D), whose gradients tfjs-wasm
 * 4.22 lacks without entk's kernel fixes (src/backend/wasm-kernels.ts).
 */
export function depthwiseGraphNets(): GraphNet[] {
  const nets: GraphNet[] = [];
  {
    const model = tf.sequential({
      layers: [
        L.depthwiseConv2d({
          inputShape: [6, 6, 2],
          kernelSize: 3,
          depthMultiplier: 2,
          padding: 'same',
          activation: 'relu',
        }),
        L.depthwiseConv2d({ kernelSize: 2, strides: 2, padding: 'valid', useBias: false }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net('DepthwiseConv2D', model, [6, 6, 2], 210, [
        ['DepthwiseConv2D', 'depthwise-explicit'],
        ['DepthwiseConv2D', 'depthwise-explicit'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  {
    const model = tf.sequential({
      layers: [
        L.separableConv2d({
          inputShape: [6, 6, 2],
          filters: 3,
          kernelSize: 3,
          depthMultiplier: 2,
          padding: 'same',
          activation: 'tanh',
        }),
        L.separableConv2d({ filters: 2, kernelSize: 2, strides: 2, padding: 'valid' }),
        L.flatten(),
        L.dense({ units: 3 }),
      ],
    });
    nets.push(
      net('SeparableConv2D', model, [6, 6, 2], 220, [
        ['SeparableConv2D', 'separable-explicit'],
        ['SeparableConv2D', 'separable-explicit'],
        ['Dense', 'dense-identity'],
      ]),
    );
  }
  return nets;
}
