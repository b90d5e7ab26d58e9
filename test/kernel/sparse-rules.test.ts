/**
 * The sparse embedding rule ('embedding-sparse': a point's gradient on its distinct tokens' rows,
 * contracted by matching tokens, src/kernel/terms.ts tokenPair) against the explicit one-hot rule
 * and float64 finite differences — repeated tokens, every output and contraction, worker threads —
 * and its factor compaction (compactTokens). The 'dense-position' rule is checked on the CLS-pooled
 * transformer in ./transformer-suite.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { empiricalNtkFn, finiteDifferenceNtk, terminateNtkWorkers } from '../../src/kernel/index.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { compactTokens } from '../../src/kernel/terms.js';
import type { NtkOptions } from '../../src/kernel/types.js';
import { randomizeWeights, relMaxError } from './helpers.js';

const TOL = 1e-5;

describe('compactTokens', () => {
  it('sums the cotangents of repeated tokens, drops zero-cotangent positions, sorts ids, marks empty slots −1', () => {
    // b = 1, V = 2, S = 4 positions, e = 2: ids 5, 3, 5, 9; position 3 (id 9) has zero cotangents.
    const ids = new Float32Array([5, 3, 5, 9]);
    const delta = new Float32Array([
      1,
      2,
      10,
      20,
      100,
      200,
      0,
      0, // i = 0
      3,
      4,
      30,
      40,
      300,
      400,
      0,
      -0, // i = 1
    ]);
    const { a, d } = compactTokens(ids, delta, 1, 2, 4, 2);
    expect(Array.from(a)).toEqual([3, 5, -1, -1]);
    expect(Array.from(d)).toEqual([10, 20, 101, 202, 0, 0, 0, 0, 30, 40, 303, 404, 0, 0, 0, 0]);
  });
});

describe('embedding-sparse', () => {
  let model: tf.LayersModel;
  let x1: tf.Tensor;
  let x2: tf.Tensor;
  let before = 0;
  beforeAll(() => {
    // 6 positions < 9 table rows: sparse. Repeated tokens within and across points.
    model = tf.sequential({
      layers: [
        tf.layers.embedding({ inputDim: 9, outputDim: 3, inputLength: 6 }),
        tf.layers.dense({ units: 2, activation: 'tanh' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 3, 0.5);
    x1 = tf.tensor2d(
      [
        [1, 1, 4, 1, 7, 0],
        [0, 0, 0, 0, 0, 0],
        [8, 4, 4, 2, 1, 3],
      ],
      [3, 6],
    );
    x2 = tf.tensor2d(
      [
        [4, 1, 5, 5, 6, 8],
        [2, 2, 2, 3, 3, 7],
      ],
      [2, 6],
    );
  });
  afterAll(async () => {
    model.dispose();
    tf.dispose([x1, x2]);
    await terminateNtkWorkers();
  });
  beforeEach(() => {
    before = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(before);
  });

  const explicit = async (options: NtkOptions, a: tf.Tensor, b?: tf.Tensor) => {
    structuredTestHooks.sparseEmbeddings = false;
    try {
      const fn = empiricalNtkFn(model, { progress: false, ...options });
      expect(fn.plan.rules[0]!.rule).toBe('embedding-explicit');
      return (await fn(a, b)).data;
    } finally {
      structuredTestHooks.sparseEmbeddings = true;
    }
  };

  it('plans embedding-sparse and equals finite differences (symmetric and rectangular)', async () => {
    const fn = empiricalNtkFn(model, { progress: false });
    expect(fn.plan.rules.map((r) => r.rule)).toEqual([
      'embedding-sparse',
      'dense-explicit',
      'dense-identity',
    ]);
    expect(fn.plan.terms[0]).toMatchObject({ kind: 'tokens', width: 18 });
    expect(relMaxError((await fn(x1)).data, finiteDifferenceNtk(model, x1).data)).toBeLessThanOrEqual(TOL);
    expect(relMaxError((await fn(x1, x2)).data, finiteDifferenceNtk(model, x1, x2).data)).toBeLessThanOrEqual(
      TOL,
    );
  });

  it.each<[string, NtkOptions]>([
    ['full, wasm contraction', { contraction: 'wasm' }],
    ['full, tfjs contraction', { contraction: 'tfjs' }],
    ['full, float64', { accumulation: 'float64' }],
    ['full, 2 threads, blocks of 1 point', { threads: 2, blockSize: 1 }],
    ['trace, wasm', { output: 'trace', contraction: 'wasm' }],
    ['trace, tfjs', { output: 'trace', contraction: 'tfjs' }],
    ['trace, float64', { output: 'trace', accumulation: 'float64' }],
    ['diagonal', { output: 'diagonal' }],
    ['diagonal, float64', { output: 'diagonal', accumulation: 'float64' }],
  ])('= the explicit rule: %s (symmetric and rectangular)', async (_, options) => {
    const fn = empiricalNtkFn(model, { progress: false, ...options });
    expect(relMaxError((await fn(x1)).data, await explicit(options, x1))).toBeLessThanOrEqual(1e-6);
    if (options.output !== 'diagonal') {
      expect(relMaxError((await fn(x1, x2)).data, await explicit(options, x1, x2))).toBeLessThanOrEqual(1e-6);
    }
  });

  it.each<[string, NtkOptions]>([
    ['float32', { output: 'pairs' }],
    ['float64', { output: 'pairs', accumulation: 'float64' }],
  ])('= the explicit rule: pairs, %s', async (_, options) => {
    const call = {
      pairs: [
        [0, 1],
        [2, 0],
        [1, 1],
      ] as Array<[number, number]>,
    };
    const sparse = await empiricalNtkFn(model, { progress: false, ...options })(x1, x2, call);
    structuredTestHooks.sparseEmbeddings = false;
    try {
      const dense = await empiricalNtkFn(model, { progress: false, ...options })(x1, x2, call);
      expect(relMaxError(sparse.data, dense.data)).toBeLessThanOrEqual(1e-6);
    } finally {
      structuredTestHooks.sparseEmbeddings = true;
    }
  });
});

describe('wide gram terms: the wasm contraction in chunks of 2048 units', () => {
  let model: tf.LayersModel;
  let x1: tf.Tensor;
  let x2: tf.Tensor;
  beforeAll(() => {
    // Dense over 3 positions, 40 → 60 units: a per-example gradient of 2460 > 2048 columns (the
    // explicit rule forced: positions terms would cost less).
    structuredTestHooks.positionTerms = 'never';
    model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3, 40], units: 60, activation: 'tanh' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 4, 0.3);
    const values = (n: number, seed: number) =>
      Float32Array.from({ length: n * 120 }, (_, i) => Math.sin(seed * 7.1 + i * 0.37));
    x1 = tf.tensor3d(values(4, 1), [4, 3, 40]);
    x2 = tf.tensor3d(values(3, 2), [3, 3, 40]);
  });
  afterAll(() => {
    structuredTestHooks.positionTerms = 'cost';
    model.dispose();
    tf.dispose([x1, x2]);
  });

  it('equals the float64 contraction and finite differences (symmetric, rectangular, 2 threads)', async () => {
    const fn = empiricalNtkFn(model, { contraction: 'wasm', progress: false });
    expect(fn.plan.terms[0]).toMatchObject({ kind: 'gram', width: 2460 });
    const f64 = empiricalNtkFn(model, { accumulation: 'float64', progress: false });
    const sym = await fn(x1);
    expect(relMaxError(sym.data, (await f64(x1)).data)).toBeLessThanOrEqual(1e-6);
    expect(relMaxError(sym.data, finiteDifferenceNtk(model, x1).data)).toBeLessThanOrEqual(TOL);
    const rect = await fn(x1, x2);
    expect(relMaxError(rect.data, (await f64(x1, x2)).data)).toBeLessThanOrEqual(1e-6);
    const threaded = empiricalNtkFn(model, {
      contraction: 'wasm',
      threads: 2,
      blockSize: 2,
      progress: false,
    });
    expect(Array.from((await threaded(x1, x2)).data)).toEqual(Array.from(rect.data));
  });
});
