// The shipped text-backbone experiment (issue 7's demo config): data/text/topics.csv embedded offline by
// the committed tiny BERT through the real transformers.js pipeline, a linear head, and the studies on it.
// For a linear softmax head the eNTK is (xᵀx′ + 1) I_V and does not depend on θ, so the network IS its
// linearisation: POP-MU must match the finetuned network up to float32 rounding of the recorded
// log-probabilities (rule: RMS log π error ≤ 1e-5 nats), and the MU–ODE gap must shrink like η.

import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExperimentConfig, runExperiment } from '../../src/experiment/index.js';
import { tempDir } from '../util/temp-dir.js';

const tmp = tempDir('text-backbone');

describe('experiment text-backbone (shipped config)', () => {
  it('runs offline end to end; POP-MU equals the linear head, discretisation slope ≈ 1', async () => {
    process.env.ENTK_CACHE_DIR = path.join(tmp, 'cache');
    const config = await loadExperimentConfig('text-backbone');
    const out = path.join(tmp, 'exp');
    const result = await runExperiment(config, { outDir: out, log: () => undefined });
    const results = JSON.parse(await readFile(result.resultsFile, 'utf8'));
    const values = results.sections.summary.tables.summary.values;
    expect(values['checkpoints-pop-mu-rmse'].measured).toBeLessThan(1e-5);
    expect(values['checkpoints-pop-mu-r'].measured).toBeGreaterThan(0.999999);
    expect(values['checkpoints-one-step-r'].measured).toBeGreaterThan(0.9);
    expect(Math.abs(values['discretisation-slope'].measured - 1)).toBeLessThan(0.25);
    expect(values['replicator-tv'].measured).toBeLessThan(1e-5);
    // The base run really trained on 32-dimensional tiny-BERT features.
    const split = JSON.parse(await readFile(path.join(out, 'runs', 'base', 'split.json'), 'utf8'));
    expect(split.inputShape).toEqual([32]);
  });
});
