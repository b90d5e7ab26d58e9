/**
 * A tiny WebAssembly assembler: enough of the binary format to write small SIMD kernels byte by
 * byte (no toolchain, no dependency). Used by the replicator kernels (src/dynamics/wasm.ts) and the
 * eNTK contraction kernels (src/kernel/wasm-gemm.ts). Every module is validated before use.
 */

import v8 from 'node:v8';

// --- the WebAssembly JS API, typed locally (the project's `lib` has no DOM/WebAssembly types) ---

/** An opaque compiled module. */
export interface WasmModule {
  readonly __wasmModule?: never;
}

/** A linear memory (`buffer` is a SharedArrayBuffer when created with `shared: true`). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}

interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

/** The runtime's WebAssembly object, or undefined where there is none. */
export const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** Bytes per WebAssembly memory page. */
export const WASM_PAGE = 65536;

export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

// Value types and block types.
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export const VOID = 0x40;

// Locals and constants.
export const get = (l: number) => [0x20, ...uleb(l)];
export const set = (l: number) => [0x21, ...uleb(l)];
export const tee = (l: number) => [0x22, ...uleb(l)];
export const i32 = (v: number) => [0x41, ...sleb(v)];

// i32 arithmetic and comparisons.
export const add = [0x6a];
export const sub = [0x6b];
export const mul = [0x6c];
export const divU = [0x6e];
export const and = [0x71];
export const shl3 = [...i32(3), 0x74];
export const geU = [0x4f];
export const gtU = [0x4b];
export const ltU = [0x49];
export const ltS = [0x48];
export const or = [0x72];
export const eq = [0x46];
export const eqz = [0x45];

// Scalar memory access (align = log2 of the natural alignment).
export const f32load = (offset = 0) => [0x2a, 2, ...uleb(offset)];
export const f32store = (offset = 0) => [0x38, 2, ...uleb(offset)];
export const f32add = [0x92];
export const f32mul = [0x94];
export const f32zero = [0x43, 0, 0, 0, 0];
export const f64load = (offset = 0) => [0x2b, 3, ...uleb(offset)];
export const f64store = (offset = 0) => [0x39, 3, ...uleb(offset)];
export const f64add = [0xa0];
export const f64mul = [0xa2];
export const f64zero = [0x44, 0, 0, 0, 0, 0, 0, 0, 0];

// SIMD.
export const simd = (op: number) => [0xfd, ...uleb(op)];
export const vload = (offset = 0) => [...simd(0x00), 3, ...uleb(offset)];
export const vstore = (offset = 0) => [...simd(0x0b), 3, ...uleb(offset)];
export const vzero = [...simd(0x0c), ...new Array<number>(16).fill(0)];
/** v128.load32_splat: one float32 broadcast to four lanes. */
export const vsplat32Load = (offset: number) => [...simd(0x09), 2, ...uleb(offset)];
/** v128.load64_splat: one float64 broadcast to two lanes. */
export const vsplat64Load = (offset: number) => [...simd(0x0a), 3, ...uleb(offset)];
export const f64x2lane = (lane: number) => [...simd(0x21), lane];
export const f64x2add = simd(0xf0);
export const f64x2mul = simd(0xf2);
export const f32x4add = simd(0xe4);
export const f32x4mul = simd(0xe6);
/**
 * f32x4.relaxed_madd (relaxed SIMD, opcode 0x105): a·b + c for operands pushed a, b, c. The
 * proposal lets an engine round once (fused) or twice; V8 fixes the choice per machine (fused
 * `vfmadd` where the CPU has FMA3), so a module gives the same bits on every thread of one machine.
 * Use only in modules gated by {@link relaxedSimd}.
 */
export const f32x4relaxedMadd = simd(0x105);

/** `while (!exitCond) { body }` where `exitCond` leaves an i32 that is non-zero to EXIT. */
export function whileNot(exitCond: number[], body: number[]): number[] {
  return [0x02, VOID, 0x03, VOID, ...exitCond, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
}

/** `if (cond) { body }` where `cond` leaves an i32. */
export function ifThen(cond: number[], body: number[]): number[] {
  return [...cond, 0x04, VOID, ...body, 0x0b];
}

/** `if (cond) { then } else { otherwise }`, leaving a value of `type` (VOID: none). */
export function ifElse(cond: number[], then: number[], otherwise: number[], type = VOID): number[] {
  return [...cond, 0x04, type, ...then, 0x05, ...otherwise, 0x0b];
}

/** `acc += a·b` for a v128 local `acc` and code `a`, `b` that each leave an f32x4 (multiply, then add). */
export function vmadd(acc: number, a: number[], b: number[]): number[] {
  return [...get(acc), ...a, ...b, ...f32x4mul, ...f32x4add, ...set(acc)];
}

/** `local += delta` for an i32 local. */
export const incr = (l: number, delta: number | number[]) => [
  ...get(l),
  ...(typeof delta === 'number' ? i32(delta) : delta),
  ...add,
  ...set(l),
];

/** A function body: locals declared as [count, type] groups, then code, then `end`. */
export function funcBody(locals: [number, number][], code: number[]): number[] {
  const decl = [...uleb(locals.length), ...locals.flatMap(([n, t]) => [...uleb(n), t])];
  const body = [...decl, ...code, 0x0b];
  return [...uleb(body.length), ...body];
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

/** A function of i32 parameters and no result. */
export interface AsmFunction {
  name: string;
  params: number;
  /** From funcBody. */
  body: number[];
}

/**
 * A module importing one memory `env.mem` (shared: up to 4 GiB, plain: growable) and exporting
 * `functions` (i32 parameters, no result).
 */
export function moduleBytes(functions: AsmFunction[], shared = false): Uint8Array {
  const types = [
    ...uleb(functions.length),
    ...functions.flatMap((f) => [0x60, ...uleb(f.params), ...new Array<number>(f.params).fill(I32), 0]),
  ];
  const memLimits = shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  const imports = [1, ...name('env'), ...name('mem'), 0x02, ...memLimits];
  const funcs = [...uleb(functions.length), ...functions.flatMap((_, k) => uleb(k))];
  const exports = [
    ...uleb(functions.length),
    ...functions.flatMap((f, k) => [...name(f.name), 0x00, ...uleb(k)]),
  ];
  const code = [...uleb(functions.length), ...functions.flatMap((f) => f.body)];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

/** Compile `bytes` if the runtime validates them (SIMD present), else null. */
export function compileModule(bytes: Uint8Array): WasmModule | null {
  try {
    return wasmApi?.validate(bytes) ? new wasmApi.Module(bytes) : null;
  } catch {
    return null;
  }
}

const compiled = new Map<string, WasmModule | null>();

/**
 * The module `build()` assembles, compiled once per `key` for the whole process (keys name the
 * module and its variant, e.g. `panel:shared`): null where the runtime lacks what it needs (SIMD,
 * shared memory, …) or `build` returns null (a variant unavailable here).
 */
export function cachedModule(key: string, build: () => Uint8Array | null): WasmModule | null {
  let module = compiled.get(key);
  if (module === undefined) {
    const bytes = build();
    module = bytes ? compileModule(bytes) : null;
    compiled.set(key, module);
  }
  return module;
}

/** A module whose one function (v128, v128, v128) → v128 is f32x4.relaxed_madd: the probe. */
const RELAXED_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  1,
  0,
  0,
  0,
  ...section(1, [1, 0x60, 3, V128, V128, V128, 1, V128]),
  ...section(3, [1, 0]),
  ...section(10, [1, ...funcBody([], [...get(0), ...get(1), ...get(2), ...f32x4relaxedMadd])]),
]);

let relaxed: boolean | undefined;

/**
 * Whether this runtime compiles relaxed SIMD (f32x4.relaxed_madd: a fused multiply-add in the
 * float32 GEMM kernels, which WebAssembly SIMD proper lacks). Node 20's V8 implements relaxed SIMD
 * behind `--experimental-wasm-relaxed-simd` (on by default from V8 11.4 / Node 22): the flag is set
 * here, once, before compiling a probe module, so that kernels built afterwards may use the
 * opcodes. It only admits the extra opcodes (no other behaviour changes) and is process-wide
 * (worker threads receive compiled modules). Called only by code that asks for relaxed kernels;
 * false where the flag or the opcodes are unavailable (no node:v8, old V8).
 */
export function relaxedSimd(): boolean {
  if (relaxed !== undefined) return relaxed;
  relaxed = false;
  if (!wasmApi) return relaxed;
  try {
    if (!wasmApi.validate(RELAXED_PROBE)) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    relaxed = compileModule(RELAXED_PROBE) !== null;
  } catch {
    relaxed = false;
  }
  return relaxed;
}
