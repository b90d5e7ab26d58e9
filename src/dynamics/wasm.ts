/**
 * Float64 SIMD (WebAssembly `f64x2`) kernels for the replicator right-hand side, assembled here
 * byte by byte (no toolchain, no dependency) and validated at load time. Two routines:
 *
 * - `gemv(K, x, y, rows, cols)`: `y[i] = Σ_j K[i*cols + j] · x[j]` for a dense row-major block
 *   (eight rows at a time so that the eight K streams share each load of `x`).
 * - `spmv(rowPtr, x, y, n, rowStart, rowEnd)`: the rows `rowStart..rowEnd-1` of a symmetric
 *   `n × n` matrix stored as its packed upper triangle (row `i` holds columns `i..n-1`, rows
 *   back to back; `rowPtr` is the byte address of row `rowStart`'s diagonal). Adds
 *   `Σ_{j≥i} P_ij x_j` to `y[i]` and `P_ij x_i` to `y[j]` for `j > i` (caller zeroes `y`). It reads
 *   each stored entry once, so it moves half the bytes of a dense product.
 *
 * All pointers are byte addresses in the module's imported memory (`env.mem`, 8-byte aligned).
 * The plain-JavaScript twins `gemvJs` / `spmvJs` have identical semantics; they are the fallback
 * where WebAssembly SIMD is missing and the reference the tests compare against.
 */

import {
  add,
  and,
  cachedModule,
  divU,
  F64,
  f64add,
  f64load,
  f64mul,
  f64store,
  f64zero,
  funcBody,
  get,
  geU,
  I32,
  i32,
  ifThen,
  incr,
  ltU,
  moduleBytes,
  mul,
  set,
  shl3,
  sub,
  tee,
  V128,
  f64x2add as vadd,
  f64x2lane as vlane,
  vload,
  f64x2mul as vmul,
  vsplat64Load as vsplatLoad,
  vstore,
  vzero,
  type WasmMemory,
  type WasmModule,
  wasmApi,
  whileNot,
} from '../util/index.js';

const GEMV_ROWS = 8;

/** gemv(K, x, y, rows, cols) — see the file comment. */
function gemvBody(): number[] {
  const [K, X, Y, R, C] = [0, 1, 2, 3, 4];
  let next = 5;
  const i = next++;
  const j = next++;
  const p = next++; // K pointer of row i (advances along the row)
  const q = next++; // x pointer
  const stride = next++; // bytes per row
  const cEven = next++; // cols rounded down to even
  const rBlock = next++; // rows rounded down to a multiple of GEMV_ROWS
  const off: number[] = []; // w * stride
  for (let w = 0; w < GEMV_ROWS; w++) off.push(next++);
  const numI32 = next - 5;
  const acc: number[] = [];
  for (let w = 0; w < GEMV_ROWS; w++) acc.push(next++);
  const xv = next++;
  const numV128 = GEMV_ROWS + 1;
  const s = next++;

  const code: number[] = [];
  code.push(...get(C), ...i32(-2), ...and, ...set(cEven));
  code.push(...get(C), ...shl3, ...set(stride));
  code.push(...get(R), ...i32(GEMV_ROWS), ...divU, ...i32(GEMV_ROWS), ...mul, ...set(rBlock));
  for (let w = 0; w < GEMV_ROWS; w++) code.push(...get(stride), ...i32(w), ...mul, ...set(off[w]!));
  code.push(...i32(0), ...set(i));
  // Blocks of GEMV_ROWS rows.
  const blockInner: number[] = [];
  blockInner.push(...get(q), ...vload(), ...set(xv));
  for (let w = 0; w < GEMV_ROWS; w++) {
    blockInner.push(...get(acc[w]!), ...get(p));
    if (w > 0) blockInner.push(...get(off[w]!), ...add);
    blockInner.push(...vload(), ...get(xv), ...vmul, ...vadd, ...set(acc[w]!));
  }
  blockInner.push(...incr(p, 16), ...incr(q, 16), ...incr(j, 2));
  const blockBody: number[] = [];
  blockBody.push(...get(K), ...get(i), ...get(stride), ...mul, ...add, ...set(p));
  blockBody.push(...get(X), ...set(q));
  for (let w = 0; w < GEMV_ROWS; w++) blockBody.push(...vzero, ...set(acc[w]!));
  blockBody.push(...i32(0), ...set(j));
  blockBody.push(...whileNot([...get(j), ...get(cEven), ...geU], blockInner));
  for (let w = 0; w < GEMV_ROWS; w++) {
    blockBody.push(...get(acc[w]!), ...vlane(0), ...get(acc[w]!), ...vlane(1), ...f64add, ...set(s));
    // odd last column
    const lastColumn = [...get(s), ...get(p), ...get(off[w]!), ...add, ...f64load(), ...get(q), ...f64load()];
    blockBody.push(
      ...ifThen([...get(j), ...get(C), ...ltU], [...lastColumn, ...f64mul, ...f64add, ...set(s)]),
    );
    blockBody.push(...get(Y), ...get(i), ...i32(w), ...add, ...shl3, ...add, ...get(s), ...f64store());
  }
  blockBody.push(...incr(i, GEMV_ROWS));
  code.push(...whileNot([...get(i), ...get(rBlock), ...geU], blockBody));
  // Remaining rows one at a time.
  const rowInner = [
    ...get(acc[0]!),
    ...get(p),
    ...vload(),
    ...get(q),
    ...vload(),
    ...vmul,
    ...vadd,
    ...set(acc[0]!),
    ...incr(p, 16),
    ...incr(q, 16),
    ...incr(j, 2),
  ];
  const rowBody: number[] = [];
  rowBody.push(...get(K), ...get(i), ...get(stride), ...mul, ...add, ...set(p));
  rowBody.push(...get(X), ...set(q), ...vzero, ...set(acc[0]!), ...i32(0), ...set(j));
  rowBody.push(...whileNot([...get(j), ...get(cEven), ...geU], rowInner));
  rowBody.push(...get(acc[0]!), ...vlane(0), ...get(acc[0]!), ...vlane(1), ...f64add, ...set(s));
  const lastColumn = [
    ...get(s),
    ...get(p),
    ...f64load(),
    ...get(q),
    ...f64load(),
    ...f64mul,
    ...f64add,
    ...set(s),
  ];
  rowBody.push(...ifThen([...get(j), ...get(C), ...ltU], lastColumn));
  rowBody.push(...get(Y), ...get(i), ...shl3, ...add, ...get(s), ...f64store());
  rowBody.push(...incr(i, 1));
  code.push(...whileNot([...get(i), ...get(R), ...geU], rowBody));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
      [1, F64],
    ],
    code,
  );
}

/** Rows per block of the packed kernel (8 measured ~12% faster than 4 on x64; x_i splats come from memory). */
const SPMV_ROWS = 8;

/** spmv(rowPtr, x, y, n, rowStart, rowEnd) — see the file comment. */
function spmvBody(): number[] {
  const [P, X, Y, N, RS, RE] = [0, 1, 2, 3, 4, 5];
  let next = 6;
  const i = next++;
  const k = next++; // column counter within the rectangular part
  const count = next++; // number of columns right of the corner
  const countEven = next++;
  const o = next++; // byte offset inside the rectangular part
  const xp = next++;
  const yp = next++;
  const xb = next++;
  const p: number[] = []; // diagonal pointers of the block's rows i..i+SPMV_ROWS−1
  for (let w = 0; w < SPMV_ROWS; w++) p.push(next++);
  const q: number[] = []; // pointers to column i+SPMV_ROWS of the block's rows
  for (let w = 0; w < SPMV_ROWS; w++) q.push(next++);
  const numI32 = next - 6;
  const acc: number[] = [];
  for (let w = 0; w < SPMV_ROWS; w++) acc.push(next++);
  const xv = next++;
  const yv = next++;
  const kv = next++;
  const numV128 = SPMV_ROWS + 3;
  const xs: number[] = [];
  for (let w = 0; w < SPMV_ROWS; w++) xs.push(next++);
  const ys: number[] = [];
  for (let w = 0; w < SPMV_ROWS; w++) ys.push(next++);
  const v = next++;
  const numF64 = 2 * SPMV_ROWS + 1;

  /** bytes from row r's diagonal to row r+1's: 8 (n - r) */
  const rowBytes = (rowExpr: number[]) => [...get(N), ...rowExpr, ...sub, ...shl3];

  const code: number[] = [];
  code.push(...get(RS), ...set(i), ...get(P), ...set(p[0]!));
  // ---- blocks of SPMV_ROWS rows
  const b: number[] = [];
  for (let w = 1; w < SPMV_ROWS; w++) {
    b.push(...get(p[w - 1]!), ...rowBytes([...get(i), ...i32(w - 1), ...add]), ...add, ...set(p[w]!));
  }
  for (let w = 0; w < SPMV_ROWS; w++) {
    b.push(...get(X), ...get(i), ...i32(w), ...add, ...shl3, ...add, ...f64load(), ...set(xs[w]!));
    b.push(...f64zero, ...set(ys[w]!));
  }
  // corner: entries (i+a, i+b), b ≥ a, stored at p_a + 8 (b - a)
  for (let a = 0; a < SPMV_ROWS; a++) {
    for (let c = a; c < SPMV_ROWS; c++) {
      b.push(...get(p[a]!), ...f64load(8 * (c - a)), ...set(v));
      b.push(...get(ys[a]!), ...get(v), ...get(xs[c]!), ...f64mul, ...f64add, ...set(ys[a]!));
      if (c > a) b.push(...get(ys[c]!), ...get(v), ...get(xs[a]!), ...f64mul, ...f64add, ...set(ys[c]!));
    }
  }
  // rectangular part: columns i+SPMV_ROWS .. n-1
  b.push(...get(N), ...get(i), ...sub, ...i32(SPMV_ROWS), ...sub, ...set(count));
  b.push(...get(count), ...i32(-2), ...and, ...set(countEven));
  for (let w = 0; w < SPMV_ROWS; w++) {
    b.push(...get(p[w]!), ...i32(8 * (SPMV_ROWS - w)), ...add, ...set(q[w]!), ...vzero, ...set(acc[w]!));
  }
  b.push(...get(X), ...get(i), ...shl3, ...add, ...set(xb));
  b.push(...get(X), ...get(i), ...i32(SPMV_ROWS), ...add, ...shl3, ...add, ...set(xp));
  b.push(...get(Y), ...get(i), ...i32(SPMV_ROWS), ...add, ...shl3, ...add, ...set(yp));
  b.push(...i32(0), ...set(k), ...i32(0), ...set(o));
  const inner: number[] = [];
  inner.push(...get(xp), ...get(o), ...add, ...vload(), ...set(xv));
  inner.push(...get(yp), ...get(o), ...add, ...vload(), ...set(yv));
  for (let w = 0; w < SPMV_ROWS; w++) {
    inner.push(...get(q[w]!), ...get(o), ...add, ...vload(), ...tee(kv));
    inner.push(...get(xv), ...vmul, ...get(acc[w]!), ...vadd, ...set(acc[w]!));
    inner.push(...get(kv), ...get(xb), ...vsplatLoad(8 * w), ...vmul, ...get(yv), ...vadd, ...set(yv));
  }
  inner.push(...get(yp), ...get(o), ...add, ...get(yv), ...vstore());
  inner.push(...incr(o, 16), ...incr(k, 2));
  b.push(...whileNot([...get(k), ...get(countEven), ...geU], inner));
  // odd last column
  const tail: number[] = [];
  for (let w = 0; w < SPMV_ROWS; w++) {
    tail.push(...get(q[w]!), ...get(o), ...add, ...f64load(), ...set(v));
    tail.push(...get(ys[w]!), ...get(v), ...get(xp), ...get(o), ...add, ...f64load(), ...f64mul, ...f64add);
    tail.push(...set(ys[w]!));
    tail.push(...get(yp), ...get(o), ...add);
    tail.push(...get(yp), ...get(o), ...add, ...f64load(), ...get(v), ...get(xs[w]!), ...f64mul, ...f64add);
    tail.push(...f64store());
  }
  b.push(...ifThen([...get(k), ...get(count), ...ltU], tail));
  for (let w = 0; w < SPMV_ROWS; w++) {
    // y[i+w] += ys_w + hsum(acc_w)
    b.push(...get(Y), ...get(i), ...i32(w), ...add, ...shl3, ...add);
    b.push(...get(Y), ...get(i), ...i32(w), ...add, ...shl3, ...add, ...f64load());
    b.push(...get(ys[w]!), ...f64add, ...get(acc[w]!), ...vlane(0), ...f64add, ...get(acc[w]!), ...vlane(1));
    b.push(...f64add, ...f64store());
  }
  b.push(
    ...get(p[SPMV_ROWS - 1]!),
    ...rowBytes([...get(i), ...i32(SPMV_ROWS - 1), ...add]),
    ...add,
    ...set(p[0]!),
  );
  b.push(...incr(i, SPMV_ROWS));
  // exit when i + SPMV_ROWS > rowEnd, i.e. i + SPMV_ROWS >= rowEnd + 1
  code.push(...whileNot([...get(i), ...i32(SPMV_ROWS), ...add, ...get(RE), ...i32(1), ...add, ...geU], b));
  // ---- remaining rows, scalar
  const r: number[] = [];
  r.push(...get(X), ...get(i), ...shl3, ...add, ...f64load(), ...set(xs[0]!));
  r.push(...get(p[0]!), ...f64load(), ...get(xs[0]!), ...f64mul, ...set(ys[0]!));
  r.push(...get(i), ...i32(1), ...add, ...set(k));
  r.push(...get(p[0]!), ...i32(8), ...add, ...set(q[0]!));
  const rInner: number[] = [];
  rInner.push(...get(q[0]!), ...f64load(), ...set(v));
  rInner.push(...get(ys[0]!), ...get(v), ...get(X), ...get(k), ...shl3, ...add, ...f64load(), ...f64mul);
  rInner.push(...f64add, ...set(ys[0]!));
  rInner.push(...get(Y), ...get(k), ...shl3, ...add, ...set(yp));
  rInner.push(
    ...get(yp),
    ...get(yp),
    ...f64load(),
    ...get(v),
    ...get(xs[0]!),
    ...f64mul,
    ...f64add,
    ...f64store(),
  );
  rInner.push(...incr(q[0]!, 8), ...incr(k, 1));
  r.push(...whileNot([...get(k), ...get(N), ...geU], rInner));
  r.push(...get(Y), ...get(i), ...shl3, ...add, ...set(yp));
  r.push(...get(yp), ...get(yp), ...f64load(), ...get(ys[0]!), ...f64add, ...f64store());
  r.push(...get(p[0]!), ...rowBytes(get(i)), ...add, ...set(p[0]!));
  r.push(...incr(i, 1));
  code.push(...whileNot([...get(i), ...get(RE), ...geU], r));
  return funcBody(
    [
      [numI32, I32],
      [numV128, V128],
      [numF64, F64],
    ],
    code,
  );
}

/** The module's bytes: imports `env.mem` (shared or not), exports `gemv` and `spmv`. */
export function kernelModuleBytes(shared = false): Uint8Array {
  return moduleBytes(
    [
      { name: 'gemv', params: 5, body: gemvBody() },
      { name: 'spmv', params: 6, body: spmvBody() },
    ],
    shared,
  );
}

/** The two exported routines (byte-address arguments). */
export interface KernelExports {
  gemv(k: number, x: number, y: number, rows: number, cols: number): void;
  spmv(rowPtr: number, x: number, y: number, n: number, rowStart: number, rowEnd: number): void;
}

/**
 * The compiled module for a plain (`shared = false`) or shared memory, or null where WebAssembly
 * SIMD (or shared memory) is unavailable. Cached.
 */
export function kernelModule(shared = false): WasmModule | null {
  return cachedModule(`dynamics:${shared}`, () => kernelModuleBytes(shared));
}

/** Instantiate the kernels over `memory`; null where WebAssembly SIMD is unavailable. */
export function instantiateKernels(memory: WasmMemory, shared = false): KernelExports | null {
  const module = kernelModule(shared);
  if (!module || !wasmApi) return null;
  const instance = new wasmApi.Instance(module, { env: { mem: memory } });
  return instance.exports as unknown as KernelExports;
}

// --- plain-JavaScript twins (element offsets instead of byte addresses) ----------------------

/** `y[yOff + i] = Σ_j K[kOff + i*cols + j] x[xOff + j]` for i < rows. */
export function gemvJs(
  K: Float64Array,
  kOff: number,
  x: Float64Array,
  xOff: number,
  y: Float64Array,
  yOff: number,
  rows: number,
  cols: number,
): void {
  for (let i = 0; i < rows; i++) {
    const o = kOff + i * cols;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let j = 0;
    for (; j + 3 < cols; j += 4) {
      s0 += K[o + j]! * x[xOff + j]!;
      s1 += K[o + j + 1]! * x[xOff + j + 1]!;
      s2 += K[o + j + 2]! * x[xOff + j + 2]!;
      s3 += K[o + j + 3]! * x[xOff + j + 3]!;
    }
    for (; j < cols; j++) s0 += K[o + j]! * x[xOff + j]!;
    y[yOff + i] = s0 + s1 + s2 + s3;
  }
}

/** Packed symmetric product over all rows: y (zeroed here) = P x, P the packed upper triangle. */
export function spmvJs(
  P: Float64Array,
  pOff: number,
  x: Float64Array,
  xOff: number,
  y: Float64Array,
  yOff: number,
  n: number,
): void {
  for (let i = 0; i < n; i++) y[yOff + i] = 0;
  let p = pOff;
  for (let i = 0; i < n; i++) {
    const xi = x[xOff + i]!;
    let s = P[p]! * xi;
    for (let j = i + 1; j < n; j++) {
      const v = P[p + j - i]!;
      s += v * x[xOff + j]!;
      y[yOff + j] += v * xi;
    }
    y[yOff + i] += s;
    p += n - i;
  }
}
