// `entk finetune --model` → `entk predict` → `entk compare` on a user's tfjs layers model (saved
// with saveModel) and points from a CSV file, end to end through the real CLI.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashModelFiles } from '../../src/kernel-store/index.js';
import { saveModel } from '../../src/model/index.js';
import { tempDir } from '../util/temp-dir.js';
import { denseClassifier, modelFiles, writeCsv } from '../util/user-model.js';
import { expectOneLineError, runCli } from './run-cli.js';

const dir = tempDir('cli-finetune-model');
const modelDir = path.join(dir, 'mlp');
const modelJson = path.join(modelDir, 'model.json');
const trainCsv = path.join(dir, 'train.csv');
const watchCsv = path.join(dir, 'watch.csv');
const out = path.join(dir, 'recording');
const D = 4;
const feature = (n: number, j: number) => Math.cos(1.1 * n + 0.6 * j + 0.4) * (1 + 0.15 * j);
let files: Map<string, Buffer>;

beforeAll(async () => {
  const model = denseClassifier(D, 8, 3, 0.7);
  await saveModel(model, modelDir);
  model.dispose();
  const header = ['id', 'a', 'b', 'c', 'd'];
  const row = (n: number) => Array.from({ length: D }, (_, j) => feature(n, j).toFixed(6));
  await writeCsv(
    trainCsv,
    [...header, 'label'],
    [0, 1, 2, 3, 4].map((n) => [`p${n}`, ...row(n), n % 3]),
  );
  await writeCsv(
    watchCsv,
    [...header, 'label'],
    [5, 6, 7].map((n) => [`q${n}`, ...row(n), n % 3]),
  );
  files = await modelFiles(modelDir);
});

describe('entk finetune | predict | compare --model', () => {
  it('finetunes a saved model on CSV points, predicts and compares, leaving the model untouched', async () => {
    const ft = await runCli([
      'finetune',
      '--model',
      modelJson,
      '--points',
      `file:${trainCsv}`,
      '--observe',
      `file:${watchCsv}`,
      '--out',
      out,
      '--learning-rate',
      '0.01',
      '--steps',
      '20',
      '--record-every',
      '4',
      '--json',
    ]);
    expect(ft.stderr).toBe('');
    expect(ft.status).toBe(0);
    const s = JSON.parse(ft.stdout);
    expect(s).toMatchObject({
      dir: out,
      name: 'recording',
      source: { kind: 'model', path: modelJson, sha256: (await hashModelFiles(modelJson)).sha256 },
      checkpoint: null,
      learningRate: 0.01,
      steps: 20,
      finetunePoints: 5,
      observePoints: 3,
      numClasses: 3,
      recordedSteps: 6,
      kernelSteps: [0],
    });

    const pr = await runCli(['predict', '--recording', out, '--model', modelJson, '--json']);
    expect(pr.stderr).toBe('');
    expect(pr.status).toBe(0);
    const p = JSON.parse(pr.stdout);
    expect(Object.keys(p.predictors).sort()).toEqual(['one-step', 'pop-mu', 'pop-ode', 'pop-ode-simplex']);
    expect(p.predictors['pop-mu'].shape).toEqual([6, 8, 3]);

    const cr = await runCli(['compare', '--recording', out, '--model', modelDir, '--json']);
    expect(cr.stderr).toBe('');
    expect(cr.status).toBe(0);
    const c = JSON.parse(cr.stdout);
    expect(c.recording).toBe('recording');
    expect(c.learningRate).toBe(0.01);
    expect(c.steps).toBe(20);
    expect(Number.isFinite(c.finalLoss)).toBe(true);
    expect(c.paramDistance).toBeGreaterThan(0);
    // The loss moved (1.121 → 1.069 with these weights), and at small η the lazy predictions follow
    // the real network: measured log-prob RMSE 1.7e-3 (POP-MU), 1.9e-3 (POP-ODE) nats — it grows
    // as (η·steps)² (5.6e-3 at η = 0.02) — Pearson 0.9994 of the one-step changes, and
    // POP-MU vs POP-ODE 6e-4 (O(η)).
    expect(c.finalLoss).toBeLessThan(1.08);
    for (const name of ['pop-mu', 'pop-ode', 'pop-ode-simplex']) {
      const t = c.trajectories[name];
      for (const v of Object.values(t)) expect(Number.isFinite(v as number)).toBe(true);
      expect(t.logProbRmse).toBeLessThan(5e-3);
      expect(t.logProbRmse).toBeGreaterThan(0); // a real network is not exactly lazy
    }
    expect(c.changes['one-step'].pearson).toBeGreaterThan(0.995);
    expect(c.discretisationGap.logProbRmse).toBeLessThan(2e-3);

    expect(await modelFiles(modelDir)).toEqual(files);
  });

  it('refuses a changed model, --model without --recording, a missing points file and --checkpoint', async () => {
    const changed = path.join(dir, 'changed');
    await fs.cp(modelDir, changed, { recursive: true });
    const json = JSON.parse(await fs.readFile(path.join(changed, 'model.json'), 'utf8'));
    json.modelTopology.config.name = 'renamed';
    await fs.writeFile(path.join(changed, 'model.json'), JSON.stringify(json));
    expectOneLineError(
      await runCli(['predict', '--recording', out, '--model', changed]),
      /^entk: error: --model: expected the model recording recording was made with \(sha256 [0-9a-f]{12}… of model\.json, weights\.bin\); these files hash to [0-9a-f]{12}… \(changed since\), received /,
    );
    expectOneLineError(
      await runCli(['compare', '--run', dir, '--model', modelJson]),
      /--recording: expected the recording directory of --model/,
    );
    expectOneLineError(
      await runCli([
        'finetune',
        '--model',
        modelJson,
        '--points',
        `npy:${path.join(dir, 'x.npy')}`,
        '--out',
        path.join(dir, 'bad'),
        '--learning-rate',
        '0.1',
        '--steps',
        '1',
      ]),
      /^entk: error: --points: expected an existing array file/,
    );
    expectOneLineError(
      await runCli([
        'finetune',
        '--model',
        modelJson,
        '--points',
        `file:${trainCsv}`,
        '--out',
        path.join(dir, 'bad'),
        '--checkpoint',
        'last',
        '--learning-rate',
        '0.1',
        '--steps',
        '1',
      ]),
      /--checkpoint: expected nothing with model \(it applies to run\)/,
    );
  });
});
