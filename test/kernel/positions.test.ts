/**
 * The positions term (src/kernel/terms.ts positionsPair, structured.ts positionsTerm): a dense layer
 * over T positions contracted from its inputs and signals per position,
 *   K_ij += Σ_{t,t'} (s_w²⟨a[t], a'[t']⟩ + s_b²) ⟨δ_i[t], δ'_j[t']⟩,
 * instead of its explicit per-example gradient rows (docs/theory.md §Per-layer rules).
 *
 * - Which layers get it (the cost rule; full kernels only) and which do not.
 * - Kernels against the explicit rule of the same layers (the hook off) in float32 (≤ 1e-6 full,
 *   ≤ 1e-5 trace), wasm and tfjs contractions, and float64 (≤ 1e-6: the explicit side sums float32
 *   per-example gradients); diagonal and pairs outputs; x1 × x2 and symmetric; block sizes that cut
 *   the kernel's tiles; 1 and 2 threads bitwise equal; factor workers bitwise equal.
 * - Against float64 finite differences (≤ 1e-5).
 * - K = Kᵀ bit for bit, and streamed rows = the whole kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testHooks } from '../../src/kernel/engine.js';
import {
  empiricalNtkFn,
  finiteDifferenceNtk,
  type NtkCallOptions,
  type NtkOptions,
  perLayerNtk,
  terminateNtkWorkers,
} from '../../src/kernel/index.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { bytes, expectSymmetricAndStreamed, normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const L = tf.layers;
type ST = tf.SymbolicTensor;

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  structuredTestHooks.positionTerms = 'cost';
  testHooks.mainThreadFactors = true;
  expect(tf.memory().numTensors).toBe(before);
});
afterAll(() => terminateNtkWorkers());

/** The LayerNorm block of the benchmark (bench/ntk-models.ts ln-seq): 8 tokens of 8 features. */
function lnSeq(): tf.LayersModel {
  const x = tf.input({ shape: [64] });
  const seq = L.reshape({ targetShape: [8, 8] }).apply(x) as ST;
  const e = L.dense({ units: 32 }).apply(seq) as ST;
  const n1 = L.layerNormalization().apply(e) as ST;
  const m = L.dense({ units: 32 }).apply(L.dense({ units: 64, activation: 'gelu' }).apply(n1) as ST) as ST;
  const n2 = L.layerNormalization().apply(L.add().apply([e, m]) as ST) as ST;
  const out = L.dense({ units: 10 }).apply(L.globalAveragePooling1d().apply(n2) as ST) as ST;
  const model = tf.model({ inputs: x, outputs: out });
  randomizeWeights(model, 1, 0.3);
  return model;
}

/** Odd shapes: 5 positions, 13-wide signals, no bias, two position layers, 3 outputs. */
function oddSeq(): tf.LayersModel {
  const x = tf.input({ shape: [5, 7] });
  const h = L.dense({ units: 13, activation: 'tanh', useBias: false }).apply(x) as ST;
  const g = L.dense({ units: 6 }).apply(h) as ST;
  const model = tf.model({
    inputs: x,
    outputs: L.dense({ units: 3 }).apply(L.flatten().apply(g) as ST) as ST,
  });
  randomizeWeights(model, 2, 0.5);
  return model;
}

/** Positions over two axes (3 × 2 = 6), one output (V = 1: the kernel's row padding). */
function gridSeq(): tf.LayersModel {
  const x = tf.input({ shape: [3, 2, 4] });
  const h = L.dense({ units: 9, activation: 'relu' }).apply(x) as ST;
  const model = tf.model({
    inputs: x,
    outputs: L.dense({ units: 1 }).apply(L.flatten().apply(h) as ST) as ST,
  });
  randomizeWeights(model, 3, 0.5);
  return model;
}

const models: Array<[string, () => tf.LayersModel, number[]]> = [
  ['LayerNorm block (ln-seq)', lnSeq, [64]],
  ['5 positions, no bias, V = 3', oddSeq, [5, 7]],
  ['3 × 2 positions, V = 1', gridSeq, [3, 2, 4]],
];

/** The kernel with positions terms on every dense layer over positions, and with explicit rows. */
async function both(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor | null,
  options: NtkOptions,
  call: NtkCallOptions = {},
) {
  structuredTestHooks.positionTerms = 'always';
  const positions = await empiricalNtkFn(model, { progress: false, ...options })(x, y ?? undefined, call);
  structuredTestHooks.positionTerms = 'never';
  const explicit = await empiricalNtkFn(model, { progress: false, ...options })(x, y ?? undefined, call);
  structuredTestHooks.positionTerms = 'cost';
  expect(positions.rules!.some((r) => r.rule === 'dense-position-pairs')).toBe(true);
  expect(explicit.rules!.some((r) => r.rule === 'dense-position-pairs')).toBe(false);
  return { positions, explicit };
}

describe('which dense layers get the positions term', () => {
  it('ln-seq: the 32 → 64 and 64 → 32 layers, not the 8 → 32 embedding (its 288 parameters are cheaper explicit)', async () => {
    const model = lnSeq();
    const x = normalPoints(2, [64], 1);
    try {
      const k = await empiricalNtkFn(model, { progress: false })(x);
      expect(k.rules!.map((r) => r.rule)).toEqual([
        'dense-explicit',
        'layernorm',
        'dense-position-pairs',
        'dense-position-pairs',
        'layernorm',
        'dense-identity',
      ]);
      // Trace, diagonal and pairs outputs keep the explicit rows.
      for (const output of ['trace', 'diagonal'] as const) {
        const t = await empiricalNtkFn(model, { progress: false, output })(x);
        expect(t.rules!.some((r) => r.rule === 'dense-position-pairs')).toBe(false);
      }
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('per-layer kernels: full ones take it (each layer = its explicit kernel), trace ones keep the explicit rows', async () => {
    const model = lnSeq();
    const x = normalPoints(6, [64], 3);
    try {
      const trace = await perLayerNtk(model, x, { output: 'trace' });
      expect(trace.layers.some((l) => l.rule === 'dense-position-pairs')).toBe(false);
      const full = await perLayerNtk(model, x, { output: 'full' });
      expect(full.layers.filter((l) => l.rule === 'dense-position-pairs')).toHaveLength(2);
      structuredTestHooks.positionTerms = 'never';
      const explicit = await perLayerNtk(model, x, { output: 'full' });
      full.layers.forEach((l, k) => {
        expect(relMaxError(l.kernel, explicit.layers[k]!.kernel), l.name).toBeLessThanOrEqual(1e-6);
      });
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('not where T² exceeds the input width (32 positions of 16 features)', async () => {
    const x = tf.input({ shape: [32, 16] });
    const h = L.dense({ units: 16, activation: 'relu' }).apply(x) as ST;
    const model = tf.model({
      inputs: x,
      outputs: L.dense({ units: 4 }).apply(L.flatten().apply(h) as ST) as ST,
    });
    const p = normalPoints(2, [32, 16], 2);
    try {
      const k = await empiricalNtkFn(model, { progress: false })(p);
      expect(k.rules!.map((r) => r.rule)).toEqual(['dense-explicit', 'dense-identity']);
    } finally {
      model.dispose();
      p.dispose();
    }
  });
});

describe.each(models)('positions = explicit rows: %s', (_, make, shape) => {
  it('full and trace, x1 × x2 and symmetric, wasm and tfjs contractions, 1 and 2 threads (bitwise equal)', async () => {
    const model = make();
    const x = normalPoints(11, shape, 3);
    const y = normalPoints(6, shape, 4);
    try {
      for (const output of ['full', 'trace'] as const) {
        const tol = output === 'full' ? 1e-6 : 1e-5;
        for (const [other, blockSize] of [
          [y, 5],
          [null, 5],
          [null, 11],
        ] as const) {
          for (const contraction of ['wasm', 'tfjs'] as const) {
            const one = await both(model, x, other, { output, blockSize, contraction });
            expect(relMaxError(one.positions.data, one.explicit.data)).toBeLessThanOrEqual(tol);
            const two = await both(model, x, other, { output, blockSize, contraction, threads: 2 });
            expect(Buffer.compare(bytes(two.positions.data), bytes(one.positions.data))).toBe(0);
          }
        }
      }
    } finally {
      model.dispose();
      x.dispose();
      y.dispose();
    }
  });

  // float64: the explicit side contracts float32 per-example gradients (sums over positions rounded
  // to float32), the positions side never forms them: they agree to float32 rounding.
  it('float64 accumulation, diagonal and pairs outputs (≤ 1e-6)', async () => {
    const model = make();
    const x = normalPoints(5, shape, 5);
    try {
      const f64 = await both(model, x, null, { accumulation: 'float64' });
      expect(relMaxError(f64.positions.data, f64.explicit.data)).toBeLessThanOrEqual(1e-6);
      structuredTestHooks.positionTerms = 'always';
      for (const output of ['diagonal', 'pairs'] as const) {
        const pairs: Array<[number, number]> = [
          [0, 3],
          [4, 4],
          [2, 1],
        ];
        const call = output === 'pairs' ? { pairs } : {};
        const k = await both(model, x, null, { output }, call);
        expect(relMaxError(k.positions.data, k.explicit.data)).toBeLessThanOrEqual(1e-6);
      }
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('= float64 finite differences (rel. max ≤ 1e-5), float32 and float64 accumulation', async () => {
    const model = make();
    const x = normalPoints(3, shape, 6);
    try {
      const reference = finiteDifferenceNtk(model, x).data;
      structuredTestHooks.positionTerms = 'always';
      for (const accumulation of ['float32', 'float64'] as const) {
        const k = await empiricalNtkFn(model, { progress: false, accumulation })(x);
        expect(k.rules!.some((r) => r.rule === 'dense-position-pairs')).toBe(true);
        expect(relMaxError(k.data, reference)).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('factor blocks computed by a worker (the model rebuilt there) = the main thread, bitwise', async () => {
    const model = make();
    const x = normalPoints(12, shape, 9);
    try {
      structuredTestHooks.positionTerms = 'always';
      const single = await empiricalNtkFn(model, { progress: false, blockSize: 3 })(x);
      testHooks.mainThreadFactors = false;
      const workers = await empiricalNtkFn(model, { progress: false, blockSize: 3, threads: 2 })(x);
      expect(workers.workerFactorBlocks).toBe(4);
      expect(workers.rules!.some((r) => r.rule === 'dense-position-pairs')).toBe(true);
      expect(Buffer.compare(bytes(workers.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('symmetry: K = Kᵀ bit for bit, and streamed rows = the whole kernel', () => {
  // K_ij(x, x′) and K_ji(x′, x) are summed in different orders: a point's own V × V block is
  // mirrored, blocks below the diagonal are transposes of blocks above it.
  it('ln-seq, float32 and float64, 1 and 2 threads', async () => {
    const model = lnSeq();
    const x = normalPoints(23, [64], 1);
    try {
      await expectSymmetricAndStreamed(model, x, 'dense-position-pairs', 7);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});
