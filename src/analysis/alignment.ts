/**
 * Kernel alignment (Cortes, Mohri & Rostamizadeh 2012, "Algorithms for learning kernels based on
 * centered alignment"): with the centring matrix H = I − 11ᵀ/n and K_c = H K H,
 *
 *     A(K, K′) = ⟨K_c, K′_c⟩_F / (‖K_c‖_F ‖K′_c‖_F)        (∈ [−1, 1]; [0, 1] for PSD kernels)
 *
 * - kernel–target alignment: K′ = Y Yᵀ for targets Y [n, C] (one-hot labels: K′_ij = [y_i = y_j]);
 * - CKA between two kernels (e.g. two checkpoints): A(K_s, K_t), the linear CKA of Kornblith et
 *   al. 2019 written on Gram matrices.
 *
 * Everything is computed without forming centred matrices:
 * ⟨H A H, B⟩ = ⟨A, B⟩ − (2/n) (A1)ᵀ(B1) + (1ᵀA1)(1ᵀB1)/n² (A, B symmetric), and for a target
 * ⟨K_c, YYᵀ⟩ = Σ_c Ŷ_cᵀ K Ŷ_c with Ŷ = H Y, ‖H YYᵀ H‖_F = ‖ŶᵀŶ‖_F. Kernel–target alignment works
 * on any {@link KernelMatrix} (two passes: statistics, one block product), so on on-disk kernels too.
 */
import { assertArgument } from '../errors.js';
import {
  denseKernelMatrix,
  type KernelMatrix,
  type KernelMatrixStats,
  kernelMatrixStats,
  usingKernelMatrix,
} from './matrix.js';

/** Targets Y [n, C] with the column means removed (Ŷ = H Y). */
export function centerColumns(y: Float64Array, n: number): Float64Array {
  assertArgument(y.length % n === 0 && y.length > 0, 'targets', y, `an [${n}, C] array`);
  const C = y.length / n;
  const out = Float64Array.from(y);
  for (let c = 0; c < C; c++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += y[i * C + c]!;
    mean /= n;
    for (let i = 0; i < n; i++) out[i * C + c] = out[i * C + c]! - mean;
  }
  return out;
}

/** ‖H K H‖_F² from one pass of statistics. */
export function centeredFrobenius2(stats: KernelMatrixStats): number {
  const n = stats.rowSums.length;
  let r2 = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    r2 += stats.rowSums[i]! ** 2;
    total += stats.rowSums[i]!;
  }
  return Math.max(0, stats.frobenius2 - (2 / n) * r2 + (total * total) / (n * n));
}

/**
 * Centred kernel–target alignment A(K, Y Yᵀ) of a kernel with targets Y [n, C] (row-major; e.g.
 * one-hot labels for a scalar kernel, or Y ⊗ I_V [N·V, V·V] (oneHotKron) for a full point-major
 * kernel: target Gram YYᵀ ⊗ I_V, docs/theory.md §Kernel-target alignment). NaN when either centred matrix is zero. Pass `stats` to reuse a statistics pass.
 */
export async function kernelTargetAlignment(
  matrix: KernelMatrix,
  targets: Float64Array,
  stats?: KernelMatrixStats,
): Promise<number> {
  const n = matrix.size;
  assertArgument(
    targets instanceof Float64Array && targets.length % n === 0 && targets.length > 0,
    'targets',
    targets,
    `a Float64Array [${n}, C]`,
  );
  const C = targets.length / n;
  const s = stats ?? (await kernelMatrixStats(matrix));
  const yc = centerColumns(targets, n);
  const ky = await matrix.multiply(yc, C);
  let inner = 0;
  for (let i = 0; i < n * C; i++) inner += yc[i]! * ky[i]!;
  // ‖ŶᵀŶ‖_F
  let t2 = 0;
  for (let a = 0; a < C; a++) {
    for (let b = 0; b < C; b++) {
      let g = 0;
      for (let i = 0; i < n; i++) g += yc[i * C + a]! * yc[i * C + b]!;
      t2 += g * g;
    }
  }
  const denominator = Math.sqrt(centeredFrobenius2(s) * t2);
  return denominator > 0 ? inner / denominator : Number.NaN;
}

/**
 * Centred alignment (linear CKA) A(K_a, K_b) of two symmetric n×n matrices held in memory
 * (row-major). NaN when either centred matrix is zero.
 *
 * @example
 *   centeredAlignment(kStep0, kStep900, n)   // 1: same kernel up to scale and centring
 */
export function centeredAlignment(a: ArrayLike<number>, b: ArrayLike<number>, n: number): number {
  assertArgument(Number.isInteger(n) && n >= 1, 'n', n, 'a positive integer');
  assertArgument(a?.length === n * n, 'a', a, `an ${n}×${n} matrix`);
  assertArgument(b?.length === n * n, 'b', b, `an ${n}×${n} matrix (the size of a)`);
  const ra = new Float64Array(n);
  const rb = new Float64Array(n);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    let sa = 0;
    let sb = 0;
    for (let j = i * n; j < (i + 1) * n; j++) {
      const x = a[j]!;
      const y = b[j]!;
      sa += x;
      sb += y;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    ra[i] = sa;
    rb[i] = sb;
  }
  let rab = 0;
  let raa = 0;
  let rbb = 0;
  let ta = 0;
  let tb = 0;
  for (let i = 0; i < n; i++) {
    rab += ra[i]! * rb[i]!;
    raa += ra[i]! * ra[i]!;
    rbb += rb[i]! * rb[i]!;
    ta += ra[i]!;
    tb += rb[i]!;
  }
  const c = (xy: number, rxy: number, tx: number, ty: number) => xy - (2 / n) * rxy + (tx * ty) / (n * n);
  const denominator = Math.sqrt(Math.max(0, c(aa, raa, ta, ta)) * Math.max(0, c(bb, rbb, tb, tb)));
  return denominator > 0 ? c(ab, rab, ta, tb) / denominator : Number.NaN;
}

/** Kernel–target alignment of an in-memory symmetric matrix (see {@link kernelTargetAlignment}). */
export function kernelTargetAlignmentDense(
  k: Float32Array | Float64Array,
  n: number,
  targets: Float64Array,
): Promise<number> {
  return usingKernelMatrix(denseKernelMatrix(k, n), (matrix) => kernelTargetAlignment(matrix, targets));
}
