/**
 * The top-k eigenpairs of a large symmetric kernel by block Lanczos with full
 * reorthogonalisation and thick restarts.
 *
 * Each iteration multiplies one block of b orthonormal vectors by K — one pass over the matrix,
 * which for an on-disk kernel ({@link npyKernelMatrix}) is one read of the file serving b
 * matrix–vector products. The new block is orthogonalised against the whole basis twice (block
 * Gram–Schmidt, "twice is enough"), so the Rayleigh quotient `H = Qᵀ K Q` is known exactly from the
 * projection coefficients and the Ritz pairs are those of H. With `A Q = Q H + Q_next R Eᵀ` the
 * residual of a Ritz pair (θ, Q s) is `‖R s_last‖` (s_last: the components on the last block), so
 * convergence is read off without another product. When the basis would exceed `maxBasis` the top
 * Ritz vectors are kept (thick restart: H becomes diag(θ), the pending block stays orthogonal to
 * them) and the iteration continues.
 *
 * Memory: the matrix source's panels + (maxBasis + b) vectors of length n.
 */
import { assertArgument, EntkError } from '../errors.js';
import { Rng } from '../util/index.js';
import { symmetricEigen } from './eigh.js';
import type { KernelMatrix } from './matrix.js';
import { PanelProduct } from './wasm-panel.js';

/** Options of {@link topEigenpairs}. */
export interface TopEigenOptions {
  /** Number of eigenpairs (largest eigenvalues). Default 20 (at most n). */
  k?: number;
  /**
   * Vectors per block (per pass over the matrix). Default min(8, n): on the 20000² float32
   * benchmark kernel 8 takes 18 passes against 27 with 4 and less time in total — a pass costs one
   * read of the matrix (from disk or memory) plus b products, and the float32 product of 8 vectors
   * costs ≈ 1.5× that of 4.
   */
  blockSize?: number;
  /** Largest basis before a thick restart. Default min(n, max(3k, k + 4·blockSize)). */
  maxBasis?: number;
  /**
   * Converged when every one of the k residuals ‖K u − θ u‖ ≤ tolerance · |θ_max|. Default 1e-9,
   * or 1e-6 for a matrix whose products run in float32 (`precision: 'float32'`, ≈ 1e-7 relative
   * error per product: smaller residuals may be out of reach). The eigenvalues' error is of the
   * order of the squared residual over the gap (symmetric K), plus the products' error.
   */
  tolerance?: number;
  /** Give up (EntkError) after this many passes over the matrix. Default 500. */
  maxPasses?: number;
  /** Seed of the random starting block. Default 0. */
  seed?: number;
  /** Return the eigenvectors. Default true. */
  vectors?: boolean;
  /** Called after every pass with the pass count and the largest relative residual of the top k. */
  onPass?: (pass: number, maxResidual: number) => void;
}

/** The top-k eigenpairs of a symmetric matrix. */
export interface TopEigenResult {
  /** λ_0 ≥ … ≥ λ_{k−1}. */
  values: Float64Array;
  /** Eigenvectors as rows [k, n] (`vectors[j·n + i]`), orthonormal; absent with `vectors: false`. */
  vectors?: Float64Array;
  /** ‖K u_j − λ_j u_j‖ / |λ_0| of each pair. */
  residuals: Float64Array;
  /** Passes over the matrix (block products). */
  passes: number;
  /** Thick restarts performed. */
  restarts: number;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function axpy(alpha: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + alpha * x[i]!;
}

/** Orthogonalise `w` against `basis` (twice), returning the coefficients added up. */
function project(w: Float64Array, basis: Float64Array[], coeffs: Float64Array): void {
  coeffs.fill(0);
  for (let rep = 0; rep < 2; rep++) {
    for (let i = 0; i < basis.length; i++) {
      const h = dot(basis[i]!, w);
      axpy(-h, basis[i]!, w);
      coeffs[i] = coeffs[i]! + h;
    }
  }
}

/**
 * The first `count` Ritz vectors as rows [count, n]: u_j = Σ_i S[j, i] q_i with S [·, m] row-major
 * (m = basis size), i.e. Uᵀ = S Qᵀ — one panel product ({@link PanelProduct}: float64 SIMD, each
 * entry the same sum over i in increasing order as a loop would give).
 */
function ritzVectors(
  basis: Float64Array[],
  S: Float64Array,
  count: number,
  n: number,
  products: Map<number, PanelProduct>,
): Float64Array {
  const m = basis.length;
  const qt = new Float64Array(m * n);
  for (let i = 0; i < m; i++) qt.set(basis[i]!, i * n);
  let product = products.get(m);
  if (!product) {
    product = new PanelProduct(m, 'auto', 1);
    products.set(m, product);
  }
  product.setVectors(qt, n);
  const out = new Float64Array(count * n);
  product.multiply(S.subarray(0, count * m), count, out, 0);
  return out;
}

/**
 * Top-k eigenpairs (largest eigenvalues) of the symmetric matrix behind `matrix`.
 *
 * @example
 *   const K = await npyKernelMatrix('runs/d/kernels/all/step-000900/kernel.npy');
 *   const { values, vectors } = await topEigenpairs(K, { k: 20 });
 */
export async function topEigenpairs(
  matrix: KernelMatrix,
  options: TopEigenOptions = {},
): Promise<TopEigenResult> {
  const n = matrix.size;
  const k = options.k ?? Math.min(20, n);
  assertArgument(
    Number.isInteger(k) && k >= 1 && k <= n,
    'k',
    k,
    `an integer in [1, ${n}] (the matrix size)`,
  );
  const b0 = options.blockSize ?? Math.min(n, 8);
  assertArgument(Number.isInteger(b0) && b0 >= 1 && b0 <= n, 'blockSize', b0, `an integer in [1, ${n}]`);
  const maxBasis = options.maxBasis ?? Math.min(n, Math.max(3 * k, k + 4 * b0));
  assertArgument(
    Number.isInteger(maxBasis) && maxBasis >= Math.min(n, k + b0) && maxBasis <= n,
    'maxBasis',
    maxBasis,
    `an integer in [min(n, k + blockSize) = ${Math.min(n, k + b0)}, n = ${n}]`,
  );
  const tolerance = options.tolerance ?? (matrix.precision === 'float32' ? 1e-6 : 1e-9);
  assertArgument(tolerance > 0 && tolerance < 1, 'tolerance', tolerance, 'a number in (0, 1)');
  const maxPasses = options.maxPasses ?? 500;
  assertArgument(Number.isInteger(maxPasses) && maxPasses >= 1, 'maxPasses', maxPasses, 'a positive integer');
  const rng = new Rng(options.seed ?? 0);

  let basis: Float64Array[] = [];
  // H = Qᵀ K Q over the basis, stored densely with capacity maxBasis.
  const cap = maxBasis;
  let H = new Float64Array(cap * cap);
  const coeffs = new Float64Array(cap + b0);
  const products = new Map<number, PanelProduct>(); // for the Ritz vectors, by basis size
  let scale = 0; // running estimate of ‖K‖ (largest |θ| seen), for deflation tests

  /**
   * Orthonormalise candidate vectors against the basis (unless `orthogonal`: they already are) and
   * each other; replace dependent ones.
   */
  const orthonormalize = (
    candidates: Float64Array[],
    R: Float64Array | null,
    b: number,
    orthogonal = false,
  ): Float64Array[] => {
    const out: Float64Array[] = [];
    for (let c = 0; c < candidates.length; c++) {
      let w = candidates[c]!;
      const before = Math.sqrt(dot(w, w));
      if (!orthogonal) project(w, basis, coeffs);
      for (let rep = 0; rep < 2; rep++) {
        for (let c2 = 0; c2 < out.length; c2++) {
          const r = dot(out[c2]!, w);
          axpy(-r, out[c2]!, w);
          if (R) R[c2 * b + c] = R[c2 * b + c]! + r;
        }
      }
      let norm = Math.sqrt(dot(w, w));
      if (R) R[out.length * b + c] = norm;
      if (!(norm > 1e-10 * Math.max(before, scale, Number.MIN_VALUE))) {
        // Dependent direction (an invariant subspace was found): continue with a random one,
        // unless the basis already spans the whole space.
        if (R) R[out.length * b + c] = 0;
        if (basis.length + out.length >= n) continue;
        w = Float64Array.from({ length: n }, () => rng.normal());
        project(w, basis, coeffs);
        for (let rep = 0; rep < 2; rep++) for (const q of out) axpy(-dot(q, w), q, w);
        norm = Math.sqrt(dot(w, w));
        if (!(norm > 0)) throw new EntkError('topEigenpairs: could not extend the basis');
      }
      for (let i = 0; i < n; i++) w[i] = w[i]! / norm;
      out.push(w);
    }
    return out;
  };

  const initial = Array.from({ length: b0 }, () => Float64Array.from({ length: n }, () => rng.normal()));
  let pending = orthonormalize(initial, null, b0);
  let passes = 0;
  let restarts = 0;
  for (;;) {
    const b = pending.length;
    const x = new Float64Array(n * b);
    for (let c = 0; c < b; c++) {
      const v = pending[c]!;
      for (let i = 0; i < n; i++) x[i * b + c] = v[i]!;
    }
    const y = await matrix.multiply(x, b);
    passes++;
    const w = Array.from({ length: b }, (_, c) => {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = y[i * b + c]!;
      return v;
    });
    const offset = basis.length;
    basis = basis.concat(pending);
    const m = basis.length;
    // Column block of H: coefficients of K q_c on the basis (the residual stays in w_c).
    for (let c = 0; c < b; c++) {
      project(w[c]!, basis, coeffs);
      for (let i = 0; i < m; i++) {
        if (i < offset) {
          H[i * cap + offset + c] = coeffs[i]!;
          H[(offset + c) * cap + i] = coeffs[i]!;
        } else if (i - offset <= c) {
          // Diagonal block: symmetrise the two estimates of the same entry.
          const other = i - offset === c ? coeffs[i]! : (H[(offset + c) * cap + i]! + coeffs[i]!) / 2;
          H[i * cap + offset + c] = other;
          H[(offset + c) * cap + i] = other;
        } else {
          H[i * cap + offset + c] = coeffs[i]!; // provisional, averaged when column i is done
        }
      }
    }
    // Next block: QR of the residuals, W = Q_next R (projected off the basis twice above already).
    const R = new Float64Array(b * b);
    const next = orthonormalize(w, R, b, true);
    // Rayleigh–Ritz on H.
    const Hm = new Float64Array(m * m);
    for (let i = 0; i < m; i++) Hm.set(H.subarray(i * cap, i * cap + m), i * m);
    const ritz = symmetricEigen(Hm, m);
    scale = Math.max(scale, Math.abs(ritz.values[0]!), Math.abs(ritz.values[m - 1]!));
    const residuals = new Float64Array(Math.min(k, m));
    const nb = next.length;
    for (let j = 0; j < residuals.length; j++) {
      // residual vector = Q_next R s_last (+ the part of K q_last beyond Q_next when the space is exhausted)
      let r2 = 0;
      for (let c2 = 0; c2 < nb; c2++) {
        let s = 0;
        for (let c = 0; c < b; c++) s += R[c2 * b + c]! * ritz.vectors![j * m + offset + c]!;
        r2 += s * s;
      }
      residuals[j] = Math.sqrt(r2) / Math.max(Math.abs(ritz.values[0]!), Number.MIN_VALUE);
    }
    const worst = residuals.reduce((a, r) => Math.max(a, r), 0);
    options.onPass?.(passes, worst);
    const done = (m >= k && worst <= tolerance) || nb === 0;
    if (done) {
      const values = ritz.values.slice(0, k);
      let vectors: Float64Array | undefined;
      if (options.vectors ?? true) vectors = ritzVectors(basis, ritz.vectors!, k, n, products);
      return { values, vectors, residuals: residuals.slice(0, k), passes, restarts };
    }
    if (passes >= maxPasses) {
      throw new EntkError(
        `topEigenpairs: no convergence after ${passes} passes (largest relative residual ${worst.toExponential(2)} > tolerance ${tolerance})`,
      );
    }
    if (m + nb > maxBasis) {
      // Thick restart: keep the top Ritz vectors; H on them is diag(θ).
      const keep = Math.max(Math.min(k, m), Math.min(m, maxBasis - 2 * b0));
      const kept = ritzVectors(basis, ritz.vectors!, keep, n, products);
      basis = Array.from({ length: keep }, (_, j) => kept.slice(j * n, (j + 1) * n));
      H = new Float64Array(cap * cap);
      for (let j = 0; j < keep; j++) H[j * cap + j] = ritz.values[j]!;
      restarts++;
    }
    pending = next;
  }
}
