/**
 * The kernel-analysis study end to end (the shipped configs/analysis.yaml): its stages run, the
 * report section carries the analysis figures (per-layer contributions among them), and its numbers
 * equal analysis.json, which analyzeRun wrote from the run's kernel stores.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisResults } from '../../src/analysis/index.js';
import { type ExperimentResult, loadExperimentConfig, runExperiment } from '../../src/experiment/index.js';
import type { ReportResults } from '../../src/report/index.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('experiment-analysis');
let result: ExperimentResult;
let results: ReportResults;
const done: string[] = [];

beforeAll(async () => {
  result = await runExperiment(await loadExperimentConfig('analysis'), {
    outDir: dir,
    onEvent: (e) => {
      if (e.status === 'done') done.push(e.stage);
    },
  });
  results = JSON.parse(await fs.readFile(result.resultsFile, 'utf8'));
}, 120_000);

describe('studies.analysis', () => {
  it('runs its stages and draws the analysis section with per-layer contributions', async () => {
    expect(done).toEqual(expect.arrayContaining(['train/analysis', 'analysis/kernels', 'analysis/analyse']));
    const section = results.sections.analysis!;
    expect(Object.keys(section.figures)).toEqual(
      expect.arrayContaining([
        'spectrum-over-training',
        'alignment-over-training',
        'accuracy-over-training',
        'layer-trace-share-over-training',
        'layer-alignment-over-training',
      ]),
    );
    const analysis = JSON.parse(
      await fs.readFile(path.join(dir, 'analysis', 'analysis.json'), 'utf8'),
    ) as AnalysisResults;
    expect(analysis.checkpoints).toHaveLength(5);
    const last = analysis.checkpoints[4]!;
    expect(section.numbers.alignment).toBe(last.targetAlignment);
    expect(section.numbers.kernelAccuracy).toBe(last.predictors!.kernelRegression.testAccuracy);
    const shares = last.layers!.layers.map((l) => l.traceShare);
    expect(shares).toHaveLength(3);
    expect(Math.abs(shares.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
  });
});
