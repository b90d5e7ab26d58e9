import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readPredictions } from '../../src/compare/index.js';
import { finetune, readFinetuneRecording } from '../../src/finetune/index.js';
import { train } from '../../src/train/train.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-predict');
const run = path.join(root, 'run');

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'mlp-small', steps: 20, checkpoints: { steps: [0, 20] } },
    { outDir: run },
  );
  const common = { run, points: 'train:per-class=2', observe: 'test:3', learningRate: 0.1, steps: 6 };
  await finetune({ ...common, name: 'frozen' });
  await finetune({ ...common, name: 'refreshed', refreshEvery: 3 });
});

describe('entk predict', async () => {
  it('writes every applicable predictor and prints a JSON summary', async () => {
    const r = await runCli(['predict', '--run', run, '--name', 'refreshed', '--json']);
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    const dir = path.join(run, 'finetune', 'refreshed');
    expect(s.dir).toBe(path.join(dir, 'predictions'));
    expect(Object.keys(s.predictors).sort()).toEqual(
      ['one-step', 'one-step-refreshed', 'pop-mu', 'pop-mu-refreshed', 'pop-ode', 'pop-ode-simplex'].sort(),
    );
    expect(s.predictors['pop-mu'].shape).toEqual([7, 9, 3]);
    expect(s.predictors['one-step'].shape).toEqual([6, 9, 3]);
    expect(s.predictors['pop-ode'].rhsEvaluations).toBeGreaterThan(0);
    const { arrays } = await readPredictions(dir);
    expect(arrays['pop-mu']!.length).toBe(7 * 9 * 3);
    // the predictions start at the recorded initial state
    const recorded = (await readFinetuneRecording(dir)).trajectory.logProbs.subarray(0, 27);
    for (const name of ['pop-mu', 'pop-ode'] as const) {
      const start = arrays[name]!.subarray(0, 27);
      expect(Math.max(...start.map((v, i) => Math.abs(v - recorded[i]!))), name).toBeLessThan(1e-12);
    }
  });

  it('runs a chosen subset with --recording and prints a human summary', async () => {
    const r = await runCli([
      'predict',
      '--recording',
      path.join(run, 'finetune', 'frozen'),
      '--predictors',
      'pop-mu,pop-ode',
      '--rtol',
      '1e-8',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/pop-mu\s+\[7, 9, 3\]/);
    expect(r.stdout).toMatch(/pop-ode\s+\[7, 9, 3\]/);
    expect(r.stdout).not.toMatch(/one-step/);
  });

  it('rejects bad inputs with one-line errors', async () => {
    expectOneLineError(
      await runCli(['predict', '--run', run, '--name', 'frozen', '--predictors', 'pop-euler']),
      /--predictors: expected a comma-separated list/,
    );
    expectOneLineError(
      await runCli(['predict', '--run', run, '--name', 'frozen', '--predictors', 'pop-mu-refreshed']),
      /predictors: expected a recording with refreshed kernels/,
    );
    expectOneLineError(
      await runCli(['predict', '--run', run, '--name', 'missing']),
      /recording: expected a finetune recording directory/,
    );
    expectOneLineError(
      await runCli(['predict', '--recording', run, '--run', run, '--name', 'frozen']),
      /either --recording or --run/,
    );
  });
});

describe('entk predict / compare without --name', () => {
  it('use the most recent recording and say which on stderr', async () => {
    const r = await runCli(['predict', '--run', run, '--predictors', 'pop-mu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    // 'refreshed' was recorded after 'frozen'.
    expect(JSON.parse(r.stdout).dir).toBe(path.join(run, 'finetune', 'refreshed', 'predictions'));
    expect(r.stderr).toMatch(/using the most recent recording 'refreshed' of 2 \(frozen, refreshed\)/);
    const c = await runCli(['compare', '--run', run, '--json']);
    expect(c.status, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toBeTypeOf('object');
  });

  it('use the only recording without a word, and refuse a run with none', async () => {
    const single = path.join(root, 'single');
    await train(
      { data: 'iris', model: 'linear', steps: 4, checkpoints: { steps: [0, 4] } },
      { outDir: single },
    );
    const none = await runCli(['predict', '--run', single]);
    expectOneLineError(
      none,
      /--run: expected a run with a finetune recording in .*finetune \(run entk finetune first\)/,
    );
    await finetune({
      run: single,
      name: 'only',
      points: 'train:4',
      observe: 'test:2',
      learningRate: 0.1,
      steps: 3,
    });
    const r = await runCli(['predict', '--run', single, '--predictors', 'pop-mu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).dir).toBe(path.join(single, 'finetune', 'only', 'predictions'));
  });
});

describe('--json errors', () => {
  it('are JSON on stdout, with the typed fields, and the same exit code', async () => {
    const r = await runCli(['predict', '--run', run, '--name', 'missing', '--json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('');
    const e = JSON.parse(r.stdout).error;
    expect(e.name).toBe('InvalidArgumentError');
    expect(e.argument).toBe('recording');
    expect(e.message).toMatch(/expected a finetune recording directory/);
  });

  it('cover commander usage errors too', async () => {
    const r = await runCli(['compare', '--run', run, '--bogus', '--json']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).error).toEqual({
      name: 'UsageError',
      code: 'commander.unknownOption',
      message: "unknown option '--bogus'",
    });
  });
});
