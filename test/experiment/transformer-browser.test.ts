/**
 * The shipped `transformer` experiment (issue 15), end to end through the real CLI: a whole
 * transformer trained from scratch on data/text/wordnet-glosses.csv (tokenised offline by
 * models/wordnet-tokenizer), finetuned from its checkpoints, against eq. (1) / POP-MU / POP-ODE from
 * its eNTK over every parameter. The config here `extends: transformer` and only shrinks its sizes
 * (training steps, points, finetune steps) so the test takes well under a minute; the full config is
 * run by the README's command (test/readme). The report must render in headless chromium with no
 * console errors and no network requests, show every number equal to results.json, and hold the
 * checkpoints section with finite theory-vs-actual numbers for every checkpoint.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReportResults } from '../../src/report/index.js';
import type { CliResult } from '../cli/run-cli.js';
import {
  artifactsDir,
  expectNumbersMatchResults,
  expectSelfContained,
  type OpenedReport,
  runBrowserTests,
  runCliReport,
} from '../report/browser-page.js';
import { tempDir } from '../util/temp-dir.js';
import { num } from './fixtures.js';

const runDir = artifactsDir('transformer');
const configFile = path.join(tempDir('transformer-experiment'), 'transformer-small.yaml');

/** The shipped config at test size (every other key as shipped). */
const SMALL = `extends: transformer
train:
  steps: 20
  checkpoints: { steps: [0, 10, 20] }
points:
  finetune: train:per-class=1
  observe: test:per-class=1
finetune:
  steps: 12
  recordEvery: 1
  refreshEvery: 6
studies:
  checkpoints:
    focus: step-000010
    heatmapPoints: train:per-class=3
    trajectoryPoints: 3
`;

describe.runIf(runBrowserTests)('entk experiment transformer, and its report in headless chromium', () => {
  let opened: OpenedReport;
  let cli: CliResult;
  let results: ReportResults;
  const html = path.join(runDir, 'report.html');

  beforeAll(async () => {
    await fs.writeFile(configFile, SMALL);
    ({ cli, results, opened } = await runCliReport(['experiment', configFile, '--out', runDir], runDir));
  }, 300_000);

  afterAll(async () => {
    await opened?.browser.close();
  });

  it('trained the transformer on tokenised WordNet definitions', async () => {
    const split = JSON.parse(await fs.readFile(path.join(runDir, 'runs', 'base', 'split.json'), 'utf8'));
    expect(split.inputShape).toEqual([48]); // 24 token ids, then the 24-position mask
    expect(split.classNames).toEqual(['animal', 'artifact', 'food', 'person', 'plant']);
    expect(split.tokenizer.vocabSize).toBeGreaterThan(1000);
    const config = JSON.parse(await fs.readFile(path.join(runDir, 'runs', 'base', 'config.json'), 'utf8'));
    expect(config.model.kind).toBe('transformer');
    expect(cli.stdout).toMatch(/^Theory vs measurement/);
  });

  it('loads with no console errors and no network requests', () => {
    expectSelfContained(opened, html);
  });

  it('shows the checkpoints section with every figure drawn and every number equal to results.json', () => {
    const section = results.sections.checkpoints!;
    expect(Object.keys(section.figures)).toEqual([
      'checkpoints-total-change',
      'checkpoints-per-step-change',
      'checkpoints-trajectories',
      'checkpoints-error-over-steps',
      'checkpoints-kernel-drift',
      'checkpoints-kernel-heatmap',
    ]);
    const drawn = new Map(opened.figures.map((f) => [f.id, f]));
    for (const id of Object.keys(section.figures)) {
      const f = drawn.get(id);
      expect(f, id).toBeDefined();
      expect(f!.width, id).toBeGreaterThan(100);
      expect(f!.height, id).toBeGreaterThan(100);
      expect(f!.items, id).toBeGreaterThan(5);
    }
    expect(opened.numbers.length).toBeGreaterThan(30);
    expectNumbersMatchResults(opened.numbers, results);
  });

  it('gives finite theory-vs-actual numbers at every checkpoint, and a kernel that moves', () => {
    const table = results.sections.checkpoints!.tables['by-checkpoint']!;
    expect(table.rows.map((r) => r.key)).toEqual(['step-000000', 'step-000010', 'step-000020']);
    for (const row of table.rows) {
      const v = table.values[row.key]!;
      for (const key of [
        'oneStepR',
        'popMuR',
        'popMuRmse',
        'popOdeRmse',
        'refreshedRmse',
        'lossStart',
        'lossEnd',
      ])
        expect(Number.isFinite(num(v[key], `${row.key}.${key}`)), `${row.key}.${key}`).toBe(true);
      // The finetune lowers its loss.
      expect(num(v.lossEnd, 'lossEnd')).toBeLessThan(num(v.lossStart, 'lossStart'));
    }
    // Drift is measured against the first checkpoint: 0 there, positive once Adam has moved the weights.
    expect(num(table.values['step-000000']!.drift, 'drift')).toBe(0);
    expect(num(table.values['step-000020']!.drift, 'drift')).toBeGreaterThan(0.01);
    const summary = results.sections.summary!.tables.summary!.values;
    for (const key of ['checkpoints-one-step-r', 'checkpoints-pop-mu-r', 'checkpoints-pop-mu-rmse'])
      expect(Number.isFinite(num(summary[key]?.measured, key)), key).toBe(true);
    // At the focus checkpoint the frozen-kernel predictions follow the network (eq. 1 over 12 small steps).
    expect(num(summary['checkpoints-one-step-r']?.measured, 'one-step r')).toBeGreaterThan(0.5);
  });
});
