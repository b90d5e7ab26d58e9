/**
 * Spectral summary of a kernel matrix: the top-k eigenvalues (block Lanczos, ./lanczos.ts, or a
 * full dense decomposition for small matrices), trace, effective ranks, condition number and how
 * much of the (centred) label signal lies in the top eigenvectors.
 *
 * Definitions (λ_i the eigenvalues, clipped at 0 where a ratio needs non-negative values):
 * - **participation ratio** (`participationRatio`; also under its earlier name `effectiveRank`)
 *   (Σ λ_i)² / Σ λ_i² = tr(K)² / ‖K‖_F² — exact from one pass (no eigenvalues needed), between 1
 *   (rank one) and n (K ∝ I);
 * - **entropy effective rank** (`entropyEffectiveRank`, the effective rank of docs/theory.md
 *   §Effective rank; Roy & Vetterli 2007) exp(−Σ p_i log p_i), p_i = λ_i / Σ λ — needs the whole
 *   spectrum: reported only for a full decomposition, else null;
 * - **condition number** λ_max / λ_min — full decomposition only (Infinity when λ_min ≤ 0), else null;
 * - **label energy** of the top j eigenvectors: Σ_{i<j} ‖u_iᵀ Ŷ‖² / ‖Ŷ‖_F² for the centred targets
 *   Ŷ = H Y (the fraction of the label signal a kernel method fits first: gradient flow on the MSE
 *   loss learns the component along u_i at rate λ_i/N);
 * - **top-k trace fraction** Σ_{i<k} λ_i / tr K.
 */
import { assertArgument } from '../errors.js';
import { centerColumns } from './alignment.js';
import { symmetricEigen } from './eigh.js';
import { type TopEigenOptions, topEigenpairs } from './lanczos.js';
import { type KernelMatrix, type KernelMatrixStats, kernelMatrixData, kernelMatrixStats } from './matrix.js';

/** Options of {@link kernelSpectrum}. */
export interface KernelSpectrumOptions extends Omit<TopEigenOptions, 'k' | 'vectors'> {
  /** Eigenvalues to report. Default 20 (at most n). */
  k?: number;
  /** Targets Y [n, C] for the label energy (e.g. one-hot labels). */
  targets?: Float64Array;
  /**
   * 'full' (dense decomposition in memory), 'lanczos' (iterative, streams the matrix), or 'auto':
   * full when n ≤ {@link FULL_SPECTRUM_MAX}. Default 'auto'.
   */
  method?: 'full' | 'lanczos' | 'auto';
  /** Reuse a statistics pass (diagonal, row sums, trace, Frobenius). */
  stats?: KernelMatrixStats;
}

/** Largest n for which 'auto' computes the whole spectrum (a few seconds in float64 JS). */
export const FULL_SPECTRUM_MAX = 1500;

/** What {@link kernelSpectrum} reports. */
export interface KernelSpectrum {
  /** n */
  size: number;
  method: 'full' | 'lanczos';
  /** The top k eigenvalues, descending. */
  top: number[];
  /** tr K */
  trace: number;
  /** ‖K‖_F */
  frobenius: number;
  /** Participation ratio tr(K)² / ‖K‖_F² (docs/theory.md §Effective rank; not the entropy rank). */
  participationRatio: number;
  /**
   * The same number as {@link participationRatio}, under its earlier name (kept so that analysis.json
   * files and code reading `effectiveRank` keep working).
   * @deprecated use participationRatio (or entropyEffectiveRank for the entropy effective rank).
   */
  effectiveRank: number;
  /** The effective rank of docs/theory.md §Effective rank: exp(entropy of λ/Σλ); null unless method 'full'. */
  entropyEffectiveRank: number | null;
  /** λ_max / λ_min; null unless method 'full'. */
  conditionNumber: number | null;
  /** Σ_{i<k} λ_i / tr K */
  topTraceFraction: number;
  /** Cumulative label energy of the top 1..k eigenvectors (null without targets). */
  labelEnergy: number[] | null;
  /** Passes over the matrix (statistics + products). */
  passes: number;
  /** Largest relative residual ‖K u − λ u‖/λ_max of the reported pairs (0 for 'full' up to rounding). */
  maxResidual: number;
}

/**
 * The spectral summary of a symmetric kernel matrix (module comment for the definitions).
 *
 * @example
 *   const K = await npyKernelMatrix(`${store}/kernel.npy`);
 *   const s = await kernelSpectrum(K, { k: 20, targets: oneHot(labels, 10) });
 *   s.top[0], s.effectiveRank, s.labelEnergy?.[9]
 */
export async function kernelSpectrum(
  matrix: KernelMatrix,
  options: KernelSpectrumOptions = {},
): Promise<KernelSpectrum> {
  const n = matrix.size;
  const k = Math.min(options.k ?? 20, n);
  assertArgument(Number.isInteger(k) && k >= 1, 'k', options.k, 'a positive integer');
  const method = options.method ?? 'auto';
  assertArgument(
    ['full', 'lanczos', 'auto'].includes(method),
    'method',
    method,
    "'full', 'lanczos' or 'auto'",
  );
  const targets = options.targets;
  if (targets !== undefined) {
    assertArgument(
      targets instanceof Float64Array && targets.length % n === 0 && targets.length > 0,
      'targets',
      targets,
      `a Float64Array [${n}, C]`,
    );
  }
  const passes0 = matrix.passes;
  const stats = options.stats ?? (await kernelMatrixStats(matrix));
  const useFull = method === 'full' || (method === 'auto' && n <= FULL_SPECTRUM_MAX);
  let values: Float64Array;
  let vectors: Float64Array | undefined;
  let entropyEffectiveRank: number | null = null;
  let conditionNumber: number | null = null;
  let maxResidual = 0;
  if (useFull) {
    const eig = symmetricEigen(await kernelMatrixData(matrix), n, { vectors: targets !== undefined });
    values = eig.values.slice(0, k);
    vectors = eig.vectors?.subarray(0, k * n);
    let total = 0;
    for (const l of eig.values) total += Math.max(l, 0);
    let h = 0;
    for (const l of eig.values) {
      const p = Math.max(l, 0) / total;
      if (p > 0) h -= p * Math.log(p);
    }
    entropyEffectiveRank = total > 0 ? Math.exp(h) : Number.NaN;
    const smallest = eig.values[n - 1]!;
    conditionNumber = smallest > 0 ? eig.values[0]! / smallest : Number.POSITIVE_INFINITY;
  } else {
    const { k: _k, targets: _t, method: _m, stats: _s, ...lanczos } = options;
    const top = await topEigenpairs(matrix, { ...lanczos, k, vectors: targets !== undefined });
    values = top.values;
    vectors = top.vectors;
    maxResidual = top.residuals.reduce((a, r) => Math.max(a, r), 0);
  }
  let labelEnergy: number[] | null = null;
  if (targets !== undefined && vectors) {
    const C = targets.length / n;
    const yc = centerColumns(targets, n);
    let total = 0;
    for (let i = 0; i < yc.length; i++) total += yc[i]! * yc[i]!;
    labelEnergy = [];
    let cumulative = 0;
    for (let j = 0; j < k; j++) {
      for (let c = 0; c < C; c++) {
        let p = 0;
        for (let i = 0; i < n; i++) p += vectors[j * n + i]! * yc[i * C + c]!;
        cumulative += p * p;
      }
      labelEnergy.push(total > 0 ? cumulative / total : Number.NaN);
    }
  }
  let topSum = 0;
  for (const l of values) topSum += l;
  const participationRatio = stats.frobenius2 > 0 ? stats.trace ** 2 / stats.frobenius2 : Number.NaN;
  return {
    size: n,
    method: useFull ? 'full' : 'lanczos',
    top: Array.from(values),
    trace: stats.trace,
    frobenius: Math.sqrt(stats.frobenius2),
    participationRatio,
    effectiveRank: participationRatio,
    entropyEffectiveRank,
    conditionNumber,
    topTraceFraction: stats.trace !== 0 ? topSum / stats.trace : Number.NaN,
    labelEnergy,
    passes: matrix.passes - passes0,
    maxResidual,
  };
}
