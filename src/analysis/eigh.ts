/**
 * Dense symmetric eigen-decomposition in float64: Householder reduction to tridiagonal form
 * followed by the implicit QL method (EISPACK tred2/tql2, as in JAMA), written over one row-major
 * Float64Array. The reduction works on the transposed layout so that every inner loop walks
 * memory contiguously; the eigenvectors come out as rows (`vectors[j·n + k]` = component k of
 * eigenvector j), which is the layout the predictors want (`Uᵀ`).
 *
 * Cost ≈ (4/3 + 3) n³ floating-point operations; memory one n×n copy.
 */
import { availableParallelism } from 'node:os';
import { assertArgument, EntkError } from '../errors.js';
import { WASM_PAGE, type WasmCall, type WasmMemory, WasmThreads, wasmApi } from '../util/index.js';
import { EIGH_THREAD_EXPORTS, type EighKernels, eighKernels, eighModule } from './wasm-eigh.js';

/** Below this size the plain loops are as fast as the WebAssembly kernels (call overhead). */
const WASM_MIN_SIZE = 48;
/** Largest n whose n×n float64 matrix fits a 32-bit WebAssembly memory with room to spare. */
const WASM_MAX_SIZE = 22000;

/** The working arrays, in WebAssembly memory (with the SIMD kernels) or plain. */
interface Workspace {
  W: Float64Array;
  d: Float64Array;
  e: Float64Array;
  /**
   * Kernels and the byte addresses of W, d, e, the scratch slot, the panel of the blocked
   * reduction (2·PANEL vectors of length n: u's then q's) and the vectors g, acc0, acc1, next of the
   * split symmetric products (see tred2ReduceBlocked); null: plain loops.
   */
  wasm: {
    k: EighKernels;
    memory: WasmMemory;
    /** The memory is shared (worker threads may run the kernels on it). */
    shared: boolean;
    scratch: Float64Array;
    panel: Float64Array;
    g: Float64Array;
    acc0: Float64Array;
    acc1: Float64Array;
    next: Float64Array;
    /** Staging of one chunk of the rotation log and of its sweeps (factored decompositions only). */
    log: Float64Array | null;
    sweeps: Int32Array | null;
    W: number;
    d: number;
    e: number;
    S: number;
    P: number;
    G: number;
    A0: number;
    A1: number;
    X: number;
    L: number;
    SW: number;
  } | null;
}

/** Householder steps whose rank-2 updates the blocked reduction delays (one pass over A per PANEL steps). */
const PANEL = 32;
/** Columns of a block multiplied by the factored U at once (it fills the panel area, 2·PANEL vectors). */
const MAX_COLUMNS = 2 * PANEL;

function workspace(n: number, useWasm: boolean, staging = false): Workspace {
  if (useWasm && wasmApi && n >= WASM_MIN_SIZE && n <= WASM_MAX_SIZE) {
    const bytes = (n * n + 2 * n + 2 + 2 * PANEL * n + 4 * n) * 8 + (staging ? LOG_CHUNK * 12 : 0);
    const pages = Math.ceil(bytes / WASM_PAGE);
    // A shared memory where the runtime has one, so that worker threads can share the reduction.
    const shared = typeof SharedArrayBuffer !== 'undefined' && eighModule(true) !== null;
    const memory = shared
      ? new wasmApi.Memory({ initial: pages, maximum: pages, shared: true })
      : new wasmApi.Memory({ initial: pages });
    const k = eighKernels(memory, shared);
    if (k) {
      const buffer = memory.buffer as ArrayBuffer;
      const d = n * n * 8;
      const e = d + n * 8;
      const S = e + n * 8;
      const P = S + 16;
      const G = P + 2 * PANEL * n * 8;
      const A0 = G + n * 8;
      const A1 = A0 + n * 8;
      const X = A1 + n * 8;
      const L = X + n * 8;
      const SW = L + LOG_CHUNK * 8;
      return {
        W: new Float64Array(buffer, 0, n * n),
        d: new Float64Array(buffer, d, n),
        e: new Float64Array(buffer, e, n),
        wasm: {
          k,
          memory,
          shared,
          scratch: new Float64Array(buffer, S, 2),
          panel: new Float64Array(buffer, P, 2 * PANEL * n),
          g: new Float64Array(buffer, G, n),
          acc0: new Float64Array(buffer, A0, n),
          acc1: new Float64Array(buffer, A1, n),
          next: new Float64Array(buffer, X, n),
          log: staging ? new Float64Array(buffer, L, LOG_CHUNK) : null,
          sweeps: staging ? new Int32Array(buffer, SW, LOG_CHUNK) : null,
          W: 0,
          d,
          e,
          S,
          P,
          G,
          A0,
          A1,
          X,
          L,
          SW,
        },
      };
    }
  }
  return { W: new Float64Array(n * n), d: new Float64Array(n), e: new Float64Array(n), wasm: null };
}

/** Below this size the reduction stays on the caller's thread ('auto'). */
const THREAD_MIN_SIZE = 1000;
/** Active blocks below this order are split between the two parts on the caller's thread alone. */
const THREAD_MIN_ACTIVE = 768;

/** Options of the eigensolvers. */
export interface EighOptions {
  /** 'wasm': the SIMD kernels where available; 'js': plain loops; 'auto' (default): 'wasm'. */
  backend?: 'wasm' | 'js' | 'auto';
  /**
   * Threads of the tridiagonal reduction (WebAssembly with shared memory only): 1 or 2 (more are
   * used as 2); 'auto' (default): min(2, cores) for n ≥ 1000, else 1. The work is split in two fixed
   * parts whatever the count, so the results are bitwise the same for 1 and 2 threads.
   */
  threads?: number | 'auto';
}

function checkThreads(threads: number | 'auto' | undefined): void {
  assertArgument(
    threads === undefined || threads === 'auto' || (Number.isInteger(threads) && threads >= 1),
    'threads',
    threads,
    "a positive integer or 'auto'",
  );
}

/** Worker threads for the reduction of an n×n matrix in `ws` (null: the caller's thread alone). */
function reductionThreads(n: number, ws: Workspace, threads: number | 'auto' = 'auto'): WasmThreads | null {
  const t = threads === 'auto' ? (n >= THREAD_MIN_SIZE ? Math.min(2, availableParallelism()) : 1) : threads;
  if (t < 2 || !ws.wasm?.shared) return null;
  return new WasmThreads(eighModule(true)!, ws.wasm.memory, 1, EIGH_THREAD_EXPORTS, 'symmetricEigen');
}

/** W ← a, refusing a non-finite entry (one bulk copy, then a scan). */
function copyFinite(a: ArrayLike<number>, W: Float64Array, name: string): void {
  W.set(a);
  for (let i = 0; i < W.length; i++) {
    const v = W[i]!;
    if (v - v !== 0) throw new EntkError(`${name}: entry ${i} of the matrix is ${v}`);
  }
}

/** An eigen-decomposition `A = Σ_j λ_j u_j u_jᵀ`, eigenvalues in descending order. */
export interface SymmetricEigen {
  /** n */
  size: number;
  /** λ_0 ≥ λ_1 ≥ … ≥ λ_{n−1}. */
  values: Float64Array;
  /** Eigenvectors as rows: `vectors[j·n + k]` = (u_j)_k; orthonormal. Absent when only values were asked for. */
  vectors?: Float64Array;
}

/**
 * Eigenvalues and (optionally) eigenvectors of the symmetric n×n matrix `a` (row-major; the
 * lower triangle is read, i.e. `a` is assumed symmetric). `a` is not modified.
 *
 * @example
 *   symmetricEigen(new Float64Array([2, 1, 1, 2]), 2).values  // [3, 1]
 */
export function symmetricEigen(
  a: ArrayLike<number>,
  n: number,
  options: EighOptions & { vectors?: boolean } = {},
): SymmetricEigen {
  const wantVectors = options.vectors ?? true;
  const ws = eighWorkspace(a, n, options, 'symmetricEigen', false);
  const W = ws.W;
  if (wantVectors) tred2(n, ws, options.threads);
  else tridiagonal(n, ws, options.threads); // values only: no accumulation of Q
  tql2(n, ws, wantVectors);
  const { order, values } = descending(ws.d);
  if (!wantVectors) return { size: n, values };
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    vectors.set(W.subarray(src * n, src * n + n), dst * n);
  });
  return { size: n, values, vectors };
}

/**
 * Check the arguments of an eigensolver (`name`) and copy the matrix into a fresh workspace
 * (`staging`: with room for the rotation log), refusing non-finite entries. W is the transpose of
 * JAMA's V: W[j·n + k] = V[k][j]; for a symmetric input W = A.
 */
function eighWorkspace(
  a: ArrayLike<number>,
  n: number,
  options: EighOptions,
  name: string,
  staging: boolean,
): Workspace {
  assertArgument(Number.isInteger(n) && n >= 1, 'n', n, 'a positive integer');
  assertArgument(a?.length === n * n, 'a', a, `a symmetric ${n}×${n} matrix (length ${n * n})`);
  checkThreads(options.threads);
  const ws = workspace(n, (options.backend ?? 'auto') !== 'js', staging);
  copyFinite(a, ws.W, name);
  return ws;
}

/**
 * The reduction to the tridiagonal T without accumulating Q: afterwards d = diag T, e = its
 * sub-diagonal (e[0] = 0), row i of W holds u_i; returns the h_i of the reflections (see tred2Reduce).
 */
function tridiagonal(n: number, ws: Workspace, threads?: number | 'auto' | WasmThreads | null): Float64Array {
  tred2Reduce(n, ws, threads);
  const { W, d, e } = ws;
  const h = Float64Array.from(d);
  for (let i = 0; i < n; i++) d[i] = W[i * n + i]!;
  e[0] = 0;
  return h;
}

/** The eigenvalues d (after tql2) in descending order, and their indices in d. */
function descending(d: Float64Array): { order: number[]; values: Float64Array } {
  const order = Array.from({ length: d.length }, (_, i) => i).sort((x, y) => d[y]! - d[x]!);
  return { order, values: Float64Array.from(order, (i) => d[i]!) };
}

/** Householder tridiagonalisation (tred2) on the transposed layout W[j·n + k] = V[k][j]. */
function tred2(n: number, ws: Workspace, threads?: number | 'auto'): void {
  tred2Reduce(n, ws, threads);
  tred2Accumulate(n, ws);
}

/**
 * The reduction half of tred2: afterwards row i of W holds the Householder vector u_i in its first
 * i entries, d[i] = h_i (P_i = I − u_i u_iᵀ / h_i; h_i = 0: no reflection), W[i·n + i] = T_ii and
 * e[i] = T_{i,i−1}; A = Q T Qᵀ with Q = P_{n−1} ⋯ P_1.
 */
function tred2Reduce(n: number, ws: Workspace, threads?: number | 'auto' | WasmThreads | null): void {
  if (ws.wasm) {
    if (threads === null || threads instanceof WasmThreads) {
      tred2ReduceBlocked(n, ws, threads);
      return;
    }
    const workers = reductionThreads(n, ws, threads);
    try {
      tred2ReduceBlocked(n, ws, workers);
    } finally {
      workers?.dispose();
    }
    return;
  }
  const { W, d, e } = ws;
  for (let j = 0; j < n; j++) d[j] = W[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    const h = householderVector(d, e, i);
    if (h === 0) {
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + (i - 1)]!;
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      let f: number;
      let g: number;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        W[i * n + j] = f;
        const col = j * n;
        g = e[j]! + W[col + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const w = W[col + k]!;
          g += w * d[k]!;
          e[k] = e[k]! + w * f;
        }
        e[j] = g;
      }
      householderQ(d, e, i, h);
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        const col = j * n;
        for (let k = j; k <= i - 1; k++) W[col + k] = W[col + k]! - (f * e[k]! + g * d[k]!);
        d[j] = W[col + (i - 1)]!;
        W[col + i] = 0;
      }
    }
    d[i] = h;
  }
}

/**
 * The Householder vector of row i (its first i entries in d, scaled by their absolute sum as in
 * tred2): d[0..i) ← u, e[i] ← the sub-diagonal T_{i,i−1}; returns h = ½|u|² (scaled), 0 when the
 * row is already zero (then e[i] = d[i − 1], no reflection).
 */
function householderVector(d: Float64Array, e: Float64Array, i: number): number {
  let scale = 0;
  for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
  if (scale === 0) {
    e[i] = d[i - 1]!;
    return 0;
  }
  let h = 0;
  for (let k = 0; k < i; k++) {
    d[k] = d[k]! / scale;
    h += d[k]! * d[k]!;
  }
  const f = d[i - 1]!;
  let g = Math.sqrt(h);
  if (f > 0) g = -g;
  e[i] = scale * g;
  h -= f * g;
  d[i - 1] = f - g;
  return h;
}

/** With e[0..i) = A u on entry: p = A u / h, K = uᵀp / 2h, e ← q = p − K u (tred2). */
function householderQ(d: Float64Array, e: Float64Array, i: number, h: number): void {
  let f = 0;
  for (let j = 0; j < i; j++) {
    e[j] = e[j]! / h;
    f += e[j]! * d[j]!;
  }
  const hh = f / (h + h);
  for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
}

/**
 * Column j where the active block's columns [0, i) are cut in two parts of equal area (column j has
 * i − j entries): the same cut whatever the thread count, so that the sums are too.
 */
function splitColumn(i: number): number {
  return Math.min(i, Math.floor(i * (1 - Math.SQRT1_2)));
}

/**
 * tred2's reduction with the rank-2 updates delayed (the idea of LAPACK's dlatrd/dsytrd): the
 * pairs (u, q) of up to PANEL steps are kept, A_cur = A − Σ_p (u_p q_pᵀ + q_p u_pᵀ); each step reads
 * the stored A once (its product with u, corrected by the pending pairs: 2 dot products and a
 * rank-2 update of a vector per pair) and only every PANEL steps is A rewritten — one pass per
 * panel instead of one read and one write per step. Leaves W, d, e exactly as tred2Reduce does
 * (up to rounding).
 *
 * The product with u and the panel update run over the active block's columns in two fixed parts
 * (splitColumn), the second on the worker thread when there is one: the product's column part
 * writes its own partial sums (g; acc0 or acc1), added in a fixed order, so 1 and 2 threads give
 * bitwise the same results. Both kernels also copy the next row of A_cur (column i − 1 of the
 * stored columns) into `next`, sparing a strided gather.
 */
function tred2ReduceBlocked(n: number, ws: Workspace, workers: WasmThreads | null): void {
  const { W, d, e } = ws;
  const w = ws.wasm!;
  const { k, scratch, panel, g, acc0, acc1, next } = w;
  const uAt = (p: number) => w.P + p * n * 8;
  const qAt = (p: number) => w.P + (PANEL + p) * n * 8;
  /** Run the two column parts (own: [0, s) on this thread; [s, i) on the worker or here). */
  const split = (
    i: number,
    own: (s: number) => void,
    other: (s: number) => WasmCall,
    run: (c: WasmCall) => void,
  ) => {
    const s = splitColumn(i);
    if (workers && i >= THREAD_MIN_ACTIVE) workers.round([[other(s)]], () => own(s));
    else {
      own(s);
      run(other(s));
    }
  };
  const call = (c: WasmCall) => {
    const [name, ...args] = c;
    (k[name as 'symvRange'] as (...a: number[]) => void)(...args);
  };
  let pending = 0;
  for (let j = 0; j < n; j++) d[j] = W[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    // Row i leaves the active block: its diagonal gets the pending updates.
    for (let p = 0; p < pending; p++) {
      W[i * n + i] = W[i * n + i]! - 2 * panel[p * n + i]! * panel[(PANEL + p) * n + i]!;
    }
    const h = householderVector(d, e, i);
    let captured = false;
    if (h === 0) {
      for (let j = 0; j < i; j++) W[i * n + j] = 0;
    } else {
      W.set(d.subarray(0, i), i * n);
      // e = A u with the stored A (lower columns): g_j = Σ_{k≥j} A_kj u_k, acc_k = Σ_{j<k} A_kj u_j
      split(
        i,
        (s) => k.symvRange(w.W, n, w.d, w.G, w.A0, w.X, 0, s, i),
        (s) => ['symvRange', w.W, n, w.d, w.G, w.A1, w.X, s, i, i],
        call,
      );
      const s = splitColumn(i);
      for (let j = 0; j < s; j++) e[j] = g[j]! + acc0[j]!;
      for (let j = s; j < i; j++) e[j] = g[j]! + acc0[j]! + acc1[j]!;
      captured = true;
      // … corrected by the pending pairs: e −= (q_p·u) u_p + (u_p·u) q_p
      for (let p = 0; p < pending; p++) {
        k.dot(qAt(p), w.d, i, w.S);
        const a = scratch[1]!;
        k.dot(uAt(p), w.d, i, w.S);
        scratch[0] = a;
        // scratch[1] = u_p·u already
        k.rank2(w.e, qAt(p), uAt(p), i, w.S);
      }
      householderQ(d, e, i, h);
      panel.set(d.subarray(0, i), pending * n);
      panel.set(e.subarray(0, i), (PANEL + pending) * n);
      pending++;
    }
    d[i] = h;
    if (pending > 0 && (pending === PANEL || i === 1)) {
      // A[k][j] −= Σ_p (u_j q_k + q_j u_k) on the active block (columns j < i, rows j ≤ k < i)
      const P = pending;
      split(
        i,
        (s) => k.syr2kRange(w.W, n, uAt(0), qAt(0), P, 0, s, i, w.X),
        (s) => ['syr2kRange', w.W, n, uAt(0), qAt(0), P, s, i, i, w.X],
        call,
      );
      captured = true;
      pending = 0;
    }
    // The next row, i − 1, of A_cur.
    if (captured) d.set(next.subarray(0, i));
    else for (let j = 0; j < i; j++) d[j] = W[j * n + (i - 1)]!;
    for (let p = 0; p < pending; p++) {
      scratch[0] = panel[(PANEL + p) * n + i - 1]!;
      scratch[1] = panel[p * n + i - 1]!;
      k.rank2(w.d, qAt(p), uAt(p), i, w.S);
    }
  }
  // The entries right of the diagonal (the rows' parts above the active block) end as zeros.
  for (let j = 0; j < n; j++) W.fill(0, j * n + j + 1, (j + 1) * n);
}

/** The accumulation half of tred2: W ← Qᵀ (rows), d ← diag T, e ← sub-diagonal (e[0] = 0). */
function tred2Accumulate(n: number, ws: Workspace): void {
  const { W, d, e, wasm } = ws;
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    W[i * n + (n - 1)] = W[i * n + i]!;
    W[i * n + i] = 1;
    const h = d[i + 1]!;
    const next = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = W[next + k]! / h;
      for (let j = 0; j <= i; j++) {
        const col = j * n;
        if (wasm) {
          // W[col+k] −= (W[next..]·W[col..]) d[k], k ≤ i (rank2 with f = 0)
          wasm.k.dot(wasm.W + next * 8, wasm.W + col * 8, i + 1, wasm.S);
          wasm.scratch[0] = 0;
          wasm.k.rank2(wasm.W + col * 8, wasm.d, wasm.e, i + 1, wasm.S);
          continue;
        }
        let g = 0;
        for (let k = 0; k <= i; k++) g += W[next + k]! * W[col + k]!;
        for (let k = 0; k <= i; k++) W[col + k] = W[col + k]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) W[next + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = W[j * n + (n - 1)]!;
    W[j * n + (n - 1)] = 0;
  }
  W[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/**
 * √(a² + b²): the plain formula where a² + b² can neither overflow nor lose digits to underflow
 * (Math.hypot, which guards against both, costs several times more in the QL sweeps' inner loop).
 */
function hypot(a: number, b: number): number {
  const s = a * a + b * b;
  return s > 1e-290 && s < 1e290 ? Math.sqrt(s) : Math.hypot(a, b);
}

/**
 * Implicit QL iterations on the tridiagonal (d, e) (tql2), rotating the rows of W (`vectors`), or
 * recording the rotations in `log` (rows i, i + 1 of the eigenvector block, in application order).
 */
function tql2(n: number, ws: Workspace, vectors: boolean, log?: RotationLog): void {
  // The iteration on private copies of d, e (plain arrays: faster element access than the
  // workspace's shared memory), copied back at the end.
  const { W, wasm } = ws;
  const d = ws.d.slice();
  const e = ws.e.slice();
  tql2Sweeps(n, W, d, e, wasm, vectors, log);
  ws.d.set(d);
  ws.e.set(e);
}

function tql2Sweeps(
  n: number,
  W: Float64Array,
  d: Float64Array,
  e: Float64Array,
  wasm: Workspace['wasm'],
  vectors: boolean,
  log?: RotationLog,
): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iterations = 0;
      do {
        if (++iterations > 60) throw new EntkError('symmetricEigen: the QL iteration did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        log?.sweep(l, m);
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          if (log) log.push(c, s);
          else if (vectors && wasm) {
            wasm.scratch[0] = c;
            wasm.scratch[1] = s;
            wasm.k.rot(wasm.W + i * n * 8, wasm.W + (i + 1) * n * 8, n, wasm.S);
          } else if (vectors) {
            const ri = i * n;
            const rj = (i + 1) * n;
            for (let k = 0; k < n; k++) {
              const wk = W[rj + k]!;
              const vk = W[ri + k]!;
              W[rj + k] = s * vk + c * wk;
              W[ri + k] = c * vk - s * wk;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/** Float64 slots of one chunk of the rotation log: whole sweeps only, so that a chunk can be applied alone. */
const LOG_CHUNK = 1 << 20;

/** A chunk of the log: (c, s) pairs, `used` slots of `log`, and its sweeps (l, m). */
interface LogChunk {
  log: Float64Array;
  used: number;
  sweeps: number[];
}

/** The Givens rotations of tql2 in application order, by sweep (rows m−1, …, l of a sweep (l, m)). */
class RotationLog {
  readonly chunks: LogChunk[] = [];
  private current: LogChunk | null = null;

  sweep(l: number, m: number): void {
    if (!this.current || this.current.used + 2 * (m - l) > LOG_CHUNK) {
      this.current = { log: new Float64Array(LOG_CHUNK), used: 0, sweeps: [] };
      this.chunks.push(this.current);
    }
    this.current.sweeps.push(l, m);
  }

  push(c: number, s: number): void {
    const chunk = this.current!;
    chunk.log[chunk.used++] = c;
    chunk.log[chunk.used++] = s;
  }

  /** B ← R B for the rows of B [n, C]: every rotation in order, as tql2 rotates the rows of W. */
  forward(B: Float64Array, C: number): void {
    for (const { log, sweeps } of this.chunks) {
      let o = 0;
      for (let w = 0; w < sweeps.length; w += 2) {
        const l = sweeps[w]!;
        for (let i = sweeps[w + 1]! - 1; i >= l; i--) {
          const c = log[o]!;
          const s = log[o + 1]!;
          o += 2;
          const a = i * C;
          const b = a + C;
          for (let k = 0; k < C; k++) {
            const vk = B[a + k]!;
            const wk = B[b + k]!;
            B[b + k] = s * vk + c * wk;
            B[a + k] = c * vk - s * wk;
          }
        }
      }
    }
  }

  /** B ← Rᵀ B: the transposed rotations in reverse order. */
  backward(B: Float64Array, C: number): void {
    for (let h = this.chunks.length - 1; h >= 0; h--) {
      const { log, used, sweeps } = this.chunks[h]!;
      let o = used;
      for (let w = sweeps.length - 2; w >= 0; w -= 2) {
        const m = sweeps[w + 1]!;
        for (let i = sweeps[w]!; i < m; i++) {
          o -= 2;
          const c = log[o]!;
          const s = log[o + 1]!;
          const a = i * C;
          const b = a + C;
          for (let k = 0; k < C; k++) {
            const vk = B[a + k]!;
            const wk = B[b + k]!;
            B[a + k] = c * vk + s * wk;
            B[b + k] = c * wk - s * vk;
          }
        }
      }
    }
  }
}

/**
 * A symmetric eigen-decomposition `A = U diag(λ) Uᵀ` kept in factored form, U = Q Z: Q the product
 * of the Householder reflections of the tridiagonalisation, Z the product of the QL rotations. U is
 * never formed; blocks of vectors are multiplied by U and Uᵀ in O(n²·C) (reflections) plus O(r·C)
 * (r ≈ n² rotations), which is all the closed-form flows need.
 */
export interface FactoredSymmetricEigen {
  /** n */
  size: number;
  /** λ_0 ≥ λ_1 ≥ … ≥ λ_{n−1}. */
  values: Float64Array;
  /** Uᵀ Y for Y [n, C] (row-major): row j is u_jᵀ Y. */
  projectT(y: Float64Array, C: number): Float64Array;
  /** U X for X [n, C]: Σ_j u_j X[j, :]. */
  combine(x: Float64Array, C: number): Float64Array;
  /**
   * Release the factors (≈ 24·n² bytes: the reflections and the rotation log) and stop the worker
   * thread; `values` stay readable, {@link projectT} and {@link combine} throw afterwards. Idempotent.
   */
  dispose(): void;
}

/** What a factored decomposition keeps for its products: U = Q Z. */
interface Factors {
  n: number;
  /** The workspace: row k of W holds the Householder vector u_k; its panel area serves the products. */
  ws: Workspace;
  /** h_k of the reflections P_k = I − u_k u_kᵀ / h_k (0: none). */
  h: Float64Array;
  /** The QL rotations (Z). */
  log: RotationLog;
  /** The worker thread that shares the products' columns (null: none). */
  workers: WasmThreads | null;
  /** order[dst] = the tql2 index of the dst-th largest eigenvalue. */
  order: number[];
}

/**
 * The eigen-decomposition of the symmetric n×n matrix `a` in factored form (see
 * {@link FactoredSymmetricEigen}): the reduction to tridiagonal form (as {@link symmetricEigen})
 * and the QL iteration on the tridiagonal alone, its rotations recorded (16 bytes each, ≈ n²) instead
 * of applied to n×n eigenvectors — skipping the O(n³) accumulation of Q and of the rotations.
 *
 * @example
 *   const e = factoredSymmetricEigen(k, n);
 *   const coefficients = e.projectT(y, C);     // Uᵀ Y
 *   const back = e.combine(coefficients, C);   // U Uᵀ Y = Y
 *   e.dispose();                               // release the factors
 */
export function factoredSymmetricEigen(
  a: ArrayLike<number>,
  n: number,
  options: EighOptions = {},
): FactoredSymmetricEigen {
  const { values, factors: f } = factorEigen(a, n, options);
  // The returned methods reach the factors only through `factors`, so dispose() releases them.
  let factors: Factors | null = f;
  const live = (): Factors => {
    if (!factors) throw new EntkError('factoredSymmetricEigen: used after dispose()');
    return factors;
  };
  const check = (x: Float64Array, C: number, name: string) =>
    assertArgument(
      Number.isInteger(C) && C >= 1 && x instanceof Float64Array && x.length === n * C,
      name,
      x,
      `a Float64Array [${n}, C]`,
    );
  return {
    size: n,
    values,
    projectT(y, C) {
      check(y, C, 'y');
      const held = live();
      const B = Float64Array.from(y);
      applyFactors(held, B, C, true);
      const out = new Float64Array(n * C);
      held.order.forEach((src, dst) => {
        out.set(B.subarray(src * C, src * C + C), dst * C);
      });
      return out;
    },
    combine(x, C) {
      check(x, C, 'x');
      const held = live();
      const B = new Float64Array(n * C);
      held.order.forEach((src, dst) => {
        B.set(x.subarray(dst * C, dst * C + C), src * C);
      });
      applyFactors(held, B, C, false);
      return B;
    },
    dispose() {
      factors?.workers?.dispose();
      factors = null;
    },
  };
}

/** The reduction and the QL iteration of {@link factoredSymmetricEigen}: the eigenvalues and the factors of U. */
function factorEigen(
  a: ArrayLike<number>,
  n: number,
  options: EighOptions,
): { values: Float64Array; factors: Factors } {
  const ws = eighWorkspace(a, n, options, 'factoredSymmetricEigen', true);
  // The worker thread (if any) stays for the products with U (columns split; stopped by dispose()
  // or when collected).
  const workers = ws.wasm ? reductionThreads(n, ws, options.threads) : null;
  const h = tridiagonal(n, ws, workers);
  const log = new RotationLog();
  tql2(n, ws, false, log);
  const { order, values } = descending(ws.d);
  return { values, factors: { n, ws, h, log, workers, order } };
}

/** B ← P_k B, P_k = I − u_k u_kᵀ / h_k (u_k: the first k entries of row k of W). */
function reflect({ n, ws, h }: Factors, B: Float64Array, C: number, k: number, g: Float64Array): void {
  const hk = h[k]!;
  if (hk === 0) return;
  const W = ws.W;
  const row = k * n;
  g.fill(0);
  for (let i = 0; i < k; i++) {
    const u = W[row + i]!;
    for (let c = 0; c < C; c++) g[c] = g[c]! + u * B[i * C + c]!;
  }
  for (let c = 0; c < C; c++) g[c] = g[c]! / hk;
  for (let i = 0; i < k; i++) {
    const u = W[row + i]!;
    for (let c = 0; c < C; c++) B[i * C + c] = B[i * C + c]! - u * g[c]!;
  }
}

/**
 * Qᵀ B then Zᵀ (project) or Z then Q (combine) on B [n, C] in place. With the kernels: blocks of
 * up to MAX_COLUMNS columns in the workspace's panel area (free after the reduction), h in its g
 * vector; the reflections for the block's columns split in two (columns are independent, each
 * sum runs over rows in order as in `reflect`: bitwise the same for any split).
 */
function applyFactors(factors: Factors, B: Float64Array, C: number, project: boolean): void {
  const { n, ws, h, log, workers } = factors;
  const w = ws.wasm;
  if (!w) {
    const g = new Float64Array(C);
    if (project) {
      for (let k = n - 1; k >= 1; k--) reflect(factors, B, C, k, g); // Qᵀ y = P_1 ⋯ P_{n−1} y
      log.forward(B, C); // Zᵀ: the rotations tql2 applies to the rows of Qᵀ
    } else {
      log.backward(B, C);
      for (let k = 1; k < n; k++) reflect(factors, B, C, k, g); // Q x = P_{n−1} ⋯ P_1 x
    }
    return;
  }
  w.g.set(h);
  const [k0, k1, step] = project ? [n - 1, 0, -1] : [1, n, 1];
  for (let c0 = 0; c0 < C; c0 += MAX_COLUMNS) {
    const cc = Math.min(MAX_COLUMNS, C - c0);
    const block = w.panel.subarray(0, n * cc);
    for (let i = 0; i < n; i++) block.set(B.subarray(i * C + c0, i * C + c0 + cc), i * cc);
    /** The calls on columns [c0, c1) of the block, the second half on the worker thread. */
    const columns = (call: (c0: number, c1: number) => WasmCall) => {
      const half = workers && cc >= 4 ? 2 * Math.ceil(cc / 4) : cc;
      const [name, ...args] = call(0, half);
      const own = () => (w.k[name as 'rotSweeps'] as (...a: number[]) => void)(...args);
      if (half < cc) workers!.round([[call(half, cc)]], own);
      else own();
    };
    const rotations = (transpose: boolean) => {
      const chunks = transpose ? [...log.chunks].reverse() : log.chunks;
      for (const chunk of chunks) {
        w.log!.set(chunk.log.subarray(0, chunk.used));
        w.sweeps!.set(chunk.sweeps);
        const count = chunk.sweeps.length / 2;
        const nrot = chunk.used / 2;
        columns((a, b) => ['rotSweeps', w.P, cc, a, b, w.SW, count, w.L, nrot, transpose ? 1 : 0]);
      }
    };
    const reflections = () => columns((a, b) => ['reflectRange', w.P, cc, w.W, n, w.G, k0, k1, step, a, b]);
    if (project) {
      reflections(); // Qᵀ y = P_1 ⋯ P_{n−1} y
      rotations(false); // Zᵀ: the rotations tql2 applies to the rows of Qᵀ
    } else {
      rotations(true);
      reflections(); // Q x = P_{n−1} ⋯ P_1 x
    }
    for (let i = 0; i < n; i++) B.set(block.subarray(i * cc, i * cc + cc), i * C + c0);
  }
}
