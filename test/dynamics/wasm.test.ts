import { describe, expect, it } from 'vitest';
import {
  gemvJs,
  instantiateKernels,
  kernelModule,
  kernelModuleBytes,
  spmvJs,
} from '../../src/dynamics/wasm.js';
import { Rng } from '../../src/util/rng.js';
import { wasmApi } from '../../src/util/wasm-asm.js';

// Tolerance: the SIMD kernels sum in a different order than the plain loops; with entries in
// [-0.5, 0.5] and at most 700 terms the difference is far below 1e-12.
const TOL = 1e-12;

function memoryFor(doubles: number) {
  return new wasmApi!.Memory({ initial: Math.ceil((doubles * 8) / 65536) + 1 });
}

describe('hand-assembled WebAssembly SIMD kernels', () => {
  it('validate and compile in this runtime (plain and shared memory)', () => {
    expect(wasmApi).toBeDefined();
    expect(wasmApi!.validate(kernelModuleBytes(false))).toBe(true);
    expect(wasmApi!.validate(kernelModuleBytes(true))).toBe(true);
    expect(kernelModule(false)).not.toBeNull();
    expect(kernelModule(true)).not.toBeNull();
  });

  it('gemv equals a naive dense product for every row/column remainder', () => {
    const rng = new Rng(1);
    for (const [R, C] of [
      [1, 1],
      [3, 5],
      [8, 8],
      [9, 2],
      [17, 9],
      [16, 31],
      [70, 133],
    ] as const) {
      const mem = memoryFor(R * C + C + R + 8);
      const k = instantiateKernels(mem)!;
      const f = new Float64Array(mem.buffer);
      for (let i = 0; i < R * C + C; i++) f[i] = rng.uniform() - 0.5;
      f.fill(Number.NaN, R * C + C, R * C + C + R); // y is overwritten, never read
      k.gemv(0, R * C * 8, (R * C + C) * 8, R, C);
      const naive = new Float64Array(R);
      for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) naive[i] += f[i * C + j]! * f[R * C + j]!;
      const js = new Float64Array(R);
      gemvJs(f, 0, f, R * C, js, 0, R, C);
      for (let i = 0; i < R; i++) {
        expect(Math.abs(f[R * C + C + i]! - naive[i]!)).toBeLessThan(TOL);
        expect(Math.abs(js[i]! - naive[i]!)).toBeLessThan(TOL);
      }
      // nothing written past y
      expect(f[R * C + C + R]).toBe(0);
    }
  });

  it('spmv (packed symmetric) equals the dense symmetric product, also split into row ranges', () => {
    const rng = new Rng(2);
    for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 37, 64]) {
      const np = (n * (n + 1)) / 2;
      const mem = memoryFor(np + 2 * n + 8);
      const k = instantiateKernels(mem)!;
      const f = new Float64Array(mem.buffer);
      for (let i = 0; i < np + n; i++) f[i] = rng.uniform() - 0.5;
      const dense = new Float64Array(n * n);
      let p = 0;
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          dense[i * n + j] = f[p]!;
          dense[j * n + i] = f[p]!;
          p++;
        }
      }
      const x = f.subarray(np, np + n);
      const naive = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) naive[i] += dense[i * n + j]! * x[j]!;
      const Y = np + n;
      for (const split of [0, 1, Math.floor(n / 3), n - 1, n]) {
        f.fill(0, Y, Y + n);
        let rowPtr = 0;
        for (let i = 0; i < split; i++) rowPtr += n - i;
        if (split > 0) k.spmv(0, np * 8, Y * 8, n, 0, split);
        if (split < n) k.spmv(rowPtr * 8, np * 8, Y * 8, n, split, n);
        for (let i = 0; i < n; i++) expect(Math.abs(f[Y + i]! - naive[i]!)).toBeLessThan(TOL);
      }
      const js = new Float64Array(n);
      spmvJs(f, 0, f, np, js, 0, n);
      for (let i = 0; i < n; i++) expect(Math.abs(js[i]! - naive[i]!)).toBeLessThan(TOL);
    }
  });
});
