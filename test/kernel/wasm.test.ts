/**
 * entk's WebAssembly SIMD contraction (src/kernel/wasm-gemm.ts, wasm-terms.ts).
 *
 * 1. Each kernel against a float64 plain-loop version of its formula (random sizes with every kind
 *    of padding / tail). Tolerance: |wasm − float64| ≤ 1e-5 · max|float64| (float32 sums of ≤ 300
 *    products of O(1) values round at ~1e-7 relative).
 * 2. The block computer against the float64 JS computer on synthetic terms of every kind (gated,
 *    masked with inactive units, identity, gram; full and trace; symmetric and rectangular blocks;
 *    V needing row padding). Same tolerance rule on the block.
 * 3. Through empiricalNtkFn: the 'wasm' contraction agrees with 'tfjs' and float64 (1e-6), is
 *    BITWISE independent of block size and thread count, and executes fewer operations than the
 *    plain layer-wise products on a ReLU network.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { analyzeModel } from '../../src/kernel/analyze.js';
import { empiricalNtkFn, terminateNtkWorkers } from '../../src/kernel/index.js';
import { planStructured } from '../../src/kernel/structured.js';
import {
  type BlockInput,
  type ContractionMode,
  JsBlockComputer,
  type TermMeta,
} from '../../src/kernel/terms.js';
import { type GemmExports, gemmModule, MASKED_FIELDS } from '../../src/kernel/wasm-gemm.js';
import { packingPoolBytes, packRows, WasmBlockComputer } from '../../src/kernel/wasm-terms.js';
import { buildModel } from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';
import { relaxedSimd, wasmApi } from '../../src/util/wasm-asm.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const TOL = 1e-5;

/**
 * The WebAssembly block computer against the float64 one (JsBlockComputer) on the blocks (r, c),
 * (c, r), (r, r), (c, c): data and transposes within TOL. Returns the WebAssembly computer's flops.
 */
function expectAsFloat64(
  terms: TermMeta[],
  V: number,
  mode: ContractionMode,
  r: BlockInput,
  c: BlockInput,
): number {
  const wasm = new WasmBlockComputer(terms, V, mode, 2 ** 26);
  const js = new JsBlockComputer(terms, V, mode);
  try {
    for (const [row, col] of [
      [r, c],
      [c, r],
      [r, r],
      [c, c],
    ] as const) {
      const w = wasm.compute(row, col, true);
      const want = js.compute(row, col, true);
      expect(relMaxError(w.data, want.data)).toBeLessThanOrEqual(TOL);
      expect(relMaxError(w.transposed!, want.transposed!)).toBeLessThanOrEqual(TOL);
      w.done();
    }
    return wasm.flops;
  } finally {
    wasm.release();
  }
}

afterAll(async () => {
  await terminateNtkWorkers();
});

/** A kernel instance over a fresh memory with a bump allocator (byte offsets). */
function kernels(bytes = 64 * 2 ** 20, fma = false) {
  const module = gemmModule(false, fma);
  if (!module || !wasmApi) throw new Error('WebAssembly SIMD missing: the wasm contraction cannot be tested');
  const memory = new wasmApi.Memory({ initial: Math.ceil(bytes / 65536) });
  const ex = new wasmApi.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  let top = 64;
  const alloc = (n: number) => {
    const at = top;
    top += Math.ceil((4 * n) / 64) * 64;
    return at;
  };
  const f32 = () => new Float32Array(memory.buffer);
  const i32 = () => new Int32Array(memory.buffer);
  const put = (data: Float32Array | Int32Array) => {
    const at = alloc(data.length);
    if (data instanceof Float32Array) f32().set(data, at / 4);
    else i32().set(data, at / 4);
    return at;
  };
  const read = (at: number, n: number) => f32().slice(at / 4, at / 4 + n);
  return { ex, alloc, put, read, f32 };
}

function randomMatrix(rng: Rng, rows: number, cols: number, zeroColumns = 0): Float32Array {
  const m = Float32Array.from(rng.normalArray(rows * cols));
  // Zero some whole columns (inactive units) when asked.
  for (let p = 0; p < cols; p++)
    if (rng.uniform() < zeroColumns) for (let r = 0; r < rows; r++) m[r * cols + p] = 0;
  return m;
}

/** Float64 S[i, j] = Σ_p A[i, p] B[j, p]. */
function product64(A: Float32Array, B: Float32Array, rows: number, cols: number, K: number): Float64Array {
  const S = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += A[i * K + p]! * B[j * K + p]!;
      S[i * cols + j] = s;
    }
  }
  return S;
}

// The fused multiply-add variants (f32x4.relaxed_madd) where this runtime has relaxed SIMD.
const FMA = relaxedSimd() ? [false, true] : [false];

/** Inputs of pooledPairs for one row point (random everywhere, padding columns included). */
function pooledInputs(rng: Rng, V: number, S: number, C: number, cPad: number) {
  return {
    Q: randomMatrix(rng, C * S * S, cPad), // [ch][s][s'][m]
    dr: randomMatrix(rng, V * C, S), // [i][ch][s]
    Dc: randomMatrix(rng, C * S * V, cPad), // [ch][s'][j][m]
  };
}

/**
 * Float64 K[i][m][j] = Σ_ch Σ_s' (Σ_s dr[i][ch][s] Q[ch][s][s'][m]) Dc[ch][s'][j][m] for m < c,
 * as [i][m][j] (V × c × V).
 */
function pooledPairs64(
  x: ReturnType<typeof pooledInputs>,
  V: number,
  S: number,
  C: number,
  c: number,
  cPad: number,
): Float64Array {
  const K = new Float64Array(V * c * V);
  for (let i = 0; i < V; i++) {
    for (let m = 0; m < c; m++) {
      for (let j = 0; j < V; j++) {
        let sum = 0;
        for (let ch = 0; ch < C; ch++) {
          for (let s2 = 0; s2 < S; s2++) {
            let t = 0;
            for (let s = 0; s < S; s++)
              t += x.dr[(i * C + ch) * S + s]! * x.Q[((ch * S + s) * S + s2) * cPad + m]!;
            sum += t * x.Dc[((ch * S + s2) * V + j) * cPad + m]!;
          }
        }
        K[(i * c + m) * V + j] = sum;
      }
    }
  }
  return K;
}

/**
 * Run pooledPairs on fresh memory: Q with a padded channel stride, out of V + 1 rows of ldo floats
 * (row V and the row tails must stay as `out0` left them). Returns the whole out buffer.
 */
function runPooledPairs(
  x: ReturnType<typeof pooledInputs>,
  V: number,
  S: number,
  C: number,
  c: number,
  m0: number,
  cPad: number,
  mode: number,
  out0: Float32Array,
  ldo: number,
): Float32Array {
  const k = kernels(4 * 2 ** 20);
  const qc = S * S * cPad + 8; // floats: a channel stride larger than the channel
  const Q = new Float32Array(C * qc);
  for (let ch = 0; ch < C; ch++) Q.set(x.Q.subarray(ch * S * S * cPad, (ch + 1) * S * S * cPad), ch * qc);
  // Dc in pooledPairs' layout: quad m ÷ 4 of column points contiguous, [ch][s'][j][m mod 4].
  const Dc = new Float32Array(C * S * V * cPad);
  for (let q = 0; q < C * S * V; q++) {
    for (let m = 0; m < cPad; m++) Dc[((m >> 2) * C * S * V + q) * 4 + (m & 3)] = x.Dc[q * cPad + m]!;
  }
  const out = k.put(out0);
  // The scratch (V·C·S·16 bytes) and 64 zero bytes right after it, which it must not overrun into.
  const scratch = k.alloc(4 * V * C * S + 16);
  k.ex.pooledPairs(k.put(Q), 4 * qc, k.put(x.dr), k.put(Dc), out, ldo, m0, c, cPad, C, S, V, mode, scratch);
  expect(k.read(scratch + 16 * V * C * S, 16).every((v) => v === 0)).toBe(true);
  return k.read(out, out0.length);
}

describe('kernels against float64 loops', () => {
  it.each(
    FMA.flatMap((fma) =>
      [
        [4, 8, 4, 0],
        [13, 21, 37, 1],
        [40, 17, 256, 2],
        [7, 9, 3, 3],
      ].map((c) => [...c, fma] as [number, number, number, number, boolean]),
    ),
  )('gemm %i × %i, K = %i, mode %i (fma %s)', (rows, cols, K, mode, fma) => {
    const rng = new Rng(rows * 31 + cols);
    const A = randomMatrix(rng, rows, K);
    const B = randomMatrix(rng, cols, K);
    const group = 3;
    const rowsPad = Math.ceil(rows / 4) * 4;
    const colsPad = Math.ceil(cols / 8) * 8;
    const G = randomMatrix(rng, Math.ceil(rowsPad / group), colsPad);
    const C0 = randomMatrix(rng, rowsPad, colsPad);
    const k = kernels(undefined, fma);
    const ap = k.put(packRows(A, rows, K, 'dense'));
    const bp = k.put(packRows(B, cols, K, 'panels'));
    const cp = k.put(C0);
    const gp = k.put(G);
    k.ex.gemm(
      ap,
      bp,
      Math.ceil(K / 4) * 4,
      rowsPad / 4,
      colsPad / 8,
      cp,
      4 * colsPad,
      gp,
      4 * colsPad,
      group,
      mode,
    );
    const C = k.read(cp, rowsPad * colsPad);
    const S = product64(A, B, rows, cols, K);
    const want = new Float64Array(rows * cols);
    const got = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const s = S[i * cols + j]!;
        const g = G[Math.floor(i / group) * colsPad + j]!;
        const c = C0[i * colsPad + j]!;
        want[i * cols + j] = [s, c + g * s, g * s, c + s][mode]!;
        got[i * cols + j] = C[i * colsPad + j]!;
      }
    }
    expect(relMaxError(got, want)).toBeLessThanOrEqual(TOL);
  });

  it.each(FMA)('gemmMasked: per-entry unit lists, first panels, tiles, G rows and modes (fma %s)', (fma) => {
    const rng = new Rng(7);
    const [V, RP, K, cols] = [3, 4, 45, 29];
    const points = 5;
    const Kp = 48;
    const colsPad = 32;
    const A = randomMatrix(rng, points * V, K);
    const B = randomMatrix(rng, cols, K);
    const k = kernels(undefined, fma);
    const ap = k.put(packRows(A, points * V, K, 'masked', V, RP));
    const bp = k.put(packRows(B, cols, K, 'panels'));
    const G = randomMatrix(rng, points, colsPad);
    const gp = k.put(G);
    for (const mode of [0, 1, 2, 3]) {
      const C0 = randomMatrix(rng, points * RP, colsPad);
      const cp = k.put(C0);
      const table = new Int32Array(MASKED_FIELDS * points);
      const lists: number[][] = [];
      const q0s: number[] = [];
      for (let n = 0; n < points; n++) {
        const list = Array.from({ length: K }, (_, p) => p).filter(() => rng.uniform() < 0.6);
        lists.push(list);
        q0s.push(n % 4);
        const lp = k.put(Int32Array.from(list, (p) => 32 * p));
        table.set(
          [
            ap + 16 * n * Kp,
            lp,
            list.length,
            cp + n * RP * 4 * colsPad,
            gp + 4 * n * colsPad,
            q0s[n]!,
            1,
            bp,
          ],
          MASKED_FIELDS * n,
        );
      }
      k.ex.gemmMasked(k.put(table), points, Kp, colsPad / 8, 4 * colsPad, mode);
      const C = k.read(cp, points * RP * colsPad);
      const want: number[] = [];
      const got: number[] = [];
      for (let n = 0; n < points; n++) {
        for (let i = 0; i < V; i++) {
          for (let j = 8 * q0s[n]!; j < cols; j++) {
            let s = 0;
            for (const p of lists[n]!) s += A[(n * V + i) * K + p]! * B[j * K + p]!;
            const g = G[n * colsPad + j]!;
            const c = C0[(n * RP + i) * colsPad + j]!;
            want.push([s, c + g * s, g * s, c + s][mode]!);
            got.push(C[(n * RP + i) * colsPad + j]!);
          }
        }
      }
      expect(relMaxError(got, want)).toBeLessThanOrEqual(TOL);
    }
  });

  it('scalePanels scales only the listed rows; scatter spreads pair products (store and add)', () => {
    const rng = new Rng(11);
    const [K, panels] = [12, 3];
    const src = randomMatrix(rng, panels * 8, K);
    const packed = packRows(src, panels * 8, K, 'panels');
    const s = randomMatrix(rng, 1, K);
    const list = [1, 4, 5, 11];
    const k = kernels();
    const srcAt = k.put(packed);
    const dstAt = k.put(new Float32Array(packed.length).fill(Number.NaN));
    k.ex.scalePanels(
      srcAt,
      k.put(s),
      k.put(Int32Array.from(list, (p) => 32 * p)),
      list.length,
      panels,
      K,
      dstAt,
    );
    const dst = k.read(dstAt, packed.length);
    for (let q = 0; q < panels; q++) {
      for (const p of list) {
        for (let c = 0; c < 8; c++) {
          const at = (q * K + p) * 8 + c;
          expect(dst[at]).toBe(Math.fround(packed[at]! * s[p]!));
        }
      }
    }

    const [V, c, ldT] = [3, 5, 8];
    const T = randomMatrix(rng, c, ldT);
    const g = randomMatrix(rng, 1, c);
    const idx = Int32Array.from({ length: V * V }, (_, e) => 4 * ((e * 5) % 6));
    const ldc = c * V + 2;
    for (const mode of [0, 1]) {
      const out0 = randomMatrix(rng, V, ldc);
      const outAt = k.put(out0);
      k.ex.scatter(k.put(T), 4 * ldT, k.put(g), outAt, 4 * ldc, c, V, k.put(idx), mode);
      const out = k.read(outAt, V * ldc);
      for (let m = 0; m < c; m++) {
        for (let i = 0; i < V; i++) {
          for (let j = 0; j < V; j++) {
            const v = Math.fround(g[m]! * T[m * ldT + idx[i * V + j]! / 4]!);
            const at = i * ldc + m * V + j;
            expect(out[at]).toBe(mode === 0 ? v : Math.fround(out0[at]! + v));
          }
        }
      }
    }
  });

  it.each([
    [1, 1],
    [4, 4],
    [7, 13],
    [16, 5],
    [33, 40],
  ])('transpose %i × %i is exact', (rows, cols) => {
    const rng = new Rng(rows + cols);
    const src = randomMatrix(rng, rows, cols);
    const k = kernels();
    const s = k.put(src);
    const d = k.alloc(rows * cols);
    k.ex.transpose(s, rows, cols, d);
    const dst = k.read(d, rows * cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) expect(dst[j * rows + i]).toBe(src[i * cols + j]);
  });

  it.each([
    // rows (in whole groups), K (units, a multiple of 4), stride (4: A tiles, 8: B panels), chunk
    [4, 4, 4, 1024],
    [12, 36, 4, 16],
    [24, 36, 8, 16],
    [16, 2056, 8, 1024],
    [8, 1028, 4, 1024],
  ])(
    'packGroups %i rows × %i units, stride %i, chunks of %i: exactly the chunked tile / panel layout, in one call or two',
    (rows, K, stride, chunk) => {
      const rng = new Rng(rows * 7 + K);
      const src = randomMatrix(rng, rows, K);
      const groups = rows / stride;
      // Plain loops: chunk from c0, group g, unit p, row r at c0·rows + (g·len + p − c0)·stride + r.
      const expected = new Float32Array(rows * K);
      for (let c0 = 0; c0 < K; c0 += chunk) {
        const len = Math.min(chunk, K - c0);
        for (let g = 0; g < groups; g++)
          for (let p = c0; p < c0 + len; p++)
            for (let r = 0; r < stride; r++)
              expected[c0 * rows + (g * len + p - c0) * stride + r] = src[(g * stride + r) * K + p]!;
      }
      const k = kernels();
      const s = k.put(src);
      const d = k.alloc(rows * K);
      k.ex.packGroups(s, K, groups, stride, chunk, d, groups, 0);
      expect(Array.from(k.read(d, rows * K))).toEqual(Array.from(expected));
      // The same layout from the groups in two calls (a first part, then the rest from group g0).
      const g0 = Math.floor(groups / 2);
      const d2 = k.alloc(rows * K);
      if (g0 > 0) k.ex.packGroups(s, K, g0, stride, chunk, d2, groups, 0);
      k.ex.packGroups(s + 4 * g0 * stride * K, K, groups - g0, stride, chunk, d2, groups, g0);
      expect(Array.from(k.read(d2, rows * K))).toEqual(Array.from(expected));
    },
  );

  it.each(
    [
      // V, S, C, c, m0, cPad
      [10, 4, 32, 13, 0, 16],
      [3, 2, 5, 7, 4, 8],
      [1, 1, 1, 1, 0, 4],
      [7, 5, 3, 9, 8, 12],
      [4, 3, 2, 12, 0, 12],
      [2, 9, 2, 5, 0, 8],
      [5, 6, 3, 9, 4, 12], // V ≡ 1 (mod 4): the 2 × 1 tile
    ].flatMap((shape) => [0, 1].map((mode) => [...shape, mode])),
  )(
    'pooledPairs V = %i, S = %i, C = %i, columns [m0, c) with c = %i, m0 = %i, cPad = %i, mode %i: as float64, nothing else written',
    (V, S, C, c, m0, cPad, mode) => {
      const rng = new Rng(V * 1000 + S * 100 + C * 10 + c);
      const x = pooledInputs(rng, V, S, C, cPad);
      const ldo = cPad * V + 3;
      // mode 0: NaN sentinels everywhere; mode 1: random values to add to.
      const out0 =
        mode === 0 ? new Float32Array((V + 1) * ldo).fill(Number.NaN) : randomMatrix(rng, V + 1, ldo);
      const out = runPooledPairs(x, V, S, C, c, m0, cPad, mode, out0, ldo);
      const K = pooledPairs64(x, V, S, C, c, cPad);
      const got: number[] = [];
      const want: number[] = [];
      for (let i = 0; i <= V; i++) {
        for (let e = 0; e < ldo; e++) {
          const m = Math.floor(e / V);
          const at = i * ldo + e;
          if (i < V && m >= m0 && m < c) {
            got.push(out[at]!);
            want.push((mode === 0 ? 0 : out0[at]!) + K[(i * c + m) * V + (e % V)]!);
          } else {
            expect(Object.is(out[at], out0[at]), `untouched at row ${i}, float ${e}`).toBe(true);
          }
        }
      }
      expect(got.length).toBe(V * V * (c - m0));
      expect(relMaxError(got, want)).toBeLessThanOrEqual(TOL);
    },
  );

  it.each([
    [4, 9, 6, 8, 0],
    [4, 9, 6, 16, 4],
    [3, 4, 5, 12, 8],
    [1, 1, 1, 4, 0],
  ])(
    'pixelSums P = %i, taps = %i, U = %i, cPad = %i, m0 = %i: bias + Σ of the valid taps (float64 loops), columns < m0 untouched',
    (P, taps, U, cPad, m0) => {
      const rng = new Rng(P * 100 + taps * 10 + U + m0);
      const G = randomMatrix(rng, U * U, cPad);
      // Taps of each position: random input pixels, about a quarter in the padding (−1).
      const idx = Int32Array.from({ length: P * taps }, () =>
        rng.uniform() < 0.25 ? -1 : Math.floor(rng.uniform() * U),
      );
      const bias = 0.375;
      const k = kernels(4 * 2 ** 20);
      const q0 = new Float32Array(P * P * cPad).fill(Number.NaN);
      const q = k.put(q0);
      k.ex.pixelSums(k.put(G), q, k.put(idx), P, taps, U, cPad, m0, k.put(Float32Array.of(bias)));
      const out = k.read(q, q0.length);
      const got: number[] = [];
      const want: number[] = [];
      for (let p = 0; p < P; p++) {
        for (let p2 = 0; p2 < P; p2++) {
          for (let m = 0; m < cPad; m++) {
            const at = (p * P + p2) * cPad + m;
            if (m < m0) {
              expect(Number.isNaN(out[at]!), `untouched at ${p}, ${p2}, ${m}`).toBe(true);
              continue;
            }
            let sum = bias;
            for (let o = 0; o < taps; o++) {
              const [u, u2] = [idx[p * taps + o]!, idx[p2 * taps + o]!];
              if (u >= 0 && u2 >= 0) sum += G[(u * U + u2) * cPad + m]!;
            }
            got.push(out[at]!);
            want.push(sum);
          }
        }
      }
      expect(relMaxError(got, want)).toBeLessThanOrEqual(TOL);
    },
  );

  it.each([
    [5, 8, 3, 4, 0],
    [5, 16, 2, 3, 8],
    [5, 12, 2, 3, 4],
    [1, 4, 1, 1, 0],
  ])(
    'slotGather P = %i, cPad = %i, C = %i, S = %i, m0 = %i: the selected products, 0 for empty slots, columns < m0 untouched',
    (P, cPad, C, S, m0) => {
      const rng = new Rng(P * 100 + cPad + C * 10 + S);
      const Qn = randomMatrix(rng, P * P, cPad);
      const pick = () => (rng.uniform() < 0.2 ? -1 : Math.floor(rng.uniform() * P));
      const selR = Int32Array.from({ length: C * S }, pick);
      const selC = Int32Array.from({ length: C * S * cPad }, pick);
      const k = kernels(4 * 2 ** 20);
      // Q, then 16 NaN floats right after it that nothing may write.
      const n = C * S * S * cPad;
      const q0 = new Float32Array(n + 16).fill(Number.NaN);
      const q = k.put(q0);
      // Column slots as byte offsets within a row of Qn (−1: empty).
      const offsets = selC.map((p2, e) => (p2 < 0 ? -1 : (p2 * cPad + (e % cPad)) * 4));
      k.ex.slotGather(k.put(Qn), P, cPad, k.put(selR), k.put(offsets), q, C, S, m0);
      const out = k.read(q, n);
      expect(Array.from(k.read(q + 4 * n, 16)).every(Number.isNaN)).toBe(true);
      for (let ch = 0; ch < C; ch++) {
        for (let s = 0; s < S; s++) {
          for (let s2 = 0; s2 < S; s2++) {
            for (let m = 0; m < cPad; m++) {
              const got = out[((ch * S + s) * S + s2) * cPad + m]!;
              const [p, p2] = [selR[ch * S + s]!, selC[(ch * S + s2) * cPad + m]!];
              if (m < m0) expect(Number.isNaN(got)).toBe(true);
              else expect(got).toBe(p < 0 || p2 < 0 ? 0 : Qn[(p * P + p2) * cPad + m]!);
            }
          }
        }
      }
    },
  );

  it.each([
    [3, 4, 8, 5, 0],
    [2, 6, 4, 7, 3],
    [1, 1, 4, 2, 0],
  ])(
    'tokenPairs V = %i, S = %i, e = %i, columns [m0, c) with c = %i, m0 = %i: the shared ids’ products added (float64 loops), nothing else written',
    (V, S, e, c, m0) => {
      const rng = new Rng(V * 100 + S * 10 + e + c);
      // Each point's distinct ids, ascending, then −1 (a few from a small vocabulary: many shared).
      const ids = (n: number) => {
        const out = new Int32Array(n * S).fill(-1);
        for (let x = 0; x < n; x++) {
          const chosen = [...new Set(Array.from({ length: S }, () => Math.floor(rng.uniform() * 2 * S)))]
            .slice(0, 1 + Math.floor(rng.uniform() * S))
            .sort((a, b) => a - b);
          out.set(chosen, x * S);
        }
        return out;
      };
      const [idR, idC] = [ids(1), ids(c)];
      const dr = randomMatrix(rng, V, S * e);
      const dc = randomMatrix(rng, c * V, S * e);
      const ldo = c * V + 3;
      const out0 = randomMatrix(rng, V + 1, ldo);
      const k = kernels(4 * 2 ** 20);
      const out = k.put(out0);
      k.ex.tokenPairs(k.put(idR), k.put(idC), S, k.put(dr), k.put(dc), e, V, out, ldo, m0, c);
      const got = k.read(out, out0.length);
      for (let i = 0; i <= V; i++) {
        for (let x = 0; x < ldo; x++) {
          const m = Math.floor(x / V);
          const at = i * ldo + x;
          if (i === V || m < m0 || m >= c) {
            expect(Object.is(got[at], out0[at]), `untouched at row ${i}, float ${x}`).toBe(true);
            continue;
          }
          const j = x % V;
          let want = out0[at]!;
          for (let p = 0; p < S && idR[p]! >= 0; p++) {
            for (let q = 0; q < S && idC[m * S + q]! >= 0; q++) {
              if (idR[p] !== idC[m * S + q]) continue;
              for (let y = 0; y < e; y++)
                want += dr[i * S * e + p * e + y]! * dc[(m * V + j) * S * e + q * e + y]!;
            }
          }
          expect(Math.abs(got[at]! - want)).toBeLessThanOrEqual(TOL * (1 + Math.abs(want)));
        }
      }
    },
  );

  it.each([
    // T, KA, WP, VP, VR, c, m0
    [8, 36, 64, 10, 10, 5, 0],
    [4, 4, 8, 2, 1, 3, 1],
    [12, 8, 16, 4, 3, 4, 2],
    [4, 12, 24, 6, 5, 2, 0],
  ])(
    'positionPairs T = %i, KA = %i, WP = %i, VP = %i (V = %i), columns [m0, c) with c = %i, m0 = %i: float64 loops, nothing else written',
    (T, KA, WP, VP, VR, c, m0) => {
      const rng = new Rng(T * 1000 + KA * 10 + WP + VR);
      const ar = randomMatrix(rng, T, KA);
      const ac = randomMatrix(rng, c * T, KA);
      // Signal rows ≥ VR are zero (the caller's padding).
      const signals = (points: number) => {
        const d = randomMatrix(rng, points * VP, T * WP);
        for (let n = 0; n < points; n++) d.fill(0, (n * VP + VR) * T * WP, (n + 1) * VP * T * WP);
        return d;
      };
      const [dr, dc] = [signals(1), signals(c)];
      const ldo = c * VR + 3;
      const out0 = randomMatrix(rng, VR + 1, ldo);
      const k = kernels(4 * 2 ** 20);
      const out = k.put(out0);
      const scratch = k.put(new Float32Array(T * T + VP * T * WP));
      k.ex.positionPairs(
        k.put(ar),
        k.put(ac),
        KA,
        T,
        k.put(dr),
        k.put(dc),
        WP,
        VP,
        VR,
        out,
        ldo,
        m0,
        c,
        scratch,
      );
      const got = k.read(out, out0.length);
      for (let i = 0; i <= VR; i++) {
        for (let x = 0; x < ldo; x++) {
          const m = Math.floor(x / VR);
          const at = i * ldo + x;
          if (i === VR || m < m0 || m >= c) {
            expect(Object.is(got[at], out0[at]), `untouched at row ${i}, float ${x}`).toBe(true);
            continue;
          }
          const j = x % VR;
          // K_ij += Σ_{t,u} ⟨ar[t], ac[m][u]⟩ ⟨dr[i][t], dc[m][j][u]⟩ (docs/theory.md §Per-layer rules)
          let want = out0[at]!;
          let size = 0;
          for (let t = 0; t < T; t++) {
            for (let u = 0; u < T; u++) {
              let A = 0;
              for (let e = 0; e < KA; e++) A += ar[t * KA + e]! * ac[(m * T + u) * KA + e]!;
              let S = 0;
              for (let o = 0; o < WP; o++)
                S += dr[(i * T + t) * WP + o]! * dc[((m * VP + j) * T + u) * WP + o]!;
              want += A * S;
              size += Math.abs(A * S);
            }
          }
          expect(Math.abs(got[at]! - want)).toBeLessThanOrEqual(TOL * (1 + size));
        }
      }
    },
  );

  it.each([4, 5])(
    'pooledPairs, S = %i: a column point gives the same bits whatever m0, quad and lane',
    (S) => {
      const [V, C, c, cPad] = [5, 6, 13, 16];
      const rng = new Rng(5);
      const x = pooledInputs(rng, V, S, C, cPad);
      const ldo = (cPad + 4) * V;
      const out0 = new Float32Array(V * ldo).fill(Number.NaN);
      const a = runPooledPairs(x, V, S, C, c, 0, cPad, 0, out0, ldo);
      const b = runPooledPairs(x, V, S, C, c, 4, cPad, 0, out0, ldo);
      // The same data one column to the right: every column point in the next lane (or quad).
      const shift = (m: Float32Array) => {
        const rows = m.length / cPad;
        const s = new Float32Array(rows * (cPad + 4));
        for (let r = 0; r < rows; r++) s.set(m.subarray(r * cPad, (r + 1) * cPad), r * (cPad + 4) + 1);
        return s;
      };
      const y = { Q: shift(x.Q), dr: x.dr, Dc: shift(x.Dc) };
      const d = runPooledPairs(y, V, S, C, c + 1, 0, cPad + 4, 0, out0, ldo);
      const bits = (v: Float32Array, i: number, m: number) =>
        Array.from(new Uint32Array(v.slice(i * ldo + m * V, i * ldo + (m + 1) * V).buffer));
      for (let i = 0; i < V; i++) {
        for (let m = 0; m < c; m++) {
          expect(bits(a, i, m).some((u) => u === 0x7fc00000)).toBe(false);
          if (m >= 4) expect(bits(b, i, m)).toEqual(bits(a, i, m));
          expect(bits(d, i, m + 1)).toEqual(bits(a, i, m));
        }
      }
    },
  );

  it('pooledPairs: S ≤ 4 (slots in registers) sums as the general loop does, bit for bit', () => {
    // The same data with S = 4, and padded to S = 5 by a zero slot (T gains + 0 terms, the tiles
    // + 0 products): the S = 4 code and the general loop must give the same bits.
    const [V, S, C, c, cPad] = [6, 4, 5, 11, 12];
    const x = pooledInputs(new Rng(45), V, S, C, cPad);
    const S1 = S + 1;
    const y = {
      Q: new Float32Array(C * S1 * S1 * cPad),
      dr: new Float32Array(V * C * S1),
      Dc: new Float32Array(C * S1 * V * cPad),
    };
    for (let ch = 0; ch < C; ch++) {
      for (let s = 0; s < S; s++) {
        for (let s2 = 0; s2 < S; s2++) {
          const from = ((ch * S + s) * S + s2) * cPad;
          y.Q.set(x.Q.subarray(from, from + cPad), ((ch * S1 + s) * S1 + s2) * cPad);
        }
        for (let i = 0; i < V; i++) y.dr[(i * C + ch) * S1 + s] = x.dr[(i * C + ch) * S + s]!;
        const from = (ch * S + s) * V * cPad;
        y.Dc.set(x.Dc.subarray(from, from + V * cPad), (ch * S1 + s) * V * cPad);
      }
    }
    const ldo = cPad * V;
    const out0 = new Float32Array(V * ldo).fill(Number.NaN);
    const a = runPooledPairs(x, V, S, C, c, 0, cPad, 0, out0, ldo);
    const b = runPooledPairs(y, V, S1, C, c, 0, cPad, 0, out0, ldo);
    for (let i = 0; i < V; i++) {
      const row = (v: Float32Array) => Array.from(new Uint32Array(v.slice(i * ldo, i * ldo + c * V).buffer));
      expect(row(a).some((u) => u === 0x7fc00000)).toBe(false);
      expect(row(b)).toEqual(row(a));
    }
  });
});

/**
 * Per-example gradient rows [b·V, width] with, per point, a fraction `zeros` of the columns zero in
 * all V rows (as behind a ReLU and a max-pool): the masked gram route skips exactly those.
 */
function gramRows(rng: Rng, b: number, V: number, width: number, zeros = 0.4): Float32Array {
  const d = randomMatrix(rng, b * V, width);
  for (let n = 0; n < b; n++) {
    for (let p = 0; p < width; p++) {
      if (rng.uniform() < zeros) for (let i = 0; i < V; i++) d[(n * V + i) * width + p] = 0;
    }
  }
  return d;
}

describe('block computer against the float64 computer', () => {
  const rng = new Rng(23);
  /** Factors of a block of b points for `terms` (some units inactive; U shared). */
  function block(terms: TermMeta[], V: number, b: number, key: string, us: Float32Array[]): BlockInput {
    return {
      key,
      points: b,
      terms: terms.map((t, k) => {
        const a = t.kind !== 'gram' ? randomMatrix(rng, b, t.dIn) : undefined;
        if (t.kind === 'identity') return { a };
        if (t.kind === 'gram') return { d: gramRows(rng, b, V, t.width) };
        // Per point, inactive units (zero in every δ_i): exact zeros like ReLU.
        const s = randomMatrix(rng, b, t.width);
        for (let e = 0; e < s.length; e++) if (rng.uniform() < 0.4) s[e] = 0;
        const u = us[k]!;
        const d = new Float32Array(b * V * t.width);
        for (let n = 0; n < b; n++) {
          for (let i = 0; i < V; i++) {
            for (let p = 0; p < t.width; p++)
              d[(n * V + i) * t.width + p] = s[n * t.width + p]! * u[p * V + i]!;
          }
        }
        return t.gated ? { a, d, s, u } : { a, d };
      }),
    };
  }

  it.each([
    [10, 'full'],
    [3, 'full'],
    [10, 'trace'],
    [2, 'full'],
  ] as const)('V = %i, %s: every term kind, symmetric and rectangular blocks', (V, mode) => {
    const terms: TermMeta[] = [
      { kind: 'factored', layer: 'a', dIn: 5, width: 13, sw2: 0.25, sb2: 0.5 },
      { kind: 'factored', layer: 'b', dIn: 13, width: 9, sw2: 1, sb2: 1, gated: true },
      { kind: 'factored', layer: 'c', dIn: 4, width: 6, sw2: 0, sb2: 2 },
      { kind: 'gram', layer: 'd', dIn: 0, width: 11, sw2: 1, sb2: 0 },
      { kind: 'identity', layer: 'e', dIn: 9, width: 0, sw2: 0.5, sb2: 1 },
    ];
    const us = terms.map((t) => randomMatrix(rng, t.width, V));
    const r = block(terms, V, 7, 'r', us);
    const c = block(terms, V, 5, 'c', us);
    expect(expectAsFloat64(terms, V, mode, r, c)).toBeGreaterThan(0);
  });

  it('reuses packing buffers (evicted or released ones, stale contents) without changing a bit', () => {
    const V = 10;
    const terms: TermMeta[] = [
      { kind: 'factored', layer: 'a', dIn: 5, width: 13, sw2: 0.25, sb2: 0.5 },
      { kind: 'factored', layer: 'b', dIn: 13, width: 9, sw2: 1, sb2: 1, gated: true },
      { kind: 'gram', layer: 'd', dIn: 0, width: 11, sw2: 1, sb2: 0 },
    ];
    const us = terms.map((t) => randomMatrix(rng, t.width, V));
    const blocks = [block(terms, V, 7, 'p', us), block(terms, V, 5, 'q', us), block(terms, V, 6, 's', us)];
    const pairs = [
      [0, 1],
      [1, 2],
      [2, 0],
      [0, 0],
      [2, 2],
    ] as const;
    const run = (capacity: number) => {
      const wasm = new WasmBlockComputer(terms, V, 'full', capacity);
      try {
        return pairs.map(([i, j]) => {
          const w = wasm.compute(blocks[i]!, blocks[j]!, true);
          const copy = [Array.from(w.data), Array.from(w.transposed!)];
          w.done();
          return copy;
        });
      } finally {
        wasm.release();
      }
    };
    const js = new JsBlockComputer(terms, V, 'full');
    const want = run(2 ** 26); // everything cached, fresh buffers
    pairs.forEach(([i, j], e) => {
      expect(relMaxError(want[e]![0]!, js.compute(blocks[i]!, blocks[j]!, true).data)).toBeLessThanOrEqual(
        TOL,
      );
    });
    expect(packingPoolBytes()).toBeGreaterThan(0);
    // Small capacities: packings evict earlier ones (1 byte: also the row block of the same compute
    // call), whose buffers are pooled (up to the capacity) and reused with stale contents; each new
    // computer starts on the buffers released by the previous ones.
    for (const capacity of [1, 4000, 8000, 16000, 24000, 32000, 48000, 2 ** 26, 1])
      expect(run(capacity), `${capacity}`).toEqual(want);
  });
});

describe('gram terms on symmetric blocks (only the upper point triangle computed)', () => {
  const rng = new Rng(77);
  it.each([
    [10, [{ kind: 'gram', layer: 'g', dIn: 0, width: 37, sw2: 1, sb2: 0 }]],
    [
      3,
      [
        { kind: 'gram', layer: 'g', dIn: 0, width: 5, sw2: 1, sb2: 0 },
        { kind: 'factored', layer: 'a', dIn: 4, width: 6, sw2: 1, sb2: 0.5 },
      ],
    ],
  ] as Array<[number, TermMeta[]]>)('V = %i: as the float64 block computer', (V, terms) => {
    const make = (points: number, key: string): BlockInput => ({
      key,
      points,
      terms: terms.map((t) =>
        t.kind === 'gram'
          ? { d: gramRows(rng, points, V, t.width) }
          : { a: randomMatrix(rng, points, t.dIn), d: randomMatrix(rng, points * V, t.width) },
      ),
    });
    const r = make(9, 'r');
    const wasm = new WasmBlockComputer(terms, V, 'full', 2 ** 26);
    const js = new JsBlockComputer(terms, V, 'full');
    try {
      const w = wasm.compute(r, r, true);
      const want = js.compute(r, r, true);
      expect(relMaxError(w.data, want.data)).toBeLessThanOrEqual(TOL);
      expect(relMaxError(w.transposed!, want.transposed!)).toBeLessThanOrEqual(TOL);
      w.done();
    } finally {
      wasm.release();
    }
  });
});

describe("dense gram terms ('tight' route: rows of all points back to back)", () => {
  const rng = new Rng(91);
  const make = (terms: TermMeta[], V: number, points: number, key: string, zeros = 0.1): BlockInput => ({
    key,
    points,
    terms: terms.map((t) =>
      t.kind === 'gram'
        ? { d: gramRows(rng, points, V, t.width, zeros) }
        : { a: randomMatrix(rng, points, t.dIn), d: randomMatrix(rng, points * V, t.width) },
    ),
  });
  const gram = (width: number, dense: boolean): TermMeta => ({
    kind: 'gram',
    layer: `g${width}`,
    dIn: 0,
    width,
    sw2: 1,
    sb2: 0,
    ...(dense ? { dense } : {}),
  });

  it.each([
    // V, terms (widths > 1024 run in several chunks of units), row points, column points
    [5, [gram(4500, true)], 23, 11],
    [
      3,
      [
        gram(37, true),
        { kind: 'factored', layer: 'a', dIn: 4, width: 6, sw2: 1, sb2: 0.5 },
        gram(2049, true),
      ],
      9,
      14,
    ],
    [6, [gram(13, true), gram(29, false)], 17, 4],
    [1, [gram(70, true)], 13, 6],
  ] as Array<[number, TermMeta[], number, number]>)(
    'V = %i: as the float64 block computer, symmetric and rectangular blocks',
    (V, terms, nr, nc) => {
      expectAsFloat64(terms, V, 'full', make(terms, V, nr, 'r'), make(terms, V, nc, 'c'));
    },
  );

  it('agrees with the masked route, with fewer operations when V % 4 ≠ 0', () => {
    const V = 5;
    const [tight, masked] = [[gram(4500, true)], [gram(4500, false)]];
    const r = make(tight, V, 21, 'r', 0);
    const c = make(tight, V, 8, 'c', 0);
    const a = new WasmBlockComputer(tight, V, 'full', 2 ** 26);
    const b = new WasmBlockComputer(masked, V, 'full', 2 ** 26);
    try {
      for (const [row, col] of [
        [r, c],
        [r, r],
      ] as const) {
        const x = a.compute(row, col, false).data.slice();
        const y = b.compute(row, col, false).data.slice();
        // float32 sums over different chunks of units (1024 against 2048).
        expect(relMaxError(x, y)).toBeLessThanOrEqual(TOL);
      }
      // 8 rows per point on the masked route (V padded to a multiple of 4) against 5 (+ the bands'
      // share of the lower triangle on the symmetric block).
      expect(a.flops).toBeLessThan(0.72 * b.flops);
    } finally {
      a.release();
      b.release();
    }
  });
});

describe('limits', () => {
  it('a block too large for the 4 GiB WebAssembly memory is an error naming blockSize', () => {
    const terms: TermMeta[] = [{ kind: 'factored', layer: 'a', dIn: 2, width: 2, sw2: 1, sb2: 1 }];
    const b = 3000;
    const input: BlockInput = {
      key: 'big',
      points: b,
      terms: [{ a: new Float32Array(b * 2), d: new Float32Array(b * 10 * 2) }],
    };
    const wasm = new WasmBlockComputer(terms, 10, 'full', 2 ** 26);
    try {
      expect(() => wasm.compute(input, input, false)).toThrow(InvalidArgumentError);
      expect(() => wasm.compute(input, input, false)).toThrow(/blockSize/);
    } finally {
      wasm.release();
    }
  });
});

describe('through empiricalNtkFn', () => {
  const relu = buildModel(
    { kind: 'mlp', widths: [24, 20], activation: 'relu', parameterization: 'standard' },
    { inputShape: [6], numClasses: 5, seed: 3 },
  );
  randomizeWeights(relu, 4, 0.7);
  const x1 = normalPoints(19, [6], 31);
  const x2 = normalPoints(8, [6], 32);

  it('marks the last hidden dense layer of a ReLU MLP as gated (and no other)', () => {
    const plan = planStructured(analyzeModel(relu, 'all'));
    expect(plan.terms.map((t) => [t.kind, t.gated ?? false])).toEqual([
      ['factored', false],
      ['factored', true],
      ['identity', false],
    ]);
    // A head with a fused non-linearity is not the identity head: nothing is gated.
    const softmaxHead = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4, activation: 'relu' }),
        tf.layers.dense({ units: 2, activation: 'tanh' }),
      ],
    });
    expect(planStructured(analyzeModel(softmaxHead, 'all')).terms.some((t) => t.gated)).toBe(false);
    const softmaxBetween = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4 }),
        tf.layers.activation({ activation: 'softmax' }),
        tf.layers.dense({ units: 2 }),
      ],
    });
    expect(planStructured(analyzeModel(softmaxBetween, 'all')).terms.some((t) => t.gated)).toBe(false);
    softmaxHead.dispose();
    softmaxBetween.dispose();
  });

  it("agrees with the 'tfjs' contraction and float64, full and trace", async () => {
    for (const output of ['full', 'trace'] as const) {
      for (const b of [null, x2]) {
        const wasm = await empiricalNtkFn(relu, { output, contraction: 'wasm', progress: false })(x1, b);
        const viaTf = await empiricalNtkFn(relu, { output, contraction: 'tfjs', progress: false })(x1, b);
        const f64 = await empiricalNtkFn(relu, { output, accumulation: 'float64', progress: false })(x1, b);
        expect(wasm.contraction).toBe('wasm');
        expect(viaTf.contraction).toBe('tfjs');
        expect(f64.contraction).toBe('js');
        expect(relMaxError(wasm.data, f64.data)).toBeLessThanOrEqual(1e-6);
        expect(relMaxError(viaTf.data, f64.data)).toBeLessThanOrEqual(1e-6);
      }
    }
  });

  it('is bitwise independent of block size and thread count', async () => {
    const bytes = (d: Float32Array | Float64Array) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    for (const b of [null, x2]) {
      const ref = await empiricalNtkFn(relu, { blockSize: 64, progress: false })(x1, b);
      for (const [blockSize, threads] of [
        [1, 1],
        [4, 1],
        [7, 2],
        [3, 2],
      ]) {
        const k = await empiricalNtkFn(relu, { blockSize, threads, progress: false })(x1, b);
        expect(k.contraction).toBe('wasm');
        expect(Buffer.compare(bytes(k.data), bytes(ref.data))).toBe(0);
      }
    }
  });

  it('executes fewer operations than the plain layer-wise products on a ReLU network', async () => {
    const n = 19;
    const V = 5;
    const k = await empiricalNtkFn(relu, { progress: false })(x1);
    // Plain layer-wise products over the whole kernel: Δ Δᵀ of both hidden layers + three Grams.
    const plain = 2 * (n * V) ** 2 * (24 + 20) + 2 * n * n * (6 + 24 + 20);
    expect(k.flops).toBeGreaterThan(0);
    expect(k.flops!).toBeLessThan(0.75 * plain);
  });

  it('rejects an unknown contraction, naming the option', () => {
    expect(() => empiricalNtkFn(relu, { contraction: 'blas' as never })).toThrow(InvalidArgumentError);
    expect(() => empiricalNtkFn(relu, { contraction: 'blas' as never })).toThrow(/contraction/);
  });
});
