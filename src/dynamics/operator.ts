/**
 * The fitness operator: the one dense product every predictor spends its time in,
 *
 *     φ(α) = Σ_u w_u K(α, u) (e_u − π(u))        (docs/theory.md#fitness)
 *
 * for every tracked point α (the N finetune points, then the M observation points), given the
 * residuals r_u = e_u − π(u) of the finetune points and per-point weights w_u (1/N for full batch,
 * 1/|B| on a minibatch B and 0 off it).
 *
 * Three exact reductions make it fast, none of which changes the dynamics:
 *
 * 1. **Reference-label coordinates.** Each residual sums to zero over labels, so only the
 *    differences `K_ij − K_i,V−1` of kernel columns matter; and every predictor uses φ only up to
 *    a per-point additive constant (softmax, the `−⟨π, φ⟩` term and the MU normalisation all
 *    cancel it), so only the row differences matter too. The operator therefore works with the
 *    reduced kernel `G_ij(α, u) = K_ij − K_i,V−1 − K_V−1,j + K_V−1,V−1` (i, j < V − 1): an
 *    `(V−1)/V` smaller problem in each dimension. `apply` returns `φ̃ = φ − φ_{V−1} 1`, i.e. φ with
 *    the last label's entry shifted to 0.
 * 2. **Symmetry.** The finetune block `K(u, u')` is symmetric; it is stored as its packed upper
 *    triangle and multiplied reading each entry once (half the memory traffic of a dense product).
 * 3. **WebAssembly SIMD and threads.** The products run in `f64x2` WebAssembly (see ./wasm.ts),
 *    split over worker threads sharing the memory when the problem is large enough.
 *
 * The plain-JavaScript backend (`backend: 'js'`) computes the same thing with the same layout.
 */
import { availableParallelism } from 'node:os';
import { assertArgument, EntkError, InvalidArgumentError } from '../errors.js';
import { WASM_PAGE, type WasmCall, WasmThreads, wasmApi } from '../util/index.js';
import { gemvJs, instantiateKernels, type KernelExports, kernelModule, spmvJs } from './wasm.js';

/** Kernel blocks at one parameter value θ (the checkpoint, or a refresh point of the run). */
export interface KernelBlocks {
  /** V, the number of labels (≥ 2). */
  numClasses: number;
  /**
   * K(u, u') between the N finetune points, shape [N·V, N·V], row-major, point-major
   * (row u·V + i, column u'·V + j). Must be symmetric (`K(u,u')ᵀ = K(u',u)`) up to
   * `symmetryTolerance`; the blocks on and above the diagonal are used (diagonal blocks symmetrised).
   */
  train: Float64Array | Float32Array;
  /** K(o, u) from the M observation points to the N finetune points, [M·V, N·V]; omit when M = 0. */
  observe?: Float64Array | Float32Array;
}

export interface OperatorOptions {
  /** 'wasm' (f64x2 WebAssembly SIMD), 'js' (plain loops) or 'auto' (wasm where available). Default 'auto'. */
  backend?: 'wasm' | 'js' | 'auto';
  /**
   * Threads for one product (the calling thread plus `threads − 1` workers), or 'auto': up to 4
   * (bounded by the cores) once the reduced kernel has at least 2·10⁶ stored entries, else 1.
   * Threads need the wasm backend. Default 'auto'.
   */
  threads?: number | 'auto';
  /** Largest accepted `max|K − Kᵀ| / max|K|` of the finetune block. Default 1e-4 (float32 kernels). */
  symmetryTolerance?: number;
}

/** Element counts below which threads do not pay for their synchronisation. */
const THREAD_MIN_ENTRIES = 2_000_000;
const MAX_AUTO_THREADS = 4;
/** A slice of the work: packed rows [rowStart, rowEnd) and dense observation rows [obsStart, obsEnd). */
interface Share {
  rowStart: number;
  rowEnd: number;
  rowPtr: number; // element offset of row rowStart's diagonal in the packed block
  obsStart: number;
  obsEnd: number;
  acc: number; // element offset of this share's accumulator (length n)
}

/**
 * φ̃ for every tracked point from the residuals of the finetune points. Create once per kernel
 * (preparation copies and reduces the kernel: O((N·V)²)), call `apply` many times, `dispose` at
 * the end (frees workers; memory is garbage collected).
 */
export class FitnessOperator {
  /** V */
  readonly numClasses: number;
  /** N */
  readonly numTrain: number;
  /** M */
  readonly numObserve: number;
  /** N + M: tracked points, finetune points first. */
  readonly numTracked: number;
  /** The backend in use. */
  readonly backend: 'wasm' | 'js';
  /** Threads one product is split over. */
  readonly threads: number;
  /**
   * max |K − Kᵀ| / max |K| of the finetune block over the checked entries (all diagonal blocks,
   * all neighbouring pairs K(u, u+1) and a fixed sample of 4096 other block pairs).
   */
  readonly asymmetry: number;

  private readonly n: number; // N (V−1)
  private readonly m: number; // M (V−1)
  private readonly heap: Float64Array;
  private readonly offP = 0;
  private readonly offO: number;
  private readonly offX: number;
  private readonly offYObs: number;
  private readonly shares: Share[];
  private readonly kernels: KernelExports | null;
  private workers: WasmThreads | null = null;
  private disposed = false;

  constructor(blocks: KernelBlocks, options: OperatorOptions = {}) {
    const V = blocks.numClasses;
    assertArgument(Number.isInteger(V) && V >= 2, 'numClasses', V, 'an integer ≥ 2');
    const NV = Math.round(Math.sqrt(blocks.train?.length ?? 0));
    assertArgument(
      blocks.train instanceof Float64Array || blocks.train instanceof Float32Array,
      'kernel.train',
      blocks.train,
      'a Float64Array or Float32Array',
    );
    assertArgument(
      NV * NV === blocks.train.length && NV % V === 0 && NV > 0,
      'kernel.train',
      blocks.train,
      `a square [N·V, N·V] kernel with V = ${V} (length N²·V², N ≥ 1)`,
    );
    const N = NV / V;
    const obs = blocks.observe ?? new Float64Array(0);
    assertArgument(
      obs instanceof Float64Array || obs instanceof Float32Array,
      'kernel.observe',
      obs,
      'a Float64Array or Float32Array',
    );
    assertArgument(
      obs.length % (NV * V) === 0,
      'kernel.observe',
      obs,
      `an [M·V, N·V] kernel with N·V = ${NV}, V = ${V} (length a multiple of ${NV * V})`,
    );
    const M = obs.length / (NV * V);
    const symmetryTolerance = options.symmetryTolerance ?? 1e-4;
    assertArgument(symmetryTolerance >= 0, 'symmetryTolerance', symmetryTolerance, 'a number ≥ 0');
    const backendOpt = options.backend ?? 'auto';
    assertArgument(
      ['wasm', 'js', 'auto'].includes(backendOpt),
      'backend',
      backendOpt,
      "'wasm', 'js' or 'auto'",
    );

    this.numClasses = V;
    this.numTrain = N;
    this.numObserve = M;
    this.numTracked = N + M;
    const W = V - 1;
    const n = N * W;
    const m = M * W;
    this.n = n;
    this.m = m;
    const packed = (n * (n + 1)) / 2;

    const wasmAvailable = kernelModule(false) !== null;
    if (backendOpt === 'wasm' && !wasmAvailable) {
      throw new EntkError('backend: WebAssembly SIMD is not available in this runtime (use backend "js")');
    }
    let threads = 1;
    const threadOpt = options.threads ?? 'auto';
    if (threadOpt === 'auto') {
      threads =
        packed + m * n >= THREAD_MIN_ENTRIES
          ? Math.max(1, Math.min(MAX_AUTO_THREADS, availableParallelism()))
          : 1;
    } else {
      assertArgument(
        Number.isInteger(threadOpt) && threadOpt >= 1 && threadOpt <= 64,
        'threads',
        threadOpt,
        "an integer in [1, 64] or 'auto'",
      );
      threads = threadOpt;
    }
    const useWasm = backendOpt === 'wasm' || (backendOpt === 'auto' && wasmAvailable);
    if (!useWasm) threads = 1;
    if (threads > 1 && (typeof SharedArrayBuffer === 'undefined' || kernelModule(true) === null)) threads = 1;
    this.threads = threads;
    this.backend = useWasm ? 'wasm' : 'js';

    // Layout (float64 elements): packed P | dense O | x | per-share accumulators | y_obs.
    this.offO = packed;
    this.offX = this.offO + m * n;
    const offAcc = this.offX + n + (n % 2); // keep 16-byte alignment for the SIMD loads
    this.offYObs = offAcc + threads * (n + (n % 2));
    const total = this.offYObs + m + 2;
    const bytes = total * 8;
    if (useWasm) {
      const pages = Math.ceil(bytes / WASM_PAGE) + 1;
      if (pages > 65536) {
        throw new InvalidArgumentError(
          'kernel',
          `${N} finetune + ${M} observation points, V = ${V}`,
          'a problem whose reduced kernel fits the 4 GB WebAssembly memory (use backend "js")',
        );
      }
      const api = wasmApi!;
      const memory =
        threads > 1
          ? new api.Memory({ initial: pages, maximum: pages, shared: true })
          : new api.Memory({ initial: pages });
      this.kernels = instantiateKernels(memory, threads > 1);
      this.heap = new Float64Array(memory.buffer, 0, total);
      if (threads > 1) {
        this.workers = new WasmThreads(
          kernelModule(true)!,
          memory,
          threads - 1,
          ['spmv', 'gemv'],
          'FitnessOperator',
        );
      }
    } else {
      this.kernels = null;
      this.heap = new Float64Array(total);
    }

    this.asymmetry = fillReducedTrain(blocks.train, N, V, this.heap, this.offP);
    if (this.asymmetry > symmetryTolerance) {
      this.dispose();
      throw new InvalidArgumentError(
        'kernel.train',
        `relative asymmetry ${this.asymmetry.toExponential(2)}`,
        `a symmetric kernel, K(u,u')ᵀ = K(u',u) (relative asymmetry ≤ ${symmetryTolerance})`,
      );
    }
    fillReducedObserve(obs, M, N, V, this.heap, this.offO);

    // Shares: equal packed work, equal observation rows.
    this.shares = [];
    let row = 0;
    let rowPtr = 0;
    for (let s = 0; s < threads; s++) {
      const targetEnd = s === threads - 1 ? n : rowForWork(n, (packed * (s + 1)) / threads);
      const end = Math.max(row, Math.min(n, targetEnd));
      this.shares.push({
        rowStart: row,
        rowEnd: end,
        rowPtr,
        obsStart: Math.floor((m * s) / threads),
        obsEnd: Math.floor((m * (s + 1)) / threads),
        acc: offAcc + s * (n + (n % 2)),
      });
      for (let i = row; i < end; i++) rowPtr += n - i;
      row = end;
    }
  }

  /**
   * φ̃ = φ − φ_{V−1} for every tracked point.
   *
   * @param residual r_u = e_u − π(u) for the N finetune points, [N, V] (each row must sum to 0,
   *   which holds for any probability vector; rows with zero weight are ignored).
   * @param weight w_u: one number for all points (1/N for full batch) or a Float64Array [N].
   * @param out φ̃, [N + M, V] (finetune points first); the last label's entries are 0.
   */
  apply(residual: Float64Array, weight: number | Float64Array, out: Float64Array): void {
    if (this.disposed) throw new EntkError('FitnessOperator: used after dispose()');
    const V = this.numClasses;
    const W = V - 1;
    const N = this.numTrain;
    const heap = this.heap;
    const x = this.offX;
    if (typeof weight === 'number') {
      for (let u = 0; u < N; u++) {
        const ro = u * V;
        const xo = x + u * W;
        for (let i = 0; i < W; i++) heap[xo + i] = weight * residual[ro + i]!;
      }
    } else {
      for (let u = 0; u < N; u++) {
        const w = weight[u]!;
        const ro = u * V;
        const xo = x + u * W;
        for (let i = 0; i < W; i++) heap[xo + i] = w * residual[ro + i]!;
      }
    }
    const n = this.n;
    const m = this.m;
    if (this.kernels === null) {
      const acc = this.shares[0]!.acc;
      spmvJs(heap, this.offP, heap, x, heap, acc, n);
      gemvJs(heap, this.offO, heap, x, heap, this.offYObs, m, n);
    } else {
      const k = this.kernels;
      // hand shares 1.. to the workers, run share 0 here
      for (const sh of this.shares) heap.fill(0, sh.acc, sh.acc + n);
      const calls = this.shares.slice(1).map((sh) => {
        const c: WasmCall[] = [];
        if (sh.rowEnd > sh.rowStart)
          c.push(['spmv', (this.offP + sh.rowPtr) * 8, x * 8, sh.acc * 8, n, sh.rowStart, sh.rowEnd]);
        if (sh.obsEnd > sh.obsStart)
          c.push([
            'gemv',
            (this.offO + sh.obsStart * n) * 8,
            x * 8,
            (this.offYObs + sh.obsStart) * 8,
            sh.obsEnd - sh.obsStart,
            n,
          ]);
        return c;
      });
      const s0 = this.shares[0]!;
      const own = () => {
        if (s0.rowEnd > s0.rowStart)
          k.spmv((this.offP + s0.rowPtr) * 8, x * 8, s0.acc * 8, n, s0.rowStart, s0.rowEnd);
        if (s0.obsEnd > s0.obsStart) {
          k.gemv(
            (this.offO + s0.obsStart * n) * 8,
            x * 8,
            (this.offYObs + s0.obsStart) * 8,
            s0.obsEnd - s0.obsStart,
            n,
          );
        }
      };
      if (!this.workers) own();
      else {
        try {
          this.workers.round(calls, own);
        } catch (error) {
          this.dispose();
          throw error;
        }
      }
      for (let s = 1; s < this.shares.length; s++) {
        const a0 = s0.acc;
        const as = this.shares[s]!.acc;
        for (let i = 0; i < n; i++) heap[a0 + i] += heap[as + i]!;
      }
    }
    const acc = this.shares[0]!.acc;
    for (let u = 0; u < N; u++) {
      const oo = u * V;
      const ao = acc + u * W;
      for (let i = 0; i < W; i++) out[oo + i] = heap[ao + i]!;
      out[oo + W] = 0;
    }
    const yo = this.offYObs;
    for (let o = 0; o < this.numObserve; o++) {
      const oo = (N + o) * V;
      const ao = yo + o * W;
      for (let i = 0; i < W; i++) out[oo + i] = heap[ao + i]!;
      out[oo + W] = 0;
    }
  }

  /** Stop the worker threads. The operator cannot be used afterwards. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.workers?.dispose();
    this.workers = null;
  }
}

/** Smallest row r such that rows [0, r) of a packed n×n triangle hold at least `work` entries. */
function rowForWork(n: number, work: number): number {
  // Σ_{i<r} (n − i) = r n − r (r − 1) / 2 ≥ work
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (mid * n - (mid * (mid - 1)) / 2 >= work) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Block pairs (u, v), u < v, whose symmetry is checked besides the diagonal blocks and v = u + 1. */
const SYMMETRY_SAMPLES = 4096;

/**
 * Write the packed upper triangle of the reduced finetune kernel at heap[off...], from the blocks
 * K(u, v) with u ≤ v (diagonal blocks symmetrised as (K(u,u) + K(u,u)ᵀ)/2), reading each block
 * row segment once. The symmetry K(v,u) = K(u,v)ᵀ is checked on every diagonal block, every pair
 * v = u + 1 and a fixed pseudo-random sample of other pairs. Returns the relative asymmetry
 * max|K − Kᵀ| / max|K| over the checked entries.
 */
function fillReducedTrain(
  K: Float64Array | Float32Array,
  N: number,
  V: number,
  heap: Float64Array,
  off: number,
): number {
  const W = V - 1;
  const NV = N * V;
  const n = N * W;
  const ref = V - 1;
  const S = new Float64Array(V * V);
  const rowBase = new Float64Array(W);
  let maxAbs = 0;
  let maxAsym = 0;
  let nonFinite = 0; // Σ x·0 over the entries read: 0 unless some entry is NaN or ±∞
  const asymmetryOf = (u: number, v: number) => {
    for (let i = 0; i < V; i++) {
      const ra = (u * V + i) * NV + v * V;
      for (let j = 0; j < V; j++) {
        const x = K[ra + j]!;
        const d = Math.abs(x - K[(v * V + j) * NV + u * V + i]!);
        if (d > maxAsym || Number.isNaN(d)) maxAsym = d;
        if (Math.abs(x) > maxAbs) maxAbs = Math.abs(x);
      }
    }
  };
  const refRow = new Float64Array(V);
  for (let u = 0; u < N && nonFinite === 0; u++) {
    for (let i = 0; i < W; i++) {
      const a = u * W + i;
      rowBase[i] = off + a * n - (a * (a - 1)) / 2 - a; // + b: packed slot of (a, b), b ≥ a
    }
    // diagonal block: symmetrised (K(u,u) + K(u,u)ᵀ) / 2
    for (let i = 0; i < V; i++) {
      const ra = (u * V + i) * NV + u * V;
      for (let j = 0; j < V; j++) S[i * V + j] = K[ra + j]!;
    }
    for (let i = 0; i < V; i++) {
      for (let j = i + 1; j < V; j++) {
        const x = 0.5 * (S[i * V + j]! + S[j * V + i]!);
        S[i * V + j] = x;
        S[j * V + i] = x;
      }
    }
    const sRR = S[ref * V + ref]!;
    for (let i = 0; i < W; i++) {
      const sIR = S[i * V + ref]! - sRR;
      const dest = rowBase[i]! + u * W;
      for (let j = i; j < W; j++) heap[dest + j] = S[i * V + j]! - sIR - S[ref * V + j]!;
    }
    // blocks right of the diagonal, straight from K(u, v)
    const rr0 = (u * V + ref) * NV;
    for (let v = u + 1; v < N; v++) {
      const cb = v * V;
      const rr = rr0 + cb;
      for (let j = 0; j < V; j++) refRow[j] = K[rr + j]!;
      const kRR = refRow[ref]!;
      const vw = v * W;
      for (let i = 0; i < W; i++) {
        const ra = (u * V + i) * NV + cb;
        const c = K[ra + ref]! - kRR;
        const dest = rowBase[i]! + vw;
        for (let j = 0; j < W; j++) {
          const g = K[ra + j]! - c - refRow[j]!;
          nonFinite += g * 0;
          heap[dest + j] = g;
        }
      }
    }
    for (let x = 0; x < V * V; x++) nonFinite += S[x]! * 0;
  }
  if (nonFinite !== 0) {
    throw new InvalidArgumentError('kernel.train', 'non-finite entries', 'finite kernel entries');
  }
  for (let u = 0; u < N; u++) {
    asymmetryOf(u, u);
    if (u + 1 < N) asymmetryOf(u, u + 1);
  }
  if (N > 2) {
    let state = 0x9e3779b9;
    for (let k = 0; k < SYMMETRY_SAMPLES; k++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const u = state % N;
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const v = state % N;
      if (u !== v) asymmetryOf(Math.min(u, v), Math.max(u, v));
    }
  }
  if (Number.isNaN(maxAsym)) {
    throw new InvalidArgumentError('kernel.train', 'non-finite entries', 'finite kernel entries');
  }
  return maxAbs === 0 ? 0 : maxAsym / maxAbs;
}

/** Write the dense reduced observation kernel [M(V−1), N(V−1)] at heap[off...]. */
function fillReducedObserve(
  K: Float64Array | Float32Array,
  M: number,
  N: number,
  V: number,
  heap: Float64Array,
  off: number,
): void {
  const W = V - 1;
  const NV = N * V;
  const ref = V - 1;
  let p = off;
  let nonFinite = 0; // Σ x·0: 0 unless some entry is NaN or ±∞
  for (let o = 0; o < M; o++) {
    for (let i = 0; i < W; i++) {
      const r1 = (o * V + i) * NV;
      const r2 = (o * V + ref) * NV;
      for (let v = 0; v < N; v++) {
        const c = v * V;
        const k1r = K[r1 + c + ref]!;
        const k2r = K[r2 + c + ref]!;
        for (let j = 0; j < W; j++) {
          const value = K[r1 + c + j]! - k1r - K[r2 + c + j]! + k2r;
          nonFinite += value * 0;
          heap[p++] = value;
        }
      }
    }
  }
  if (nonFinite !== 0) {
    throw new InvalidArgumentError('kernel.observe', 'non-finite entries', 'finite kernel entries');
  }
}
