/**
 * Factor passes in worker threads (src/kernel/factor-job.ts, factor-worker.ts): each worker rebuilds
 * the model from its topology and weights on its own backend and computes the factor blocks it
 * claims with the main thread's code. The test hook `mainThreadFactors = false` leaves every factor
 * block to the worker, so the comparison certainly covers worker-computed factors; the result must
 * be BITWISE identical to the single-threaded kernel (tolerance zero), and the worker keeps no
 * tensor but the cached model's weights.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ruleTestHooks } from '../../src/kernel/analyze.js';
import { testHooks } from '../../src/kernel/engine.js';
import { setFactorGemmMinWork } from '../../src/kernel/factor-gemm.js';
import { makeFactorSchedule, publishFactorBlock } from '../../src/kernel/factor-job.js';
import { empiricalNtkFn, type NtkOptions, terminateNtkWorkers } from '../../src/kernel/index.js';
import { ABORTED, lastFactorRefusals, lastWorkerTensors, sharedPool } from '../../src/kernel/job.js';
import { abortJob } from '../../src/kernel/loop.js';
import { positionGradTestHooks } from '../../src/kernel/position-grads.js';
import { structuredTestHooks } from '../../src/kernel/structured.js';
import { buildModel } from '../../src/model/index.js';
import { TINY_POST, tokenBatch } from '../model/transformer-fixtures.js';
import { graphNets } from './graph-nets.js';
import { normalPoints, randomizeWeights } from './helpers.js';

afterEach(() => {
  testHooks.mainThreadFactors = true;
  ruleTestHooks.autodiff.clear();
});
afterAll(async () => {
  await terminateNtkWorkers();
});

const bytes = (data: Float32Array | Float64Array) =>
  Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));

/**
 * Have the shared worker load tfjs (a new worker loads it only after its first job): one call whose
 * factors the test hook leaves to the worker. Tests of other refusals run after it, in any order.
 */
async function workerWithTfjs(): Promise<void> {
  const net = graphNets()[0]!;
  testHooks.mainThreadFactors = false;
  try {
    await empiricalNtkFn(net.model, { blockSize: 1, progress: false, threads: 2 })(net.x1);
  } finally {
    testHooks.mainThreadFactors = true;
  }
}

/** The kernel on 2 threads with every factor block computed by the worker, vs 1 thread. */
async function compareWorkerFactors(
  model: tf.LayersModel,
  x1: tf.Tensor,
  x2: tf.Tensor | null,
  options: NtkOptions = {},
): Promise<void> {
  const opts: NtkOptions = { blockSize: 1, progress: false, ...options };
  const single = await empiricalNtkFn(model, opts)(x1, x2);
  testHooks.mainThreadFactors = false;
  const multi = await empiricalNtkFn(model, { ...opts, threads: 2 })(x1, x2);
  testHooks.mainThreadFactors = true;
  const { pool } = await sharedPool(1, tf.getBackend());
  expect(lastFactorRefusals(pool)).toEqual([]);
  expect(multi.threads).toBe(2);
  // Every block of points (x1's, then x2's) had its factors computed by the worker.
  expect(multi.workerFactorBlocks).toBe(x1.shape[0]! + (x2?.shape[0] ?? 0));
  expect(multi.shape).toEqual(single.shape);
  expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
  expect(lastWorkerTensors(pool)).toEqual([0]);
}

describe('factor blocks computed by a worker ≡ main thread (bitwise)', () => {
  it.each(graphNets().map((n) => [n.name, n] as const))('%s', async (_, net) => {
    await compareWorkerFactors(net.model, net.x1, null);
    await compareWorkerFactors(net.model, net.x1, net.x2);
  });

  it('transformer, all parameters and the last block + head', async () => {
    const L = TINY_POST.maxLength;
    const tokens = tf.tensor(tokenBatch(5, L, TINY_POST.vocabSize!, 43), [5, 2 * L]);
    const net = buildModel(TINY_POST, { inputShape: [2 * L], numClasses: 3, seed: 3 });
    randomizeWeights(net, 4, 0.5);
    try {
      await compareWorkerFactors(net, tokens, null);
      await compareWorkerFactors(net, tokens, null, { parameters: ['block1/', 'head'] });
      // The factor-time test hooks reach the workers too (tfjs products and attention autodiff).
      positionGradTestHooks.enabled = false;
      structuredTestHooks.replicatedAttention = false;
      try {
        await compareWorkerFactors(net, tokens, null);
      } finally {
        positionGradTestHooks.enabled = true;
        structuredTestHooks.replicatedAttention = true;
      }
    } finally {
      net.dispose();
      tokens.dispose();
    }
  });

  it('softmax output with logits pre-activation, and the autodiff rule forced by the test hook', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [6], activation: 'tanh', parameterization: 'standard' },
      { inputShape: [4], numClasses: 3, seed: 2 },
    );
    const x = normalPoints(3, [4], 9);
    const soft = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 5, activation: 'tanh' }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    randomizeWeights(soft, 3, 0.7);
    try {
      await compareWorkerFactors(soft, x, null, { logits: 'pre-activation' });
      const first = model.layers.find((l) => l.trainableWeights.length > 0)!.name;
      ruleTestHooks.autodiff.add(first);
      const fn = empiricalNtkFn(model, { progress: false });
      expect(fn.plan.rules.find((r) => r.name === first)!.rule).toBe('autodiff');
      await compareWorkerFactors(model, x, null);
    } finally {
      model.dispose();
      soft.dispose();
      x.dispose();
    }
  });

  it('the worker sees the weights of each call (its model is kept between calls)', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [8], activation: 'gelu', parameterization: 'ntk' },
      { inputShape: [5], numClasses: 3, seed: 4 },
    );
    const x = normalPoints(4, [5], 10);
    try {
      const single = empiricalNtkFn(model, { blockSize: 1, progress: false });
      const multi = empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 });
      testHooks.mainThreadFactors = false;
      const before = await multi(x);
      randomizeWeights(model, 11, 0.9);
      const after = await multi(x);
      testHooks.mainThreadFactors = true;
      expect(after.workerFactorBlocks).toBe(4);
      expect(Buffer.compare(bytes(after.data), bytes(before.data))).not.toBe(0);
      expect(Buffer.compare(bytes(after.data), bytes((await single(x)).data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

/** A layer class registered only in this (main) thread: workers cannot rebuild a model using it. */
class MainThreadOnlyScale extends tf.layers.Layer {
  static className = 'EntkTestMainThreadOnlyScale';
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, 1.5));
  }
}
tf.serialization.registerClass(MainThreadOnlyScale);

describe("a fresh worker's first job", () => {
  it('contracts without waiting for tfjs, which it loads after the job and then computes factors with', async () => {
    // A new pool: its worker has not loaded tfjs (the factor passes need it; the contraction does not).
    await terminateNtkWorkers();
    const net = graphNets()[0]!;
    const opts: NtkOptions = { blockSize: 1, progress: false };
    const single = await empiricalNtkFn(net.model, opts)(net.x1);
    const ntk = empiricalNtkFn(net.model, { ...opts, threads: 2 });
    const first = await ntk(net.x1);
    const { pool } = await sharedPool(1, tf.getBackend());
    // Its factors were left to the main thread, and it says why.
    expect(first.workerFactorBlocks).toBe(0);
    expect(lastFactorRefusals(pool)).toEqual([
      expect.stringContaining('tfjs was not loaded in this worker yet'),
    ]);
    expect(Buffer.compare(bytes(first.data), bytes(single.data))).toBe(0);
    // Loaded after the job (a few hundred ms; poll): a later call finds it loaded (no refusal) —
    // without the load the worker would refuse every time.
    let later = first;
    for (let attempt = 0; attempt < 40 && lastFactorRefusals(pool).length > 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      later = await ntk(net.x1);
    }
    expect(lastFactorRefusals(pool)).toEqual([]);
    expect(Buffer.compare(bytes(later.data), bytes(single.data))).toBe(0);
    // And it computes factor blocks again (all of them when the test hook leaves them to it).
    testHooks.mainThreadFactors = false;
    const all = await ntk(net.x1);
    testHooks.mainThreadFactors = true;
    expect(all.workerFactorBlocks).toBe(net.x1.shape[0]);
    expect(Buffer.compare(bytes(all.data), bytes(single.data))).toBe(0);
    expect(lastWorkerTensors(pool)).toEqual([0]);
  });
});

describe('a model the workers cannot rebuild', () => {
  it('has its factors computed on the main thread, with the same result', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 6, activation: 'tanh' }),
        new MainThreadOnlyScale({}),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 5, 0.7);
    const x = normalPoints(4, [4], 12);
    try {
      await workerWithTfjs();
      const single = await empiricalNtkFn(model, { blockSize: 1, progress: false })(x);
      const multi = await empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 })(x);
      expect(multi.implementation).toBe('structured');
      expect(multi.workerFactorBlocks).toBe(0);
      const { pool } = await sharedPool(1, tf.getBackend());
      // The worker refuses when it gets to the factors before the main thread has taken them all
      // (a timing matter here: the refusal itself is tested under 'failures').
      expect(lastFactorRefusals(pool).every((r) => r.includes('EntkTestMainThreadOnlyScale'))).toBe(true);
      // Nothing kept in the worker (also the weights of layers built before the unknown one).
      expect(lastWorkerTensors(pool)).toEqual([0]);
      expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('weights larger than the memory budget', () => {
  it('stay on the main thread (no copy of the model per worker)', async () => {
    // 300·1000 + 1000·3 weights ≈ 1.2 MB > the 1 MiB budget.
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [300], units: 1000, activation: 'tanh' }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    const x = normalPoints(4, [300], 13);
    try {
      const options = { blockSize: 1, progress: false, memoryBudget: 2 ** 20 } as const;
      const single = await empiricalNtkFn(model, options)(x);
      testHooks.mainThreadFactors = false;
      const multi = await empiricalNtkFn(model, { ...options, threads: 2 })(x);
      expect(multi.threads).toBe(2);
      expect(multi.workerFactorBlocks).toBe(0);
      expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('what the workers rebuild matches the main thread', () => {
  it('weight constraints are not applied to the weights sent (the main thread does not apply them either)', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [4],
          units: 6,
          activation: 'tanh',
          kernelConstraint: tf.constraints.maxNorm({ maxValue: 0.3 }),
        }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 21, 0.9); // column norms far above 0.3
    const x = normalPoints(3, [4], 22);
    try {
      await compareWorkerFactors(model, x, null);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('a layer frozen after a first call: weights matched by layer, not by model.weights order', async () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 4, activation: 'tanh', name: 'fa' }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 4, activation: 'tanh', name: 'fb' }).apply(a) as tf.SymbolicTensor;
    const c = tf.layers.dense({ units: 3, name: 'fc' }).apply(b) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: c });
    randomizeWeights(model, 23, 0.8);
    const x = normalPoints(3, [4], 24);
    try {
      await compareWorkerFactors(model, x, null);
      model.getLayer('fa').trainable = false; // model.weights now lists fb, fc first
      await compareWorkerFactors(model, x, null, { parameters: ['fc'] });
      await compareWorkerFactors(model, x, null);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it("the factor GEMM's threshold reaches the workers (entk's GEMM in every factor product)", async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [16, 16], activation: 'relu', parameterization: 'ntk' },
      { inputShape: [6], numClasses: 3, seed: 8 },
    );
    const x = normalPoints(3, [6], 25);
    const previous = setFactorGemmMinWork(0);
    try {
      await compareWorkerFactors(model, x, null);
    } finally {
      setFactorGemmMinWork(previous);
      model.dispose();
      x.dispose();
    }
  });
});

describe("the shared factor arrays reused from a function's previous call", () => {
  it('give the kernel of the new points, also with two calls at once', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [8], activation: 'gelu', parameterization: 'ntk' },
      { inputShape: [5], numClasses: 3, seed: 12 },
    );
    const xs = [normalPoints(6, [5], 30), normalPoints(6, [5], 31), normalPoints(7, [5], 32)];
    try {
      const single = empiricalNtkFn(model, { blockSize: 2, progress: false });
      const multi = empiricalNtkFn(model, { blockSize: 2, progress: false, threads: 2 });
      const expected = await Promise.all(xs.map((x) => single(x)));
      // In turn (the arrays of the previous call are reused when the sizes match) …
      for (const k of [0, 1, 0, 2, 1]) {
        const r = await multi(xs[k]!);
        expect(Buffer.compare(bytes(r.data), bytes(expected[k]!.data))).toBe(0);
      }
      // … and at once (the second call cannot use the arrays the first one holds).
      const both = await Promise.all([multi(xs[0]!), multi(xs[1]!, xs[2]!)]);
      const cross = await single(xs[1]!, xs[2]!);
      expect(Buffer.compare(bytes(both[0].data), bytes(expected[0]!.data))).toBe(0);
      expect(Buffer.compare(bytes(both[1].data), bytes(cross.data))).toBe(0);
    } finally {
      model.dispose();
      for (const x of xs) x.dispose();
    }
  });
});

describe('failures', () => {
  it('a worker failing in its factor share fails the call (no hang); the next call runs on a fresh pool', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 5 }),
        new MainThreadOnlyScale({}),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 26, 0.7);
    const x = normalPoints(3, [4], 27);
    try {
      testHooks.mainThreadFactors = false; // the worker must compute the factors, and cannot
      await expect(empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 })(x)).rejects.toThrow(
        /cannot compute them: .*EntkTestMainThreadOnlyScale/,
      );
      testHooks.mainThreadFactors = true;
      const single = await empiricalNtkFn(model, { blockSize: 1, progress: false })(x);
      const multi = await empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 })(x);
      expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('a sink that throws stops the threaded job and rejects with its error', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [8], activation: 'tanh', parameterization: 'ntk' },
      { inputShape: [5], numClasses: 3, seed: 9 },
    );
    const x = normalPoints(12, [5], 28);
    try {
      const fn = empiricalNtkFn(model, { blockSize: 2, progress: false, threads: 2 });
      let delivered = 0;
      await expect(
        fn.stream(x, null, () => {
          delivered++;
          throw new Error('sink full');
        }),
      ).rejects.toThrow('sink full');
      expect(delivered).toBe(1);
      // The pool still works.
      const again = await fn(x);
      expect(again.threads).toBe(2);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('the done-prefix counter (publishFactorBlock)', () => {
  it('advances `ready` over the prefix of done positions, whatever order they finish in; abort stays', () => {
    const schedule = makeFactorSchedule([
      [0, 0],
      [0, 1],
      [0, 2],
      [0, 3],
    ]);
    const readyBuffer = new SharedArrayBuffer(4);
    const ready = new Int32Array(readyBuffer);
    publishFactorBlock(schedule, readyBuffer, 2);
    expect(ready[0]).toBe(0);
    publishFactorBlock(schedule, readyBuffer, 0);
    expect(ready[0]).toBe(1);
    publishFactorBlock(schedule, readyBuffer, 1);
    expect(ready[0]).toBe(3);
    const job = {
      schedule,
      ready: readyBuffer,
      counter: new SharedArrayBuffer(4),
      blocks: new SharedArrayBuffer(0),
    } as Parameters<typeof abortJob>[0];
    abortJob(job);
    expect(ready[0]).toBe(ABORTED);
    publishFactorBlock(schedule, readyBuffer, 3);
    expect(ready[0]).toBe(ABORTED);
  });
});
