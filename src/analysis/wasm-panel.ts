/**
 * The block product of a kernel row panel, `Y = P X` (P [rows, n] float32 or float64, X [n, b]
 * float64, Y [rows, b] float64, all row-major), in WebAssembly `f64x2` SIMD assembled byte by byte
 * (src/util/wasm-asm.ts). Four panel rows × four vector columns at a time: per column j of the
 * panel, two loads of X[j, c..c+3] serve the four rows (each P entry broadcast and promoted to
 * float64), eight accumulators. Float64 accumulation, the same sums in a fixed order whatever the
 * panel size, so a product is deterministic.
 *
 * {@link PanelProduct} owns the module's memory (grown to fit the panel, X and Y) and falls back to
 * plain JavaScript loops where WebAssembly SIMD is missing.
 */
import { availableParallelism } from 'node:os';
import { EntkError } from '../errors.js';
import {
  add,
  compileModule,
  funcBody,
  get,
  geU,
  I32,
  i32,
  incr,
  moduleBytes,
  mul,
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
  WasmThreads,
  wasmApi,
  whileNot,
} from '../util/index.js';

const ROWS = 4;
const COLS = 4;
const promoteLow = simd(0x5f); // f64x2.promote_low_f32x4

/** panel(P, X, Y, rows, n, b): rows a multiple of 4, b a multiple of 4; byte addresses. */
function panelBody(float32: boolean): number[] {
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
  const elem = float32 ? 4 : 8;
  const code: number[] = [];
  code.push(...get(N), ...i32(elem), ...mul, ...set(rowBytes));
  code.push(...get(B), ...shl3, ...set(xStride));
  for (let w = 0; w < ROWS; w++) code.push(...get(rowBytes), ...i32(w), ...mul, ...set(off[w]!));
  code.push(...i32(0), ...set(i));
  const inner: number[] = [];
  inner.push(...get(xp), ...vload(0), ...set(x0), ...get(xp), ...vload(16), ...set(x1));
  for (let w = 0; w < ROWS; w++) {
    inner.push(...get(kp), ...get(off[w]!), ...add);
    if (float32) inner.push(...vsplat32Load(0), ...promoteLow);
    else inner.push(...vsplat64Load(0));
    inner.push(...set(a));
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
    // Y + ((i + w)·b + c)·8
    const address = [
      ...get(Y),
      ...get(i),
      ...i32(w),
      ...add,
      ...get(B),
      ...mul,
      ...get(c),
      ...add,
      ...shl3,
      ...add,
    ];
    chunk.push(...address, ...get(acc[2 * w]!), ...vstore(0));
    chunk.push(...address, ...get(acc[2 * w + 1]!), ...vstore(16));
  }
  chunk.push(...incr(c, COLS));
  const rowBlock: number[] = [];
  rowBlock.push(...i32(0), ...set(c));
  rowBlock.push(...whileNot([...get(c), ...get(B), ...geU], chunk));
  rowBlock.push(...incr(i, ROWS));
  code.push(...whileNot([...get(i), ...get(R), ...geU], rowBlock));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
    ],
    code,
  );
}

interface PanelExports {
  panel32(p: number, x: number, y: number, rows: number, n: number, b: number): void;
  panel64(p: number, x: number, y: number, rows: number, n: number, b: number): void;
}

const cachedModules = new Map<boolean, ReturnType<typeof compileModule>>();
function panelModule(shared: boolean) {
  if (!cachedModules.has(shared)) {
    cachedModules.set(
      shared,
      compileModule(
        moduleBytes(
          [
            { name: 'panel32', params: 6, body: panelBody(true) },
            { name: 'panel64', params: 6, body: panelBody(false) },
          ],
          shared,
        ),
      ),
    );
  }
  return cachedModules.get(shared)!;
}

/** Panel products below this many columns stay on one thread (synchronisation would not pay). */
const THREAD_MIN_COLUMNS = 2000;

/** `y[r, :] = Σ_j panel[r, j] X[j, :]` for rows [from, rows) in plain loops (float64 accumulation). */
export function panelProductJs(
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
 * `multiply(panel, rows, y, yOffset)` per panel. WebAssembly SIMD where available ('wasm'), else
 * plain loops ('js'). Both compute each output as the same float64 sum over j in increasing order
 * for the rows the SIMD kernel covers; leftover rows (rows mod 4) use the loops.
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
  /** Bytes of the resident matrix at address 0 (0: none) and its entry size. */
  private residentSize = 0;
  private residentElem: 4 | 8 = 4;

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
      this.workers = new WasmThreads(
        module!,
        this.memory!,
        this.threads - 1,
        ['panel32', 'panel64'],
        'PanelProduct',
      );
    }
  }

  /** Stop the worker threads (also done when the object is garbage collected). */
  dispose(): void {
    this.workers?.dispose();
    this.workers = null;
  }

  private ensure(bytes: number): void {
    const have = this.memory!.buffer.byteLength;
    if (bytes > have) this.memory!.grow(Math.ceil((bytes - have) / WASM_PAGE));
  }

  /** The block X [n, b] (row-major) of the coming products. */
  setVectors(x: Float64Array, b: number): void {
    this.x = x;
    this.b = b;
    if (!this.exports) return;
    const n = this.n;
    this.bPadded = Math.ceil(b / COLS) * COLS;
    this.xPtr = this.residentSize;
    this.ensure(this.xPtr + n * this.bPadded * 8);
    const heap = new Float64Array(this.memory!.buffer, this.xPtr, n * this.bPadded);
    if (this.bPadded === b) heap.set(x);
    else {
      heap.fill(0);
      for (let j = 0; j < n; j++) heap.set(x.subarray(j * b, (j + 1) * b), j * this.bPadded);
    }
  }

  /**
   * Keep the whole n×n matrix (row-major, `elem` bytes per entry) at the start of the module's
   * memory, so that {@link multiplyResident} reads it in place: no copy per pass. Fill it through
   * {@link residentBytes}. False (nothing reserved) without WebAssembly.
   */
  reserveResident(elem: 4 | 8): boolean {
    if (!this.exports) return false;
    this.residentElem = elem;
    this.residentSize = Math.ceil((this.n * this.n * elem) / 16) * 16;
    this.ensure(this.residentSize + 2 * this.n * 16 * 8);
    return true;
  }

  /** A fresh byte view of the resident matrix (bytes [offset, offset + length)). */
  residentBytes(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.memory!.buffer, offset, length);
  }

  /** A fresh view of rows [start, start + rows) of the resident matrix. */
  residentPanel(start: number, rows: number): Float32Array | Float64Array {
    const n = this.n;
    const buffer = this.memory!.buffer as ArrayBuffer;
    const at = start * n * this.residentElem;
    return this.residentElem === 4
      ? new Float32Array(buffer, at, rows * n)
      : new Float64Array(buffer, at, rows * n);
  }

  /** y = K X for the resident matrix K and the block of {@link setVectors}. */
  multiplyResident(y: Float64Array): void {
    const n = this.n;
    const covered = n - (n % ROWS);
    if (covered > 0) this.run(0, covered, this.residentElem, y, 0);
    if (covered < n) panelProductJs(this.residentPanel(0, n), covered, n, n, this.x, this.b, y, 0);
  }

  /** y[(yOffset/b + r)·b + c] = (P X)[r, c] for the panel's `rows` rows. */
  multiply(panel: Float32Array | Float64Array, rows: number, y: Float64Array, yOffset: number): void {
    const n = this.n;
    const b = this.b;
    const covered = this.exports ? rows - (rows % ROWS) : 0;
    if (covered > 0) {
      const elem = panel instanceof Float32Array ? 4 : 8;
      const pPtr = this.xPtr + n * this.bPadded * 8 + covered * this.bPadded * 8;
      this.ensure(pPtr + covered * n * elem);
      const buffer = this.memory!.buffer;
      const src = panel.subarray(0, covered * n);
      if (elem === 4) new Float32Array(buffer, pPtr, covered * n).set(src);
      else new Float64Array(buffer, pPtr, covered * n).set(src);
      this.run(pPtr, covered, elem, y, yOffset);
    }
    if (covered < rows) panelProductJs(panel, covered, rows, n, this.x, b, y, yOffset);
  }

  /** The SIMD product of `covered` (a multiple of 4) panel rows at byte address pPtr, threads sharing the rows. */
  private run(pPtr: number, covered: number, elem: 4 | 8, y: Float64Array, yOffset: number): void {
    const n = this.n;
    const b = this.b;
    const bp = this.bPadded;
    const yPtr = this.xPtr + n * bp * 8;
    this.ensure(yPtr + covered * bp * 8);
    const fn = elem === 4 ? this.exports!.panel32 : this.exports!.panel64;
    // Row shares in multiples of 4: the caller takes the first, each worker one of the others.
    const T = (this.workers?.size ?? 0) + 1;
    const share = Math.ceil(covered / ROWS / T) * ROWS;
    const name = elem === 4 ? 'panel32' : 'panel64';
    const own = () => fn(pPtr, this.xPtr, yPtr, Math.min(covered, share), n, bp);
    if (!this.workers) own();
    else {
      const calls = Array.from({ length: T - 1 }, (_, w): WasmCall[] => {
        const start = Math.min(covered, (w + 1) * share);
        const rows = Math.min(covered, start + share) - start;
        return rows > 0
          ? [[name, pPtr + start * n * elem, this.xPtr, yPtr + start * bp * 8, rows, n, bp]]
          : [];
      });
      this.workers.round(calls, own);
    }
    const out = new Float64Array(this.memory!.buffer, yPtr, covered * bp);
    if (bp === b) y.set(out, yOffset);
    else for (let r = 0; r < covered; r++) y.set(out.subarray(r * bp, r * bp + b), yOffset + r * b);
  }
}
