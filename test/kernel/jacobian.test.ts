/**
 * The Jacobian path's accuracy in float32: J is cut into chunks of 2048 parameter columns whose
 * float32 products are summed in float64 (src/kernel/chunked.ts), so its error does not grow with
 * the parameter count P. References: the float64 plain-JS contraction of the same J, finite
 * differences (small nets) and the structured path in float64 (large nets, where a float64
 * Jacobian contraction would take minutes). Tolerances: relative max error (helpers.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { empiricalNtkFn, finiteDifferenceNtk, terminateNtkWorkers } from '../../src/kernel/index.js';
import { JACOBIAN_CHUNK, jacobianTerms } from '../../src/kernel/jacobian.js';
import { buildModel, resolveModelSpec } from '../../src/model/index.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});
afterAll(async () => {
  await terminateNtkWorkers();
});

const quiet = { progress: false } as const;

describe('Jacobian path: chunked float32 contraction with float64 chunk sums', () => {
  it('cuts P into chunks of at most JACOBIAN_CHUNK columns covering every parameter once', () => {
    for (const P of [1, JACOBIAN_CHUNK - 1, JACOBIAN_CHUNK, JACOBIAN_CHUNK + 1, 301_066]) {
      const terms = jacobianTerms(P);
      expect(terms.reduce((s, t) => s + t.width, 0)).toBe(P);
      expect(Math.max(...terms.map((t) => t.width))).toBeLessThanOrEqual(JACOBIAN_CHUNK);
      expect(terms.length).toBe(Math.ceil(P / JACOBIAN_CHUNK));
      expect(terms.every((t) => t.kind === 'gram' && t.layer === '*')).toBe(true);
    }
  });

  it('chunks crossing variable boundaries: = finite differences (1e-6) and = the float64 contraction (full 1e-6, trace 3e-6), x1 × x2 and symmetric, 1 and 2 threads', async () => {
    // 3,010 parameters: the first chunk ends inside the second layer's kernel
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [64], units: 40, activation: 'tanh' }),
        tf.layers.dense({ units: 10 }),
      ],
    });
    randomizeWeights(model, 3, 0.3);
    const x1 = normalPoints(5, [64], 4);
    const x2 = normalPoints(3, [64], 5);
    try {
      expect(model.countParams()).toBe(3010);
      const fd = finiteDifferenceNtk(model, x1, x2);
      for (const threads of [1, 2]) {
        const k32 = await empiricalNtkFn(model, { ...quiet, implementation: 'jacobian', threads })(x1, x2);
        expect(k32.contraction).toBe('wasm');
        // every chunk product counted: 50 × 30 entries · 3,010 parameters · 2 (at least: padding)
        expect(k32.flops).toBeGreaterThanOrEqual(2 * 50 * 30 * 3010);
        expect(relMaxError(k32.data, fd.data)).toBeLessThan(1e-6);
        const k64 = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          accumulation: 'float64',
        })(x1, x2);
        expect(relMaxError(k32.data, k64.data)).toBeLessThan(1e-6);
        const sym = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          threads,
          blockSize: 2,
        })(x1);
        const sym64 = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          accumulation: 'float64',
        })(x1);
        expect(relMaxError(sym.data, sym64.data)).toBeLessThan(1e-6);
        const tr = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          output: 'trace',
          threads,
        })(x1, x2);
        const tr64 = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          output: 'trace',
          accumulation: 'float64',
        })(x1, x2);
        // a trace entry sums V·2048 float32 products per chunk
        expect(relMaxError(tr.data, tr64.data)).toBeLessThan(3e-6);
        const tfjs = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'jacobian',
          contraction: 'tfjs',
        })(x1, x2);
        // tf.matMul (XNNPACK) sums a 2048-column chunk a little less accurately than entk's kernel
        expect(relMaxError(tfjs.data, k64.data)).toBeLessThan(3e-6);
      }
    } finally {
      tf.dispose([x1, x2]);
      model.dispose();
    }
  });

  // Nets too wide for finite differences: the float32 Jacobian against the structured path in float64.
  // One float32 sum over all P parameters erred by 3.2e-5 (301k) and 1.9e-4 (1.13M).
  const wide = [
    { name: 'mlp-ntk (301,066 parameters)', widths: [512, 512], seed: 1, n: 6, params: 301_066 },
    { name: 'a 1.13M-parameter MLP', widths: [1024, 1024], seed: 2, n: 3, params: 1_126_410 },
    // The bound: up to 10M parameters (measured: 1.7e-7 at 9.8M; ≈ 20 s, 1.7 GB RSS).
    { name: 'a 10.2M-parameter MLP', widths: [3150, 3150], seed: 3, n: 2, params: 10_161_910 },
  ];
  it.each(wide)(
    '$name: float32 Jacobian = structured float64 within 1e-5',
    async ({ widths, seed, n, params }) => {
      const spec = { ...resolveModelSpec('mlp-ntk'), widths } as ReturnType<typeof resolveModelSpec>;
      const model = buildModel(spec, { inputShape: [64], numClasses: 10, seed });
      const x = normalPoints(n, [64], seed + 6);
      try {
        expect(model.countParams()).toBe(params);
        const ref = await empiricalNtkFn(model, {
          ...quiet,
          implementation: 'structured',
          accumulation: 'float64',
        })(x);
        const jac = await empiricalNtkFn(model, { ...quiet, implementation: 'jacobian' })(x);
        expect(jac.accumulation).toBe('float32');
        expect(relMaxError(jac.data, ref.data)).toBeLessThan(1e-5);
      } finally {
        x.dispose();
        model.dispose();
      }
    },
  );
});
