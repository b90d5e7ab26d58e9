// `entk train --pretrained`: the pretrained tiny BERT encoder trained as a whole on topics.csv, then
// kernels, a finetune, predictions and a comparison of the run like any other (issue 15).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRun } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const tmp = tempDir('train-pretrained');

describe('entk train --pretrained', () => {
  it('pretrained tiny-bert → train 1 epoch → kernel → finetune one example → predict → compare', async () => {
    const out = path.join(tmp, 'run');
    const trained = await runCli([
      'train',
      '--data',
      'text/topics.csv',
      '--pretrained',
      'models/tiny-bert',
      '--max-length',
      '16',
      '--epochs',
      '1',
      '--batch-size',
      '60',
      '--json',
      '--out',
      out,
    ]);
    expect(trained.stderr).toBe('');
    expect(trained.status).toBe(0);
    const summary = JSON.parse(trained.stdout);
    expect(summary.model).toMatchObject({ kind: 'transformer', layers: 1, width: 32, maxLength: 16 });
    expect(summary.step).toBe(4);
    const run = await openRun(out);
    expect(run.config.pretrained).toEqual({
      dir: 'models/tiny-bert',
      source: 'auto',
      maxLength: 16,
      pooling: 'cls',
      pooler: false,
    });

    const kernel = await runCli([
      'kernel',
      '--run',
      out,
      '--checkpoint',
      'last',
      '--points',
      'train:per-class=2',
      '--json',
    ]);
    expect(kernel.status, kernel.stderr).toBe(0);
    const k = JSON.parse(kernel.stdout);
    expect(JSON.stringify(k)).toContain('structured');

    const finetune = await runCli([
      'finetune',
      '--run',
      out,
      '--checkpoint',
      'last',
      '--name',
      'one',
      '--points',
      'train:1',
      '--observe',
      'test:6',
      '--lr',
      '0.05',
      '--steps',
      '3',
    ]);
    expect(finetune.status, finetune.stderr).toBe(0);
    const predict = await runCli(['predict', '--run', out, '--name', 'one']);
    expect(predict.status, predict.stderr).toBe(0);
    const compare = await runCli(['compare', '--run', out, '--name', 'one', '--json']);
    expect(compare.status, compare.stderr).toBe(0);
    const comparison = JSON.parse(compare.stdout);
    expect(comparison.steps).toBe(3);
    for (const predictor of ['pop-mu', 'pop-ode']) {
      expect(Number.isFinite(comparison.trajectories[predictor].logProbRmse), predictor).toBe(true);
    }
  }, 120_000);

  it('refuses --model beside --pretrained and --max-length without it, in one line, leaving nothing behind', async () => {
    const out = path.join(tmp, 'refused');
    const [both, alone] = await Promise.all([
      runCli([
        'train',
        '--data',
        'text/topics.csv',
        '--pretrained',
        'models/tiny-bert',
        '--model',
        'transformer-tiny',
        '--out',
        out,
      ]),
      runCli([
        'train',
        '--data',
        'text/topics.csv',
        '--max-length',
        '16',
        '--model',
        'transformer-tiny',
        '--tokenizer',
        'models/tiny-bert',
        '--out',
        out,
      ]),
    ]);
    expectOneLineError(both, /--model: expected no --model with --pretrained/);
    expectOneLineError(
      alone,
      /--max-length: expected a pretrained encoder \(--pretrained <dir>\) to apply to/,
    );
    await expect(fs.stat(out)).rejects.toThrow();
  });
});
