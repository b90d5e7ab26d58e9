/**
 * Op-by-op conformance of the wasm backend (with entk's kernel fixes) against the pure-JS cpu
 * backend, for every forward op and gradient the layers of the eNTK paths use: each case computes
 * y = f(inputs) and the gradients of Σ y ⊙ c (c a seeded cotangent) with respect to every float
 * input, on both backends, and compares them by the relative max error
 * max |wasm − cpu| / max |cpu| (float32 on both sides; tolerance 1e-5 unless a case states one).
 * Inputs include ties (values on a coarse grid), all-zero pooling windows, odd sizes, strides,
 * 'same'/'valid' padding and dilations — the conditions under which wasm kernels have been wrong.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { installWasmKernelFixes } from '../../src/backend/index.js';
import { testValues } from '../model/reference.js';

type Kind = 'normal' | 'ties' | 'relu' | 'zeros' | 'positive' | 'ids';
interface Input {
  shape: number[];
  kind?: Kind;
  /** 'ids': integer values in [0, max). */
  max?: number;
}
interface Case {
  name: string;
  inputs: Input[];
  fn: (...xs: tf.Tensor[]) => tf.Tensor;
  tol?: number;
}

function values(input: Input, seed: number): Float32Array | Int32Array {
  const n = input.shape.reduce((a, b) => a * b, 1);
  const v = testValues(n, seed);
  switch (input.kind ?? 'normal') {
    case 'normal':
      return v;
    case 'ties':
      // a grid of 5 values: most pooling windows hold several equal maxima
      return v.map((x) => Math.round(2 * x) / 2);
    case 'relu':
      return v.map((x) => Math.max(0, x));
    case 'zeros':
      return new Float32Array(n);
    case 'positive':
      return v.map((x) => 0.5 + Math.abs(x));
    case 'ids':
      return Int32Array.from(v, (x) => Math.floor(((x + 1) / 2) * input.max!) % input.max!);
  }
}

interface Outcome {
  y: Float32Array;
  grads: Float32Array[];
}

async function run(backend: string, c: Case, index: number): Promise<Outcome> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = c.inputs.map((input, k) =>
      tf.tensor(values(input, 1000 * index + k + 1), input.shape, input.kind === 'ids' ? 'int32' : 'float32'),
    );
    const y = c.fn(...xs);
    const cot = tf.tensor(testValues(y.size, 7 + index), y.shape);
    const wrt = c.inputs.flatMap((input, k) => (input.kind === 'ids' ? [] : [k]));
    const g = tf.grads((...vars: tf.Tensor[]) => {
      const all = xs.map((x: tf.Tensor, k: number) => (wrt.includes(k) ? vars[wrt.indexOf(k)]! : x));
      return tf.sum(tf.mul(c.fn(...all), cot));
    });
    const grads = g(wrt.map((k) => xs[k]!));
    return {
      y: Float32Array.from(y.dataSync()),
      grads: grads.map((t) => Float32Array.from(t.dataSync())),
    };
  });
}

function relMaxError(a: Float32Array, ref: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return scale === 0 ? err : err / scale;
}

const t4 = (x: tf.Tensor) => x as tf.Tensor4D;
const t3 = (x: tf.Tensor) => x as tf.Tensor3D;
const t5 = (x: tf.Tensor) => x as tf.Tensor5D;

/** Every op of the supported layers, with the conditions that have broken wasm kernels. */
const CASES: Case[] = [
  // Dense and attention products
  { name: 'matMul', inputs: [{ shape: [5, 7] }, { shape: [7, 3] }], fn: (a, b) => tf.matMul(a!, b!) },
  {
    name: 'matMul transposeA/B',
    inputs: [{ shape: [7, 5] }, { shape: [3, 7] }],
    fn: (a, b) => tf.matMul(a!, b!, true, true),
  },
  {
    name: 'fused matMul + bias + relu',
    inputs: [{ shape: [5, 7] }, { shape: [7, 3] }, { shape: [3] }],
    fn: (a, b, c) => tf.fused.matMul({ a: a!, b: b!, bias: c, activation: 'relu' }),
  },
  {
    name: 'batchMatMul q·kᵀ, attn·v',
    inputs: [{ shape: [2, 5, 4] }, { shape: [2, 6, 4] }, { shape: [2, 6, 3] }],
    fn: (q, k, v) => tf.matMul(tf.softmax(tf.matMul(q!, k!, false, true)), v!),
  },
  {
    name: 'masked attention scores (where/select)',
    inputs: [{ shape: [2, 5, 5] }],
    fn: (s) => {
      const mask = tf.linalg.bandPart(tf.ones([5, 5]), -1, 0).cast('bool');
      return tf.softmax(
        tf.where(mask.expandDims(0).tile([2, 1, 1]) as tf.Tensor, s!, tf.fill(s!.shape, -1e9)),
      );
    },
  },
  // Convolutions
  ...[1, 2].flatMap((stride) =>
    (['same', 'valid'] as const).map(
      (pad): Case => ({
        name: `conv2d stride ${stride} ${pad} (odd sizes)`,
        inputs: [{ shape: [2, 7, 5, 3] }, { shape: [3, 2, 3, 4] }],
        fn: (x, w) => tf.conv2d(t4(x!), t4(w!), stride, pad),
      }),
    ),
  ),
  {
    name: 'conv2d stride [2, 1] same, 1×1 kernel',
    inputs: [{ shape: [1, 6, 5, 2] }, { shape: [1, 1, 2, 3] }],
    fn: (x, w) => tf.conv2d(t4(x!), t4(w!), [2, 1], 'same'),
  },
  {
    name: 'fused conv2d + bias + relu',
    inputs: [{ shape: [2, 5, 5, 3] }, { shape: [3, 3, 3, 4] }, { shape: [4] }],
    fn: (x, w, b) =>
      tf.fused.conv2d({ x: t4(x!), filter: t4(w!), strides: 1, pad: 'same', bias: b, activation: 'relu' }),
  },
  {
    name: 'conv1d stride 2 same',
    inputs: [{ shape: [2, 9, 3] }, { shape: [3, 3, 4] }],
    fn: (x, w) => tf.conv1d(t3(x!), t3(w!), 2, 'same'),
  },
  ...[1, 2].flatMap((stride) =>
    (['same', 'valid'] as const).map(
      (pad): Case => ({
        name: `depthwiseConv2d stride ${stride} ${pad}, multiplier 2`,
        inputs: [{ shape: [2, 7, 6, 3] }, { shape: [3, 3, 3, 2] }],
        fn: (x, w) => tf.depthwiseConv2d(t4(x!), t4(w!), stride, pad),
      }),
    ),
  ),
  {
    name: 'separableConv2d same',
    inputs: [{ shape: [2, 6, 5, 3] }, { shape: [3, 3, 3, 2] }, { shape: [1, 1, 6, 4] }],
    fn: (x, dw, pw) => tf.separableConv2d(t4(x!), t4(dw!), t4(pw!), 1, 'same'),
  },
  // 'same' padding that TensorFlow's rule makes negative (clamped to 0: stride > kernel and
  // (out − 1)·s + k < size), which the stock wasm convolutions computed wrongly (relative error 1)
  ...(
    [
      [[2, 3, 3, 2], [2, 2], 3],
      [[1, 7, 7, 3], [2, 2], 4],
      [[2, 4, 4, 2], [3, 3], 4],
      [
        [1, 6, 7, 2],
        [3, 2],
        [2, 4],
      ], // rows padded by 1, columns negative
    ] as const
  ).flatMap(([xShape, [kh, kw], stride]): Case[] => [
    {
      name: `conv2d x ${xShape.join('×')} kernel ${kh}×${kw} stride ${stride} same (negative padding)`,
      inputs: [{ shape: [...xShape] }, { shape: [kh, kw, xShape[3], 3] }],
      fn: (x, w) => tf.conv2d(t4(x!), t4(w!), stride as number | [number, number], 'same'),
    },
    {
      name: `fused conv2d + bias + relu x ${xShape.join('×')} kernel ${kh}×${kw} stride ${stride} same (negative padding)`,
      inputs: [{ shape: [...xShape] }, { shape: [kh, kw, xShape[3], 3] }, { shape: [3] }],
      fn: (x, w, b) =>
        tf.fused.conv2d({
          x: t4(x!),
          filter: t4(w!),
          strides: stride as number | [number, number],
          pad: 'same',
          bias: b,
          activation: 'relu',
        }),
    },
    {
      name: `depthwiseConv2d x ${xShape.join('×')} kernel ${kh}×${kw} stride ${stride} same (negative padding)`,
      inputs: [{ shape: [...xShape] }, { shape: [kh, kw, xShape[3], 2] }],
      fn: (x, w) => tf.depthwiseConv2d(t4(x!), t4(w!), stride as number | [number, number], 'same'),
    },
    {
      name: `fused depthwiseConv2d + bias x ${xShape.join('×')} kernel ${kh}×${kw} stride ${stride} same (negative padding)`,
      inputs: [{ shape: [...xShape] }, { shape: [kh, kw, xShape[3], 2] }, { shape: [2 * xShape[3]] }],
      fn: (x, w, b) =>
        tf.fused.depthwiseConv2d({
          x: t4(x!),
          filter: t4(w!),
          strides: stride as number | [number, number],
          pad: 'same',
          bias: b,
        }),
    },
    {
      name: `separableConv2d x ${xShape.join('×')} kernel ${kh}×${kw} stride ${stride} same (negative padding)`,
      inputs: [
        { shape: [...xShape] },
        { shape: [kh, kw, xShape[3], 2] },
        { shape: [1, 1, 2 * xShape[3], 3] },
      ],
      fn: (x, dw, pw) =>
        tf.separableConv2d(t4(x!), t4(dw!), t4(pw!), stride as number | [number, number], 'same'),
    },
  ]),
  {
    name: 'conv1d kernel 2 stride 3 same (negative padding)',
    inputs: [{ shape: [2, 6, 3] }, { shape: [2, 3, 4] }],
    fn: (x, w) => tf.conv1d(t3(x!), t3(w!), 3, 'same'),
  },
  {
    name: 'conv2dTranspose kernel 2 stride 3 same (the forward of a negative-padding conv)',
    inputs: [{ shape: [2, 1, 1, 3] }, { shape: [2, 2, 2, 3] }],
    fn: (y, w) => tf.conv2dTranspose(t4(y!), t4(w!), [2, 3, 3, 2], 3, 'same'),
  },
  // Pooling: ties, all-zero windows, strides ≠ pool size, 'same' padding
  {
    name: 'maxPool all-zero input',
    inputs: [{ shape: [1, 4, 4, 1], kind: 'zeros' }],
    fn: (x) => tf.maxPool(t4(x!), 2, 2, 'valid'),
  },
  ...(['ties', 'relu', 'normal'] as const).flatMap((kind) =>
    (
      [
        [2, 2, 'valid'],
        [3, 2, 'valid'],
        [3, 2, 'same'],
        [2, 1, 'same'],
        [3, 3, 'same'],
      ] as const
    ).map(
      ([size, stride, pad]): Case => ({
        name: `maxPool ${size}×${size} stride ${stride} ${pad} (${kind})`,
        inputs: [{ shape: [2, 7, 6, 3], kind }],
        fn: (x) => tf.maxPool(t4(x!), size, stride, pad),
      }),
    ),
  ),
  {
    name: 'maxPool after relu (the Conv → ReLU → BN → MaxPool pattern)',
    inputs: [
      { shape: [2, 6, 6, 2], kind: 'relu' },
      { shape: [2] },
      { shape: [2], kind: 'positive' },
      { shape: [2] },
      { shape: [2], kind: 'positive' },
    ],
    fn: (x, m, v, o, s) => tf.maxPool(t4(tf.batchNorm(tf.relu(t4(x!)), m!, v!, o, s)), 2, 2, 'valid'),
  },
  ...(['ties', 'relu'] as const).map(
    (kind): Case => ({
      name: `maxPool1d (via maxPool) size 2 stride 2 (${kind})`,
      inputs: [{ shape: [2, 9, 3], kind }],
      fn: (x) => tf.maxPool(t3(x!).expandDims(2) as tf.Tensor4D, [2, 1], [2, 1], 'valid').squeeze([2]),
    }),
  ),
  ...(['ties', 'relu', 'zeros'] as const).map(
    (kind): Case => ({
      name: `maxPool3d 2 stride 2 same (${kind})`,
      inputs: [{ shape: [1, 5, 4, 4, 2], kind }],
      fn: (x) => tf.maxPool3d(t5(x!), 2, 2, 'same'),
    }),
  ),
  ...(
    [
      [2, 2, 'valid'],
      [3, 2, 'same'],
      [3, 1, 'same'],
    ] as const
  ).map(
    ([size, stride, pad]): Case => ({
      name: `avgPool ${size} stride ${stride} ${pad}`,
      inputs: [{ shape: [2, 7, 6, 3] }],
      fn: (x) => tf.avgPool(t4(x!), size, stride, pad),
    }),
  ),
  {
    name: 'avgPool3d 2 stride 1 same',
    inputs: [{ shape: [1, 4, 3, 3, 2] }],
    fn: (x) => tf.avgPool3d(t5(x!), 2, 1, 'same'),
  },
  { name: 'global average pool (mean)', inputs: [{ shape: [2, 5, 3, 4] }], fn: (x) => tf.mean(x!, [1, 2]) },
  {
    name: 'global max pool (max, with ties)',
    inputs: [{ shape: [2, 5, 3, 4], kind: 'ties' }],
    fn: (x) => tf.max(x!, [1, 2]),
  },
  // Normalisation
  {
    name: 'batchNorm (inference) 4-D with offset and scale',
    inputs: [
      { shape: [2, 3, 3, 4] },
      { shape: [4] },
      { shape: [4], kind: 'positive' },
      { shape: [4] },
      { shape: [4] },
    ],
    fn: (x, m, v, o, s) => tf.batchNorm(x!, m!, v!, o, s, 1e-3),
  },
  {
    name: 'batchNorm (inference) 2-D',
    inputs: [
      { shape: [5, 6] },
      { shape: [6] },
      { shape: [6], kind: 'positive' },
      { shape: [6] },
      { shape: [6] },
    ],
    fn: (x, m, v, o, s) => tf.batchNorm(x!, m!, v!, o, s, 1e-3),
  },
  {
    name: 'layer normalisation (moments over the last axis)',
    inputs: [{ shape: [3, 4, 6] }, { shape: [6] }, { shape: [6] }],
    fn: (x, g, b) => {
      const { mean, variance } = tf.moments(x!, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x!, mean), tf.sqrt(tf.add(variance, 1e-3))), g!), b!);
    },
  },
  // Embedding
  {
    name: 'gather (embedding lookup, repeated ids)',
    inputs: [{ shape: [7, 5] }, { shape: [3, 6], kind: 'ids', max: 7 }],
    fn: (w, ids) => tf.gather(w!, ids!),
  },
  // Activations
  { name: 'relu', inputs: [{ shape: [4, 9], kind: 'ties' }], fn: (x) => tf.relu(x!) },
  { name: 'relu6', inputs: [{ shape: [4, 9] }], fn: (x) => tf.relu6(tf.mul(x!, 8)) },
  { name: 'leakyRelu', inputs: [{ shape: [4, 9] }], fn: (x) => tf.leakyRelu(x!, 0.2) },
  { name: 'elu', inputs: [{ shape: [4, 9] }], fn: (x) => tf.elu(x!) },
  { name: 'selu', inputs: [{ shape: [4, 9] }], fn: (x) => tf.selu(x!) },
  { name: 'prelu', inputs: [{ shape: [4, 9] }, { shape: [9] }], fn: (x, a) => tf.prelu(x!, a!) },
  { name: 'tanh', inputs: [{ shape: [4, 9] }], fn: (x) => tf.tanh(tf.mul(x!, 3)) },
  { name: 'sigmoid', inputs: [{ shape: [4, 9] }], fn: (x) => tf.sigmoid(tf.mul(x!, 3)) },
  { name: 'erf', inputs: [{ shape: [4, 9] }], fn: (x) => tf.erf(tf.mul(x!, 2)) },
  { name: 'softplus', inputs: [{ shape: [4, 9] }], fn: (x) => tf.softplus(tf.mul(x!, 3)) },
  {
    name: 'exp, log, sqrt, square',
    inputs: [{ shape: [4, 9], kind: 'positive' }],
    fn: (x) => tf.add(tf.sqrt(x!), tf.mul(tf.log(x!), tf.square(tf.exp(x!)))),
  },
  {
    name: 'gelu (tanh form)',
    inputs: [{ shape: [4, 9] }],
    fn: (x) =>
      tf.mul(
        tf.mul(x!, 0.5),
        tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x!, tf.mul(0.044715, tf.pow(x!, 3)))))),
      ),
  },
  { name: 'softmax (last axis)', inputs: [{ shape: [3, 4, 7] }], fn: (x) => tf.softmax(tf.mul(x!, 3)) },
  { name: 'logSoftmax', inputs: [{ shape: [3, 7] }], fn: (x) => tf.logSoftmax(tf.mul(x!, 3)) },
  // Merges and shape ops
  {
    name: 'add, multiply, average (broadcast)',
    inputs: [{ shape: [3, 4, 5] }, { shape: [4, 5] }, { shape: [3, 4, 5] }],
    fn: (a, b, c) => tf.div(tf.addN([tf.mul(a!, b!), c!, tf.sub(a!, b!)]), 3),
  },
  {
    name: 'concatenate (last and middle axes)',
    inputs: [{ shape: [3, 4, 5] }, { shape: [3, 4, 2] }, { shape: [3, 1, 7] }],
    fn: (a, b, c) => tf.concat([tf.concat([a!, b!], -1), c!], 1),
  },
  {
    name: 'reshape, flatten, permute, slice',
    inputs: [{ shape: [2, 3, 4, 5] }],
    fn: (x) => tf.slice(tf.reshape(tf.transpose(x!, [0, 2, 1, 3]), [2, 60]), [0, 7], [2, 30]),
  },
  {
    name: 'pad, tile, split',
    inputs: [{ shape: [2, 5, 4] }],
    fn: (x) => {
      const [a, b] = tf.split(
        tf.tile(
          tf.pad(x!, [
            [0, 0],
            [1, 2],
            [0, 1],
          ]),
          [1, 1, 2],
        ),
        [3, 7],
        2,
      );
      return tf.concat([tf.mul(a!, 2), b!], 2);
    },
  },
  {
    name: 'sum, maximum, minimum',
    inputs: [{ shape: [4, 6] }, { shape: [4, 6] }],
    fn: (a, b) => tf.sum(tf.add(tf.maximum(a!, b!), tf.minimum(a!, tf.mul(b!, 2))), 1),
  },
];

let before = 0;
beforeAll(() => {
  installWasmKernelFixes();
});
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(async () => {
  await tf.setBackend('wasm');
  expect(tf.memory().numTensors).toBe(before);
});
afterAll(async () => {
  await tf.setBackend('wasm');
});

describe('wasm vs cpu: forward and gradients of every op the supported layers use', () => {
  it('the maxPool gradient of an all-zero input routes like cpu (1 0 1 0 …, not 1 0 0 0 …)', async () => {
    const c = CASES.find((x) => x.name === 'maxPool all-zero input')!;
    const cpu = await run('cpu', c, 0);
    const wasm = await run('wasm', c, 0);
    // cpu: the first position of each 2×2 window takes the gradient
    expect(Array.from(cpu.grads[0]!).map((v) => (v === 0 ? 0 : 1))).toEqual([
      1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0,
    ]);
    expect(Array.from(wasm.grads[0]!)).toEqual(Array.from(cpu.grads[0]!));
  });

  for (const [index, c] of CASES.entries()) {
    it(`${c.name} (rel. max error <= ${c.tol ?? 1e-5})`, async () => {
      const cpu = await run('cpu', c, index);
      const wasm = await run('wasm', c, index);
      expect(wasm.y.length).toBe(cpu.y.length);
      expect(relMaxError(wasm.y, cpu.y), 'forward').toBeLessThanOrEqual(c.tol ?? 1e-5);
      cpu.grads.forEach((g, k) => {
        expect(wasm.grads[k]!.length).toBe(g.length);
        expect(relMaxError(wasm.grads[k]!, g), `gradient ${k}`).toBeLessThanOrEqual(c.tol ?? 1e-5);
      });
    });
  }
});
