/**
 * WebAssembly `f64x2` kernels for the inner loops of the dense symmetric eigensolver (./eigh.ts),
 * assembled byte by byte (src/util/wasm-asm.ts). Every routine works on contiguous float64
 * vectors given as byte addresses in the module's memory; scalar arguments and results go through
 * a scratch slot `S` (f64[S], f64[S + 8]) because the assembler's functions take i32 parameters.
 *
 * - `rot(p, q, len, S)`:   (p, q) ← (c·p − s·q, s·p + c·q) with c = f64[S], s = f64[S+8] (a Givens rotation of two rows)
 * - `symvRange(W, n, u, g, acc, next, j0, j1, i)`: for the columns j ∈ [j0, j1) of the lower triangle
 *   (W[j·n + k], j ≤ k < i): g_j = Σ_{k=j}^{i−1} W[j·n + k] u_k, acc_k += W[j·n + k] u_j (k > j; acc
 *   zeroed on [j0, i) first), next_j = W[j·n + i − 1]; four columns × four rows at a time
 * - `syr2kRange(W, n, U, Q, P, j0, j1, i, next)`: W[j·n + k] −= Σ_{p<P} (U_p[j] Q_p[k] + Q_p[j] U_p[k]) for
 *   j ∈ [j0, j1), j ≤ k < i (vectors U_p, Q_p at U + 8pn, Q + 8pn; subtracted in order p = 0, 1, …),
 *   then next_j = W[j·n + i − 1]; four k at a time, the P pairs in registers
 * - `rank2(w, d, e, len, S)`: w_k −= f·e_k + g·d_k with f = f64[S], g = f64[S+8]
 * - `dot(p, q, len, S)`:   f64[S+8] = Σ p_k q_k
 * - `rotSweeps(B, C, c0, c1, SW, count, LOG, nrot, transpose)`: the Givens rotations of `count` QL
 *   sweeps (l, m) (i32 pairs at SW; rows m − 1, …, l; (c, s) f64 pairs at LOG, nrot in all) applied to
 *   the rows of B [·, C], columns [c0, c1): in order as `rot` (transpose 0), or transposed in reverse
 *   order (transpose 1: rows l, …, m − 1 of the sweeps from last to first, s negated)
 * - `reflectRange(B, C, W, n, H, k0, k1, step, c0, c1)`: for k = k0, k0 + step, … ≠ k1 with h_k = H[k] ≠ 0,
 *   B ← (I − u_k u_kᵀ / h_k) B on the columns c ∈ [c0, c1) of B [·, C] (u_k: the first k entries of row k
 *   of W [n, n]); SIMD lanes across columns, so each column's sums run over rows in order exactly as
 *   plain loops do
 *
 * Pairs of elements in SIMD lanes, an odd last element alone; sums are accumulated in two lanes and
 * added at the end (a different rounding order from a plain loop, well within float64 accuracy).
 */
import {
  add,
  and,
  cachedModule,
  eq,
  eqz,
  F64,
  f64add,
  f64load,
  f64mul,
  f64store,
  f64zero,
  funcBody,
  get,
  geU,
  gtU,
  I32,
  i32,
  ifThen,
  incr,
  ltU,
  moduleBytes,
  mul,
  set,
  shl3,
  simd,
  sub,
  uleb,
  V128,
  f64x2add as vadd,
  f64x2lane as vlane,
  vload,
  f64x2mul as vmul,
  vsplat64Load,
  vstore,
  vzero,
  type WasmMemory,
  type WasmModule,
  wasmApi,
  whileNot,
} from '../util/index.js';

const vsub = simd(0xf1);
const f64sub = [0xa1];
const vdiv = simd(0xf3);
const f64div = [0xa3];
const f64ne = [0x62];
const f64neg = [0x9a];
const select = [0x1b];
/** Rows per tile of the panel update (syr2kRange). */
const ROW_TILE = 128;
const leU = [0x4d];
const shl = [0x74];
const f64x2splat = simd(0x14);
const i32load = (offset: number) => [0x28, 2, ...uleb(offset)];

/** Address of element k of the vector at byte address `ptr`: ptr + 8k. */
const at = (ptr: number, k: number) => [...get(ptr), ...get(k), ...shl3, ...add];

/**
 * A function over `len` elements: `vec` handles elements k, k+1 (SIMD), `scalar` the odd last one;
 * `pre` runs first, `post` last. Locals: params (count `params`), then k, kEven, then the extra
 * locals the caller declares.
 */
function pairFunction(
  params: number,
  lenParam: number,
  extra: { i32?: number; v128?: number; f64?: number },
  build: (
    k: number,
    firstExtra: number,
  ) => { pre: number[]; vec: number[]; scalar: number[]; post: number[] },
): number[] {
  const k = params;
  const kEven = params + 1;
  const first = params + 2;
  const { pre, vec, scalar, post } = build(k, first);
  const code = [
    ...pre,
    ...get(lenParam),
    ...i32(-2),
    ...and,
    ...set(kEven),
    ...i32(0),
    ...set(k),
    ...whileNot([...get(k), ...get(kEven), ...geU], [...vec, ...incr(k, 2)]),
    ...ifThen([...get(k), ...get(lenParam), ...ltU], scalar),
    ...post,
  ];
  const locals: [number, number][] = [[2 + (extra.i32 ?? 0), I32]];
  if (extra.v128) locals.push([extra.v128, V128]);
  if (extra.f64) locals.push([extra.f64, F64]);
  return funcBody(locals, code);
}

function rotBody(): number[] {
  const [P, Q, L, S] = [0, 1, 2, 3];
  return pairFunction(4, L, { v128: 4, f64: 4 }, (k, x) => {
    const [c, s, pv, qv] = [x, x + 1, x + 2, x + 3]; // v128 locals
    const [cs, ss, ps, qs] = [x + 4, x + 5, x + 6, x + 7]; // f64 locals
    // (p, q) ← (c·p − s·q, s·p + c·q) at element k: the same code for two f64 lanes and for one.
    const rotate = (
      op: { load: number[]; store: number[]; mul: number[]; sub: number[]; add: number[] },
      cl: number,
      sl: number,
      pl: number,
      ql: number,
    ) => [
      ...at(P, k),
      ...op.load,
      ...set(pl),
      ...at(Q, k),
      ...op.load,
      ...set(ql),
      ...at(P, k),
      ...get(cl),
      ...get(pl),
      ...op.mul,
      ...get(sl),
      ...get(ql),
      ...op.mul,
      ...op.sub,
      ...op.store,
      ...at(Q, k),
      ...get(sl),
      ...get(pl),
      ...op.mul,
      ...get(cl),
      ...get(ql),
      ...op.mul,
      ...op.add,
      ...op.store,
    ];
    return {
      pre: [
        ...get(S),
        ...vsplat64Load(0),
        ...set(c),
        ...get(S),
        ...vsplat64Load(8),
        ...set(s),
        ...get(S),
        ...f64load(0),
        ...set(cs),
        ...get(S),
        ...f64load(8),
        ...set(ss),
      ],
      vec: rotate({ load: vload(), store: vstore(), mul: vmul, sub: vsub, add: vadd }, c, s, pv, qv),
      scalar: rotate(
        { load: f64load(), store: f64store(), mul: f64mul, sub: f64sub, add: f64add },
        cs,
        ss,
        ps,
        qs,
      ),
      post: [],
    };
  });
}

/** Byte address of element `k` (an i32 expression) of the vector at local `ptr`. */
const atExpr = (ptr: number, k: number[]) => [...get(ptr), ...k, ...shl3, ...add];

function symvRangeBody(): number[] {
  const [W, N, U, G, ACC, NEXT, J0, J1, I] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  let x = 9;
  const [j, k, o, oEnd, stride] = [x++, x++, x++, x++, x++];
  const col = [x++, x++, x++, x++];
  const f64Locals = x;
  const fs = [x++, x++, x++, x++]; // u_{j+c}
  const gs = [x++, x++, x++, x++]; // scalar parts of g_{j+c}
  const [ws, us, as] = [x++, x++, x++];
  const v128Locals = x;
  const Fv = [x++, x++, x++, x++]; // u_{j+c} in both lanes
  const Gv = [x++, x++, x++, x++];
  const [wv, av] = [x++, x++];
  const uv = [x++, x++];
  const last = [...get(I), ...i32(1), ...sub];
  const plus = (base: number) => [...get(base), ...get(o), ...add];
  /**
   * Rows o/8 … o/8 + rows − 1 of the block's `cb` columns: g_c += Σ w u, acc += Σ_c w u_{j+c}
   * (4 rows: two f64x2 halves; 2: one; 1: scalar).
   */
  const step = (rows: 4 | 2 | 1, cb: number): number[] => {
    const vector = rows > 1;
    const [load, store, m, ad] = vector ? [vload, vstore, vmul, vadd] : [f64load, f64store, f64mul, f64add];
    const halves = rows === 4 ? [0, 1] : [0];
    const [F, Gs, w, a] = vector ? [Fv, Gv, wv, av] : [fs, gs, ws, as];
    const u = vector ? uv : [us];
    const code: number[] = [];
    for (const h of halves) code.push(...plus(U), ...load(16 * h), ...set(u[h]!));
    for (const h of halves) {
      code.push(...plus(ACC), ...load(16 * h), ...set(a));
      for (let c = 0; c < cb; c++) {
        code.push(...plus(col[c]!), ...load(16 * h), ...set(w));
        code.push(...get(Gs[c]!), ...get(w), ...get(u[h]!), ...m, ...ad, ...set(Gs[c]!));
        code.push(...get(a), ...get(w), ...get(F[c]!), ...m, ...ad, ...set(a));
      }
      code.push(...plus(ACC), ...get(a), ...store(16 * h));
    }
    code.push(...incr(o, 8 * rows));
    return code;
  };
  /** Columns j … j + cb − 1: the triangle of rows j … j + cb − 1, then the rows below in steps. */
  const block = (cb: number): number[] => {
    const code: number[] = [...get(W), ...get(j), ...get(N), ...mul, ...shl3, ...add, ...set(col[0]!)];
    for (let c = 1; c < cb; c++) code.push(...get(col[c - 1]!), ...get(stride), ...add, ...set(col[c]!));
    for (let c = 0; c < cb; c++) {
      code.push(...at(U, j), ...f64load(8 * c), ...set(fs[c]!));
      code.push(...at(U, j), ...vsplat64Load(8 * c), ...set(Fv[c]!));
      code.push(...vzero, ...set(Gv[c]!));
    }
    // the triangle: W[j+c][j+c] u_{j+c} into g only; W[j+c][j+r] (r > c) into g_c and acc_{j+r}
    for (let c = 0; c < cb; c++) {
      code.push(...at(col[c]!, j), ...f64load(8 * c), ...get(fs[c]!), ...f64mul, ...set(gs[c]!));
      for (let r = c + 1; r < cb; r++) {
        code.push(...at(col[c]!, j), ...f64load(8 * r), ...set(ws));
        code.push(...get(gs[c]!), ...get(ws), ...get(fs[r]!), ...f64mul, ...f64add, ...set(gs[c]!));
        code.push(
          ...at(ACC, j),
          ...at(ACC, j),
          ...f64load(8 * r),
          ...get(ws),
          ...get(fs[c]!),
          ...f64mul,
          ...f64add,
        );
        code.push(...f64store(8 * r));
      }
    }
    code.push(...get(j), ...i32(cb), ...add, ...shl3, ...set(o));
    code.push(...whileNot([...get(o), ...i32(32), ...add, ...get(oEnd), ...gtU], step(4, cb)));
    code.push(...ifThen([...get(oEnd), ...get(o), ...i32(16), ...add, ...geU], step(2, cb)));
    code.push(...ifThen([...get(o), ...get(oEnd), ...ltU], step(1, cb)));
    for (let c = 0; c < cb; c++) {
      code.push(...at(G, j), ...get(gs[c]!), ...get(Gv[c]!), ...vlane(0), ...get(Gv[c]!), ...vlane(1));
      code.push(...f64add, ...f64add, ...f64store(8 * c));
      code.push(...at(NEXT, j), ...atExpr(col[c]!, last), ...f64load(), ...f64store(8 * c));
    }
    code.push(...incr(j, cb));
    return code;
  };
  const code: number[] = [...get(N), ...shl3, ...set(stride), ...get(I), ...shl3, ...set(oEnd)];
  // acc[j0..i) = 0
  code.push(...get(J0), ...set(k));
  code.push(
    ...whileNot([...get(k), ...get(I), ...geU], [...at(ACC, k), ...f64zero, ...f64store(), ...incr(k, 1)]),
  );
  code.push(...get(J0), ...set(j));
  code.push(...whileNot([...get(j), ...i32(4), ...add, ...get(J1), ...gtU], block(4)));
  code.push(...whileNot([...get(j), ...get(J1), ...geU], block(1)));
  return funcBody(
    [
      [f64Locals - 9, I32],
      [v128Locals - f64Locals, F64],
      [x - v128Locals, V128],
    ],
    code,
  );
}

function syr2kRangeBody(): number[] {
  const [W, N, U, Q, P, J0, J1, I, NEXT] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  let x = 9;
  const [j, k, c0, c1, p, pu, pq, ku, kq, stride] = [x++, x++, x++, x++, x++, x++, x++, x++, x++, x++];
  const [kt, kend, jEnd] = [x++, x++, x++];
  const f64Locals = x;
  // per column c: the broadcasts U_p[j + c], Q_p[j + c]; per half h: Q_p[k..], U_p[k..]; accumulators [c][h]
  const fs = { sa: [x++, x++], sb: [x++, x++], qv: [x++], uv: [x++], acc: [[x++], [x++]] };
  const v128Locals = x;
  const vs = {
    sa: [x++, x++],
    sb: [x++, x++],
    qv: [x++, x++],
    uv: [x++, x++],
    acc: [
      [x++, x++],
      [x++, x++],
    ],
  };
  const last = [...get(I), ...i32(1), ...sub];
  const columns = [c0, c1];
  /** The tile W[j + c][k .. k + width) for c < cols: `width` 4 (two f64x2 halves), 2 or 1 (scalar). */
  const tile = (width: 4 | 2 | 1, cols: 1 | 2): number[] => {
    const vector = width > 1;
    const load = vector ? vload : f64load;
    const store = vector ? vstore : f64store;
    const m = vector ? vmul : f64mul;
    const ad = vector ? vadd : f64add;
    const sb = vector ? vsub : f64sub;
    const L = vector ? vs : fs;
    const halves = width === 4 ? [0, 1] : [0];
    const cs = cols === 2 ? [0, 1] : [0];
    const body: number[] = [];
    for (const c of cs) {
      body.push(...get(pu), ...(vector ? vsplat64Load(8 * c) : f64load(8 * c)), ...set(L.sa[c]!));
      body.push(...get(pq), ...(vector ? vsplat64Load(8 * c) : f64load(8 * c)), ...set(L.sb[c]!));
    }
    for (const h of halves) {
      body.push(...get(kq), ...load(16 * h), ...set(L.qv[h]!), ...get(ku), ...load(16 * h), ...set(L.uv[h]!));
    }
    for (const c of cs) {
      for (const h of halves) {
        const acc = L.acc[c]![h]!;
        body.push(
          ...get(acc),
          ...get(L.sa[c]!),
          ...get(L.qv[h]!),
          ...m,
          ...get(L.sb[c]!),
          ...get(L.uv[h]!),
          ...m,
          ...ad,
          ...sb,
          ...set(acc),
        );
      }
    }
    for (const ptr of [pu, pq, ku, kq]) body.push(...incr(ptr, get(stride)));
    body.push(...incr(p, 1));
    const code: number[] = [];
    for (const c of cs)
      for (const h of halves) code.push(...at(columns[c]!, k), ...load(16 * h), ...set(L.acc[c]![h]!));
    code.push(
      ...at(U, j),
      ...set(pu),
      ...at(Q, j),
      ...set(pq),
      ...at(U, k),
      ...set(ku),
      ...at(Q, k),
      ...set(kq),
      ...i32(0),
      ...set(p),
      ...whileNot([...get(p), ...get(P), ...geU], body),
    );
    for (const c of cs)
      for (const h of halves) code.push(...at(columns[c]!, k), ...get(L.acc[c]![h]!), ...store(16 * h));
    code.push(...incr(k, width));
    return code;
  };
  /** Rows k .. kend − 1 of the columns in tiles of 4, then 2, then 1. */
  const rows = (cols: 1 | 2) => [
    ...whileNot([...get(k), ...i32(4), ...add, ...get(kend), ...gtU], tile(4, cols)),
    ...ifThen([...get(kend), ...get(k), ...i32(2), ...add, ...geU], tile(2, cols)),
    ...ifThen([...get(k), ...get(kend), ...ltU], tile(1, cols)),
  ];
  const min = (l1: number, l2: number) => [...get(l1), ...get(l2), ...get(l1), ...get(l2), ...ltU, ...select];
  const start = [...get(W), ...get(j), ...get(N), ...mul, ...shl3, ...add, ...set(c0), ...get(kt), ...set(k)];
  // Column pairs within the row tile [kt, kend): W[j][j] alone when the tile holds it, then both columns.
  const pair: number[] = [
    ...start,
    ...get(c0),
    ...get(stride),
    ...add,
    ...set(c1),
    ...ifThen([...get(j), ...get(kt), ...geU], [...get(j), ...set(k), ...tile(1, 1)]),
    ...rows(2),
    ...incr(j, 2),
  ];
  const single: number[] = [
    ...start,
    ...ifThen([...get(j), ...get(kt), ...geU], [...get(j), ...set(k)]),
    ...rows(1),
  ];
  // Row tiles of ROW_TILE: the tile's panel rows (2P vectors × ROW_TILE) stay in cache across the columns.
  const rowTile: number[] = [
    ...get(kt),
    ...i32(ROW_TILE),
    ...add,
    ...set(kend),
    ...min(kend, I),
    ...set(kend),
    ...min(J1, kend),
    ...set(jEnd),
    ...get(J0),
    ...set(j),
    ...whileNot([...get(j), ...i32(2), ...add, ...get(jEnd), ...gtU], pair),
    ...ifThen([...get(j), ...get(jEnd), ...ltU], single),
    ...incr(kt, ROW_TILE),
  ];
  const nextAll: number[] = [
    ...get(J0),
    ...set(j),
    ...whileNot(
      [...get(j), ...get(J1), ...geU],
      [
        ...get(W),
        ...get(j),
        ...get(N),
        ...mul,
        ...shl3,
        ...add,
        ...set(c0),
        ...at(NEXT, j),
        ...atExpr(c0, last),
        ...f64load(),
        ...f64store(),
        ...incr(j, 1),
      ],
    ),
  ];
  return funcBody(
    [
      [f64Locals - 9, I32],
      [v128Locals - f64Locals, F64],
      [x - v128Locals, V128],
    ],
    [
      ...get(N),
      ...shl3,
      ...set(stride),
      ...get(J0),
      ...set(kt),
      ...whileNot([...get(kt), ...get(I), ...geU], rowTile),
      ...nextAll,
    ],
  );
}

function rank2Body(): number[] {
  const [W, D, E, L, S] = [0, 1, 2, 3, 4];
  return pairFunction(5, L, { v128: 2, f64: 2 }, (k, x) => {
    const [f, g] = [x, x + 1];
    const [fs, gs] = [x + 2, x + 3];
    return {
      pre: [
        ...get(S),
        ...vsplat64Load(0),
        ...set(f),
        ...get(S),
        ...vsplat64Load(8),
        ...set(g),
        ...get(S),
        ...f64load(0),
        ...set(fs),
        ...get(S),
        ...f64load(8),
        ...set(gs),
      ],
      vec: [
        ...at(W, k),
        ...at(W, k),
        ...vload(),
        ...get(f),
        ...at(E, k),
        ...vload(),
        ...vmul,
        ...get(g),
        ...at(D, k),
        ...vload(),
        ...vmul,
        ...vadd,
        ...vsub,
        ...vstore(),
      ],
      scalar: [
        ...at(W, k),
        ...at(W, k),
        ...f64load(),
        ...get(fs),
        ...at(E, k),
        ...f64load(),
        ...f64mul,
        ...get(gs),
        ...at(D, k),
        ...f64load(),
        ...f64mul,
        ...f64add,
        ...f64sub,
        ...f64store(),
      ],
      post: [],
    };
  });
}

function dotBody(): number[] {
  const [P, Q, L, S] = [0, 1, 2, 3];
  return pairFunction(4, L, { v128: 1, f64: 1 }, (k, x) => {
    const acc = x;
    const accs = x + 1;
    return {
      pre: [...vzero, ...set(acc), ...f64zero, ...set(accs)],
      vec: [...get(acc), ...at(P, k), ...vload(), ...at(Q, k), ...vload(), ...vmul, ...vadd, ...set(acc)],
      scalar: [
        ...get(accs),
        ...at(P, k),
        ...f64load(),
        ...at(Q, k),
        ...f64load(),
        ...f64mul,
        ...f64add,
        ...set(accs),
      ],
      post: [
        ...get(S),
        ...get(acc),
        ...vlane(0),
        ...get(acc),
        ...vlane(1),
        ...f64add,
        ...get(accs),
        ...f64add,
        ...f64store(8),
      ],
    };
  });
}

function rotSweepsBody(): number[] {
  const [B, C, C0, C1, SW, COUNT, LOG, NROT, T] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  let x = 9;
  const [w, l, m, i, o, p, q, kk] = [x++, x++, x++, x++, x++, x++, x++, x++];
  const f64Locals = x;
  const [cs, ss, ps, qs] = [x++, x++, x++, x++];
  const v128Locals = x;
  const [cv, sv, pv, qv] = [x++, x++, x++, x++];
  /** (p, q) ← (c·p − s·q, s·p + c·q) at addresses p, q (as `rot`). */
  const rotate = (vector: boolean): number[] => {
    const [load, store, mm, sb, ad] = vector
      ? [vload(), vstore(), vmul, vsub, vadd]
      : [f64load(), f64store(), f64mul, f64sub, f64add];
    const [c, s, pl, ql] = vector ? [cv, sv, pv, qv] : [cs, ss, ps, qs];
    return [
      ...get(p),
      ...load,
      ...set(pl),
      ...get(q),
      ...load,
      ...set(ql),
      ...get(p),
      ...get(c),
      ...get(pl),
      ...mm,
      ...get(s),
      ...get(ql),
      ...mm,
      ...sb,
      ...store,
      ...get(q),
      ...get(s),
      ...get(pl),
      ...mm,
      ...get(c),
      ...get(ql),
      ...mm,
      ...ad,
      ...store,
    ];
  };
  /** Rows i, i + 1 over the columns [c0, c1) with (c, s) = (cs, ss). */
  const rows: number[] = [
    ...get(cs),
    ...f64x2splat,
    ...set(cv),
    ...get(ss),
    ...f64x2splat,
    ...set(sv),
    ...get(B),
    ...get(i),
    ...get(C),
    ...mul,
    ...get(C0),
    ...add,
    ...shl3,
    ...add,
    ...set(p),
    ...get(p),
    ...get(C),
    ...shl3,
    ...add,
    ...set(q),
    ...get(C0),
    ...set(kk),
    ...whileNot(
      [...get(kk), ...i32(2), ...add, ...get(C1), ...gtU],
      [...rotate(true), ...incr(p, 16), ...incr(q, 16), ...incr(kk, 2)],
    ),
    ...ifThen([...get(kk), ...get(C1), ...ltU], rotate(false)),
  ];
  const sweep = (k: number) => [
    ...get(SW),
    ...get(k),
    ...shl3,
    ...add,
    ...i32load(0),
    ...set(l),
    ...get(SW),
    ...get(k),
    ...shl3,
    ...add,
    ...i32load(4),
    ...set(m),
  ];
  const forward: number[] = [
    ...get(LOG),
    ...set(o),
    ...i32(0),
    ...set(w),
    ...whileNot(
      [...get(w), ...get(COUNT), ...geU],
      [
        ...sweep(w),
        ...get(m),
        ...set(i),
        ...whileNot(
          [...get(i), ...get(l), ...leU],
          [
            ...incr(i, -1),
            ...get(o),
            ...f64load(0),
            ...set(cs),
            ...get(o),
            ...f64load(8),
            ...set(ss),
            ...incr(o, 16),
            ...rows,
          ],
        ),
        ...incr(w, 1),
      ],
    ),
  ];
  const backward: number[] = [
    ...get(LOG),
    ...get(NROT),
    ...i32(4),
    ...shl,
    ...add,
    ...set(o),
    ...get(COUNT),
    ...set(w),
    ...whileNot(
      [...get(w), ...eqz],
      [
        ...incr(w, -1),
        ...sweep(w),
        ...get(l),
        ...set(i),
        ...whileNot(
          [...get(i), ...get(m), ...geU],
          [
            ...incr(o, -16),
            ...get(o),
            ...f64load(0),
            ...set(cs),
            ...get(o),
            ...f64load(8),
            ...f64neg,
            ...set(ss),
            ...rows,
            ...incr(i, 1),
          ],
        ),
      ],
    ),
  ];
  return funcBody(
    [
      [f64Locals - 9, I32],
      [v128Locals - f64Locals, F64],
      [x - v128Locals, V128],
    ],
    [...ifThen([...get(T), ...eqz], forward), ...ifThen([...get(T)], backward)],
  );
}

function reflectRangeBody(): number[] {
  const [B, C, W, N, H, K0, K1, STEP, C0, C1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  let x = 10;
  const [k, i, c, u, bp, up, stride] = [x++, x++, x++, x++, x++, x++, x++];
  const f64Locals = x;
  const fs = { h: x++, us: x++, acc: [x++], g: [x++] };
  const v128Locals = x;
  const vs = { h: x++, us: x++, acc: [x++, x++], g: [x++, x++] };
  /** Columns c .. c + width of B through all k rows of u: g = uᵀB / h, then B −= u g. */
  const block = (width: 4 | 2 | 1): number[] => {
    const vector = width > 1;
    const load = vector ? vload : f64load;
    const store = vector ? vstore : f64store;
    const L = vector ? vs : fs;
    const halves = width === 4 ? [0, 1] : [0];
    const splat = vector ? vsplat64Load(0) : f64load();
    const start = [...at(B, c), ...set(bp), ...get(u), ...set(up), ...i32(0), ...set(i)];
    const step = [...incr(bp, get(stride)), ...incr(up, 8), ...incr(i, 1)];
    const code: number[] = [];
    for (const h of halves) code.push(...(vector ? vzero : f64zero), ...set(L.acc[h]!));
    const sum: number[] = [...get(up), ...splat, ...set(L.us)];
    for (const h of halves)
      sum.push(
        ...get(L.acc[h]!),
        ...get(L.us),
        ...get(bp),
        ...load(16 * h),
        ...(vector ? vmul : f64mul),
        ...(vector ? vadd : f64add),
        ...set(L.acc[h]!),
      );
    code.push(...start, ...whileNot([...get(i), ...get(k), ...geU], [...sum, ...step]));
    for (const h of halves)
      code.push(...get(L.acc[h]!), ...get(L.h), ...(vector ? vdiv : f64div), ...set(L.g[h]!));
    const update: number[] = [...get(up), ...splat, ...set(L.us)];
    for (const h of halves)
      update.push(
        ...get(bp),
        ...get(bp),
        ...load(16 * h),
        ...get(L.us),
        ...get(L.g[h]!),
        ...(vector ? vmul : f64mul),
        ...(vector ? vsub : f64sub),
        ...store(16 * h),
      );
    code.push(...start, ...whileNot([...get(i), ...get(k), ...geU], [...update, ...step]), ...incr(c, width));
    return code;
  };
  const reflection: number[] = [
    ...get(W),
    ...get(k),
    ...get(N),
    ...mul,
    ...shl3,
    ...add,
    ...set(u),
    ...at(H, k),
    ...vsplat64Load(0),
    ...set(vs.h),
    ...get(C0),
    ...set(c),
    ...whileNot([...get(c), ...i32(4), ...add, ...get(C1), ...gtU], block(4)),
    ...ifThen([...get(C1), ...get(c), ...i32(2), ...add, ...geU], block(2)),
    ...ifThen([...get(c), ...get(C1), ...ltU], block(1)),
  ];
  const code: number[] = [
    ...get(C),
    ...shl3,
    ...set(stride),
    ...get(K0),
    ...set(k),
    ...whileNot(
      [...get(k), ...get(K1), ...eq],
      [
        ...at(H, k),
        ...f64load(),
        ...set(fs.h),
        ...ifThen([...get(fs.h), ...f64zero, ...f64ne], reflection),
        ...incr(k, get(STEP)),
      ],
    ),
  ];
  return funcBody(
    [
      [f64Locals - 10, I32],
      [v128Locals - f64Locals, F64],
      [x - v128Locals, V128],
    ],
    code,
  );
}

/** The routines (byte addresses; scalars through the scratch slot). */
export interface EighKernels {
  rot(p: number, q: number, len: number, s: number): void;
  rank2(w: number, d: number, e: number, len: number, s: number): void;
  dot(p: number, q: number, len: number, s: number): void;
  symvRange(
    w: number,
    n: number,
    u: number,
    g: number,
    acc: number,
    next: number,
    j0: number,
    j1: number,
    i: number,
  ): void;
  syr2kRange(
    w: number,
    n: number,
    u: number,
    q: number,
    p: number,
    j0: number,
    j1: number,
    i: number,
    next: number,
  ): void;
  rotSweeps(
    b: number,
    C: number,
    c0: number,
    c1: number,
    sw: number,
    count: number,
    log: number,
    nrot: number,
    transpose: number,
  ): void;
  reflectRange(
    b: number,
    C: number,
    w: number,
    n: number,
    h: number,
    k0: number,
    k1: number,
    step: number,
    c0: number,
    c1: number,
  ): void;
}

/** The exports worker threads may call (src/util/workers.ts WasmThreads). */
export const EIGH_THREAD_EXPORTS = ['symvRange', 'syr2kRange', 'reflectRange', 'rotSweeps'] as const;

/** The compiled module for a plain or a shared memory (null where WebAssembly SIMD is unavailable). */
export function eighModule(shared: boolean): WasmModule | null {
  return cachedModule(`eigh:${shared}`, () =>
    moduleBytes(
      [
        { name: 'rot', params: 4, body: rotBody() },
        { name: 'rank2', params: 5, body: rank2Body() },
        { name: 'dot', params: 4, body: dotBody() },
        { name: 'symvRange', params: 9, body: symvRangeBody() },
        { name: 'syr2kRange', params: 9, body: syr2kRangeBody() },
        { name: 'reflectRange', params: 10, body: reflectRangeBody() },
        { name: 'rotSweeps', params: 9, body: rotSweepsBody() },
      ],
      shared,
    ),
  );
}

/** The kernels over `memory` (`shared`: a shared memory), or null where WebAssembly SIMD is unavailable. */
export function eighKernels(memory: WasmMemory, shared = false): EighKernels | null {
  const module = eighModule(shared);
  if (!module || !wasmApi) return null;
  return new wasmApi.Instance(module, { env: { mem: memory } }).exports as EighKernels;
}
