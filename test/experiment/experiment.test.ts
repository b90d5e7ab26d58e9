/**
 * A tiny end-to-end experiment (every study, a few seconds): the report and results.json are
 * written, the numbers are what theory says they should be at these sizes, and the stages resume:
 * a second run does no work, a changed study parameter redoes only that study (and the report).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ExperimentResult, runExperiment, type StageEvent } from '../../src/experiment/index.js';
import { type ReportResults, resolveJsonPointer } from '../../src/report/index.js';
import { tempDir } from '../util/temp-dir.js';
import { num, tinyConfig } from './fixtures.js';

const dir = tempDir('experiment');
let first: ExperimentResult;
let results: ReportResults;
let tensorsBefore: number;
let tensorsAfter: number;
const firstEvents: StageEvent[] = [];

beforeAll(async () => {
  tensorsBefore = tf.memory().numTensors;
  first = await runExperiment(tinyConfig(), { outDir: dir, onEvent: (e) => firstEvents.push(e) });
  tensorsAfter = tf.memory().numTensors;
  results = JSON.parse(await fs.readFile(first.resultsFile, 'utf8'));
}, 120_000);

const section = (id: string) => {
  const s = results.sections[id];
  if (!s) throw new Error(`no section ${id} in results.json`);
  return s;
};
const number = (id: string, key: string) => num(section(id).numbers[key], `${id}.numbers.${key}`);
const cell = (id: string, table: string, row: string, column: string) =>
  num(section(id).tables[table]?.values[row]?.[column], `${id}.tables.${table}.${row}.${column}`);
const done = (events: StageEvent[]) => events.filter((e) => e.status === 'done').map((e) => e.stage);

describe('a tiny experiment end to end', () => {
  it('runs every stage once and writes report.html, results.json and the figures', async () => {
    const stages = done(first.events);
    expect(first.events.every((e) => e.status === 'done')).toBe(true);
    for (const stage of [
      'train/base',
      'points/base',
      'finetune/base/checkpoints-step-000000',
      'checkpoints/analyse/step-000040',
      'checkpoints/drift',
      'heatmap/base/step-000040',
      'train/width-16',
      'laziness/analyse/width-256',
      'kernel/base/step-000040',
      'discretisation/analyse',
      'finetune/base/negative-gradients',
      'negative-gradients/analyse',
      'train/replicator',
      'replicator/analyse',
      'report',
    ]) {
      expect(stages, stage).toContain(stage);
    }
    expect(new Set(stages).size).toBe(stages.length);
    expect(firstEvents.filter((e) => e.status === 'started').length).toBe(stages.length);
    const html = await fs.readFile(first.html, 'utf8');
    expect(html).toContain('<h1>entk test: tiny experiment</h1>');
    expect(html).toContain('cumulative one-step (teacher-forced)');
    expect(Object.keys(results.sections)).toEqual([
      'summary',
      'checkpoints',
      'laziness',
      'discretisation',
      'negative-gradients',
      'replicator',
    ]);
    const figureIds = Object.values(results.sections).flatMap((s) => Object.keys(s.figures));
    expect(figureIds).toEqual([
      'checkpoints-total-change',
      'checkpoints-per-step-change',
      'checkpoints-trajectories',
      'checkpoints-error-over-steps',
      'checkpoints-kernel-drift',
      'checkpoints-kernel-heatmap',
      'laziness-vs-width',
      'laziness-gap-over-steps',
      'discretisation-vs-step-size',
      'discretisation-over-time',
      'negative-gradients-trajectories',
      'negative-gradients-scatter',
      'replicator-ternary',
    ]);
    for (const id of figureIds) {
      const svg = await fs.readFile(path.join(dir, 'figures', `${id}.svg`), 'utf8');
      expect(svg, id).toMatch(/<svg[^>]+width="\d+(\.\d+)?"/);
      expect(html, id).toContain(`data-figure-id="${id}"`);
    }
    // png: false in the tiny config.
    await expect(fs.access(path.join(dir, 'figures', 'replicator-ternary.png'))).rejects.toThrow();
    // Each recording holds its predictions and comparison (src/compare's files).
    const recording = path.join(dir, 'runs', 'base', 'finetune', 'checkpoints-step-000040');
    expect(await fs.readdir(path.join(recording, 'predictions'))).toEqual(
      expect.arrayContaining([
        'one-step.npy',
        'one-step-refreshed.npy',
        'pop-mu.npy',
        'pop-mu-refreshed.npy',
        'pop-ode.npy',
      ]),
    );
    await fs.access(path.join(recording, 'comparison.json'));
    expect(tensorsAfter).toBe(tensorsBefore);
  });

  it('gives the summary table, equal to results.json', () => {
    const table = section('summary').tables.summary!;
    expect(table.rows.map((r) => r.key)).toEqual(first.summary.rows.map((r) => r.key));
    for (const row of first.summary.rows) {
      expect(table.values[row.key]?.measured).toBe(row.values.measured);
      expect(table.values[row.key]?.theory).toBe(row.values.theory);
    }
  });

  it('predicts a small-η finetune of a small model well (r > 0.9)', () => {
    for (const method of ['one-step', 'POP-MU', 'POP-ODE', 'refreshed']) {
      expect(cell('checkpoints', 'methods', method, 'rTotal'), method).toBeGreaterThan(0.9);
    }
    // The cumulative one-step path is not a distribution: no probability metrics on it, and it is
    // labelled as what it is.
    const methods = section('checkpoints').tables.methods!.values;
    expect(methods['one-step']?.rmseProb).toBeNull();
    expect(methods['one-step']?.kl).toBeNull();
    for (const method of ['POP-MU', 'POP-ODE', 'refreshed']) {
      expect(cell('checkpoints', 'methods', method, 'kl'), method).toBeGreaterThan(0);
      expect(cell('checkpoints', 'methods', method, 'rmseProb'), method).toBeGreaterThan(0);
    }
    // Refreshing the kernel along the run brings POP-MU closer to the network.
    expect(cell('checkpoints', 'methods', 'refreshed', 'rmse')).toBeLessThan(
      cell('checkpoints', 'methods', 'POP-MU', 'rmse'),
    );
    const ids = Object.keys(section('checkpoints').tables['by-checkpoint']!.values);
    expect(ids).toEqual(['step-000000', 'step-000010', 'step-000040']);
    for (const id of ids) {
      expect(cell('checkpoints', 'by-checkpoint', id, 'oneStepR'), id).toBeGreaterThan(0.9);
      expect(cell('checkpoints', 'by-checkpoint', id, 'lossEnd'), id).toBeLessThan(
        cell('checkpoints', 'by-checkpoint', id, 'lossStart'),
      );
    }
    expect(cell('checkpoints', 'by-checkpoint', 'step-000000', 'drift')).toBe(0);
    expect(cell('checkpoints', 'by-checkpoint', 'step-000040', 'drift')).toBeGreaterThan(0);
  });

  it('finds the POP-MU → POP-ODE gap O(η): log–log slope 1 ± 0.2, halving η halves it', () => {
    const slope = number('discretisation', 'slope');
    expect(Math.abs(slope - 1)).toBeLessThan(0.2);
    const rows = Object.keys(section('discretisation').tables['by-step-size']!.values);
    expect(rows.map((r) => cell('discretisation', 'by-step-size', r, 'steps'))).toEqual([20, 40, 80, 160]);
    for (const r of rows.slice(1))
      expect(cell('discretisation', 'by-step-size', r, 'ratio')).toBeGreaterThan(1.7);
    expect(
      resolveJsonPointer(
        results,
        '/sections/discretisation/figures/discretisation-vs-step-size/numbers/slope',
      ),
    ).toBe(slope);
  });

  it('finds the laziness gap shrinking with width', () => {
    const gaps = ['width-16', 'width-64', 'width-256'].map((w) =>
      cell('laziness', 'by-width', w, 'gapFinal'),
    );
    expect(gaps[1]).toBeLessThan(gaps[0]!);
    expect(gaps[2]).toBeLessThan(gaps[1]!);
    expect(number('laziness', 'slope')).toBeLessThan(-0.25);
  });

  it('unlearning: the ascended label loses mass, mostly to the top other label, as POP-MU predicts', () => {
    const ng = 'negative-gradients';
    expect(number(ng, 'labelEnd')).toBeLessThan(number(ng, 'labelStart'));
    const share = (row: string) => cell(ng, 'squeezing', row, 'share');
    expect(share('actual')).toBeGreaterThan(number(ng, 'proportional'));
    expect(Math.abs(share('actual') - share('POP-MU'))).toBeLessThan(0.05);
    expect(number(ng, 'signAgreement')).toBeGreaterThan(0.8);
  });

  it('follows the three-class distributions on the simplex', () => {
    expect(number('replicator', 'tvMu')).toBeLessThan(0.1);
    expect(section('replicator').figures['replicator-ternary']?.numbers.points).toBe(3);
  });

  it('report text: the discretisation figure compares POP-MU with POP-ODE over time; the refresh sentence follows the numbers', () => {
    const caption = section('discretisation').figures['discretisation-over-time']!.caption;
    expect(caption).toMatch(/^Gap between the two predictors POP-MU and POP-ODE .*no network in this figure/);
    expect(caption).toContain('At the last time t = n·η (');
    expect(caption).not.toContain('against the real network');
    const text = section('checkpoints').text;
    const mu = number('checkpoints', 'popMuRmse');
    const refreshed = section('checkpoints').numbers.refreshedRmse;
    if (typeof refreshed === 'number')
      expect(text).toContain(refreshed < mu ? 'closes' : 'does not close the gap');
  });

  it('resumes: a second run does no stage work and writes the same numbers', async () => {
    const before = await fs.readFile(first.resultsFile, 'utf8');
    const again = await runExperiment(tinyConfig(), { outDir: dir });
    expect(done(again.events)).toEqual([]);
    expect(again.events.length).toBe(first.events.length);
    expect(await fs.readFile(again.resultsFile, 'utf8')).toBe(before);
  });

  it('a changed study parameter redoes only that study and the report', async () => {
    const config = tinyConfig();
    config.studies.discretisation!.learningRates = [0.02, 0.01, 0.005];
    const changed = await runExperiment(config, { outDir: dir });
    expect(done(changed.events)).toEqual(['discretisation/analyse', 'report']);
    const rows = JSON.parse(await fs.readFile(changed.resultsFile, 'utf8')).sections.discretisation.tables[
      'by-step-size'
    ].values;
    expect(Object.keys(rows)).toHaveLength(3);
    // A changed finetune parameter of one study redoes its finetunes and analyses, nothing else.
    config.studies.negativeGradients!.steps = 8;
    const changed2 = await runExperiment(config, { outDir: dir });
    expect(done(changed2.events)).toEqual([
      'finetune/base/negative-gradients',
      'negative-gradients/analyse',
      'report',
    ]);
  });

  it('redoes a stage whose outputs were deleted', async () => {
    await fs.rm(path.join(dir, 'runs', 'replicator', 'finetune', 'replicator', 'comparison.json'));
    const config = tinyConfig();
    config.studies.discretisation!.learningRates = [0.02, 0.01, 0.005];
    config.studies.negativeGradients!.steps = 8;
    const again = await runExperiment(config, { outDir: dir });
    // Same inputs, same key: the report (which only reads the files) is still current.
    expect(done(again.events)).toEqual(['replicator/analyse']);
  });
});
