/**
 * The block product of a kernel row panel, `Y = P X` (P [rows, n] float32 or float64, X [n, b]
 * float64, Y [rows, b] float64, all row-major), in WebAssembly SIMD assembled byte by byte
 * (src/util/wasm-asm.ts). Four panel rows × four (or eight) vector columns at a time, each P entry
 * broadcast once and used for every column.
 *
 * - float64 P: `f64x2` products, float64 sums over j in increasing order.
 * - float32 P: `f32x4` products with X rounded to float32, summed in float32 over blocks of
 *   {@link F32_BLOCK} consecutive columns j, each block sum added to a float64 accumulator in
 *   order. Twice the lanes of float64 and no promotion per entry; the float32 error stays within a
 *   block (≈ 32·2⁻²⁴ of the block's Σ|P_rj x_j|), the long sum over n is float64.
 *
 * Either way every output is the same sum in a fixed order whatever the panel size, thread count or
 * whether the rows are resident, so a product is deterministic ({@link panelProductJs} is the
 * plain-loop reference and fallback).
 *
 * {@link PanelProduct} owns the module's memory (grown to fit the panel, X and Y) and falls back to
 * plain JavaScript loops where WebAssembly SIMD is missing.
 */
import { readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { EntkError } from '../errors.js';
import {
  add,
  cachedModule,
  f32x4add,
  f32x4mul,
  funcBody,
  get,
  geU,
  I32,
  i32,
  incr,
  ltU,
  moduleBytes,
  mul,
  READ_ENDED_EARLY,
  set,
  shl3,
  simd,
  V128,
  f64x2add as vadd,
  vload,
  f64x2mul as vmul,
  vsplat32Load,
  vsplat64Load,
  vstore,
  vzero,
  WASM_PAGE,
  type WasmCall,
  type WasmMemory,
  type WasmModule,
  WasmThreads,
  wasmApi,
  whileNot,
} from '../util/index.js';

const ROWS = 4;
const COLS = 4;
/** Float32 products: terms j in blocks of this many are summed in float32, the block sums in float64. */
const F32_BLOCK = 32;
const promoteLow = simd(0x5f); // f64x2.promote_low_f32x4
/** i8x16.shuffle(v, v) moving the high 64 bits to the low half (for promote_low of lanes 2, 3). */
const highToLow = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const select = [0x1b];

/** panel64(P, X, Y, rows, n, b): rows a multiple of 4, b a multiple of 4; byte addresses. */
function panel64Body(): number[] {
  const [P, X, Y, R, N, B] = [0, 1, 2, 3, 4, 5];
  let next = 6;
  const i = next++;
  const j = next++;
  const c = next++;
  const kp = next++;
  const xp = next++;
  const rowBytes = next++;
  const xStride = next++;
  const off: number[] = [];
  for (let w = 0; w < ROWS; w++) off.push(next++);
  const numI32 = next - 6;
  const acc: number[] = [];
  for (let w = 0; w < ROWS * 2; w++) acc.push(next++);
  const x0 = next++;
  const x1 = next++;
  const a = next++;
  const numV128 = ROWS * 2 + 3;
  const elem = 8;
  const code: number[] = [];
  code.push(...get(N), ...i32(elem), ...mul, ...set(rowBytes));
  code.push(...get(B), ...shl3, ...set(xStride));
  for (let w = 0; w < ROWS; w++) code.push(...get(rowBytes), ...i32(w), ...mul, ...set(off[w]!));
  code.push(...i32(0), ...set(i));
  const inner: number[] = [];
  inner.push(...get(xp), ...vload(0), ...set(x0), ...get(xp), ...vload(16), ...set(x1));
  for (let w = 0; w < ROWS; w++) {
    inner.push(...get(kp), ...get(off[w]!), ...add, ...vsplat64Load(0), ...set(a));
    inner.push(...get(acc[2 * w]!), ...get(a), ...get(x0), ...vmul, ...vadd, ...set(acc[2 * w]!));
    inner.push(...get(acc[2 * w + 1]!), ...get(a), ...get(x1), ...vmul, ...vadd, ...set(acc[2 * w + 1]!));
  }
  inner.push(...incr(kp, elem), ...incr(xp, [...get(xStride)]), ...incr(j, 1));
  const chunk: number[] = [];
  chunk.push(...get(P), ...get(i), ...get(rowBytes), ...mul, ...add, ...set(kp));
  chunk.push(...get(X), ...get(c), ...shl3, ...add, ...set(xp));
  for (const v of acc) chunk.push(...vzero, ...set(v));
  chunk.push(...i32(0), ...set(j));
  chunk.push(...whileNot([...get(j), ...get(N), ...geU], inner));
  for (let w = 0; w < ROWS; w++) {
    const address = yAddress(Y, i, w, B, c);
    chunk.push(...address, ...get(acc[2 * w]!), ...vstore(0));
    chunk.push(...address, ...get(acc[2 * w + 1]!), ...vstore(16));
  }
  chunk.push(...incr(c, COLS));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
    ],
    rowLoop(code, i, c, R, B, chunk),
  );
}

/** Y + ((i + w)·b + c)·8 */
function yAddress(Y: number, i: number, w: number, B: number, c: number): number[] {
  return [...get(Y), ...get(i), ...i32(w), ...add, ...get(B), ...mul, ...get(c), ...add, ...shl3, ...add];
}

/** `code`, then for i over rows in steps of 4: for c over columns: `chunk` (which advances c). */
function rowLoop(code: number[], i: number, c: number, R: number, B: number, chunk: number[]): number[] {
  const rowBlock: number[] = [];
  rowBlock.push(...i32(0), ...set(c));
  rowBlock.push(...whileNot([...get(c), ...get(B), ...geU], chunk));
  rowBlock.push(...incr(i, ROWS));
  return [...code, ...whileNot([...get(i), ...get(R), ...geU], rowBlock)];
}

/**
 * panel32(P, X, Y, rows, n, b) with P float32 and X float32 [n, b] (the vectors rounded to float32):
 * four rows × 4·groups columns at a time; per column j one f32x4 load of X per group serves the four
 * rows (each P entry broadcast), products and sums in float32 over blocks of {@link F32_BLOCK}
 * columns, each block sum promoted and added to float64 accumulators. b a multiple of 4·groups.
 */
function panel32Body(groups: number): number[] {
  const [P, X, Y, R, N, B] = [0, 1, 2, 3, 4, 5];
  let next = 6;
  const i = next++;
  const j = next++;
  const jEnd = next++;
  const c = next++;
  const kp = next++;
  const xp = next++;
  const rowBytes = next++;
  const xStride = next++;
  const off: number[] = [];
  for (let w = 0; w < ROWS; w++) off.push(next++);
  const numI32 = next - 6;
  const firstV = next;
  const part: number[] = []; // float32 block sums [w][g]
  for (let w = 0; w < ROWS * groups; w++) part.push(next++);
  const acc: number[] = []; // float64 sums [w][g][half]
  for (let w = 0; w < ROWS * groups * 2; w++) acc.push(next++);
  const xs: number[] = [];
  for (let g = 0; g < groups; g++) xs.push(next++);
  const a = next++;
  const numV128 = next - firstV;
  const code: number[] = [];
  code.push(...get(N), ...i32(4), ...mul, ...set(rowBytes));
  code.push(...get(B), ...i32(4), ...mul, ...set(xStride));
  for (let w = 0; w < ROWS; w++) code.push(...get(rowBytes), ...i32(w), ...mul, ...set(off[w]!));
  code.push(...i32(0), ...set(i));
  const inner: number[] = [];
  for (let g = 0; g < groups; g++) inner.push(...get(xp), ...vload(16 * g), ...set(xs[g]!));
  for (let w = 0; w < ROWS; w++) {
    inner.push(...get(kp), ...get(off[w]!), ...add, ...vsplat32Load(0), ...set(a));
    for (let g = 0; g < groups; g++) {
      const p = part[w * groups + g]!;
      inner.push(...get(p), ...get(a), ...get(xs[g]!), ...f32x4mul, ...f32x4add, ...set(p));
    }
  }
  inner.push(...incr(kp, 4), ...incr(xp, [...get(xStride)]), ...incr(j, 1));
  const block: number[] = [];
  // jEnd = min(j + F32_BLOCK, n)
  block.push(...get(j), ...i32(F32_BLOCK), ...add, ...get(N));
  block.push(...get(j), ...i32(F32_BLOCK), ...add, ...get(N), ...ltU, ...select, ...set(jEnd));
  for (const p of part) block.push(...vzero, ...set(p));
  block.push(...whileNot([...get(j), ...get(jEnd), ...geU], inner));
  for (let q = 0; q < part.length; q++) {
    const p = part[q]!;
    block.push(...get(acc[2 * q]!), ...get(p), ...promoteLow, ...vadd, ...set(acc[2 * q]!));
    block.push(...get(acc[2 * q + 1]!), ...get(p), ...get(p), ...highToLow, ...promoteLow, ...vadd);
    block.push(...set(acc[2 * q + 1]!));
  }
  const chunk: number[] = [];
  chunk.push(...get(P), ...get(i), ...get(rowBytes), ...mul, ...add, ...set(kp));
  chunk.push(...get(X), ...get(c), ...i32(4), ...mul, ...add, ...set(xp));
  for (const v of acc) chunk.push(...vzero, ...set(v));
  chunk.push(...i32(0), ...set(j));
  chunk.push(...whileNot([...get(j), ...get(N), ...geU], block));
  for (let w = 0; w < ROWS; w++) {
    const address = yAddress(Y, i, w, B, c);
    for (let g = 0; g < groups; g++) {
      const q = w * groups + g;
      chunk.push(...address, ...get(acc[2 * q]!), ...vstore(32 * g));
      chunk.push(...address, ...get(acc[2 * q + 1]!), ...vstore(32 * g + 16));
    }
  }
  chunk.push(...incr(c, COLS * groups));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
    ],
    rowLoop(code, i, c, R, B, chunk),
  );
}

interface PanelExports {
  panel32x4(p: number, x: number, y: number, rows: number, n: number, b: number): void;
  panel32x8(p: number, x: number, y: number, rows: number, n: number, b: number): void;
  panel64(p: number, x: number, y: number, rows: number, n: number, b: number): void;
}
type PanelFunction = keyof PanelExports;
/** What the threads call: the kernels and WasmThreads' built-in file read (src/util/workers.ts). */
const THREAD_CALLS = ['panel32x4', 'panel32x8', 'panel64', 'readInto'];
/** Panels per thread per round of {@link PanelProduct.readMultiply} (their two calls each fit a thread's call list). */
const PANELS_PER_ROUND = 8;

/** Fill `memory` [ptr, ptr + length) from file descriptor `fd` at `position` (as the threads' `readInto`). */
function readInto(memory: WasmMemory, fd: number, ptr: number, length: number, position: number): void {
  for (let done = 0; done < length; ) {
    const view = new Uint8Array(memory.buffer, ptr + done, length - done);
    const got = readSync(fd, view, 0, length - done, position + done);
    if (got === 0) throw new Error(READ_ENDED_EARLY);
    done += got;
  }
}

function panelModule(shared: boolean): WasmModule | null {
  return cachedModule(`panel:${shared}`, () =>
    moduleBytes(
      [
        { name: 'panel32x4', params: 6, body: panel32Body(1) },
        { name: 'panel32x8', params: 6, body: panel32Body(2) },
        { name: 'panel64', params: 6, body: panel64Body() },
      ],
      shared,
    ),
  );
}

/** Panel products below this many columns stay on one thread (synchronisation would not pay). */
const THREAD_MIN_COLUMNS = 2000;

const f32 = Math.fround;

/**
 * `y[r, :] = Σ_j panel[r, j] X[j, :]` for rows [from, rows) in plain loops: the reference of the
 * SIMD kernels, bit for bit. A float64 panel: float64 products summed over j in increasing order. A
 * float32 panel: the float32 products `P_rj · fl32(X_jc)` summed in float32 over blocks of
 * {@link F32_BLOCK} consecutive j, the block sums added in float64 in increasing order.
 */
function panelProductJs(
  panel: Float32Array | Float64Array,
  from: number,
  rows: number,
  n: number,
  x: Float64Array,
  b: number,
  y: Float64Array,
  yOffset: number,
): void {
  const acc = new Float64Array(b);
  if (panel instanceof Float32Array) {
    const x32 = Float32Array.from(x);
    const part = new Float32Array(b);
    for (let r = from; r < rows; r++) {
      acc.fill(0);
      const row = r * n;
      for (let j0 = 0; j0 < n; j0 += F32_BLOCK) {
        part.fill(0);
        for (let j = j0; j < Math.min(n, j0 + F32_BLOCK); j++) {
          const v = panel[row + j]!;
          const xo = j * b;
          for (let c = 0; c < b; c++) part[c] = part[c]! + f32(v * x32[xo + c]!);
        }
        for (let c = 0; c < b; c++) acc[c] = acc[c]! + part[c]!;
      }
      y.set(acc, yOffset + r * b);
    }
    return;
  }
  for (let r = from; r < rows; r++) {
    acc.fill(0);
    const row = r * n;
    for (let j = 0; j < n; j++) {
      const v = panel[row + j]!;
      const xo = j * b;
      for (let c = 0; c < b; c++) acc[c] = acc[c]! + v * x[xo + c]!;
    }
    y.set(acc, yOffset + r * b);
  }
}

/**
 * Panel products with one block X at a time: `setVectors(X, b)` once per pass, then
 * `multiply(panel, rows, y, yOffset)` per panel, or {@link multiplyReserved} for rows held in the
 * module's own memory (a resident matrix, or panels read straight into it). WebAssembly SIMD where
 * available ('wasm'), else plain loops ('js'); both compute every output as the same sums in the
 * same order ({@link panelProductJs}); leftover rows (rows mod 4) use the loops.
 *
 * Memory layout: [reserved region | X float64 | X float32 | Y | panel copy].
 */
export class PanelProduct {
  readonly backend: 'wasm' | 'js';
  /** Threads one product is split over (the caller's plus workers). */
  readonly threads: number;
  private readonly n: number;
  /** Threads sharing the rows with the caller's (src/util/workers.ts), null with one thread. */
  private workers: WasmThreads | null = null;
  private memory: WasmMemory | null = null;
  private exports: PanelExports | null = null;
  private x: Float64Array = new Float64Array(0);
  private b = 0;
  private bPadded = 0;
  private xPtr = 0;
  private x32Ptr = 0;
  private yPtr = 0;
  /** Bytes reserved at address 0 (0: none) and the entry size of the matrix rows kept there. */
  private reservedSize = 0;
  private reservedElem: 4 | 8 = 4;
  private released = false;

  /**
   * @param threads threads per product (WebAssembly only; rows are split, each sum is unchanged, so
   *   results are bitwise the same for any count), or 'auto': min(2, cores) for n ≥ 2000, else 1.
   */
  constructor(n: number, backend: 'wasm' | 'js' | 'auto' = 'auto', threads: number | 'auto' = 'auto') {
    this.n = n;
    let t =
      threads === 'auto' ? (n >= THREAD_MIN_COLUMNS ? Math.min(2, availableParallelism()) : 1) : threads;
    if (!Number.isInteger(t) || t < 1)
      throw new EntkError(`PanelProduct: threads must be a positive integer, got ${t}`);
    if (typeof SharedArrayBuffer === 'undefined' || !panelModule(true)) t = 1;
    const module = backend === 'js' ? null : panelModule(t > 1);
    if (module && wasmApi) {
      this.memory =
        t > 1
          ? new wasmApi.Memory({ initial: 1, maximum: 65536, shared: true })
          : new wasmApi.Memory({ initial: 1 });
      this.exports = new wasmApi.Instance(module, { env: { mem: this.memory } }).exports as PanelExports;
    }
    this.backend = this.exports ? 'wasm' : 'js';
    this.threads = this.exports ? t : 1;
    if (this.threads > 1) {
      this.workers = new WasmThreads(module!, this.memory!, this.threads - 1, THREAD_CALLS, 'PanelProduct');
    }
  }

  /**
   * Stop the worker threads (also done when the object is garbage collected) and drop the module's
   * memory (with any rows held there). Idempotent; the product must not be used afterwards.
   */
  dispose(): void {
    this.workers?.dispose();
    this.workers = null;
    this.memory = null;
    this.exports = null;
    this.x = new Float64Array(0);
    this.released = true;
  }

  /** Whether {@link dispose} has run. */
  get disposed(): boolean {
    return this.released;
  }

  private ensure(bytes: number): void {
    const have = this.memory!.buffer.byteLength;
    if (bytes > have) this.memory!.grow(Math.ceil((bytes - have) / WASM_PAGE));
  }

  /**
   * The block X [n, b] (row-major) of the coming products. The module's memory grows here (room for
   * X and all n rows of Y), never during {@link multiplyReserved}, so views of the reserved region
   * stay valid through a pass.
   */
  setVectors(x: Float64Array, b: number): void {
    this.x = x;
    this.b = b;
    if (!this.exports) return;
    const n = this.n;
    const bp = Math.ceil(b / COLS) * COLS;
    this.bPadded = bp;
    this.xPtr = this.reservedSize;
    this.x32Ptr = this.xPtr + n * bp * 8;
    this.yPtr = this.x32Ptr + Math.ceil((n * bp * 4) / 16) * 16;
    this.ensure(this.yPtr + n * bp * 8);
    const heap = new Float64Array(this.memory!.buffer, this.xPtr, n * bp);
    if (bp === b) heap.set(x);
    else {
      heap.fill(0);
      for (let j = 0; j < n; j++) heap.set(x.subarray(j * b, (j + 1) * b), j * bp);
    }
    new Float32Array(this.memory!.buffer, this.x32Ptr, n * bp).set(heap);
  }

  /**
   * Reserve `bytes` at the start of the module's memory for rows of the matrix (`elem` bytes per
   * entry) that {@link multiplyReserved} reads in place: the whole matrix (resident), or panels read
   * straight from a file. Fill it through {@link reservedBytes}. False (nothing reserved) without
   * WebAssembly.
   */
  reserve(bytes: number, elem: 4 | 8): boolean {
    if (!this.exports) return false;
    this.reservedElem = elem;
    this.reservedSize = Math.ceil(bytes / 16) * 16;
    this.ensure(this.reservedSize + 2 * this.n * 16 * 8);
    return true;
  }

  /** A fresh byte view of the reserved region (bytes [offset, offset + length)). */
  reservedBytes(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.memory!.buffer, offset, length);
  }

  /** A fresh view of `rows` rows of the reserved region from byte `offset`. */
  reservedPanel(offset: number, rows: number): Float32Array | Float64Array {
    const n = this.n;
    const buffer = this.memory!.buffer as ArrayBuffer;
    return this.reservedElem === 4
      ? new Float32Array(buffer, offset, rows * n)
      : new Float64Array(buffer, offset, rows * n);
  }

  /** y[yOffset + r·b + c] = (P X)[r, c] for the `rows` rows P of the reserved region at byte `offset`. */
  multiplyReserved(offset: number, rows: number, y: Float64Array, yOffset: number): void {
    const covered = rows - (rows % ROWS);
    if (covered > 0) this.run(offset, covered, this.reservedElem, y, yOffset);
    if (covered < rows)
      panelProductJs(this.reservedPanel(offset, rows), covered, rows, this.n, this.x, this.b, y, yOffset);
  }

  /** y[(yOffset/b + r)·b + c] = (P X)[r, c] for the panel's `rows` rows. */
  multiply(panel: Float32Array | Float64Array, rows: number, y: Float64Array, yOffset: number): void {
    const n = this.n;
    const b = this.b;
    const covered = this.exports ? rows - (rows % ROWS) : 0;
    if (covered > 0) {
      const elem = panel instanceof Float32Array ? 4 : 8;
      // after Y, which setVectors sized for n rows (a panel may have more rows than n)
      const pPtr = this.yPtr + Math.max(n, covered) * this.bPadded * 8;
      this.ensure(pPtr + covered * n * elem);
      const buffer = this.memory!.buffer;
      const src = panel.subarray(0, covered * n);
      if (elem === 4) new Float32Array(buffer, pPtr, covered * n).set(src);
      else new Float64Array(buffer, pPtr, covered * n).set(src);
      this.run(pPtr, covered, elem, y, yOffset);
    }
    if (covered < rows) panelProductJs(panel, covered, rows, n, this.x, b, y, yOffset);
  }

  /**
   * `y = K X` for the whole matrix read from the open file `fd` (rows from byte `dataOffset`, entries
   * of the reserved element size) during the product: in panels of `panelRows` rows (a multiple of
   * 4), thread t (0: the caller's) reading panels t, t + T, t + 2T, … itself (`readSync`) into the
   * reserved region at byte `place(start, t)` and multiplying each while it is in the cache. The last
   * n mod 4 rows are read by the caller into `place(covered, 0)` and use the loops. Throws an Error
   * whose message contains READ_ENDED_EARLY (src/util/workers.ts) when the file is shorter than n rows.
   */
  readMultiply(
    fd: number,
    dataOffset: number,
    panelRows: number,
    place: (start: number, thread: number) => number,
    y: Float64Array,
  ): void {
    const n = this.n;
    const b = this.b;
    const bp = this.bPadded;
    const elem = this.reservedElem;
    const rowBytes = n * elem;
    const covered = n - (n % ROWS);
    const name: PanelFunction = elem === 8 ? 'panel64' : bp % 8 === 0 ? 'panel32x8' : 'panel32x4';
    const xPtr = elem === 8 ? this.xPtr : this.x32Ptr;
    const fn = this.exports![name];
    const T = (this.workers?.size ?? 0) + 1;
    const panels = Math.ceil(covered / panelRows);
    const calls = (p: number, t: number): WasmCall[] => {
      const start = p * panelRows;
      const rows = Math.min(panelRows, covered - start);
      const at = place(start, t);
      return [
        ['readInto', fd, at, rows * rowBytes, dataOffset + start * rowBytes],
        [name, at, xPtr, this.yPtr + start * bp * 8, rows, n, bp],
      ];
    };
    for (let first = 0; first < panels; first += PANELS_PER_ROUND * T) {
      const share = (t: number): WasmCall[] => {
        const list: WasmCall[] = [];
        for (let q = 0; q < PANELS_PER_ROUND; q++) {
          const p = first + q * T + t;
          if (p < panels) list.push(...calls(p, t));
        }
        return list;
      };
      const own = () => {
        for (const [call, ...args] of share(0)) {
          if (call === 'readInto') readInto(this.memory!, args[0]!, args[1]!, args[2]!, args[3]!);
          else fn(args[0]!, args[1]!, args[2]!, args[3]!, args[4]!, args[5]!);
        }
      };
      if (!this.workers) own();
      else
        this.workers.round(
          Array.from({ length: T - 1 }, (_, w) => share(w + 1)),
          own,
        );
    }
    this.copyOut(covered, y, 0);
    if (covered < n) {
      const at = place(covered, 0);
      readInto(this.memory!, fd, at, (n - covered) * rowBytes, dataOffset + covered * rowBytes);
      panelProductJs(this.reservedPanel(at, n - covered), 0, n - covered, n, this.x, b, y, covered * b);
    }
  }

  /** Rows [0, rows) of the module's Y into y from yOffset (dropping the padding columns). */
  private copyOut(rows: number, y: Float64Array, yOffset: number): void {
    const b = this.b;
    const bp = this.bPadded;
    const out = new Float64Array(this.memory!.buffer, this.yPtr, rows * bp);
    if (bp === b) y.set(out, yOffset);
    else for (let r = 0; r < rows; r++) y.set(out.subarray(r * bp, r * bp + b), yOffset + r * b);
  }

  /** The SIMD product of `covered` (a multiple of 4) panel rows at byte address pPtr, threads sharing the rows. */
  private run(pPtr: number, covered: number, elem: 4 | 8, y: Float64Array, yOffset: number): void {
    const n = this.n;
    const bp = this.bPadded;
    const yPtr = this.yPtr;
    const name: PanelFunction = elem === 8 ? 'panel64' : bp % 8 === 0 ? 'panel32x8' : 'panel32x4';
    const xPtr = elem === 8 ? this.xPtr : this.x32Ptr;
    const fn = this.exports![name];
    // Row shares in multiples of 4: the caller takes the first, each worker one of the others.
    const T = (this.workers?.size ?? 0) + 1;
    const share = Math.ceil(covered / ROWS / T) * ROWS;
    const own = () => fn(pPtr, xPtr, yPtr, Math.min(covered, share), n, bp);
    if (!this.workers) own();
    else {
      const calls = Array.from({ length: T - 1 }, (_, w): WasmCall[] => {
        const start = Math.min(covered, (w + 1) * share);
        const rows = Math.min(covered, start + share) - start;
        return rows > 0 ? [[name, pPtr + start * n * elem, xPtr, yPtr + start * bp * 8, rows, n, bp]] : [];
      });
      this.workers.round(calls, own);
    }
    this.copyOut(covered, y, yOffset);
  }
}
