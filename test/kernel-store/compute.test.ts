import { cpSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { storeTestHooks } from '../../src/kernel-store/compute.js';
import {
  computeKernelStores,
  mergeKernelShards,
  parsePointSpec,
  parseShard,
  readKernelStore,
  resolvePoints,
  shardRows,
} from '../../src/kernel-store/index.js';
import { openRun, type Run, train } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('compute');
let mlp: Run;
let linear: Run;

beforeAll(async () => {
  const base = { data: 'iris', steps: 3, batchSize: 16, checkpoints: { steps: [0, 3] }, seed: 1 };
  await train(
    { ...base, model: { kind: 'mlp', widths: [16], activation: 'tanh', parameterization: 'standard' } },
    { outDir: path.join(dir, 'mlp') },
  );
  await train({ ...base, model: 'linear' }, { outDir: path.join(dir, 'linear') });
  mlp = await openRun(path.join(dir, 'mlp'));
  linear = await openRun(path.join(dir, 'linear'));
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]!));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

describe('point specs', () => {
  it('parses terms, comma-continued id lists and rejects malformed specs', () => {
    expect(parsePointSpec('train:100,test:all,train:first=5,test:per-class=2,ids:a,b,file:x.csv')).toEqual([
      { kind: 'split', split: 'train', select: { count: 100 } },
      { kind: 'split', split: 'test', select: { all: true } },
      { kind: 'split', split: 'train', select: { first: 5 } },
      { kind: 'split', split: 'test', select: { perClass: 2 } },
      { kind: 'ids', ids: ['a', 'b'] },
      { kind: 'file', path: 'x.csv' },
    ]);
    expect(() => parsePointSpec('train:0')).toThrow(/points: expected a positive integer in "0"/);
    expect(() => parsePointSpec('val:3')).toThrow(/"val:3" is not a term/);
    expect(() => parsePointSpec('')).toThrow(InvalidArgumentError);
    expect(parseShard('3/8')).toEqual({ index: 3, count: 8 });
    expect(() => parseShard('8/8')).toThrow(/shard: expected i\/n with 0 <= i < n/);
    // Shards tile the points in order.
    const tiles = Array.from({ length: 7 }, (_, i) => shardRows(30, { index: i, count: 7 }));
    expect(tiles[0]!.rowStart).toBe(0);
    expect(tiles[6]!.rowEnd).toBe(30);
    for (let i = 1; i < 7; i++) expect(tiles[i]!.rowStart).toBe(tiles[i - 1]!.rowEnd);
  });

  it('resolves points against the run: samples, per class, ids from both splits, files; rejects repeats', async () => {
    const a = await resolvePoints(mlp, `train:10,test:per-class=2,ids:${mlp.test.ids[5]}`);
    expect(a.dataset.ids.length).toBe(10 + 6 + 1);
    expect(a.sources).toEqual([...Array(10).fill('train'), ...Array(7).fill('test')]);
    const again = await resolvePoints(mlp, 'train:10', { seed: 0 });
    expect(again.dataset.ids).toEqual(a.dataset.ids.slice(0, 10));
    expect((await resolvePoints(mlp, 'train:10', { seed: 5 })).dataset.ids).not.toEqual(again.dataset.ids);
    // Inputs are the run's standardised inputs of those examples.
    const k = mlp.train.ids.indexOf(a.dataset.ids[3]!);
    expect(Array.from(a.dataset.x.subarray(12, 16))).toEqual(
      Array.from(mlp.train.x.subarray(k * 4, k * 4 + 4)),
    );
    expect(a.name).toBe(`train-10-test-per-class-2-ids-${mlp.test.ids[5]}`);
    await expect(resolvePoints(mlp, `train:first=3,ids:${mlp.train.ids[1]}`)).rejects.toThrow(
      /distinct points/,
    );
    await expect(resolvePoints(mlp, 'test:1000')).rejects.toThrow(/at most 30 test examples/);
    await expect(resolvePoints(mlp, 'ids:nope')).rejects.toThrow(/unknown id nope/);

    const csv = path.join(dir, 'points.csv');
    writeFileSync(
      csv,
      'id,sepal_length,sepal_width,petal_length,petal_width,label\nq1,5.1,3.5,1.4,0.2,setosa\nq2,6.2,2.9,4.3,1.3,versicolor\n',
    );
    const f = await resolvePoints(mlp, `file:${csv}`);
    expect(f.dataset.ids).toEqual(['q1', 'q2']);
    expect(Array.from(f.dataset.y)).toEqual([0, 1]);
    expect(f.sources).toEqual(['file', 'file']);
    // Standardised with the run's training statistics, like the model's inputs.
    for (let k = 0; k < 4; k++) {
      const raw = [5.1, 3.5, 1.4, 0.2][k]!;
      expect(f.dataset.x[k]).toBeCloseTo(
        (raw - mlp.standardization.mean[k]!) / mlp.standardization.std[k]!,
        5,
      );
    }
    writeFileSync(csv, 'id,a,b,label\nq1,1,2,setosa\n');
    await expect(resolvePoints(mlp, `file:${csv}`)).rejects.toThrow(
      /a data file with the run's 4 features \(it has 2\)/,
    );
  });
});

describe('computeKernelStores', () => {
  it('linear softmax: the stored kernel is (xᵀx′ + 1) I_V over the stored inputs, point-major', async () => {
    const [s] = await computeKernelStores({
      run: linear,
      points: 'train:per-class=2,test:3',
      out: path.join(dir, 'k'),
    });
    const store = await readKernelStore(s!.dir);
    const { manifest } = store;
    const V = manifest.model.numOutputs;
    const N = manifest.points.count;
    expect([V, N]).toEqual([3, 9]);
    expect(manifest.kernel.shape).toEqual([N * V, N * V]);
    expect(manifest.checkpoint?.id).toBe('step-000003');
    const x = store.inputs!.data as Float32Array;
    const K = store.kernel.data as Float32Array;
    // Reference in float64 from the stored inputs; tolerance: float32 accumulation, 1e-5 relative to max |K|.
    const ref = new Float64Array(N * V * N * V);
    for (let n = 0; n < N; n++)
      for (let m = 0; m < N; m++) {
        let dot = 1;
        for (let k = 0; k < 4; k++) dot += x[n * 4 + k]! * x[m * 4 + k]!;
        for (let i = 0; i < V; i++) ref[(n * V + i) * N * V + m * V + i] = dot;
      }
    expect(maxDiff(K, ref)).toBeLessThanOrEqual(1e-5 * maxAbs(ref));
    // Logits and probabilities are the model's at that checkpoint.
    const model = await linear.loadModel('last');
    const logits = tf.tidy(() => (model.predict(tf.tensor(x, [N, 4])) as tf.Tensor).dataSync());
    model.dispose();
    expect(maxDiff(store.logits!.data as Float32Array, logits as Float32Array)).toBe(0);
    const p = store.probabilities!.data as Float64Array;
    for (let n = 0; n < N; n++) {
      const z = Array.from(logits.subarray(n * V, n * V + V));
      const e = z.map((v) => Math.exp(v - Math.max(...z)));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < V; i++) expect(p[n * V + i]).toBeCloseTo(e[i]! / sum, 14);
    }
    expect(Array.from(store.labels!.data as Int32Array).every((c) => c >= 0 && c < V)).toBe(true);
  });

  it('full store equals the engine; diagonal and trace stores equal the diagonal blocks and tr K / V', async () => {
    const numTensors = tf.memory().numTensors;
    const points = 'train:first=12';
    const out = path.join(dir, 'kinds');
    const [full] = await computeKernelStores({ run: mlp, points, out, name: 'full', checkpoint: '0' });
    const [diag] = await computeKernelStores({
      run: mlp,
      points,
      out,
      name: 'diag',
      kind: 'diagonal',
      checkpoint: '0',
    });
    const [trace] = await computeKernelStores({
      run: mlp,
      points,
      out,
      name: 'trace',
      kind: 'trace',
      checkpoint: '0',
    });
    expect(tf.memory().numTensors).toBe(numTensors);
    const F = (await readKernelStore(full!.dir)).kernel.data as Float32Array;
    const model = await mlp.loadModel('0');
    const direct = await empiricalNtkFn(model)({ data: mlp.train.x.slice(0, 48), shape: [12, 4] });
    model.dispose();
    expect(maxDiff(F, direct.data)).toBe(0);
    // Every kind records the rules (as the result reports them) and the contraction that ran
    // (diagonal: batched tfjs products).
    expect(direct.rules.map((r) => r.rule)).toEqual(['dense-gated', 'dense-identity']);
    for (const s of [full!, diag!, trace!]) expect(s.manifest.kernel.rules).toEqual(direct.rules);
    expect([full, diag, trace].map((s) => s!.manifest.kernel.contraction)).toEqual([
      direct.contraction,
      'tfjs',
      'wasm',
    ]);
    const V = 3;
    const N = 12;
    const D = (await readKernelStore(diag!.dir)).kernel;
    const T = (await readKernelStore(trace!.dir)).kernel;
    expect(D.shape).toEqual([N, V, V]);
    expect(T.shape).toEqual([N, N]);
    const scale = maxAbs(F);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < V; i++)
        for (let j = 0; j < V; j++) {
          expect(
            Math.abs((D.data as Float32Array)[(n * V + i) * V + j]! - F[(n * V + i) * N * V + n * V + j]!),
          ).toBeLessThanOrEqual(1e-5 * scale);
        }
      for (let m = 0; m < N; m++) {
        let tr = 0;
        for (let i = 0; i < V; i++) tr += F[(n * V + i) * N * V + m * V + i]!;
        expect(Math.abs((T.data as Float32Array)[n * N + m]! - tr / V)).toBeLessThanOrEqual(1e-5 * scale);
      }
    }
  });

  it('shards + merge ≡ the one-piece kernel, streamed or in memory; float64 and every checkpoint', async () => {
    const common = { run: mlp, points: 'train:30', blockSize: 4, checkpoint: 'all' };
    const one = await computeKernelStores({ ...common, out: path.join(dir, 'one') });
    const streamed = await computeKernelStores({
      ...common,
      out: path.join(dir, 'streamed'),
      maxInMemoryBytes: 0,
    });
    const out = path.join(dir, 'sharded');
    for (let i = 0; i < 4; i++) {
      await computeKernelStores({
        ...common,
        out,
        shard: { index: i, count: 4 },
        maxInMemoryBytes: i % 2 ? 0 : undefined,
      });
    }
    const merged = await mergeKernelShards(path.join(out, 'train-30'));
    expect(merged.map((m) => path.basename(m.dir))).toEqual(['step-000000', 'step-000003']);
    expect(one.map((s) => path.basename(s.dir))).toEqual(['step-000000', 'step-000003']);
    for (let c = 0; c < 2; c++) {
      const a = await readKernelStore(one[c]!.dir);
      const b = await readKernelStore(merged[c]!.dir);
      const s = await readKernelStore(streamed[c]!.dir);
      expect(b.manifest.points).toEqual(a.manifest.points);
      expect(b.manifest.shard).toBeNull();
      expect(b.manifest.kernel.timings.shards).toBe(4);
      // Tolerance: the one-piece symmetric kernel mirrors one triangle, shards compute both; the same
      // float32 dot products, so at most float32 rounding (1e-6 relative); bitwise here in practice.
      const scale = maxAbs(a.kernel.data as Float32Array);
      expect(maxDiff(a.kernel.data as Float32Array, b.kernel.data as Float32Array)).toBeLessThanOrEqual(
        1e-6 * scale,
      );
      expect(maxDiff(a.kernel.data as Float32Array, s.kernel.data as Float32Array)).toBeLessThanOrEqual(
        1e-6 * scale,
      );
      for (const name of ['inputs', 'labels', 'probabilities'] as const) {
        expect(Array.from(b[name]!.data as Float32Array), name).toEqual(
          Array.from(a[name]!.data as Float32Array),
        );
      }
      expect(maxDiff(a.logits!.data as Float32Array, b.logits!.data as Float32Array)).toBeLessThanOrEqual(
        1e-6,
      );
    }
    const [f64] = await computeKernelStores({
      ...common,
      checkpoint: 'last',
      out: path.join(dir, 'f64'),
      accumulation: 'float64',
    });
    const k64 = await readKernelStore(f64!.dir);
    expect(k64.kernel.dtype).toBe('float64');
    const k32 = (await readKernelStore(one[1]!.dir)).kernel.data as Float32Array;
    expect(maxDiff(k64.kernel.data as Float64Array, k32)).toBeLessThanOrEqual(1e-5 * maxAbs(k32));
  });

  it.each([
    ['full', 1],
    ['full', 2],
    ['trace', 2],
  ] as const)(
    '%s kernels of every checkpoint on %i thread(s), one array reused, equal each checkpoint computed alone, bitwise',
    async (kind, threads) => {
      const reusedBefore = storeTestHooks.reusedKernels;
      const stores = await computeKernelStores({
        run: mlp,
        points: 'train:first=12',
        kind,
        threads,
        blockSize: 4,
        checkpoint: 'all',
        out: path.join(dir, `reuse-${kind}-${threads}`),
      });
      expect(stores).toHaveLength(2);
      // The second checkpoint's kernel went into the first one's array, on the first one's workers
      // (timings.workers is the start of a pool, recorded by the call that started it).
      expect(storeTestHooks.reusedKernels - reusedBefore).toBe(1);
      if (threads > 1) expect(stores[1]!.manifest.kernel.timings.workers).toBeUndefined();
      for (const [c, id] of ['0', '3'].entries()) {
        const stored = (await readKernelStore(stores[c]!.dir)).kernel.data as Float32Array;
        const model = await mlp.loadModel(id);
        const ntk = empiricalNtkFn(model, { output: kind, threads, blockSize: 4, progress: false });
        const direct = await ntk({ data: mlp.train.x.slice(0, 48), shape: [12, 4] });
        await ntk.dispose();
        model.dispose();
        expect(
          Buffer.compare(
            Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength),
            Buffer.from(direct.data.buffer, direct.data.byteOffset, direct.data.byteLength),
          ),
        ).toBe(0);
      }
      // The two checkpoints' kernels differ (training moved the weights): a stale array would show.
      const k0 = (await readKernelStore(stores[0]!.dir)).kernel.data as Float32Array;
      const k1 = (await readKernelStore(stores[1]!.dir)).kernel.data as Float32Array;
      expect(maxDiff(k0, k1)).toBeGreaterThan(1e-3 * maxAbs(k0));
    },
  );

  it('merges shards of every array format (JSON assembled in memory, the others streamed)', async () => {
    const one = await computeKernelStores({ run: mlp, points: 'test:6', out: path.join(dir, 'fmt-one') });
    const reference = await readKernelStore(one[0]!.dir);
    for (const format of ['json', 'safetensors', 'npz'] as const) {
      const out = path.join(dir, `fmt-${format}`);
      for (let i = 0; i < 2; i++) {
        await computeKernelStores({ run: mlp, points: 'test:6', out, format, shard: { index: i, count: 2 } });
      }
      const [merged] = await mergeKernelShards(path.join(out, 'test-6', 'step-000003'), {
        removeShards: true,
      });
      expect(merged!.manifest.arrays.kernel!.file).toBe(`kernel.${format}`);
      const back = await readKernelStore(merged!.dir);
      const a = reference.kernel.data as Float32Array;
      expect(maxDiff(back.kernel.data as Float32Array, a)).toBeLessThanOrEqual(1e-6 * maxAbs(a));
      await expect(mergeKernelShards(path.join(out, 'test-6', 'step-000003'))).rejects.toThrow(
        /dir: expected a shards/,
      );
    }
  });

  it('merge refuses incomplete, mixed or tampered shard sets, before writing anything', async () => {
    const out = path.join(dir, 'broken');
    for (let i = 0; i < 3; i++) {
      await computeKernelStores({
        run: mlp,
        points: 'train:9',
        out,
        shard: { index: i, count: 3 },
        checkpoint: 'all',
      });
    }
    const set = path.join(out, 'train-9', 'step-000003.shards');
    const other = path.join(out, 'train-9', 'step-000000.shards');
    const backup = path.join(dir, 'backup-shard');
    cpSync(path.join(set, 'shard-001-of-003'), backup, { recursive: true });
    rmSync(path.join(set, 'shard-001-of-003'), { recursive: true });
    await expect(mergeKernelShards(set)).rejects.toThrow(
      /shards: expected all 3 shards; missing 1 \(run entk kernel/,
    );
    // A shard of another checkpoint in its place.
    cpSync(path.join(other, 'shard-001-of-003'), path.join(set, 'shard-001-of-003'), { recursive: true });
    await expect(mergeKernelShards(set)).rejects.toThrow(/belongs to a different kernel than shard 0/);
    rmSync(path.join(set, 'shard-001-of-003'), { recursive: true });
    cpSync(backup, path.join(set, 'shard-001-of-003'), { recursive: true });
    writeFileSync(path.join(set, 'shard-002-of-003', 'kernel.npy'), 'garbage');
    await expect(mergeKernelShards(set)).rejects.toThrow(CorruptFileError);
    await expect(readKernelStore(path.join(out, 'train-9', 'step-000003'))).rejects.toThrow(
      /no manifest.json/,
    );
    await expect(mergeKernelShards(path.join(dir, 'nowhere'))).rejects.toThrow(
      /dir: expected a shards directory/,
    );
    await expect(
      computeKernelStores({ run: mlp, points: 'train:2', out, shard: { index: 0, count: 3 } }),
    ).rejects.toThrow(/shard: expected at most 2 shards/);
    await expect(computeKernelStores({ run: mlp, points: 'train:2', out, name: '../x' })).rejects.toThrow(
      /name: expected a directory name/,
    );
    await expect(computeKernelStores({ run: mlp, points: 'train:2', out, checkpoint: '77' })).rejects.toThrow(
      /checkpoint: expected last, first, a step or an id/,
    );
  });
});
