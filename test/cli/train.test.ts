import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const root = tempDir('cli-train');

describe('entk train', async () => {
  it('trains into a run directory and prints a JSON summary', async () => {
    const out = path.join(root, 'json');
    const r = await runCli([
      'train',
      '--data',
      'iris',
      '--model',
      'linear',
      '--steps',
      '6',
      '--checkpoints',
      '0,3',
      '--out',
      out,
      '--json',
    ]);
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({
      dir: out,
      backend: 'wasm',
      model: 'linear',
      data: 'iris',
      step: 6,
      totalSteps: 6,
    });
    expect(summary.checkpoints.map((c: { step: number }) => c.step)).toEqual([0, 3, 6]);
    expect(summary.metrics.testAccuracy).toBeGreaterThan(1 / 3); // better than chance on 3 classes
    expect((await fs.readdir(out)).sort()).toEqual(['checkpoints', 'config.json', 'logs', 'split.json']);

    // resume with the stored configuration, training longer
    const again = await runCli(['train', '--out', out, '--resume', '--steps', '10', '--json']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ step: 10, resumedFrom: 6 });
  });

  it('runs the README command shape on digits and prints the test accuracy', async () => {
    const out = path.join(root, 'digits');
    const r = await runCli(['train', '--data', 'digits', '--model', 'mlp', '--epochs', '3', '--out', out]);
    expect(r.status).toBe(0);
    const match = /test accuracy (\d\.\d{4})/.exec(r.stdout);
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThan(0.9);
    expect(r.stdout).toMatch(/checkpoints in .*digits\/checkpoints \(steps 0, 1, 2, 4, /);
  });

  it('rejects bad inputs with one line and a non-zero exit', async () => {
    const out = path.join(root, 'bad');
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--model', 'transformer', '--out', out]),
      /--model: expected a model preset \(mlp, .*\), received "transformer"/,
    );
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--lr', 'fast', '--out', out]),
      /--lr: expected a positive finite number, received "fast"/,
    );
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--learning-rate', '-1', '--out', out]),
      /--learning-rate: expected a positive finite number, received "-1"/,
    );
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--learning-rate', '0.1', '--lr', '0.2', '--out', out]),
      /--lr: expected either --learning-rate or its alias --lr, not both/,
    );
    expectOneLineError(
      await runCli(['train', '--data', 'no/such/file.csv', '--out', out]),
      /data: expected an existing file \(not found: /,
    );
    expectOneLineError(await runCli(['train', '--out', out]), /--data: expected a dataset name or file/);
    expectOneLineError(
      await runCli(['train', '--data', 'iris', '--optimizer', 'adagrad', '--out', out]),
      /--optimizer: expected one of sgd, momentum, adam, received "adagrad"/,
    );
    expectOneLineError(
      await runCli([
        'train',
        '--data',
        'iris',
        '--checkpoint-every',
        '5',
        '--checkpoints',
        '1,2',
        '--out',
        out,
      ]),
      /--checkpoints: expected one of --checkpoints, --checkpoint-every, --checkpoint-geometric/,
    );
  });
});
