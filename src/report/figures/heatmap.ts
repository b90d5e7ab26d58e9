/**
 * The kernel as a heatmap with rows and columns sorted by class.
 *
 * Downsampling: a kernel larger than `maxCells` (default 200) rows is shown as block averages.
 * After sorting, with block size b = ceil(size / maxCells), cell (I, J) is the mean of the sorted
 * entries K[r, c] for r in [I·b, min((I+1)·b, size)) and c likewise (the last block may be
 * smaller); there are ceil(size / b) ≤ maxCells cells per side. Blocks may straddle a class
 * boundary; the boundary lines are drawn at the exact sorted positions.
 *
 * The cells are embedded as one inline PNG (data: URL) inside the Vega SVG, at least 600 pixels a
 * side with nearest-neighbour upsampling so every renderer shows sharp cells; the image spans
 * exactly the sorted rows [0, size). Axes, class boundaries and the colour legend are ordinary
 * Vega marks.
 */
import * as vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import { assertArgument, InvalidArgumentError } from '../../errors.js';
import type { Numeric } from '../../util/index.js';
import { encodePngRgb } from '../png.js';
import { baseConfig, type Figure, type FigureOptions, makeFigure } from '../render.js';
import { checkNumeric, checkPositiveInteger, joinSentences, round6 } from './common.js';

/** Default (and recommended maximum) number of cells per side. */
export const DEFAULT_MAX_CELLS = 200;

/** Stable order of row indices sorted by class (ties keep their original order). */
export function classSortedOrder(classes: Numeric): number[] {
  return Array.from({ length: classes.length }, (_, i) => i).sort(
    (a, b) => classes[a]! - classes[b]! || a - b,
  );
}

/**
 * Block-average a square `size` × `size` row-major matrix after permuting rows and columns by
 * `order` (sorted row r is original row order[r]). Returns `cells` × `cells` means (row-major,
 * float64), cells = ceil(size / block); see the module comment for the block boundaries.
 */
export function blockAverage(
  matrix: Numeric,
  size: number,
  order: readonly number[],
  block: number,
): { cells: number; data: Float64Array } {
  checkPositiveInteger('size', size);
  checkPositiveInteger('block', block);
  checkNumeric('matrix', matrix, size * size);
  assertArgument(order.length === size, 'order', order, `a permutation of length ${size}`);
  const cells = Math.ceil(size / block);
  // cellOf[r] = block of original row r after sorting; walking the matrix in its stored order keeps
  // memory access sequential (the permuted walk is several times slower on large kernels).
  const cellOf = new Int32Array(size).fill(-1);
  for (let sorted = 0; sorted < size; sorted++) {
    const original = order[sorted]!;
    assertArgument(
      Number.isInteger(original) && original >= 0 && original < size && cellOf[original] === -1,
      'order',
      order,
      `a permutation of 0..${size - 1}`,
    );
    cellOf[original] = Math.floor(sorted / block);
  }
  const sum = new Float64Array(cells * cells);
  for (let r = 0; r < size; r++) {
    const rowBase = cellOf[r]! * cells;
    const offset = r * size;
    for (let c = 0; c < size; c++) sum[rowBase + cellOf[c]!] += matrix[offset + c]!;
  }
  // Block I holds min(block, size − I·block) rows.
  const rowsIn = (I: number) => Math.min(block, size - I * block);
  for (let I = 0; I < cells; I++) {
    for (let J = 0; J < cells; J++) sum[I * cells + J] /= rowsIn(I) * rowsIn(J);
  }
  return { cells, data: sum };
}

/** Options for {@link kernelHeatmapFigure}. */
export interface KernelHeatmapOptions extends FigureOptions {
  /** Square kernel matrix, row-major, `size` × `size` (trace kernel [N, N] or full [N·V, N·V], point-major). */
  kernel: Numeric;
  /** Number of rows (= columns) of `kernel`. */
  size: number;
  /** Class of each point (length size / outputsPerPoint); rows are sorted by it (stable). */
  classes: Numeric;
  /** Kernel rows per point: 1 for a trace kernel, V for a full kernel (row n·V + i belongs to point n). Default 1. */
  outputsPerPoint?: number;
  /** Class names, indexed by class value. Default: the class value as text. */
  classNames?: string[];
  /** Most cells per side; larger kernels are block-averaged. Default {@link DEFAULT_MAX_CELLS} (200). */
  maxCells?: number;
  /** Colour legend title (keep it short). Default 'tr K / V' (trace kernel) or 'K entry' (full kernel). */
  valueTitle?: string;
  /** What the kernel is, for the caption. Default 'The empirical NTK'. */
  kernelDescription?: string;
}

function parseColour(text: string): [number, number, number] {
  const rgb = /rgb\(\s*(\d+),\s*(\d+),\s*(\d+)/.exec(text);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  const hex = /^#([0-9a-f]{6})$/i.exec(text);
  if (hex) {
    const v = Number.parseInt(hex[1]!, 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  throw new Error(`unexpected colour from the Vega scheme: ${text}`);
}

/**
 * Class-sorted kernel heatmap (downsampled to ≤ maxCells × maxCells block averages). Sequential
 * viridis for non-negative kernels; blue–orange diverging, symmetric about 0, when entries are
 * negative. White lines separate the classes; tick labels name each class at its block's centre.
 *
 * numbers: `size`, `blockSize`, `cells`, `min`, `max` (over all entries), `meanWithin` (mean entry
 * over pairs of the same class, diagonal included), `meanBetween` (pairs of different classes;
 * null with one class).
 */
export async function kernelHeatmapFigure(options: KernelHeatmapOptions): Promise<Figure> {
  const {
    kernel,
    size,
    classes,
    outputsPerPoint = 1,
    maxCells = DEFAULT_MAX_CELLS,
    width = 400,
    height = 400,
  } = options;
  checkPositiveInteger('size', size);
  checkPositiveInteger('outputsPerPoint', outputsPerPoint);
  checkPositiveInteger('maxCells', maxCells);
  checkNumeric('kernel', kernel, size * size);
  assertArgument(
    size % outputsPerPoint === 0,
    'size',
    size,
    `a multiple of outputsPerPoint (${outputsPerPoint})`,
  );
  checkNumeric('classes', classes, size / outputsPerPoint);
  const rowClass = new Float64Array(size);
  for (let r = 0; r < size; r++) {
    const c = classes[Math.floor(r / outputsPerPoint)]!;
    assertArgument(Number.isInteger(c) && c >= 0, 'classes', classes, 'non-negative integer class values');
    rowClass[r] = c;
  }
  const classNames = options.classNames;
  const nameOf = (c: number) => classNames?.[c] ?? String(c);

  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let within = 0;
  let nWithin = 0;
  let between = 0;
  let nBetween = 0;
  for (let r = 0; r < size; r++) {
    const cr = rowClass[r];
    for (let c = 0; c < size; c++) {
      const v = kernel[r * size + c]!;
      if (!Number.isFinite(v)) {
        throw new InvalidArgumentError('kernel', kernel, `finite entries (entry [${r}, ${c}] is ${v})`);
      }
      if (v < min) min = v;
      if (v > max) max = v;
      if (cr === rowClass[c]) {
        within += v;
        nWithin++;
      } else {
        between += v;
        nBetween++;
      }
    }
  }

  const order = classSortedOrder(rowClass);
  const block = Math.ceil(size / maxCells);
  const { cells, data } = blockAverage(kernel, size, order, block);

  // Colour scale shared by the raster and the Vega legend.
  const diverging = min < 0;
  const bound = Math.max(Math.abs(min), Math.abs(max)) || 1;
  const domain = diverging ? [-bound, bound] : min < max ? [min, max] : [min - 1, min + 1];
  const schemeName = diverging ? 'blueorange' : 'viridis';
  const interpolate = vega.scheme(schemeName) as (t: number) => string;
  const upscale = Math.max(1, Math.ceil(600 / cells));
  const px = cells * upscale;
  const rgb = new Uint8Array(px * px * 3);
  const palette = new Map<number, [number, number, number]>();
  const colourAt = (v: number) => {
    const t = Math.min(1, Math.max(0, (v - domain[0]!) / (domain[1]! - domain[0]!)));
    const q = Math.round(t * 1023);
    let c = palette.get(q);
    if (!c) {
      c = parseColour(interpolate(q / 1023));
      palette.set(q, c);
    }
    return c;
  };
  // Pixel p (of px) shows sorted row floor(p·size/px), i.e. cell floor(row / block): the image spans
  // exactly [0, size) rows, so a smaller last block is drawn narrower and class lines stay exact.
  const cellOfPixel = Int32Array.from({ length: px }, (_, p) =>
    Math.floor(Math.floor((p * size) / px) / block),
  );
  for (let y = 0; y < px; y++) {
    const I = cellOfPixel[y]!;
    for (let x = 0; x < px; x++) rgb.set(colourAt(data[I * cells + cellOfPixel[x]!]!), (y * px + x) * 3);
  }
  const url = `data:image/png;base64,${encodePngRgb(px, px, rgb).toString('base64')}`;

  const boundaries: number[] = [];
  const mids: number[] = [];
  const names: string[] = [];
  let start = 0;
  for (let r = 1; r <= size; r++) {
    if (r === size || rowClass[order[r]!] !== rowClass[order[start]!]) {
      mids.push((start + r) / 2);
      names.push(nameOf(rowClass[order[start]!]!));
      if (r < size) boundaries.push(r);
      start = r;
    }
  }
  const labelExpr = `${JSON.stringify(names)}[indexof(${JSON.stringify(mids)}, datum.value)]`;
  const rowsTitle = outputsPerPoint === 1 ? 'points sorted by class' : `(point, output) rows sorted by class`;
  const axis = (title: string) => ({
    title,
    values: mids,
    labelExpr,
    grid: false,
    ticks: true,
    labelOverlap: true as const,
    labelFontSize: names.length > 12 ? 9 : 11,
  });
  const scale = (reverse: boolean) => ({ domain: [0, size], nice: false, zero: false, reverse });
  const valueTitle = options.valueTitle ?? (outputsPerPoint === 1 ? 'tr K / V' : 'K entry');

  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    layer: [
      {
        data: { values: [{}] },
        mark: {
          type: 'image',
          url,
          width,
          height,
          align: 'left',
          baseline: 'top',
          aspect: false,
          smooth: false,
        },
        encoding: {
          x: { datum: 0, type: 'quantitative', scale: scale(false), axis: axis(rowsTitle) },
          y: { datum: 0, type: 'quantitative', scale: scale(true), axis: axis(rowsTitle) },
        },
      },
      {
        data: { values: boundaries.map((b) => ({ b })) },
        mark: { type: 'rule', color: 'white', strokeWidth: 1, opacity: 0.9 },
        encoding: { x: { field: 'b', type: 'quantitative' } },
      },
      {
        data: { values: boundaries.map((b) => ({ b })) },
        mark: { type: 'rule', color: 'white', strokeWidth: 1, opacity: 0.9 },
        encoding: { y: { field: 'b', type: 'quantitative' } },
      },
      {
        // Invisible marks carrying the colour scale, so Vega draws the matching gradient legend.
        data: { values: domain.map((v) => ({ v: round6(v) })) },
        mark: { type: 'point', opacity: 0 },
        encoding: {
          color: {
            field: 'v',
            type: 'quantitative',
            title: valueTitle,
            scale: { scheme: schemeName, domain: domain.map(round6), nice: false, zero: false },
            legend: { gradientLength: Math.min(height, 260), titleLimit: 400 },
          },
        },
      },
    ],
    config: baseConfig(),
  };
  const points = size / outputsPerPoint;
  const numbers: Record<string, number | null> = {
    points,
    size,
    blockSize: block,
    cells,
    min,
    max,
    meanWithin: nWithin > 0 ? within / nWithin : null,
    meanBetween: nBetween > 0 ? between / nBetween : null,
  };
  const colourWords = diverging
    ? 'orange is positive, blue negative, white zero (the colour scale is symmetric about 0)'
    : 'yellow is high, dark purple low';
  const captionTemplate = joinSentences([
    `${options.kernelDescription ?? 'The empirical NTK'} over {points} points as a {size} × {size} matrix, rows and columns sorted by class; white lines separate the classes, tick labels name them.`,
    block === 1
      ? 'Each cell is one kernel entry.'
      : 'Each cell is the mean of a {blockSize} × {blockSize} block of entries ({cells} × {cells} cells; the last block of a row may be smaller).',
    `Colour is the kernel value: ${colourWords}; entries range from {min} to {max}.`,
    'A bright block diagonal means the kernel couples points of the same class more strongly than points of different classes:',
    numbers.meanBetween == null
      ? 'mean entry within the class {meanWithin}.'
      : 'mean entry within a class {meanWithin}, between classes {meanBetween}.',
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'kernel-heatmap',
    titleTemplate: options.title ?? 'Class-sorted kernel',
    captionTemplate,
    numbers,
    spec,
  });
}
