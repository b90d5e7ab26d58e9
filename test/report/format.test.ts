import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  escapeHtml,
  fillTemplate,
  formatNumber,
  jsonPointer,
  parseTemplate,
  resolveJsonPointer,
} from '../../src/report/index.js';
import { fitLogLog } from '../../src/util/stats.js';

describe('formatNumber', () => {
  it('shows integers in full, others with 4 significant digits, exponent form outside [1e-3, 1e6)', () => {
    expect(formatNumber(4096)).toBe('4096');
    expect(formatNumber(-3)).toBe('-3');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(-0)).toBe('0');
    expect(formatNumber(0.97312)).toBe('0.9731');
    expect(formatNumber(0.5)).toBe('0.5');
    expect(formatNumber(12.3456)).toBe('12.35');
    expect(formatNumber(999999.5)).toBe('1e6');
    expect(formatNumber(1234567.89)).toBe('1.235e6');
    expect(formatNumber(2.5e-7)).toBe('2.5e-7');
    expect(formatNumber(-0.00034567)).toBe('-3.457e-4');
    expect(formatNumber(0.001)).toBe('0.001');
    expect(formatNumber(1e7)).toBe('1e7');
  });
  it('shows n/a for null and non-finite values', () => {
    for (const v of [null, undefined, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(formatNumber(v)).toBe('n/a');
    }
  });
  it('never loses more than half a unit in the last shown digit', () => {
    for (const v of [0.123456, 98765.4321, 3.14159e-9, -2.71828e12, 1 / 3, 1e-3 * 0.99999]) {
      const text = formatNumber(v);
      const [mantissa, exponent = '0'] = text.split('e');
      const decimals = mantissa!.includes('.') ? mantissa!.split('.')[1]!.length : 0;
      const ulp = 10 ** (Number(exponent) - decimals);
      expect(Math.abs(Number(text) - v)).toBeLessThanOrEqual(ulp / 2 + Math.abs(v) * 1e-12);
    }
  });
});

describe('JSON pointers', () => {
  it('escapes "~" and "/" and resolves back', () => {
    const doc = { sections: { 'a/b': { '~x': [10, { y: 2 }] } } };
    const pointer = jsonPointer(['sections', 'a/b', '~x', '1', 'y']);
    expect(pointer).toBe('/sections/a~1b/~0x/1/y');
    expect(resolveJsonPointer(doc, pointer)).toBe(2);
    expect(resolveJsonPointer(doc, '/sections/missing')).toBeUndefined();
    expect(resolveJsonPointer(doc, '')).toBe(doc);
  });
});

describe('templates', () => {
  it('splits text and placeholders, with {{ }} as literal braces', () => {
    expect(parseTemplate('r = {r} over {n} {{pairs}}')).toEqual([
      { text: 'r = ' },
      { key: 'r' },
      { text: ' over ' },
      { key: 'n' },
      { text: ' {pairs}' },
    ]);
    expect(fillTemplate('r = {r_pop-mu}, n = {n}', { 'r_pop-mu': 0.987654, n: 12 })).toBe(
      'r = 0.9877, n = 12',
    );
  });
  it('rejects unknown placeholders and unclosed braces, naming the template', () => {
    expect(() => fillTemplate('{nope}', { r: 1 })).toThrow(InvalidArgumentError);
    expect(() => fillTemplate('{nope}', { r: 1 })).toThrow(/template: expected placeholders among \{r\}/);
    expect(() => parseTemplate('a {b')).toThrow(/every "\{" closed/);
  });
  it('escapes HTML', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

describe('fitLogLog', () => {
  it('recovers an exact power law', () => {
    const x = [0.01, 0.02, 0.05, 0.1, 0.4];
    const fit = fitLogLog(
      x,
      x.map((v) => 3 * v ** 1.5),
    );
    expect(fit.slope).toBeCloseTo(1.5, 12);
    expect(fit.intercept).toBeCloseTo(Math.log10(3), 12);
    expect(fit.r2).toBeCloseTo(1, 12);
    expect(fit).toMatchObject({ n: 5, dropped: 0 });
  });
  it('matches the closed-form least squares on noisy data and drops non-positive points', () => {
    const x = [1, 10, 100, 1000, -5, 50];
    const y = [1, 0.5, 0.1, 0.04, 3, 0];
    // log10 points (0,0), (1,-0.30103), (2,-1), (3,-1.39794): slope = Σ dx dy / Σ dx².
    const lx = [0, 1, 2, 3];
    const ly = [0, Math.log10(0.5), -1, Math.log10(0.04)];
    const mx = 1.5;
    const my = ly.reduce((a, b) => a + b) / 4;
    const slope =
      lx.reduce((s, v, i) => s + (v - mx) * (ly[i]! - my), 0) / lx.reduce((s, v) => s + (v - mx) ** 2, 0);
    const fit = fitLogLog(x, y);
    expect(fit.slope).toBeCloseTo(slope, 12);
    expect(fit.intercept).toBeCloseTo(my - slope * mx, 12);
    expect(fit).toMatchObject({ n: 4, dropped: 2 });
    expect(fit.r2).toBeGreaterThan(0.9);
    expect(fit.r2).toBeLessThan(1);
  });
  it('needs two usable points with distinct x', () => {
    expect(() => fitLogLog([1, -1], [1, 1])).toThrow(/at least two points with x > 0 and y > 0/);
    expect(() => fitLogLog([2, 2], [1, 3])).toThrow(/two distinct positive values/);
  });
});
