/**
 * Colour-blind-safe colours: the Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"),
 * distinguishable under the common colour-vision deficiencies. Methods get fixed colours and dash
 * patterns so a method looks the same in every figure; sequential data use viridis and signed data
 * the blue–orange diverging scheme (both colour-blind safe).
 */

/** Okabe–Ito colours, in the order categories use them (yellow last: weak on white). */
export const OKABE_ITO = [
  '#0072B2', // blue
  '#E69F00', // orange
  '#009E73', // bluish green
  '#D55E00', // vermillion
  '#CC79A7', // reddish purple
  '#56B4E9', // sky blue
  '#000000', // black
  '#F0E442', // yellow
] as const;

/** Fixed colours for the methods the toolkit compares (keys compared case-insensitively). */
const METHOD_COLOURS: Record<string, string> = {
  actual: '#000000',
  'one-step': '#E69F00',
  'pop-mu': '#0072B2',
  'pop-ode': '#D55E00',
  refreshed: '#009E73',
};

/** Fixed dash patterns: actual solid, predictors dashed/dotted in distinct patterns. */
const METHOD_DASHES: Record<string, number[]> = {
  actual: [1, 0],
  'one-step': [1.5, 2.5],
  'pop-mu': [7, 3],
  'pop-ode': [3, 2],
  refreshed: [8, 3, 2, 3],
};

const SPARE_COLOURS = ['#CC79A7', '#56B4E9', '#E69F00', '#009E73', '#0072B2', '#D55E00', '#F0E442'];
const SPARE_DASHES = [
  [5, 5],
  [1, 3],
  [10, 2, 2, 2],
  [4, 2, 1, 2],
];

/**
 * Colours for a list of method names: known methods (actual, one-step, POP-MU, POP-ODE, refreshed)
 * keep their fixed colour, others take unused Okabe–Ito colours in order.
 */
export function methodColours(methods: readonly string[]): string[] {
  const used = new Set(methods.map((m) => METHOD_COLOURS[m.toLowerCase()]).filter(Boolean));
  const spare = SPARE_COLOURS.filter((c) => !used.has(c));
  let k = 0;
  return methods.map(
    (m) => METHOD_COLOURS[m.toLowerCase()] ?? spare[k++ % Math.max(1, spare.length)] ?? '#777777',
  );
}

/** Dash patterns for a list of method names (actual solid; known predictors fixed; others cycle). */
export function methodDashes(methods: readonly string[]): number[][] {
  let k = 0;
  return methods.map((m) => METHOD_DASHES[m.toLowerCase()] ?? SPARE_DASHES[k++ % SPARE_DASHES.length]!);
}

/** Colours for `n` categories (labels/classes): Okabe–Ito, then Vega's tableau20 beyond eight. */
export function categoryColours(n: number): string[] {
  if (n <= OKABE_ITO.length) return OKABE_ITO.slice(0, n);
  const tableau20 = [
    '#4c78a8',
    '#9ecae9',
    '#f58518',
    '#ffbf79',
    '#54a24b',
    '#88d27a',
    '#b79a20',
    '#f2cf5b',
    '#439894',
    '#83bcb6',
    '#e45756',
    '#ff9d98',
    '#79706e',
    '#bab0ac',
    '#d67195',
    '#fcbfd2',
    '#b279a2',
    '#d6a5c9',
    '#9e765f',
    '#d8b5a5',
  ];
  return Array.from({ length: n }, (_, i) =>
    i < OKABE_ITO.length ? OKABE_ITO[i]! : tableau20[(i - OKABE_ITO.length) % 20]!,
  );
}
