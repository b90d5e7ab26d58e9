import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Figure,
  formatNumber,
  formatTableText,
  PNG_SIGNATURE,
  pngSize,
  type Report,
  renderReportHtml,
  reportResults,
  resolveJsonPointer,
  scopeSvgIds,
  writeReport,
} from '../../src/report/index.js';
import { tempDir } from '../util/temp-dir.js';
import { sampleReport } from './fixtures.js';

let report: Report;
const tmp = tempDir('report');

beforeAll(async () => {
  report = await sampleReport();
});

function decode(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

/** Every number leaf under meta, section numbers, table values and figure numbers, as JSON Pointers. */
function numberPointers(results: unknown): string[] {
  const out: string[] = [];
  const walk = (value: unknown, pointer: string, inNumbers: boolean) => {
    if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        const next = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        walk(v, next, inNumbers || ['numbers', 'values', 'meta'].includes(k));
      }
    } else if (inNumbers && (typeof value === 'number' || value === null)) {
      out.push(pointer);
    }
  };
  walk(results, '', false);
  return out;
}

describe('renderReportHtml', () => {
  it('is self-contained: no scripts, no external stylesheets, no http(s) URLs in src/href', () => {
    const html = renderReportHtml(report);
    expect(html).not.toMatch(/<script\b/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).not.toMatch(/\s(?:src|href|xlink:href|action|poster)\s*=\s*["']?\s*(?:https?:)?\/\//i);
    expect(html).not.toMatch(/url\(\s*["']?\s*(?:https?:)?\/\//i);
    // The only href values are in-page anchors and relative figure files.
    for (const m of html.matchAll(/\s(?:xlink:)?href="([^"]*)"/g)) {
      expect(m[1]).toMatch(/^(#|figures\/[\w.-]+\.(svg|png|vl\.json)$|data:image\/png;base64,)/);
    }
  });

  it('marks every number with a data-key that resolves in results.json to the same number', () => {
    const html = renderReportHtml(report);
    const results = reportResults(report);
    const spans = [...html.matchAll(/<span class="num" data-key="([^"]+)">([^<]*)<\/span>/g)];
    expect(spans.length).toBeGreaterThan(40);
    const shown = new Set<string>();
    for (const [, key, text] of spans) {
      const pointer = decode(key!);
      const value = resolveJsonPointer(results, pointer);
      expect(value === null || typeof value === 'number', pointer).toBe(true);
      expect(decode(text!), pointer).toBe(formatNumber(value as number | null));
      shown.add(pointer);
    }
    // ... and every number in results.json is shown somewhere.
    expect(new Set(numberPointers(results))).toEqual(shown);
  });

  it('keeps full precision and nulls in results.json', () => {
    const results = reportResults(report);
    expect(results.sections.summary!.numbers.bestR).toBe(0.987654321);
    expect(results.sections.summary!.tables.errors!.values['pop-ode']!.r).toBeNull();
    expect(results.sections.summary!.tables.errors!.values.refreshed!.steps).toBeNull();
    expect(results.meta).toEqual({ dataset: 'synthetic', seed: 7, points: 450, learningRate: 0.05 });
    const fig = results.sections.checkpoints!.figures['predicted-vs-actual']!;
    expect(fig.files).toEqual({
      svg: 'figures/predicted-vs-actual.svg',
      png: 'figures/predicted-vs-actual.png',
      spec: 'figures/predicted-vs-actual.vl.json',
    });
    expect(JSON.parse(JSON.stringify(results))).toEqual(results);
  });

  it('inlines each figure once, with SVG ids scoped so no two elements share an id', () => {
    const html = renderReportHtml(report);
    const figures = report.sections.flatMap((s) => s.figures ?? []);
    for (const f of figures) expect(html.split(`data-figure-id="${f.id}"`).length - 1).toBe(1);
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
    expect(ids.length).toBeGreaterThan(figures.length);
    expect(new Set(ids).size).toBe(ids.length);
    for (const m of html.matchAll(/url\(#([^)]+)\)/g)) expect(ids).toContain(m[1]);
  });

  it('scopes ids and their references', () => {
    const svg =
      '<svg><clipPath id="clip1"><rect/></clipPath><g clip-path="url(#clip1)"/><use xlink:href="#clip1"/><a href="#other"/></svg>';
    expect(scopeSvgIds(svg, 'f')).toBe(
      '<svg><clipPath id="f-clip1"><rect/></clipPath><g clip-path="url(#f-clip1)"/><use xlink:href="#f-clip1"/><a href="#other"/></svg>',
    );
  });

  it('escapes text and validates ids, keys and placeholders', () => {
    const html = renderReportHtml({
      title: '<script>alert(1)</script>',
      sections: [{ id: 's', title: 'a & b' }],
    });
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('a &amp; b');
    const figure = report.sections[1]!.figures![0]!;
    expect(() =>
      renderReportHtml({
        title: 't',
        sections: [
          { id: 'a', title: 'A', figures: [figure] },
          { id: 'b', title: 'B', figures: [figure] },
        ],
      }),
    ).toThrow(/figure ids \(across the report\): expected unique keys/);
    expect(() => renderReportHtml({ title: 't', sections: [{ id: '1 bad', title: 'x' }] })).toThrow(
      /report\.sections\[0\]\.id: expected an id matching/,
    );
    expect(() =>
      renderReportHtml({ title: 't', sections: [{ id: 's', title: 'x', text: 'r = {r}' }] }),
    ).toThrow(/report\.sections\[0\]\.text: expected placeholders among the keys/);
    expect(() =>
      renderReportHtml({
        title: 't',
        sections: [
          {
            id: 's',
            title: 'x',
            tables: [
              {
                id: 't',
                columns: [{ key: 'a', label: 'A' }],
                rows: [
                  { key: 'r', label: 'R', values: {} },
                  { key: 'r', label: 'R2', values: {} },
                ],
              },
            ],
          },
        ],
      }),
    ).toThrow(/rows\[\]\.key: expected unique keys/);
  });
});

describe('formatTableText', () => {
  it('aligns labels left and numbers right, with units in the header', () => {
    const table = report.sections[0]!.tables![0]!;
    const text = formatTableText(table);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('Prediction error by method');
    expect(lines[1]).toMatch(/^\s+mean abs\. error \(nats\)\s+Pearson r\s+steps$/);
    expect(lines[3]).toMatch(/^one-step\s+0\.01235\s+0\.9123\s+1$/);
    expect(lines[5]).toMatch(/^POP-ODE\s+2\.5e-7\s+n\/a\s+300$/);
    const widths = new Set(lines.slice(1).map((l) => l.length));
    expect(widths.size).toBe(1);
  });
});

describe('writeReport', () => {
  it('writes report.html, results.json and every figure as SVG, PNG and spec, leaving other files alone', async () => {
    const dir = path.join(tmp, 'run');
    await fs.mkdir(path.join(dir, 'checkpoints'), { recursive: true });
    await fs.writeFile(path.join(dir, 'config.json'), '{"keep": true}');
    const written = await writeReport(dir, report, { pngOptions: { scale: 1 } });
    const html = await fs.readFile(written.html, 'utf8');
    expect(html).toBe(renderReportHtml(report));
    const results = JSON.parse(await fs.readFile(written.resultsFile, 'utf8'));
    expect(results).toEqual(written.results);
    const figures: Figure[] = report.sections.flatMap((s) => s.figures ?? []);
    expect(written.figures.map((f) => f.id)).toEqual(figures.map((f) => f.id));
    for (const [i, f] of written.figures.entries()) {
      const svg = await fs.readFile(f.svg, 'utf8');
      expect(svg.startsWith('<?xml')).toBe(true);
      expect(svg).toContain(figures[i]!.svg);
      const png = await fs.readFile(f.png!);
      expect([...png.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
      expect(pngSize(png).width).toBe(Math.round(figures[i]!.width));
      expect(JSON.parse(await fs.readFile(f.spec!, 'utf8'))).toEqual(
        JSON.parse(JSON.stringify(figures[i]!.spec)),
      );
    }
    expect(await fs.readFile(path.join(dir, 'config.json'), 'utf8')).toBe('{"keep": true}');
    expect((await fs.readdir(dir)).sort()).toEqual([
      'checkpoints',
      'config.json',
      'figures',
      'report.html',
      'results.json',
    ]);
    expect((await fs.readdir(path.join(dir, 'figures'))).filter((f) => f.startsWith('.'))).toEqual([]);

    // A second write replaces figures/ whole: stale figures disappear.
    const smaller: Report = { ...report, sections: [report.sections[0]!, report.sections[3]!] };
    await writeReport(dir, smaller, { png: false, spec: false });
    expect(await fs.readdir(path.join(dir, 'figures'))).toEqual(['ternary.svg']);
    const html2 = await fs.readFile(path.join(dir, 'report.html'), 'utf8');
    expect(html2).not.toContain('figures/ternary.png');
    expect(html2).toContain('href="figures/ternary.svg"');
  });

  it('refuses to replace a report.html or figures/ that entk did not write, changing nothing', async () => {
    const dir = path.join(tmp, 'foreign');
    await fs.mkdir(path.join(dir, 'figures'), { recursive: true });
    await fs.writeFile(path.join(dir, 'report.html'), '<p>mine</p>');
    await fs.writeFile(path.join(dir, 'figures', 'plot.svg'), '<svg/>');
    await expect(writeReport(dir, report, { png: false })).rejects.toThrow(
      /^dir: expected a directory without report.html, results.json, figures, or with a report written by entk \(.* holds report.html, figures, which entk did not write; nothing was changed\)/,
    );
    expect(await fs.readFile(path.join(dir, 'report.html'), 'utf8')).toBe('<p>mine</p>');
    expect(await fs.readdir(path.join(dir, 'figures'))).toEqual(['plot.svg']);
    expect((await fs.readdir(dir)).sort()).toEqual(['figures', 'report.html']);
  });
});
