import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readFinetuneRecording } from '../../src/finetune/index.js';
import { train } from '../../src/train/train.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-finetune');
const run = path.join(root, 'run');

beforeAll(async () => {
  await train(
    { data: 'iris', model: 'mlp-small', steps: 20, checkpoints: { steps: [0, 20] } },
    { outDir: run },
  );
});

describe('entk finetune', async () => {
  it('records a minibatch run with refreshed kernels and prints a JSON summary', async () => {
    const r = await runCli([
      'finetune',
      '--run',
      run,
      '--name',
      'mb',
      '--points',
      'train:per-class=2',
      '--observe',
      'test:4',
      '--mode',
      'minibatch',
      '--batch-size',
      '3',
      '--learning-rate',
      '0.1',
      '--steps',
      '6',
      '--record-every',
      '2',
      '--refresh-every',
      '3',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({
      dir: path.join(run, 'finetune', 'mb'),
      mode: 'minibatch',
      batchSize: 3,
      steps: 6,
      finetunePoints: 6,
      observePoints: 4,
      numClasses: 3,
      recordedSteps: 4,
      kernelSteps: [0, 3, 6],
      checkpoint: { id: 'step-000020', step: 20 },
    });
    expect(s.kernelDrift.all.relativeChange).toBeGreaterThan(0);
    const rec = await readFinetuneRecording(s.dir);
    expect(rec.trajectory.steps).toEqual([0, 2, 4, 6]);
    expect((await fs.readdir(s.dir)).sort()).toEqual([
      'kernels',
      'logprobs.npy',
      'loss.npy',
      'manifest.json',
      'param-distance.npy',
    ]);
  });

  it('runs gradient ascent on a single example and prints a human summary', async () => {
    const split = JSON.parse(await fs.readFile(path.join(run, 'split.json'), 'utf8'));
    const id = split.trainIds[0];
    const r = await runCli([
      'finetune',
      '--run',
      run,
      '--name',
      'unlearn',
      '--points',
      `ids:${id}`,
      '--mode',
      'single',
      '--lr=-0.2',
      '--steps',
      '5',
      '--checkpoint',
      'first',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /1 finetune \+ 0 observation points × 3 labels, 5 single SGD steps at η = -0.2 from step-000000/,
    );
    const rec = await readFinetuneRecording(path.join(run, 'finetune', 'unlearn'));
    // ascent raises the loss of the example
    expect(rec.loss[5]!).toBeGreaterThan(rec.loss[0]!);
  });

  it('rejects bad inputs with one-line errors', async () => {
    const base = ['finetune', '--run', run, '--name', 'bad', '--points', 'train:per-class=1', '--steps', '2'];
    expectOneLineError(
      await runCli([...base, '--learning-rate', '0']),
      /--learning-rate: expected a nonzero finite number/,
    );
    expectOneLineError(
      await runCli([...base, '--learning-rate', '0.1', '--mode', 'sgd']),
      /--mode: expected one of full, minibatch, single/,
    );
    expectOneLineError(
      await runCli([...base, '--lr', '0.1', '--mode', 'single']),
      /points: expected exactly one example/,
    );
    expectOneLineError(await runCli([...base, '--lr', '0']), /--lr: expected a nonzero finite number/);
    expectOneLineError(
      await runCli(base),
      /--learning-rate: expected a finite non-zero number \(negative: gradient ascent\), received undefined/,
    );
    // the library's checks, naming the flags
    expectOneLineError(
      await runCli(['finetune', '--points', 'train:per-class=1', '--steps', '2', '--lr', '0.1']),
      / --run: expected a run directory \(or, instead, model\), received undefined$/,
    );
    expectOneLineError(
      await runCli([
        'finetune',
        '--run',
        run,
        '--points',
        'train:per-class=1',
        '--steps',
        '2',
        '--lr',
        '0.1',
      ]),
      / --name: expected a recording name of letters, digits, \. _ - \(≤ 100\), received undefined$/,
    );
    expectOneLineError(
      await runCli([...base, '--learning-rate', '0.1', '--lr', '0.1']),
      /--lr: expected either --learning-rate or its alias --lr, not both/,
    );
    expectOneLineError(
      await runCli([...base, '--learning-rate', '0.1', '--out', root]),
      /out: expected nothing with run \(it applies to model\)/,
    );
    expectOneLineError(
      await runCli([...base, '--lr', '0.1', '--run', root]),
      /run: expected a run directory/,
    );
    expectOneLineError(
      await runCli([
        'finetune',
        '--run',
        run,
        '--name',
        'mb',
        '--points',
        'train:per-class=1',
        '--lr',
        '0.1',
        '--steps',
        '1',
      ]),
      /--name: expected a new or empty directory \(.* holds a finetune recording: replace it with --overwrite\)/,
    );
  });
});
