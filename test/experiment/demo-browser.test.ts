/**
 * The README's main command end to end: `entk demo` (the real CLI, shipped data, no downloads)
 * finishes in under two minutes, prints the summary table, and writes a report that a real browser
 * (Debian's chromium, headless, through playwright-core) shows with no console errors, no network
 * requests, every figure rendered with a non-zero size and every number equal to results.json.
 * The run (report, figures, screenshot.png) is kept under runs/ci-artifacts/demo/ (or
 * $ENTK_ARTIFACTS_DIR/demo/) as a CI artefact.
 *
 * Chromium must be at /usr/bin/chromium (or $ENTK_CHROMIUM). In CI (CI set) a missing browser fails
 * the test; locally the suite is skipped only when the binary is absent and CI is unset.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PNG_SIGNATURE, pngSize, type ReportResults } from '../../src/report/index.js';
import type { CliResult } from '../cli/run-cli.js';
import {
  artifactsDir,
  expectNumbersMatchResults,
  expectSelfContained,
  type OpenedReport,
  repoRoot,
  runBrowserTests,
  runCliReport,
} from '../report/browser-page.js';
import { num } from './fixtures.js';

const runDir = artifactsDir('demo');

describe.runIf(runBrowserTests)('entk demo, and its report in headless chromium', () => {
  let opened: OpenedReport;
  let seconds = 0;
  let cli: CliResult;
  let results: ReportResults;
  const html = path.join(runDir, 'report.html');

  beforeAll(async () => {
    ({ cli, seconds, results, opened } = await runCliReport(['demo', '--out', runDir], runDir));
    await opened.page.screenshot({ path: path.join(runDir, 'screenshot.png'), fullPage: true });
  }, 300_000);

  afterAll(async () => {
    await opened?.browser.close();
  });

  it('runs in under two minutes and prints the summary table and where the report is', () => {
    expect(seconds).toBeLessThan(120);
    const lines = cli.stdout.split('\n');
    expect(lines[0]).toBe('Theory vs measurement');
    expect(lines[1]).toMatch(/^check +measured +theory$/);
    const table = results.sections.summary!.tables.summary!;
    expect(table.rows).toHaveLength(7);
    for (const [i, row] of table.rows.entries()) {
      expect(lines[3 + i], row.key).toMatch(
        new RegExp(`^${row.label.replace(/[()[\]|.*+?^$\\]/g, '\\$&')} +`),
      );
    }
    expect(cli.stdout).toContain(`report:  ${path.relative(repoRoot, html)}`);
    expect(cli.stdout).toMatch(/time: +\d+\.\d s \(\d+ stages run, 0 reused\)/);
  });

  it('finds what theory says at demo size', () => {
    const summary = results.sections.summary!.tables.summary!.values;
    const measured = (key: string) => num(summary[key]?.measured, `${key}.measured`);
    expect(Math.abs(measured('discretisation-slope') - 1)).toBeLessThan(0.2);
    expect(measured('laziness-slope')).toBeLessThan(-0.25);
    expect(measured('checkpoints-one-step-r')).toBeGreaterThan(0.9);
    expect(measured('checkpoints-pop-mu-r')).toBeGreaterThan(0.9);
    const mu = num(summary['negative-gradients-share']?.theory, 'negative-gradients-share.theory');
    expect(Math.abs(measured('negative-gradients-share') - mu)).toBeLessThan(0.05);
    expect(measured('replicator-tv')).toBeLessThan(0.1);
  });

  it('loads with no console errors and no network requests', () => {
    expectSelfContained(opened, html);
  });

  it('renders every figure with a non-zero size, and writes each as SVG, PNG and Vega-Lite spec', async () => {
    const ids = Object.values(results.sections).flatMap((s) => Object.keys(s.figures));
    expect(ids.length).toBe(13);
    const figures = opened.figures;
    expect(figures.map((f) => f.id)).toEqual(ids);
    for (const f of figures) {
      expect(f.width, f.id).toBeGreaterThan(100);
      expect(f.height, f.id).toBeGreaterThan(100);
      expect(f.items, f.id).toBeGreaterThan(5);
    }
    for (const id of ids) {
      const png = await fs.readFile(path.join(runDir, 'figures', `${id}.png`));
      expect([...png.subarray(0, 8)], id).toEqual([...PNG_SIGNATURE]);
      await fs.access(path.join(runDir, 'figures', `${id}.svg`));
      await fs.access(path.join(runDir, 'figures', `${id}.vl.json`));
    }
  });

  it('shows every number equal to results.json', () => {
    expect(opened.numbers.length).toBeGreaterThan(100);
    expectNumbersMatchResults(opened.numbers, results);
  });

  it('keeps a full-page screenshot in the run directory', async () => {
    const shot = await fs.readFile(path.join(runDir, 'screenshot.png'));
    expect([...shot.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    const { width, height } = pngSize(shot);
    expect(width).toBe(1200);
    expect(height).toBeGreaterThan(5000);
  });
});
