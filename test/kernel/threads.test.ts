/**
 * Scale: worker threads and streaming. The kernel is cut into the same blocks whatever the number
 * of threads, factors are computed by the same main-thread code and every block by the same block
 * code, so the multi-threaded result must be BITWISE identical to the single-threaded one (tolerance
 * zero); streamed blocks reassemble bitwise into the in-memory kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { testHooks } from '../../src/kernel/engine.js';
import { empiricalNtkFn, type NtkBlock, type NtkFn, terminateNtkWorkers } from '../../src/kernel/index.js';
import { lastWorkerTensors, sharedPool } from '../../src/kernel/job.js';
import { buildModel } from '../../src/model/index.js';
import { TINY_POST, tokenBatch } from '../model/transformer-fixtures.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

const model = buildModel(
  { kind: 'mlp', widths: [24, 16], activation: 'gelu', parameterization: 'ntk' },
  { inputShape: [8], numClasses: 4, seed: 5 },
);
randomizeWeights(model, 6, 0.8);
const cnn = buildModel(
  { kind: 'cnn', filters: [2, 3], dense: [6] },
  { inputShape: [8, 8, 1], numClasses: 3, seed: 7 },
);
randomizeWeights(cnn, 8, 0.5);
const x1 = normalPoints(23, [8], 101);
const x2 = normalPoints(9, [8], 102);
const img = normalPoints(10, [8, 8, 1], 103);

function threaded(m: tf.LayersModel, options: Parameters<typeof empiricalNtkFn>[1]): NtkFn {
  return empiricalNtkFn(m, { ...options, threads: 2, progress: false });
}
afterAll(async () => {
  await terminateNtkWorkers();
});

function assemble(blocks: NtkBlock[], rows: number, cols: number, stride: number, f64: boolean) {
  const out = f64 ? new Float64Array(rows * cols) : new Float32Array(rows * cols);
  const seen = new Uint8Array(rows * cols);
  for (const b of blocks) {
    for (let p = 0; p < b.shape[0]; p++) {
      for (let q = 0; q < b.shape[1]; q++) {
        const e = (b.rowStart * stride + p) * cols + b.colStart * stride + q;
        seen[e]! += 1;
        out[e] = b.data[p * b.shape[1] + q]!;
      }
    }
  }
  return { out, seen };
}

describe('multi-threaded ≡ single-threaded (bitwise)', () => {
  it.each([
    ['full', 'float32', 'structured', 'wasm'],
    ['full', 'float32', 'structured', 'tfjs'],
    ['full', 'float64', 'structured', 'auto'],
    ['trace', 'float32', 'structured', 'wasm'],
    ['full', 'float32', 'jacobian', 'wasm'],
  ] as const)('%s / %s / %s / %s contraction', async (output, accumulation, implementation, contraction) => {
    const opts = { output, accumulation, implementation, contraction, blockSize: 4 } as const;
    const single = empiricalNtkFn(model, { ...opts, progress: false });
    const multi = threaded(model, opts);
    // Main thread + worker sharing the blocks dynamically, and (test hook) the worker alone, so
    // that worker-computed blocks are certainly compared.
    for (const mainThreadContracts of [true, false]) {
      testHooks.mainThreadContracts = mainThreadContracts;
      try {
        for (const b of [null, x2]) {
          const a = await single(x1, b);
          const m = await multi(x1, b);
          expect(a.threads).toBe(1);
          expect(m.threads).toBe(2);
          if (!mainThreadContracts) expect(m.workerBlocks).toBe(b ? 6 * 3 : 21);
          expect(m.data.constructor).toBe(a.data.constructor);
          expect(m.shape).toEqual(a.shape);
          const bytes = (r: typeof a) =>
            Buffer.from(new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength));
          expect(Buffer.compare(bytes(m), bytes(a))).toBe(0);
        }
      } finally {
        testHooks.mainThreadContracts = true;
      }
    }
  });

  it('CNN (materialised conv gradients) on 2 threads', async () => {
    const single = await empiricalNtkFn(cnn, { blockSize: 3, progress: false })(img);
    const multi = await threaded(cnn, { blockSize: 3 })(img);
    expect(Array.from(multi.data)).toEqual(Array.from(single.data));
  });

  it('transformer (dense gram terms on tight rows, written straight into shared memory) on 2 threads', async () => {
    const L = TINY_POST.maxLength;
    const tokens = tf.tensor(tokenBatch(9, L, TINY_POST.vocabSize!, 41), [9, 2 * L]);
    const net = buildModel(TINY_POST, { inputShape: [2 * L], numClasses: 3, seed: 3 });
    randomizeWeights(net, 4, 0.5);
    try {
      const single = empiricalNtkFn(net, { blockSize: 2, progress: false });
      expect(single.plan.rules.some((r) => r.rule === 'dense-explicit' || r.rule === 'layernorm')).toBe(true);
      const a = await single(tokens);
      for (const mainThreadContracts of [true, false]) {
        testHooks.mainThreadContracts = mainThreadContracts;
        try {
          const m = await threaded(net, { blockSize: 2 })(tokens);
          expect(m.threads).toBe(2);
          expect(Array.from(m.data)).toEqual(Array.from(a.data));
        } finally {
          testHooks.mainThreadContracts = true;
        }
      }
    } finally {
      net.dispose();
      tokens.dispose();
    }
  });

  it('a reused pool gives the same result again', async () => {
    const multi = threaded(model, { blockSize: 5 });
    const first = await multi(x1);
    const second = await multi(x1);
    expect(second.timings.workers).toBeUndefined(); // the shared pool was already running
    expect(Array.from(second.data)).toEqual(Array.from(first.data));
    // Workers dispose every tensor they create.
    const { pool } = await sharedPool(1, tf.getBackend());
    expect(lastWorkerTensors(pool)).toEqual([0]);
  });
});

describe('streaming', () => {
  it.each([1, 2])(
    "order 'blocks' covers every entry once and equals the in-memory kernel (threads %i)",
    async (threads) => {
      const fn =
        threads === 1
          ? empiricalNtkFn(model, { blockSize: 4, progress: false })
          : threaded(model, { blockSize: 4 });
      const reference = await empiricalNtkFn(model, { blockSize: 4, progress: false })(x1);
      const blocks: NtkBlock[] = [];
      const summary = await fn.stream(x1, null, async (b) => {
        blocks.push({ ...b, data: b.data.slice() });
      });
      expect(summary.shape).toEqual(reference.shape);
      const n = 23 * 4;
      const { out, seen } = assemble(blocks, n, n, 4, false);
      expect(seen.every((s) => s === 1)).toBe(true);
      expect(Array.from(out)).toEqual(Array.from(reference.data));
    },
  );

  it.each([1, 2])("order 'rows' delivers complete row panels in order (threads %i)", async (threads) => {
    const fn =
      threads === 1
        ? empiricalNtkFn(model, { blockSize: 4, progress: false })
        : threaded(model, { blockSize: 4 });
    const reference = await empiricalNtkFn(model, { blockSize: 4, progress: false })(x1, x2);
    const panels: NtkBlock[] = [];
    await fn.stream(
      x1,
      x2,
      (b) => {
        panels.push({ ...b, data: b.data.slice() });
      },
      { order: 'rows' },
    );
    expect(panels.map((p) => p.rowStart)).toEqual([0, 4, 8, 12, 16, 20]);
    expect(panels.every((p) => p.colStart === 0 && p.colEnd === 9)).toBe(true);
    const { out, seen } = assemble(panels, 23 * 4, 9 * 4, 4, false);
    expect(seen.every((s) => s === 1)).toBe(true);
    // Rectangular blocks are the same blocks as in memory: bitwise.
    expect(Array.from(out)).toEqual(Array.from(reference.data));
  });

  it("order 'rows' of a symmetric kernel (computed in full) matches the mirrored kernel", async () => {
    const reference = await empiricalNtkFn(model, { blockSize: 4, progress: false })(x1);
    const panels: NtkBlock[] = [];
    await empiricalNtkFn(model, { blockSize: 4, progress: false }).stream(
      x1,
      null,
      (b) => {
        panels.push({ ...b, data: b.data.slice() });
      },
      { order: 'rows' },
    );
    const { out, seen } = assemble(panels, 92, 92, 4, false);
    expect(seen.every((s) => s === 1)).toBe(true);
    // Lower blocks are computed directly instead of mirrored: equal to float32 rounding (≤ 1e-6 rel).
    expect(relMaxError(out, reference.data)).toBeLessThan(1e-6);
  });

  it('trace kernel streams too', async () => {
    const ntk = empiricalNtkFn(model, { output: 'trace', blockSize: 5, progress: false });
    const reference = await ntk(x1, x2);
    const blocks: NtkBlock[] = [];
    await ntk.stream(x1, x2, (b) => {
      blocks.push({ ...b, data: b.data.slice() });
    });
    const { out, seen } = assemble(blocks, 23, 9, 1, false);
    expect(seen.every((s) => s === 1)).toBe(true);
    expect(Array.from(out)).toEqual(Array.from(reference.data));
  });
});

describe("the caller's output array (out)", () => {
  const bits = (d: Float32Array | Float64Array) =>
    Buffer.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  /** A NaN-filled array like d in shared memory, starting `offset` entries into its buffer. */
  const sharedLike = (d: Float32Array | Float64Array, offset = 0) => {
    const buffer = new SharedArrayBuffer(d.byteLength + 2 * offset * d.BYTES_PER_ELEMENT);
    const all = d instanceof Float64Array ? new Float64Array(buffer) : new Float32Array(buffer);
    return all.fill(Number.NaN).subarray(offset, offset + d.length);
  };
  it.each([
    ['full', 'float32', 'structured', 'wasm', 1],
    ['full', 'float32', 'structured', 'wasm', 2],
    ['full', 'float32', 'structured', 'tfjs', 2],
    ['trace', 'float32', 'structured', 'wasm', 2],
    ['full', 'float64', 'structured', 'auto', 2],
    ['full', 'float32', 'jacobian', 'wasm', 2],
    ['trace', 'float64', 'jacobian', 'auto', 1],
  ] as const)(
    '%s / %s / %s / %s contraction, %i threads: every entry overwritten, bitwise as a fresh array',
    async (output, accumulation, implementation, contraction, threads) => {
      const ntk = empiricalNtkFn(model, {
        output,
        accumulation,
        implementation,
        contraction,
        threads,
        blockSize: 4,
        progress: false,
      });
      for (const b of [null, x2]) {
        const fresh = await ntk(x1, b);
        // NaN everywhere first: an entry the kernel did not write would stay NaN. Also a view that
        // starts 16 entries into its buffer: nothing before or after it may be written.
        for (const offset of [0, 16]) {
          const out = sharedLike(fresh.data, offset);
          const before = tf.memory().numTensors;
          const reused = await ntk(x1, b, { out });
          expect(tf.memory().numTensors).toBe(before);
          expect(reused.data).toBe(out);
          expect(reused.shape).toEqual(fresh.shape);
          expect(Buffer.compare(bits(reused.data), bits(fresh.data))).toBe(0);
          const whole = new (out.constructor as Float32ArrayConstructor)(
            out.buffer as unknown as ArrayBuffer,
          );
          const outside = [...whole.subarray(0, offset), ...whole.subarray(offset + out.length)];
          expect(outside.every(Number.isNaN)).toBe(true);
        }
        // The previous result's own array, once more.
        const again = await ntk(x1, b, { out: fresh.data });
        expect(again.data).toBe(fresh.data);
        expect(Buffer.compare(bits(again.data), bits((await ntk(x1, b)).data))).toBe(0);
      }
    },
  );

  it("a threaded function's one-block result (computed on one thread) is accepted back as out", async () => {
    const ntk = threaded(model, {});
    const small = { data: (x1.dataSync() as Float32Array).slice(0, 2 * 8), shape: [2, 8] };
    const first = await ntk(small);
    expect(first.threads).toBe(1);
    const again = await ntk(small, null, { out: first.data });
    expect(again.data).toBe(first.data);
  });

  it('a CNN kernel (pooled and pixel terms) into a reused array is the same, bitwise', async () => {
    const ntk = threaded(cnn, { blockSize: 4 });
    const fresh = await ntk(img);
    const reused = await ntk(img, null, { out: sharedLike(fresh.data) });
    expect(Buffer.compare(bits(reused.data), bits(fresh.data))).toBe(0);
  });

  it('refuses an array of the wrong type, length or memory, and other outputs, naming out', async () => {
    const one = empiricalNtkFn(model, { threads: 1, progress: false });
    const two = threaded(model, {});
    const n = 23 * 4 * 23 * 4;
    await expect(one(x1, null, { out: new Float64Array(n) })).rejects.toThrow(
      `out: expected a Float32Array of ${n} entries, received Float64Array of length ${n}`,
    );
    await expect(one(x1, null, { out: new Float32Array(n - 1) })).rejects.toThrow(
      `out: expected a Float32Array of ${n} entries, received Float32Array of length ${n - 1}`,
    );
    await expect(two(x1, null, { out: new Float32Array(n) })).rejects.toThrow(
      `out: expected a Float32Array of ${n} entries in a SharedArrayBuffer (threads > 1: workers write into it; every result's data of this function is one), received Float32Array of length ${n}`,
    );
    // One thread: any Float32Array of the right length.
    const plain = new Float32Array(n).fill(Number.NaN);
    const r = await one(x1, null, { out: plain });
    expect(r.data).toBe(plain);
    expect(plain.some(Number.isNaN)).toBe(false);
    // Memory shared with the points: refused.
    const inputs = new Float32Array(n + 23 * 8);
    const overlapping = { data: inputs.subarray(n), shape: [23, 8] };
    inputs.subarray(n).set(x1.dataSync() as Float32Array);
    await expect(one(overlapping, null, { out: inputs.subarray(0, n) })).resolves.toBeDefined();
    await expect(one(overlapping, null, { out: inputs.subarray(8, n + 8) })).rejects.toThrow(
      `out: expected a Float32Array of ${n} entries, not sharing memory with the points (here x1), received Float32Array of length ${n}`,
    );
    await expect(one(x1, overlapping, { out: inputs.subarray(8, n + 8) })).rejects.toThrow(
      'not sharing memory with the points (here x2)',
    );
    const diagonal = empiricalNtkFn(model, { output: 'diagonal', progress: false });
    await expect(diagonal(x1, null, { out: new Float32Array(23 * 16) })).rejects.toThrow(
      "out: expected nothing for output 'diagonal', received Float32Array of length 368",
    );
  });
});
