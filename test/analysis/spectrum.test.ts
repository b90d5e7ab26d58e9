import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import {
  denseKernelMatrix,
  factoredSymmetricEigen,
  kernelMatrixStats,
  kernelSpectrum,
  npyKernelMatrix,
  oneHot,
  symmetricEigen,
  topEigenpairs,
} from '../../src/analysis/index.js';
import { PanelProduct } from '../../src/analysis/wasm-panel.js';
import { CorruptFileError, EntkError, InvalidArgumentError } from '../../src/errors.js';
import { writeNpy } from '../../src/io/index.js';
import { python } from '../io/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { psdKernel, RUN_SCIPY_TESTS, randomLabels } from './helpers.js';

const dir = tempDir('analysis-spectrum');

/** ml-matrix's EVD (JAMA), eigenvalues descending with their vectors as rows. */
function reference(K: Float64Array, n: number): { values: number[]; vectors: number[][] } {
  const rows = Array.from({ length: n }, (_, i) => Array.from(K.subarray(i * n, (i + 1) * n)));
  const evd = new EigenvalueDecomposition(new Matrix(rows), { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const V = evd.eigenvectorMatrix;
  const order = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]!);
  return { values: order.map((i) => values[i]!), vectors: order.map((i) => V.getColumn(i)) };
}

describe('symmetricEigen', () => {
  it('matches ml-matrix (values 1e-12 relative), vectors orthonormal with K u = λ u', () => {
    const n = 70; // ≥ 48: the WebAssembly kernels run
    const K = psdKernel(n, 50, 3);
    // an indefinite symmetric matrix too
    for (let i = 0; i < n; i++) K[i * n + i] = K[i * n + i]! - 30;
    const ours = symmetricEigen(K, n);
    const ref = reference(K, n);
    for (let j = 0; j < n; j++)
      expect(Math.abs(ours.values[j]! - ref.values[j]!)).toBeLessThan(1e-12 * Math.abs(ref.values[0]!));
    const U = ours.vectors!;
    let worstResidual = 0;
    let worstOrtho = 0;
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let q = 0; q < n; q++) s += K[i * n + q]! * U[j * n + q]!;
        worstResidual = Math.max(worstResidual, Math.abs(s - ours.values[j]! * U[j * n + i]!));
      }
      for (let l = 0; l < n; l++) {
        let d = 0;
        for (let i = 0; i < n; i++) d += U[j * n + i]! * U[l * n + i]!;
        worstOrtho = Math.max(worstOrtho, Math.abs(d - (j === l ? 1 : 0)));
      }
    }
    expect(worstResidual).toBeLessThan(1e-12 * Math.abs(ours.values[0]!));
    expect(worstOrtho).toBeLessThan(1e-12);
  });

  it('the WebAssembly kernels and the plain loops agree (values 1e-12, vectors up to sign)', () => {
    const n = 90;
    const K = psdKernel(n, 60, 5);
    const a = symmetricEigen(K, n, { backend: 'wasm' });
    const b = symmetricEigen(K, n, { backend: 'js' });
    for (let j = 0; j < n; j++) {
      expect(Math.abs(a.values[j]! - b.values[j]!)).toBeLessThan(1e-12 * a.values[0]!);
      if (j < 30) {
        let d = 0;
        for (let i = 0; i < n; i++) d += a.vectors![j * n + i]! * b.vectors![j * n + i]!;
        expect(Math.abs(d)).toBeCloseTo(1, 9);
      }
    }
  });

  it('2×2 closed form and bad input', () => {
    const { values } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
    expect(values[0]).toBeCloseTo(3, 14);
    expect(values[1]).toBeCloseTo(1, 14);
    expect(() => symmetricEigen(new Float64Array(5), 2)).toThrow(InvalidArgumentError);
  });
});

describe('factoredSymmetricEigen', () => {
  it('U = Q Z in factored form: values as ml-matrix, Uᵀy and U x equal the explicit vectors', () => {
    for (const n of [1, 2, 7, 70]) {
      const K = psdKernel(n, Math.max(1, n - 5), 5); // rank-deficient: a cluster at 0
      for (let i = 0; i < n; i++) K[i * n + i] = K[i * n + i]! - 3;
      const f = factoredSymmetricEigen(K, n);
      const ref = reference(K, n);
      const scale = Math.max(1, Math.abs(ref.values[0]!));
      for (let j = 0; j < n; j++) expect(Math.abs(f.values[j]! - ref.values[j]!)).toBeLessThan(1e-12 * scale);
      const C = 3;
      const y = Float64Array.from({ length: n * C }, (_, i) => Math.cos(1.3 * i));
      const p = f.projectT(y, C);
      // U (λ ⊙ Uᵀ y) = K y and U Uᵀ y = y, against float64 loops
      const scaled = p.map((v, i) => v * f.values[Math.floor(i / C)]!);
      const ky = f.combine(scaled, C);
      const back = f.combine(p, C);
      for (let i = 0; i < n; i++)
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let q = 0; q < n; q++) s += K[i * n + q]! * y[q * C + c]!;
          expect(Math.abs(ky[i * C + c]! - s)).toBeLessThan(1e-12 * scale * n);
          expect(Math.abs(back[i * C + c]! - y[i * C + c]!)).toBeLessThan(1e-13 * n);
        }
      // the same eigenvectors as symmetricEigen (the same algorithm): u_jᵀ y
      const U = symmetricEigen(K, n).vectors!;
      for (let j = 0; j < n; j++)
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let i = 0; i < n; i++) s += U[j * n + i]! * y[i * C + c]!;
          expect(Math.abs(p[j * C + c]! - s)).toBeLessThan(1e-12 * n);
        }
    }
    expect(() => factoredSymmetricEigen(new Float64Array(3), 2)).toThrow(InvalidArgumentError);
    expect(() => factoredSymmetricEigen(new Float64Array(4), 2).projectT(new Float64Array(3), 1)).toThrow(
      InvalidArgumentError,
    );
  });

  it('dispose() releases the factors: values stay, products are refused (kernels and loops, threads)', () => {
    const n = 70;
    const K = psdKernel(n, 50, 3);
    const y = Float64Array.from({ length: n }, (_, i) => Math.sin(i));
    for (const options of [{ backend: 'wasm' as const, threads: 2 }, { backend: 'js' as const }]) {
      const f = factoredSymmetricEigen(K, n, options);
      const values = f.values.slice();
      const before = f.projectT(y, 1);
      // U Uᵀ y = y before the release
      const back = f.combine(before, 1);
      for (let i = 0; i < n; i++) expect(Math.abs(back[i]! - y[i]!)).toBeLessThan(1e-13 * n);
      f.dispose();
      f.dispose(); // idempotent
      expect(f.values).toEqual(values);
      expect(() => f.projectT(y, 1)).toThrow(EntkError);
      expect(() => f.projectT(y, 1)).toThrow('factoredSymmetricEigen: used after dispose()');
      expect(() => f.combine(y, 1)).toThrow('factoredSymmetricEigen: used after dispose()');
    }
  });
});

describe('topEigenpairs (block Lanczos)', () => {
  const n = 400;
  const K = psdKernel(n, 300, 7, 40);
  const ref = reference(K, n);

  it('top 20 eigenvalues within 1e-6 relative of the full decomposition, vectors parallel', async () => {
    const top = await topEigenpairs(denseKernelMatrix(K, n), { k: 20 });
    for (let j = 0; j < 20; j++) {
      expect(Math.abs(top.values[j]! - ref.values[j]!) / ref.values[j]!).toBeLessThan(1e-6);
      let d = 0;
      for (let i = 0; i < n; i++) d += top.vectors![j * n + i]! * ref.vectors[j]![i]!;
      expect(Math.abs(d)).toBeGreaterThan(1 - 1e-6);
    }
    expect(Math.max(...top.residuals)).toBeLessThanOrEqual(1e-9);
    expect(top.passes).toBeGreaterThan(1);
  });

  it("defaults the tolerance to the products' precision: 1e-9 (float64), 1e-6 (float32 entries)", async () => {
    // Float32 products (f32 sums over blocks of 32 columns) carry ≈ 1e-7 relative error, so a 1e-9
    // residual can be out of reach (an eNTK store's float32 kernel stalled at 1.8e-9 after 500
    // passes); eigenvalues are still within 1e-6 of the float64 decomposition of the same entries.
    const K32 = Float32Array.from(K);
    const ref32 = reference(Float64Array.from(K32), n);
    const m32 = denseKernelMatrix(K32, n);
    expect(m32.precision).toBe('float32');
    expect(denseKernelMatrix(K, n).precision).toBe('float64');
    const top = await topEigenpairs(m32, { k: 20 });
    const worst = Math.max(...top.residuals);
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(worst).toBeGreaterThan(1e-9); // stopped at the float32 default, not at 1e-9
    for (let j = 0; j < 20; j++)
      expect(Math.abs(top.values[j]! - ref32.values[j]!) / ref32.values[j]!).toBeLessThan(1e-6);
  });

  it('converges with small blocks and thick restarts', async () => {
    const top = await topEigenpairs(denseKernelMatrix(K, n), { k: 10, blockSize: 3, maxBasis: 25 });
    expect(top.restarts).toBeGreaterThan(0);
    for (let j = 0; j < 10; j++)
      expect(Math.abs(top.values[j]! - ref.values[j]!) / ref.values[j]!).toBeLessThan(1e-6);
  });

  it('finds every eigenvalue of a low-rank matrix (invariant subspace) and of a tiny one', async () => {
    const low = psdKernel(60, 5, 1);
    const full = symmetricEigen(low, 60).values;
    const top = await topEigenpairs(denseKernelMatrix(low, 60), { k: 8, blockSize: 4 });
    for (let j = 0; j < 5; j++) expect(Math.abs(top.values[j]! - full[j]!) / full[0]!).toBeLessThan(1e-9);
    for (let j = 5; j < 8; j++) expect(Math.abs(top.values[j]!)).toBeLessThan(1e-9 * full[0]!);
    const tiny = await topEigenpairs(denseKernelMatrix(new Float64Array([2, 1, 1, 2]), 2), { k: 2 });
    expect(tiny.values[0]).toBeCloseTo(3, 12);
    expect(tiny.values[1]).toBeCloseTo(1, 12);
  });

  it('streamed from a float32 .npy in row panels equals the in-memory float32 matrix exactly', async () => {
    const k32 = Float32Array.from(K);
    const file = path.join(dir, 'k.npy');
    await writeNpy(file, { dtype: 'float32', shape: [n, n], data: k32 });
    // 7 rows per panel: panels do not divide n, and two are in flight
    const disk = await npyKernelMatrix(file, { panelBytes: 7 * n * 4, residency: 'stream' });
    // read once into WebAssembly memory (threads share the rows); panels of 7 rows for visits
    const resident = await npyKernelMatrix(file, { panelBytes: 7 * n * 4, residency: 'memory', threads: 3 });
    const memory = denseKernelMatrix(k32, n);
    const a = await topEigenpairs(disk, { k: 20 });
    const b = await topEigenpairs(memory, { k: 20 });
    const c = await topEigenpairs(resident, { k: 20 });
    expect(a.values).toEqual(b.values);
    expect(a.vectors).toEqual(b.vectors);
    expect(c.values).toEqual(b.values);
    expect(c.vectors).toEqual(b.vectors);
    expect(disk.passes).toBe(a.passes);
    expect(resident.passes).toBe(c.passes);
    const sa = await kernelMatrixStats(disk);
    const sb = await kernelMatrixStats(memory);
    expect(sa).toEqual(sb);
    expect(await kernelMatrixStats(resident)).toEqual(sb);
    // dispose() releases each (the resident one's WebAssembly memory holds all n² entries); further
    // products and panel visits are refused, naming the matrix
    const x = new Float64Array(n);
    for (const [m, name] of [
      [disk, file],
      [resident, file],
      [memory, 'memory'],
    ] as const) {
      m.dispose();
      m.dispose(); // idempotent
      const message = `KernelMatrix (${name}): used after dispose()`;
      await expect(m.multiply(x, 1)).rejects.toThrow(EntkError);
      await expect(m.multiply(x, 1)).rejects.toThrow(message);
      await expect(kernelMatrixStats(m)).rejects.toThrow(message);
    }
  });

  it('WebAssembly SIMD products equal the plain loops bit for bit (float32 and float64, ragged sizes)', async () => {
    expect(new PanelProduct(4, 'wasm').backend).toBe('wasm'); // Node has WebAssembly SIMD
    const threads = new PanelProduct(4, 'wasm', 3);
    expect(threads.threads).toBe(3);
    threads.dispose();
    const m = 203; // rows not a multiple of 4, columns not a multiple of the float32 block (32)
    const sub = K.subarray(0, m * m); // not symmetric, which a product does not need
    // b = 7: padded to 8 (eight-column float32 kernel); b = 5: padded to 8; b = 4, 12: four-column
    for (const b of [7, 5, 4, 12]) {
      const x = Float64Array.from({ length: m * b }, (_, i) => Math.sin(i));
      for (const data of [Float32Array.from(sub), Float64Array.from(sub)]) {
        const wasm = denseKernelMatrix(data, m, { backend: 'wasm' });
        const js = denseKernelMatrix(data, m, { backend: 'js' });
        const threaded = denseKernelMatrix(data, m, { backend: 'wasm', threads: 3 });
        // float64 loops; for float32 data the documented float32 order: products fl32(P·fl32(x))
        // summed in float32 over blocks of 32 columns, the block sums added in float64
        const f64 = new Float64Array(m * b);
        const ref = new Float64Array(m * b);
        const bound = new Float64Array(m * b);
        for (let i = 0; i < m; i++)
          for (let c = 0; c < b; c++) {
            let s = 0;
            let abs = 0;
            let blocks = 0;
            for (let j0 = 0; j0 < m; j0 += 32) {
              let part = 0;
              for (let j = j0; j < Math.min(m, j0 + 32); j++) {
                const t = data[i * m + j]! * x[j * b + c]!;
                s += t;
                abs += Math.abs(t);
                part = Math.fround(part + Math.fround(data[i * m + j]! * Math.fround(x[j * b + c]!)));
              }
              blocks += part;
            }
            f64[i * b + c] = s;
            ref[i * b + c] = data instanceof Float32Array ? blocks : s;
            bound[i * b + c] = 34 * 2 ** -24 * abs; // x rounding + 32 float32 additions + promotion
          }
        expect(await wasm.multiply(x, b)).toEqual(ref);
        expect(await js.multiply(x, b)).toEqual(ref);
        expect(await threaded.multiply(x, b)).toEqual(ref);
        for (let q = 0; q < m * b; q++) expect(Math.abs(ref[q]! - f64[q]!)).toBeLessThanOrEqual(bound[q]!);
      }
    }
  });

  it('a tall float64 panel (more rows than columns) equals the float64 loops', () => {
    const rows = 203;
    const inner = 6;
    const b = 5;
    const panel = Float64Array.from({ length: rows * inner }, (_, i) => Math.sin(0.3 * i));
    const x = Float64Array.from({ length: inner * b }, (_, i) => Math.cos(i));
    const ref = new Float64Array(rows * b);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < b; c++) {
        let s = 0;
        for (let j = 0; j < inner; j++) s += panel[r * inner + j]! * x[j * b + c]!;
        ref[r * b + c] = s;
      }
    const product = new PanelProduct(inner, 'wasm', 1);
    product.setVectors(x, b);
    const y = new Float64Array(rows * b);
    product.multiply(panel, rows, y, 0);
    expect(y).toEqual(ref);
  });

  it('products read on the threads (n mod 4 = 3, ragged panels) equal the in-memory product bit for bit', async () => {
    const m = 203;
    for (const data of [Float32Array.from(K.subarray(0, m * m)), Float64Array.from(K.subarray(0, m * m))]) {
      const file = path.join(dir, `ragged-${data.BYTES_PER_ELEMENT}.npy`);
      const dtype = data instanceof Float32Array ? 'float32' : 'float64';
      await writeNpy(file, { dtype, shape: [m, m], data });
      const memory = denseKernelMatrix(data, m, { backend: 'wasm', threads: 1 });
      const panelBytes = 9 * m * data.BYTES_PER_ELEMENT; // 9 rows: 8 per thread panel
      const sources = [
        await npyKernelMatrix(file, { residency: 'stream', threads: 2, panelBytes }),
        await npyKernelMatrix(file, { residency: 'stream', threads: 3, panelBytes: 1 }),
        await npyKernelMatrix(file, { residency: 'memory', threads: 2, panelBytes }),
        await npyKernelMatrix(file, { residency: 'stream', backend: 'js' }),
      ];
      for (const b of [3, 8]) {
        const x = Float64Array.from({ length: m * b }, (_, i) => Math.cos(0.7 * i));
        const ref = await memory.multiply(x, b);
        // twice: the resident matrix is read during its first product, then used in place
        for (const source of sources)
          for (let rep = 0; rep < 2; rep++) expect(await source.multiply(x, b)).toEqual(ref);
      }
      for (const source of sources) expect(source.passes).toBe(4);
      expect(await kernelMatrixStats(sources[2]!)).toEqual(await kernelMatrixStats(memory));
    }
  });

  it('float32 kernels: top 20 within 1e-6 relative of the full float64 decomposition of the same entries', async () => {
    // a fast-decaying spectrum: λ_20 ≪ λ_0, so float32 block sums must not disturb the small ones
    const k32 = Float32Array.from(psdKernel(n, 300, 9, 8));
    const full = reference(Float64Array.from(k32), n);
    expect(full.values[19]! / full.values[0]!).toBeLessThan(0.1);
    const file = path.join(dir, 'k32.npy');
    await writeNpy(file, { dtype: 'float32', shape: [n, n], data: k32 });
    for (const residency of ['stream', 'memory'] as const) {
      const top = await topEigenpairs(await npyKernelMatrix(file, { residency }), { k: 20 });
      for (let j = 0; j < 20; j++)
        expect(Math.abs(top.values[j]! - full.values[j]!) / full.values[j]!).toBeLessThan(1e-6);
    }
  });

  it('bad input: k beyond n, a non-square or truncated file', async () => {
    await expect(topEigenpairs(denseKernelMatrix(K, n), { k: n + 1 })).rejects.toThrow(InvalidArgumentError);
    const rect = path.join(dir, 'rect.npy');
    await writeNpy(rect, { dtype: 'float32', shape: [3, 4], data: new Float32Array(12) });
    await expect(npyKernelMatrix(rect)).rejects.toThrow(/square/);
    const cut = path.join(dir, 'cut.npy');
    await writeNpy(cut, { dtype: 'float64', shape: [4, 4], data: new Float64Array(16) });
    const bytes = await fs.readFile(cut);
    await fs.writeFile(cut, bytes.subarray(0, bytes.length - 8));
    await expect(npyKernelMatrix(cut)).rejects.toThrow(CorruptFileError);
    await expect(npyKernelMatrix(cut, { residency: 'memory' })).rejects.toThrow(CorruptFileError);
    // a file cut after it was opened: the second thread's panel read fails, as a corrupt file
    const later = path.join(dir, 'later.npy');
    await writeNpy(later, { dtype: 'float32', shape: [8, 8], data: new Float32Array(64) });
    const opened = await npyKernelMatrix(later, { residency: 'stream', threads: 2, panelBytes: 4 * 8 * 4 });
    await fs.truncate(later, (await fs.stat(later)).size - 40);
    await expect(opened.multiply(new Float64Array(8), 1)).rejects.toThrow(CorruptFileError);
    await expect(npyKernelMatrix(rect, { residency: 'disk' as 'stream' })).rejects.toThrow(
      InvalidArgumentError,
    );
  });

  it.runIf(RUN_SCIPY_TESTS)('agrees with scipy.linalg.eigh on the exported file', async () => {
    const file = path.join(dir, 'k64.npy');
    await writeNpy(file, { dtype: 'float64', shape: [n, n], data: K });
    const scipy = JSON.parse(
      python(
        'import scipy.linalg\nK = np.load(sys.argv[1])\nw = scipy.linalg.eigh(K, eigvals_only=True)[::-1]\nprint(json.dumps(w[:20].tolist()))',
        file,
      ),
    ) as number[];
    const top = await topEigenpairs(await npyKernelMatrix(file), { k: 20 });
    for (let j = 0; j < 20; j++) expect(Math.abs(top.values[j]! - scipy[j]!) / scipy[j]!).toBeLessThan(1e-6);
  });
});

describe('kernelSpectrum', () => {
  it('hand-computed summary of a diagonal kernel', async () => {
    // K = diag(4, 2, 1, 1): tr 8, ‖K‖² 22, r_eff = 64/22, entropy rank exp(H(½, ¼, ⅛, ⅛)), κ = 4
    const K = new Float64Array(16);
    [4, 2, 1, 1].forEach((v, i) => {
      K[i * 4 + i] = v;
    });
    // labels [0, 1, 0, 1]: centred one-hot columns ±½; energy lies on e_0..e_3 equally
    const targets = oneHot([0, 1, 0, 1], 2);
    const s = await kernelSpectrum(denseKernelMatrix(K, 4), { k: 2, targets, method: 'full' });
    expect(s.top).toEqual([4, 2]);
    expect(s.trace).toBe(8);
    expect(s.frobenius).toBeCloseTo(Math.sqrt(22), 14);
    expect(s.participationRatio).toBeCloseTo(64 / 22, 14);
    expect(s.effectiveRank).toBe(s.participationRatio); // the earlier name of the same number
    const p = [0.5, 0.25, 0.125, 0.125];
    expect(s.entropyEffectiveRank).toBeCloseTo(Math.exp(-p.reduce((a, q) => a + q * Math.log(q), 0)), 12);
    expect(s.conditionNumber).toBe(4);
    expect(s.topTraceFraction).toBeCloseTo(6 / 8, 14);
    expect(s.labelEnergy![0]).toBeCloseTo(0.25, 12);
    expect(s.labelEnergy![1]).toBeCloseTo(0.5, 12);
  });

  it('Lanczos and full decompositions agree; label energy of all eigenvectors is 1', async () => {
    const n = 120;
    const K = psdKernel(n, 80, 11);
    const targets = oneHot(randomLabels(n, 4, 2), 4);
    const full = await kernelSpectrum(denseKernelMatrix(K, n), { k: n, targets, method: 'full' });
    const lanczos = await kernelSpectrum(denseKernelMatrix(K, n), { k: 15, targets, method: 'lanczos' });
    expect(full.labelEnergy![n - 1]).toBeCloseTo(1, 10);
    for (let j = 0; j < 15; j++) {
      expect(Math.abs(lanczos.top[j]! - full.top[j]!) / full.top[0]!).toBeLessThan(1e-9);
      expect(Math.abs(lanczos.labelEnergy![j]! - full.labelEnergy![j]!)).toBeLessThan(1e-6);
    }
    expect(lanczos.entropyEffectiveRank).toBeNull();
    expect(lanczos.effectiveRank).toBeCloseTo(full.effectiveRank, 12);
  });
});
