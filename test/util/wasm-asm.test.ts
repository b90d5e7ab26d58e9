/**
 * The relaxed-SIMD probe of src/util/wasm-asm.ts: Node ≥ 20 compiles f32x4.relaxed_madd once the
 * flag is set, and the opcode computes a·b + c — rounded once on x86-64 CPUs with FMA3 (V8 emits
 * vfmadd there), else once or twice (the proposal allows both).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  cachedModule,
  compileModule,
  f32x4add,
  f32x4mul,
  f32x4relaxedMadd,
  funcBody,
  i32,
  moduleBytes,
  relaxedSimd,
  vload,
  vstore,
  wasmApi,
} from '../../src/util/wasm-asm.js';

/** Whether /proc/cpuinfo lists FMA3 (x86-64 Linux), else false. */
function cpuHasFma(): boolean {
  if (process.arch !== 'x64') return false;
  try {
    return /\bfma\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

describe('relaxed SIMD', () => {
  it('is available on Node ≥ 20 (flag set by relaxedSimd) and relaxed_madd computes a·b + c', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(20);
    expect(relaxedSimd()).toBe(true);
    // mem[48..64) = op(mem[0..16), mem[16..32), mem[32..48)) lane-wise.
    const load3 = [...i32(0), ...vload(), ...i32(16), ...vload()];
    const fused = funcBody(
      [],
      [...i32(48), ...load3, ...i32(32), ...vload(), ...f32x4relaxedMadd, ...vstore()],
    );
    const plain = funcBody(
      [],
      [...i32(48), ...load3, ...f32x4mul, ...i32(32), ...vload(), ...f32x4add, ...vstore()],
    );
    const module = compileModule(
      moduleBytes([
        { name: 'fused', params: 0, body: fused },
        { name: 'plain', params: 0, body: plain },
      ]),
    );
    expect(module).not.toBeNull();
    const mem = new wasmApi!.Memory({ initial: 1 });
    const ex = new wasmApi!.Instance(module!, { env: { mem } }).exports as { fused(): void; plain(): void };
    const heap = new Float32Array(mem.buffer);
    // a = b = 1 + 2⁻¹², c = −(1 + 2⁻¹¹): a·b + c = 2⁻²⁴ exactly; a·b rounded to float32 first
    // (a tie, to even) loses it: 0. Lane 1 and 2: ordinary values (exact in both roundings).
    const a = 1 + 2 ** -12;
    const c = -(1 + 2 ** -11);
    heap.set([a, 3, -2, 0.5, a, 5, 7, 4, c, 1, 0.25, -2]);
    ex.plain();
    expect(Array.from(heap.subarray(12, 16))).toEqual([0, 16, -13.75, 0]);
    ex.fused();
    const rest = Array.from(heap.subarray(13, 16));
    expect(rest).toEqual([16, -13.75, 0]);
    if (cpuHasFma()) expect(heap[12]).toBe(2 ** -24);
    else expect([0, 2 ** -24]).toContain(heap[12]);
  });
});

describe('cachedModule', () => {
  it('compiles once per key (the same module back), caches an unavailable variant (null) too', () => {
    let builds = 0;
    const bytes = () => {
      builds++;
      return moduleBytes([{ name: 'nop', params: 0, body: funcBody([], []) }]);
    };
    const first = cachedModule('test:nop', bytes);
    expect(first).not.toBeNull();
    expect(cachedModule('test:nop', bytes)).toBe(first);
    expect(builds).toBe(1);
    const other = cachedModule('test:nop-2', bytes);
    expect(other).not.toBe(first);
    expect(builds).toBe(2);
    let absent = 0;
    const none = () => {
      absent++;
      return null;
    };
    expect(cachedModule('test:none', none)).toBeNull();
    expect(cachedModule('test:none', none)).toBeNull();
    expect(absent).toBe(1);
    // bytes the runtime rejects: null, kept
    const invalid = () => new Uint8Array([0, 1, 2, 3]);
    expect(cachedModule('test:invalid', invalid)).toBeNull();
  });
});
