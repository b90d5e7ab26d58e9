import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRecording, logLogSlope, predictRecording, readPredictions } from '../../src/compare/index.js';
import { finetune, readFinetuneRecording } from '../../src/train/finetune.js';
import { train } from '../../src/train/train.js';

let root = '';
let linearRun = '';

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'entk-pipeline-'));
  linearRun = path.join(root, 'linear');
  await train(
    { data: 'iris', model: 'linear', steps: 20, checkpoints: { steps: [0, 20] }, seed: 2 },
    { outDir: linearRun },
  );
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
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
