/**
 * Per-example gradient rows of layers applied over positions, computed from the recorded inputs
 * and back-propagated signals in plain memory (the structured path's 'gram' terms,
 * ./structured.ts): for point n, logit i and row r = n·V + i,
 *
 *   dense over positions:  G[r, (c, k)] = s_w Σ_t δ[r, t, c] · a[n, t, k],  bias G[r, dOut·K + c] = s_b Σ_t δ[r, t, c]
 *   embedding (one-hot):   G[r, (c, v)] = s_w Σ_{t: id[n, t] = v} δ[r, t, c]
 *
 * (columns in the same (output, input) order as the tfjs products they replace). The dense sum
 * runs only over the positions where one of the point's V signals is nonzero — exact, the skipped
 * terms are products with exact zeros (a finite): the padding positions of a masked transformer,
 * whose cotangents vanish (src/model/transformer-layers.ts), are about half of all positions on
 * short texts. Each point is one product Δᵀ A (Δ [T × V·dOut] its V logits' signals, A [T × K],
 * over the T kept positions) on entk's WebAssembly SIMD GEMM (./wasm-gemm.ts, single thread):
 * tfjs-wasm runs the batched [b, V·dOut, L] × [b, L, K] product on a scalar loop (≈ 2 GFLOP/s
 * measured), ~10× slower. Every entry is one float32 sum over the kept positions in increasing
 * order.
 */
import { WASM_PAGE, type WasmMemory, wasmApi } from '../util/index.js';
import { positionHasSignal } from './terms.js';
import { type GemmExports, gemmModule, MR, NR } from './wasm-gemm.js';

interface Kernels {
  memory: WasmMemory;
  ex: GemmExports;
}

let kernels: Kernels | null | undefined;

function instance(): Kernels | null {
  if (kernels !== undefined) return kernels;
  const module = gemmModule();
  if (!module || !wasmApi) {
    kernels = null;
    return null;
  }
  const memory = new wasmApi.Memory({ initial: 1 });
  const ex = new wasmApi.Instance(module, { env: { mem: memory } }).exports as unknown as GemmExports;
  kernels = { memory, ex };
  return kernels;
}

/**
 * For tests only: `enabled = false` leaves every dense and embedding product to tfjs; `denseCalls`
 * and `sparseCalls` count the calls of denseGradientRows and the products sparseRowsProduct ran.
 */
export const positionGradTestHooks = { enabled: true, denseCalls: 0, sparseCalls: 0 };

/** Whether {@link denseGradientRows} can run for these widths (SIMD available, nonzero widths). */
export function denseGradientRowsAvailable(K: number, dOut: number): boolean {
  return positionGradTestHooks.enabled && K > 0 && dOut > 0 && instance() !== null;
}

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;
/** Runs of at most this many floats are copied by a loop (a subarray view and set cost ~70 ns). */
const COPY_LOOP = 32;

/**
 * Dense-over-positions gradient rows (see the module comment) of a [b, L, K] and δ [b·V, L, dOut]
 * into out [b·V, width], width = dOut·K (+ dOut with a bias, biasScale non-null). Callers check
 * {@link denseGradientRowsAvailable} first.
 *
 * A holds the point's V·dOut signal rows (each logit's block padded to whole tiles), B = s_w·a over
 * the kept positions. Where rows fill whole panels and tiles (K a multiple of 8, dOut of 4), each
 * logit's product lands in out's layout directly; else one product covers the point and its rows
 * are copied. The bias sums Σ_t δ[row, t, c] are products with a column of ones (its own panel, or
 * the padding column past K): one float32 sum in increasing position order, as every entry of a
 * product, so the same bits as summing them apart.
 */
export function denseGradientRows(
  a: Float32Array,
  delta: Float32Array,
  dims: { b: number; V: number; L: number; K: number; dOut: number },
  weightScale: number,
  biasScale: number | null,
  out: Float32Array,
): void {
  const s = instance();
  if (!s) throw new Error('dense gradient rows: WebAssembly SIMD is not available');
  positionGradTestHooks.denseCalls++;
  const { b, V, L, K, dOut } = dims;
  const bias = biasScale !== null;
  const rowSize = L * dOut;
  const width = dOut * K + (bias ? dOut : 0);
  const Lc = roundUp(L, 4);
  const quads = Math.ceil(dOut / MR);
  const dPad = quads * MR;
  const aligned = K % NR === 0 && dPad === dOut;
  // B columns: a's K, then (unaligned, with a bias) the ones column of the bias sums.
  const cols = K + (bias && !aligned ? 1 : 0);
  const panels = Math.ceil(cols / NR);
  const ldc = panels * NR;
  // Whole signal blocks [L, dOut] move into A tiles in wasm (a copy, two SIMD transposes) when
  // every position is kept and they fill the tiles exactly; else in JS, position by position.
  const bulk = L % 4 === 0 && dPad === dOut;
  // Memory (floats): B panels, the ones panel (aligned, with a bias), A tiles of the V logits,
  // C (aligned: the point's rows in out's layout; else rows of ldc floats), the bias sums (aligned,
  // rows of 8 floats), the point's signals and their transposes (bulk moves).
  const onesPanel = aligned && bias;
  const bp = 0;
  const op = bp + panels * Lc * NR;
  const ap = op + (onesPanel ? Lc * NR : 0);
  const cp = ap + V * quads * Lc * MR;
  const sp = cp + (aligned ? V * width : V * dPad * ldc);
  const dp = sp + (onesPanel ? V * dPad * NR : 0);
  const tp = dp + (bulk ? V * rowSize : 0);
  const need = 4 * (tp + (bulk ? V * rowSize : 0));
  const have = s.memory.buffer.byteLength;
  if (need > have) s.memory.grow(Math.ceil((need - have) / WASM_PAGE));
  const heap = new Float32Array(s.memory.buffer);
  const kept = new Int32Array(L);
  for (let n = 0; n < b; n++) {
    // Positions where one of the point's V signal rows is nonzero.
    let T = 0;
    for (let t = 0; t < L; t++) if (positionHasSignal(delta, n, V, L, dOut, t)) kept[T++] = t;
    const Tc = roundUp(T, 4);
    // B panels: B[8q + j, p] = s_w·a[n, kept[p], 8q + j] at float (q·Tc + p)·8 + j (column K of an
    // unaligned B with a bias: 1); zero for p ≥ T and past the columns. The ones panel: lane 0.
    heap.fill(0, bp, bp + panels * Tc * NR);
    for (let p = 0; p < T; p++) {
      const from = (n * L + kept[p]!) * K;
      for (let k = 0; k < K; k++) heap[bp + ((k >> 3) * Tc + p) * NR + (k & 7)] = weightScale * a[from + k]!;
      if (cols > K) heap[bp + ((K >> 3) * Tc + p) * NR + (K & 7)] = 1;
    }
    if (onesPanel) {
      heap.fill(0, op, op + Tc * NR);
      for (let p = 0; p < T; p++) heap[op + p * NR] = 1;
    }
    // A tiles: A[(i·quads + u)·4 + r, p] = δ[n·V + i, kept[p], 4u + r] at float ((i·quads + u)·Tc + p)·4
    // + r; zero for p ≥ T and past dOut.
    if (bulk && T === L) {
      // Rows (i, c) = δ[n·V + i, ·, c] (per logit [L, dOut] → [dOut, L]), then packed as tiles.
      heap.set(delta.subarray(n * V * rowSize, (n + 1) * V * rowSize), dp);
      for (let i = 0; i < V; i++) s.ex.transpose(4 * (dp + i * rowSize), L, dOut, 4 * (tp + i * rowSize));
      s.ex.packGroups(4 * tp, L, V * quads, MR, L, 4 * ap, V * quads, 0);
    } else
      for (let i = 0; i < V; i++) {
        const row = (n * V + i) * rowSize;
        for (let u = 0; u < quads; u++) {
          const tile = ap + (i * quads + u) * Tc * MR;
          const c0 = u * MR;
          if (c0 + MR <= dOut) {
            for (let p = 0; p < T; p++) {
              const src = row + kept[p]! * dOut + c0;
              const dst = tile + p * MR;
              heap[dst] = delta[src]!;
              heap[dst + 1] = delta[src + 1]!;
              heap[dst + 2] = delta[src + 2]!;
              heap[dst + 3] = delta[src + 3]!;
            }
          } else {
            heap.fill(0, tile, tile + T * MR);
            for (let p = 0; p < T; p++) {
              const src = row + kept[p]! * dOut + c0;
              for (let r = 0; r < dOut - c0; r++) heap[tile + p * MR + r] = delta[src + r]!;
            }
          }
          heap.fill(0, tile + T * MR, tile + Tc * MR);
        }
      }
    if (aligned) {
      // Logit i's C[c, k] at cp + i·width + c·K (ldc = K: whole panels), its bias sums at
      // sp + (i·dOut + c)·8, scaled into cp + i·width + dOut·K + c; then the point's rows at once.
      for (let i = 0; i < V; i++) {
        const tiles = 4 * (ap + i * quads * Tc * MR);
        s.ex.gemm(tiles, 4 * bp, Tc, quads, panels, 4 * (cp + i * width), 4 * K, 0, 0, 1, 0);
      }
      if (onesPanel) {
        s.ex.gemm(4 * ap, 4 * op, Tc, V * quads, 1, 4 * sp, 4 * NR, 0, 0, 1, 0);
        for (let i = 0; i < V; i++)
          for (let c = 0; c < dOut; c++)
            heap[cp + i * width + dOut * K + c] = biasScale * heap[sp + (i * dOut + c) * NR]!;
      }
      out.set(heap.subarray(cp, cp + V * width), n * V * width);
      continue;
    }
    // C[(i·dPad + c), k] for logit i, output channel c: (c, k) columns of row n·V + i (k = K: bias).
    s.ex.gemm(4 * ap, 4 * bp, Tc, V * quads, panels, 4 * cp, 4 * ldc, 0, 0, 1, 0);
    for (let i = 0; i < V; i++) {
      const dst = (n * V + i) * width;
      for (let c = 0; c < dOut; c++) {
        const src = cp + (i * dPad + c) * ldc;
        const to = dst + c * K;
        if (K > COPY_LOOP) out.set(heap.subarray(src, src + K), to);
        else for (let k = 0; k < K; k++) out[to + k] = heap[src + k]!;
        if (bias) out[dst + dOut * K + c] = biasScale * heap[src + K]!;
      }
    }
  }
}

/**
 * One-hot (embedding) gradient rows: ids [b, L] (row indices, as floats), δ [b·V, L, dOut] into
 * out [b·V, dOut·vocab] (see the module comment). Plain JS: a scatter of the signals, no product.
 */
export function embeddingGradientRows(
  ids: ArrayLike<number>,
  delta: Float32Array,
  dims: { b: number; V: number; L: number; vocab: number; dOut: number },
  weightScale: number,
  out: Float32Array,
): void {
  const { b, V, L, vocab, dOut } = dims;
  const width = dOut * vocab;
  out.fill(0, 0, b * V * width);
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < V; i++) {
      const r = n * V + i;
      for (let t = 0; t < L; t++) {
        // Ids as the forward pass reads them (tf.cast to int32 truncates); out of range: a zero one-hot row.
        const id = Math.trunc(ids[n * L + t]!);
        if (!(id >= 0 && id < vocab)) continue;
        const src = (r * L + t) * dOut;
        const dst = r * width + id;
        for (let c = 0; c < dOut; c++) out[dst + c * vocab] = out[dst + c * vocab]! + delta[src + c]!;
      }
    }
  }
  if (weightScale !== 1) for (let e = 0; e < b * V * width; e++) out[e] = weightScale * out[e]!;
}

/** Reused output of {@link sparseRowsProduct} (callers copy it at once). */
let productScratch: Float32Array | null = null;

/**
 * C = s·(A Bᵀ) for A [rows × k] and B [cols × k] row-major, over the nonzero rows of A only (the
 * others' rows of C are exact zeros): the input gradient dy·Wᵀ of a dense layer over positions on
 * the replicated batch, where the padding positions' (and, after a CLS pooling, all but one
 * position's) cotangents vanish. Returns null where that would not pay (fewer than a quarter of
 * the rows zero) or cannot run (no SIMD, k not a multiple of 4, cols not a multiple of 8): then the
 * caller multiplies as usual. With `reuse`, the result is a view of a buffer reused by the next
 * call (for a caller that copies it at once).
 */
export function sparseRowsProduct(
  a: Float32Array,
  rows: number,
  k: number,
  b: Float32Array,
  cols: number,
  scale: number,
  reuse: boolean,
): Float32Array | null {
  if (!positionGradTestHooks.enabled || k % MR !== 0 || cols % NR !== 0) return null;
  const s = instance();
  if (!s) return null;
  const nonzero: number[] = [];
  for (let r = 0; r < rows; r++) {
    const base = r * k;
    for (let p = 0; p < k; p++) {
      if (a[base + p] !== 0) {
        nonzero.push(r);
        break;
      }
    }
  }
  if (nonzero.length > 0.75 * rows) return null;
  const m = nonzero.length;
  const tiles = Math.ceil(m / MR);
  const panels = cols / NR;
  const bp = 0;
  const ap = bp + panels * k * NR * 4;
  const cp = ap + tiles * k * MR * 4;
  const need = cp + tiles * MR * cols * 4;
  const have = s.memory.buffer.byteLength;
  if (need > have) s.memory.grow(Math.ceil((need - have) / WASM_PAGE));
  const heap = new Float32Array(s.memory.buffer);
  // B panels: B[8q + j, p] at float (q·k + p)·8 + j, scaled.
  for (let j = 0; j < cols; j++) {
    const base = bp / 4 + (j >> 3) * k * NR + (j & 7);
    for (let p = 0; p < k; p++) heap[base + p * NR] = scale * b[j * k + p]!;
  }
  // A tiles of the nonzero rows: A[4t + r, p] at float (t·k + p)·4 + r (zero rows past m).
  heap.fill(0, ap / 4 + Math.floor(m / MR) * k * MR, cp / 4);
  for (let i = 0; i < m; i++) {
    const base = ap / 4 + (i >> 2) * k * MR + (i & 3);
    const src = nonzero[i]! * k;
    for (let p = 0; p < k; p++) heap[base + p * MR] = a[src + p]!;
  }
  positionGradTestHooks.sparseCalls++;
  if (m > 0) s.ex.gemm(ap, bp, k, tiles, panels, cp, cols * 4, 0, 0, 1, 0);
  const size = rows * cols;
  let out: Float32Array;
  if (reuse) {
    if (!productScratch || productScratch.length < size) productScratch = new Float32Array(size);
    out = productScratch.subarray(0, size).fill(0);
  } else out = new Float32Array(size);
  const c = heap.subarray(cp / 4, cp / 4 + m * cols);
  for (let i = 0; i < m; i++) out.set(c.subarray(i * cols, (i + 1) * cols), nonzero[i]! * cols);
  return out;
}

/** A convolution's geometry for {@link im2colRows} (NHWC input, conv1d as H = 1). */
export interface ConvGeometry {
  b: number;
  H: number;
  W: number;
  C: number;
  kh: number;
  kw: number;
  oh: number;
  ow: number;
  strides: [number, number];
  dilations: [number, number];
  /** Zeros before the first row / column of the input ('same': half the total, the rest after). */
  padTop: number;
  padLeft: number;
}

let patchScratch: Float32Array | null = null;

/**
 * im2col rows of a convolution's input x [b, H, W, C]: [b, oh·ow, kh·kw·C], tap (i, j) at column
 * (i·kw + j)·C, zeros where the tap falls in the padding. A copy, in plain memory (tfjs-wasm's
 * strided slices run in JS through a full read of their input). Valid until the next call (one
 * scratch array per thread, kept: a fresh array's first touch is slow).
 */
export function im2colRows(x: Float32Array, g: ConvGeometry): Float32Array {
  const { b, H, W, C, kh, kw, oh, ow, strides, dilations, padTop, padLeft } = g;
  const K = kh * kw * C;
  const size = b * oh * ow * K;
  if (!patchScratch || patchScratch.length < size) patchScratch = new Float32Array(size);
  const out = patchScratch.subarray(0, size);
  let o = 0;
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < oh; y++) {
      for (let z = 0; z < ow; z++) {
        for (let i = 0; i < kh; i++) {
          const row = y * strides[0] + i * dilations[0] - padTop;
          for (let j = 0; j < kw; j++, o += C) {
            const col = z * strides[1] + j * dilations[1] - padLeft;
            const inside = row >= 0 && row < H && col >= 0 && col < W;
            const s = ((n * H + row) * W + col) * C;
            if (C > COPY_LOOP) {
              if (inside) out.set(x.subarray(s, s + C), o);
              else out.fill(0, o, o + C);
            } else if (inside) for (let k = 0; k < C; k++) out[o + k] = x[s + k]!;
            else for (let k = 0; k < C; k++) out[o + k] = 0;
          }
        }
      }
    }
  }
  return out;
}

/**
 * The factors of a pooled term (./terms.ts) from a convolution's im2col rows `patches` [b, L, K]
 * and its output signals δ [b·V, L, C]: per point n and channel c, the positions t (increasing)
 * where one of the V signals is nonzero fill the slots s < S — a [(n·C + c)·S + s] = (s_w·patch_t,
 * s_b if a bias) of Kq = K (+ 1) floats, d[n·V + i, c·S + s] = δ[n·V + i, t, c]; the rest is zeros.
 * A position whose V signals are λ times a slot's (its first position's) shares it, its vector
 * added times λ (exact to float32 rounding: Σ_t δ_t a_t = δ Σ_t λ_t a_t; the tied maxima of a global
 * max-pool, whose signals differ by the activation's derivative at each). More than S signals in
 * different directions is an error (S is one per max-pool window, see structured.ts).
 * Written into `into`'s arrays where given (zeroed first), else fresh ones.
 */
export function pooledFactors(
  patches: Float32Array,
  delta: Float32Array,
  dims: { b: number; V: number; L: number; K: number; C: number; S: number },
  weightScale: number,
  biasScale: number | null,
  layer: string,
  into: { a?: Float32Array; d?: Float32Array } = {},
): { a: Float32Array; d: Float32Array } {
  const { b, V, L, K, C, S } = dims;
  const Kq = K + (biasScale === null ? 0 : 1);
  const a = into.a?.fill(0) ?? new Float32Array(b * C * S * Kq);
  const d = into.d?.fill(0) ?? new Float32Array(b * V * C * S);
  const used = new Int32Array(C);
  // first[c·S + s]: the first position of slot s of channel c.
  const first = new Int32Array(C * S);
  // slot[t·C + c]: the slot of position t in channel c (−1: no signal there for any logit).
  const slot = new Int32Array(L * C);
  for (let n = 0; n < b; n++) {
    slot.fill(-1);
    for (let i = 0; i < V; i++) {
      const row = (n * V + i) * L * C;
      for (let e = 0; e < L * C; e++) if (delta[row + e] !== 0) slot[e] = 0;
    }
    used.fill(0);
    // λ with position t's V signals in channel c = λ × position u's (to float32 rounding: within
    // 1e-6 of their largest, or 2⁻¹⁰⁰ for signals near float32's subnormals, e.g. a saturated GELU's
    // derivative, where the rounding is coarser), or null.
    const ratio = (t: number, u: number, c: number): number | null => {
      let [tu, uu, big] = [0, 0, 0];
      for (let i = 0; i < V; i++) {
        const row = (n * V + i) * L * C + c;
        const [x, y] = [delta[row + t * C]!, delta[row + u * C]!];
        tu += x * y;
        uu += y * y;
        big = Math.max(big, Math.abs(x));
      }
      const lambda = tu / uu;
      for (let i = 0; i < V; i++) {
        const row = (n * V + i) * L * C + c;
        if (Math.abs(delta[row + t * C]! - lambda * delta[row + u * C]!) > 1e-6 * big + 2 ** -100)
          return null;
      }
      return lambda;
    };
    for (let t = 0; t < L; t++) {
      for (let c = 0; c < C; c++) {
        if (slot[t * C + c]! < 0) continue;
        let s = 0;
        let lambda: number | null = null;
        for (; s < used[c]!; s++) {
          lambda = ratio(t, first[c * S + s]!, c);
          if (lambda !== null) break;
        }
        const shared = s < used[c]!;
        if (!shared) {
          if (s >= S) {
            throw new Error(
              `structured eNTK: layer ${layer} has signals in more than ${S} directions in channel ${c} (one per max-pool window expected: a bug)`,
            );
          }
          used[c]!++;
          first[c * S + s] = t;
        }
        slot[t * C + c] = s;
        const e = ((n * C + c) * S + s) * Kq;
        const p = (n * L + t) * K;
        const w = shared ? lambda! * weightScale : weightScale;
        if (!shared && w === 1) a.set(patches.subarray(p, p + K), e);
        else for (let k = 0; k < K; k++) a[e + k] = a[e + k]! + w * patches[p + k]!;
        if (biasScale !== null) a[e + K] = a[e + K]! + (shared ? lambda! : 1) * biasScale;
      }
    }
    // A slot's signals are its first position's.
    for (let i = 0; i < V; i++) {
      const row = (n * V + i) * L * C;
      const out = (n * V + i) * C * S;
      for (let e = 0; e < L * C; e++) {
        const s = slot[e]!;
        const c = e % C;
        if (s >= 0 && first[c * S + s] === (e - c) / C) d[out + c * S + s] = delta[row + e]!;
      }
    }
  }
  return { a, d };
}

/**
 * The factors of a pixel-pooled term (./terms.ts PoolPixels) from a convolution's input `x`
 * [b, U·D] (channels last) and its output signals δ [b·V, L, C]: per point n, a[n] = [s_w·x[n] |
 * p[c, s]] where channel c's slots s hold, in increasing order, the positions t with a nonzero
 * signal for some logit (−1: empty), d[n·V + i, c·S + s] = δ[n·V + i, t, c]. Behind max-pool windows
 * (each routes its signal to one position) a channel has at most S such positions; more is an error.
 * Written into `into`'s arrays where given, else fresh ones.
 */
export function pooledPositions(
  x: Float32Array,
  delta: Float32Array,
  dims: { b: number; V: number; L: number; C: number; S: number; units: number; depth: number },
  weightScale: number,
  layer: string,
  into: { a?: Float32Array; d?: Float32Array } = {},
): { a: Float32Array; d: Float32Array } {
  const { b, V, L, C, S, units, depth } = dims;
  const X = units * depth;
  const dIn = X + C * S;
  const a = into.a ?? new Float32Array(b * dIn);
  const d = into.d?.fill(0) ?? new Float32Array(b * V * C * S);
  const used = new Int32Array(C);
  const [step, span] = [L * C, (V - 1) * L * C];
  for (let n = 0; n < b; n++) {
    for (let e = 0; e < X; e++) a[n * dIn + e] = weightScale * x[n * X + e]!;
    const sel = n * dIn + X;
    a.fill(-1, sel, sel + C * S);
    used.fill(0);
    for (let t = 0; t < L; t++) {
      for (let c = 0; c < C; c++) {
        // Entry (t, c) of logit i's signals at delta[e + i·L·C]; the first nonzero one, if any.
        const e = (n * V * L + t) * C + c;
        let i = e;
        while (i <= e + span && delta[i] === 0) i += step;
        if (i > e + span) continue;
        const s = used[c]!++;
        if (s >= S) {
          throw new Error(
            `structured eNTK: layer ${layer} has signals at more than ${S} positions in channel ${c} (one per max-pool window expected: a bug)`,
          );
        }
        a[sel + c * S + s] = t;
        const to = n * V * C * S + c * S + s;
        for (let i = 0; i < V; i++) d[to + i * C * S] = delta[e + i * step]!;
      }
    }
  }
  return { a, d };
}
