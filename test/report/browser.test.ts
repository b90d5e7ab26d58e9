/**
 * The report opened in a real browser (Debian's chromium, headless, through playwright-core):
 * no console errors, no network requests, every figure rendered with non-zero size, every number
 * on the page equal to results.json, and a full-page screenshot kept next to the report
 * (runs/ci-artifacts/report-browser/, or $ENTK_ARTIFACTS_DIR/report-browser/).
 *
 * Chromium must be at /usr/bin/chromium (or $ENTK_CHROMIUM). In CI (CI set) a missing browser fails
 * the test; locally the suite is skipped only when the binary is absent and CI is unset.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PNG_SIGNATURE, pngSize, type WrittenReport, writeReport } from '../../src/report/index.js';
import {
  artifactsDir,
  expectChromium,
  expectNumbersMatchResults,
  expectSelfContained,
  type OpenedReport,
  openReport,
  runBrowserTests,
} from './browser-page.js';
import { sampleReport } from './fixtures.js';

const artifacts = artifactsDir('report-browser');

describe.runIf(runBrowserTests)('report in headless chromium', () => {
  let written: WrittenReport;
  let opened: OpenedReport;
  let heatmapShot: Buffer;

  beforeAll(async () => {
    expectChromium();
    written = await writeReport(artifacts, await sampleReport());
    opened = await openReport(written.html);
    heatmapShot = await opened.page.locator('figure[data-figure-id="kernel-heatmap"] .chart').screenshot();
    await opened.page.screenshot({ path: path.join(written.dir, 'screenshot.png'), fullPage: true });
  }, 60_000);

  afterAll(async () => {
    await opened?.browser.close();
  });

  it('loads with no console errors and no network requests', () => {
    expect(opened.requests.length).toBeGreaterThan(0);
    expectSelfContained(opened, written.html);
  });

  it('renders every figure with a non-zero size', () => {
    const ids = written.figures.map((f) => f.id);
    const figures = opened.figures;
    expect(figures.map((f) => f.id)).toEqual(ids);
    expect(ids).toHaveLength(8);
    for (const f of figures) {
      expect(f.width, f.id).toBeGreaterThan(100);
      expect(f.height, f.id).toBeGreaterThan(100);
      expect(f.items, f.id).toBeGreaterThan(5);
    }
  });

  it('shows the heatmap raster (many distinct colours in the screenshot)', () => {
    const { width, height } = pngSize(heatmapShot);
    const url = `data:image/png;base64,${heatmapShot.toString('base64')}`;
    const pixels = new Resvg(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><image href="${url}" width="${width}" height="${height}"/></svg>`,
    ).render().pixels;
    const colours = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4)
      colours.add((pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!);
    expect(colours.size).toBeGreaterThan(100);
  });

  it('shows every number equal to results.json', async () => {
    const results = JSON.parse(await fs.readFile(written.resultsFile, 'utf8'));
    expect(opened.numbers.length).toBeGreaterThan(40);
    expectNumbersMatchResults(opened.numbers, results);
  });

  it('keeps a full-page screenshot next to the report', async () => {
    const shot = await fs.readFile(path.join(written.dir, 'screenshot.png'));
    expect([...shot.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    const { width, height } = pngSize(shot);
    expect(width).toBe(1200);
    expect(height).toBeGreaterThan(3000);
  });
});
