/**
 * WebAssembly `f64x2` kernels for the inner loops of the dense symmetric eigensolver (./eigh.ts),
 * assembled byte by byte (src/util/wasm-asm.ts). Every routine works on contiguous float64
 * vectors given as byte addresses in the module's memory; scalar arguments and results go through
 * a scratch slot `S` (f64[S], f64[S + 8]) because the assembler's functions take i32 parameters.
 *
 * - `rot(p, q, len, S)`:   (p, q) ← (c·p − s·q, s·p + c·q) with c = f64[S], s = f64[S+8] (a Givens rotation of two rows)
 * - `symv(w, d, e, len, S)`: f64[S+8] = Σ w_k d_k and e_k += w_k·f with f = f64[S]
 * - `rank2(w, d, e, len, S)`: w_k −= f·e_k + g·d_k with f = f64[S], g = f64[S+8]
 * - `dot(p, q, len, S)`:   f64[S+8] = Σ p_k q_k
 *
 * Pairs of elements in SIMD lanes, an odd last element alone; sums are accumulated in two lanes and
 * added at the end (a different rounding order from a plain loop, well within float64 accuracy).
 */
import {
  add,
  and,
  compileModule,
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
  set,
  shl3,
  simd,
  V128,
  f64x2add as vadd,
  f64x2lane as vlane,
  vload,
  f64x2mul as vmul,
  vsplat64Load,
  vstore,
  vzero,
  type WasmMemory,
  wasmApi,
  whileNot,
} from '../util/index.js';

const vsub = simd(0xf1);
const f64sub = [0xa1];

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

function symvBody(): number[] {
  const [W, D, E, L, S] = [0, 1, 2, 3, 4];
  return pairFunction(5, L, { v128: 3, f64: 3 }, (k, x) => {
    const [f, acc, w] = [x, x + 1, x + 2];
    const [fs, accs, ws] = [x + 3, x + 4, x + 5];
    return {
      pre: [
        ...get(S),
        ...vsplat64Load(0),
        ...set(f),
        ...get(S),
        ...f64load(0),
        ...set(fs),
        ...vzero,
        ...set(acc),
      ],
      vec: [
        ...at(W, k),
        ...vload(),
        ...set(w),
        ...get(acc),
        ...get(w),
        ...at(D, k),
        ...vload(),
        ...vmul,
        ...vadd,
        ...set(acc),
        ...at(E, k),
        ...at(E, k),
        ...vload(),
        ...get(w),
        ...get(f),
        ...vmul,
        ...vadd,
        ...vstore(),
      ],
      scalar: [
        ...at(W, k),
        ...f64load(),
        ...set(ws),
        ...get(accs),
        ...get(ws),
        ...at(D, k),
        ...f64load(),
        ...f64mul,
        ...f64add,
        ...set(accs),
        ...at(E, k),
        ...at(E, k),
        ...f64load(),
        ...get(ws),
        ...get(fs),
        ...f64mul,
        ...f64add,
        ...f64store(),
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

/** The four routines (byte addresses; scalars through the scratch slot). */
export interface EighKernels {
  rot(p: number, q: number, len: number, s: number): void;
  symv(w: number, d: number, e: number, len: number, s: number): void;
  rank2(w: number, d: number, e: number, len: number, s: number): void;
  dot(p: number, q: number, len: number, s: number): void;
}

let cached: ReturnType<typeof compileModule> | undefined;

/** The kernels over `memory`, or null where WebAssembly SIMD is unavailable. */
export function eighKernels(memory: WasmMemory): EighKernels | null {
  if (cached === undefined) {
    cached = compileModule(
      moduleBytes([
        { name: 'rot', params: 4, body: rotBody() },
        { name: 'symv', params: 5, body: symvBody() },
        { name: 'rank2', params: 5, body: rank2Body() },
        { name: 'dot', params: 4, body: dotBody() },
      ]),
    );
  }
  if (!cached || !wasmApi) return null;
  return new wasmApi.Instance(cached, { env: { mem: memory } }).exports as EighKernels;
}
