/**
 * Symmetric kernel matrices as operators: what the spectrum and alignment code needs from a kernel
 * is its size, block products `K X` (X an n×b block of vectors) and one pass of statistics. Two
 * sources:
 *
 * - {@link denseKernelMatrix}: a matrix held in memory (Float32Array or Float64Array, row-major);
 * - {@link npyKernelMatrix}: a square `.npy` file (e.g. a store's kernel.npy), held in WebAssembly
 *   memory after the first product or read in row panels on every product, so a kernel too large
 *   to hold twice — or at all — can still be analysed: memory ≈ one panel per product thread + the
 *   vectors. Each product thread reads its own panels (`readSync` into WebAssembly memory) and
 *   multiplies them while they are in the cache, so reading and multiplying share the cores.
 *
 * Products accumulate in float64 (./wasm-panel.ts: WebAssembly SIMD, or plain loops; float32
 * entries in float32 over blocks of 32 columns first; the same sums in the same order in every
 * mode). A product with b vectors reads the matrix once, so block methods (block Lanczos) pay one
 * pass for b matrix–vector products.
 */
import { closeSync, promises as fs, openSync } from 'node:fs';
import {
  assertArgument,
  CorruptFileError,
  EntkError,
  InvalidArgumentError,
  UnsupportedError,
} from '../errors.js';
import { readNpyHeader } from '../io/index.js';
import { READ_ENDED_EARLY } from '../util/index.js';
import { PanelProduct } from './wasm-panel.js';

/** One pass over the matrix: its diagonal, row sums, trace and squared Frobenius norm. */
export interface KernelMatrixStats {
  diagonal: Float64Array;
  /** Σ_j K_ij (= K 1) */
  rowSums: Float64Array;
  /** Σ_i K_ii */
  trace: number;
  /** ‖K‖_F² = Σ_ij K_ij² (= Σ λ² for a symmetric K) */
  frobenius2: number;
}

/** A symmetric n×n matrix that can multiply blocks of vectors. */
export interface KernelMatrix {
  /** n */
  readonly size: number;
  /** Where the entries live ('memory' or the file). */
  readonly source: string;
  /**
   * The arithmetic of the products: 'float32' for float32 entries (f32 products summed in float32
   * over blocks of 32 columns, ≈ 1e-7 relative error), 'float64' otherwise. Absent = 'float64'.
   * Iterative solvers set their default tolerance from it.
   */
  readonly precision?: 'float32' | 'float64';
  /**
   * `Y = K X` for a block of b vectors, X row-major [n, b] (x_c at X[j·b + c]); returns Y [n, b].
   */
  multiply(x: Float64Array, b: number): Promise<Float64Array>;
  /**
   * Visit the matrix in row panels (rows [start, start + rows), all n columns, row-major), in
   * order. The panel array is reused: copy what you keep.
   */
  forEachPanel(
    visit: (start: number, rows: number, panel: Float32Array | Float64Array) => void,
  ): Promise<void>;
  /** Number of complete passes over the entries so far (products and panel visits). */
  readonly passes: number;
  /**
   * Release what the matrix holds (product threads, WebAssembly memory — for a resident `.npy`
   * kernel, all of its entries —, the reference to in-memory data); products and panel visits throw
   * afterwards. Idempotent. The matrices of {@link denseKernelMatrix} and {@link npyKernelMatrix}
   * have it; an operator of your own may leave it out.
   */
  dispose?(): void;
}

function checkBlock(x: Float64Array, b: number, n: number): void {
  assertArgument(Number.isInteger(b) && b >= 1, 'b', b, 'a positive integer (vectors per block)');
  assertArgument(x instanceof Float64Array && x.length === n * b, 'x', x, `a Float64Array [${n}, ${b}]`);
}

/** Where block products run: WebAssembly SIMD ('wasm'), plain loops ('js'), or 'auto' (wasm where available). */
export type ProductBackend = 'wasm' | 'js' | 'auto';

/** A symmetric matrix held in memory, row-major n×n. The caller keeps it symmetric. */
export function denseKernelMatrix(
  data: Float32Array | Float64Array,
  n: number,
  options: { backend?: ProductBackend; threads?: number | 'auto' } = {},
): Required<KernelMatrix> {
  assertArgument(Number.isInteger(n) && n >= 1, 'n', n, 'a positive integer');
  assertArgument(
    (data instanceof Float32Array || data instanceof Float64Array) && data.length === n * n,
    'data',
    data,
    `a Float32Array or Float64Array of length n² = ${n * n}`,
  );
  let passes = 0;
  const product = new PanelProduct(n, options.backend, options.threads);
  // Reached only through `entries`, so that dispose() drops the reference.
  let entries: Float32Array | Float64Array | null = data;
  return {
    size: n,
    source: 'memory',
    precision: data instanceof Float32Array ? 'float32' : 'float64',
    get passes() {
      return passes;
    },
    async multiply(x, b) {
      const y = startProduct(product, x, b, n, 'memory');
      product.multiply(entries!, n, y, 0);
      passes++;
      return y;
    },
    async forEachPanel(visit) {
      checkLive(product, 'memory');
      visit(0, n, entries!);
      passes++;
    },
    dispose() {
      product.dispose();
      entries = null;
    },
  };
}

/** Options of {@link npyKernelMatrix}. */
export interface NpyKernelMatrixOptions {
  /**
   * Bytes of one row panel read from the file at a time: a product holds one per thread (rounded
   * down to a multiple of 4 rows, at least 4), a panel visit two (one read ahead). Default 4 MiB:
   * a panel is multiplied while still in the cache.
   */
  panelBytes?: number;
  /** Where block products run. Default 'auto'. */
  backend?: ProductBackend;
  /**
   * Threads per product (rows split; bitwise the same result), or 'auto': 2 when there are two
   * cores and n ≥ 2000, else 1. Default 'auto'.
   */
  threads?: number | 'auto';
  /**
   * Where the entries live between passes: 'stream' (read in row panels from disk on every pass:
   * memory one panel per product thread), 'memory' (read once into the product's WebAssembly memory — during the
   * first product, each panel multiplied as it arrives — where every later product reads them in
   * place: memory one copy of the file's data; needs WebAssembly and at most
   * {@link RESIDENT_MAX_BYTES} of data), or 'auto' (= 'stream'). Both give bitwise the same
   * products. Default 'auto': streamed, because a file that would fit in memory also stays in the
   * operating system's page cache, and re-reading it from there (≈ 0.13 s per 1.6 GB here) costs
   * less than first touching as much fresh memory (≈ 4–7 CPU-seconds for 1.5 GiB on the benchmark
   * VM): top-20 of 20000², quiet machine, streamed 6.2 s vs held 10.2 s (bench/measured).
   */
  residency?: 'stream' | 'memory' | 'auto';
}

/** Largest matrix (bytes of entries) held in a 32-bit WebAssembly memory, with room for the vectors. */
const RESIDENT_MAX_BYTES = 3.5 * 2 ** 30;

/**
 * A square float32/float64 `.npy` file as a {@link KernelMatrix}: held in memory after the first
 * pass, or read in row panels from disk on every pass (see `residency`). Only the header is read up
 * front. The file must hold a symmetric matrix (a full or trace kernel of an unsharded store is);
 * symmetry is not checked here.
 */
export async function npyKernelMatrix(
  file: string,
  options: NpyKernelMatrixOptions = {},
): Promise<Required<KernelMatrix>> {
  const header = await readNpyHeader(file);
  const { shape, dtype } = header;
  if (shape.length !== 2 || shape[0] !== shape[1] || shape[0]! < 1) {
    throw new InvalidArgumentError('file', file, `a square 2-D array (this one is [${shape.join(', ')}])`);
  }
  if (dtype !== 'float32' && dtype !== 'float64') {
    throw new UnsupportedError(`${file}: kernel dtype ${dtype} (expected float32 or float64)`);
  }
  if (header.bigEndian) throw new UnsupportedError(`${file}: big-endian .npy files`);
  const n = shape[0]!;
  const item = dtype === 'float32' ? 4 : 8;
  const rowBytes = n * item;
  const panelBytes = options.panelBytes ?? 4 * 2 ** 20;
  assertArgument(panelBytes > 0, 'panelBytes', panelBytes, 'a positive number of bytes');
  const panelRows = Math.max(1, Math.min(n, Math.floor(panelBytes / rowBytes)));
  const stat = await fs.stat(file);
  if (stat.size < header.dataOffset + n * rowBytes) {
    throw new CorruptFileError(
      file,
      `truncated: ${stat.size} bytes, the header needs ${header.dataOffset + n * rowBytes}`,
    );
  }
  const residency = options.residency ?? 'auto';
  assertArgument(
    residency === 'stream' || residency === 'memory' || residency === 'auto',
    'residency',
    residency,
    "'stream', 'memory' or 'auto'",
  );
  const product = new PanelProduct(n, options.backend, options.threads);
  const dataBytes = n * rowBytes;
  const resident = residency === 'memory';
  if (resident && (dataBytes > RESIDENT_MAX_BYTES || product.backend !== 'wasm')) {
    throw new UnsupportedError(
      `${file}: holding ${dataBytes} bytes in WebAssembly memory (needs WebAssembly and at most ${RESIDENT_MAX_BYTES} bytes; use residency 'stream')`,
    );
  }
  const source: PanelSource = { file, dataOffset: header.dataOffset, n, rowBytes, panelRows };
  // Panels land in the product's WebAssembly memory (its reserved region: the whole matrix, or two
  // panel slots), so products read them in place; without WebAssembly, in two plain buffers.
  const slotBytes = panelRows * rowBytes;
  // Products read their panels on the product's threads, each into its own slot of `threadRows`
  // rows (a multiple of 4, for the SIMD kernel); panel visits use two slots of `panelRows`.
  const threadRows = Math.max(4, panelRows - (panelRows % 4));
  const threadSlot = threadRows * rowBytes;
  const inWasm = product.reserve(
    resident ? dataBytes : Math.max(2 * slotBytes, product.threads * threadSlot),
    item,
  );
  const buffers = inWasm ? [] : [new ArrayBuffer(slotBytes), new ArrayBuffer(slotBytes)];
  let loaded = false; // resident: the whole matrix has been read
  /** Byte offset in the reserved region where the panel from row `start` (slot `slot`) lands. */
  const place = (start: number, slot: number) => (resident ? start * rowBytes : slot * slotBytes);
  let passes = 0;

  /** One pass: every panel in order, `visit(start, rows, offset)` once it is in place. */
  async function pass(visit: (start: number, rows: number, offset: number, slot: number) => void) {
    if (resident && loaded) {
      for (let start = 0; start < n; start += panelRows)
        visit(start, Math.min(panelRows, n - start), place(start, 0), 0);
    } else {
      const target = (start: number, rows: number, slot: number) =>
        inWasm
          ? product.reservedBytes(place(start, slot), rows * rowBytes)
          : new Uint8Array(buffers[slot]!, 0, rows * rowBytes);
      await readPanels(source, target, (start, rows, slot) => visit(start, rows, place(start, slot), slot));
      loaded = resident;
    }
    passes++;
  }

  return {
    size: n,
    source: file,
    precision: dtype,
    get passes() {
      return passes;
    },
    async multiply(x, b) {
      const y = startProduct(product, x, b, n, file);
      if (resident && loaded) {
        product.multiplyReserved(0, n, y, 0);
        passes++;
      } else if (inWasm) {
        // Each thread reads its own panels and multiplies them while they are in the cache
        // (resident: into their final place, so the first product also loads the matrix).
        const fd = openSync(file, 'r');
        try {
          const at = (start: number, thread: number) => (resident ? start * rowBytes : thread * threadSlot);
          product.readMultiply(fd, header.dataOffset, threadRows, at, y);
        } catch (error) {
          if (String(error).includes(READ_ENDED_EARLY)) throw new CorruptFileError(file, 'ended early');
          throw error;
        } finally {
          closeSync(fd);
        }
        loaded = resident;
        passes++;
      } else {
        await pass((start, rows, _offset, slot) =>
          product.multiply(panelView(buffers[slot]!, 0, rows * n, item), rows, y, start * b),
        );
      }
      return y;
    },
    async forEachPanel(visit) {
      checkLive(product, file);
      await pass((start, rows, offset, slot) =>
        visit(
          start,
          rows,
          inWasm ? product.reservedPanel(offset, rows) : panelView(buffers[slot]!, 0, rows * n, item),
        ),
      );
    },
    dispose() {
      product.dispose();
      buffers.length = 0;
    },
  };
}

function panelView(
  buffer: ArrayBuffer,
  offset: number,
  length: number,
  item: 4 | 8,
): Float32Array | Float64Array {
  return item === 4 ? new Float32Array(buffer, offset, length) : new Float64Array(buffer, offset, length);
}

/** Where a .npy matrix's rows are: the file, the data offset, n, bytes per row, rows per panel. */
interface PanelSource {
  file: string;
  dataOffset: number;
  n: number;
  rowBytes: number;
  panelRows: number;
}

/**
 * Read the rows in panels, in order, one read ahead: panel k goes into `target(start, rows, k mod 2)`
 * and `visit(start, rows, k mod 2)` runs once it is there, while panel k + 1 is being read.
 */
async function readPanels(
  { file, dataOffset, n, rowBytes, panelRows }: PanelSource,
  target: (start: number, rows: number, slot: number) => Uint8Array,
  visit: (start: number, rows: number, slot: number) => void,
): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    const read = async (start: number, slot: number) => {
      const rows = Math.min(panelRows, n - start);
      await readFully(handle, file, target(start, rows, slot), dataOffset + start * rowBytes);
      return rows;
    };
    let slot = 0;
    let pending = read(0, slot);
    for (let start = 0; start < n; start += panelRows) {
      const rows = await pending;
      const next = start + panelRows;
      if (next < n) pending = read(next, 1 - slot);
      visit(start, rows, slot);
      slot = 1 - slot;
    }
  } finally {
    await handle.close();
  }
}

/** Fill `bytes` from the file at `position`; a file that ends first is corrupt. */
async function readFully(
  handle: fs.FileHandle,
  file: string,
  bytes: Uint8Array,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesRead } = await handle.read(bytes, done, bytes.length - done, position + done);
    if (bytesRead === 0) throw new CorruptFileError(file, 'ended early');
    done += bytesRead;
  }
}

/** `use(matrix)`, then release the matrix (also when `use` throws). */
export async function usingKernelMatrix<T>(
  matrix: Required<KernelMatrix>,
  use: (matrix: KernelMatrix) => Promise<T>,
): Promise<T> {
  try {
    return await use(matrix);
  } finally {
    matrix.dispose();
  }
}

/** Refuse a matrix (named by its source) whose product was released by dispose(). */
function checkLive(product: PanelProduct, source: string): void {
  if (product.disposed) throw new EntkError(`KernelMatrix (${source}): used after dispose()`);
}

/** Check the block X [n, b], hand it to the product; the zeroed Y [n, b] to accumulate K X into. */
function startProduct(
  product: PanelProduct,
  x: Float64Array,
  b: number,
  n: number,
  source: string,
): Float64Array {
  checkLive(product, source);
  checkBlock(x, b, n);
  product.setVectors(x, b);
  return new Float64Array(n * b);
}

/** Diagonal, row sums, trace and squared Frobenius norm in one pass. */
export async function kernelMatrixStats(matrix: KernelMatrix): Promise<KernelMatrixStats> {
  const n = matrix.size;
  const diagonal = new Float64Array(n);
  const rowSums = new Float64Array(n);
  let frobenius2 = 0;
  await matrix.forEachPanel((start, rows, panel) => {
    for (let r = 0; r < rows; r++) {
      diagonal[start + r] = panel[r * n + start + r]!;
      let sum = 0;
      let sq = 0;
      for (let j = r * n; j < (r + 1) * n; j++) {
        const v = panel[j]!;
        sum += v;
        sq += v * v;
      }
      rowSums[start + r] = sum;
      frobenius2 += sq;
    }
  });
  let trace = 0;
  for (let i = 0; i < n; i++) trace += diagonal[i]!;
  return { diagonal, rowSums, trace, frobenius2 };
}

/** The whole matrix in memory as Float64Array (row-major), e.g. for a full eigen-decomposition. */
export async function kernelMatrixData(matrix: KernelMatrix): Promise<Float64Array> {
  const n = matrix.size;
  const out = new Float64Array(n * n);
  await matrix.forEachPanel((start, rows, panel) => {
    for (let i = 0; i < rows * n; i++) out[start * n + i] = panel[i]!;
  });
  return out;
}
