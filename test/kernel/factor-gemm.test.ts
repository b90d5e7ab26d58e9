/**
 * The factor passes' threaded WebAssembly GEMM (src/kernel/factor-gemm.ts).
 *
 * 1. gemmABt against float64 plain loops: both B layouts, dense and masked (row groups sharing a
 *    zero pattern, as the V replicated rows of a point behind a ReLU), every kind of padding (rows
 *    not a multiple of 4, columns of 8, inner sizes of 4). Tolerance 1e-5 · max|C| (float32 sums of
 *    ≤ 300 O(1) products round at ~1e-7 relative). The in-memory `view` result equals the copy.
 * 2. Through empiricalNtkFn with the GEMM forced on every backward dense product: the kernel agrees
 *    with the tfjs path (1e-5) and with float64 finite differences (1e-5), and no tensor leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  gemmABt,
  setFactorGemmMinWork,
  setFactorGemmThreads,
  useFactorGemm,
} from '../../src/kernel/factor-gemm.js';
import { empiricalNtkFn, finiteDifferenceNtk, terminateNtkWorkers } from '../../src/kernel/index.js';
import { Rng } from '../../src/util/rng.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const TOL = 1e-5;

afterAll(async () => {
  setFactorGemmMinWork(2 ** 28);
  await terminateNtkWorkers();
});

/** C = A Bᵀ in float64 (B as [cols, k] rows). */
function reference(a: Float32Array, rows: number, b: Float32Array, cols: number, k: number): Float64Array {
  const c = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[j * k + p]!;
      c[i * cols + j] = s;
    }
  }
  return c;
}

describe('gemmABt against float64 loops', () => {
  it.each([
    // rows, k, cols, group, zero fraction per group
    [1, 1, 1, 1, 0],
    [7, 5, 9, 1, 0],
    [40, 64, 33, 1, 0],
    [30, 37, 19, 10, 0.6],
    [53, 300, 41, 10, 0.5],
    [24, 128, 16, 3, 0.7],
    [17, 12, 8, 5, 1],
  ])('rows %i, k %i, cols %i, group %i (zeros %f)', (rows, k, cols, group, zeros) => {
    const rng = new Rng(rows * 1000 + k);
    const a = Float32Array.from(rng.normalArray(rows * k));
    // One zero pattern per group of rows (inactive units).
    for (let g = 0; g * group < rows; g++) {
      for (let p = 0; p < k; p++) {
        if (rng.uniform() < zeros)
          for (let r = g * group; r < Math.min(rows, (g + 1) * group); r++) a[r * k + p] = 0;
      }
    }
    const b = Float32Array.from(rng.normalArray(cols * k));
    const bt = new Float32Array(k * cols);
    for (let j = 0; j < cols; j++) for (let p = 0; p < k; p++) bt[p * cols + j] = b[j * k + p]!;
    const ref = reference(a, rows, b, cols, k);
    for (const [layout, bb] of [
      ['rows', b],
      ['columns', bt],
    ] as const) {
      const c = gemmABt(a, rows, bb, cols, k, layout, group);
      expect(c.length).toBe(rows * cols);
      if (zeros === 1) expect(Array.from(c).every((x) => x === 0)).toBe(true);
      else expect(relMaxError(c, ref), layout).toBeLessThan(TOL);
      // `view`: the same values, compacted in place in the GEMM's memory.
      const v = gemmABt(a, rows, bb, cols, k, layout, group, undefined, true);
      expect(v.length).toBe(rows * cols);
      expect(Array.from(v)).toEqual(Array.from(c));
    }
  });

  it('reuses the packed B of the previous call with the same key (without reading B), repacks otherwise', () => {
    const rng = new Rng(5);
    const [rows, k, cols] = [9, 20, 13];
    const a = Float32Array.from(rng.normalArray(rows * k));
    const b1 = Float32Array.from(rng.normalArray(cols * k));
    const b2 = Float32Array.from(rng.normalArray(cols * k));
    const [key1, key2] = [{}, {}];
    const ref1 = reference(a, rows, b1, cols, k);
    const ref2 = reference(a, rows, b2, cols, k);
    let reads = 0;
    const read = (b: Float32Array) => () => {
      reads++;
      return b;
    };
    expect(relMaxError(gemmABt(a, rows, read(b1), cols, k, 'rows', 1, key1), ref1)).toBeLessThan(TOL);
    expect(reads).toBe(1);
    // same key: the packed b1 is reused, b2 is not read
    expect(relMaxError(gemmABt(a, rows, read(b2), cols, k, 'rows', 1, key1), ref1)).toBeLessThan(TOL);
    expect(reads).toBe(1);
    expect(relMaxError(gemmABt(a, rows, read(b2), cols, k, 'rows', 1, key2), ref2)).toBeLessThan(TOL);
    // a call without a key overwrites the packed B: key2 must repack
    gemmABt(a, rows, b1, cols, k, 'rows');
    expect(relMaxError(gemmABt(a, rows, read(b2), cols, k, 'rows', 1, key2), ref2)).toBeLessThan(TOL);
    expect(reads).toBe(3);
  });

  it('gives bitwise the same product on 1, 2 and 3 threads (row shares only)', () => {
    const rng = new Rng(9);
    const [rows, k, cols] = [70, 96, 40];
    const a = Float32Array.from(rng.normalArray(rows * k));
    for (let e = 0; e < a.length; e += 3) a[e] = 0;
    const b = Float32Array.from(rng.normalArray(cols * k));
    const results = [1, 2, 3].flatMap((threads) => {
      setFactorGemmThreads(threads);
      return [gemmABt(a, rows, b, cols, k, 'rows'), gemmABt(a, rows, b, cols, k, 'rows', 10)];
    });
    setFactorGemmThreads(4);
    expect(relMaxError(results[0]!, reference(a, rows, b, cols, k))).toBeLessThan(TOL);
    for (const r of results.slice(1)) expect(Array.from(r)).toEqual(Array.from(results[0]!));
  });

  it('uses the GEMM only from the size threshold on', () => {
    const previous = setFactorGemmMinWork(1000);
    try {
      expect(useFactorGemm(10, 10, 9)).toBe(false);
      expect(useFactorGemm(10, 10, 10)).toBe(true);
    } finally {
      setFactorGemmMinWork(previous);
    }
  });
});

describe('through empiricalNtkFn', () => {
  /** A ReLU MLP whose backward dense products (rows·k·cols ≥ 0) all take the GEMM when forced. */
  function reluMlp(): tf.LayersModel {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 20, activation: 'relu' }),
        tf.layers.dense({ units: 18, activation: 'relu' }),
        tf.layers.dense({ units: 12, activation: 'relu' }),
        tf.layers.dense({ units: 4 }),
      ],
    });
    randomizeWeights(model, 11);
    return model;
  }

  it('the forced GEMM agrees with the tfjs path and float64 finite differences; no tensor leaks', async () => {
    const model = reluMlp();
    const x1 = normalPoints(7, [6], 3);
    const x2 = normalPoints(5, [6], 4);
    const previous = setFactorGemmMinWork(Number.POSITIVE_INFINITY);
    const run = () => empiricalNtkFn(model, { progress: false, blockSize: 3 });
    let tfSym: Awaited<ReturnType<ReturnType<typeof run>>>;
    let tfRect: typeof tfSym;
    let sym: typeof tfSym;
    let rect: typeof tfSym;
    try {
      tfSym = await run()(x1);
      tfRect = await run()(x1, x2);
      setFactorGemmMinWork(0);
      // without the threaded GEMM (no SharedArrayBuffer / SIMD) this would compare tfjs with tfjs
      expect(useFactorGemm(1, 1, 1)).toBe(true);
      const before = tf.memory().numTensors;
      sym = await run()(x1);
      rect = await run()(x1, x2);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      setFactorGemmMinWork(previous);
    }
    expect(relMaxError(sym.data, tfSym.data)).toBeLessThan(TOL);
    expect(relMaxError(rect.data, tfRect.data)).toBeLessThan(TOL);
    expect(relMaxError(sym.data, finiteDifferenceNtk(model, x1).data)).toBeLessThan(TOL);
    expect(relMaxError(rect.data, finiteDifferenceNtk(model, x1, x2).data)).toBeLessThan(TOL);
    tf.dispose([x1, x2]);
    model.dispose();
  });
});
