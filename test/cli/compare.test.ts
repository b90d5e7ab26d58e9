import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { predictRecording } from '../../src/compare/index.js';
import { finetune } from '../../src/finetune/index.js';
import { train } from '../../src/train/train.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-compare');
const run = path.join(root, 'run');

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'mlp-small', steps: 20, checkpoints: { steps: [0, 20] } },
    { outDir: run },
  );
  const r = await finetune({
    run,
    name: 'ft',
    points: 'train:per-class=3',
    observe: 'test:6',
    learningRate: 0.05,
    steps: 10,
    refreshEvery: 5,
  });
  await predictRecording(r.dir);
  await finetune({ run, name: 'unpredicted', points: 'train:per-class=1', learningRate: 0.05, steps: 2 });
});

describe('entk compare', () => {
  it('writes comparison.json and prints a JSON summary of the metrics', async () => {
    const r = await runCli(['compare', '--run', run, '--name', 'ft', '--json']);
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    const dir = path.join(run, 'finetune', 'ft');
    expect(s.file).toBe(path.join(dir, 'comparison.json'));
    expect(s).toMatchObject({ recording: 'ft', learningRate: 0.05, steps: 10 });
    // small η on a small net: equation (1) tracks the actual per-step changes closely
    expect(s.changes['one-step'].pearson).toBeGreaterThan(0.95);
    expect(s.changes['one-step'].signAgreement).toBeGreaterThan(0.9);
    expect(s.trajectories['pop-mu'].logProbRmse).toBeLessThan(0.1);
    expect(s.lazinessGap.logProbRmse).toBeGreaterThan(0);
    expect(s.discretisationGap.logProbRmse).toBeGreaterThan(0);
    expect(s.kernelDrift.step).toBe(10);
    const full = JSON.parse(await fs.readFile(s.file, 'utf8'));
    expect(full.format).toBe('entk-comparison');
    expect(full.subsets.all.points).toEqual([0, 15]);
    expect(full.subsets.finetune.points).toEqual([0, 9]);
    expect(full.subsets.observe.points).toEqual([9, 15]);
    expect(full.subsets.observe.trajectories['pop-ode'].perPoint).toHaveLength(6);
    expect(full.subsets.all.trajectories['pop-mu'].perLabel).toHaveLength(3);
    expect(full.subsets.all.lazinessGap.steps).toHaveLength(11);
  });

  it('prints a human summary', async () => {
    const r = await runCli(['compare', '--recording', path.join(run, 'finetune', 'ft')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/pop-mu\s+log-prob RMSE/);
    expect(r.stdout).toMatch(/one-step\s+Δlog π Pearson/);
    expect(r.stdout).toMatch(/laziness gap/);
    expect(r.stdout).toMatch(/kernel drift at step 10/);
  });

  it('asks for predictions first', async () => {
    const r = await runCli(['compare', '--run', run, '--name', 'unpredicted']);
    expectOneLineError(r, /recording: expected a recording with predictions \(run 'entk predict' first\)/);
  });
});
