import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FitnessOperator, oneStepPredict, popMu } from '../../src/dynamics/index.js';
import { CorruptFileError, InvalidArgumentError } from '../../src/errors.js';
import {
  type FinetuneRecording,
  finetune,
  minibatchSchedule,
  readFinetuneRecording,
  readRecordingKernel,
  storeBlocks,
} from '../../src/finetune/index.js';
import { finiteDifferenceNtk } from '../../src/kernel/reference.js';
import { readKernelStore, verifyKernelStore } from '../../src/kernel-store/index.js';
import { openRun, train } from '../../src/train/index.js';
import { kernelDrift } from '../../src/util/stats.js';
import { logLogSlope } from '../dynamics/reference.js';
import { relMaxError } from '../kernel/helpers.js';
import { tempDir } from '../util/temp-dir.js';

const root = tempDir('finetune');

/** The recorded kernel blocks K(u, u′) and K(o, u) at `step`, from the recording's kernel store. */
async function recordedBlocks(rec: FinetuneRecording, step: number) {
  const store = await readRecordingKernel(rec, step);
  return storeBlocks(store, rec.manifest.finetune.ids, rec.manifest.observe.ids);
}
const mlpRun = path.join(root, 'mlp');
const linearRun = path.join(root, 'linear');

beforeAll(async () => {
  const base = { data: 'iris', steps: 30, checkpoints: { steps: [0, 30] }, seed: 1 };
  await train({ ...base, model: 'mlp-small' }, { outDir: mlpRun });
  await train({ ...base, model: 'linear' }, { outDir: linearRun });
});

/** Relative L2 error of the one-step prediction of a single recorded step, and the actual Δ. */
async function oneStepError(run: string, eta: number) {
  const r = await finetune({
    run,
    name: 'one',
    points: 'train:per-class=3',
    observe: 'test:6',
    learningRate: eta,
    steps: 1,
    overwrite: true,
  });
  const rec = await readFinetuneRecording(r.dir);
  const op = new FitnessOperator(await recordedBlocks(rec, 0));
  const pred = oneStepPredict(op, rec.labels, rec.trajectory, { learningRate: eta });
  op.dispose();
  const n = pred.length;
  const actual = new Float64Array(n);
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    actual[i] = rec.trajectory.logProbs[n + i]! - rec.trajectory.logProbs[i]!;
    num += (pred[i]! - actual[i]!) ** 2;
    den += actual[i]! ** 2;
  }
  return { rel: Math.sqrt(num / den), pred, actual };
}

describe('finetune recorder on real tfjs networks', () => {
  it('equation (1) matches an actual SGD step with first-order error (docs/theory.md#check-3-equation-1)', async () => {
    const etas = [0.4, 0.2, 0.1, 0.05];
    const rel: number[] = [];
    for (const eta of etas) rel.push((await oneStepError(mlpRun, eta)).rel);
    // relative error → 0 linearly in η: slope 1 ± 0.15 (float32 noise is far below these errors)
    const slope = logLogSlope(etas, rel);
    expect(slope).toBeGreaterThan(0.85);
    expect(slope).toBeLessThan(1.15);
    expect(rel[rel.length - 1]!).toBeLessThan(0.05);
  });

  it('gradient ascent flips the sign of the predicted and of the actual change', async () => {
    const up = await oneStepError(mlpRun, 0.02);
    const down = await oneStepError(mlpRun, -0.02);
    const scale = Math.max(...up.actual.map(Math.abs));
    let checked = 0;
    for (let i = 0; i < up.pred.length; i++) {
      expect(down.pred[i]).toBeCloseTo(-up.pred[i]!, 12); // same π, same K: exactly opposite
      if (Math.abs(up.actual[i]!) < 0.1 * scale) continue;
      checked++;
      expect(Math.sign(down.actual[i]!)).toBe(-Math.sign(up.actual[i]!));
      expect(Math.sign(up.pred[i]!)).toBe(Math.sign(up.actual[i]!));
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('for a linear softmax model POP-MU reproduces the actual SGD run (the network is its own linearisation)', async () => {
    const run = async (runDir: string) => {
      const r = await finetune({
        run: runDir,
        name: 'traj',
        points: 'train:per-class=3',
        observe: 'test:6',
        learningRate: 0.1,
        steps: 40,
        overwrite: true,
      });
      const rec = await readFinetuneRecording(r.dir);
      const op = new FitnessOperator(await recordedBlocks(rec, 0));
      const P = rec.numTrain + rec.numObserve;
      const mu = popMu(
        op,
        { numClasses: 3, labels: rec.labels, initialLogits: rec.trajectory.logProbs.slice(0, P * 3) },
        { learningRate: 0.1, steps: 40 },
      );
      op.dispose();
      let gap = 0;
      let moved = 0;
      for (let i = 0; i < mu.logProbs.length; i++)
        gap = Math.max(gap, Math.abs(mu.logProbs[i]! - rec.trajectory.logProbs[i]!));
      for (let i = 0; i < P * 3; i++)
        moved = Math.max(
          moved,
          Math.abs(rec.trajectory.logProbs[40 * P * 3 + i]! - rec.trajectory.logProbs[i]!),
        );
      return { gap, moved };
    };
    const lin = await run(linearRun);
    const mlp = await run(mlpRun);
    expect(lin.moved).toBeGreaterThan(0.5);
    expect(lin.gap).toBeLessThan(1e-4); // float32 arithmetic of the network
    expect(mlp.gap).toBeGreaterThan(100 * lin.gap); // a real laziness gap
  });

  it('records minibatch runs with a reproducible schedule, refreshed kernels and drift', async () => {
    const before = tf.memory().numTensors;
    const r = await finetune({
      run: mlpRun,
      name: 'mb',
      points: 'train:per-class=2',
      observe: 'test:4',
      mode: 'minibatch',
      batchSize: 4,
      learningRate: 0.05,
      steps: 9,
      recordEvery: 4,
      refreshEvery: 5,
      seed: 3,
    });
    expect(tf.memory().numTensors).toBe(before);
    const m = r.manifest;
    expect(m.recordedSteps).toEqual([0, 4, 8, 9]);
    expect(m.kernels.map((k) => k.step)).toEqual([0, 5]);
    expect(m.kernels[0]!.drift).toBeNull();
    expect(m.schedule).toEqual({ kind: 'sequence', batches: minibatchSchedule(6, 4, 9, 3) });
    // every epoch is a permutation of the 6 finetune points in batches of 4 and 2
    const b = minibatchSchedule(6, 4, 9, 3);
    expect(b.map((x) => x.length)).toEqual([4, 2, 4, 2, 4, 2, 4, 2, 4]);
    expect([...b[0]!, ...b[1]!].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    const rec = await readFinetuneRecording(r.dir);
    expect(rec.trajectory.logProbs.length).toBe(4 * 10 * 3);
    expect(rec.paramDistance[0]).toBe(0);
    expect(rec.paramDistance[3]!).toBeGreaterThan(0);
    expect(Array.from(rec.loss).every(Number.isFinite)).toBe(true);
    const k5 = await recordedBlocks(rec, 5);
    expect(k5.train.length).toBe(18 * 18);
    expect(k5.observe!.length).toBe(12 * 18);
    // The drift in the manifest is kernelDrift (checked against a float64 loop in
    // test/compare/metrics.test.ts) of the stored kernels: train blocks, and train + observe.
    const k0 = await recordedBlocks(rec, 0);
    const want = {
      train: kernelDrift([k0.train], [k5.train]),
      all: kernelDrift([k0.train, k0.observe!], [k5.train, k5.observe!]),
    };
    const got = m.kernels[1]!.drift!;
    for (const part of ['train', 'all'] as const) {
      expect(want[part].relativeChange).toBeGreaterThan(1e-4); // the kernel did move
      expect(got[part].relativeChange).toBe(want[part].relativeChange);
      expect(got[part].distance).toBe(want[part].distance);
    }
    // a tampered array is detected by its hash
    const file = path.join(r.dir, 'loss.npy');
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 1] ^= 0xff;
    await fs.writeFile(file, bytes);
    await expect(readFinetuneRecording(r.dir)).rejects.toThrow(CorruptFileError);
  });

  it('stores each kernel as a kernel store over all tracked points (checked against finite differences)', async () => {
    const r = await finetune({
      run: mlpRun,
      name: 'store',
      points: 'train:per-class=1',
      observe: 'test:2',
      learningRate: 0.1,
      steps: 2,
    });
    const rec = await readFinetuneRecording(r.dir);
    expect(r.manifest.kernels).toEqual([{ step: 0, store: 'kernels/step-000000', drift: null }]);
    const storeDir = path.join(r.dir, 'kernels', 'step-000000');
    const manifest = await verifyKernelStore(storeDir); // every file's sha256
    const ids = [...rec.manifest.finetune.ids, ...rec.manifest.observe.ids];
    expect(manifest.points.ids).toEqual(ids);
    expect(manifest.kernel.kind).toBe('full');
    expect(manifest.finetune).toEqual({ recording: 'store', step: 0 });
    expect(manifest.checkpoint!.id).toBe(rec.manifest.checkpoint!.id);
    const store = await readKernelStore(storeDir);
    // The whole kernel over the 5 tracked points (K(u, o) mirrored from K(o, u), K(o, o) computed)
    // against the float64 finite-difference eNTK of the checkpoint's model.
    const run = await openRun(mlpRun);
    const model = await run.loadModel(rec.manifest.checkpoint!.id);
    const x = Float32Array.from((store.inputs!.data as Float32Array).slice());
    const ref = finiteDifferenceNtk(model, { data: x, shape: [5, ...manifest.model.inputShape] });
    model.dispose();
    expect(relMaxError(store.kernel.data as Float32Array, ref.data)).toBeLessThan(1e-4);
    // the stored logits are the network's at the checkpoint: log-softmax = the recorded log π₀
    const logits = store.logits!.data as Float32Array;
    for (let p = 0; p < 5; p++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < 3; i++) max = Math.max(max, logits[p * 3 + i]!);
      let sum = 0;
      for (let i = 0; i < 3; i++) sum += Math.exp(logits[p * 3 + i]! - max);
      for (let i = 0; i < 3; i++) {
        const want = logits[p * 3 + i]! - max - Math.log(sum);
        expect(rec.trajectory.logProbs[p * 3 + i]!).toBeCloseTo(want, 5);
      }
    }
    // the store path in the manifest must stay inside the recording
    const file = path.join(r.dir, 'manifest.json');
    const m = JSON.parse(await fs.readFile(file, 'utf8'));
    m.kernels[0].store = '../../kernels/x';
    await fs.writeFile(file, JSON.stringify(m));
    const tampered = await readFinetuneRecording(r.dir);
    await expect(readRecordingKernel(tampered, 0)).rejects.toThrow(CorruptFileError);
  });

  it('rejects bad options with errors naming the argument', async () => {
    const base = { run: mlpRun, name: 'bad', points: 'train:per-class=1', learningRate: 0.1, steps: 2 };
    await expect(finetune({ ...base, learningRate: 0 })).rejects.toThrow(
      /learningRate: expected a finite non-zero/,
    );
    await expect(finetune({ ...base, steps: 0 })).rejects.toThrow(/steps/);
    await expect(finetune({ ...base, mode: 'single' })).rejects.toThrow(/exactly one example/);
    await expect(finetune({ ...base, mode: 'minibatch' })).rejects.toThrow(/batchSize/);
    await expect(finetune({ ...base, batchSize: 2 })).rejects.toThrow(/batchSize/);
    await expect(finetune({ ...base, mode: 'sgd' as 'full' })).rejects.toThrow(/mode/);
    await expect(finetune({ ...base, name: '../x' })).rejects.toThrow(/name/);
    await expect(finetune({ ...base, observe: 'train:per-class=1' })).rejects.toThrow(/observe/);
    await expect(finetune({ ...base, run: root })).rejects.toThrow(InvalidArgumentError);
    await finetune({ ...base, name: 'twice' });
    await expect(finetune({ ...base, name: 'twice' })).rejects.toThrow(
      /twice holds a finetune recording: replace it with --overwrite/,
    );
    await expect(readFinetuneRecording(path.join(root, 'nothing'))).rejects.toThrow(/finetune recording/);
  });
});
