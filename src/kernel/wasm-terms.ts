/**
 * float32 block contraction in entk's own WebAssembly SIMD kernels (./wasm-gemm.ts): the terms
 * and block layout of ./terms.ts, with three exact savings over the plain products there.
 *
 * 1. **Fused Gram scaling.** G[n, m] = s_w²⟨a_n, a'_m⟩ + s_b² multiplies the product in its
 *    epilogue (no Hadamard pass, no temporaries).
 * 2. **Inactive units skipped.** A factored term's S[(n,i), (m,j)] = ⟨δ_i(x_n), δ_j(x'_m)⟩ is summed
 *    only over the units p where some δ_i(x_n)[p] ≠ 0 (row point n's index list): ReLU layers zero
 *    about half of them, and skipping exact zeros changes no bit of the sums. Gram terms alike, over
 *    the nonzero columns of row point n's per-example gradients (a convolution before a ReLU and a
 *    max-pool: about a third of them are zero).
 * 3. **Gated terms** (structured.ts): ⟨δ_i(x_n), δ_j(x'_m)⟩ = Σ_p s_np s'_mp u_ip u_jp is computed
 *    against the V(V+1)/2 products u_i ⊙ u_j (rows of P) instead of V² inner products, again only over
 *    row point n's nonzero s_np. Symmetric blocks (row block = column block) compute only the
 *    entries whose row point ≤ column point and mirror the rest, like the engine does for blocks.
 *
 * Per full block, for each non-identity term in order:  out = G ⊙ S (first term) or out += G ⊙ S
 * (gram terms: no G); identity terms then add G to the V diagonals. Trace blocks contract the
 * per-point rows of V·width with the dense kernel, divide by V and add the identity terms.
 * Every thread runs this code, so kernels are bitwise identical for any thread count and block size
 * (an entry is always computed with the lower point index as its row).
 *
 * Rows of a full block are laid out with RP = roundUp(V, MR) rows per point (so that micro-kernel
 * tiles never straddle points) and compacted at the end. Each computer borrows one WebAssembly
 * memory of its thread (reused across calls) holding the packed factors of the current row and
 * column blocks (packing is cached per block in JS memory, on buffers pooled per thread: see
 * takeBuffer), scratch and the output block.
 */
import { InvalidArgumentError } from '../errors.js';
import { WASM_PAGE, type WasmMemory, wasmApi } from '../util/index.js';
import type { TermFeatures } from './structured.js';
import {
  addPairTerm,
  type BlockComputer,
  type BlockInput,
  type BlockOutput,
  type ContractionMode,
  isPairTerm,
  type TermMeta,
} from './terms.js';
import { type GemmExports, gemmModule, MASKED_FIELDS, MR, NR } from './wasm-gemm.js';

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/** Whether the WebAssembly SIMD contraction can run here. */
export function wasmContractionAvailable(): boolean {
  return gemmModule() !== null;
}

/** One instance of the kernels over its own memory; a thread reuses idle ones. */
interface Kernels {
  memory: WasmMemory;
  ex: GemmExports;
}
const idle: Kernels[] = [];

function borrowKernels(): Kernels {
  const free = idle.pop();
  if (free) return free;
  const module = gemmModule();
  if (!module || !wasmApi) throw new Error('WebAssembly SIMD is not available for the eNTK contraction');
  const memory = new wasmApi.Memory({ initial: 1 });
  const ex = new wasmApi.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  return { memory, ex };
}

/** Units per pass of a wide gram term's masked product (see maskedTerm). */
const GRAM_CHUNK = 2048;

/** Row tiles per product of a tight term on a symmetric block (see tightTerm). */
const TIGHT_BAND = 4;

/**
 * Units per pass of a tight term's product: a column chunk of NC panels (wasm-gemm.ts) is then
 * 512 KiB, within L2 while the row tiles pass (measured 1.4× faster than GRAM_CHUNK on 16k-wide
 * gradients at V = 5).
 */
const TIGHT_CHUNK = 1024;

/**
 * Floats per staging pass of a tight term's packing: at least 8 rows (whole tiles and panels), a
 * multiple of 8, within 4 MiB (a larger staging area is fresh memory on every call of a model whose
 * working memory is over KEEP_BYTES: the transformer took 2.0 s instead of 1.6).
 */
const STAGE_FLOATS = 2 ** 20;

/** Rows per staging pass for rows of K floats (see STAGE_FLOATS). */
const stageRows = (K: number) => Math.max(8, Math.floor(STAGE_FLOATS / K / 8) * 8);

/** Row tiles per product of a pooled term's first stage on a symmetric block (see pooledTerm). */
const POOL_BAND = 8;

/** Row points per band of a pooled term's two stages (see pooledTerm; a multiple of 4). */
const POOL_ROWS = 32;

/**
 * Working memories up to this size — or up to the computer's share of the memory budget, when that
 * is larger — are kept for the next blocks and calls; larger ones are dropped. Fresh memory costs its
 * first touch (≈ 3–11 ms per MB on this VM): the transformer's working memory, a few MB over a fixed
 * 128 MiB, made every call 1.2–1.3× slower.
 */
const KEEP_BYTES = 128 * 2 ** 20;

/**
 * Packed-factor buffers of this thread, kept for reuse by the next blocks and calls. Writing fresh
 * memory is slow where page faults are: ≈ 7 ms per MB measured on the benchmark VM (Firecracker,
 * first touch of a new 12 MB array: 80–100 ms; rewriting it: 0.5 ms), and one call packs hundreds of
 * MB (cnn preset, N = 300: ≈ 290 MB over two threads). Buffers return here when a computer evicts
 * them from its cache (after the block that evicted them) or is released; at most POOL_BYTES (and
 * the computer's cache capacity) are kept.
 */
const pool: ArrayBuffer[] = [];
const POOL_BYTES = 256 * 2 ** 20;

/** A zeroed float32 array of `floats` entries, on a pooled buffer (at most twice as large) if any. */
function takeBuffer(floats: number): Float32Array {
  const bytes = 4 * floats;
  let best = -1;
  pool.forEach((b, i) => {
    if (
      b.byteLength >= bytes &&
      b.byteLength <= 2 * bytes &&
      (best < 0 || b.byteLength < pool[best]!.byteLength)
    )
      best = i;
  });
  if (best < 0) return new Float32Array(floats);
  const [buffer] = pool.splice(best, 1);
  return new Float32Array(buffer!, 0, floats).fill(0);
}

/** Bytes held by this thread's pool of packing buffers (for tests). */
export function packingPoolBytes(): number {
  return pool.reduce((s, b) => s + b.byteLength, 0);
}

/** Give `arrays`' buffers back to the pool, keeping at most `limit` bytes (the newest). */
function giveBack(arrays: Array<Float32Array | null>, limit: number): void {
  for (const x of arrays)
    if (x && !pool.includes(x.buffer as ArrayBuffer)) pool.push(x.buffer as ArrayBuffer);
  let total = pool.reduce((s, b) => s + b.byteLength, 0);
  while (total > Math.min(limit, POOL_BYTES)) total -= pool.shift()!.byteLength;
}

/**
 * Rows [rows × width] of `src` packed as A tiles (MR rows; 'dense' and 'masked' are the same
 * layout) or as B panels (NR rows); inner dimension padded to roundUp(width, 4).
 * `perPoint` / `rowsPerPoint` spread each point's rows over rowsPerPoint ≥ perPoint rows (zeros).
 */
export function packRows(
  src: Float32Array,
  rows: number,
  width: number,
  layout: 'dense' | 'masked' | 'panels',
  perPoint = 1,
  rowsPerPoint = 1,
  alloc: (floats: number) => Float32Array = (floats) => new Float32Array(floats),
): Float32Array {
  const group = layout === 'panels' ? NR : MR;
  const stride = layout === 'panels' ? NR : MR;
  const K = roundUp(width, 4);
  const points = rows / perPoint;
  const total = points * rowsPerPoint;
  const groups = Math.ceil(total / group);
  const dst = alloc(groups * K * stride);
  for (let n = 0; n < points; n++) {
    for (let i = 0; i < perPoint; i++) {
      const row = n * rowsPerPoint + i;
      const base = Math.floor(row / group) * K * stride + (row % group);
      const s = (n * perPoint + i) * width;
      for (let p = 0; p < width; p++) dst[base + p * stride] = src[s + p]!;
    }
  }
  return dst;
}

/**
 * Per point, the byte offsets p·32 of the units p where any of its `perPoint` rows is nonzero
 * (lists of length K each, back to back), and the list lengths.
 */
function activeUnits(
  src: Float32Array,
  points: number,
  perPoint: number,
  width: number,
): { lists: Int32Array; counts: number[] } {
  const K = roundUp(width, 4);
  const lists = new Int32Array(points * K);
  const counts: number[] = [];
  for (let n = 0; n < points; n++) {
    let k = 0;
    for (let p = 0; p < width; p++) {
      for (let i = 0; i < perPoint; i++) {
        if (src[(n * perPoint + i) * width + p] !== 0) {
          lists[n * K + k++] = 32 * p;
          break;
        }
      }
    }
    counts.push(k);
  }
  return { lists, counts };
}

/** Pairs i ≤ j of V labels in row-major order: the pair index of (i, j) for every i, j. */
function pairIndex(V: number): Int32Array {
  const idx = new Int32Array(V * V);
  let q = 0;
  for (let i = 0; i < V; i++) {
    for (let j = i; j < V; j++) {
      idx[i * V + j] = q;
      idx[j * V + i] = q++;
    }
  }
  return idx;
}

/** Rows [rows × width] padded with zeros to [rows × roundUp(width, 4)]. */
function padRows(src: Float32Array, rows: number, width: number): Float32Array {
  const K = roundUp(width, 4);
  const dst = takeBuffer(rows * K);
  for (let n = 0; n < rows; n++) dst.set(src.subarray(n * width, (n + 1) * width), n * K);
  return dst;
}

/** How a term is contracted in this computer's mode. */
type Route = 'identity' | 'dense' | 'masked' | 'gated' | 'tokens' | 'tight' | 'pooled' | 'positions';

/** Packed factors of one block, per term (null where unused), and per-point unit lists. */
interface PackedBlock {
  a: Array<Float32Array | null>;
  d: Array<Float32Array | null>;
  /** Row blocks, masked and gated terms: unit lists and their lengths. */
  lists: Array<Int32Array | null>;
  counts: Array<number[] | null>;
  bytes: number;
}

/** Bytes of a typed array, 0 for none. */
const bytesOf = (x: Float32Array | Int32Array | null | undefined) => x?.byteLength ?? 0;

/**
 * Named byte regions of one WebAssembly memory, grow-only: a region keeps its offset (and what was
 * loaded into it) until some region needs more room, when all are laid out again.
 */
class Regions {
  private capacity = new Map<string, number>();
  private offset = new Map<string, number>();

  constructor(private readonly memory: WasmMemory) {}

  /** Room for every [name, bytes]; true when the regions moved (their contents must be reloaded). */
  fit(sizes: Array<[string, number]>, block: string): boolean {
    if (sizes.every(([name, bytes]) => (this.capacity.get(name) ?? -1) >= bytes)) return false;
    const capacity = new Map(this.capacity);
    for (const [name, bytes] of sizes) capacity.set(name, Math.max(bytes, capacity.get(name) ?? 0));
    const offset = new Map<string, number>();
    let end = 0;
    for (const [name, bytes] of capacity) {
      offset.set(name, end);
      end = roundUp(end + bytes, 64);
    }
    if (end > 2 ** 32 - WASM_PAGE) {
      throw new InvalidArgumentError(
        'blockSize',
        `${block} points per block (${(end / 2 ** 30).toFixed(1)} GiB of working memory)`,
        'blocks whose working set fits the 4 GiB WebAssembly memory (a smaller blockSize)',
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / WASM_PAGE));
    this.capacity = capacity;
    this.offset = offset;
    return true;
  }

  at(name: string): number {
    const at = this.offset.get(name);
    if (at === undefined) throw new Error(`no memory region '${name}'`);
    return at;
  }
}

export class WasmBlockComputer implements BlockComputer {
  flops = 0;
  private kernels: Kernels | null;
  private readonly regions: Regions;
  private readonly routes: Route[];
  private readonly cache = new Map<string, PackedBlock>();
  private cachedBytes = 0;
  /** Packed arrays evicted while packing the current block: pooled when it is done. */
  private evicted: Array<Float32Array | null> = [];
  /** Keys of the blocks whose packed factors are in memory. */
  private loaded = { row: '', col: '' };
  /** Pair terms (pooled, tokens, positions): the block whose arrays each named region holds (see loadedAlready). */
  private readonly regionKeys = new Map<string, string>();
  /**
   * Gated terms: the pair products P[(i, j), p] = u_ip u_jp (pairs i ≤ j) as B panels, built from U
   * on the first block (U is the same for every block of a computation); null for other terms.
   */
  private pairs: Array<Float32Array | null> | null = null;
  /** Byte offset of pair (i, j) in a row of products, for every i, j. */
  private readonly pairOffsets: Int32Array;
  /** Rows per point of a full block. */
  private readonly RP: number;
  private readonly pairPanels: number;

  constructor(
    private readonly terms: TermMeta[],
    private readonly V: number,
    private readonly mode: ContractionMode,
    /** Bytes of packed factors kept in JS memory between blocks. */
    private readonly capacity: number,
  ) {
    this.kernels = borrowKernels();
    this.regions = new Regions(this.kernels.memory);
    const full = mode === 'full';
    this.routes = terms.map((t) => {
      if (t.kind === 'identity') return 'identity';
      if (t.kind === 'pooled') return 'pooled';
      if (t.kind === 'positions' && full) return 'positions';
      if (isPairTerm(t)) return 'tokens';
      if (!full) return 'dense';
      // Dense gram terms: rows of all points back to back (no padding of V rows to a multiple of MR).
      if (t.kind === 'gram' && t.dense && roundUp(V, MR) !== V) return 'tight';
      return t.gated ? 'gated' : 'masked';
    });
    this.RP = full ? roundUp(V, MR) : 1;
    this.pairPanels = roundUp((V * (V + 1)) / 2, NR) / NR;
    this.pairOffsets = pairIndex(V).map((q) => 4 * q);
  }

  private get ex(): GemmExports {
    if (!this.kernels) throw new Error('WasmBlockComputer used after release()');
    return this.kernels.ex;
  }

  private get memory(): WasmMemory {
    if (!this.kernels) throw new Error('WasmBlockComputer used after release()');
    return this.kernels.memory;
  }

  /** Signal rows per point and their width: [b·V, width] (full) or [b, V·width] (trace). */
  private signalShape(t: TermMeta): { per: number; width: number } {
    return this.mode === 'full' ? { per: this.V, width: t.width } : { per: 1, width: this.V * t.width };
  }

  /** Inner dimension (padded) of term k's signal product. */
  private innerK(t: TermMeta): number {
    return roundUp(this.signalShape(t).width, 4);
  }

  private pack(role: 'row' | 'col', input: BlockInput): PackedBlock {
    const key = `${role}:${input.key}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const b = input.points;
    const row = role === 'row';
    const packed: PackedBlock = { a: [], d: [], lists: [], counts: [], bytes: 0 };
    this.terms.forEach((t, k) => {
      const f: TermFeatures = input.terms[k]!;
      const route = this.routes[k]!;
      const { per, width } = this.signalShape(t);
      let d: Float32Array | null = null;
      let units: { lists: Int32Array; counts: number[] } | null = null;
      if (route === 'dense') {
        d = packRows(f.d!, b * per, width, row ? 'dense' : 'panels', per, row ? this.RP : per, takeBuffer);
      } else if (route === 'masked') {
        d = packRows(f.d!, b * per, width, row ? 'masked' : 'panels', per, row ? this.RP : per, takeBuffer);
        if (row) units = activeUnits(f.d!, b, per, width);
      } else if (route === 'gated') {
        // Row block: s rows (each row point's scale); column block: s' as masked tiles.
        d = row ? padRows(f.s!, b, width) : packRows(f.s!, b, width, 'masked', 1, 1, takeBuffer);
        if (row) units = activeUnits(f.s!, b, 1, width);
      }
      const a =
        t.kind !== 'gram' && route !== 'tokens' && route !== 'pooled' && route !== 'positions' && t.sw2 !== 0
          ? packRows(f.a!, b, t.dIn, row ? 'dense' : 'panels', 1, 1, takeBuffer)
          : null;
      packed.a.push(a);
      packed.d.push(d);
      packed.lists.push(units?.lists ?? null);
      packed.counts.push(units?.counts ?? null);
      packed.bytes += bytesOf(a) + bytesOf(d) + bytesOf(units?.lists);
    });
    for (const [k, v] of this.cache) {
      if (this.cachedBytes + packed.bytes <= this.capacity) break;
      this.cachedBytes -= v.bytes;
      this.cache.delete(k);
      // Reused only once this block is done (it may be the row block being computed).
      this.evicted.push(...v.a, ...v.d);
    }
    this.cache.set(key, packed);
    this.cachedBytes += packed.bytes;
    return packed;
  }

  /** The pair products of every gated term (see `pairs`) from the U carried by a block. */
  private pairProducts(input: BlockInput): Array<Float32Array | null> {
    const V = this.V;
    const pairs = (V * (V + 1)) / 2;
    const idx = pairIndex(V);
    return this.terms.map((t, k) => {
      if (this.routes[k] !== 'gated') return null;
      const u = input.terms[k]!.u!;
      const w = t.width;
      const P = new Float32Array(pairs * w);
      for (let i = 0; i < V; i++) {
        for (let j = i; j < V; j++) {
          const row = idx[i * V + j]! * w;
          for (let p = 0; p < w; p++) P[row + p] = u[p * V + i]! * u[p * V + j]!;
        }
      }
      return packRows(P, pairs, w, 'panels');
    });
  }

  /**
   * Tight terms: a block's gram rows packed into the regions `${name}${k}` (not cached), in passes
   * of at most STAGE_FLOATS: copied into the region 'packSrc' (rows padded to a multiple of 4 units, zeros),
   * then interleaved into place by the packGroups kernel (./wasm-gemm.ts; ≈ 5× faster than a JS
   * loop). The staging area stays small and in cache: no fresh memory (first touches of fresh
   * memory cost ≈ 5 ms per MB on the benchmark VM).
   */
  private packTight(name: string, input: BlockInput, layout: 'dense' | 'panels'): void {
    const heap = new Float32Array(this.memory.buffer);
    const src = this.regions.at('packSrc');
    const stride = layout === 'dense' ? MR : NR;
    this.terms.forEach((t, k) => {
      if (this.routes[k] !== 'tight') return;
      const rows = input.points * this.V;
      const K = this.innerK(t);
      const total = Math.ceil(rows / stride);
      const d = input.terms[k]!.d!;
      const at = src / 4;
      const pass = stageRows(K);
      for (let r0 = 0; r0 < rows; r0 += pass) {
        const n = Math.min(pass, rows - r0);
        if (K === t.width) heap.set(d.subarray(r0 * K, (r0 + n) * K), at);
        else {
          for (let q = 0; q < n; q++) {
            heap.set(d.subarray((r0 + q) * t.width, (r0 + q + 1) * t.width), at + q * K);
            heap.fill(0, at + q * K + t.width, at + (q + 1) * K);
          }
        }
        const groups = Math.ceil(n / stride);
        heap.fill(0, at + n * K, at + groups * stride * K);
        const dst = this.regions.at(`${name}${k}`);
        this.ex.packGroups(src, K, groups, stride, TIGHT_CHUNK, dst, total, r0 / stride);
      }
    });
  }

  /** Copy arrays (per term) into the regions `${name}${k}`. */
  private upload(name: string, arrays: Array<Float32Array | Int32Array | null>): void {
    const f32 = new Float32Array(this.memory.buffer);
    const i32 = new Int32Array(this.memory.buffer);
    arrays.forEach((x, k) => {
      if (x instanceof Float32Array) f32.set(x, this.regions.at(`${name}${k}`) / 4);
      else if (x) i32.set(x, this.regions.at(`${name}${k}`) / 4);
    });
  }

  /** The dense kernel on [rows × K] · [cols × K]ᵀ (rows, cols padded to MR, NR), counted. */
  private dense(
    a: number,
    b: number,
    K: number,
    rows: number,
    cols: number,
    c: number,
    ldc: number,
    g: number,
    ldg: number,
    group: number,
    mode: number,
  ): void {
    this.ex.gemm(a, b, K, rows / MR, cols / NR, c, ldc, g, ldg, group, mode);
    this.flops += 2 * rows * cols * K;
  }

  /**
   * G = s_w²⟨a_n, a'_m⟩ + s_b² of term k into the region 'gram', [roundUp(r, MR) × ld]; returns ld
   * (floats). Computed by the dense kernel.
   */
  private gram(k: number, t: TermMeta, r: number, c: number): number {
    const ld = roundUp(c, NR);
    const at = this.regions.at('gram');
    const view = new Float32Array(this.memory.buffer, at, roundUp(r, MR) * ld);
    if (t.sw2 === 0) {
      view.fill(t.sb2);
      return ld;
    }
    const [rowA, colA] = [this.regions.at(`rowA${k}`), this.regions.at(`colA${k}`)];
    this.dense(rowA, colA, roundUp(t.dIn, 4), roundUp(r, MR), ld, at, 4 * ld, 0, 0, 1, 0);
    if (t.sw2 !== 1 || t.sb2 !== 0) for (let e = 0; e < view.length; e++) view[e] = t.sw2 * view[e]! + t.sb2;
    return ld;
  }

  /** Masked term k of a full block: one table entry per row point (its V rows, its unit list). */
  private maskedTerm(k: number, t: TermMeta, block: BlockShape, counts: number[], mode: number): void {
    const { r, c, sym } = block;
    const V = this.V;
    const cols = c * V;
    const colsPad = roundUp(cols, NR);
    // Gram terms (per-example gradients) have no G: their epilogue (mode 0 / 3) never reads it.
    const ldg = t.kind === 'gram' ? 0 : this.gram(k, t, r, c);
    const [gram, gexp, out] = [this.regions.at('gram'), this.regions.at('gexp'), this.regions.at('out')];
    const heap = new Float32Array(this.memory.buffer);
    // Gexp[n, m·V + j] = G[n, m] (zeros in the padding columns).
    for (let n = 0; n < r && t.kind !== 'gram'; n++) {
      const o = gexp / 4 + n * colsPad;
      const g = gram / 4 + n * ldg;
      for (let m = 0; m < c; m++) heap.fill(heap[g + m]!, o + m * V, o + (m + 1) * V);
      heap.fill(0, o + cols, o + colsPad);
    }
    const K = this.innerK(t);
    const tiles = this.RP / MR;
    const ldc = 4 * colsPad;
    const panels = colsPad / NR;
    const [rowD, lists, colD] = [
      this.regions.at(`rowD${k}`),
      this.regions.at(`rowLists${k}`),
      this.regions.at(`colD${k}`),
    ];
    const table = new Int32Array(this.memory.buffer, this.regions.at('table'), MASKED_FIELDS * r);
    // Wide gram terms in chunks of GRAM_CHUNK units (each point's sorted list cut at the chunk
    // bounds), accumulated: the column panels of a chunk stay in cache across the row points
    // (one pass over 16k-wide gradients ran at half the speed).
    const chunks = t.kind === 'gram' ? Math.ceil(K / GRAM_CHUNK) : 1;
    const listView = new Int32Array(this.memory.buffer, lists, r * K);
    const start = new Int32Array(r);
    for (let chunk = 0; chunk < chunks; chunk++) {
      const bound = chunks === 1 ? Number.POSITIVE_INFINITY : 32 * (chunk + 1) * GRAM_CHUNK;
      for (let n = 0; n < r; n++) {
        const q0 = sym ? Math.floor((n * V) / NR) : 0;
        let end = start[n]!;
        if (chunks === 1) end = counts[n]!;
        else while (end < counts[n]! && listView[n * K + end]! < bound) end++;
        const count = end - start[n]!;
        this.flops += 2 * count * this.RP * (panels - q0) * NR;
        const entry = [
          rowD + 16 * n * tiles * K,
          lists + 4 * (n * K + start[n]!),
          count,
          out + n * this.RP * ldc,
        ];
        table.set([...entry, gexp + 4 * n * colsPad, q0, tiles, colD], MASKED_FIELDS * n);
        start[n] = end;
      }
      this.ex.gemmMasked(this.regions.at('table'), r, K, panels, ldc, chunk === 0 ? mode : 3);
    }
  }

  /**
   * Tight gram term k of a full block into the region 'tight' ([roundUp(r·V, MR) × colsPad], row
   * n·V + i): the dense kernel on each chunk of TIGHT_CHUNK units in turn, accumulated. Symmetric
   * blocks: per band of TIGHT_BAND tiles, only the column panels from its first point's columns on
   * (the rest is mirrored).
   */
  private tightTerm(k: number, t: TermMeta, block: BlockShape, first: boolean): void {
    const { r, c, sym } = block;
    const V = this.V;
    const K = this.innerK(t);
    const tiles = Math.ceil((r * V) / MR);
    const panels = roundUp(c * V, NR) / NR;
    const ldc = 4 * panels * NR;
    const [rowD, colD, out] = [
      this.regions.at(`rowD${k}`),
      this.regions.at(`colD${k}`),
      this.regions.at('tight'),
    ];
    for (let c0 = 0; c0 < K; c0 += TIGHT_CHUNK) {
      const len = Math.min(TIGHT_CHUNK, K - c0);
      const mode = first && c0 === 0 ? 0 : 3;
      const a0 = rowD + 4 * c0 * tiles * MR;
      const b0 = colD + 4 * c0 * panels * NR;
      if (!sym) {
        this.dense(a0, b0, len, tiles * MR, panels * NR, out, ldc, 0, 0, 1, mode);
        continue;
      }
      for (let t0 = 0; t0 < tiles; t0 += TIGHT_BAND) {
        const bt = Math.min(TIGHT_BAND, tiles - t0);
        const q0 = Math.floor((Math.floor((t0 * MR) / V) * V) / NR);
        const a = a0 + 4 * t0 * len * MR;
        const b = b0 + 4 * q0 * len * NR;
        this.ex.gemm(a, b, len, bt, panels - q0, out + t0 * MR * ldc + 4 * q0 * NR, ldc, 0, 0, 1, mode);
        this.flops += 2 * bt * MR * (panels - q0) * NR * len;
      }
    }
  }

  /**
   * Regions of the pooled terms of an r × c block: per term its packed slot vectors (row and column
   * block) and column signals, kept while the same blocks come back; shared the rest.
   */
  private pooledSizes(r: number, c: number): Array<[string, number]> {
    const V = this.V;
    const shared = { Q: 0, dr: 0, row: 0, src: 0, scratch: 0, G: 0, all: 0, selR: 0 };
    const sizes: Array<[string, number]> = [];
    this.terms.forEach((t, k) => {
      if (t.kind !== 'pooled') return;
      const { channels: C, slots: S, patch, pixels } = t.pool!;
      const cPad = roundUp(c, NR);
      shared.dr = Math.max(shared.dr, 4 * r * V * C * S);
      shared.row = Math.max(shared.row, this.mode === 'full' ? 0 : 4 * V * cPad * V);
      shared.scratch = Math.max(shared.scratch, 16 * V * C * S);
      sizes.push([`poolDc${k}`, 4 * C * S * V * cPad]);
      if (pixels) {
        const { units: U, depth: D, taps, index } = pixels;
        const [P, K, Up] = [index.length / taps, roundUp(D, 4), roundUp(U, MR)];
        sizes.push(
          [`poolA${k}`, 4 * r * Up * K],
          [`poolB${k}`, 4 * U * cPad * K],
          [`poolSelC${k}`, 4 * C * S * cPad],
          [`poolIdx${k}`, 4 * P * taps],
          [`poolBias${k}`, 16],
        );
        shared.G = Math.max(shared.G, 4 * Up * U * cPad);
        shared.all = Math.max(shared.all, 4 * P * P * cPad);
        shared.Q = Math.max(shared.Q, 4 * C * S * S * cPad);
        shared.selR = Math.max(shared.selR, 4 * r * C * S);
        shared.src = Math.max(shared.src, 4 * Math.max(r * Up, U * cPad) * K);
        return;
      }
      const K = roundUp(patch, 4);
      const Rr = roundUp(r * S, MR);
      sizes.push([`poolA${k}`, 4 * C * Rr * K], [`poolB${k}`, 4 * C * S * cPad * K]);
      shared.Q = Math.max(shared.Q, 4 * C * roundUp(Math.min(r, POOL_ROWS) * S, MR) * S * cPad);
      shared.src = Math.max(shared.src, 4 * Math.max(Rr, S * cPad) * K);
    });
    if (sizes.length === 0) return [];
    return [
      ...sizes,
      ['poolQ', shared.Q],
      ['poolDr', shared.dr],
      ['poolRow', shared.row],
      ['poolSrc', shared.src],
      ['poolScratch', shared.scratch],
      ['poolG', shared.G],
      ['poolAll', shared.all],
      ['poolSelR', shared.selR],
    ];
  }

  /**
   * Pooled term k (./terms.ts) of a block, in two stages.
   * 1. Per channel ch, the slot vectors' products Q_ch[(n, s), (s', m)] = ⟨e_n[ch, s], e'_m[ch, s']⟩
   *    by the dense kernel (row slots n·S + s as A tiles; column slots s'·cPad + m as B panels, so
   *    that 4 column points of one s' are adjacent). From input pixels: see pixelStage.
   * 2. Per row point n, the pooledPairs kernel: K[n·V + i, m·V + j] = Σ_ch Σ_s' (Σ_s δ_i[ch, s]
   *    Q_ch[(n, s), (s', m)]) δ'_j[ch, s'], 4 column points per SIMD pass (from n's quad on when
   *    symmetric: the rest is mirrored). Trace blocks: each row point's V × V blocks into 'poolRow',
   *    then Σ_i K_ii added (the division by V comes at the end, as for the other terms).
   */
  private pooledTerm(
    k: number,
    t: TermMeta,
    block: BlockShape,
    row: BlockInput,
    col: BlockInput,
    first: boolean,
  ): void {
    const { r, c, sym } = block;
    const { channels: C, slots: S, patch } = t.pool!;
    const [rowPacked, colPacked] = [this.loadedAlready(`A${k}`, row), this.loadedAlready(`B${k}`, col)];
    const dcAt = this.pooledSignals(k, t, row, col, colPacked, c);
    if (t.pool!.pixels) {
      this.pixelStage(k, t, block, row, col, rowPacked, colPacked, (n, q, m0) =>
        this.pooledRow(n, q, 4 * S * S * roundUp(c, NR), m0, dcAt, t, block, first),
      );
      return;
    }
    const K = roundUp(patch, 4);
    const [Rr, cPad] = [roundUp(r * S, MR), roundUp(c, NR)];
    const at = (name: string) => this.regions.at(name);
    const heap = new Float32Array(this.memory.buffer);
    const src = at('poolSrc');
    // Slot vectors of channel ch as packed rows: row point slots (n, s), column slots (s', m);
    // packed once per block (kept in the term's regions while the same block comes back).
    const load = (e: Float32Array, rows: number, slot: (q: number) => number) => {
      heap.fill(0, src / 4, src / 4 + rows * K);
      for (let q = 0; q < rows; q++) {
        const from = slot(q);
        if (from >= 0) heap.set(e.subarray(from, from + patch), src / 4 + q * K);
      }
    };
    for (let ch = 0; ch < C && !(rowPacked && colPacked); ch++) {
      if (!rowPacked) {
        const ea = row.terms[k]!.a!;
        load(ea, Rr, (q) => (q < r * S ? ((Math.floor(q / S) * C + ch) * S + (q % S)) * patch : -1));
        this.ex.packGroups(src, K, Rr / MR, MR, K, at(`poolA${k}`) + 4 * ch * Rr * K, Rr / MR, 0);
      }
      if (!colPacked) {
        const eb = col.terms[k]!.a!;
        load(eb, S * cPad, (q) => {
          const [s, m] = [Math.floor(q / cPad), q % cPad];
          return m < c ? ((m * C + ch) * S + s) * patch : -1;
        });
        this.ex.packGroups(
          src,
          K,
          (S * cPad) / NR,
          NR,
          K,
          at(`poolB${k}`) + 4 * ch * S * cPad * K,
          (S * cPad) / NR,
          0,
        );
      }
    }
    // Row points in bands of POOL_ROWS: the first stage's products of one band at a time (their
    // memory does not grow with the block), then the second stage for its points.
    const qStride = roundUp(Math.min(r, POOL_ROWS) * S, MR) * S * cPad;
    const segment = cPad / NR;
    for (let n0 = 0; n0 < r; n0 += POOL_ROWS) {
      const n1 = Math.min(r, n0 + POOL_ROWS);
      const [t0, t1] = [(n0 * S) / MR, Math.ceil((n1 * S) / MR)];
      for (let ch = 0; ch < C; ch++) {
        const A = at(`poolA${k}`) + 4 * ch * Rr * K;
        const B = at(`poolB${k}`) + 4 * ch * S * cPad * K;
        const Q = at('poolQ') + 4 * ch * qStride;
        if (!sym) {
          this.dense(A + 4 * t0 * MR * K, B, K, (t1 - t0) * MR, S * cPad, Q, 4 * S * cPad, 0, 0, 1, 0);
          continue;
        }
        // A block against itself: stage 2 reads, for row point n, only the column points from n's
        // quad on; per POOL_BAND row tiles, each s' segment from its first point's panel on.
        for (let t = t0; t < t1; t += POOL_BAND) {
          const tiles = Math.min(POOL_BAND, t1 - t);
          const p0 = Math.floor(Math.floor((t * MR) / S) / NR);
          for (let s2 = 0; s2 < S; s2++) {
            const q0 = s2 * segment + p0;
            const [a, b] = [A + 4 * t * MR * K, B + 4 * q0 * NR * K];
            const c0 = Q + 4 * ((t - t0) * MR * S * cPad + q0 * NR);
            this.ex.gemm(a, b, K, tiles, segment - p0, c0, 4 * S * cPad, 0, 0, 1, 0);
            this.flops += 2 * tiles * MR * (segment - p0) * NR * K;
          }
        }
      }
      for (let n = n0; n < n1; n++) {
        const m0 = sym ? Math.floor(n / 4) * 4 : 0;
        this.pooledRow(n, at('poolQ') + 4 * (n - n0) * S * S * cPad, 4 * qStride, m0, dcAt, t, block, first);
      }
    }
  }

  /**
   * A pooled term's signals: the row points' as they are (region 'poolDr'); the column points' in
   * quads, Dc[m ÷ 4][ch][s'][j][m mod 4] (the term's 'poolDc' region, packed once per column block).
   * Returns Dc's float index.
   */
  private pooledSignals(
    k: number,
    t: TermMeta,
    row: BlockInput,
    col: BlockInput,
    colPacked: boolean,
    c: number,
  ) {
    const V = this.V;
    const { channels: C, slots: S } = t.pool!;
    const cPad = roundUp(c, NR);
    const heap = new Float32Array(this.memory.buffer);
    heap.set(row.terms[k]!.d!.subarray(0, row.points * V * C * S), this.regions.at('poolDr') / 4);
    const dcAt = this.regions.at(`poolDc${k}`) / 4;
    if (!colPacked) {
      const dc = col.terms[k]!.d!;
      heap.fill(0, dcAt, dcAt + C * S * V * cPad);
      // Quad m ÷ 4 holds Dc[ch][s'][j] of its four column points contiguously (pooledPairs).
      for (let m = 0; m < c; m++) {
        const quad = dcAt + (m >> 2) * C * S * V * 4 + (m & 3);
        for (let j = 0; j < V; j++) {
          const from = (m * V + j) * C * S;
          for (let q = 0; q < C * S; q++) heap[quad + (q * V + j) * 4] = dc[from + q]!;
        }
      }
    }
    return dcAt;
  }

  /**
   * A pooled term's second stage for row point n (pooledPairs) from its slot products Q (channel
   * stride qc bytes), column points from m0 on; trace blocks through 'poolRow' (see pooledTerm).
   */
  private pooledRow(
    n: number,
    q: number,
    qc: number,
    m0: number,
    dcAt: number,
    t: TermMeta,
    block: BlockShape,
    first: boolean,
  ): void {
    const V = this.V;
    const c = block.c;
    const full = this.mode === 'full';
    const { channels: C, slots: S } = t.pool!;
    const cPad = roundUp(c, NR);
    const at = (name: string) => this.regions.at(name);
    const colsPad = roundUp(full ? c * V : c, NR);
    const dRow = at('poolDr') + 4 * n * V * C * S;
    const target = full ? at('out') + 4 * n * this.RP * colsPad : at('poolRow');
    const ldo = full ? colsPad : c * V;
    const mode = full && !first ? 1 : 0;
    this.ex.pooledPairs(q, qc, dRow, 4 * dcAt, target, ldo, m0, c, cPad, C, S, V, mode, at('poolScratch'));
    this.flops += 2 * (c - m0) * C * (V * S * S + V * V * S);
    if (!full) {
      // Σ_i K_ii of each column point into the trace row (undivided).
      const heap = new Float32Array(this.memory.buffer);
      const rowAt = at('poolRow') / 4;
      const o = at('out') / 4 + n * colsPad;
      for (let m = m0; m < c; m++) {
        let sum = 0;
        for (let i = 0; i < V; i++) sum += heap[rowAt + i * c * V + m * V + i]!;
        heap[o + m] = (first ? 0 : heap[o + m]!) + sum;
      }
    }
  }

  /**
   * First stage of a pooled term from input pixels (./terms.ts PoolPixels), row point by row point:
   *   G[u][u'][m] = ⟨x_n[u], x'_m[u']⟩ by the dense kernel (n's pixels as A tiles, column pixels
   *   u'·cPad + m as B panels, both packed once per block); Qn[p][p'][m] = s_b² + Σ_taps G (pixelSums);
   *   the slot products Q[ch][s][s'][m] = Qn[p_n[ch, s]][p'_m[ch, s']][m] (slotGather)
   * — all from column point m0 (n's quad when symmetric) on — then `second(n, Q, m0)`.
   */
  private pixelStage(
    k: number,
    t: TermMeta,
    block: BlockShape,
    row: BlockInput,
    col: BlockInput,
    rowPacked: boolean,
    colPacked: boolean,
    second: (n: number, q: number, m0: number) => void,
  ): void {
    const { r, c, sym } = block;
    const { channels: C, slots: S, pixels } = t.pool!;
    const { units: U, depth: D, taps, index, bias2 } = pixels!;
    const [P, K, Up, cPad, X] = [index.length / taps, roundUp(D, 4), roundUp(U, MR), roundUp(c, NR), U * D];
    const at = (name: string) => this.regions.at(name);
    const heap = new Float32Array(this.memory.buffer);
    const ints = new Int32Array(this.memory.buffer);
    const src = at('poolSrc') / 4;
    if (!rowPacked) {
      const ea = row.terms[k]!.a!;
      heap.fill(0, src, src + r * Up * K);
      for (let n = 0; n < r; n++) {
        for (let u = 0; u < U; u++) {
          const from = n * t.dIn + u * D;
          heap.set(ea.subarray(from, from + D), src + (n * Up + u) * K);
        }
      }
      this.ex.packGroups(4 * src, K, (r * Up) / MR, MR, K, at(`poolA${k}`), (r * Up) / MR, 0);
    }
    if (!colPacked) {
      const eb = col.terms[k]!.a!;
      heap.fill(0, src, src + U * cPad * K);
      const selC = at(`poolSelC${k}`) / 4;
      ints.fill(-1, selC, selC + C * S * cPad);
      for (let m = 0; m < c; m++) {
        for (let u = 0; u < U; u++) {
          const from = m * t.dIn + u * D;
          heap.set(eb.subarray(from, from + D), src + (u * cPad + m) * K);
        }
        // slotGather's column selection: the slot's byte offset within a row of position products.
        for (let q = 0; q < C * S; q++) {
          const p2 = eb[m * t.dIn + X + q]!;
          ints[selC + q * cPad + m] = p2 < 0 ? -1 : (p2 * cPad + m) * 4;
        }
      }
      this.ex.packGroups(4 * src, K, (U * cPad) / NR, NR, K, at(`poolB${k}`), (U * cPad) / NR, 0);
    }
    const ea = row.terms[k]!.a!;
    const selR = at('poolSelR') / 4;
    for (let n = 0; n < r; n++) {
      for (let q = 0; q < C * S; q++) ints[selR + n * C * S + q] = ea[n * t.dIn + X + q]!;
    }
    ints.set(index, at(`poolIdx${k}`) / 4);
    heap[at(`poolBias${k}`) / 4] = bias2;
    const [G, all, Q] = [at('poolG'), at('poolAll'), at('poolQ')];
    const segment = cPad / NR;
    for (let n = 0; n < r; n++) {
      const m0 = sym ? Math.floor(n / 4) * 4 : 0;
      const p0 = Math.floor(m0 / NR);
      const A = at(`poolA${k}`) + 4 * n * Up * K;
      for (let u2 = 0; u2 < U; u2++) {
        const b = at(`poolB${k}`) + 4 * (u2 * segment + p0) * NR * K;
        this.ex.gemm(A, b, K, Up / MR, segment - p0, G + 4 * (u2 * cPad + p0 * NR), 4 * U * cPad, 0, 0, 1, 0);
      }
      this.flops += 2 * Up * U * (segment - p0) * NR * K;
      this.ex.pixelSums(G, all, at(`poolIdx${k}`), P, taps, U, cPad, m0, at(`poolBias${k}`));
      this.ex.slotGather(all, P, cPad, 4 * (selR + n * C * S), at(`poolSelC${k}`), Q, C, S, m0);
      second(n, Q, m0);
    }
  }

  /** Whether `input`'s arrays are already in the regions named `name` (else records that they will be). */
  private loadedAlready(name: string, input: BlockInput): boolean {
    if (this.regionKeys.get(name) === input.key) return true;
    this.regionKeys.set(name, input.key);
    return false;
  }

  /** A positions term's padded shapes: positions T, floats KA of an input row (with s_b), WP of a signal row, rows VP. */
  private positionShape(t: TermMeta): { T: number; KA: number; WP: number; VP: number } {
    const T0 = t.positions!;
    return {
      T: roundUp(T0, 4),
      KA: roundUp(t.dIn / T0 + 1, 4),
      WP: roundUp(t.width / T0, 8),
      VP: roundUp(this.V, 2),
    };
  }

  /** Regions of the positions terms: each side's input and signal rows, and the kernel's scratch. */
  private positionSizes(r: number, c: number): Array<[string, number]> {
    let scratch = 0;
    const sizes = this.terms.flatMap((t, k): Array<[string, number]> => {
      if (this.routes[k] !== 'positions') return [];
      const { T, KA, WP, VP } = this.positionShape(t);
      scratch = Math.max(scratch, 4 * (T * T + VP * T * WP));
      return [
        [`posAr${k}`, 4 * r * T * KA],
        [`posAc${k}`, 4 * c * T * KA],
        [`posDr${k}`, 4 * r * VP * T * WP],
        [`posDc${k}`, 4 * c * VP * T * WP],
      ];
    });
    return [...sizes, ['posScratch', scratch]];
  }

  /**
   * Positions term k of a full block added to the compacted block at `out` ([r·V × cols]): per row
   * point, positionPairs over the column points (from the point itself when symmetric: the rest is
   * mirrored). Each side's rows are laid out once per block (kept while the same block comes back):
   * inputs [s_w a_t, s_b] and signals, zero-padded to the kernel's shapes.
   */
  private positionTerm(
    k: number,
    t: TermMeta,
    block: BlockShape,
    row: BlockInput,
    col: BlockInput,
    out: number,
    cols: number,
  ): void {
    const { r, c, sym } = block;
    const V = this.V;
    const { T, KA, WP, VP } = this.positionShape(t);
    const T0 = t.positions!;
    const [dIn, w] = [t.dIn / T0, t.width / T0];
    const [sw, sb] = [Math.sqrt(t.sw2), Math.sqrt(t.sb2)];
    const at = (name: string) => this.regions.at(name);
    const upload = (side: 'r' | 'c', input: BlockInput, points: number) => {
      if (this.loadedAlready(`pos${side}${k}`, input)) return;
      const { a, d } = input.terms[k]!;
      const A = new Float32Array(this.memory.buffer, at(`posA${side}${k}`), points * T * KA).fill(0);
      for (let n = 0; n < points; n++) {
        for (let p = 0; p < T0; p++) {
          const [to, from] = [(n * T + p) * KA, (n * T0 + p) * dIn];
          for (let e = 0; e < dIn; e++) A[to + e] = sw * a![from + e]!;
          A[to + dIn] = sb;
        }
      }
      const D = new Float32Array(this.memory.buffer, at(`posD${side}${k}`), points * VP * T * WP).fill(0);
      for (let n = 0; n < points; n++) {
        for (let i = 0; i < V; i++) {
          for (let p = 0; p < T0; p++) {
            const from = (n * V + i) * t.width + p * w;
            D.set(d!.subarray(from, from + w), ((n * VP + i) * T + p) * WP);
          }
        }
      }
    };
    upload('r', row, r);
    // A block against itself reads its columns from the rows' regions.
    const side = sym ? 'r' : 'c';
    if (!sym) upload('c', col, c);
    for (let n = 0; n < r; n++) {
      const m0 = sym ? n : 0;
      this.ex.positionPairs(
        at(`posAr${k}`) + 4 * n * T * KA,
        at(`posA${side}${k}`),
        KA,
        T,
        at(`posDr${k}`) + 4 * n * VP * T * WP,
        at(`posD${side}${k}`),
        WP,
        VP,
        V,
        out + 4 * n * V * cols,
        cols,
        m0,
        c,
        at('posScratch'),
      );
      this.flops += 2 * (c - m0) * (T * T * KA + VP * T * T * WP + VP * VP * T * WP);
    }
  }

  /** Whether tokens term t runs on the tokenPairs kernel: full blocks, embedding widths in whole f32x4. */
  private simdTokens(t: TermMeta): boolean {
    return t.kind === 'tokens' && this.mode === 'full' && (t.width / t.dIn) % 4 === 0;
  }

  /** Regions of the tokens terms run by tokenPairs: each side's ids and signal rows. */
  private tokenSizes(r: number, c: number): Array<[string, number]> {
    return this.terms.flatMap(
      (t, k): Array<[string, number]> =>
        this.simdTokens(t)
          ? [
              [`tokIdR${k}`, 4 * r * t.dIn],
              [`tokIdC${k}`, 4 * c * t.dIn],
              [`tokDr${k}`, 4 * r * this.V * t.width],
              [`tokDc${k}`, 4 * c * this.V * t.width],
            ]
          : [],
    );
  }

  /**
   * Tokens term k of a full block added to the compacted block at `out` ([r·V × cols]): per row
   * point, tokenPairs over the column points (from the point itself when symmetric: the rest is
   * mirrored). Ids and signal rows are uploaded once per block (kept while the same block comes back).
   */
  private tokenTerm(
    k: number,
    t: TermMeta,
    block: BlockShape,
    row: BlockInput,
    col: BlockInput,
    out: number,
    cols: number,
  ): void {
    const { r, c, sym } = block;
    const V = this.V;
    const [S, e] = [t.dIn, t.width / t.dIn];
    const at = (name: string) => this.regions.at(name);
    const upload = (side: 'R' | 'C', input: BlockInput, points: number) => {
      if (this.loadedAlready(`tok${side}${k}`, input)) return;
      const ids = input.terms[k]!.a!;
      new Int32Array(this.memory.buffer, at(`tokId${side}${k}`), points * S).set(ids.subarray(0, points * S));
      new Float32Array(
        this.memory.buffer,
        at(`tokD${side === 'R' ? 'r' : 'c'}${k}`),
        points * V * t.width,
      ).set(input.terms[k]!.d!.subarray(0, points * V * t.width));
    };
    upload('R', row, r);
    upload('C', col, c);
    for (let n = 0; n < r; n++) {
      this.ex.tokenPairs(
        at(`tokIdR${k}`) + 4 * n * S,
        at(`tokIdC${k}`),
        S,
        at(`tokDr${k}`) + 4 * n * V * t.width,
        at(`tokDc${k}`),
        e,
        V,
        out + 4 * n * V * cols,
        cols,
        sym ? n : 0,
        c,
      );
    }
  }

  /**
   * Gated term k of a full block: for each row point n, the column points' s' (from n on when
   * symmetric) against P scaled by s_n over n's nonzero units, spread by scatter with G[n, ·].
   */
  private gatedTerm(k: number, t: TermMeta, block: BlockShape, counts: number[], first: boolean): void {
    const { r, c, sym } = block;
    const V = this.V;
    const K = this.innerK(t);
    const ldg = this.gram(k, t, r, c);
    const ldc = 4 * roundUp(c * V, NR);
    const ldT = 4 * this.pairPanels * NR;
    const at = (name: string) => this.regions.at(name);
    const [rowS, lists, colS, pairs] = [at(`rowD${k}`), at(`rowLists${k}`), at(`colD${k}`), at(`pairs${k}`)];
    const [scaled, products, table] = [at('scaledPairs'), at('products'), at('table')];
    const entry = new Int32Array(this.memory.buffer, table, MASKED_FIELDS);
    for (let n = 0; n < r; n++) {
      const m0 = sym ? Math.floor(n / MR) * MR : 0;
      const list = lists + 4 * n * K;
      this.ex.scalePanels(pairs, rowS + 4 * n * K, list, counts[n]!, this.pairPanels, K, scaled);
      entry.set([
        colS + 16 * (m0 / MR) * K,
        list,
        counts[n]!,
        products,
        0,
        0,
        Math.ceil((c - m0) / MR),
        scaled,
      ]);
      this.ex.gemmMasked(table, 1, K, this.pairPanels, ldT, 0);
      this.flops += 2 * counts[n]! * roundUp(c - m0, MR) * this.pairPanels * NR;
      const g = at('gram') + 4 * (n * ldg + m0);
      const out = at('out') + n * this.RP * ldc + 4 * m0 * V;
      this.ex.scatter(products, ldT, g, out, ldc, c - m0, V, at('pairIdx'), first ? 0 : 1);
    }
  }

  compute(row: BlockInput, col: BlockInput, transpose: boolean): BlockOutput {
    const r = row.points;
    const c = col.points;
    const V = this.V;
    const full = this.mode === 'full';
    const per = full ? V : 1;
    const rows = r * per;
    const cols = c * per;
    const rowsPad = full ? r * this.RP : roundUp(r, MR);
    const colsPad = roundUp(cols, NR);
    const ldc = 4 * colsPad;
    // A block against itself: only row point ≤ column point is computed, the rest mirrored.
    const block: BlockShape = { r, c, sym: full && row.key === col.key };
    const pr = this.pack('row', row);
    const pc = this.pack('col', col);
    this.pairs ??= this.pairProducts(row);
    const pairBytes = Math.max(0, ...this.pairs.map(bytesOf));
    const sizes: Array<[string, number]> = this.terms.flatMap(
      (_, k): Array<[string, number]> => [
        [`rowA${k}`, bytesOf(pr.a[k])],
        [
          `rowD${k}`,
          this.routes[k] === 'tight'
            ? 4 * roundUp(r * V, MR) * this.innerK(this.terms[k]!)
            : bytesOf(pr.d[k]),
        ],
        [`rowLists${k}`, bytesOf(pr.lists[k])],
        [`colA${k}`, bytesOf(pc.a[k])],
        [
          `colD${k}`,
          this.routes[k] === 'tight'
            ? 4 * roundUp(c * V, NR) * this.innerK(this.terms[k]!)
            : bytesOf(pc.d[k]),
        ],
        [`pairs${k}`, bytesOf(this.pairs![k])],
      ],
    );
    sizes.push(
      ['scaledPairs', pairBytes],
      ['products', pairBytes > 0 ? 4 * roundUp(c, MR) * this.pairPanels * NR : 0],
      ['pairIdx', 4 * V * V],
      ['table', 4 * MASKED_FIELDS * r],
      ['gram', 4 * roundUp(r, MR) * roundUp(c, NR)],
      ['gexp', full ? 4 * r * colsPad : 0],
      ['out', 4 * rowsPad * colsPad],
      ['tight', this.routes.includes('tight') ? 4 * roundUp(rows, MR) * colsPad : 0],
      [
        'packSrc',
        4 *
          Math.max(
            0,
            ...this.terms.map((t, k) => {
              if (this.routes[k] !== 'tight') return 0;
              const K = this.innerK(t);
              return Math.min(stageRows(K), roundUp(Math.max(r, c) * V, NR)) * K;
            }),
          ),
      ],
      ['outT', 4 * rows * cols],
      ...this.pooledSizes(r, c),
      ...this.tokenSizes(r, c),
      ...this.positionSizes(r, c),
    );
    if (this.regions.fit(sizes, `${r} × ${c}`)) {
      this.loaded = { row: '', col: '' };
      this.regionKeys.clear();
      this.upload('pairs', this.pairs);
      new Int32Array(this.memory.buffer).set(this.pairOffsets, this.regions.at('pairIdx') / 4);
    }
    if (this.loaded.row !== row.key) {
      this.upload('rowA', pr.a);
      this.upload('rowD', pr.d);
      this.packTight('rowD', row, 'dense');
      this.upload('rowLists', pr.lists);
      this.loaded.row = row.key;
    }
    if (this.loaded.col !== col.key) {
      this.upload('colA', pc.a);
      this.upload('colD', pc.d);
      this.packTight('colD', col, 'panels');
      this.loaded.col = col.key;
    }
    // Evicted packings are in no region any more (uploaded ones were copied): reusable now.
    giveBack(this.evicted, this.capacity);
    this.evicted = [];
    const out = this.regions.at('out');
    let first = true;
    // Tight terms first, in their own rows n·V + i ('tight'), copied to out's rows n·RP + i: the
    // other terms then add onto them in place.
    this.terms.forEach((t, k) => {
      if (this.routes[k] !== 'tight') return;
      this.tightTerm(k, t, block, first);
      first = false;
    });
    if (!first) {
      const [heap, tight] = [new Float32Array(this.memory.buffer), this.regions.at('tight') / 4];
      for (let n = 0; n < r; n++) {
        for (let i = 0; i < V; i++) {
          const src = tight + (n * V + i) * colsPad;
          heap.copyWithin(out / 4 + (n * this.RP + i) * colsPad, src, src + colsPad);
        }
      }
    }
    this.terms.forEach((t, k) => {
      const route = this.routes[k]!;
      if (route === 'identity' || route === 'tokens' || route === 'positions' || route === 'tight') return;
      if (route === 'pooled') this.pooledTerm(k, t, block, row, col, first);
      else if (route === 'gated') this.gatedTerm(k, t, block, pr.counts[k]!, first);
      else if (route === 'masked') {
        const mode = t.kind === 'gram' ? (first ? 0 : 3) : first ? 2 : 1;
        this.maskedTerm(k, t, block, pr.counts[k]!, mode);
      } else {
        const [rowD, colD, K] = [this.regions.at(`rowD${k}`), this.regions.at(`colD${k}`), this.innerK(t)];
        if (t.kind === 'gram' && block.sym) {
          // A block against itself: per row point n only the column panels from its own columns on
          // (the rest is mirrored below, as for masked terms).
          const tiles = this.RP / MR;
          const panels = colsPad / NR;
          for (let n = 0; n < r; n++) {
            const q0 = Math.floor((n * V) / NR);
            const a = rowD + 16 * n * tiles * K;
            const c0 = out + n * this.RP * ldc + 4 * q0 * NR;
            this.ex.gemm(a, colD + 32 * q0 * K, K, tiles, panels - q0, c0, ldc, 0, 0, 1, first ? 0 : 3);
            this.flops += 2 * this.RP * (panels - q0) * NR * K;
          }
        } else if (t.kind === 'gram')
          this.dense(rowD, colD, K, rowsPad, colsPad, out, ldc, 0, 0, 1, first ? 0 : 3);
        else {
          // Trace mode: G is used as computed (one row per point).
          const ldg = this.gram(k, t, r, c);
          const gram = this.regions.at('gram');
          this.dense(rowD, colD, K, rowsPad, colsPad, out, ldc, gram, 4 * ldg, 1, first ? 2 : 1);
        }
      }
      first = false;
    });
    const heap = new Float32Array(this.memory.buffer);
    const o = out / 4;
    if (first) heap.fill(0, o, o + rowsPad * colsPad);
    else if (!full) {
      for (let n = 0; n < rows; n++) {
        for (let e = o + n * colsPad; e < o + n * colsPad + cols; e++) heap[e] = heap[e]! / V;
      }
    }
    this.terms.forEach((t, k) => {
      if (this.routes[k] !== 'identity') return;
      const ldg = this.gram(k, t, r, c);
      const g = this.regions.at('gram') / 4;
      for (let n = 0; n < r; n++) {
        for (let i = 0; i < per; i++) {
          const base = o + (n * this.RP + i) * colsPad + i;
          for (let m = 0; m < c; m++) heap[base + m * per] = heap[base + m * per]! + heap[g + n * ldg + m]!;
        }
      }
    });
    // Compact [r·RP × colsPad] into [rows × cols].
    if (colsPad !== cols || this.RP !== per) {
      for (let n = 0; n < r; n++) {
        for (let i = 0; i < per; i++) {
          const src = o + (n * this.RP + i) * colsPad;
          heap.copyWithin(o + (n * per + i) * cols, src, src + cols);
        }
      }
    }
    // Tokens terms (sparse embedding gradients, ./terms.ts) on the compacted block: by the tokenPairs
    // kernel (full blocks, embedding widths in whole f32x4), else in plain JS.
    this.terms.forEach((t, k) => {
      if (this.routes[k] === 'positions') this.positionTerm(k, t, block, row, col, out, cols);
      if (this.routes[k] !== 'tokens') return;
      if (this.simdTokens(t)) {
        this.tokenTerm(k, t, block, row, col, out, cols);
        return;
      }
      const view = new Float32Array(this.memory.buffer, out, rows * cols);
      // Symmetric full blocks mirror their lower triangle below; trace blocks here.
      const half = block.sym ? 'upper' : row.key === col.key && 'mirror';
      addPairTerm(view, cols, t, V, full, row.terms[k]!, col.terms[k]!, r, c, half);
    });
    const outT = this.regions.at('outT');
    if (block.sym) {
      // Lower point triangle ← transpose of the upper one.
      this.ex.transpose(out, rows, cols, outT);
      for (let n = 1; n < r; n++) {
        for (let i = 0; i < V; i++) {
          const at = (n * V + i) * cols;
          heap.copyWithin(o + at, outT / 4 + at, outT / 4 + at + n * V);
        }
      }
      // A point's own V × V block: pooled and positions terms do not evaluate K_ij and K_ji alike
      // (the gram terms do), so the upper triangle is mirrored there too — K is then symmetric bit for bit.
      if (this.routes.includes('pooled') || this.routes.includes('positions')) {
        for (let n = 0; n < r; n++) {
          for (let i = 0; i < V; i++) {
            for (let j = i + 1; j < V; j++)
              heap[o + (n * V + j) * cols + n * V + i] = heap[o + (n * V + i) * cols + n * V + j]!;
          }
        }
      }
    }
    if (transpose) this.ex.transpose(out, rows, cols, outT);
    return {
      data: new Float32Array(this.memory.buffer, out, rows * cols),
      transposed: transpose ? new Float32Array(this.memory.buffer, outT, rows * cols) : null,
      owned: false,
      done: () => undefined,
    };
  }

  release(): void {
    giveBack(this.evicted, this.capacity);
    for (const v of this.cache.values()) giveBack([...v.a, ...v.d], this.capacity);
    this.evicted = [];
    this.cache.clear();
    this.cachedBytes = 0;
    const keep = Math.max(KEEP_BYTES, this.capacity);
    if (this.kernels && this.kernels.memory.buffer.byteLength <= keep) idle.push(this.kernels);
    this.kernels = null;
  }
}

/** A block's size in points and whether it is a block against itself. */
interface BlockShape {
  r: number;
  c: number;
  sym: boolean;
}
