/**
 * Ternary plots: trajectories of three-class distributions on the 2-simplex (the replicator
 * picture). Barycentric coordinates are projected to the plane by hand and drawn as Vega-Lite
 * lines and points: the triangle, light grid lines, vertex labels, one path per (point, method).
 */
import type { TopLevelSpec } from 'vega-lite';
import { assertArgument } from '../../errors.js';
import type { Numeric } from '../../util/index.js';
import { methodColours, methodDashes } from '../palette.js';
import { baseConfig, type Figure, type FigureOptions, makeFigure } from '../render.js';
import {
  checkNumeric,
  checkPositiveInteger,
  checkUniqueNames,
  evenIndices,
  joinSentences,
  MIN_EVEN_INDICES,
  round6,
  slug,
} from './common.js';

const H = Math.sqrt(3) / 2;

/** Plane positions of the simplex vertices e0, e1, e2: (0, 0), (1, 0), (1/2, √3/2). */
export const TERNARY_VERTICES: readonly (readonly [number, number])[] = [
  [0, 0],
  [1, 0],
  [0.5, H],
];

/**
 * Project a distribution (p0, p1, p2) on the 2-simplex to the plane: the barycentric combination
 * p0·v0 + p1·v1 + p2·v2 of {@link TERNARY_VERTICES}, i.e. x = p1 + p2/2, y = (√3/2)·p2, after
 * normalising by p0 + p1 + p2. The vertices map to themselves, the centroid (1/3, 1/3, 1/3) to
 * (1/2, √3/6).
 */
export function ternaryProject(p0: number, p1: number, p2: number): [number, number] {
  const s = p0 + p1 + p2;
  assertArgument(
    Number.isFinite(s) && s > 0 && p0 >= 0 && p1 >= 0 && p2 >= 0,
    'p',
    [p0, p1, p2],
    'three non-negative numbers with a positive sum',
  );
  return [(p1 + p2 / 2) / s, (H * p2) / s];
}

/** One path on the simplex: a point's distribution over steps under one method. */
export interface TernaryTrajectory {
  /** The point followed (paths of the same point share a start). */
  point: string;
  /** Method: 'actual', 'POP-MU', 'POP-ODE', ... (colour and dash per method). */
  method: string;
  /** Distributions over steps, row-major [T, 3] (each row sums to 1). */
  probabilities: Numeric;
}

/** Options for {@link ternaryFigure}. */
export interface TernaryOptions extends FigureOptions {
  /** Names of the three labels at the vertices e0 (bottom left), e1 (bottom right), e2 (top). */
  vertexLabels: [string, string, string];
  /** The paths (at least one). */
  trajectories: TernaryTrajectory[];
  /** Grid lines at multiples of 0.2 for each coordinate. Default true. */
  grid?: boolean;
  /** Write each point's name next to its start. Default: when there are at most 6 points. */
  labelPoints?: boolean;
  /** Most steps drawn per path (evenly spaced, first and last kept). Default 300. (`height` is ignored: it follows from `width` for an equal aspect ratio.) */
  maxStepsPerPath?: number;
}

/**
 * Trajectories of three-class distributions π(·|x) on the 2-simplex: each vertex is certainty in
 * one label, the centre the uniform distribution. Colour and dash = method; hollow circle = start,
 * filled circle = end.
 *
 * numbers: `points` (distinct points), `paths`, `steps` (most rows in a path), and with an
 * 'actual' method `finalDistance_<method>` = mean over points of the total-variation distance
 * ½‖π_method − π_actual‖₁ at the last step.
 */
export async function ternaryFigure(options: TernaryOptions): Promise<Figure> {
  const { vertexLabels, trajectories, grid = true, maxStepsPerPath = 300, width = 380 } = options;
  checkPositiveInteger('maxStepsPerPath', maxStepsPerPath, MIN_EVEN_INDICES);
  assertArgument(
    Array.isArray(vertexLabels) && vertexLabels.length === 3,
    'vertexLabels',
    vertexLabels,
    'three label names',
  );
  assertArgument(
    Array.isArray(trajectories) && trajectories.length > 0,
    'trajectories',
    trajectories,
    'a non-empty array of { point, method, probabilities }',
  );
  const methods: string[] = [];
  const pointNames: string[] = [];
  const paths: { point: string; method: string; order: number; x: number; y: number }[] = [];
  const starts: { point: string; method: string; x: number; y: number }[] = [];
  const ends: { point: string; method: string; x: number; y: number }[] = [];
  const finals = new Map<string, Float64Array>(); // `${point}\u0000${method}` → last distribution
  let maxSteps = 0;
  const seen = new Set<string>();
  for (const [k, tr] of trajectories.entries()) {
    checkNumeric(`trajectories[${k}].probabilities`, tr.probabilities);
    const T = tr.probabilities.length / 3;
    assertArgument(
      Number.isInteger(T) && T > 0,
      `trajectories[${k}].probabilities`,
      tr.probabilities,
      'a non-empty [T, 3] row-major array',
    );
    const key = `${tr.point}\u0000${tr.method}`;
    assertArgument(
      !seen.has(key),
      `trajectories[${k}]`,
      { point: tr.point, method: tr.method },
      'one path per (point, method)',
    );
    seen.add(key);
    if (!methods.includes(tr.method)) methods.push(tr.method);
    if (!pointNames.includes(tr.point)) pointNames.push(tr.point);
    maxSteps = Math.max(maxSteps, T);
    const rows = evenIndices(T, maxStepsPerPath);
    for (const t of rows) {
      const p = tr.probabilities;
      const [x, y] = ternaryProject(p[3 * t]!, p[3 * t + 1]!, p[3 * t + 2]!);
      paths.push({ point: tr.point, method: tr.method, order: t, x: round6(x), y: round6(y) });
    }
    const first = paths[paths.length - rows.length]!;
    const last = paths[paths.length - 1]!;
    starts.push({ point: tr.point, method: tr.method, x: first.x, y: first.y });
    ends.push({ point: tr.point, method: tr.method, x: last.x, y: last.y });
    const s =
      tr.probabilities[3 * (T - 1)]! +
      tr.probabilities[3 * (T - 1) + 1]! +
      tr.probabilities[3 * (T - 1) + 2]!;
    finals.set(
      key,
      Float64Array.from([0, 1, 2], (i) => tr.probabilities[3 * (T - 1) + i]! / s),
    );
  }
  checkUniqueNames('trajectories[].method', methods);

  // Frame: triangle, grid lines p_i = 0.2, 0.4, 0.6, 0.8, vertex labels.
  const frame: { line: string; order: number; x: number; y: number }[] = [];
  const tri = [0, 1, 2, 0].map((i) => TERNARY_VERTICES[i]!);
  for (const [order, [x, y]] of tri.entries())
    frame.push({ line: 'edge', order, x: round6(x), y: round6(y) });
  const gridLines: typeof frame = [];
  if (grid) {
    for (const level of [0.2, 0.4, 0.6, 0.8]) {
      for (let i = 0; i < 3; i++) {
        // The segment where p_i = level: between (p_i=level, p_j=1-level) and (p_i=level, p_k=1-level).
        const j = (i + 1) % 3;
        const k = (i + 2) % 3;
        const a = [0, 0, 0];
        const b = [0, 0, 0];
        a[i] = level;
        a[j] = 1 - level;
        b[i] = level;
        b[k] = 1 - level;
        const [ax, ay] = ternaryProject(a[0]!, a[1]!, a[2]!);
        const [bx, by] = ternaryProject(b[0]!, b[1]!, b[2]!);
        const line = `grid-${i}-${level}`;
        gridLines.push(
          { line, order: 0, x: round6(ax), y: round6(ay) },
          { line, order: 1, x: round6(bx), y: round6(by) },
        );
      }
    }
  }
  const vertexText = [
    { x: 0, y: 0, text: vertexLabels[0], align: 'right', dx: -6, dy: 12 },
    { x: 1, y: 0, text: vertexLabels[1], align: 'left', dx: 6, dy: 12 },
    { x: 0.5, y: H, text: vertexLabels[2], align: 'center', dx: 0, dy: -10 },
  ] as const;

  // Equal aspect ratio: the same data-units-per-pixel on both axes.
  const xDomain = [-0.2, 1.2];
  const yDomain = [-0.12, H + 0.1];
  const height = Math.round((width * (yDomain[1]! - yDomain[0]!)) / (xDomain[1]! - xDomain[0]!));
  const x = (field: string) => ({
    field,
    type: 'quantitative' as const,
    scale: { domain: xDomain, nice: false, zero: false },
    axis: null,
  });
  const y = (field: string) => ({
    field,
    type: 'quantitative' as const,
    scale: { domain: yDomain, nice: false, zero: false },
    axis: null,
  });
  const colour = {
    field: 'method',
    type: 'nominal' as const,
    title: 'method',
    scale: { domain: methods, range: methodColours(methods) },
    legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 300 },
  };
  const labelPoints = options.labelPoints ?? pointNames.length <= 6;
  const actualStarts = pointNames.map((name) => starts.find((s) => s.point === name)!);

  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>['layer']> = [
    {
      data: { values: gridLines },
      mark: { type: 'line', color: '#e3e3e3', strokeWidth: 1 },
      encoding: {
        x: x('x'),
        y: y('y'),
        detail: { field: 'line', type: 'nominal' },
        order: { field: 'order' },
      },
    },
    {
      data: { values: frame },
      mark: { type: 'line', color: '#555555', strokeWidth: 1.4 },
      encoding: { x: x('x'), y: y('y'), order: { field: 'order' } },
    },
    ...vertexText.map((v) => ({
      data: { values: [{ x: v.x, y: v.y }] },
      mark: {
        type: 'text' as const,
        text: v.text,
        align: v.align,
        dx: v.dx,
        dy: v.dy,
        fontSize: 13,
        color: '#222222',
      },
      encoding: { x: x('x'), y: y('y') },
    })),
    {
      data: { values: paths },
      mark: { type: 'line', strokeWidth: 2, opacity: 0.9 },
      encoding: {
        x: x('x'),
        y: y('y'),
        order: { field: 'order' },
        detail: { field: 'point', type: 'nominal' },
        color: colour,
        strokeDash: {
          field: 'method',
          type: 'nominal',
          title: 'method',
          scale: { domain: methods, range: methodDashes(methods) },
          legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 300 },
        },
      },
    },
    {
      data: { values: starts },
      mark: { type: 'point', filled: false, size: 50, strokeWidth: 1.5 },
      encoding: { x: x('x'), y: y('y'), color: colour },
    },
    {
      data: { values: ends },
      mark: { type: 'point', filled: true, size: 50 },
      encoding: { x: x('x'), y: y('y'), color: colour },
    },
  ];
  if (labelPoints) {
    layers.push({
      data: { values: actualStarts },
      mark: { type: 'text', align: 'left', dx: 7, dy: -7, fontSize: 10, color: '#444444' },
      encoding: { x: x('x'), y: y('y'), text: { field: 'point' } },
    });
  }
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    layer: layers,
    config: { ...baseConfig(), view: { stroke: null } },
  };

  const numbers: Record<string, number | null> = {
    points: pointNames.length,
    paths: trajectories.length,
    steps: maxSteps,
  };
  const distanceParts: string[] = [];
  const actualMethod = methods.find((m) => m.toLowerCase() === 'actual');
  if (actualMethod) {
    for (const method of methods) {
      if (method === actualMethod) continue;
      let sum = 0;
      let count = 0;
      for (const point of pointNames) {
        const a = finals.get(`${point}\u0000${actualMethod}`);
        const b = finals.get(`${point}\u0000${method}`);
        if (!a || !b) continue;
        sum += 0.5 * (Math.abs(a[0]! - b[0]!) + Math.abs(a[1]! - b[1]!) + Math.abs(a[2]! - b[2]!));
        count++;
      }
      if (count === 0) continue;
      const key = `finalDistance_${slug(method)}`;
      numbers[key] = sum / count;
      distanceParts.push(`${method} {${key}}`);
    }
  }
  const captionTemplate = joinSentences([
    `Each of the {paths} paths is the label distribution π(· | x) of one of {points} points moving on the probability simplex over up to {steps} recorded steps (hollow circle: start, filled circle: end).`,
    `A vertex means certainty in that label (${vertexLabels.join(', ')}); the centre is the uniform distribution; grey lines mark probabilities 0.2, 0.4, 0.6, 0.8.`,
    `Colour and line style give the method (${methods.join(', ')}); a prediction is good where its path follows the actual one.`,
    distanceParts.length > 0
      ? `Mean total-variation distance to the actual distribution at the last step: ${distanceParts.join(', ')}.`
      : '',
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'ternary',
    titleTemplate: options.title ?? 'Replicator picture: trajectories on the simplex',
    captionTemplate,
    numbers,
    spec,
  });
}
