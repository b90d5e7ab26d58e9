/**
 * The report opened in a real browser (Debian's chromium, headless, through playwright-core):
 * no console errors, no network requests, every figure rendered with non-zero size, every number
 * on the page equal to results.json, and a full-page screenshot kept next to the report
 * (runs/ci-artifacts/report-browser/, or $ENTK_ARTIFACTS_DIR/report-browser/).
 *
 * Chromium must be at /usr/bin/chromium (or $ENTK_CHROMIUM). In CI (CI set) a missing browser fails
 * the test; locally the suite is skipped only when the binary is absent and CI is unset.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Resvg } from '@resvg/resvg-js';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PNG_SIGNATURE,
  pngSize,
  resolveJsonPointer,
  type WrittenReport,
  writeReport,
} from '../../src/report/index.js';
import { sampleReport } from './fixtures.js';

const CHROMIUM = process.env.ENTK_CHROMIUM ?? '/usr/bin/chromium';
const inCi = Boolean(process.env.CI);
const haveChromium = existsSync(CHROMIUM);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const artifacts = path.join(
  process.env.ENTK_ARTIFACTS_DIR ?? path.join(repoRoot, 'runs', 'ci-artifacts'),
  'report-browser',
);

/** Tolerance of a displayed number: half a unit in its last shown digit. */
function displayTolerance(text: string): number {
  const [mantissa, exponent = '0'] = text.split('e');
  const decimals = mantissa!.includes('.') ? mantissa!.split('.')[1]!.length : 0;
  return 0.5 * 10 ** (Number(exponent) - decimals);
}

describe.runIf(haveChromium || inCi)('report in headless chromium', () => {
  let browser: Browser | undefined;
  let written: WrittenReport;
  const consoleErrors: string[] = [];
  const requests: string[] = [];
  let figures: { id: string; width: number; height: number; items: number }[] = [];
  let numbers: { key: string; text: string }[] = [];
  let heatmapShot: Buffer;

  beforeAll(async () => {
    expect(
      haveChromium,
      `Debian's chromium must be installed at ${CHROMIUM} (apt-get install chromium)`,
    ).toBe(true);
    written = await writeReport(artifacts, await sampleReport());
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => consoleErrors.push(`requestfailed: ${request.url()}`));
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(written.html).href, { waitUntil: 'load' });
    figures = await page.$$eval('figure[data-figure-id]', (elements) =>
      elements.map((element) => {
        const svg = element.querySelector('.chart svg');
        const box = svg?.getBoundingClientRect();
        return {
          id: element.getAttribute('data-figure-id') ?? '',
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          items: svg ? svg.querySelectorAll('path, line, image, text').length : 0,
        };
      }),
    );
    numbers = await page.$$eval('[data-key]', (elements) =>
      elements.map((element) => ({
        key: element.getAttribute('data-key') ?? '',
        text: element.textContent ?? '',
      })),
    );
    heatmapShot = await page.locator('figure[data-figure-id="kernel-heatmap"] .chart').screenshot();
    await page.screenshot({ path: path.join(written.dir, 'screenshot.png'), fullPage: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('loads with no console errors and no network requests', () => {
    expect(consoleErrors).toEqual([]);
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(url).toMatch(/^(file:|data:)/);
    expect(requests.filter((url) => url.startsWith('file:'))).toEqual([pathToFileURL(written.html).href]);
  });

  it('renders every figure with a non-zero size', () => {
    const ids = written.figures.map((f) => f.id);
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
    expect(numbers.length).toBeGreaterThan(40);
    for (const { key, text } of numbers) {
      const value = resolveJsonPointer(results, key);
      if (value === null) {
        expect(text, key).toBe('n/a');
        continue;
      }
      expect(typeof value, key).toBe('number');
      expect(text, key).toMatch(/^-?\d+(\.\d+)?(e-?\d+)?$/);
      const shown = Number(text);
      expect(
        Math.abs(shown - (value as number)),
        `${key}: page ${text}, results.json ${value}`,
      ).toBeLessThanOrEqual(displayTolerance(text) + Math.abs(value as number) * 1e-12);
    }
  });

  it('keeps a full-page screenshot next to the report', async () => {
    const shot = await fs.readFile(path.join(written.dir, 'screenshot.png'));
    expect([...shot.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    const { width, height } = pngSize(shot);
    expect(width).toBe(1200);
    expect(height).toBeGreaterThan(3000);
  });
});
