/**
 * Contraction of per-point factors into kernel blocks. Shared by the main thread and the worker
 * threads (the same code on the same inputs, hence bitwise-identical results for any thread count).
 *
 * A kernel is a sum of terms; for row points x_n (n < r) and column points x'_m (m < c):
 *   factored: (s_w²⟨a_n, a'_m⟩ + s_b²) · ⟨δ_i(x_n), δ_j(x'_m)⟩        a: [·, dIn], δ rows: [·V, width]
 *   identity: (s_w²⟨a_n, a'_m⟩ + s_b²) · [i = j]                       a: [·, dIn]
 *   gram:     ⟨g_i(x_n), g_j(x'_m)⟩                                    g rows (per-example gradients): [·V, width]
 *   tokens:   Σ_{slots s, s' : id_s = id'_s'} ⟨g_i[s], g'_j[s']⟩     a: slot ids [·, dIn], g rows [·V, width]
 *   pooled:   Σ_c Σ_{s, s'} δ_i[c, s] δ'_j[c, s'] ⟨e[c, s], e'[c, s']⟩   a: slot vectors [·, C·S·K], δ rows [·V, C·S]
 *   positions: Σ_{t, t'} (s_w²⟨a_n[t], a'_m[t']⟩ + s_b²) ⟨δ_i[t], δ'_j[t']⟩  a: [·, T·dIn/T], δ rows: [·V, T·width/T]
 * The tokens term is an embedding's gradient kept sparse (see {@link addPairTerm}): only the rows of
 * the table that a point's tokens select, one slot per distinct token. The pooled term is a
 * convolution whose output reaches the logits only through a max-pooling: per output channel c at
 * most S positions (one per pool window) get a signal, slot s holding that position's input patch
 * e[c, s] (times s_w, then s_b for the bias) and its signals δ_i[c, s] — an exact rewrite of the
 * convolution's per-example gradient Σ_s δ_i[c, s] e[c, s] (column c), S² patch products per channel
 * instead of V² products of full gradient rows (see {@link pooledPair}). With `pool.pixels` (max-pool
 * windows: one position per slot) a point holds instead its input pixels (times s_w) and each slot's
 * position p[c, s]: ⟨e[c, s], e'[c, s']⟩ = Σ_taps ⟨x_u, x'_u'⟩ + s_b² from the products of input
 * pixels, shared by every channel (see {@link PoolPixels}). The positions term is a dense layer over
 * T positions (weights shared by the positions) kept as its inputs and signals per position: the
 * factored term summed over position pairs (see {@link positionsPair}): T²·d_in + V·T²·d_out +
 * V²·T·d_out multiply-adds per pair of points (d_in = dIn/T, d_out = width/T) instead of the V²·P of
 * its explicit gradient rows (P = (d_in + 1)·d_out with the bias).
 * Full blocks are [r·V, c·V] (row n·V + i, column m·V + j); trace blocks are [r, c] with entries
 * Σ_i K_ii / V, where the δ / g rows of one point are contracted as one vector of length V·width.
 */
import type { TermFeatures } from './structured.js';

/**
 * A pooled term's slot products from input pixels (docs/theory.md §Per-layer rules): the patch of
 * output position p is the input pixels index[p·taps + o] (o < taps; −1: padding, a zero), so
 * ⟨patch_p, patch'_p'⟩ = Σ_o ⟨x_index[p, o], x'_index[p', o]⟩ (both in the image) — U² pixel
 * products of `depth` floats and P² sums of taps per pair of points instead of a patch product per
 * channel and slot pair. Factors per point: a = [x (U·depth, times s_w) | p[c, s] (C·S; −1: empty)].
 */
export interface PoolPixels {
  /** Input pixels U (H·W; L for Conv1D). */
  units: number;
  /** Input channels per pixel. */
  depth: number;
  /** Taps per output position (kh·kw). */
  taps: number;
  /** Per output position p and tap o, the input pixel (−1: padding); P = index.length / taps. */
  index: number[];
  /** s_b² (0 without a bias). */
  bias2: number;
}

/** A term of the kernel (serialisable: sent to worker threads). */
export interface TermMeta {
  kind: 'factored' | 'identity' | 'gram' | 'tokens' | 'pooled' | 'positions';
  /** Layer the term comes from ('*' for the whole-model Jacobian). */
  layer: string;
  /**
   * Width of the layer input a (factored, identity; positions: T inputs back to back), slots per
   * point (tokens), C·S·K slot vector floats per point (pooled); 0 for gram.
   */
  dIn: number;
  /**
   * Width of a δ row (factored; positions: T signals back to back), of a per-example gradient row
   * (gram), slots × embedding width (tokens), C·S (pooled); 0 for identity.
   */
  width: number;
  /** Pooled terms: output channels C, slots per channel S, floats K of a slot vector (a patch). */
  pool?: { channels: number; slots: number; patch: number; pixels?: PoolPixels };
  /** Positions terms: the number T of positions. */
  positions?: number;
  /** Squared weight / bias multipliers (identity: including the squared output scale c²). */
  sw2: number;
  sb2: number;
  /** Factored dense term feeding the identity head element-wise: factors also carry s and U. */
  gated?: boolean;
  /**
   * Gram term whose per-example gradients have few exact zeros (dense layers over positions, layer
   * norms): contracted by the dense kernel on rows packed without per-point padding (./wasm-terms.ts).
   */
  dense?: boolean;
}

/** The factors of a block of points. `key` identifies the block for caching (unique per call). */
export interface BlockInput {
  key: string;
  points: number;
  terms: TermFeatures[];
}

export type ContractionMode = 'full' | 'trace';

/**
 * A computed block: `data` [rows × cols] row-major and, when asked for, its transpose. The arrays
 * may be views of backend memory, valid only until `done()` and until the next backend call;
 * `owned` tells whether they are plain arrays the caller may keep.
 */
export interface BlockOutput {
  data: Float32Array | Float64Array;
  transposed: Float32Array | Float64Array | null;
  owned: boolean;
  done(): void;
}

/** Computes one kernel block from row and column factors. */
export interface BlockComputer {
  /** Full: [r·V, c·V] row-major; trace: [r, c]; with `transpose` also the transposed block. */
  compute(row: BlockInput, col: BlockInput, transpose: boolean): BlockOutput;
  /** Free every cached tensor. */
  release(): void;
  /** Floating-point operations of the products executed so far (2 per multiply-add, padding included). */
  readonly flops: number;
}

/** Bytes of the factors of a block of `points` points. */
export function featureBytes(terms: TermMeta[], points: number, V: number): number {
  let floats = 0;
  for (const t of terms) floats += points * (t.dIn + V * t.width + (t.gated ? t.width : 0));
  return floats * 4;
}

/**
 * out[(n·V + i), (m·V + i)] += g[n, m] for a full block [r·V, c·V] (row strides: `ldOut` entries
 * for out, default c·V; `ldg` for g, default c).
 */
export function addIdentity(
  out: Float32Array | Float64Array,
  g: ArrayLike<number>,
  r: number,
  c: number,
  V: number,
  ldOut = c * V,
  ldg = c,
): void {
  for (let n = 0; n < r; n++) {
    for (let i = 0; i < V; i++) {
      const row = (n * V + i) * ldOut + i;
      for (let m = 0; m < c; m++) out[row + m * V] = out[row + m * V]! + g[n * ldg + m]!;
    }
  }
}

/**
 * ⟨x[xo : xo+n], y[yo : yo+n]⟩ summed in float64 (two interleaved partial sums). The one dot
 * product of every float64 contraction (blocks here, pairs in pairs.ts), so all of them round alike.
 */
export function dot(x: Float32Array, xo: number, y: Float32Array, yo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let k = 0;
  for (; k + 1 < n; k += 2) {
    s0 += x[xo + k]! * y[yo + k]!;
    s1 += x[xo + k + 1]! * y[yo + k + 1]!;
  }
  if (k < n) s0 += x[xo + k]! * y[yo + k]!;
  return s0 + s1;
}

/**
 * The tokens term of one pair of points (row point n of `fr`, column point m of `fc`) added to
 * acc[i·V + j] (full) or acc[0] (trace: Σ_i, not yet divided by V), summed in float64:
 *     K_ij(x_n, x'_m) += Σ_{s, s' : id_s = id'_s'} ⟨g_i[s], g'_j[s']⟩
 * where a point's slots hold its distinct token ids in increasing order (then −1: empty) and
 * g_i[s] = ∂f_i/∂(table row id_s), the sum of the cotangents at the positions holding that token:
 * the embedding's per-example gradient restricted to its nonzero rows (an exact rewrite of ⟨G_i, G'_j⟩).
 */
export function tokenPair(
  t: TermMeta,
  V: number,
  fr: TermFeatures,
  n: number,
  fc: TermFeatures,
  m: number,
  full: boolean,
  acc: Float64Array,
): void {
  const S = t.dIn;
  const e = t.width / S;
  const ir = fr.a!;
  const ic = fc.a!;
  const dr = fr.d!;
  const dc = fc.d!;
  let p = n * S;
  let q = m * S;
  const pEnd = p + S;
  const qEnd = q + S;
  while (p < pEnd && q < qEnd) {
    const u = ir[p]!;
    const v = ic[q]!;
    if (u < 0 || v < 0) break;
    if (u < v) p++;
    else if (v < u) q++;
    else {
      const sr = (p - n * S) * e;
      const sc = (q - m * S) * e;
      for (let i = 0; i < V; i++) {
        const xo = (n * V + i) * t.width + sr;
        if (!full) {
          acc[0] = acc[0]! + dot(dr, xo, dc, (m * V + i) * t.width + sc, e);
          continue;
        }
        for (let j = 0; j < V; j++) {
          acc[i * V + j] = acc[i * V + j]! + dot(dr, xo, dc, (m * V + j) * t.width + sc, e);
        }
      }
      p++;
      q++;
    }
  }
}

/**
 * The pooled term of one pair of points (row point n of `fr`, column point m of `fc`) added to
 * acc[i·V + j] (full) or acc[0] (trace: Σ_i, not yet divided by V), summed in float64:
 *     K_ij(x_n, x'_m) += Σ_c Σ_{s, s'} δ_i[c, s] · ⟨e[c, s], e'[c, s']⟩ · δ'_j[c, s']
 * (empty slots: zero vectors and signals).
 */
export function pooledPair(
  t: TermMeta,
  V: number,
  fr: TermFeatures,
  n: number,
  fc: TermFeatures,
  m: number,
  full: boolean,
  acc: Float64Array,
): void {
  const { channels: C, slots: S, patch: K, pixels } = t.pool!;
  const w = t.width;
  const [er, ec, dr, dc] = [fr.a!, fc.a!, fr.d!, fc.d!];
  const product = pixels
    ? pixelProducts(pixels, er, n * t.dIn, ec, m * t.dIn, S)
    : (c: number, s: number, q: number) =>
        dot(er, ((n * C + c) * S + s) * K, ec, ((m * C + c) * S + q) * K, K);
  // Slot pairs {s, q} once each, both orders summed together and every term a product (δ δ′)·e:
  // swapping the two points swaps the orders and the factors of each product, so K_ij(x, x′) and
  // K_ji(x′, x) are equal bit for bit (as for the gram terms).
  const at = (p: number, x: number, k: number, slot: number) =>
    p === 0 ? dr[(n * V + x) * w + k + slot]! : dc[(m * V + x) * w + k + slot]!;
  for (let c = 0; c < C; c++) {
    const k = c * S;
    for (let s = 0; s < S; s++) {
      for (let q = s; q < S; q++) {
        const e = product(c, s, q);
        const f = q === s ? 0 : product(c, q, s);
        if (e === 0 && f === 0) continue;
        for (let i = 0; i < V; i++) {
          const [ris, riq] = [at(0, i, k, s), at(0, i, k, q)];
          if (ris === 0 && riq === 0) continue;
          for (let j = full ? 0 : i; j < (full ? V : i + 1); j++) {
            let x = ris * at(1, j, k, q) * e;
            if (q !== s) x += riq * at(1, j, k, s) * f;
            if (full) acc[i * V + j] = acc[i * V + j]! + x;
            else acc[0] = acc[0]! + x;
          }
        }
      }
    }
  }
}

/**
 * The slot products ⟨e[c, s], e'[c, q]⟩ of a pixel-pooled term (see {@link PoolPixels}) for the
 * points whose factors start at xr[r0] and xc[c0], S slots per channel (float64): U² pixel
 * products, then per pair of
 * positions the sum over taps, then per slot pair a look-up of its positions (0 for empty slots).
 */
function pixelProducts(
  g: PoolPixels,
  xr: Float32Array,
  r0: number,
  xc: Float32Array,
  c0: number,
  S: number,
): (c: number, s: number, q: number) => number {
  const { units: U, depth: D, taps, index, bias2 } = g;
  const P = index.length / taps;
  const G = new Float64Array(U * U);
  for (let u = 0; u < U; u++) {
    for (let v = 0; v < U; v++) G[u * U + v] = dot(xr, r0 + u * D, xc, c0 + v * D, D);
  }
  const Q = new Float64Array(P * P);
  for (let p = 0; p < P; p++) {
    for (let q = 0; q < P; q++) {
      let sum = bias2;
      for (let o = 0; o < taps; o++) {
        const [u, v] = [index[p * taps + o]!, index[q * taps + o]!];
        if (u >= 0 && v >= 0) sum += G[u * U + v]!;
      }
      Q[p * P + q] = sum;
    }
  }
  const [rs, cs] = [r0 + U * D, c0 + U * D];
  return (c, s, q) => {
    const [p, p2] = [xr[rs + c * S + s]!, xc[cs + c * S + q]!];
    return p < 0 || p2 < 0 ? 0 : Q[p * P + p2]!;
  };
}

/** Terms contracted point pair by point pair (float64 sums in plain JS): tokens, pooled, positions. */
export function isPairTerm(t: TermMeta): boolean {
  return t.kind === 'tokens' || t.kind === 'pooled' || t.kind === 'positions';
}

/**
 * The positions term of one pair of points (row point n of `fr`, column point m of `fc`) added to
 * acc[i·V + j] (full) or acc[0] (trace: Σ_i, not yet divided by V), summed in float64:
 *     K_ij(x_n, x'_m) += Σ_t ⟨δ_i[t], C_j[t]⟩,  C_j[t] = Σ_t' A[t, t'] δ'_j[t'],
 *     A[t, t'] = s_w²⟨a[t], a'[t']⟩ + s_b²
 * — the per-example gradient Σ_t δ_i[t] ⊗ [s_w a[t], s_b] contracted without forming it
 * (docs/theory.md §Per-layer rules). Not symmetric bit for bit under swapping the points (see
 * {@link addPairTerm}).
 */
export function positionsPair(
  t: TermMeta,
  V: number,
  fr: TermFeatures,
  n: number,
  fc: TermFeatures,
  m: number,
  full: boolean,
  acc: Float64Array,
): void {
  const T = t.positions!;
  const [dIn, w] = [t.dIn / T, t.width / T];
  const [ar, ac, dr, dc] = [fr.a!, fc.a!, fr.d!, fc.d!];
  const A = scratch64(0, T * T);
  for (let p = 0; p < T; p++) {
    for (let q = 0; q < T; q++) {
      const g = t.sw2 === 0 ? 0 : dot(ar, n * t.dIn + p * dIn, ac, m * t.dIn + q * dIn, dIn);
      A[p * T + q] = t.sw2 * g + t.sb2;
    }
  }
  const C = scratch64(1, t.width);
  for (let j = 0; j < V; j++) {
    const sj = (m * V + j) * t.width;
    C.fill(0);
    for (let p = 0; p < T; p++) {
      for (let q = 0; q < T; q++) {
        const x = A[p * T + q]!;
        if (x === 0) continue;
        for (let o = 0; o < w; o++) C[p * w + o] = C[p * w + o]! + x * dc[sj + q * w + o]!;
      }
    }
    const [i0, i1] = full ? [0, V] : [j, j + 1];
    for (let i = i0; i < i1; i++) {
      const si = (n * V + i) * t.width;
      let s = 0;
      for (let e = 0; e < t.width; e++) s += dr[si + e]! * C[e]!;
      if (full) acc[i * V + j] = acc[i * V + j]! + s;
      else acc[0] = acc[0]! + s;
    }
  }
}

/** Reusable float64 scratch arrays of the pair functions (slot k, at least n entries). */
const scratch: Float64Array[] = [];
function scratch64(k: number, n: number): Float64Array {
  if (!scratch[k] || scratch[k]!.length < n) scratch[k] = new Float64Array(n);
  return scratch[k]!.subarray(0, n);
}

/** A pair term of one pair of points added to acc (see {@link tokenPair}, {@link pooledPair}, {@link positionsPair}). */
export function pairTermValue(
  t: TermMeta,
  V: number,
  fr: TermFeatures,
  n: number,
  fc: TermFeatures,
  m: number,
  full: boolean,
  acc: Float64Array,
): void {
  if (t.kind === 'pooled') pooledPair(t, V, fr, n, fc, m, full, acc);
  else if (t.kind === 'positions') positionsPair(t, V, fr, n, fc, m, full, acc);
  else tokenPair(t, V, fr, n, fc, m, full, acc);
}

/**
 * Add the pair term k (tokens, pooled, positions) of a block to `out` ([r·V, c·V] full or [r, c]
 * trace, row-major with `ld` entries per row; trace entries Σ_i K_ii times `traceScale`, 1/V unless
 * the caller divides later). A block against itself (`half`): only column point ≥ row point, the
 * lower triangle then either mirrored afterwards by the caller ('upper') or written here from the
 * same sums ('mirror': K(x_m, x_n) = K(x_n, x_m)ᵀ bit for bit, whatever order a term sums in); a
 * point's own V × V block is mirrored from its upper triangle.
 */
export function addPairTerm(
  out: Float32Array | Float64Array,
  ld: number,
  t: TermMeta,
  V: number,
  full: boolean,
  fr: TermFeatures,
  fc: TermFeatures,
  r: number,
  c: number,
  half: false | 'upper' | 'mirror',
  traceScale = 1 / V,
): void {
  const acc = new Float64Array(full ? V * V : 1);
  for (let n = 0; n < r; n++) {
    for (let m = half ? n : 0; m < c; m++) {
      acc.fill(0);
      pairTermValue(t, V, fr, n, fc, m, full, acc);
      if (half && m === n && full) {
        // A point's own V × V block: K_ji from K_ij.
        for (let i = 0; i < V; i++) for (let j = i + 1; j < V; j++) acc[j * V + i] = acc[i * V + j]!;
      }
      const mirror = half === 'mirror' && m !== n;
      if (!full) {
        out[n * ld + m] = out[n * ld + m]! + acc[0]! * traceScale;
        if (mirror) out[m * ld + n] = out[m * ld + n]! + acc[0]! * traceScale;
        continue;
      }
      for (let i = 0; i < V; i++) {
        const row = (n * V + i) * ld + m * V;
        for (let j = 0; j < V; j++) out[row + j] = out[row + j]! + acc[i * V + j]!;
        if (!mirror) continue;
        for (let j = 0; j < V; j++)
          out[(m * V + j) * ld + n * V + i] = out[(m * V + j) * ld + n * V + i]! + acc[i * V + j]!;
      }
    }
  }
}

/**
 * Whether one of point n's V signal rows is nonzero at position t, for signals δ [b·V, L, width]
 * (row n·V + i): positions where none is can be skipped exactly.
 */
export function positionHasSignal(
  delta: ArrayLike<number>,
  n: number,
  V: number,
  L: number,
  width: number,
  t: number,
): boolean {
  for (let i = 0; i < V; i++) {
    const base = ((n * V + i) * L + t) * width;
    for (let c = base; c < base + width; c++) if (delta[c] !== 0) return true;
  }
  return false;
}

/**
 * A tokens term's factors from the raw ones (in place for the ids): `ids` [b, S] token ids of
 * the S positions, `delta` [b·V, S·e] their cotangents (times the layer's weight scale). Per point,
 * the distinct ids of the positions with a nonzero cotangent, sorted, each with the sum of its
 * positions' cotangents (in position order); empty slots get id −1 and zeros. Positions whose
 * cotangent is zero for every output (padding) are dropped, so they change no bit of the kernel.
 */
export function compactTokens(
  ids: Float32Array,
  delta: Float32Array,
  b: number,
  V: number,
  S: number,
  e: number,
): { a: Float32Array; d: Float32Array } {
  const a = new Float32Array(b * S).fill(-1);
  const d = new Float32Array(b * V * S * e);
  const w = S * e;
  for (let n = 0; n < b; n++) {
    const live: number[] = [];
    for (let s = 0; s < S; s++) if (positionHasSignal(delta, n, V, S, e, s)) live.push(s);
    const distinct = [...new Set(live.map((s) => ids[n * S + s]!))].sort((x, y) => x - y);
    const slot = new Map(distinct.map((id, k) => [id, k]));
    distinct.forEach((id, k) => {
      a[n * S + k] = id;
    });
    for (const s of live) {
      const k = slot.get(ids[n * S + s]!)!;
      for (let i = 0; i < V; i++) {
        const src = (n * V + i) * w + s * e;
        const dst = (n * V + i) * w + k * e;
        for (let x = 0; x < e; x++) d[dst + x] = d[dst + x]! + delta[src + x]!;
      }
    }
  }
  return { a, d };
}

/** float64 contraction in plain JS (double-precision sums of products of float32 factors). */
export class JsBlockComputer implements BlockComputer {
  flops = 0;
  constructor(
    private readonly terms: TermMeta[],
    private readonly V: number,
    private readonly mode: ContractionMode,
  ) {}

  private gram(t: TermMeta, aR: Float32Array, aC: Float32Array, r: number, c: number): Float64Array {
    const g = new Float64Array(r * c);
    for (let n = 0; n < r; n++) {
      for (let m = 0; m < c; m++) {
        const ip = t.sw2 === 0 ? 0 : dot(aR, n * t.dIn, aC, m * t.dIn, t.dIn);
        if (t.sw2 !== 0) this.flops += 2 * t.dIn;
        g[n * c + m] = t.sw2 * ip + t.sb2;
      }
    }
    return g;
  }

  compute(row: BlockInput, col: BlockInput, transpose: boolean): BlockOutput {
    const r = row.points;
    const c = col.points;
    const V = this.V;
    const full = this.mode === 'full';
    const out = new Float64Array(full ? r * V * c * V : r * c);
    const identity = new Float64Array(full ? 0 : r * c);
    this.terms.forEach((t, k) => {
      const fr = row.terms[k]!;
      const fc = col.terms[k]!;
      if (isPairTerm(t)) {
        // Trace entries are divided by V at the end: add the undivided sums here.
        addPairTerm(out, full ? c * V : c, t, V, full, fr, fc, r, c, row.key === col.key && 'mirror', 1);
        return;
      }
      const g = t.kind !== 'gram' ? this.gram(t, fr.a!, fc.a!, r, c) : null;
      if (t.kind === 'identity') {
        if (full) addIdentity(out, g!, r, c, V);
        else for (let e = 0; e < r * c; e++) identity[e] = identity[e]! + g![e]!;
        return;
      }
      const w = t.width;
      const dR = fr.d!;
      const dC = fc.d!;
      if (full) {
        const cols = c * V;
        for (let n = 0; n < r; n++) {
          for (let i = 0; i < V; i++) {
            const rowBase = (n * V + i) * cols;
            const xo = (n * V + i) * w;
            for (let m = 0; m < c; m++) {
              const s = g ? g[n * c + m]! : 1;
              if (s === 0) continue;
              this.flops += 2 * V * w;
              for (let j = 0; j < V; j++) {
                out[rowBase + m * V + j] =
                  out[rowBase + m * V + j]! + s * dot(dR, xo, dC, (m * V + j) * w, w);
              }
            }
          }
        }
      } else {
        for (let n = 0; n < r; n++) {
          for (let m = 0; m < c; m++) {
            const s = g ? g[n * c + m]! : 1;
            if (s === 0) continue;
            this.flops += 2 * V * w;
            out[n * c + m] = out[n * c + m]! + s * dot(dR, n * V * w, dC, m * V * w, V * w);
          }
        }
      }
    });
    if (!full) for (let e = 0; e < r * c; e++) out[e] = out[e]! / V + identity[e]!;
    const [rows, cols] = full ? [r * V, c * V] : [r, c];
    return ownedBlock(out, rows, cols, transpose);
  }

  release(): void {}
}

/** Copy block [rows × cols] into `out` (row length outCols) at (rowOffset, colOffset). */
export function placeBlock(
  out: Float32Array | Float64Array,
  outCols: number,
  rowOffset: number,
  colOffset: number,
  block: Float32Array | Float64Array,
  rows: number,
  cols: number,
): void {
  for (let p = 0; p < rows; p++) {
    out.set(block.subarray(p * cols, (p + 1) * cols), (rowOffset + p) * outCols + colOffset);
  }
}

const TILE = 32;

/**
 * Block (row, col) of a kernel, or — `lower`: a block below the diagonal of a symmetric kernel — the
 * transpose of block (col, row), so that every entry equals its mirror bit for bit whatever order
 * the blocks are computed in (pooled terms do not evaluate K_ij(x, x′) and K_ji(x′, x) alike).
 */
export function computeOriented(
  computer: BlockComputer,
  row: BlockInput,
  col: BlockInput,
  lower: boolean,
  transpose: boolean,
): BlockOutput {
  if (!lower) return computer.compute(row, col, transpose);
  const block = computer.compute(col, row, true);
  return {
    data: block.transposed!,
    transposed: transpose ? block.data : null,
    owned: block.owned,
    done: block.done,
  };
}

/** Write the transpose of block [rows × cols] into `out` at (rowOffset, colOffset) (cols × rows). */
export function placeTransposed(
  out: Float32Array | Float64Array,
  outCols: number,
  rowOffset: number,
  colOffset: number,
  block: Float32Array | Float64Array,
  rows: number,
  cols: number,
): void {
  for (let p0 = 0; p0 < rows; p0 += TILE) {
    const p1 = Math.min(rows, p0 + TILE);
    for (let q0 = 0; q0 < cols; q0 += TILE) {
      const q1 = Math.min(cols, q0 + TILE);
      for (let q = q0; q < q1; q++) {
        const base = (rowOffset + q) * outCols + colOffset;
        for (let p = p0; p < p1; p++) out[base + p] = block[p * cols + q]!;
      }
    }
  }
}

/** A block in a plain array the caller may keep (with its transpose, when asked for). */
export function ownedBlock(
  data: Float32Array | Float64Array,
  rows: number,
  cols: number,
  transpose: boolean,
): BlockOutput {
  return {
    data,
    transposed: transpose ? transposeBlock(data, rows, cols) : null,
    owned: true,
    done: () => undefined,
  };
}

/** The transpose of block [rows × cols] as a new array [cols × rows]. */
export function transposeBlock<T extends Float32Array | Float64Array>(
  block: T,
  rows: number,
  cols: number,
): T {
  const out = new (block.constructor as { new (n: number): T })(rows * cols);
  placeTransposed(out, rows, 0, 0, block, rows, cols);
  return out;
}

/**
 * Write block (a, b) — rows = points [rowOffsets[a], rowOffsets[a+1]), columns = points
 * [colOffsets[b], colOffsets[b+1]) — into the matrix `out` with `cols` columns, `stride` entries per
 * point (V for full, 1 for trace); with `mirror` (symmetric kernel, a ≠ b) also its transpose at (b, a).
 */
export function writeBlock(
  out: Float32Array | Float64Array,
  cols: number,
  stride: number,
  rowOffsets: number[],
  colOffsets: number[],
  a: number,
  b: number,
  data: Float32Array | Float64Array,
  mirror: boolean,
  transposed: Float32Array | Float64Array | null = null,
): void {
  const rows = (rowOffsets[a + 1]! - rowOffsets[a]!) * stride;
  const bcols = (colOffsets[b + 1]! - colOffsets[b]!) * stride;
  const r0 = rowOffsets[a]! * stride;
  const c0 = colOffsets[b]! * stride;
  placeBlock(out, cols, r0, c0, data, rows, bcols);
  if (mirror && a !== b) {
    if (transposed) placeBlock(out, cols, c0, r0, transposed, bcols, rows);
    else placeTransposed(out, cols, c0, r0, data, rows, bcols);
  }
}

/** Views of block k of a point set whose factors are stored contiguously for all points. */
export function blockView(
  terms: TermMeta[],
  V: number,
  offsets: number[],
  arrays: Array<{ a?: Float32Array; d?: Float32Array; s?: Float32Array; u?: Float32Array }>,
  k: number,
  key: string,
): BlockInput {
  const s = offsets[k]!;
  const e = offsets[k + 1]!;
  return {
    key,
    points: e - s,
    terms: terms.map((t, j) => {
      const f = arrays[j]!;
      return {
        a: f.a ? f.a.subarray(s * t.dIn, e * t.dIn) : undefined,
        d: f.d ? f.d.subarray(s * V * t.width, e * V * t.width) : undefined,
        s: f.s ? f.s.subarray(s * t.width, e * t.width) : undefined,
        u: f.u,
      };
    }),
  };
}
