/**
 * Every eNTK implementation against every other and against the float64 finite-difference
 * reference, on tiny networks of every supported layer type.
 *
 * Tolerance rule (all comparisons here): relative max error
 *     max_ij |K_ij − Kref_ij| / max_ij |Kref_ij|  ≤  1e-5
 * for float32 results against the float64 reference (central differences, h = 1e-5: truncation
 * O(h²) ≈ 1e-10, round-off ≈ 1e-11, both far below the float32 rounding of the kernel, ~1e-7).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  empiricalNtkFn,
  finiteDifferenceNtk,
  type NtkImplementation,
  type NtkResult,
} from '../../src/kernel/index.js';
import { erf64 } from '../../src/kernel/reference.js';
import { relMaxError, tinyNets } from './helpers.js';

const TOL = 1e-5;
const nets = tinyNets();

let tensorsBefore = 0;
beforeEach(() => {
  tensorsBefore = tf.memory().numTensors;
});
afterEach(() => {
  // No kernel computation may leave tensors behind.
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

describe('float64 reference', () => {
  it('erf64 matches known values to 1e-15', () => {
    // erf(0.5), erf(1), erf(2), erf(3.5) from tables (Abramowitz & Stegun / high-precision).
    expect(Math.abs(erf64(0.5) - 0.5204998778130465)).toBeLessThan(1e-15);
    expect(Math.abs(erf64(1) - 0.8427007929497149)).toBeLessThan(1e-15);
    expect(Math.abs(erf64(-2) + 0.9953222650189527)).toBeLessThan(1e-15);
    expect(Math.abs(erf64(3.5) - 0.9999992569016276)).toBeLessThan(1e-15);
  });

  it('the reference forward pass reproduces the model (finite differences of a linear layer are exact)', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    const x = tf.tensor2d([
      [1, 2, 3],
      [-1, 0.5, 2],
    ]);
    const k = finiteDifferenceNtk(model, x);
    // Linear model: K(x, x') = (xᵀx' + 1) I.
    const expected = [15, 0, 7, 0, 0, 15, 0, 7, 7, 0, 6.25, 0, 0, 7, 0, 6.25];
    expect(relMaxError(k.data, expected)).toBeLessThan(1e-9);
    tf.dispose([x]);
    model.dispose();
  });
});

describe.each(nets)('$name', (net) => {
  const implementations: NtkImplementation[] = ['structured', 'jacobian', 'auto'];
  const refSym = finiteDifferenceNtk(net.model, net.x1);
  const refRect = finiteDifferenceNtk(net.model, net.x1, net.x2);

  it('is fully supported by the structured path', () => {
    const fn = empiricalNtkFn(net.model);
    expect(fn.plan.unsupportedLayers).toEqual([]);
    expect(fn.plan.implementation).toBe('structured');
  });

  it.each(implementations)('%s agrees with finite differences (symmetric and rectangular)', async (impl) => {
    const fn = empiricalNtkFn(net.model, { implementation: impl, progress: false });
    const sym = await fn(net.x1);
    const rect = await fn(net.x1, net.x2);
    expect(sym.shape).toEqual(refSym.shape);
    expect(rect.shape).toEqual(refRect.shape);
    expect(relMaxError(sym.data, refSym.data)).toBeLessThanOrEqual(TOL);
    expect(relMaxError(rect.data, refRect.data)).toBeLessThanOrEqual(TOL);
    expect(sym.data).toBeInstanceOf(Float32Array);
  });

  it.each(['wasm', 'tfjs'] as const)(
    "structured with the '%s' contraction agrees with finite differences (full and trace)",
    async (contraction) => {
      const full = await empiricalNtkFn(net.model, { contraction, progress: false })(net.x1, net.x2);
      const trace = await empiricalNtkFn(net.model, { contraction, output: 'trace', progress: false })(
        net.x1,
        net.x2,
      );
      expect(full.contraction).toBe(contraction);
      expect(relMaxError(full.data, refRect.data)).toBeLessThanOrEqual(TOL);
      // tr K(x_n, x'_m) / V from the finite-difference blocks.
      const [rows, cols] = refRect.shape as [number, number];
      const V = rows / net.x1.shape[0]!;
      const c = cols / V;
      const traceRef = Array.from({ length: (rows / V) * c }, (_, e) => {
        const [n, m] = [Math.floor(e / c), e % c];
        let s = 0;
        for (let i = 0; i < V; i++) s += refRect.data[(n * V + i) * cols + m * V + i]!;
        return s / V;
      });
      expect(relMaxError(trace.data, traceRef)).toBeLessThanOrEqual(TOL);
    },
  );

  it.each(['structured', 'jacobian'] as const)(
    '%s with float64 accumulation agrees with finite differences',
    async (impl) => {
      const fn = empiricalNtkFn(net.model, {
        implementation: impl,
        accumulation: 'float64',
        progress: false,
      });
      const rect = await fn(net.x1, net.x2);
      expect(rect.data).toBeInstanceOf(Float64Array);
      expect(relMaxError(rect.data, refRect.data)).toBeLessThanOrEqual(TOL);
    },
  );

  it('structured and jacobian agree with each other', async () => {
    const results: NtkResult[] = [];
    for (const impl of ['structured', 'jacobian'] as const) {
      results.push(
        await empiricalNtkFn(net.model, { implementation: impl, progress: false })(net.x2, net.x1),
      );
    }
    expect(relMaxError(results[0]!.data, results[1]!.data)).toBeLessThanOrEqual(TOL);
  });
});

describe('a single output (V = 1: a regression head)', () => {
  it('structured = Jacobian path = float64 finite differences (rel. max ≤ 1e-5), full and trace', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 6, activation: 'tanh' }),
        tf.layers.dense({ units: 5, activation: 'relu' }),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 3);
    try {
      const reference = finiteDifferenceNtk(model, x).data;
      for (const implementation of ['structured', 'jacobian'] as const) {
        const k = await empiricalNtkFn(model, { progress: false, implementation })(x);
        expect(k.data.length).toBe(25);
        expect(relMaxError(k.data, reference)).toBeLessThanOrEqual(1e-5);
        const trace = await empiricalNtkFn(model, { progress: false, implementation, output: 'trace' })(x);
        expect(relMaxError(trace.data, reference)).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('the float64 reference refuses what it would read wrongly', () => {
  it.each([
    [
      'a global pooling',
      () => tf.layers.globalMaxPooling2d({ inputShape: [3, 4, 4], dataFormat: 'channelsFirst', name: 'cf' }),
      /cf \(GlobalMaxPooling2D\) with dataFormat 'channelsFirst'/,
    ],
    [
      'a Flatten (it flattens a transposed layout)',
      () => tf.layers.flatten({ inputShape: [3, 4, 4], dataFormat: 'channelsFirst', name: 'cf' }),
      /cf \(Flatten\) with dataFormat 'channelsFirst'/,
    ],
  ] as const)(
    "%s with dataFormat 'channelsFirst' is an UnsupportedError naming the layer",
    (_, layer, message) => {
      const model = tf.sequential({ layers: [layer(), tf.layers.dense({ units: 2 })] });
      const x = tf.ones([1, 3, 4, 4]);
      try {
        expect(() => finiteDifferenceNtk(model, x)).toThrow(message);
      } finally {
        model.dispose();
        x.dispose();
      }
    },
  );
});
