import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareRecording, predictRecording, readPredictions } from '../../src/compare/index.js';
import { FitnessOperator, popOde, scheduleWeights } from '../../src/dynamics/index.js';
import {
  finetune,
  readFinetuneRecording,
  readRecordingKernel,
  storeBlocks,
} from '../../src/finetune/index.js';
import { train } from '../../src/train/train.js';
import { logLogSlope } from '../../src/util/stats.js';
import { tempDir } from '../util/temp-dir.js';

const root = tempDir('pipeline');
const linearRun = path.join(root, 'linear');

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'linear', steps: 20, checkpoints: { steps: [0, 20] }, seed: 2 },
    { outDir: linearRun },
  );
});

describe('predict + compare on real recordings', () => {
  it('a linear model has no laziness gap, and the discretisation gap is first order in η', async () => {
    const T = 4; // same continuous time t = n·η for every η
    const gaps: number[] = [];
    const lazy: number[] = [];
    const etas = [0.2, 0.1, 0.05];
    for (const eta of etas) {
      const r = await finetune({
        run: linearRun,
        name: `eta-${eta}`,
        points: 'train:per-class=3',
        observe: 'test:6',
        learningRate: eta,
        steps: Math.round(T / eta),
        recordEvery: Math.round(T / eta / 4),
      });
      const pm = await predictRecording(r.dir, {
        predictors: ['pop-mu', 'pop-ode', 'one-step'],
        rtol: 1e-10,
        atol: 1e-12,
      });
      expect(Object.keys(pm.predictors).sort()).toEqual(['one-step', 'pop-mu', 'pop-ode']);
      const { arrays } = await readPredictions(r.dir);
      const rec = await readFinetuneRecording(r.dir);
      // every trajectory starts at the recorded state
      const n = rec.trajectory.numPoints * 3;
      for (let i = 0; i < n; i++) {
        expect(Math.abs(arrays['pop-mu']![i]! - rec.trajectory.logProbs[i]!)).toBeLessThan(1e-12);
        expect(Math.abs(arrays['pop-ode']![i]! - rec.trajectory.logProbs[i]!)).toBeLessThan(1e-12);
      }
      const c = await compareRecording(r.dir);
      lazy.push(c.subsets.all.lazinessGap!.max.logProbRmse);
      gaps.push(c.subsets.all.discretisationGap!.final.probNorm);
      expect(c.subsets.observe!.points).toEqual([9, 15]);
      expect(c.kernelDrift).toEqual([]);
      expect((await fs.readdir(r.dir)).sort()).toContain('comparison.json');
    }
    // float32 network vs float64 POP-MU: only rounding
    for (const l of lazy) expect(l).toBeLessThan(1e-4);
    const fit = logLogSlope(etas, gaps);
    expect(gaps[0]!).toBeGreaterThan(1e-3);
    expect(fit.slope).toBeGreaterThan(0.85);
    expect(fit.slope).toBeLessThan(1.15);
  });

  it('POP-ODE of a minibatch recording uses the weights averaged over the recorded schedule', async () => {
    // 9 points in batches of 4 → sizes 4, 4, 1 each epoch (reshuffled): POP-ODE uses the weights
    // averaged over the recorded steps, w_u = (1/T) Σ_t [u ∈ B_t]/|B_t|
    const eta = 0.02;
    const r = await finetune({
      run: linearRun,
      name: 'minibatch',
      points: 'train:per-class=3',
      mode: 'minibatch',
      batchSize: 4,
      learningRate: eta,
      steps: 150,
      recordEvery: 50,
      seed: 3,
    });
    await predictRecording(r.dir, { predictors: ['pop-mu', 'pop-ode'], rtol: 1e-10, atol: 1e-12 });
    const { arrays } = await readPredictions(r.dir);
    const rec = await readFinetuneRecording(r.dir);
    const m = rec.manifest;
    expect(m.schedule.kind).toBe('sequence');
    const V = m.numClasses;
    const N = rec.numTrain;
    const k = storeBlocks(await readRecordingKernel(rec, 0), m.finetune.ids, []);
    const op = new FitnessOperator({ numClasses: V, train: k.train }, { threads: 1 });
    const problem = {
      numClasses: V,
      labels: rec.labels,
      initialLogits: rec.trajectory.logProbs.slice(0, N * V),
    };
    const opts = { learningRate: eta, steps: m.steps, record: m.recordedSteps, rtol: 1e-10, atol: 1e-12 };
    const withSchedule = popOde(op, problem, { ...opts, schedule: m.schedule }).trajectory.logProbs;
    const fullBatch = popOde(op, problem, opts).trajectory.logProbs;
    op.dispose();
    let same = 0;
    for (let i = 0; i < withSchedule.length; i++)
      same = Math.max(same, Math.abs(withSchedule[i]! - arrays['pop-ode']![i]!));
    expect(same).toBeLessThan(1e-12);
    // the schedule is used: the averaged weights of this finite reshuffled run differ from 1/N
    // (in expectation over reshuffles they are 1/N, so the difference is a finite-sample one)
    const w = scheduleWeights(m.schedule, N);
    expect(Math.max(...w) - Math.min(...w)).toBeGreaterThan(0.01);
    let differs = 0;
    for (let i = 0; i < fullBatch.length; i++)
      differs = Math.max(differs, Math.abs(fullBatch[i]! - arrays['pop-ode']![i]!));
    expect(differs).toBeGreaterThan(1e-4);
  });

  it('refuses what cannot be predicted', async () => {
    const r = await finetune({
      run: linearRun,
      name: 'plain',
      points: 'train:per-class=1',
      learningRate: 0.1,
      steps: 2,
    });
    await expect(predictRecording(r.dir, { predictors: ['pop-mu-refreshed'] })).rejects.toThrow(
      /refreshed kernels/,
    );
    await expect(predictRecording(r.dir, { predictors: [] })).rejects.toThrow(/predictors/);
    await expect(predictRecording(r.dir, { rtol: -1 })).rejects.toThrow(/rtol/);
    await expect(compareRecording(r.dir)).rejects.toThrow(/predictions/);
    await predictRecording(r.dir);
    await expect(compareRecording(r.dir, { signThreshold: -1 })).rejects.toThrow(/signThreshold/);
    // a damaged predictions manifest
    await fs.writeFile(path.join(r.dir, 'predictions', 'manifest.json'), '{"format": "other"}');
    await expect(compareRecording(r.dir)).rejects.toThrow(/format/);
  });
});
