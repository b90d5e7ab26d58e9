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
 * For a full kernel's class targets (YYᵀ) ⊗ I_V, {@link fullKernelTargetAlignment} uses their block
 * structure instead of the product with the V² target columns (O(N²V²) instead of O(N²V⁴ + NV⁵)).
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
 * kernel: target Gram YYᵀ ⊗ I_V, docs/theory.md §Kernel-target alignment — {@link fullKernelTargetAlignment}
 * gives the same value from the labels in O(N²V²) instead of O(N²V⁴ + NV⁵) with Y ⊗ I_V).
 * NaN when either centred matrix is zero. Pass `stats` to reuse a statistics pass.
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
 * Centred kernel–target alignment A(K, (YYᵀ) ⊗ I_V) of a full point-major kernel K [N·V, N·V] (row
 * u·V + i = output i of point u) with the class targets of integer `labels` [N] — the same value
 * as {@link kernelTargetAlignment} with the targets Y ⊗ I_V (`oneHotKron(labels, V)`; H = I − 11ᵀ/(NV)
 * centres all N·V rows; docs/theory.md §Kernel-target alignment) — without forming the targets: one
 * pass of statistics (skipped when `stats` is given) and one pass reading the entries
 * K[(u,i),(v,i)] of same-class pairs; O(N²V²) time, O(N) memory beyond `stats`. NaN when either
 * centred matrix is zero.
 *
 * With T = (YYᵀ) ⊗ I_V, n = NV, n_c the size of class c, r = K1 the row sums, B = Σ_{u,i} Σ_{v: y_v = y_u} K[(u,i),(v,i)]:
 * T1 = (n_{y_u}) per row, so ⟨HKH, HTH⟩ = ⟨K, T⟩ − (2/n)(K1)ᵀ(T1) + (1ᵀK1)(1ᵀT1)/n²
 *   = B − (2/n) Σ_{u,i} n_{y_u} r_(u,i) + (Σ r) V S₂/n²,
 * and ‖HTH‖_F² = ‖T‖² − (2/n)‖T1‖² + (1ᵀT1)²/n² = V S₂ − 2 S₃/N + S₂²/N², with S_p = Σ_c n_c^p.
 *
 * @example
 *   await fullKernelTargetAlignment(await npyKernelMatrix(`${store}/kernel.npy`), labels, 10)
 */
export async function fullKernelTargetAlignment(
  matrix: KernelMatrix,
  labels: ArrayLike<number>,
  V: number,
  stats?: KernelMatrixStats,
): Promise<number> {
  assertArgument(
    Number.isInteger(V) && V >= 1 && matrix.size % V === 0,
    'V',
    V,
    `a positive integer dividing the kernel size ${matrix.size} (outputs per point)`,
  );
  const N = labels?.length;
  assertArgument(
    Number.isInteger(N) && N >= 1 && N * V === matrix.size,
    'labels',
    labels,
    `${matrix.size / V} integer labels (one per point of the [${matrix.size}, ${matrix.size}] kernel, V = ${V})`,
  );
  // Class index of every point; the members of every class.
  const classOf = new Map<number, number>();
  const cls = new Int32Array(N);
  for (let u = 0; u < N; u++) {
    const y = labels[u]!;
    assertArgument(
      Number.isInteger(y) && y >= 0,
      `labels[${u}]`,
      y,
      'an integer class label ≥ 0 (a kernel store marks unlabelled points with −1: they have no class)',
    );
    let c = classOf.get(y);
    if (c === undefined) {
      c = classOf.size;
      classOf.set(y, c);
    }
    cls[u] = c;
  }
  const counts = new Int32Array(classOf.size);
  for (let u = 0; u < N; u++) counts[cls[u]!]!++;
  const offsets = new Int32Array(classOf.size + 1);
  for (let c = 0; c < counts.length; c++) offsets[c + 1] = offsets[c]! + counts[c]!;
  const members = new Int32Array(N);
  const fill = offsets.slice(0, counts.length);
  for (let u = 0; u < N; u++) members[fill[cls[u]!]!++] = u;

  const n = N * V;
  assertArgument(
    stats === undefined || stats.rowSums.length === n,
    'stats',
    stats?.rowSums,
    `the statistics of this [${n}, ${n}] kernel (${n} row sums)`,
  );
  const s = stats ?? (await kernelMatrixStats(matrix));
  // B = ⟨K, T⟩: for row (u, i), the entries (v, i) of the points v of u's class.
  let B = 0;
  await matrix.forEachPanel((start, rows, panel) => {
    for (let r = 0; r < rows; r++) {
      const row = start + r;
      const u = Math.floor(row / V);
      const base = r * n + (row - u * V);
      const c = cls[u]!;
      let sum = 0;
      for (let m = offsets[c]!; m < offsets[c + 1]!; m++) sum += panel[base + members[m]! * V]!;
      B += sum;
    }
  });
  let weighted = 0; // Σ_{u,i} n_{y_u} r_(u,i)
  let total = 0; // Σ r = 1ᵀK1
  for (let row = 0; row < n; row++) {
    const r = s.rowSums[row]!;
    weighted += counts[cls[Math.floor(row / V)]!]! * r;
    total += r;
  }
  let S2 = 0;
  let S3 = 0;
  for (const m of counts) {
    S2 += m * m;
    S3 += m * m * m;
  }
  const inner = B - (2 / n) * weighted + (total * V * S2) / (n * n);
  // HTH = 0 exactly when T is constant: one class and V = 1.
  const t2 = V === 1 && counts.length === 1 ? 0 : Math.max(0, V * S2 - (2 * S3) / N + (S2 / N) ** 2);
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
