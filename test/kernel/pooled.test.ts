/**
 * The pooled term (src/kernel/terms.ts, structured.ts pooledTerm): a convolution whose output reaches
 * the logits only through a max-pooling contracted over its pool windows' selected patches.
 *
 * - Which convolutions get it (the max-pool chain, the cost rule) and which do not.
 * - Kernels against the gram term of the same layer (the hook off), in float32 (≤ 1e-6; ≤ 1e-5 for
 *   trace outputs, whose gram side sums V·P-long rows) and float64 (≤ 1e-6), for full, trace,
 *   diagonal and pairs outputs, x1 × x2 and symmetric, small blocks (row and column quads of the
 *   SIMD stage, symmetric block starts), 1 and 2 threads (bitwise equal); against float64 finite
 *   differences (≤ 1e-5).
 * - The same from input pixels (terms.ts PoolPixels: max-pool windows; the hook forces either form):
 *   which convolutions take it, and every comparison above for both forms, strided and dilated
 *   convolutions included.
 * - The invariant behind it (at most one signal position per pool window) fails loudly.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testHooks } from '../../src/kernel/engine.js';
import {
  analyzeModel,
  empiricalNtkFn,
  finiteDifferenceNtk,
  type NtkCallOptions,
  type NtkOptions,
  planStructured,
  terminateNtkWorkers,
} from '../../src/kernel/index.js';
import { pooledFactors, pooledPositions } from '../../src/kernel/position-grads.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { buildModel, resolveModelSpec } from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';
import { bytes, expectSymmetricAndStreamed, normalPoints, randomizeWeights, relMaxError } from './helpers.js';
import { bnNet, seqNet, stridedNet } from './pooled-nets.js';

const L = tf.layers;
type ST = tf.SymbolicTensor;

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  structuredTestHooks.pooledConvolutions = 'cost';
  structuredTestHooks.pooledPixels = 'cost';
  testHooks.mainThreadFactors = true;
  expect(tf.memory().numTensors).toBe(before);
});
afterAll(() => terminateNtkWorkers());

/** The kernel with pooled terms wherever a max-pool allows, and with the same layers as gram terms. */
async function both(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor | null,
  options: NtkOptions,
  call: NtkCallOptions = {},
) {
  structuredTestHooks.pooledConvolutions = 'always';
  const pooled = await empiricalNtkFn(model, { progress: false, ...options })(x, y ?? undefined, call);
  structuredTestHooks.pooledConvolutions = 'never';
  const gram = await empiricalNtkFn(model, { progress: false, ...options })(x, y ?? undefined, call);
  structuredTestHooks.pooledConvolutions = 'cost';
  expect(pooled.rules!.some((r) => r.rule.endsWith('-pooled'))).toBe(true);
  expect(gram.rules!.some((r) => r.rule.endsWith('-pooled'))).toBe(false);
  return { pooled, gram };
}

/** Per pooled term of the model's full-kernel plan: whether its slot products come from input pixels. */
function pixelForms(model: tf.LayersModel): boolean[] {
  const plan = planStructured(analyzeModel(model, 'all'), 'full');
  return plan.terms.filter((t) => t.kind === 'pooled').map((t) => t.pool!.pixels !== undefined);
}

describe('which convolutions get the pooled term', () => {
  it("the cnn preset's second convolution (16 → 4 windows per channel), not the first (64 → 16: no saving)", async () => {
    const model = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 0 });
    const x = normalPoints(2, [64], 1);
    try {
      const k = await empiricalNtkFn(model, { progress: false })(x);
      expect(k.rules!.map((r) => r.rule)).toEqual([
        'conv2d-explicit',
        'conv2d-pooled',
        'dense-gated',
        'dense-identity',
      ]);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('from input pixels where that costs less (the cnn preset, Conv1D), never for a global max-pool', () => {
    const cnn = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 0 });
    const global = (() => {
      const x = tf.input({ shape: [10, 6] });
      const c = L.conv1d({ filters: 8, kernelSize: 3, activation: 'relu' }).apply(x) as ST;
      return tf.model({
        inputs: x,
        outputs: L.dense({ units: 2 }).apply(L.globalMaxPooling1d({}).apply(c) as ST) as ST,
      });
    })();
    const [seq, bn] = [seqNet(), bnNet()];
    try {
      // cnn conv_2: 16² pixel products of 16 floats + 16² sums of 9 taps per pair, against 32 channels
      // × 4² patch products of 145 floats.
      expect(pixelForms(cnn)).toEqual([true]);
      structuredTestHooks.pooledConvolutions = 'always';
      // seqNet (its 4 outputs make the gram rule cheapest): 12² pixel products and sums of 3 taps
      // against 8 channels × 5² patch products of 10 floats.
      expect(pixelForms(seq)).toEqual([true]);
      // bnNet: 64² products of 8 × 8 × 2 pixels cost more than 8 channels × 16² patch products.
      expect(pixelForms(bn)).toEqual([false, false]);
      expect(pixelForms(global)).toEqual([false]);
      structuredTestHooks.pooledPixels = 'always';
      expect(pixelForms(bn)).toEqual([true, true]);
      expect(pixelForms(global)).toEqual([false]);
      structuredTestHooks.pooledPixels = 'never';
      expect(pixelForms(cnn)).toEqual([false, false]);
    } finally {
      for (const m of [cnn, global, seq, bn]) m.dispose();
    }
  });

  it('neither form when its first stage would hold too much per column point (a 16 × 16 image: 64 windows)', () => {
    structuredTestHooks.pooledConvolutions = 'always';
    structuredTestHooks.pooledPixels = 'always';
    const x = tf.input({ shape: [16, 16, 1] });
    const c = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as ST;
    const p = L.maxPooling2d({ poolSize: 2 }).apply(c) as ST;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 3 }).apply(L.flatten().apply(p) as ST) as ST,
    });
    try {
      // Slots: 4 channels × (32 row points × 64 slots) × 64 floats; pixels: 256² + 256² + 4 × 64².
      expect(pixelForms(model)).toEqual([]);
      const plan = planStructured(analyzeModel(model, 'all'), 'full');
      expect(plan.rules.map((r) => r.rule)).toEqual(['conv2d-explicit', 'dense-identity']);
    } finally {
      model.dispose();
    }
  });

  it('through BatchNorm and ReLU to a max-pool, Conv1D too; not when the output has another consumer', async () => {
    structuredTestHooks.pooledConvolutions = 'always'; // (whatever the cost)
    const residual = (() => {
      const x = tf.input({ shape: [6, 6, 4] });
      const c = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as ST;
      const p = L.maxPooling2d({ poolSize: 3 }).apply(c) as ST;
      const q = L.maxPooling2d({ poolSize: 6 }).apply(c) as ST;
      const f = L.concatenate().apply([L.flatten().apply(p) as ST, L.flatten().apply(q) as ST]) as ST;
      return tf.model({ inputs: x, outputs: L.dense({ units: 3 }).apply(f) as ST });
    })();
    const cases: Array<[tf.LayersModel, number[], string[]]> = [
      [seqNet(), [12, 3], ['conv1d-pooled', 'dense-identity']],
      [bnNet(), [8, 8, 2], ['conv2d-pooled', 'batchnorm', 'conv2d-pooled', 'dense-identity']],

      [residual, [6, 6, 4], ['conv2d-explicit', 'dense-identity']],
    ];
    try {
      for (const [model, shape, rules] of cases) {
        const x = normalPoints(2, shape, 2);
        try {
          const k = await empiricalNtkFn(model, { progress: false })(x);
          expect(k.rules!.map((r) => r.rule)).toEqual(rules);
        } finally {
          x.dispose();
        }
      }
    } finally {
      for (const [model] of cases) model.dispose();
    }
  });
});

describe('global max-pooling (one window; tied maxima share their signal)', () => {
  it('Conv2D → GlobalMaxPooling2D over blank patches (tied maxima): pooled, = gram and = float64 finite differences (≤ 1e-5)', async () => {
    const x = tf.input({ shape: [6, 6, 1] });
    const c = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as ST;
    const g = L.globalMaxPooling2d({}).apply(c) as ST;
    const model = tf.model({ inputs: x, outputs: L.dense({ units: 4 }).apply(g) as ST });
    randomizeWeights(model, 61, 0.5);
    // Negative kernels, positive biases: each channel's maximum is its bias, on every blank patch.
    const k = tf.tidy(() => tf.neg(tf.abs(model.layers[1]!.getWeights()[0]!)));
    const b = tf.tensor1d([0.3, 0.6, 0.9, 1.2]);
    model.layers[1]!.setWeights([k, b]);
    const data = new Float32Array(4 * 36);
    for (const [n, at, v] of [
      [0, 14, 1],
      [1, 20, 2],
      [2, 7, 0.5],
      [3, 30, 1.5],
    ])
      data[n! * 36 + at!] = v!;
    const points = tf.tensor(data, [4, 6, 6, 1]);
    try {
      const k1 = await empiricalNtkFn(model, { progress: false })(points);
      expect(k1.rules!.map((r) => r.rule)).toEqual(['conv2d-pooled', 'dense-identity']);
      expect(relMaxError(k1.data, finiteDifferenceNtk(model, points).data)).toBeLessThanOrEqual(1e-5);
      const pair = await both(model, points, null, {});
      expect(relMaxError(pair.pooled.data, pair.gram.data)).toBeLessThanOrEqual(1e-6);
    } finally {
      model.dispose();
      for (const t of [k, b, points]) t.dispose();
    }
  });

  it.each([
    ['gelu', -8],
    ['selu', -30],
  ])(
    'a dead %s channel (all positions tied at the saturated output, derivatives unequal): = the Jacobian path',
    async (activation, deadBias) => {
      const x = tf.input({ shape: [40, 8] });
      const c = L.conv1d({ filters: 16, kernelSize: 3, activation: activation as 'gelu' }).apply(x) as ST;
      const model = tf.model({
        inputs: x,
        outputs: L.dense({ units: 10 }).apply(L.globalMaxPooling1d({}).apply(c) as ST) as ST,
      });
      randomizeWeights(model, 64, 0.5);
      const conv = model.layers[1]!;
      const [kernel, bias] = conv.getWeights();
      const dead = tf.tidy(() => tf.add(bias!, tf.mul(tf.oneHot([0], 16).reshape([16]), deadBias)));
      conv.setWeights([kernel!, dead]);
      dead.dispose();
      const points = normalPoints(4, [40, 8], 5);
      try {
        const jacobian = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(points);
        for (const hook of ['cost', 'always'] as const) {
          structuredTestHooks.pooledConvolutions = hook;
          const k = await empiricalNtkFn(model, { progress: false })(points);
          expect(k.rules![0]!.rule).toBe('conv1d-pooled');
          expect(relMaxError(k.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
        }
      } finally {
        model.dispose();
        points.dispose();
      }
    },
  );

  it('Conv1D → ReLU → GlobalMaxPooling1D (a text CNN): pooled, = float64 finite differences (≤ 1e-5), = gram (≤ 1e-6), threads bitwise', async () => {
    const x = tf.input({ shape: [10, 6] });
    const c = L.conv1d({ filters: 8, kernelSize: 3, activation: 'relu' }).apply(x) as ST;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 2 }).apply(L.globalMaxPooling1d({}).apply(c) as ST) as ST,
    });
    randomizeWeights(model, 62, 0.5);
    const points = normalPoints(9, [10, 6], 63);
    try {
      const k = await empiricalNtkFn(model, { progress: false, blockSize: 4 })(points);
      expect(k.rules!.map((r) => r.rule)).toEqual(['conv1d-pooled', 'dense-identity']);
      expect(relMaxError(k.data, finiteDifferenceNtk(model, points).data)).toBeLessThanOrEqual(1e-5);
      const pair = await both(model, points, null, { blockSize: 4 });
      expect(relMaxError(pair.pooled.data, pair.gram.data)).toBeLessThanOrEqual(1e-6);
      const two = await empiricalNtkFn(model, { progress: false, blockSize: 4, threads: 2 })(points);
      expect(Buffer.compare(bytes(two.data), bytes(k.data))).toBe(0);
    } finally {
      model.dispose();
      points.dispose();
    }
  });
});

describe('which convolutions do not', () => {
  it('a convolution with a softmax activation (over its channels: a signal reaches every channel) gets the explicit rule, = the Jacobian path', async () => {
    structuredTestHooks.pooledConvolutions = 'always'; // (whatever the cost)
    const x = tf.input({ shape: [4, 4, 8] });
    const c = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'softmax' }).apply(x) as ST;
    const p = L.maxPooling2d({ poolSize: 2 }).apply(c) as ST;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 10 }).apply(L.flatten().apply(p) as ST) as ST,
    });
    randomizeWeights(model, 1, 0.5);
    const points = normalPoints(3, [4, 4, 8], 2);
    try {
      const k = await empiricalNtkFn(model, { progress: false })(points);
      expect(k.rules!.map((r) => r.rule)).toEqual(['conv2d-explicit', 'dense-identity']);
      const jacobian = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(points);
      expect(relMaxError(k.data, jacobian.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
      points.dispose();
    }
  });

  it("trace kernels keep the explicit rule (a gram term's V·P-long rows are contracted once per pair)", async () => {
    const model = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 0 });
    const x = normalPoints(2, [64], 1);
    try {
      const k = await empiricalNtkFn(model, { progress: false, output: 'trace' })(x);
      expect(k.rules!.map((r) => r.rule)).toEqual([
        'conv2d-explicit',
        'conv2d-explicit',
        'dense-gated',
        'dense-identity',
      ]);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe.each(['never', 'always'] as const)(
  'pooled = gram (the same layers as full per-example gradients); from input pixels: %s',
  (pixels) => {
    beforeEach(() => {
      structuredTestHooks.pooledPixels = pixels;
    });
    const models: Array<[string, () => tf.LayersModel, number[]]> = [
      [
        'cnn preset',
        () => buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 3 }),
        [64],
      ],
      ['Conv1D → MaxPooling1D (overlapping windows)', seqNet, [12, 3]],
      ["Conv2D → BN → ReLU → MaxPool 'same'; conv without bias → MaxPool", bnNet, [8, 8, 2]],
      ["strided 'same' and dilated 'valid' Conv2D → MaxPool (stride 1)", stridedNet, [9, 9, 2]],
    ];

    it.each(models)(
      '%s: full and trace, x1 × x2 and symmetric, 1 and 2 threads (bitwise equal)',
      async (_, make, shape) => {
        const model = make();
        const x = normalPoints(11, shape, 3);
        const y = normalPoints(6, shape, 4);
        try {
          for (const output of ['full', 'trace'] as const) {
            const tol = output === 'full' ? 1e-6 : 1e-5;
            // Blocks of 5 points (rectangular and symmetric blocks, column quads cut by the block
            // edge) and of 11 (a symmetric block of 44 slot rows: two row bands of the first stage).
            for (const [other, blockSize] of [
              [y, 5],
              [null, 5],
              [null, 11],
            ] as const) {
              const one = await both(model, x, other, { output, blockSize });
              expect(relMaxError(one.pooled.data, one.gram.data)).toBeLessThanOrEqual(tol);
              const two = await both(model, x, other, { output, blockSize, threads: 2 });
              expect(Buffer.compare(bytes(two.pooled.data), bytes(one.pooled.data))).toBe(0);
            }
          }
        } finally {
          model.dispose();
          x.dispose();
          y.dispose();
        }
      },
    );

    // float64: the gram side contracts float32 per-example gradients (sums over positions rounded to
    // float32), the pooled side never forms them: they agree to float32 rounding, not to 1e-15.
    it.each(models)(
      '%s: float64 accumulation, diagonal and pairs outputs (≤ 1e-6)',
      async (_, make, shape) => {
        const model = make();
        const x = normalPoints(5, shape, 5);
        try {
          const f64 = await both(model, x, null, { accumulation: 'float64' });
          expect(relMaxError(f64.pooled.data, f64.gram.data)).toBeLessThanOrEqual(1e-6);
          const diagonal = await both(model, x, null, { output: 'diagonal' });
          expect(relMaxError(diagonal.pooled.data, diagonal.gram.data)).toBeLessThanOrEqual(1e-6);
          const pairs: Array<[number, number]> = [
            [0, 3],
            [4, 4],
            [2, 1],
          ];
          const p = await both(model, x, null, { output: 'pairs' }, { pairs });
          expect(relMaxError(p.pooled.data, p.gram.data)).toBeLessThanOrEqual(1e-6);
        } finally {
          model.dispose();
          x.dispose();
        }
      },
    );

    it('blocks of 40 points (two bands of row points, symmetric and rectangular)', async () => {
      const model = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 4 });
      const x = normalPoints(40, [64], 7);
      const y = normalPoints(37, [64], 8);
      try {
        for (const other of [null, y]) {
          const k = await both(model, x, other, { blockSize: 40 });
          expect(relMaxError(k.pooled.data, k.gram.data)).toBeLessThanOrEqual(1e-6);
        }
      } finally {
        model.dispose();
        x.dispose();
        y.dispose();
      }
    });

    it('factor blocks computed by a worker (the model rebuilt there) = the main thread, bitwise', async () => {
      const model = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 5 });
      const x = normalPoints(12, [64], 9);
      try {
        for (const hook of ['cost', 'always'] as const) {
          structuredTestHooks.pooledConvolutions = hook;
          expect(pixelForms(model)).toEqual(
            hook === 'cost' ? [pixels !== 'never'] : [pixels === 'always', pixels === 'always'],
          );
          const single = await empiricalNtkFn(model, { progress: false, blockSize: 3 })(x);
          testHooks.mainThreadFactors = false;
          const workers = await empiricalNtkFn(model, { progress: false, blockSize: 3, threads: 2 })(x);
          testHooks.mainThreadFactors = true;
          expect(workers.workerFactorBlocks).toBe(4);
          expect(workers.rules!.filter((r) => r.rule === 'conv2d-pooled').length).toBe(
            hook === 'cost' ? 1 : 2,
          );
          expect(Buffer.compare(bytes(workers.data), bytes(single.data))).toBe(0);
        }
      } finally {
        model.dispose();
        x.dispose();
      }
    });

    it('= float64 finite differences (rel. max ≤ 1e-5), float32 and float64 accumulation', async () => {
      const model = bnNet();
      const x = normalPoints(3, [8, 8, 2], 6);
      try {
        const reference = finiteDifferenceNtk(model, x).data;
        structuredTestHooks.pooledConvolutions = 'always';
        expect(pixelForms(model)).toEqual(pixels === 'always' ? [true, true] : [false, false]);
        for (const accumulation of ['float32', 'float64'] as const) {
          const k = await empiricalNtkFn(model, { progress: false, accumulation })(x);
          expect(k.rules!.filter((r) => r.rule === 'conv2d-pooled')).toHaveLength(2);
          expect(relMaxError(k.data, reference)).toBeLessThanOrEqual(1e-5);
        }
      } finally {
        model.dispose();
        x.dispose();
      }
    });
  },
);

describe('symmetry: K = Kᵀ bit for bit, and streamed rows = the whole kernel', () => {
  // Pooled terms do not evaluate K_ij(x, x′) and K_ji(x′, x) in the same order: a point's own V × V
  // block is mirrored, the float64 pair sums take each slot pair's two orders together, and blocks
  // below the diagonal, when rows are streamed, are transposes of blocks above it.
  it.each(['never', 'always'] as const)('the cnn preset, from input pixels: %s', async (pixels) => {
    structuredTestHooks.pooledPixels = pixels;
    const model = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 9 });
    randomizeWeights(model, 9, 0.3);
    const x = normalPoints(30, [64], 1);
    try {
      await expectSymmetricAndStreamed(model, x, 'conv2d-pooled', 9);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('the one-position-per-window invariant', () => {
  // b = 1, V = 2, L = 3 positions, K = 2, C = 1; δ [b·V, L, C] (logit 0's three positions, then logit 1's).
  const patches = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const dims = (S: number) => ({ b: 1, V: 2, L: 3, K: 2, C: 1, S });

  it('signals in more directions than slots are an error naming the layer', () => {
    // Positions 0, 1, 2 signal (1, 0), (2, 1), (0, 3): three directions, two slots.
    const delta = Float32Array.from([1, 2, 0, 0, 1, 3]);
    expect(() => pooledFactors(patches, delta, dims(2), 1, null, 'conv_x')).toThrow(
      /conv_x has signals in more than 2 directions in channel 0/,
    );
    // Only some logits' signals in the same ratio ((1, 2) against (3, 7)): not merged.
    expect(() =>
      pooledFactors(patches, Float32Array.from([1, 0, 3, 2, 0, 7]), dims(1), 1, null, 'c'),
    ).toThrow(/more than 1 directions/);
  });

  it('slots in position order; proportional signals (tied maxima of a global max-pool) share one', () => {
    // Two positions fit: slot vectors (times s_w, then s_b) and signals in position order.
    const f = pooledFactors(patches, Float32Array.from([1, 0, 0, 0, 0, 3]), dims(2), 2, 0.5, 'c');
    expect(Array.from(f.a)).toEqual([2, 4, 0.5, 10, 12, 0.5]);
    expect(Array.from(f.d)).toEqual([1, 0, 0, 3]);
    // Position 2's signals are 3 × position 0's: its vector (and bias) added times 3, position 0's
    // signals kept.
    const g = pooledFactors(patches, Float32Array.from([1, 0, 3, 2, 0, 6]), dims(1), 2, 0.5, 'c');
    expect(Array.from(g.a)).toEqual([2 * (1 + 3 * 5), 2 * (2 + 3 * 6), 0.5 * 4]);
    expect(Array.from(g.d)).toEqual([1, 2]);
  });
});

describe('pooledPositions (the factors from input pixels)', () => {
  // b = 1, V = 2, L = 3 positions, C = 1; δ [b·V, L, C]; x: U = 2 pixels of depth 1.
  const x = Float32Array.from([3, 5]);
  const dims = (S: number) => ({ b: 1, V: 2, L: 3, C: 1, S, units: 2, depth: 1 });

  it('pixels times s_w, then each slot a signalling position in order (no merging), −1 when empty', () => {
    // Positions 0 and 2 signal, position 2's signals 3 × position 0's: still two slots.
    const f = pooledPositions(x, Float32Array.from([1, 0, 3, 2, 0, 6]), dims(3), 2, 'c');
    expect(Array.from(f.a)).toEqual([6, 10, 0, 2, -1]);
    expect(Array.from(f.d)).toEqual([1, 3, 0, 2, 6, 0]);
  });

  it('several points, logits and channels: = plain loops, exactly (signals in the first, a middle or only the last logit)', () => {
    const [b, V, L, C, units, depth] = [3, 4, 6, 5, 4, 2];
    const rng = new Rng(21);
    const xs = Float32Array.from(rng.normalArray(b * units * depth));
    const delta = new Float32Array(b * V * L * C);
    // Per (point, position, channel) a pattern: 1 all logits, 2 + i logit i alone, else no signal.
    const patternOf = (n: number, t: number, c: number) => (n * 7 + t * 3 + c * 5) % 9;
    const signals = (p: number) => p >= 1 && p <= V + 1;
    for (let n = 0; n < b; n++)
      for (let t = 0; t < L; t++)
        for (let c = 0; c < C; c++) {
          const pattern = patternOf(n, t, c);
          for (let i = 0; i < V; i++)
            if (pattern === 1 || pattern === 2 + i)
              delta[((n * V + i) * L + t) * C + c] = rng.normalArray(1)[0]!;
        }
    // Slots: the most signalling positions of any (point, channel).
    let S = 0;
    for (let n = 0; n < b; n++)
      for (let c = 0; c < C; c++) {
        let count = 0;
        for (let t = 0; t < L; t++) if (signals(patternOf(n, t, c))) count++;
        S = Math.max(S, count);
      }
    const X = units * depth;
    const a = new Float32Array(b * (X + C * S)).fill(Number.NaN);
    const d = new Float32Array(b * V * C * S).fill(Number.NaN);
    const f = pooledPositions(xs, delta, { b, V, L, C, S, units, depth }, 0.5, 'c', { a, d });
    const [ea, ed]: [number[], number[]] = [[], new Array(b * V * C * S).fill(0)];
    for (let n = 0; n < b; n++) {
      const sel = new Array(C * S).fill(-1);
      const used = new Array(C).fill(0);
      for (let t = 0; t < L; t++)
        for (let c = 0; c < C; c++) {
          const at = (i: number) => delta[((n * V + i) * L + t) * C + c]!;
          if (![...Array(V).keys()].some((i) => at(i) !== 0)) continue;
          const slot = used[c]++;
          sel[c * S + slot] = t;
          for (let i = 0; i < V; i++) ed[((n * V + i) * C + c) * S + slot] = at(i);
        }
      ea.push(...Array.from(xs.subarray(n * X, (n + 1) * X), (v) => Math.fround(0.5 * v)), ...sel);
    }
    expect(Array.from(f.a)).toEqual(ea);
    expect(Array.from(f.d)).toEqual(ed);
    // A signal in the last logit only is found: some row of logit V − 1 has a slot no other logit has.
    const rowOf = (n: number, i: number) => ed.slice((n * V + i) * C * S, (n * V + i + 1) * C * S);
    const lastOnly = [...Array(b).keys()].some((n) =>
      rowOf(n, V - 1).some((v, k) => v !== 0 && [...Array(V - 1).keys()].every((i) => rowOf(n, i)[k] === 0)),
    );
    expect(lastOnly).toBe(true);
  });

  it('more signalling positions than slots are an error naming the layer', () => {
    expect(() => pooledPositions(x, Float32Array.from([1, 1, 0, 0, 0, 1]), dims(1), 1, 'conv_y')).toThrow(
      /conv_y has signals at more than 1 positions in channel 0/,
    );
  });
});
