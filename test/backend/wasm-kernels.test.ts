import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { installWasmKernelFixes } from '../../src/backend/index.js';
import { WASM_FIXED_KERNELS } from '../../src/backend/wasm-kernels.js';
import { maxRelError, testValues } from '../model/reference.js';

beforeAll(() => {
  installWasmKernelFixes();
});

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** C = op(A) op(B) in float64, A [r, c] row-major. */
function matmul64(
  a: Float32Array,
  ar: number,
  ac: number,
  ta: boolean,
  b: Float32Array,
  br: number,
  bc: number,
  tb: boolean,
) {
  const m = ta ? ac : ar;
  const k = ta ? ar : ac;
  const n = tb ? br : bc;
  const A = (i: number, t: number) => (ta ? a[t * ac + i]! : a[i * ac + t]!);
  const B = (t: number, j: number) => (tb ? b[j * bc + t]! : b[t * bc + j]!);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += A(i, t) * B(t, j);
      out[i * n + j] = s;
    }
  return out;
}

describe('wasm kernel fixes', () => {
  it('runs on the wasm backend with the fixes installed', () => {
    expect(tf.getBackend()).toBe('wasm');
    // Each repaired kernel carries the fix's mark (stock transposed matmuls are correct, only slow,
    // so the numbers below alone would not show that the wrapper is in place).
    const marked = (name: string) =>
      Boolean(
        (tf.getKernel(name, 'wasm')?.kernelFunc as unknown as Record<symbol, boolean> | undefined)?.[
          Symbol.for('entk.wasmKernelFix')
        ],
      );
    for (const name of WASM_FIXED_KERNELS) {
      expect(marked(name), name).toBe(true);
    }
  });

  it('Identity and same-dtype Cast share the data (no copy), stay valid after the source is disposed; other casts convert', () => {
    const before = tf.memory().numTensors;
    const buffers = () => tf.engine().backend.numDataIds();
    const held = buffers();
    const x = tf.tensor([1.5, -2, 3e-8, 4], [2, 2]);
    const y = tf.clone(x);
    const z = tf.cast(x, 'float32');
    expect(buffers() - held).toBe(1); // one buffer for all three tensors
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1.5, -2, Math.fround(3e-8), 4]);
    expect(Array.from(z.dataSync())).toEqual([1.5, -2, Math.fround(3e-8), 4]);
    y.dispose();
    expect(Array.from(z.dataSync())).toEqual([1.5, -2, Math.fround(3e-8), 4]);
    const i = tf.cast(z, 'int32');
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([1, -2, 0, 4]);
    const ints = tf.tensor([3, 7], [2], 'int32');
    const f = tf.cast(ints, 'float32');
    expect(f.dtype).toBe('float32');
    expect(Array.from(f.dataSync())).toEqual([3, 7]);
    tf.dispose([z, i, ints, f]);
    expect(tf.memory().numTensors).toBe(before);
    expect(buffers()).toBe(held);
  });

  it('computes transposed matmuls (all four flag combinations, plain and fused) like float64 (rel. err <= 1e-5)', () => {
    const a = testValues(7 * 5, 1);
    const b = testValues(5 * 6, 2);
    const bias = testValues(6, 3);
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const [ar, ac] = ta ? [5, 7] : [7, 5];
      const [br, bc] = tb ? [6, 5] : [5, 6];
      // lay the operands out so that op(A) is the same 7×5 matrix and op(B) the same 5×6 one
      const A = ta ? transpose(a, 7, 5) : a;
      const B = tb ? transpose(b, 5, 6) : b;
      const expected = matmul64(A, ar, ac, ta, B, br, bc, tb);
      const got = tf.tidy(() =>
        tf.matMul(tf.tensor2d(A, [ar, ac]), tf.tensor2d(B, [br, bc]), ta, tb).dataSync(),
      );
      expect(maxRelError(got, expected)).toBeLessThan(1e-5);
      const fused = tf.tidy(() =>
        tf.fused
          .matMul({
            a: tf.tensor2d(A, [ar, ac]),
            b: tf.tensor2d(B, [br, bc]),
            transposeA: ta,
            transposeB: tb,
            bias: tf.tensor1d(bias),
            activation: 'relu',
          })
          .dataSync(),
      );
      const expectedFused = expected.map((v, i) => Math.max(0, v + bias[i % 6]!));
      expect(maxRelError(fused, expectedFused)).toBeLessThan(1e-5);
    }
  });

  it('computes the Conv2D kernel gradient like float64 (same/valid padding, strides 1 and 2; rel. err <= 1e-5)', () => {
    const [n, h, w, ci, co, k] = [2, 6, 5, 3, 4, 3];
    const xv = testValues(n * h * w * ci, 4);
    const wv = testValues(k * k * ci * co, 5);
    for (const stride of [1, 2]) {
      for (const pad of ['same', 'valid'] as const) {
        const oh = pad === 'same' ? Math.ceil(h / stride) : Math.ceil((h - k + 1) / stride);
        const ow = pad === 'same' ? Math.ceil(w / stride) : Math.ceil((w - k + 1) / stride);
        const padTop = pad === 'same' ? Math.floor(Math.max((oh - 1) * stride + k - h, 0) / 2) : 0;
        const padLeft = pad === 'same' ? Math.floor(Math.max((ow - 1) * stride + k - w, 0) / 2) : 0;
        const cv = testValues(n * oh * ow * co, 6);
        const got = tf.tidy(() => {
          const x = tf.tensor4d(xv, [n, h, w, ci]);
          const c = tf.tensor4d(cv, [n, oh, ow, co]);
          const g = tf.grad((filter: tf.Tensor) =>
            tf.sum(tf.mul(tf.conv2d(x, filter as tf.Tensor4D, stride, pad), c)),
          );
          return g(tf.tensor4d(wv, [k, k, ci, co])).dataSync();
        });
        const expected = new Float64Array(k * k * ci * co);
        for (let b = 0; b < n; b++)
          for (let y = 0; y < oh; y++)
            for (let z = 0; z < ow; z++)
              for (let p = 0; p < k; p++)
                for (let q = 0; q < k; q++) {
                  const iy = y * stride + p - padTop;
                  const iz = z * stride + q - padLeft;
                  if (iy < 0 || iy >= h || iz < 0 || iz >= w) continue;
                  for (let i = 0; i < ci; i++)
                    for (let o = 0; o < co; o++)
                      expected[((p * k + q) * ci + i) * co + o]! +=
                        xv[((b * h + iy) * w + iz) * ci + i]! * cv[((b * oh + y) * ow + z) * co + o]!;
                }
        expect(maxRelError(got, expected)).toBeLessThan(1e-5);
      }
    }
  });
});

describe("'same' padding that TensorFlow's rule makes negative (stride > kernel) on wasm", () => {
  it.each([
    [
      'Conv2D',
      () => tf.layers.conv2d({ filters: 3, kernelSize: 2, strides: 3, padding: 'same', activation: 'tanh' }),
    ],
    [
      'DepthwiseConv2D',
      () => tf.layers.depthwiseConv2d({ kernelSize: 2, strides: 3, padding: 'same', depthMultiplier: 2 }),
    ],
    [
      'SeparableConv2D',
      () => tf.layers.separableConv2d({ filters: 3, kernelSize: 2, strides: 3, padding: 'same' }),
    ],
  ])(
    '%s on a 6×6 input, kernel 2, stride 3: predict = cpu (≤ 1e-5), both eNTK paths = float64 finite differences (≤ 1e-5), one training step = cpu (≤ 1e-5)',
    async (_, layer) => {
      const { empiricalNtkFn, finiteDifferenceNtk } = await import('../../src/kernel/index.js');
      const { Rng } = await import('../../src/util/rng.js');
      const { relMaxError } = await import('../kernel/helpers.js');
      const build = () => {
        const input = tf.input({ shape: [6, 6, 2] });
        const h = layer().apply(input) as tf.SymbolicTensor;
        const out = tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(h)) as tf.SymbolicTensor;
        const model = tf.model({ inputs: input, outputs: out });
        const rng = new Rng(61);
        for (const w of model.weights) {
          const t = tf.tensor(
            rng.normalArray(w.shape.reduce((a, b) => a! * b!, 1)!, 0.5),
            w.shape as number[],
          );
          w.write(t);
          t.dispose();
        }
        return model;
      };
      const model = build();
      const x = tf.tensor(new Rng(62).normalArray(3 * 72), [3, 6, 6, 2]);
      try {
        const yWasm = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
        await tf.setBackend('cpu');
        const yCpu = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
        await tf.setBackend('wasm');
        expect(relMaxError(yWasm, yCpu), 'predict').toBeLessThanOrEqual(1e-5);
        const reference = finiteDifferenceNtk(model, x).data;
        for (const implementation of ['structured', 'jacobian'] as const) {
          const k = await empiricalNtkFn(model, { progress: false, implementation })(x);
          expect(relMaxError(k.data, reference), implementation).toBeLessThanOrEqual(1e-5);
        }
        // One SGD step of mean squared error, on wasm and on cpu from the same weights.
        const step = async (backend: string): Promise<Float32Array[]> => {
          await tf.setBackend(backend);
          const m = build();
          const xs = tf.tensor(new Rng(62).normalArray(3 * 72), [3, 6, 6, 2]);
          const ys = tf.ones([3, 2]);
          const optimizer = tf.train.sgd(0.1);
          m.compile({ optimizer, loss: 'meanSquaredError' });
          await m.fit(xs, ys, { epochs: 1, batchSize: 3, verbose: 0, shuffle: false });
          const weights = m.weights.map((w) => Float32Array.from(w.read().dataSync()));
          for (const t of [xs, ys]) t.dispose();
          optimizer.dispose();
          m.dispose();
          await tf.setBackend('wasm');
          return weights;
        };
        const [onWasm, onCpu] = [await step('wasm'), await step('cpu')];
        onCpu.forEach((w, i) => {
          expect(relMaxError(onWasm[i]!, w), `weight ${i} after one step`).toBeLessThanOrEqual(1e-5);
        });
      } finally {
        model.dispose();
        x.dispose();
      }
    },
  );
});

function transpose(a: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j]!;
  return out;
}

describe('MaxPool gradient on wasm (first maximum of each window, as the cpu backend and TensorFlow)', () => {
  /**
   * dx of max pooling in float64 plain loops: each window's dy to its first maximum (row-major, `>`),
   * and how many windows have no maximum (all NaN or −∞: they route nothing).
   */
  function maxPoolGrad64(
    x: Float32Array,
    dy: Float32Array,
    [n, h, w, c]: number[],
    f: number,
    s: number,
    pad: 'valid' | 'same',
  ): { dx: Float64Array; unrouted: number } {
    const oh = pad === 'same' ? Math.ceil(h / s) : Math.floor((h - f) / s) + 1;
    const ow = pad === 'same' ? Math.ceil(w / s) : Math.floor((w - f) / s) + 1;
    const top = pad === 'same' ? Math.floor(Math.max((oh - 1) * s + f - h, 0) / 2) : 0;
    const left = pad === 'same' ? Math.floor(Math.max((ow - 1) * s + f - w, 0) / 2) : 0;
    const dx = new Float64Array(x.length);
    let unrouted = 0;
    for (let b = 0; b < n; b++)
      for (let y = 0; y < oh; y++)
        for (let z = 0; z < ow; z++)
          for (let d = 0; d < c; d++) {
            let [best, at] = [Number.NEGATIVE_INFINITY, -1];
            for (let p = 0; p < f; p++)
              for (let q = 0; q < f; q++) {
                const [r, col] = [y * s + p - top, z * s + q - left];
                if (r < 0 || r >= h || col < 0 || col >= w) continue;
                const k = ((b * h + r) * w + col) * c + d;
                if (x[k]! > best) [best, at] = [x[k]!, k];
              }
            if (at >= 0) dx[at]! += dy[((b * oh + y) * ow + z) * c + d]!;
            else unrouted++;
          }
    return { dx, unrouted };
  }

  /**
   * Ten batch entries from three points with many ties and zero windows (values in {−1, −½, 0, ½, 1}),
   * repeated (consecutive equal entries), with copies that differ from their predecessor
   * only in the sign of zeros, in a new maximum in the last window, or by NaN and −∞ windows (the
   * first f rows NaN but for one 0.25: windows with no maximum, which route nothing).
   */
  function batch(h: number, w: number, c: number, f: number): Float32Array {
    const size = h * w * c;
    const base = testValues(3 * size, 11).map((v) => Math.round(2 * v) / 2);
    const entries: Float32Array[] = [];
    for (const p of [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]) entries.push(base.slice(p * size, (p + 1) * size));
    entries[1] = entries[1]!.map((v) => (v === 0 ? -0 : v));
    entries[5]![size - 1] = 5;
    entries[8]!.fill(0, 0, f * w * c);
    entries[8]![0] = Number.NaN;
    entries[9]!.fill(Number.NaN, 0, f * w * c);
    entries[9]!.fill(Number.NEGATIVE_INFINITY, size - f * w * c);
    entries[9]![1] = 0.25;
    const out = new Float32Array(10 * size);
    for (const [k, e] of entries.entries()) out.set(e, k * size);
    return out;
  }

  it.each([
    { h: 6, w: 6, c: 3, f: 2, s: 2, pad: 'valid' as const, path: 'windows tiling the input' },
    {
      h: 7,
      w: 5,
      c: 3,
      f: 2,
      s: 2,
      pad: 'valid' as const,
      path: 'windows tiling all but a border, odd slab',
    },
    {
      h: 9,
      w: 9,
      c: 3,
      f: 3,
      s: 3,
      pad: 'valid' as const,
      path: '3×3 windows tiling the input (argmax and scatter), odd slab',
    },
    { h: 8, w: 8, c: 2, f: 2, s: 3, pad: 'valid' as const, path: 'windows with gaps (stride > size)' },
    { h: 7, w: 7, c: 3, f: 2, s: 2, pad: 'same' as const, path: 'clipped windows: argmax and scatter' },
    { h: 7, w: 6, c: 2, f: 3, s: 2, pad: 'valid' as const, path: 'overlapping windows: argmax and scatter' },
  ])('$path ($h×$w×$c, $f×$f stride $s $pad): exactly the float64 reference', ({ h, w, c, f, s, pad }) => {
    const shape = [10, h, w, c];
    const xv = batch(h, w, c, f);
    const oh = pad === 'same' ? Math.ceil(h / s) : Math.floor((h - f) / s) + 1;
    const ow = pad === 'same' ? Math.ceil(w / s) : Math.floor((w - f) / s) + 1;
    const dyv = testValues(10 * oh * ow * c, 12);
    const got = tf.tidy(() => {
      const g = tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, f, s, pad));
      return g(tf.tensor4d(xv, shape as [number, number, number, number]), tf.tensor4d(dyv, [10, oh, ow, c]));
    });
    const { dx: expected, unrouted } = maxPoolGrad64(xv, dyv, shape, f, s, pad);
    expect(Array.from(got.dataSync())).toEqual(Array.from(Float32Array.from(expected)));
    got.dispose();
    // The data has windows with no maximum (they route nothing).
    expect(unrouted).toBeGreaterThan(0);
  });
});
