// `entk train --backbone`: a text CSV embedded by the tiny BERT model through the real transformers.js
// pipeline, then a linear head trained on the features (issue 7's end-to-end path from the CLI).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRun } from '../../src/train/index.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const tmp = tempDir('train-backbone');

describe('entk train --backbone', () => {
  it('trains a head on frozen tiny-BERT features of data/text/topics.csv', async () => {
    const out = path.join(tmp, 'run');
    const cache = path.join(tmp, 'cache');
    const r = await runCli(
      [
        'train',
        '--data',
        'text/topics.csv',
        '--backbone',
        'models/tiny-bert',
        '--model',
        'linear',
        '--steps',
        '20',
        '--out',
        out,
        '--json',
      ],
      { ENTK_CACHE_DIR: cache },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const run = await openRun(out);
    expect(run.config.backbone?.backbone).toBe('models/tiny-bert');
    expect(run.train.inputShape).toEqual([32]); // tiny-bert hidden size
    expect(run.train.x.length).toBe(run.train.ids.length * 32);
    // mean pooling + L2 normalisation (the defaults): every feature row has unit norm before standardisation.
    const { mean, std } = run.standardization;
    for (let n = 0; n < run.train.ids.length; n++) {
      let norm2 = 0;
      for (let k = 0; k < 32; k++) norm2 += (run.train.x[n * 32 + k]! * std[k]! + mean[k]!) ** 2;
      expect(Math.sqrt(norm2)).toBeCloseTo(1, 5);
    }
    expect(run.train.ids.length + run.test.ids.length).toBe(300);
  });

  it('refuses a text dataset without a backbone, with one line and no run directory left behind', async () => {
    const out = path.join(tmp, 'no-backbone');
    const r = await runCli([
      'train',
      '--data',
      'text/topics.csv',
      '--model',
      'linear',
      '--steps',
      '2',
      '--out',
      out,
    ]);
    expectOneLineError(r, /backbone: expected a frozen backbone for the text dataset text\/topics.csv/);
    await expect(fs.stat(out)).rejects.toThrow();
  });
});
