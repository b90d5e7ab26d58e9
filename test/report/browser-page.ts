/**
 * A written report opened in a real browser (Debian's chromium, headless, through playwright-core),
 * shared by the report's browser test and the demo's end-to-end test: launches chromium, records
 * console errors and every request, and reads back each figure's drawn size and each number shown.
 *
 * Chromium must be at /usr/bin/chromium (or $ENTK_CHROMIUM). In CI (CI set) a missing browser fails
 * the tests; locally a suite is skipped only when the binary is absent and CI is unset.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { type ReportResults, resolveJsonPointer } from '../../src/report/index.js';
import { type CliResult, runCli } from '../cli/run-cli.js';

export const CHROMIUM = process.env.ENTK_CHROMIUM ?? '/usr/bin/chromium';
const inCi = Boolean(process.env.CI);
export const haveChromium = existsSync(CHROMIUM);
/** Whether to run the browser suites: always in CI, locally only when chromium is installed. */
export const runBrowserTests = haveChromium || inCi;
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Where a browser test keeps its artefacts: runs/ci-artifacts/<name>/ or $ENTK_ARTIFACTS_DIR/<name>/. */
export function artifactsDir(name: string): string {
  return path.join(process.env.ENTK_ARTIFACTS_DIR ?? path.join(repoRoot, 'runs', 'ci-artifacts'), name);
}

/** A figure as drawn on the page: its id, the size of its SVG and how many marks it holds. */
export interface DrawnFigure {
  id: string;
  width: number;
  height: number;
  items: number;
}

/** A report opened in chromium, with what the page did and shows. */
export interface OpenedReport {
  browser: Browser;
  page: Page;
  /** Console errors, page errors and failed requests, as they happen. */
  consoleErrors: string[];
  /** URL of every request the page made, as they happen. */
  requests: string[];
  /** Every `figure[data-figure-id]`, in page order. */
  figures: DrawnFigure[];
  /** Every element with a `data-key` (a JSON pointer into results.json) and the text it shows. */
  numbers: { key: string; text: string }[];
}

/** Fail (in CI, where the suites run regardless) when chromium is missing. */
export function expectChromium(): void {
  expect(haveChromium, `Debian's chromium must be installed at ${CHROMIUM} (apt-get install chromium)`).toBe(
    true,
  );
}

/**
 * Launch headless chromium and open `html` (a 1200×900 viewport). The caller closes `browser`
 * (it is closed here only when opening the page fails).
 */
export async function openReport(html: string): Promise<OpenedReport> {
  const browser = await chromium.launch({
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
  try {
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => consoleErrors.push(`requestfailed: ${request.url()}`));
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(html).href, { waitUntil: 'load' });
    const figures = await page.$$eval('figure[data-figure-id]', (elements) =>
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
    const numbers = await page.$$eval('[data-key]', (elements) =>
      elements.map((element) => ({
        key: element.getAttribute('data-key') ?? '',
        text: element.textContent ?? '',
      })),
    );
    return { browser, page, consoleErrors, requests, figures, numbers };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** Tolerance of a displayed number: half a unit in its last shown digit. */
function displayTolerance(text: string): number {
  const [mantissa, exponent = '0'] = text.split('e');
  const decimals = mantissa!.includes('.') ? mantissa!.split('.')[1]!.length : 0;
  return 0.5 * 10 ** (Number(exponent) - decimals);
}

/**
 * Every number shown equals the value its `data-key` points at in `results`, to the digits shown
 * (`n/a` where the value is null).
 */
export function expectNumbersMatchResults(numbers: OpenedReport['numbers'], results: unknown): void {
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
}

/** No console errors, and the only file the page loaded is the report itself (the rest data: URLs). */
export function expectSelfContained(opened: OpenedReport, html: string): void {
  expect(opened.consoleErrors).toEqual([]);
  for (const url of opened.requests) expect(url).toMatch(/^(file:|data:)/);
  expect(opened.requests.filter((url) => url.startsWith('file:'))).toEqual([pathToFileURL(html).href]);
}

/** A CLI run that wrote a report, and that report opened in chromium (see runCliReport). */
export interface CliReport {
  cli: CliResult;
  /** Wall-clock seconds of the CLI run. */
  seconds: number;
  results: ReportResults;
  opened: OpenedReport;
}

/**
 * Run the CLI (`args`, which write a report into runDir), after emptying runDir; expect it to
 * succeed, read its results.json and open its report.html in chromium (the caller closes
 * `opened.browser`). Fails first when chromium is missing.
 */
export async function runCliReport(args: string[], runDir: string): Promise<CliReport> {
  expectChromium();
  await fs.rm(runDir, { recursive: true, force: true });
  const start = performance.now();
  const cli = await runCli(args);
  const seconds = (performance.now() - start) / 1000;
  expect(cli.status, cli.stderr).toBe(0);
  const results = JSON.parse(await fs.readFile(path.join(runDir, 'results.json'), 'utf8')) as ReportResults;
  return { cli, seconds, results, opened: await openReport(path.join(runDir, 'report.html')) };
}
