/**
 * float32 WebAssembly SIMD kernels of the eNTK contraction (used by ./wasm-terms.ts), assembled
 * byte by byte (src/util/wasm-asm.ts). All pointers and strides are in bytes.
 *
 * Products S = A Bᵀ of A [rows × K] and B [cols × K] (K a multiple of 4, zero-padded), with an
 * epilogue chosen by `mode`:
 *   0: C = S        1: C += G ⊙ S        2: C = G ⊙ S        3: C += S
 * Packing (by the caller): B in panels of NR = 8 rows, panel q holding B[8q + c, p] at float
 * (q·K + p)·8 + c. A in tiles of MR = 4 rows: A[4t + r, p] at (t·K + p)·4 + r. The masked kernel's
 * unit lists hold byte offsets p·32 into B panels; the A tile's row p is at half that, p·16.
 *
 * The micro-kernel keeps a 4 × 8 tile of S in eight f32x4 registers and per p loads two vectors of
 * B and four broadcast scalars of A (a plain, un-unrolled loop: measured 1.5× faster than 4×
 * unrolling under V8, and faster than tfjs-wasm's XNNPACK matMul). Every S[i, j] is summed over p
 * in increasing order in one lane whatever the tiling, so results do not depend on block sizes.
 */
import {
  type AsmFunction,
  add,
  and,
  cachedModule,
  divU,
  eq,
  F32,
  f32add,
  f32load,
  f32mul,
  f32store,
  f32x4add,
  f32x4mul,
  f32x4relaxedMadd,
  f32zero,
  funcBody,
  get,
  geU,
  gtU,
  I32,
  i32,
  ifElse,
  ifThen,
  incr,
  ltS,
  ltU,
  moduleBytes,
  mul,
  or,
  relaxedSimd,
  set,
  simd,
  sub,
  uleb,
  V128,
  vload,
  vmadd,
  vsplat32Load,
  vstore,
  vzero,
  type WasmModule,
  whileNot,
} from '../util/index.js';

/** Rows of a micro-kernel tile (dense and masked). */
export const MR = 4;
/** Columns of a micro-kernel tile (two f32x4). */
export const NR = 8;
/** Panels per column chunk: a chunk of B (NC · 8 · K floats) stays in L2 while all row tiles pass. */
const NC = 16;
/** i32 fields of a gemmMasked table entry. */
export const MASKED_FIELDS = 8;

const i32load = (offset: number) => [0x28, 2, ...uleb(offset)];

/** Locals of a micro-kernel: 2·MR accumulators and the two B vectors and the A broadcast. */
interface Tile {
  acc: number[][];
  b0: number;
  b1: number;
  a: number;
}

function tileLocals(first: number): Tile {
  let next = first;
  const acc: number[][] = [];
  for (let r = 0; r < MR; r++) acc.push([next++, next++]);
  return { acc, b0: next++, b1: next++, a: next++ };
}
const TILE_V128 = 2 * MR + 3;

/** acc = 0. */
function clear(T: Tile): number[] {
  return T.acc.flatMap(([x, y]) => [...vzero, ...set(x!), ...vzero, ...set(y!)]);
}

/**
 * One p step: B vectors at `bAddr`, A scalars at `aAddr` + 4r; acc += a·b by f32x4 multiply + add,
 * or by f32x4.relaxed_madd when `fma` (one instruction, one rounding on FMA3 machines).
 */
function step(T: Tile, bAddr: number[], aAddr: number[], fma: boolean): number[] {
  const e: number[] = [...bAddr, ...vload(0), ...set(T.b0), ...bAddr, ...vload(16), ...set(T.b1)];
  const madd = (acc: number, b: number) =>
    fma
      ? [...get(T.a), ...get(b), ...get(acc), ...f32x4relaxedMadd, ...set(acc)]
      : vmadd(acc, get(T.a), get(b));
  T.acc.forEach(([x, y], r) => {
    e.push(...aAddr, ...vsplat32Load(4 * r), ...set(T.a), ...madd(x!, T.b0), ...madd(y!, T.b1));
  });
  return e;
}

/** Store accumulator row r at C address local `cp` (G row at local `gp`), by `mode` (local). */
function epilogue(T: Tile, r: number, cp: number, gp: number, mode: number): number[] {
  const variant = (withG: boolean, accumulate: boolean): number[] => {
    const e: number[] = [];
    T.acc[r]!.forEach((x, c) => {
      const off = 16 * c;
      e.push(...get(cp));
      if (accumulate) e.push(...get(cp), ...vload(off));
      e.push(...get(x));
      if (withG) e.push(...get(gp), ...vload(off), ...f32x4mul);
      if (accumulate) e.push(...f32x4add);
      e.push(...vstore(off));
    });
    return e;
  };
  return [
    ...ifThen([...get(mode), ...i32(0), ...eq], variant(false, false)),
    ...ifThen([...get(mode), ...i32(1), ...eq], variant(true, true)),
    ...ifThen([...get(mode), ...i32(2), ...eq], variant(true, false)),
    ...ifThen([...get(mode), ...i32(3), ...eq], variant(false, true)),
  ];
}

/** `for (c0 = 0; c0 < panels; c0 += NC) { c1 = min(c0 + NC, panels); body }`. */
function chunks(c0: number, c1: number, panels: number, body: number[]): number[] {
  const chunk: number[] = [...get(c0), ...i32(NC), ...add, ...set(c1)];
  chunk.push(...ifThen([...get(c1), ...get(panels), ...geU], [...get(panels), ...set(c1)]));
  chunk.push(...body, ...get(c1), ...set(c0));
  return [...i32(0), ...set(c0), ...whileNot([...get(c0), ...get(panels), ...geU], chunk)];
}

/**
 * gemm(Ap, Bp, K, tiles, panels, C, ldc, G, ldg, group, mode): dense A (tiles · MR rows), all
 * panels; G row of output row i is ⌊i / group⌋.
 */
function gemmBody(fma: boolean): number[] {
  const [AP, BP, K, TILES, PANELS, C, LDC, G, LDG, GROUP, MODE] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  let next = 11;
  const [t, q, pa, pb, end, row, cp, gp, c0, c1] = Array.from({ length: 10 }, () => next++) as number[];
  const numI32 = next - 11;
  const T = tileLocals(next);

  const panel: number[] = [...get(BP), ...get(q), ...get(K), ...mul, ...i32(32), ...mul, ...add, ...set(pb)];
  panel.push(...get(t), ...get(K), ...mul, ...i32(4 * MR), ...mul, ...get(AP), ...add, ...set(pa));
  panel.push(...get(pb), ...get(K), ...i32(32), ...mul, ...add, ...set(end));
  panel.push(...clear(T));
  const inner = [...step(T, get(pb), get(pa), fma), ...incr(pa, 4 * MR), ...incr(pb, 32)];
  panel.push(...whileNot([...get(pb), ...get(end), ...geU], inner));
  for (let r = 0; r < MR; r++) {
    panel.push(...get(t), ...i32(MR), ...mul, ...i32(r), ...add, ...set(row));
    panel.push(
      ...get(C),
      ...get(row),
      ...get(LDC),
      ...mul,
      ...add,
      ...get(q),
      ...i32(32),
      ...mul,
      ...add,
      ...set(cp),
    );
    panel.push(...get(G), ...get(row), ...get(GROUP), ...divU, ...get(LDG), ...mul, ...add);
    panel.push(...get(q), ...i32(32), ...mul, ...add, ...set(gp));
    panel.push(...epilogue(T, r, cp, gp, MODE));
  }
  panel.push(...incr(q, 1));
  const tile = [...get(c0), ...set(q), ...whileNot([...get(q), ...get(c1), ...geU], panel), ...incr(t, 1)];
  const body = [...i32(0), ...set(t), ...whileNot([...get(t), ...get(TILES), ...geU], tile)];
  return funcBody(
    [
      [numI32, I32],
      [TILE_V128, V128],
    ],
    chunks(c0, c1, PANELS, body),
  );
}

/**
 * gemmMasked(table, count, K, panels, ldc, mode): `count` independent products, one per table
 * entry of MASKED_FIELDS i32:
 *   [A (masked tiles), idx (byte offsets p·32, ascending), n (entries of idx), C, G row, q0, tiles, B]
 * each summing only over the p listed in idx (skipping p where a point's signals are all zero —
 * inactive ReLU units — is exact), for its `tiles` row tiles and the panels q0 ≤ q < panels. G is
 * one row per entry (indexed by column). Panels are taken in chunks across all entries.
 */
function gemmMaskedBody(fma: boolean): number[] {
  const [TABLE, COUNT, K, PANELS, LDC, MODE] = [0, 1, 2, 3, 4, 5];
  let next = 6;
  const [t, q, ip, iend, o, pa, pb, cp, gp, bq, pt, pend, c0, c1] = Array.from(
    { length: 14 },
    () => next++,
  ) as number[];
  const [ap, idx, cbase, gbase, qs, tiles, bp] = Array.from({ length: 7 }, () => next++) as number[];
  const numI32 = next - 6;
  const T = tileLocals(next);

  const inner: number[] = [...get(ip), ...i32load(0), ...set(o), ...incr(ip, 4)];
  // B row p at p·32 into the panel, A row p at p·16 into the tile.
  inner.push(...get(pb), ...get(o), ...add, ...set(bq), ...get(pa), ...get(o), ...i32(1), 0x76 /* shr_u */);
  inner.push(...add, ...set(o));
  inner.push(...step(T, get(bq), get(o), fma));

  const panel: number[] = [...get(bp), ...get(q), ...get(K), ...mul, ...i32(32), ...mul, ...add, ...set(pb)];
  panel.push(...clear(T), ...get(idx), ...set(ip));
  panel.push(...whileNot([...get(ip), ...get(iend), ...geU], inner));
  panel.push(...get(gbase), ...get(q), ...i32(32), ...mul, ...add, ...set(gp));
  for (let r = 0; r < MR; r++) {
    panel.push(...get(cbase), ...get(t), ...i32(MR), ...mul, ...i32(r), ...add, ...get(LDC), ...mul, ...add);
    panel.push(...get(q), ...i32(32), ...mul, ...add, ...set(cp));
    panel.push(...epilogue(T, r, cp, gp, MODE));
  }
  panel.push(...incr(q, 1));

  const tile: number[] = [...get(ap), ...get(t), ...get(K), ...mul, ...i32(16), ...mul, ...add, ...set(pa)];
  tile.push(...get(qs), ...set(q), ...whileNot([...get(q), ...get(c1), ...geU], panel), ...incr(t, 1));

  const entry: number[] = [];
  [ap, idx, iend, cbase, gbase, qs, tiles, bp].forEach((l, k) => {
    entry.push(...get(pt), ...i32load(4 * k), ...set(l));
  });
  entry.push(...get(idx), ...get(iend), ...i32(4), ...mul, ...add, ...set(iend));
  entry.push(...ifThen([...get(qs), ...get(c0), ...ltU], [...get(c0), ...set(qs)]));
  entry.push(...i32(0), ...set(t), ...whileNot([...get(t), ...get(tiles), ...geU], tile));
  entry.push(...incr(pt, 4 * MASKED_FIELDS));

  const body = [...get(TABLE), ...set(pt), ...whileNot([...get(pt), ...get(pend), ...geU], entry)];
  const code = [...get(TABLE), ...get(COUNT), ...i32(4 * MASKED_FIELDS), ...mul, ...add, ...set(pend)];
  code.push(...chunks(c0, c1, PANELS, body));
  return funcBody(
    [
      [numI32, I32],
      [TILE_V128, V128],
    ],
    code,
  );
}

/**
 * scalePanels(src, s, idx, n, panels, K, dst): for the n inner indices in idx (byte offsets p·32),
 * dst = src · s[p] on row p of every panel (B-packed src, dst; s [K]). Only those rows are written.
 */
function scalePanelsBody(): number[] {
  const [SRC, S, IDX, N, PANELS, K, DST] = [0, 1, 2, 3, 4, 5, 6];
  let next = 7;
  const [ip, iend, o, q, a, b] = Array.from({ length: 6 }, () => next++) as number[];
  const numI32 = next - 7;
  const sv = next++;
  const panel: number[] = [...get(q), ...get(K), ...mul, ...i32(32), ...mul, ...get(o), ...add, ...set(a)];
  panel.push(...get(DST), ...get(a), ...add, ...set(b), ...get(SRC), ...get(a), ...add, ...set(a));
  for (const off of [0, 16]) {
    panel.push(...get(b), ...get(a), ...vload(off), ...get(sv), ...f32x4mul, ...vstore(off));
  }
  panel.push(...incr(q, 1));
  const entry: number[] = [...get(ip), ...i32load(0), ...set(o), ...incr(ip, 4)];
  // s[p] sits at byte p·4 = o / 8.
  entry.push(...get(S), ...get(o), ...i32(3), 0x76 /* shr_u */, ...add, ...vsplat32Load(0), ...set(sv));
  entry.push(...i32(0), ...set(q), ...whileNot([...get(q), ...get(PANELS), ...geU], panel));
  const code = [...get(IDX), ...set(ip), ...get(IDX), ...get(N), ...i32(4), ...mul, ...add, ...set(iend)];
  code.push(...whileNot([...get(ip), ...get(iend), ...geU], entry));
  return funcBody(
    [
      [numI32, I32],
      [1, V128],
    ],
    code,
  );
}

/**
 * scatter(T, ldT, g, out, ldc, c, V, idx, mode): for m < c and i, j < V,
 *   out[i·ldc + (m·V + j)·4]  =  (mode 1: out[…] +) g[m] · T[m·ldT + idx[i·V + j]]
 * (idx: V² byte offsets into a row of T). Spreads one point's pair products of a gated term,
 * scaled by its Gram row g, over its V rows of the output block.
 */
function scatterBody(): number[] {
  const [TT, LDT, G, OUT, LDC, C, VV, IDX, MODE] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  let next = 9;
  const [m, i, j, t, o, ip] = Array.from({ length: 6 }, () => next++) as number[];
  const numI32 = next - 9;
  const gm = next++;
  const val = next++;
  const inner: number[] = [];
  inner.push(...get(gm), ...get(t), ...get(ip), ...i32load(0), ...add, ...f32load(), ...f32mul, ...set(val));
  inner.push(
    ...get(o),
    ...ifElse(get(MODE), [...get(o), ...f32load(), ...get(val), ...f32add], get(val), F32),
  );
  inner.push(...f32store());
  inner.push(...incr(o, 4), ...incr(ip, 4), ...incr(j, 1));
  const rowI: number[] = [...get(OUT), ...get(i), ...get(LDC), ...mul, ...add];
  rowI.push(...get(m), ...get(VV), ...mul, ...i32(4), ...mul, ...add, ...set(o), ...i32(0), ...set(j));
  rowI.push(...whileNot([...get(j), ...get(VV), ...geU], inner), ...incr(i, 1));
  const point: number[] = [...get(G), ...get(m), ...i32(4), ...mul, ...add, ...f32load(), ...set(gm)];
  point.push(...get(TT), ...get(m), ...get(LDT), ...mul, ...add, ...set(t));
  point.push(...get(IDX), ...set(ip), ...i32(0), ...set(i));
  point.push(...whileNot([...get(i), ...get(VV), ...geU], rowI), ...incr(m, 1));
  const code = [...i32(0), ...set(m), ...whileNot([...get(m), ...get(C), ...geU], point)];
  return funcBody(
    [
      [numI32, I32],
      [2, F32],
    ],
    code,
  );
}

/** i8x16.shuffle picking 32-bit lanes (0–3 from the first operand, 4–7 from the second). */
function shuffle32(lanes: number[]): number[] {
  return [...simd(0x0d), ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])];
}

/**
 * A 4 × 4 transpose in registers, first half: the rows at local `sp`, `sp` + ls, … (ls: a local
 * holding the row stride in bytes; `sp` advances) into r[0..3], interleaved pairwise into tt[0..3].
 */
function loadInterleaved(r: number[], tt: number[], sp: number, ls: number): number[] {
  const e: number[] = [];
  for (let k = 0; k < 4; k++) e.push(...get(sp), ...vload(), ...set(r[k]!), ...incr(sp, get(ls)));
  e.push(...get(r[0]!), ...get(r[1]!), ...shuffle32([0, 4, 1, 5]), ...set(tt[0]!));
  e.push(...get(r[0]!), ...get(r[1]!), ...shuffle32([2, 6, 3, 7]), ...set(tt[1]!));
  e.push(...get(r[2]!), ...get(r[3]!), ...shuffle32([0, 4, 1, 5]), ...set(tt[2]!));
  e.push(...get(r[2]!), ...get(r[3]!), ...shuffle32([2, 6, 3, 7]), ...set(tt[3]!));
  return e;
}

/** Second half: the 4 columns stored at local `dp`, `dp` + step, … (step: a local, in bytes). */
function storeColumns(tt: number[], dp: number, step: number): number[] {
  const e: number[] = [];
  for (const [x, y, lanes] of [
    [0, 2, [0, 1, 4, 5]],
    [0, 2, [2, 3, 6, 7]],
    [1, 3, [0, 1, 4, 5]],
    [1, 3, [2, 3, 6, 7]],
  ] as const) {
    e.push(...get(dp), ...get(tt[x]!), ...get(tt[y]!), ...shuffle32([...lanes]), ...vstore());
    e.push(...incr(dp, get(step)));
  }
  return e;
}

/** transpose(src, rows, cols, dst): dst[j·rows + i] = src[i·cols + j] (4 × 4 SIMD tiles). */
function transposeBody(): number[] {
  const [SRC, ROWS, COLS, DST] = [0, 1, 2, 3];
  let next = 4;
  const [i, j, rows4, cols4, sp, dp, ls, ld] = Array.from({ length: 8 }, () => next++) as number[];
  const numI32 = next - 4;
  const r = [next++, next++, next++, next++];
  const tt = [next++, next++, next++, next++];
  const shl2 = [...i32(2), 0x74];

  /** Scalar copy of the rectangle [i0, i1) × [j0, j1). */
  const scalar = (i0: number[], i1: number[], j0: number[], j1: number[]): number[] => {
    const inner = [...get(DST), ...get(j), ...get(ROWS), ...mul, ...get(i), ...add, ...shl2, ...add];
    inner.push(...get(SRC), ...get(i), ...get(COLS), ...mul, ...get(j), ...add, ...shl2, ...add);
    inner.push(...f32load(), ...f32store(), ...incr(j, 1));
    const outer = [...j0, ...set(j), ...whileNot([...get(j), ...j1, ...geU], inner), ...incr(i, 1)];
    return [...i0, ...set(i), ...whileNot([...get(i), ...i1, ...geU], outer)];
  };

  const code: number[] = [...get(ROWS), ...i32(-4), ...and, ...set(rows4), ...get(COLS), ...i32(-4), ...and];
  code.push(...set(cols4), ...get(COLS), ...shl2, ...set(ls), ...get(ROWS), ...shl2, ...set(ld));
  const tile: number[] = [...get(SRC), ...get(i), ...get(COLS), ...mul, ...get(j), ...add, ...shl2, ...add];
  tile.push(...set(sp), ...loadInterleaved(r, tt, sp, ls));
  tile.push(...get(DST), ...get(j), ...get(ROWS), ...mul, ...get(i), ...add, ...shl2, ...add, ...set(dp));
  tile.push(...storeColumns(tt, dp, ld), ...incr(j, 4));
  const rowBlock = [
    ...i32(0),
    ...set(j),
    ...whileNot([...get(j), ...get(cols4), ...geU], tile),
    ...incr(i, 4),
  ];
  code.push(...i32(0), ...set(i), ...whileNot([...get(i), ...get(rows4), ...geU], rowBlock));
  code.push(...scalar(i32(0), get(rows4), get(cols4), get(COLS)));
  code.push(...scalar(get(rows4), get(ROWS), i32(0), get(COLS)));
  return funcBody(
    [
      [numI32, I32],
      [8, V128],
    ],
    code,
  );
}

/**
 * packGroups(src, K, groups, stride, chunk, dst, total, g0): rows src [groups·stride × K] (K a
 * multiple of 4, row stride 4K bytes) as A tiles (stride 4) or B panels (stride 8) in chunks of
 * `chunk` units, as groups g0 … g0 + groups − 1 of a layout of `total` groups: the chunk from unit c0
 * holds, for every group G, rows G·stride + r at
 *   dst + 4·(c0·total·stride + (G·len + p − c0)·stride + r)      (c0 ≤ p < c0 + len, len ≤ chunk)
 * (the layout the dense kernel reads one chunk at a time). 4 × 4 transposes by lane shuffles.
 */
function packGroupsBody(): number[] {
  const [SRC, K, GROUPS, STRIDE, CHUNK, DST, TOTAL, G0] = [0, 1, 2, 3, 4, 5, 6, 7];
  let next = 8;
  const [c0, len, base, g, p, pEnd, h, sp, dp, ldb, step] = Array.from(
    { length: 11 },
    () => next++,
  ) as number[];
  const numI32 = next - 8;
  const r = [next++, next++, next++, next++];
  const tt = [next++, next++, next++, next++];
  const shl2 = [...i32(2), 0x74];

  // One 4 × 4 block: rows g·stride + h .. + 3, units p .. p + 3.
  const quad: number[] = [...get(g), ...get(STRIDE), ...mul, ...get(h), ...add, ...get(K), ...mul];
  quad.push(...get(p), ...add, ...shl2, ...get(SRC), ...add, ...set(sp));
  quad.push(...loadInterleaved(r, tt, sp, ldb));
  quad.push(...get(G0), ...get(g), ...add, ...get(len), ...mul, ...get(p), ...add, ...get(c0), ...sub);
  quad.push(...get(STRIDE), ...mul, ...get(h), ...add, ...shl2, ...get(base), ...add, ...set(dp));
  quad.push(...storeColumns(tt, dp, step), ...incr(h, 4));

  const unit = [...i32(0), ...set(h), ...whileNot([...get(h), ...get(STRIDE), ...geU], quad), ...incr(p, 4)];
  const group: number[] = [...get(c0), ...set(p), ...get(c0), ...get(len), ...add, ...set(pEnd)];
  group.push(...whileNot([...get(p), ...get(pEnd), ...geU], unit), ...incr(g, 1));
  const chunk: number[] = [...get(K), ...get(c0), ...sub, ...set(len)];
  chunk.push(...ifThen([...get(CHUNK), ...get(len), ...ltU], [...get(CHUNK), ...set(len)]));
  chunk.push(...get(c0), ...get(TOTAL), ...mul, ...get(STRIDE), ...mul, ...shl2, ...get(DST), ...add);
  chunk.push(...set(base), ...i32(0), ...set(g));
  chunk.push(...whileNot([...get(g), ...get(GROUPS), ...geU], group), ...incr(c0, get(CHUNK)));
  const code: number[] = [...get(K), ...shl2, ...set(ldb), ...get(STRIDE), ...shl2, ...set(step)];
  code.push(...i32(0), ...set(c0), ...whileNot([...get(c0), ...get(K), ...geU], chunk));
  return funcBody(
    [
      [numI32, I32],
      [8, V128],
    ],
    code,
  );
}

/**
 * pooledPairs(q, qc, dr, dc, out, ldo, m0, c, cPad, C, S, V, mode, scratch): the second stage of a
 * max-pool-aware term, for one row point and the column points m0 ≤ m < c (m0, cPad multiples of 4,
 * c ≤ cPad), for all logits i, j < V:
 *   K[i][m][j]  (mode 0: =, else +=)  Σ_ch Σ_s' (Σ_s dr[i][ch][s] Q[ch][s][s'][m]) Dc[ch][s'][j][m]
 * with Q[ch][s][s'][m] at q + ch·qc + ((s·S + s')·cPad + m)·4, dr[i][ch][s] at dr + ((i·C + ch)·S
 * + s)·4, Dc in quads of column points, Dc[ch][s'][j][m] at dc + ((((m ÷ 4)·C + ch)·S + s')·V +
 * j)·16 + (m mod 4)·4 (one quad's signals contiguous), and K[i][m][j] at out + (i·ldo + m·V + j)·4
 * (ldo in floats). Column points m go in f32x4 lanes, four per pass. Per pass the scratch (16-byte
 * aligned, V·C·S·16 bytes) first receives T[i][ch·S + s'] = Σ_s dr[i][ch][s] Q[ch][s][s'] (s
 * ascending; for S ≤ 4 a channel's Q vectors of two slots s' stay in registers while every row i
 * passes, 1.25–1.3× the kernel's rate at S = 4; larger S four slots at a time); then each 2 × 4
 * tile of (i, j) accumulates
 * Σ_q T[i][q] Dc[q][j] over q = ch·S + s' ascending in eight registers (six loads per eight
 * products, no stores until the tile is done). Each lane is summed in the same order whatever quad
 * it is in, so results do not depend on m0.
 */
function pooledPairsBody(): number[] {
  const [Q, QC, DR, DC, OUT, LDO, M0, COLS, CPAD, CH, S, V, MODE, SCR] = Array.from(
    { length: 14 },
    (_, k) => k,
  ) as number[];
  let next = 14;
  const [mq, ch, i, j, sb, p, dp, dend, tp, tch, qBase, dcQuad, drBase, drI, pt, pd, qEnd, o] = Array.from(
    { length: 18 },
    () => next++,
  ) as number[];
  const [ld, cs16, s4, v16, lanes, rem] = Array.from({ length: 6 }, () => next++) as number[];
  const numI32 = next - 14;
  const firstV128 = next;
  const acc = [next++, next++, next++, next++, next++, next++, next++, next++]; // acc[r][k] at 4r + k
  const tv = [next++, next++, next++, next++]; // T vectors (T stage: four slots; tiles: two rows)
  const dv = [next++, next++, next++, next++];
  const qv = Array.from({ length: 8 }, () => next++); // Q[s][sb + k] at 2s + k (tKnown)
  const x = next++;
  const numV128 = next - firstV128;
  /** `addr + k·stride` for a local stride (k = 0, 1, 2, 3). */
  const at = (addr: number, stride: number, k: number): number[] => {
    const e = get(addr);
    for (let n = 0; n < k; n++) e.push(...get(stride), ...add);
    return e;
  };
  /** `while (sb + nb ≤ S) { body; sb += nb }` from sb = 0, then (nb = 1) for the rest. */
  const slots = (body: (nb: number) => number[]): number[] => [
    ...i32(0),
    ...set(sb),
    ...whileNot([...get(sb), ...i32(4), ...add, ...get(S), ...gtU], [...body(4), ...incr(sb, 4)]),
    ...whileNot([...get(sb), ...get(S), ...geU], [...body(1), ...incr(sb, 1)]),
  ];

  // T[i][ch·S + sb + k] = Σ_s splat(dr[i][ch][s]) Q[ch][s][sb + k] (k < nb; s ascending), to tp +
  // (sb + k)·16. drI = dr[i][ch][0], qBase = q + ch·qc + mq·4, Q[ch][s][s'] at qBase + (s·S + s')·ld.
  const tBlock = (nb: number): number[] => {
    const e: number[] = [];
    for (let k = 0; k < nb; k++) e.push(...vzero, ...set(tv[k]!));
    e.push(...get(qBase), ...get(sb), ...get(ld), ...mul, ...add, ...set(p), ...get(drI), ...set(dp));
    const s: number[] = [...get(dp), ...vsplat32Load(0), ...set(x)];
    for (let k = 0; k < nb; k++) s.push(...vmadd(tv[k]!, get(x), [...at(p, ld, k), ...vload()]));
    s.push(...incr(p, [...get(S), ...get(ld), ...mul]), ...incr(dp, 4));
    e.push(...whileNot([...get(dp), ...get(dend), ...geU], s));
    e.push(...get(tp), ...get(sb), ...i32(16), ...mul, ...add, ...set(o));
    for (let k = 0; k < nb; k++) e.push(...get(o), ...get(tv[k]!), ...vstore(16 * k));
    return e;
  };
  // Per channel: every row i (drI steps by C·S·4, tp by C·S·16).
  const tRow: number[] = [...get(drI), ...get(s4), ...add, ...set(dend), ...slots(tBlock)];
  tRow.push(...incr(drI, [...get(CH), ...get(s4), ...mul]), ...incr(tp, get(cs16)), ...incr(i, 1));
  const tChannel: number[] = [...get(tch), ...set(tp), ...get(drBase), ...set(drI), ...i32(0), ...set(i)];
  tChannel.push(...whileNot([...get(i), ...get(V), ...geU], tRow));
  tChannel.push(
    ...incr(qBase, get(QC)),
    ...incr(drBase, get(s4)),
    ...incr(tch, [...get(S), ...i32(16), ...mul]),
  );
  tChannel.push(...incr(ch, 1));
  const tStage: number[] = [...get(SCR), ...set(tch), ...get(DR), ...set(drBase), ...i32(0), ...set(ch)];
  tStage.push(...whileNot([...get(ch), ...get(CH), ...geU], tChannel));

  // The same T for a known S ≤ 4: per channel and pair of slots s', the S × 2 vectors of Q in
  // registers while every row i passes (the loop above reloads them for each i); the same sums in
  // the same order.
  const tKnown = (Sc: number): number[] => {
    const channel: number[] = [];
    for (let sb = 0; sb < Sc; sb += 2) {
      const nb = Math.min(2, Sc - sb);
      for (let s = 0; s < Sc; s++)
        for (let k = 0; k < nb; k++)
          channel.push(
            ...get(qBase),
            ...i32(s * Sc + sb + k),
            ...get(ld),
            ...mul,
            ...add,
            ...vload(),
            ...set(qv[2 * s + k]!),
          );
      const row: number[] = [];
      for (let k = 0; k < nb; k++) row.push(...vzero, ...set(tv[k]!));
      for (let s = 0; s < Sc; s++) {
        row.push(...get(drI), ...vsplat32Load(4 * s), ...set(x));
        for (let k = 0; k < nb; k++) row.push(...vmadd(tv[k]!, get(x), get(qv[2 * s + k]!)));
      }
      for (let k = 0; k < nb; k++) row.push(...get(tp), ...get(tv[k]!), ...vstore(16 * (sb + k)));
      row.push(...incr(drI, [...get(CH), ...get(s4), ...mul]), ...incr(tp, get(cs16)), ...incr(i, 1));
      channel.push(...get(tch), ...set(tp), ...get(drBase), ...set(drI), ...i32(0), ...set(i));
      channel.push(...whileNot([...get(i), ...get(V), ...geU], row));
    }
    channel.push(...incr(qBase, get(QC)), ...incr(drBase, get(s4)), ...incr(tch, Sc * 16), ...incr(ch, 1));
    return [
      ...[...get(SCR), ...set(tch), ...get(DR), ...set(drBase), ...i32(0), ...set(ch)],
      ...whileNot([...get(ch), ...get(CH), ...geU], channel),
    ];
  };
  // S ≤ 4 by its own code, larger S by the loop.
  const tAny: number[] = [...ifThen([...get(S), ...i32(4), ...gtU], tStage)];
  for (let Sc = 1; Sc <= 4; Sc++) tAny.push(...ifThen([...get(S), ...i32(Sc), ...eq], tKnown(Sc)));

  // Store lanes l < min(4, c − mq) of a finished accumulator to K[i + r][mq + l][j + k] (mode 0: =,
  // else +=); o = out + ((i + r)·ldo + mq·V + j + k)·4.
  const lane = (value: number, l: number): number[] =>
    ifThen(
      [...get(lanes), ...i32(l), ...gtU],
      [
        ...get(o),
        ...ifElse(
          get(MODE),
          [...get(o), ...f32load(), ...get(value), ...simd(0x1f), l, ...f32add],
          [...get(value), ...simd(0x1f), l],
          F32,
        ),
        ...f32store(),
        ...incr(o, [...get(V), ...i32(4), ...mul]),
      ],
    );
  // A tile of ni rows (i, i + 1) × nj logits (j .. j + nj − 1): Σ_q T[i + r][q] Dc[q][j + k], q
  // ascending, then stored. pt = scratch + (i·C·S)·16, pd = dcQuad + j·16.
  const tile = (ni: number, nj: number): number[] => {
    const e: number[] = [];
    for (let r = 0; r < ni; r++) for (let k = 0; k < nj; k++) e.push(...vzero, ...set(acc[4 * r + k]!));
    e.push(...get(SCR), ...get(i), ...get(cs16), ...mul, ...add, ...set(pt));
    e.push(...get(dcQuad), ...get(j), ...i32(16), ...mul, ...add, ...set(pd));
    e.push(...get(pt), ...get(cs16), ...add, ...set(qEnd));
    const body: number[] = [];
    for (let r = 0; r < ni; r++) body.push(...at(pt, cs16, r), ...vload(), ...set(tv[r]!));
    for (let k = 0; k < nj; k++) body.push(...get(pd), ...vload(16 * k), ...set(dv[k]!));
    for (let r = 0; r < ni; r++)
      for (let k = 0; k < nj; k++) body.push(...vmadd(acc[4 * r + k]!, get(tv[r]!), get(dv[k]!)));
    body.push(...incr(pt, 16), ...incr(pd, get(v16)));
    e.push(...whileNot([...get(pt), ...get(qEnd), ...geU], body));
    for (let r = 0; r < ni; r++)
      for (let k = 0; k < nj; k++) {
        e.push(...get(OUT), ...get(i), ...i32(r), ...add, ...get(LDO), ...mul, ...get(mq), ...get(V), ...mul);
        e.push(...add, ...get(j), ...i32(k), ...add, ...add, ...i32(4), ...mul, ...add, ...set(o));
        for (let l = 0; l < 4; l++) e.push(...lane(acc[4 * r + k]!, l));
      }
    return e;
  };
  // Logits j in tiles of four, then the remainder (1–3) in one tile.
  const rowTiles = (ni: number): number[] => {
    const e: number[] = [...i32(0), ...set(j)];
    e.push(...whileNot([...get(j), ...i32(4), ...add, ...get(V), ...gtU], [...tile(ni, 4), ...incr(j, 4)]));
    e.push(...get(V), ...get(j), ...sub, ...set(rem));
    // Single rows only for odd V, whose remainder is 1 or 3.
    for (const nj of ni === 1 ? [1, 3] : [1, 2, 3])
      e.push(...ifThen([...get(rem), ...i32(nj), ...eq], tile(ni, nj)));
    return e;
  };
  const accStage: number[] = [...i32(0), ...set(i)];
  accStage.push(
    ...whileNot([...get(i), ...i32(2), ...add, ...get(V), ...gtU], [...rowTiles(2), ...incr(i, 2)]),
  );
  accStage.push(...ifThen([...get(i), ...get(V), ...ltU], rowTiles(1)));

  const quad: number[] = [...get(Q), ...get(mq), ...i32(4), ...mul, ...add, ...set(qBase)];
  // Quad mq ÷ 4 of Dc: mq·C·S·V·4 bytes in.
  quad.push(
    ...get(DC),
    ...get(mq),
    ...get(CH),
    ...mul,
    ...get(S),
    ...mul,
    ...get(V),
    ...mul,
    ...i32(4),
    ...mul,
  );
  quad.push(...add, ...set(dcQuad), ...get(COLS), ...get(mq), ...sub, ...set(lanes));
  quad.push(...tAny, ...accStage, ...incr(mq, 4));

  const code: number[] = [...get(CPAD), ...i32(4), ...mul, ...set(ld)];
  code.push(...get(CH), ...get(S), ...mul, ...i32(16), ...mul, ...set(cs16));
  code.push(...get(S), ...i32(4), ...mul, ...set(s4), ...get(V), ...i32(16), ...mul, ...set(v16));
  code.push(...get(M0), ...set(mq), ...whileNot([...get(mq), ...get(COLS), ...geU], quad));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
    ],
    code,
  );
}

/**
 * pixelSums(g, q, idx, P, taps, U, cPad, m0, bias): the patch products of every pair of output
 * positions of a convolution from the products of its input pixels, for one row point and the
 * column points m0 ≤ m < cPad (m0, cPad multiples of 4):
 *   Q[p][p'][m] = bias + Σ_{o < taps : idx[p][o], idx[p'][o] ≥ 0} G[idx[p][o]][idx[p'][o]][m]
 * with G[u][u'][m] at g + ((u·U + u')·cPad + m)·4, Q[p][p'][m] at q + ((p·P + p')·cPad + m)·4,
 * idx[p][o] (i32: the input pixel of tap o of position p, −1 in the padding) at idx + (p·taps +
 * o)·4 and the f32 bias at `bias`. Taps are added in increasing o, four column points per f32x4.
 */
function pixelSumsBody(): number[] {
  const [G, Q, IDX, P, TAPS, U, CPAD, M0, BIAS] = Array.from({ length: 9 }, (_, k) => k) as number[];
  let next = 9;
  const [p, p2, o, u, u2, dst, end, src, m] = Array.from({ length: 9 }, () => next++) as number[];
  const numI32 = next - 9;
  const [bv] = [next++];
  const tap = (pos: number): number[] => [
    ...get(IDX),
    ...get(pos),
    ...get(TAPS),
    ...mul,
    ...get(o),
    ...add,
    ...i32(4),
    ...mul,
    ...add,
    ...i32load(0),
  ];
  const addRow: number[] = [
    ...get(m),
    ...get(m),
    ...vload(),
    ...get(src),
    ...vload(),
    ...f32x4add,
    ...vstore(),
  ];
  addRow.push(...incr(m, 16), ...incr(src, 16));
  const onTap: number[] = [...tap(p), ...set(u), ...tap(p2), ...set(u2)];
  const valid = [...get(u), ...get(U), ...ltU, ...get(u2), ...get(U), ...ltU, ...and];
  const srcAt = [...get(G), ...get(u), ...get(U), ...mul, ...get(u2), ...add, ...get(CPAD), ...mul];
  srcAt.push(...get(M0), ...add, ...i32(4), ...mul, ...add, ...set(src));
  onTap.push(
    ...ifThen(valid, [
      ...srcAt,
      ...get(dst),
      ...set(m),
      ...whileNot([...get(m), ...get(end), ...geU], addRow),
    ]),
    ...incr(o, 1),
  );
  const pair: number[] = [...get(Q), ...get(p), ...get(P), ...mul, ...get(p2), ...add, ...get(CPAD), ...mul];
  pair.push(...get(M0), ...add, ...i32(4), ...mul, ...add, ...set(dst));
  pair.push(...get(dst), ...get(CPAD), ...get(M0), ...sub, ...i32(4), ...mul, ...add, ...set(end));
  pair.push(...get(dst), ...set(m));
  pair.push(
    ...whileNot([...get(m), ...get(end), ...geU], [...get(m), ...get(bv), ...vstore(), ...incr(m, 16)]),
  );
  pair.push(...i32(0), ...set(o), ...whileNot([...get(o), ...get(TAPS), ...geU], onTap), ...incr(p2, 1));
  const row = [...i32(0), ...set(p2), ...whileNot([...get(p2), ...get(P), ...geU], pair), ...incr(p, 1)];
  const code = [...get(BIAS), ...vsplat32Load(0), ...set(bv)];
  code.push(...i32(0), ...set(p), ...whileNot([...get(p), ...get(P), ...geU], row));
  return funcBody(
    [
      [numI32, I32],
      [1, V128],
    ],
    code,
  );
}

/**
 * slotGather(qn, P, cPad, selR, selC, q, C, S, m0): a pooled term's slot products for one row point
 * from its position products Qn[p][p'][m] (at qn + ((p·P + p')·cPad + m)·4, see pixelSums), for the
 * column points m0 ≤ m < cPad:
 *   Q[ch][s][s'][m] = Qn[selR[ch][s]][p'][m]   (0 where either slot is empty)
 * with selR[ch][s] (i32: the row slot's position, −1 empty) at selR + (ch·S + s)·4, selC[ch][s'][m]
 * (i32: the column slot's byte offset (p'·cPad + m)·4 within a row of Qn, −1 empty) at selC +
 * ((ch·S + s')·cPad + m)·4 and Q[ch][s][s'][m] at q + (((ch·S + s)·S + s')·cPad + m)·4 (pooledPairs'
 * layout, channel stride S·S·cPad·4). A copy: no arithmetic. Column points two at a time.
 */
function slotGatherBody(): number[] {
  const [QN, P, CPAD, SELR, SELC, Q, C, S, M0] = Array.from({ length: 9 }, (_, k) => k) as number[];
  let next = 9;
  const [ch, s, s2, p, off, dst, end, sp, base, row] = Array.from({ length: 10 }, () => next++) as number[];
  const numI32 = next - 9;
  // dst[k] = off_k < 0 ? 0 : Qn row + off_k, for the column point at sp + 4k.
  const one = (k: number): number[] => [
    ...get(dst),
    ...get(sp),
    ...i32load(4 * k),
    ...set(off),
    ...ifElse(
      [...get(off), ...i32(0), ...ltS],
      f32zero,
      [...get(base), ...get(off), ...add, ...f32load()],
      F32,
    ),
    ...f32store(4 * k),
  ];
  const copy: number[] = [...one(0), ...one(1), ...incr(dst, 8), ...incr(sp, 8)];
  const zero: number[] = [...get(dst), ...f32zero, ...f32store(), ...incr(dst, 4)];
  // row = ch·S + s.
  const slot: number[] = [...get(Q), ...get(row), ...get(S), ...mul];
  slot.push(...get(s2), ...add, ...get(CPAD), ...mul, ...get(M0), ...add, ...i32(4), ...mul, ...add);
  slot.push(
    ...set(dst),
    ...get(dst),
    ...get(CPAD),
    ...get(M0),
    ...sub,
    ...i32(4),
    ...mul,
    ...add,
    ...set(end),
  );
  slot.push(...get(SELC), ...get(ch), ...get(S), ...mul, ...get(s2), ...add, ...get(CPAD), ...mul);
  slot.push(...get(M0), ...add, ...i32(4), ...mul, ...add, ...set(sp));
  // cPad − m0 is a multiple of 4: whole pairs.
  slot.push(
    ...ifElse(
      [...get(p), ...get(P), ...ltU],
      whileNot([...get(dst), ...get(end), ...geU], copy),
      whileNot([...get(dst), ...get(end), ...geU], zero),
    ),
    ...incr(s2, 1),
  );
  const rowSlot: number[] = [...get(SELR), ...get(row), ...i32(4), ...mul, ...add, ...i32load(0), ...set(p)];
  rowSlot.push(...get(QN), ...get(p), ...get(P), ...mul, ...get(CPAD), ...mul, ...i32(4), ...mul, ...add);
  rowSlot.push(...set(base), ...i32(0), ...set(s2), ...whileNot([...get(s2), ...get(S), ...geU], slot));
  rowSlot.push(...incr(s, 1), ...incr(row, 1));
  const channel = [
    ...i32(0),
    ...set(s),
    ...whileNot([...get(s), ...get(S), ...geU], rowSlot),
    ...incr(ch, 1),
  ];
  const code = [...i32(0), ...set(ch), ...i32(0), ...set(row)];
  code.push(...whileNot([...get(ch), ...get(C), ...geU], channel));
  return funcBody([[numI32, I32]], code);
}

/**
 * tokenPairs(idR, idC, S, dr, dc, e, V, out, ldo, m0, c): a tokens term (./terms.ts) for one row
 * point and the column points m0 ≤ m < c, added to K[i][m][j] at out + (i·ldo + m·V + j)·4:
 *   K[i][m][j] += Σ_{p, q : idR[p] = idC[m][q]} ⟨dr[i][p], dc[m][j][q]⟩
 * with ids (i32, each point's ascending, then −1) at idR + p·4 and idC + (m·S + q)·4, signal rows of
 * e floats (e a multiple of 4) at dr + (i·S·e + p·e)·4 and dc + ((m·V + j)·S·e + q·e)·4. The shared
 * ids are found by merging the two sorted lists; each product is summed four lanes at a time, the
 * lanes added as (l0 + l1) + (l2 + l3) — the same bits with the two points swapped.
 */
function tokenPairsBody(): number[] {
  const [IDR, IDC, S, DR, DC, E, V, OUT, LDO, M0, COLS] = Array.from({ length: 11 }, (_, k) => k) as number[];
  let next = 11;
  const [m, p, q, u, w, i, j, a, b, k, end, cid] = Array.from({ length: 12 }, () => next++) as number[];
  const numI32 = next - 11;
  const acc = next++;
  const lane = (l: number) => [...get(acc), ...simd(0x1f), l];
  // ⟨dr[i][p], dc[m][j][q]⟩ into out[i][m][j].
  const dotStep = [
    ...get(acc),
    ...get(a),
    ...vload(),
    ...get(b),
    ...vload(),
    ...f32x4mul,
    ...f32x4add,
    ...set(acc),
  ];
  dotStep.push(...incr(a, 16), ...incr(b, 16));
  const pair: number[] = [
    ...get(DR),
    ...get(i),
    ...get(S),
    ...mul,
    ...get(p),
    ...add,
    ...get(E),
    ...mul,
    ...i32(4),
  ];
  pair.push(...mul, ...add, ...set(a));
  pair.push(
    ...get(DC),
    ...get(m),
    ...get(V),
    ...mul,
    ...get(j),
    ...add,
    ...get(S),
    ...mul,
    ...get(q),
    ...add,
  );
  pair.push(...get(E), ...mul, ...i32(4), ...mul, ...add, ...set(b));
  pair.push(...get(a), ...get(E), ...i32(4), ...mul, ...add, ...set(end), ...vzero, ...set(acc));
  pair.push(...whileNot([...get(a), ...get(end), ...geU], dotStep));
  pair.push(
    ...get(OUT),
    ...get(i),
    ...get(LDO),
    ...mul,
    ...get(m),
    ...get(V),
    ...mul,
    ...add,
    ...get(j),
    ...add,
  );
  pair.push(...i32(4), ...mul, ...add, ...set(k));
  pair.push(...get(k), ...get(k), ...f32load(), ...lane(0), ...lane(1), ...f32add, ...lane(2), ...lane(3));
  pair.push(...f32add, ...f32add, ...f32add, ...f32store(), ...incr(j, 1));
  const rowI = [...i32(0), ...set(j), ...whileNot([...get(j), ...get(V), ...geU], pair), ...incr(i, 1)];
  const match = [
    ...i32(0),
    ...set(i),
    ...whileNot([...get(i), ...get(V), ...geU], rowI),
    ...incr(p, 1),
    ...incr(q, 1),
  ];
  const step: number[] = [...get(IDR), ...get(p), ...i32(4), ...mul, ...add, ...i32load(0), ...set(u)];
  step.push(...get(cid), ...get(q), ...i32(4), ...mul, ...add, ...i32load(0), ...set(w));
  step.push(
    ...ifElse(
      [...get(u), ...i32(0), ...ltS, ...get(w), ...i32(0), ...ltS, ...or],
      [...get(S), ...set(p)], // an empty slot on either side: no more shared ids
      ifElse(
        [...get(u), ...get(w), ...ltS],
        incr(p, 1),
        ifElse([...get(w), ...get(u), ...ltS], incr(q, 1), match),
      ),
    ),
  );
  const exit = [...get(p), ...get(S), ...geU, ...get(q), ...get(S), ...geU, ...or];
  const column: number[] = [...i32(0), ...set(p), ...i32(0), ...set(q)];
  column.push(...get(IDC), ...get(m), ...get(S), ...mul, ...i32(4), ...mul, ...add, ...set(cid));
  column.push(...whileNot(exit, step), ...incr(m, 1));
  const code = [...get(M0), ...set(m), ...whileNot([...get(m), ...get(COLS), ...geU], column)];
  return funcBody(
    [
      [numI32, I32],
      [1, V128],
    ],
    code,
  );
}

/**
 * positionPairs(ar, ac, KA, T, dr, dc, WP, VP, VR, out, ldo, m0, c, scr): a positions term
 * (./terms.ts positionsPair) for one row point and the column points m0 ≤ m < c, added to
 * K[i][m][j] at out + (i·ldo + m·VR + j)·4 for i, j < VR:
 *   A[t, u] = ⟨ar[t], ac[m][u]⟩                                  (a rows: [s_w a_t, s_b, 0…], KA floats)
 *   W[j][t] = Σ_u A[t, u] dc[m][j][u]                             (signal rows: WP floats per position)
 *   K[i][m][j] += Σ_t ⟨dr[i][t], W[j][t]⟩
 * Row point: ar [T × KA], dr [VP × T × WP]; column point m: ac + m·T·KA·4, dc + m·VP·T·WP·4 (VP ≥ VR
 * even, rows ≥ VR zero; T a multiple of 4, WP of 8, KA of 4). Scratch: Aᵀ [T × T] then W [VP × T × WP].
 * W is built 4 positions × 8 floats at a time (the gemm micro-kernel's shape: two vector loads and
 * four broadcasts per 8 multiply-adds), K in 2 × 2 tiles of rows; each sum's lanes are added as
 * (l0 + l1) + (l2 + l3).
 */
function positionPairsBody(): number[] {
  const [AR, AC, KA, T, DR, DC, WP, VP, VR, OUT, LDO, M0, COLS, SCR] = Array.from(
    { length: 14 },
    (_, k) => k,
  ) as number[];
  let next = 14;
  const [
    m,
    t,
    u,
    k,
    ra,
    ca,
    kEnd,
    acB,
    dcB,
    j,
    t0,
    o,
    x,
    y,
    yEnd,
    wB,
    L4,
    i0,
    j0,
    pi,
    pj,
    pEnd,
    WP4,
    T4,
    KA4,
    r,
    KA8,
    KA12,
  ] = Array.from({ length: 28 }, () => next++) as number[];
  const numI32 = next - 14;
  const acc = Array.from({ length: 8 }, () => next++);
  const [x0, x1, y0, y1, sv] = Array.from({ length: 5 }, () => next++) as number[];
  const f32add = [0x92];
  const hsum = (v: number) => [
    ...get(v),
    ...simd(0x1f),
    0,
    ...get(v),
    ...simd(0x1f),
    1,
    ...f32add,
    ...get(v),
    ...simd(0x1f),
    2,
    ...get(v),
    ...simd(0x1f),
    3,
    ...f32add,
    ...f32add,
  ];
  const madd = (a: number, b: number, c: number) => vmadd(c, get(a), get(b));
  const zero = (n: number) => acc.slice(0, n).flatMap((v) => [...vzero, ...set(v)]);
  const loop = (l: number, end: number[], body: number[], step: number | number[]) => [
    ...whileNot([...get(l), ...end, ...geU], [...body, ...incr(l, step)]),
  ];

  // 1. Aᵀ[u][t] = ⟨ar[t], ac[m][u]⟩, four u at a time (independent sums: not bound by the add latency).
  const dotA: number[] = [...get(ra), ...get(k), ...add, ...vload(), ...set(x0)];
  dotA.push(...get(ca), ...get(k), ...add, ...set(x));
  for (let q = 0; q < 4; q++) {
    dotA.push(
      ...get(x),
      ...(q === 0 ? [] : [...get(q === 1 ? KA4 : q === 2 ? KA8 : KA12), ...add]),
      ...vload(),
    );
    dotA.push(...set(x1), ...madd(x0, x1, acc[q]!));
  }
  const quadA: number[] = [...get(acB), ...get(u), ...get(KA4), ...mul, ...add, ...set(ca), ...zero(4)];
  quadA.push(...i32(0), ...set(k), ...loop(k, get(KA4), dotA, 16));
  for (let q = 0; q < 4; q++) {
    quadA.push(
      ...get(SCR),
      ...get(u),
      ...i32(q),
      ...add,
      ...get(T),
      ...mul,
      ...get(t),
      ...add,
      ...i32(4),
      ...mul,
      ...add,
    );
    quadA.push(...hsum(acc[q]!), ...f32store());
  }
  const rowA: number[] = [...get(AR), ...get(t), ...get(KA4), ...mul, ...add, ...set(ra)];
  rowA.push(...i32(0), ...set(u), ...loop(u, get(T), quadA, 4));
  const stepA = [...i32(0), ...set(t), ...loop(t, get(T), rowA, 1)];

  // 2. W[j][t0 + r][o…o+7] = Σ_u Aᵀ[u][t0 + r] dc[m][j][u][o…o+7].
  const inner: number[] = [...get(x), ...vload(0), ...set(x0), ...get(x), ...vload(16), ...set(x1)];
  for (let q = 0; q < 4; q++) {
    inner.push(...get(y), ...vsplat32Load(4 * q), ...set(sv));
    inner.push(...madd(sv, x0, acc[2 * q]!), ...madd(sv, x1, acc[2 * q + 1]!));
  }
  inner.push(...incr(x, get(WP4)));
  const tile: number[] = [...zero(8)];
  // x = dcB + (j·T·WP)·4 + o, y = SCR + t0·4, yEnd = y + T·T·4.
  tile.push(
    ...get(dcB),
    ...get(j),
    ...get(T),
    ...mul,
    ...get(WP4),
    ...mul,
    ...add,
    ...get(o),
    ...add,
    ...set(x),
  );
  tile.push(...get(SCR), ...get(t0), ...i32(4), ...mul, ...add, ...set(y));
  tile.push(...get(y), ...get(T), ...get(T4), ...mul, ...add, ...set(yEnd));
  tile.push(...loop(y, get(yEnd), inner, get(T4)));
  // store at wB + ((j·T + t0)·WP)·4 + o + r·WP·4
  tile.push(
    ...get(wB),
    ...get(j),
    ...get(T),
    ...mul,
    ...get(t0),
    ...add,
    ...get(WP4),
    ...mul,
    ...add,
    ...get(o),
    ...add,
    ...set(x),
  );
  for (let q = 0; q < 4; q++) {
    tile.push(
      ...get(x),
      ...get(acc[2 * q]!),
      ...vstore(0),
      ...get(x),
      ...get(acc[2 * q + 1]!),
      ...vstore(16),
    );
    if (q < 3) tile.push(...incr(x, get(WP4)));
  }
  const stepW = [...i32(0), ...set(j)];
  stepW.push(
    ...loop(
      j,
      get(VP),
      [...i32(0), ...set(t0), ...loop(t0, get(T), [...i32(0), ...set(o), ...loop(o, get(WP4), tile, 32)], 4)],
      1,
    ),
  );

  // 3. K[i][m][j] += Σ ⟨dr[i], W[j]⟩ in 2 × 2 tiles.
  const dotK: number[] = [
    ...get(pi),
    ...vload(),
    ...set(x0),
    ...get(pi),
    ...get(L4),
    ...add,
    ...vload(),
    ...set(x1),
  ];
  dotK.push(...get(pj), ...vload(), ...set(y0), ...get(pj), ...get(L4), ...add, ...vload(), ...set(y1));
  dotK.push(
    ...madd(x0, y0, acc[0]!),
    ...madd(x0, y1, acc[1]!),
    ...madd(x1, y0, acc[2]!),
    ...madd(x1, y1, acc[3]!),
  );
  dotK.push(...incr(pj, 16));
  const tileK: number[] = [...zero(4)];
  tileK.push(...get(DR), ...get(i0), ...get(L4), ...mul, ...add, ...set(pi));
  tileK.push(...get(wB), ...get(j0), ...get(L4), ...mul, ...add, ...set(pj));
  tileK.push(...get(pi), ...get(L4), ...add, ...set(pEnd), ...loop(pi, get(pEnd), dotK, 16));
  [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ].forEach(([a, b], q) => {
    const cond = [
      ...get(i0),
      ...i32(a!),
      ...add,
      ...get(VR),
      ...ltU,
      ...get(j0),
      ...i32(b!),
      ...add,
      ...get(VR),
      ...ltU,
      ...and,
    ];
    // address out + ((i0 + a)·ldo + m·VR + j0 + b)·4
    const body = [
      ...get(OUT),
      ...get(i0),
      ...i32(a!),
      ...add,
      ...get(LDO),
      ...mul,
      ...get(m),
      ...get(VR),
      ...mul,
      ...add,
    ];
    body.push(...get(j0), ...i32(b!), ...add, ...add, ...i32(4), ...mul, ...add, ...set(r));
    body.push(...get(r), ...get(r), ...f32load(), ...hsum(acc[q]!), ...f32add, ...f32store());
    tileK.push(...ifThen(cond, body));
  });
  const stepK = [
    ...i32(0),
    ...set(i0),
    ...loop(i0, get(VP), [...i32(0), ...set(j0), ...loop(j0, get(VP), tileK, 2)], 2),
  ];

  const column: number[] = [
    ...get(AC),
    ...get(m),
    ...get(T),
    ...mul,
    ...get(KA4),
    ...mul,
    ...add,
    ...set(acB),
  ];
  column.push(
    ...get(DC),
    ...get(m),
    ...get(VP),
    ...mul,
    ...get(T),
    ...mul,
    ...get(WP4),
    ...mul,
    ...add,
    ...set(dcB),
  );
  column.push(...stepA, ...stepW, ...stepK);
  const code: number[] = [
    ...get(WP),
    ...i32(4),
    ...mul,
    ...set(WP4),
    ...get(T),
    ...i32(4),
    ...mul,
    ...set(T4),
  ];
  code.push(
    ...get(KA),
    ...i32(4),
    ...mul,
    ...set(KA4),
    ...get(KA4),
    ...i32(2),
    ...mul,
    ...set(KA8),
    ...get(KA4),
    ...i32(3),
    ...mul,
    ...set(KA12),
    ...get(T),
    ...get(WP4),
    ...mul,
    ...set(L4),
  );
  code.push(...get(SCR), ...get(T), ...get(T4), ...mul, ...add, ...set(wB));
  code.push(...get(M0), ...set(m), ...loop(m, get(COLS), column, 1));
  void kEnd;
  return funcBody(
    [
      [numI32, I32],
      [acc.length + 5, V128],
    ],
    code,
  );
}

/** The exported routines (byte-address arguments, see each body's comment). */
export interface GemmExports {
  gemm(
    ap: number,
    bp: number,
    k: number,
    tiles: number,
    panels: number,
    c: number,
    ldc: number,
    g: number,
    ldg: number,
    group: number,
    mode: number,
  ): void;
  gemmMasked(table: number, count: number, k: number, panels: number, ldc: number, mode: number): void;
  scalePanels(src: number, s: number, idx: number, n: number, panels: number, k: number, dst: number): void;
  scatter(
    t: number,
    ldt: number,
    g: number,
    out: number,
    ldc: number,
    c: number,
    v: number,
    idx: number,
    mode: number,
  ): void;
  transpose(src: number, rows: number, cols: number, dst: number): void;
  packGroups(
    src: number,
    k: number,
    groups: number,
    stride: number,
    chunk: number,
    dst: number,
    total: number,
    g0: number,
  ): void;
  pooledPairs(
    q: number,
    qc: number,
    dr: number,
    dc: number,
    out: number,
    ldo: number,
    m0: number,
    c: number,
    cPad: number,
    channels: number,
    slots: number,
    v: number,
    mode: number,
    scratch: number,
  ): void;
  pixelSums(
    g: number,
    q: number,
    idx: number,
    positions: number,
    taps: number,
    pixels: number,
    cPad: number,
    m0: number,
    bias: number,
  ): void;
  tokenPairs(
    idR: number,
    idC: number,
    slots: number,
    dr: number,
    dc: number,
    e: number,
    v: number,
    out: number,
    ldo: number,
    m0: number,
    c: number,
  ): void;
  positionPairs(
    ar: number,
    ac: number,
    ka: number,
    t: number,
    dr: number,
    dc: number,
    wp: number,
    vp: number,
    vr: number,
    out: number,
    ldo: number,
    m0: number,
    c: number,
    scratch: number,
  ): void;
  slotGather(
    qn: number,
    positions: number,
    cPad: number,
    selR: number,
    selC: number,
    q: number,
    channels: number,
    slots: number,
    m0: number,
  ): void;
}

const functions = (fma: boolean): AsmFunction[] => [
  { name: 'gemm', params: 11, body: gemmBody(fma) },
  { name: 'gemmMasked', params: 6, body: gemmMaskedBody(fma) },
  { name: 'scalePanels', params: 7, body: scalePanelsBody() },
  { name: 'scatter', params: 9, body: scatterBody() },
  { name: 'transpose', params: 4, body: transposeBody() },
  { name: 'packGroups', params: 8, body: packGroupsBody() },
  { name: 'pooledPairs', params: 14, body: pooledPairsBody() },
  { name: 'pixelSums', params: 9, body: pixelSumsBody() },
  { name: 'slotGather', params: 9, body: slotGatherBody() },
  { name: 'tokenPairs', params: 11, body: tokenPairsBody() },
  { name: 'positionPairs', params: 14, body: positionPairsBody() },
];

/**
 * The compiled kernels (importing a shared memory when `shared`, for threads), or null where
 * WebAssembly SIMD (or shared memory, or relaxed SIMD when `fma`) is unavailable.
 *
 * `fma`: accumulate with f32x4.relaxed_madd (one rounding per product) instead of f32x4 multiply
 * + add. Off by default: measured on the benchmark machine (AMD EPYC Zen 4, Node 20, 512³ product,
 * one thread) both variants run at 48–51 GFLOP/s — the 4 × 8 micro-kernel already saturates the
 * two 128-bit FP multiply and two FP add pipes, so fusing frees no throughput there (on cores where
 * add and multiply share the FMA ports it would). Building the kernels in one variant for the whole
 * process keeps results independent of thread count and blocking.
 */
export function gemmModule(shared = false, fma = false): WasmModule | null {
  return cachedModule(`gemm:${shared}:${fma}`, () =>
    fma && !relaxedSimd() ? null : moduleBytes(functions(fma), shared),
  );
}
