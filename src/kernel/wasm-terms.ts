/**
 * float32 block contraction in entk's own WebAssembly SIMD kernels (./wasm-gemm.ts): the terms
 * and block layout of ./terms.ts, with three exact savings over the plain products there.
 *
 * 1. **Fused Gram scaling.** G[n, m] = s_w²⟨a_n, a'_m⟩ + s_b² multiplies the product in its
 *    epilogue (no Hadamard pass, no temporaries).
 * 2. **Inactive units skipped.** A factored term's S[(n,i), (m,j)] = ⟨δ_i(x_n), δ_j(x'_m)⟩ is summed
 *    only over the units p where some δ_i(x_n)[p] ≠ 0 (row point n's index list): ReLU layers zero
 *    about half of them, and skipping exact zeros changes no bit of the sums.
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
 * column blocks (packing is cached per block in JS memory), scratch and the output block.
 */
import { InvalidArgumentError } from '../errors.js';
import { WASM_PAGE, type WasmMemory, wasmApi } from '../util/wasm-asm.js';
import type { TermFeatures } from './structured.js';
import type { BlockComputer, BlockInput, BlockOutput, ContractionMode, TermMeta } from './terms.js';
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

/** Memories above this size are dropped instead of kept for reuse. */
const KEEP_BYTES = 128 * 2 ** 20;

/**
 * Rows [rows × width] of `src` packed as dense A tiles (MR rows, stride MR), as masked A tiles
 * (MR rows, stride 8) or as B panels (NR rows); inner dimension padded to roundUp(width, 4).
 * `perPoint` / `rowsPerPoint` spread each point's rows over rowsPerPoint ≥ perPoint rows (zeros).
 */
export function packRows(
  src: Float32Array,
  rows: number,
  width: number,
  layout: 'dense' | 'masked' | 'panels',
  perPoint = 1,
  rowsPerPoint = 1,
): Float32Array {
  const group = layout === 'panels' ? NR : MR;
  const stride = layout === 'dense' ? MR : 8;
  const K = roundUp(width, 4);
  const points = rows / perPoint;
  const total = points * rowsPerPoint;
  const groups = Math.ceil(total / group);
  const dst = new Float32Array(groups * K * stride);
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
  const dst = new Float32Array(rows * K);
  for (let n = 0; n < rows; n++) dst.set(src.subarray(n * width, (n + 1) * width), n * K);
  return dst;
}

/** How a term is contracted in this computer's mode. */
type Route = 'identity' | 'dense' | 'masked' | 'gated';

/** Packed factors of one block, per term (null where unused), and per-point unit lists. */
interface PackedBlock {
  a: Array<Float32Array | null>;
  d: Array<Float32Array | null>;
  /** Row blocks, masked and gated terms: unit lists and their lengths. */
  lists: Array<Int32Array | null>;
  counts: Array<number[] | null>;
  bytes: number;
}

/** Byte offsets of everything in the computer's memory. */
interface Layout {
  rowA: number[];
  rowD: number[];
  rowLists: number[];
  colA: number[];
  colD: number[];
  /** Gated terms: pair products P [pairs × K] as B panels, and the per-row-point scaled copy. */
  pairs: number[];
  scaledPairs: number;
  products: number;
  pairIdx: number;
  table: number;
  gram: number;
  gexp: number;
  out: number;
  outT: number;
  end: number;
}

export class WasmBlockComputer implements BlockComputer {
  flops = 0;
  private kernels: Kernels | null;
  private readonly routes: Route[];
  private readonly cache = new Map<string, PackedBlock>();
  private cachedBytes = 0;
  /** Largest row / column block (points) the current layout has room for. */
  private rowRoom = 0;
  private colRoom = 0;
  private layout: Layout | null = null;
  private loaded = { row: '', col: '' };
  /** U [width, V] of each gated term (the same for every block of a computation). */
  private readonly gates = new Map<number, Float32Array>();
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
    const full = mode === 'full';
    this.routes = terms.map((t) => {
      if (t.kind === 'identity') return 'identity';
      if (!full || t.kind === 'gram') return 'dense';
      return t.gated ? 'gated' : 'masked';
    });
    this.RP = full ? roundUp(V, MR) : 1;
    this.pairPanels = roundUp((V * (V + 1)) / 2, NR) / NR;
  }

  private get ex(): GemmExports {
    if (!this.kernels) throw new Error('WasmBlockComputer used after release()');
    return this.kernels.ex;
  }

  private get memory(): WasmMemory {
    if (!this.kernels) throw new Error('WasmBlockComputer used after release()');
    return this.kernels.memory;
  }

  /** Inner dimension (padded) of term k's signal product. */
  private innerK(t: TermMeta): number {
    return roundUp(this.mode === 'full' ? t.width : this.V * t.width, 4);
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
    const V = this.V;
    const full = this.mode === 'full';
    const packed: PackedBlock = { a: [], d: [], lists: [], counts: [], bytes: 0 };
    this.terms.forEach((t, k) => {
      const f: TermFeatures = input.terms[k]!;
      const route = this.routes[k]!;
      const a =
        t.kind !== 'gram' && t.sw2 !== 0
          ? packRows(f.a!, b, t.dIn, role === 'row' ? 'dense' : 'panels')
          : null;
      let d: Float32Array | null = null;
      let units: { lists: Int32Array; counts: number[] } | null = null;
      if (route === 'dense' && role === 'row') {
        d = full
          ? packRows(f.d!, b * V, t.width, 'dense', V, this.RP)
          : packRows(f.d!, b, V * t.width, 'dense');
      } else if (route === 'dense' || route === 'masked') {
        if (role === 'col')
          d = full ? packRows(f.d!, b * V, t.width, 'panels') : packRows(f.d!, b, V * t.width, 'panels');
        else {
          d = packRows(f.d!, b * V, t.width, 'masked', V, this.RP);
          units = activeUnits(f.d!, b, V, t.width);
        }
      } else if (route === 'gated') {
        // Row block: s rows (the scale of each row point); column block: s' as masked tiles.
        if (role === 'row') {
          d = padRows(f.s!, b, t.width);
          units = activeUnits(f.s!, b, 1, t.width);
        } else d = packRows(f.s!, b, t.width, 'masked');
      }
      packed.a.push(a);
      packed.d.push(d);
      packed.lists.push(units?.lists ?? null);
      packed.counts.push(units?.counts ?? null);
      packed.bytes += (a?.byteLength ?? 0) + (d?.byteLength ?? 0) + (units?.lists.byteLength ?? 0);
    });
    for (const [k, v] of this.cache) {
      if (this.cachedBytes + packed.bytes <= this.capacity) break;
      this.cachedBytes -= v.bytes;
      this.cache.delete(k);
    }
    this.cache.set(key, packed);
    this.cachedBytes += packed.bytes;
    return packed;
  }

  /** Make room for an r × c block (grow-only, so loaded factors stay valid while blocks fit). */
  private ensureLayout(r: number, c: number): Layout {
    if (this.layout && r <= this.rowRoom && c <= this.colRoom) return this.layout;
    this.rowRoom = Math.max(r, this.rowRoom);
    this.colRoom = Math.max(c, this.colRoom);
    const [R, C, V] = [this.rowRoom, this.colRoom, this.V];
    const full = this.mode === 'full';
    const per = full ? V : 1;
    const rowsPad = full ? R * this.RP : roundUp(R, MR);
    const colsPad = roundUp(C * per, NR);
    let at = 0;
    const take = (bytes: number) => {
      const start = at;
      at = roundUp(at + bytes, 64);
      return start;
    };
    const pairsPad = this.pairPanels * NR;
    const gatedK = Math.max(
      0,
      ...this.terms.filter((_, k) => this.routes[k] === 'gated').map((t) => this.innerK(t)),
    );
    const layout: Layout = {
      rowA: this.terms.map((t) => take(4 * roundUp(R, MR) * roundUp(t.dIn, 4))),
      rowD: this.terms.map((t, k) => {
        const K = this.innerK(t);
        const route = this.routes[k];
        if (route === 'masked') return take(8 * R * this.RP * K);
        if (route === 'gated') return take(4 * R * K);
        return take(route === 'dense' ? 4 * rowsPad * K : 0);
      }),
      rowLists: this.terms.map((t, k) =>
        take(this.routes[k] === 'masked' || this.routes[k] === 'gated' ? 4 * R * this.innerK(t) : 0),
      ),
      colA: this.terms.map((t) => take(4 * roundUp(C, NR) * roundUp(t.dIn, 4))),
      colD: this.terms.map((t, k) => {
        const route = this.routes[k];
        if (route === 'identity') return take(0);
        if (route === 'gated') return take(32 * roundUp(C, MR) * this.innerK(t));
        return take(4 * colsPad * this.innerK(t));
      }),
      pairs: this.terms.map((t, k) => take(this.routes[k] === 'gated' ? 4 * pairsPad * this.innerK(t) : 0)),
      scaledPairs: take(4 * pairsPad * gatedK),
      products: take(gatedK > 0 ? 4 * roundUp(C, MR) * pairsPad : 0),
      pairIdx: take(4 * V * V),
      table: take(4 * MASKED_FIELDS * R),
      gram: take(4 * roundUp(R, MR) * roundUp(C, NR)),
      gexp: take(full ? 4 * R * colsPad : 0),
      out: take(4 * rowsPad * colsPad),
      outT: take(4 * R * per * C * per),
      end: 0,
    };
    layout.end = at;
    if (at > 2 ** 32 - WASM_PAGE) {
      throw new InvalidArgumentError(
        'blockSize',
        `${R} × ${C} points per block (${(at / 2 ** 30).toFixed(1)} GiB of working memory)`,
        'blocks whose working set fits the 4 GiB WebAssembly memory (a smaller blockSize)',
      );
    }
    const have = this.memory.buffer.byteLength;
    if (at > have) this.memory.grow(Math.ceil((at - have) / WASM_PAGE));
    this.layout = layout;
    this.loaded = { row: '', col: '' };
    if (gatedK > 0) this.uploadPairs(layout);
    return layout;
  }

  private upload(offsets: number[], arrays: Array<Float32Array | Int32Array | null>): void {
    const f32 = new Float32Array(this.memory.buffer);
    const i32 = new Int32Array(this.memory.buffer);
    arrays.forEach((x, k) => {
      if (x instanceof Float32Array) f32.set(x, offsets[k]! / 4);
      else if (x) i32.set(x, offsets[k]! / 4);
    });
  }

  /** P[(i, j), p] = u_ip u_jp (pairs i ≤ j) of every gated term as B panels; the pair-offset table. */
  private uploadPairs(L: Layout): void {
    const V = this.V;
    const idx = pairIndex(V);
    new Int32Array(this.memory.buffer, L.pairIdx, V * V).set(idx.map((q) => 4 * q));
    this.terms.forEach((t, k) => {
      const u = this.gates.get(k);
      if (this.routes[k] !== 'gated' || !u) return;
      const w = t.width;
      const pairs = (V * (V + 1)) / 2;
      const P = new Float32Array(pairs * w);
      for (let i = 0; i < V; i++) {
        for (let j = i; j < V; j++) {
          const row = idx[i * V + j]! * w;
          for (let p = 0; p < w; p++) P[row + p] = u[p * V + i]! * u[p * V + j]!;
        }
      }
      new Float32Array(this.memory.buffer).set(packRows(P, pairs, w, 'panels'), L.pairs[k]! / 4);
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
   * G = s_w²⟨a_n, a'_m⟩ + s_b² of term k into layout.gram, [roundUp(r, MR) × ld]; returns ld
   * (floats). Computed by the dense kernel.
   */
  private gram(k: number, t: TermMeta, r: number, c: number, L: Layout): number {
    const ld = roundUp(c, NR);
    const view = new Float32Array(this.memory.buffer, L.gram, roundUp(r, MR) * ld);
    if (t.sw2 === 0) {
      view.fill(t.sb2);
      return ld;
    }
    this.dense(L.rowA[k]!, L.colA[k]!, roundUp(t.dIn, 4), roundUp(r, MR), ld, L.gram, 4 * ld, 0, 0, 1, 0);
    if (t.sw2 !== 1 || t.sb2 !== 0) for (let e = 0; e < view.length; e++) view[e] = t.sw2 * view[e]! + t.sb2;
    return ld;
  }

  /** Masked term k of a full block: one table entry per row point (its V rows, its unit list). */
  private maskedTerm(
    k: number,
    t: TermMeta,
    r: number,
    c: number,
    pr: PackedBlock,
    L: Layout,
    sym: boolean,
    mode: number,
  ): void {
    const V = this.V;
    const ldg = this.gram(k, t, r, c, L);
    const cols = c * V;
    const colsPad = roundUp(cols, NR);
    const heap = new Float32Array(this.memory.buffer);
    // Gexp[n, m·V + j] = G[n, m] (zeros in the padding columns).
    for (let n = 0; n < r; n++) {
      const o = L.gexp / 4 + n * colsPad;
      const g = L.gram / 4 + n * ldg;
      for (let m = 0; m < c; m++) heap.fill(heap[g + m]!, o + m * V, o + (m + 1) * V);
      heap.fill(0, o + cols, o + colsPad);
    }
    const K = this.innerK(t);
    const tiles = this.RP / MR;
    const ldc = 4 * colsPad;
    const table = new Int32Array(this.memory.buffer, L.table, MASKED_FIELDS * r);
    const counts = pr.counts[k]!;
    const panels = colsPad / NR;
    for (let n = 0; n < r; n++) {
      const q0 = sym ? Math.floor((n * V) / NR) : 0;
      this.flops += 2 * counts[n]! * this.RP * (panels - q0) * NR;
      table.set(
        [
          L.rowD[k]! + 32 * n * tiles * K,
          L.rowLists[k]! + 4 * n * K,
          counts[n]!,
          L.out + n * this.RP * ldc,
          L.gexp + 4 * n * colsPad,
          q0,
          tiles,
          L.colD[k]!,
        ],
        MASKED_FIELDS * n,
      );
    }
    this.ex.gemmMasked(L.table, r, K, panels, ldc, mode);
  }

  /**
   * Gated term k of a full block: for each row point n, the column points' s' (from n on when
   * symmetric) against P scaled by s_n over n's nonzero units, spread by scatter with G[n, ·].
   */
  private gatedTerm(
    k: number,
    t: TermMeta,
    r: number,
    c: number,
    pr: PackedBlock,
    L: Layout,
    sym: boolean,
    first: boolean,
  ): void {
    const V = this.V;
    const K = this.innerK(t);
    const ldg = this.gram(k, t, r, c, L);
    const ldc = 4 * roundUp(c * V, NR);
    const ldT = 4 * this.pairPanels * NR;
    const counts = pr.counts[k]!;
    const table = new Int32Array(this.memory.buffer, L.table, MASKED_FIELDS);
    for (let n = 0; n < r; n++) {
      const m0 = sym ? Math.floor(n / MR) * MR : 0;
      const list = L.rowLists[k]! + 4 * n * K;
      this.ex.scalePanels(
        L.pairs[k]!,
        L.rowD[k]! + 4 * n * K,
        list,
        counts[n]!,
        this.pairPanels,
        K,
        L.scaledPairs,
      );
      table.set([
        L.colD[k]! + 32 * (m0 / MR) * K,
        list,
        counts[n]!,
        L.products,
        0,
        0,
        Math.ceil((c - m0) / MR),
        L.scaledPairs,
      ]);
      this.ex.gemmMasked(L.table, 1, K, this.pairPanels, ldT, 0);
      this.flops += 2 * counts[n]! * roundUp(c - m0, MR) * this.pairPanels * NR;
      this.ex.scatter(
        L.products,
        ldT,
        L.gram + 4 * (n * ldg + m0),
        L.out + n * this.RP * ldc + 4 * m0 * V,
        ldc,
        c - m0,
        V,
        L.pairIdx,
        first ? 0 : 1,
      );
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
    const sym = full && row.key === col.key;
    const pr = this.pack('row', row);
    const pc = this.pack('col', col);
    this.terms.forEach((_, k) => {
      if (this.routes[k] === 'gated' && !this.gates.has(k)) {
        this.gates.set(k, row.terms[k]!.u!.slice());
        this.layout = null; // the next layout uploads the pair products
      }
    });
    const L = this.ensureLayout(r, c);
    if (this.loaded.row !== row.key) {
      this.upload(L.rowA, pr.a);
      this.upload(L.rowD, pr.d);
      this.upload(L.rowLists, pr.lists);
      this.loaded.row = row.key;
    }
    if (this.loaded.col !== col.key) {
      this.upload(L.colA, pc.a);
      this.upload(L.colD, pc.d);
      this.loaded.col = col.key;
    }
    let first = true;
    this.terms.forEach((t, k) => {
      const route = this.routes[k]!;
      if (route === 'identity') return;
      if (route === 'gated') this.gatedTerm(k, t, r, c, pr, L, sym, first);
      else if (route === 'masked') this.maskedTerm(k, t, r, c, pr, L, sym, first ? 2 : 1);
      else if (t.kind === 'gram') {
        this.dense(
          L.rowD[k]!,
          L.colD[k]!,
          this.innerK(t),
          rowsPad,
          colsPad,
          L.out,
          ldc,
          0,
          0,
          1,
          first ? 0 : 3,
        );
      } else {
        // Trace mode: G is used as computed (one row per point).
        const ldg = this.gram(k, t, r, c, L);
        const K = this.innerK(t);
        this.dense(
          L.rowD[k]!,
          L.colD[k]!,
          K,
          rowsPad,
          colsPad,
          L.out,
          ldc,
          L.gram,
          4 * ldg,
          1,
          first ? 2 : 1,
        );
      }
      first = false;
    });
    const heap = new Float32Array(this.memory.buffer);
    const o = L.out / 4;
    if (first) heap.fill(0, o, o + rowsPad * colsPad);
    else if (!full) {
      for (let n = 0; n < rows; n++) {
        for (let e = o + n * colsPad; e < o + n * colsPad + cols; e++) heap[e] = heap[e]! / V;
      }
    }
    this.terms.forEach((t, k) => {
      if (this.routes[k] !== 'identity') return;
      const ldg = this.gram(k, t, r, c, L);
      const g = L.gram / 4;
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
    if (sym) {
      // Lower point triangle ← transpose of the upper one.
      this.ex.transpose(L.out, rows, cols, L.outT);
      const t0 = L.outT / 4;
      for (let n = 1; n < r; n++) {
        for (let i = 0; i < V; i++) {
          const at = (n * V + i) * cols;
          heap.copyWithin(o + at, t0 + at, t0 + at + n * V);
        }
      }
    }
    if (transpose) this.ex.transpose(L.out, rows, cols, L.outT);
    return {
      data: new Float32Array(this.memory.buffer, L.out, rows * cols),
      transposed: transpose ? new Float32Array(this.memory.buffer, L.outT, rows * cols) : null,
      owned: false,
      done: () => undefined,
    };
  }

  release(): void {
    this.cache.clear();
    this.cachedBytes = 0;
    if (this.kernels && this.kernels.memory.buffer.byteLength <= KEEP_BYTES) idle.push(this.kernels);
    this.kernels = null;
  }
}
