/** `entk experiment`: bad config paths and invalid configs fail in one line; a tiny config runs and resumes. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../experiment/fixtures.js';
import { tempDir } from '../util/temp-dir.js';
import { expectOneLineError, runCli } from './run-cli.js';

const dir = tempDir('cli-experiment');

describe('entk experiment: errors', () => {
  it('a missing config file: one line naming it and the shipped presets, exit 2', async () => {
    const r = await runCli(['experiment', path.join(dir, 'nope.yaml'), '--out', path.join(dir, 'x')]);
    expectOneLineError(
      r,
      /config: expected an existing \.yaml\/\.json file or a shipped preset \(.*demo.*\), received ".*nope\.yaml"/,
    );
  });

  it('an invalid config: one line naming the offending key, exit 2, nothing written', async () => {
    const file = path.join(dir, 'bad.yaml');
    await fs.writeFile(file, 'train: { data: digits }\nstudies:\n  laziness:\n    widths: [64, 128, -4]\n');
    const out = path.join(dir, 'bad-out');
    const r = await runCli(['experiment', file, '--out', out]);
    expectOneLineError(r, /studies\.laziness\.widths\[2\]: expected a positive integer, received -4$/);
    await expect(fs.access(out)).rejects.toThrow();
  });

  it('a YAML syntax error: one line with the file and line', async () => {
    const file = path.join(dir, 'broken.yaml');
    await fs.writeFile(file, 'train:\n  data: digits\nstudies: [unclosed\n');
    expectOneLineError(
      await runCli(['experiment', file]),
      /broken\.yaml, line \d+, column \d+: not valid YAML/,
    );
  });

  it('a wrong data set for the replicator study fails before any training', async () => {
    const file = path.join(dir, 'rep.json');
    await fs.writeFile(file, JSON.stringify({ studies: { replicator: { train: { data: 'digits' } } } }));
    const out = path.join(dir, 'rep-out');
    expectOneLineError(
      await runCli(['experiment', file, '--out', out]),
      /studies\.replicator\.train\.data: expected a three-class dataset \(it has 10 classes\)/,
    );
    await expect(fs.access(path.join(out, 'runs'))).rejects.toThrow();
  });
});

describe('entk experiment: a tiny config', () => {
  it('runs, prints a JSON summary, reuses every stage on a second run and redoes all with --force', async () => {
    const file = path.join(dir, 'tiny.json');
    const config = tinyConfig();
    // Keep the CLI runs short: one study, no PNGs (the full pipeline is in test/experiment).
    config.studies = { discretisation: config.studies.discretisation };
    await fs.writeFile(file, JSON.stringify(config));
    const out = path.join(dir, 'tiny-out');
    const r = await runCli(['experiment', file, '--out', out, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.report).toBe(path.join(out, 'report.html'));
    expect(Object.keys(summary.summary)).toEqual(['discretisation-slope']);
    expect(Math.abs(summary.summary['discretisation-slope'].measured - 1)).toBeLessThan(0.2);
    expect(summary.stages.every((s: { status: string }) => s.status === 'done')).toBe(true);
    await fs.access(path.join(out, 'report.html'));
    const again = await runCli(['experiment', file, '--out', out]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^Theory vs measurement\ncheck +measured +theory\n/);
    expect(again.stdout).toMatch(/discretisation: slope of MU–ODE gap vs η +1\.0\d+ +1\n/);
    expect(again.stdout).toMatch(/\(0 stages run, \d+ reused\)\n$/);
    // --force deletes only what the experiment recorded: a run put under runs/ by hand stays.
    const mine = path.join(out, 'runs', 'mine');
    await fs.mkdir(mine);
    await fs.writeFile(path.join(mine, 'notes.txt'), 'mine\n');
    await fs.writeFile(path.join(out, 'keep.txt'), 'keep\n');
    const forced = await runCli(['experiment', file, '--out', out, '--force', '--json']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(await fs.readFile(path.join(mine, 'notes.txt'), 'utf8')).toBe('mine\n');
    expect(await fs.readFile(path.join(out, 'keep.txt'), 'utf8')).toBe('keep\n');
    const stages = JSON.parse(forced.stdout).stages as { status: string }[];
    expect(stages.length).toBe(summary.stages.length);
    expect(stages.every((s) => s.status === 'done')).toBe(true);
  });
});
