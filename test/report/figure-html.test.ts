// figureHtml: a figure as an HTML fragment for notebooks (the public replacement of escapeHtml).
import { describe, expect, it } from 'vitest';
import * as entk from '../../src/index.js';
import { figureHtml, makeFigure } from '../../src/report/index.js';

describe('figureHtml', async () => {
  // a layered chart: Vega gives its marks clip paths with ids (id="clip…"), referenced by url(#…)
  const figure = await makeFigure({
    id: 'demo',
    titleTemplate: 'a < b & "c" at {x}',
    captionTemplate: "caption with <script>alert('x')</script>",
    numbers: { x: 0.5 },
    spec: {
      width: 120,
      height: 80,
      data: { values: [{ a: 1, b: 2 }] },
      layer: [{ mark: { type: 'point', clip: true }, encoding: { x: { field: 'a' }, y: { field: 'b' } } }],
    },
  });

  it('escapes the title and caption, and inlines the SVG', () => {
    const html = figureHtml(figure);
    expect(html).toMatch(/^<figure style="display:inline-block;[^"]*max-width:\d+px">/);
    expect(html).toContain('a &lt; b &amp; &quot;c&quot; at 0.5');
    expect(html).toContain('caption with &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;');
    expect(html).not.toContain('<script>');
    expect(html).toContain('<svg');
    expect(html.endsWith('</figcaption></figure>')).toBe(true);
  });

  it('takes another caption or title, and scopes the SVG ids per fragment', () => {
    const a = figureHtml(figure, { caption: 'mine & yours', title: 'T' });
    expect(a).toContain('>mine &amp; yours</figcaption>');
    expect(a).toContain('>T</figcaption>');
    const b = figureHtml(figure);
    const ids = (html: string) => [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
    expect(ids(a).length).toBeGreaterThan(0);
    const shared = ids(a).filter((id) => ids(b).includes(id));
    expect(shared).toEqual([]);
    // every url(#…) reference points at an id of its own fragment
    for (const html of [a, b]) {
      for (const m of html.matchAll(/url\(#([^)]+)\)/g)) expect(ids(html)).toContain(m[1]);
    }
  });

  it('is public, while the helpers behind it are not', () => {
    expect(typeof entk.figureHtml).toBe('function');
    for (const name of [
      'escapeHtml',
      'encodePngRgb',
      'PNG_SIGNATURE',
      'pngSize',
      'scopeSvgIds',
      'fillTemplate',
    ]) {
      expect(name in entk, name).toBe(false);
    }
  });
});
