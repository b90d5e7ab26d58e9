import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { describe, expect, it, vi } from 'vitest';
import {
  blockAverage,
  classSortedOrder,
  discretisationVsStepSizeFigure,
  errorOverStepsFigure,
  kernelDriftFigure,
  kernelHeatmapFigure,
  lazinessVsWidthFigure,
  PNG_SIGNATURE,
  pngSize,
  predictedVsActualFigure,
  svgToPng,
  TERNARY_VERTICES,
  ternaryFigure,
  ternaryProject,
  trajectoriesFigure,
} from '../../src/report/index.js';
import { pearson } from '../../src/util/stats.js';
import {
  allFigures,
  driftData,
  errorData,
  kernelData,
  scatterData,
  slopeData,
  ternaryData,
  trajectoryData,
} from './fixtures.js';
import { countItems, markGroups, parseSvg, svgTexts } from './svg-helpers.js';

const H = Math.sqrt(3) / 2;

/** Points "x,y" of an SVG path made of M/L commands. */
function pathPoints(d: string): [number, number][] {
  return [...d.matchAll(/[ML]\s*(-?[\d.e-]+),\s*(-?[\d.e-]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** translate(x,y) of each symbol item in a mark group. */
function symbolPositions(group: string): [number, number][] {
  return [...group.matchAll(/<path transform="translate\((-?[\d.e-]+),(-?[\d.e-]+)\)"/g)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
}

describe('predictedVsActualFigure', () => {
  it('draws every pair, the identity line corner to corner, axis titles and r', async () => {
    const series = scatterData(300);
    const fig = await predictedVsActualFigure({ series, width: 380, height: 380 });
    parseSvg(fig.svg);
    expect(countItems(fig.svg, 'layer_1_marks')).toBe(900);
    const texts = svgTexts(fig.svg);
    expect(texts).toContain('actual Δ log π (nats)');
    expect(texts).toContain('predicted Δ log π (nats)');
    for (const s of series) {
      const key = s.name.toLowerCase();
      expect(fig.numbers[`r_${key}`]).toBeCloseTo(pearson(s.predicted, s.actual), 14);
      expect(fig.numbers[`n_${key}`]).toBe(300);
      expect(texts).toContain(s.name); // legend entry
    }
    expect(texts.some((t) => /^POP-MU: r = 0\.\d+$/.test(t))).toBe(true);
    expect(fig.caption).toContain('Pearson r: one-step');
    // Identity line: shared domains on a square plot put it from the bottom-left to the top-right corner.
    const line = /<path[^>]* d="([^"]+)"/.exec(markGroups(fig.svg, 'layer_0_marks')[0]!)![1]!;
    const pts = pathPoints(line);
    expect(pts[0]![0]).toBeCloseTo(0, 6);
    expect(pts[0]![1]).toBeCloseTo(380, 6);
    expect(pts.at(-1)![0]).toBeCloseTo(380, 6);
    expect(pts.at(-1)![1]).toBeCloseTo(0, 6);
  });

  it('puts r in the title for one series, subsamples the drawing but not r, drops non-finite pairs', async () => {
    const { predicted, actual } = scatterData(500)[1]!;
    const p = Float64Array.from(predicted);
    p[7] = Number.NaN;
    const fig = await predictedVsActualFigure({
      series: [{ name: 'POP-MU', predicted: p, actual }],
      maxPoints: 100,
    });
    const keep = Array.from({ length: 500 }, (_, i) => i).filter((i) => i !== 7);
    const r = pearson(
      keep.map((i) => p[i]!),
      keep.map((i) => actual[i]!),
    );
    expect(fig.numbers).toMatchObject({ 'n_pop-mu': 499, 'shown_pop-mu': 100, 'dropped_pop-mu': 1 });
    expect(fig.numbers['r_pop-mu']).toBeCloseTo(r, 14);
    expect(fig.title).toBe(`Predicted vs actual Δ log π (r = ${r.toPrecision(4).replace(/0+$/, '')})`);
    expect(countItems(fig.svg, 'layer_1_marks')).toBe(100);
    expect(fig.caption).toContain('a random sample of 100 of the 499 pairs');
  });

  it('names the bad argument', async () => {
    await expect(
      predictedVsActualFigure({ series: [{ name: 'a', predicted: [1, 2, 3], actual: [1, 2] }] }),
    ).rejects.toThrow(/series\[0\]\.actual: expected length 3/);
    await expect(predictedVsActualFigure({ series: [] })).rejects.toThrow(
      /series: expected a non-empty array/,
    );
  });
});

describe('trajectoriesFigure', () => {
  it('draws one line per (point, label, method) with labels, methods and panel titles', async () => {
    const data = trajectoryData(4, 60, 3);
    const fig = await trajectoriesFigure({ ...data, labelsPerPoint: 3 });
    parseSvg(fig.svg);
    expect(countItems(fig.svg, 'child_marks')).toBe(3 * 3 * 4);
    const texts = svgTexts(fig.svg);
    for (const p of data.points) expect(texts).toContain(p.name);
    for (const m of ['actual', 'POP-MU', 'POP-ODE', 'refreshed']) expect(texts).toContain(m);
    expect(texts).toContain('finetune step (SGD updates)');
    expect(texts).toContain('π(label | x) (probability)');
    expect(fig.numbers.points).toBe(3);
  });

  it('picks the labels reaching the highest actual probability plus the true label; gaps by hand', async () => {
    // actual: peaks per label [0.4, 0.3, 0.3, 0.4] → top two [0, 3]; true label 2 replaces the last.
    const actual = [0.1, 0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.1];
    const popmu = [0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25];
    const fig = await trajectoriesFigure({
      steps: [0, 10],
      numLabels: 4,
      labelsPerPoint: 2,
      points: [
        {
          name: 'p',
          trueLabel: 2,
          series: [
            { method: 'actual', probabilities: actual },
            { method: 'POP-MU', probabilities: popmu },
          ],
        },
      ],
    });
    expect(fig.numbers.labelsShown).toBe(2);
    const texts = svgTexts(fig.svg);
    expect(texts).toContain('label 0');
    expect(texts).toContain('label 2');
    expect(texts).not.toContain('label 3');
    // Last step, labels {2, 0}: |0.25 − 0.2| = 0.05, |0.25 − 0.4| = 0.15.
    expect(fig.numbers['finalGap_pop-mu']).toBeCloseTo(0.15, 14);
    expect(countItems(fig.svg, 'child_marks')).toBe(4);

    const logFig = await trajectoriesFigure({
      steps: [0, 10],
      numLabels: 2,
      value: 'logProbability',
      points: [{ name: 'q', series: [{ method: 'actual', probabilities: [1, 0, 0.5, 0.5] }] }],
    });
    expect(svgTexts(logFig.svg)).toContain('log π(label | x) (nats)');
    expect(logFig.spec.data).toMatchObject({
      values: expect.arrayContaining([expect.objectContaining({ value: -30 })]),
    });
  });

  it('checks shapes', async () => {
    await expect(
      trajectoriesFigure({
        steps: [0, 1],
        numLabels: 3,
        points: [{ name: 'p', series: [{ method: 'a', probabilities: [1, 0, 0] }] }],
      }),
    ).rejects.toThrow(/points\[0\]\.series\[0\]\.probabilities: expected length 6/);
  });
});

describe('errorOverStepsFigure and kernelDriftFigure', () => {
  it('draws one line per predictor with its last value in the caption', async () => {
    const data = errorData(60);
    const fig = await errorOverStepsFigure(data);
    parseSvg(fig.svg);
    expect(countItems(fig.svg, 'marks')).toBe(4);
    const texts = svgTexts(fig.svg);
    for (const s of data.series) {
      expect(texts).toContain(s.name);
      expect(fig.numbers[`final_${s.name.toLowerCase()}`]).toBe(s.values.at(-1));
    }
    expect(texts).toContain('finetune step (SGD updates)');
    expect(texts).toContain('mean |predicted − actual| log π (nats)');
    expect(fig.numbers.lastStep).toBe(295);
  });

  it('caption: against the network by default; subject, x axis and reading are parameters (POP-MU vs POP-ODE over time)', async () => {
    const data = errorData(20);
    const fig = await errorOverStepsFigure(data);
    expect(fig.caption).toContain('Error of each predictor against the real network over the finetune:');
    expect(fig.caption).toContain('at each step (x)');
    expect(fig.caption).toContain('At the last step (');
    const gap = await errorOverStepsFigure({
      ...data,
      subject: 'Gap between POP-MU and POP-ODE (no network in this figure)',
      xName: 'time t = n·η',
      stepTitle: 'time t = n·η',
      reading: 'Halving η should halve a line.',
    });
    expect(gap.caption).toMatch(
      /^Gap between POP-MU and POP-ODE \(no network in this figure\): .* at each time t = n·η \(x\)\. Halving η should halve a line\. At the last time t = n·η \(\d+\): /,
    );
    expect(gap.caption).not.toContain('real network');
    expect(gap.caption).not.toContain('last step');
  });

  it('sorts checkpoints by step and reports the last drift', async () => {
    const drift = driftData().reverse();
    const fig = await kernelDriftFigure({ checkpoints: drift });
    parseSvg(fig.svg);
    expect(fig.numbers).toMatchObject({
      checkpoints: 5,
      lastStep: 800,
      finalRelativeChange: 0.3,
      finalKernelDistance: 0.05,
    });
    const texts = svgTexts(fig.svg);
    expect(texts).toContain('training step of checkpoint');
    expect(texts).toContain('drift from K_0 (dimensionless)');
    // Two lines (one per measure) with a dot at each of the five checkpoints, steps 0..800 across 460 px.
    expect(countItems(fig.svg, 'layer_0_marks')).toBe(2);
    const dots = symbolPositions(markGroups(fig.svg, 'layer_1_marks')[0]!);
    expect(dots).toHaveLength(10);
    expect(new Set(dots.map(([x]) => x))).toEqual(new Set([0, 57.5, 115, 230, 460]));
  });
});

describe('kernel heatmap maths', () => {
  it('sorts by class stably', () => {
    expect(classSortedOrder([2, 0, 1, 0, 2, 1])).toEqual([1, 3, 2, 5, 0, 4]);
  });

  it('block-averages like a hand computation, the last block smaller', () => {
    const n = 5;
    const m = Float64Array.from({ length: n * n }, (_, k) => 10 * Math.floor(k / n) + (k % n)); // M[i][j] = 10 i + j
    const id = [0, 1, 2, 3, 4];
    const { cells, data } = blockAverage(m, n, id, 2);
    expect(cells).toBe(3);
    expect(data[0]).toBeCloseTo((0 + 1 + 10 + 11) / 4, 14);
    expect(data[2]).toBeCloseTo((4 + 14) / 2, 14);
    expect(data[6]).toBeCloseTo((40 + 41) / 2, 14);
    expect(data[8]).toBe(44);
    const reversed = blockAverage(m, n, [4, 3, 2, 1, 0], 2);
    expect(reversed.data[0]).toBeCloseTo((44 + 43 + 34 + 33) / 4, 14);
    expect(reversed.data[8]).toBe(0);
  });

  it('sizes blocks as ceil(size / maxCells) and reports within/between-class means', async () => {
    const { kernel, size, classes, classNames } = kernelData(90, 5, 6);
    const fig = await kernelHeatmapFigure({ kernel, size, classes, classNames });
    expect(fig.numbers).toMatchObject({ size: 450, points: 450, blockSize: 3, cells: 150 });
    let within = 0;
    let nw = 0;
    let between = 0;
    let nb = 0;
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        if (classes[i] === classes[j]) {
          within += kernel[i * size + j]!;
          nw++;
        } else {
          between += kernel[i * size + j]!;
          nb++;
        }
      }
    }
    expect(fig.numbers.meanWithin).toBeCloseTo(within / nw, 10);
    expect(fig.numbers.meanBetween).toBeCloseTo(between / nb, 10);
    parseSvg(fig.svg);
    const texts = svgTexts(fig.svg);
    for (const name of classNames) expect(texts).toContain(name);
    expect(texts).toContain('points sorted by class');
    // Four class boundaries, drawn as rules both ways.
    expect(countItems(fig.svg, 'layer_1_marks')).toBe(4);
    expect(countItems(fig.svg, 'layer_2_marks')).toBe(4);
    // Classes of 90 sorted rows: boundaries at rows 90, 180, 270, 360 of 450 → x = 80, 160, 240, 320 px.
    const xs = [...markGroups(fig.svg, 'layer_1_marks')[0]!.matchAll(/translate\(([\d.]+),0\)/g)].map((m) =>
      Number(m[1]),
    );
    expect(xs).toEqual([80, 160, 240, 320]);
    // One raster image, no per-cell marks.
    expect(fig.svg.match(/<image\b/g)?.length).toBe(1);
    expect(fig.svg.length).toBeLessThan(300_000);

    const odd = await kernelHeatmapFigure({
      kernel: new Float64Array(401 * 401).fill(1),
      size: 401,
      classes: new Int32Array(401),
    });
    expect(odd.numbers).toMatchObject({ blockSize: 3, cells: 134, meanBetween: null });
  });

  it('colours each cell by its block mean (raster decoded by resvg)', async () => {
    // 6 points, 2 classes interleaved; maxCells 3 → blocks of 2 sorted rows.
    const size = 6;
    const classes = [1, 0, 1, 0, 1, 0];
    const kernel = Float64Array.from({ length: 36 }, (_, k) => Math.floor(k / 6) + 0.1 * (k % 6));
    const fig = await kernelHeatmapFigure({ kernel, size, classes, maxCells: 3, width: 300, height: 300 });
    expect(fig.numbers).toMatchObject({ blockSize: 2, cells: 3 });
    const url = /xlink:href="(data:image\/png;base64,[^"]+)"/.exec(fig.svg)![1]!;
    const png = Buffer.from(url.split(',')[1]!, 'base64');
    const { width: px } = pngSize(png);
    expect(px).toBeGreaterThanOrEqual(600);
    const img = new Resvg(
      `<svg xmlns="http://www.w3.org/2000/svg" width="${px}" height="${px}"><image href="${url}" width="${px}" height="${px}"/></svg>`,
    ).render();
    const order = classSortedOrder(classes);
    const { data } = blockAverage(kernel, size, order, 2);
    const min = Math.min(...kernel);
    const max = Math.max(...kernel);
    const scheme = vega.scheme('viridis') as (t: number) => string;
    for (let I = 0; I < 3; I++) {
      for (let J = 0; J < 3; J++) {
        const expected = scheme((data[I * 3 + J]! - min) / (max - min))
          .match(/\d+/g)!
          .map(Number);
        const y = Math.floor(((I + 0.5) * px) / 3);
        const x = Math.floor(((J + 0.5) * px) / 3);
        const o = (y * px + x) * 4;
        const got = [img.pixels[o]!, img.pixels[o + 1]!, img.pixels[o + 2]!];
        for (let c = 0; c < 3; c++) expect(Math.abs(got[c]! - expected[c]!)).toBeLessThanOrEqual(3);
      }
    }
  });

  it('uses a diverging scale symmetric about 0 for signed kernels', async () => {
    const fig = await kernelHeatmapFigure({ kernel: [2, -1, -1, 0.5], size: 2, classes: [0, 1] });
    const spec = JSON.stringify(fig.spec);
    expect(spec).toContain('"scheme":"blueorange","domain":[-2,2]');
    expect(fig.numbers).toMatchObject({ min: -1, max: 2, meanWithin: 1.25, meanBetween: -1 });
    await expect(kernelHeatmapFigure({ kernel: [1, 2, 3], size: 2, classes: [0, 1] })).rejects.toThrow(
      /kernel: expected length 4/,
    );
  });
});

describe('log–log slope figures', () => {
  it('fits the slope of an exact power law and draws points, fit and reference', async () => {
    const etas = [0.4, 0.2, 0.1, 0.05];
    const fig = await discretisationVsStepSizeFigure({ etas, errors: etas.map((e) => 0.3 * e) });
    parseSvg(fig.svg);
    expect(fig.numbers.slope).toBeCloseTo(1, 12);
    expect(fig.numbers.r2).toBeCloseTo(1, 12);
    expect(fig.numbers.referenceSlope).toBe(1);
    expect(fig.title).toBe('Discretisation error vs step size (slope 1)');
    expect(fig.caption).toMatch(/= -0.5229 \+ 1 · log10 x \(R² = 1 in log space\)/);
    expect(countItems(fig.svg, 'layer_1_marks')).toBe(4);
    expect(countItems(fig.svg, 'layer_0_marks')).toBe(2); // fitted line + reference line
    const texts = svgTexts(fig.svg);
    expect(texts).toContain('step size |η| (learning rate)');
    expect(texts).toContain('POP-MU vs POP-ODE, max |Δ log π| (nats)');
    expect(texts).toContain('least-squares fit: slope 1');
    expect(texts).toContain('theory: slope 1, error O(η)');
  });

  it('reports the width slope and leaves out non-positive gaps', async () => {
    const { widths } = slopeData();
    // An exact power law w^-0.5 with one gap zeroed: dropping it leaves the exact slope.
    const g = widths.map((w) => 0.8 * w ** -0.5);
    g[0] = 0;
    const fig = await lazinessVsWidthFigure({ widths, gaps: g });
    expect(fig.numbers).toMatchObject({ n: 6, dropped: 1, referenceSlope: -0.5 });
    expect(fig.numbers.slope).toBeCloseTo(-0.5, 12);
    expect(fig.caption).toContain('1 points with non-positive values');
    expect(svgTexts(fig.svg)).toContain('hidden width (units per layer)');
  });
});

describe('ternary projection and figure', () => {
  it('maps vertices to the triangle corners and the centroid to (1/2, √3/6)', () => {
    expect(ternaryProject(1, 0, 0)).toEqual([...TERNARY_VERTICES[0]!]);
    expect(ternaryProject(0, 1, 0)).toEqual([...TERNARY_VERTICES[1]!]);
    const [x2, y2] = ternaryProject(0, 0, 1);
    expect(x2).toBeCloseTo(0.5, 15);
    expect(y2).toBeCloseTo(H, 15);
    const [cx, cy] = ternaryProject(1 / 3, 1 / 3, 1 / 3);
    expect(cx).toBeCloseTo(0.5, 15);
    expect(cy).toBeCloseTo(Math.sqrt(3) / 6, 15);
    // Unnormalised input, edge midpoint, and a point equidistant from all three sides.
    expect(ternaryProject(2, 2, 2)[0]).toBeCloseTo(0.5, 15);
    const [mx, my] = ternaryProject(0, 0.5, 0.5);
    expect(mx).toBeCloseTo(0.75, 15);
    expect(my).toBeCloseTo(H / 2, 15);
    // Barycentric identity: the projection is Σ p_i v_i.
    const p = [0.2, 0.3, 0.5];
    const [px, py] = ternaryProject(p[0]!, p[1]!, p[2]!);
    expect(px).toBeCloseTo(
      p.reduce((s, w, i) => s + w * TERNARY_VERTICES[i]![0], 0),
      15,
    );
    expect(py).toBeCloseTo(
      p.reduce((s, w, i) => s + w * TERNARY_VERTICES[i]![1], 0),
      15,
    );
    expect(() => ternaryProject(-0.1, 0.5, 0.6)).toThrow(/p: expected three non-negative numbers/);
  });

  it('rejects a step budget below 2 (first and last step) naming the option', async () => {
    await expect(ternaryFigure({ ...ternaryData(2, 10), maxStepsPerPath: 1 })).rejects.toThrow(
      /maxStepsPerPath: expected an integer >= 2/,
    );
    await expect(errorOverStepsFigure({ ...errorData(10), maxStepsPerLine: 1 })).rejects.toThrow(
      /maxStepsPerLine: expected an integer >= 2/,
    );
  });

  it('draws the triangle, vertex labels, one path per (point, method), markers where the maths puts them', async () => {
    const data = ternaryData(3, 40);
    const fig = await ternaryFigure(data);
    parseSvg(fig.svg);
    const texts = svgTexts(fig.svg);
    for (const label of data.vertexLabels) expect(texts).toContain(label);
    expect(countItems(fig.svg, 'layer_1_marks')).toBe(1); // triangle
    expect(countItems(fig.svg, 'layer_5_marks')).toBe(9); // paths
    expect(countItems(fig.svg, 'layer_6_marks')).toBe(9); // starts
    expect(fig.numbers).toMatchObject({ points: 3, paths: 9, steps: 40 });

    // A path from the top vertex to the bottom-right one: start marker at the apex, end at the corner.
    const width = 380;
    const simple = await ternaryFigure({
      width,
      vertexLabels: ['a', 'b', 'c'],
      trajectories: [
        { point: 'x', method: 'actual', probabilities: [0, 0, 1, 0, 1, 0] },
        { point: 'x', method: 'POP-MU', probabilities: [0, 0, 1, 0.5, 0.5, 0] },
      ],
    });
    const height = Math.round((width * (H + 0.22)) / 1.4);
    const toPx = (x: number, y: number) => [
      ((x + 0.2) / 1.4) * width,
      height * (1 - (y + 0.12) / (H + 0.22)),
    ];
    const [start] = symbolPositions(markGroups(simple.svg, 'layer_6_marks')[0]!);
    const ends = symbolPositions(markGroups(simple.svg, 'layer_7_marks')[0]!);
    const [sx, sy] = toPx(0.5, H);
    expect(start![0]).toBeCloseTo(sx!, 1);
    expect(start![1]).toBeCloseTo(sy!, 1);
    const [ex, ey] = toPx(1, 0);
    expect(ends.some(([x, y]) => Math.abs(x - ex!) < 0.1 && Math.abs(y - ey!) < 0.1)).toBe(true);
    // Total-variation distance between (0, 1, 0) and (0.5, 0.5, 0) is 0.5.
    expect(simple.numbers['finalDistance_pop-mu']).toBeCloseTo(0.5, 15);
  });
});

describe('every figure kind', () => {
  it('compiles and renders without Vega or Vega-Lite warnings', async () => {
    const warn = vi.spyOn(console, 'warn');
    const log = vi.spyOn(console, 'log');
    try {
      const figures = await allFigures();
      expect(figures).toHaveLength(8);
      expect(new Set(figures.map((f) => f.id)).size).toBe(8);
      expect(warn).not.toHaveBeenCalled();
      expect(log).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
      log.mockRestore();
    }
  });
});

describe('PNG', () => {
  it('starts with the PNG signature and has the requested size', async () => {
    const fig = await errorOverStepsFigure(errorData(10));
    const png = svgToPng(fig, { width: 640 });
    expect([...png.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    const size = pngSize(png);
    expect(size.width).toBe(640);
    expect(Math.abs(size.height - (640 * fig.height) / fig.width)).toBeLessThanOrEqual(1);
    const double = pngSize(svgToPng(fig));
    expect(double.width).toBe(Math.round(2 * fig.width));
    expect(() => svgToPng(fig, { width: 0 })).toThrow(/width: expected an integer in \[1, 16384\]/);
  });
});
