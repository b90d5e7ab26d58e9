/**
 * The factor passes' large dense products on entk's own WebAssembly SIMD GEMM (./wasm-gemm.ts),
 * split in row shares over the calling thread and barrier threads (src/util/workers.ts) on one
 * shared memory. tfjs-wasm's matMul runs on one thread; on wide layers the backward product
 * δ·Wᵀ ([b·V, width] × [width, dIn]) is most of the factor time (issue 14).
 *
 * C = A Bᵀ with A [rows × K] row-major and B either [cols × K] row-major ('rows') or given as
 * Bᵀ = [K × cols] row-major ('columns'). Every C[r, c] is one float32 sum over p in increasing
 * order, whatever the thread count (row shares only).
 */
import { availableParallelism } from 'node:os';
import {
  WASM_PAGE,
  type WasmCall,
  type WasmMemory,
  type WasmModule,
  WasmThreads,
  wasmApi,
} from '../util/index.js';
import { type GemmExports, gemmModule, MASKED_FIELDS, MR, NR } from './wasm-gemm.js';

/** Products with fewer multiply-adds than this stay on tfjs (threads would not pay). */
const DEFAULT_MIN_WORK = 2 ** 28;
/** Threads of one product: the caller's and up to 3 barrier threads. */
const MAX_THREADS = 4;

let minWork = DEFAULT_MIN_WORK;
/** Threads of one product at most (the eNTK call's `threads`). */
let threadLimit = MAX_THREADS;

/** Use at most `threads` threads (≥ 1) for the coming products. */
export function setFactorGemmThreads(threads: number): void {
  threadLimit = Math.max(1, Math.min(MAX_THREADS, Math.floor(threads)));
}

/**
 * Test hook: the smallest rows·K·cols product sent to the threaded GEMM (Infinity: never; 0: always).
 * Returns the previous value.
 */
export function setFactorGemmMinWork(work: number): number {
  const previous = minWork;
  minWork = work;
  return previous;
}

/** The current threshold (see setFactorGemmMinWork). */
export function factorGemmMinWork(): number {
  return minWork;
}

interface State {
  module: WasmModule;
  memory: WasmMemory;
  ex: GemmExports;
  /** Barrier threads, started by the first product that uses them. */
  threads: WasmThreads | null;
  /** What the B region holds (see gemmABt's bKey). */
  packedB: { key: object; shape: string } | null;
}

let state: State | null | undefined;

function instance(): State | null {
  if (state !== undefined) return state;
  const module = typeof SharedArrayBuffer === 'undefined' ? null : gemmModule(true);
  if (!module || !wasmApi) {
    state = null;
    return null;
  }
  const memory = new wasmApi.Memory({ initial: 1, maximum: 65536, shared: true });
  const ex = new wasmApi.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  state = { module, memory, ex, threads: null, packedB: null };
  return state;
}

/** Whether a product of these sizes runs here (large enough, and the kernels available). */
export function useFactorGemm(rows: number, k: number, cols: number): boolean {
  return rows * k * cols >= minWork && instance() !== null;
}

/** Stop the barrier threads (they restart on demand). */
export function disposeFactorGemm(): void {
  state?.threads?.dispose();
  state = undefined;
}

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/** Below this fraction of nonzero (row group, p) pairs the masked kernel skips the zeros. */
const MASK_DENSITY = 0.8;

/**
 * C = A Bᵀ, [rows × cols] row-major float32 (see the module comment for B's layouts). Callers check
 * {@link useFactorGemm} first.
 *
 * `group`: rows of A that share their zero pattern (e.g. the V replicated rows of one point, whose
 * back-propagated signals vanish on the same inactive ReLU units). Each group of rows is summed only
 * over the p where one of its rows is nonzero — exact: skipped terms are products with exact zeros
 * (W finite) — when that saves enough; else all rows run through the dense kernel.
 * `bKey`: an object identifying B's contents (a tensor's dataId): the packed B of the previous call
 * with the same key and shape is reused (B given as a function is then not even read).
 * `view`: return C as a view into the GEMM's memory, valid until the next call, instead of a fresh
 * array (for a caller that copies it at once, e.g. into a wasm-backend tensor). Touching fresh
 * memory is slow where page faults are (≈ 8 ms per MB measured on the benchmark VM: as much as
 * the product itself on wide layers), and the GEMM's memory is reused from call to call.
 */
export function gemmABt(
  a: Float32Array,
  rows: number,
  bData: Float32Array | (() => Float32Array),
  cols: number,
  k: number,
  bLayout: 'rows' | 'columns',
  group = 1,
  bKey?: object,
  view = false,
): Float32Array {
  const s = instance();
  if (!s) throw new Error('factor GEMM: WebAssembly SIMD with shared memory is not available');
  const K = roundUp(k, 4);
  const panels = Math.ceil(cols / NR);
  const ldc = panels * NR * 4;
  // Row groups of the masked kernel: `group` rows (at least MR) padded to RP = roundUp(group, MR).
  const g = Math.max(group, MR);
  const groups = Math.ceil(rows / g);
  const RP = roundUp(g, MR);
  const lists = new Int32Array(groups * K);
  const counts = new Int32Array(groups);
  let nonzero = 0;
  for (let n = 0; n < groups; n++) {
    const r0 = n * g;
    const r1 = Math.min(rows, r0 + g);
    let c = 0;
    for (let p = 0; p < k; p++) {
      for (let r = r0; r < r1; r++) {
        if (a[r * k + p] !== 0) {
          lists[n * K + c++] = 32 * p;
          break;
        }
      }
    }
    counts[n] = c;
    nonzero += c;
  }
  const masked = nonzero < MASK_DENSITY * groups * k;
  const tiles = masked ? (groups * RP) / MR : Math.ceil(rows / MR);
  const bBytes = panels * K * NR * 4;
  const aBytes = tiles * K * MR * 4;
  const cBytes = tiles * MR * ldc;
  const listBytes = masked ? groups * K * 4 : 0;
  const tableBytes = masked ? groups * MASKED_FIELDS * 4 : 0;
  const bp = 0;
  const ap = bBytes;
  const cp = ap + aBytes;
  const lp = cp + cBytes;
  const tp = lp + listBytes;
  const need = tp + tableBytes;
  const have = s.memory.buffer.byteLength;
  if (need > have) s.memory.grow(Math.ceil((need - have) / WASM_PAGE));
  const heap = new Float32Array(s.memory.buffer, 0, need / 4);

  // B panels: B[8q + c, p] at float (q·K + p)·8 + c (zero beyond cols and k).
  const packedKey = `${cols}:${k}:${bLayout}`;
  const reuse = bKey !== undefined && s.packedB?.key === bKey && s.packedB.shape === packedKey;
  s.packedB = bKey === undefined ? null : { key: bKey, shape: packedKey };
  const b = reuse ? null : typeof bData === 'function' ? bData() : bData;
  if (b) heap.fill(0, bp / 4, ap / 4);
  if (!b) {
    // B is already in place.
  } else if (bLayout === 'rows') {
    for (let j = 0; j < cols; j++) {
      const base = bp / 4 + (j >> 3) * K * NR + (j & 7);
      const src = j * k;
      for (let p = 0; p < k; p++) heap[base + p * NR] = b[src + p]!;
    }
  } else {
    for (let q = 0; q < panels; q++) {
      const width = Math.min(NR, cols - q * NR);
      const base = bp / 4 + q * K * NR;
      for (let p = 0; p < k; p++) {
        const src = p * cols + q * NR;
        if (width === NR) heap.set(b.subarray(src, src + NR), base + p * NR);
        else for (let c = 0; c < width; c++) heap[base + p * NR + c] = b[src + c]!;
      }
    }
  }
  // A tiles: A[4t + r, p] at float (t·K + p)·4 + r; masked: group n's rows from tile n·RP/MR.
  // (The padding p ≥ k of dense tiles must be zero, not stale; masked tiles read only listed p.)
  if (!masked && K !== k) heap.fill(0, ap / 4, cp / 4);
  for (let i = 0; i < rows; i++) {
    const row = masked ? Math.floor(i / g) * RP + (i % g) : i;
    const base = ap / 4 + (row >> 2) * K * MR + (row & 3);
    const src = i * k;
    for (let p = 0; p < k; p++) heap[base + p * MR] = a[src + p]!;
  }

  // Shares: the caller takes the first, each barrier thread one of the others (row tiles, or groups).
  const T = Math.min(threadLimit, availableParallelism());
  if (T > 1 && (!s.threads || s.threads.size < T - 1)) {
    s.threads?.dispose();
    s.threads = new WasmThreads(s.module, s.memory, T - 1, ['gemm', 'gemmMasked'], 'factor GEMM');
  }
  let call: (part: number) => WasmCall | null;
  if (masked) {
    const heap32 = new Int32Array(s.memory.buffer);
    heap32.set(lists, lp / 4);
    const tilesPer = RP / MR;
    for (let n = 0; n < groups; n++) {
      heap32.set(
        [ap + 16 * n * tilesPer * K, lp + 4 * n * K, counts[n]!, cp + n * RP * ldc, 0, 0, tilesPer, bp],
        tp / 4 + MASKED_FIELDS * n,
      );
    }
    const share = Math.ceil(groups / T);
    call = (part) => {
      const n0 = part * share;
      const count = Math.min(groups, n0 + share) - n0;
      return count > 0 ? ['gemmMasked', tp + 4 * MASKED_FIELDS * n0, count, K, panels, ldc, 0] : null;
    };
  } else {
    const share = Math.ceil(tiles / T);
    call = (part) => {
      const t0 = part * share;
      const count = Math.min(tiles, t0 + share) - t0;
      return count > 0
        ? ['gemm', ap + t0 * K * MR * 4, bp, K, count, panels, cp + t0 * MR * ldc, ldc, 0, 0, 1, 0]
        : null;
    };
  }
  const own = () => {
    const c = call(0);
    if (!c) return;
    const [name, ...args] = c;
    (s.ex[name as 'gemm'] as (...x: number[]) => void)(...args);
  };
  if (s.threads && T > 1) {
    s.threads.round(
      Array.from({ length: T - 1 }, (_, w) => {
        const c = call(w + 1);
        return c ? [c] : [];
      }),
      own,
    );
  } else own();

  const c = new Float32Array(s.memory.buffer, cp, tiles * MR * (ldc / 4));
  const ld = ldc / 4;
  const rowOf = (i: number) => (masked ? Math.floor(i / g) * RP + (i % g) : i);
  if (!view) {
    const out = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) out.set(c.subarray(rowOf(i) * ld, rowOf(i) * ld + cols), i * cols);
    return out;
  }
  // Compact in place: row i moves down from rowOf(i)·ld ≥ i·cols, in increasing i, so no row is
  // overwritten before it has moved.
  if (ld !== cols || masked) {
    for (let i = 0; i < rows; i++) c.copyWithin(i * cols, rowOf(i) * ld, rowOf(i) * ld + cols);
  }
  return c.subarray(0, rows * cols);
}
