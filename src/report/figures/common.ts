/** Input checks and small helpers shared by the figure functions. */
import { assertArgument, InvalidArgumentError } from '../../errors.js';
import { type Numeric, Rng } from '../../util/index.js';

/** Check that `value` is an array-like of numbers (of `length` when given). */
export function checkNumeric(name: string, value: unknown, length?: number): asserts value is Numeric {
  const ok =
    value != null &&
    (Array.isArray(value) || ArrayBuffer.isView(value)) &&
    typeof (value as ArrayLike<unknown>).length === 'number';
  if (!ok) throw new InvalidArgumentError(name, value, 'an array or typed array of numbers');
  if (length != null && (value as ArrayLike<number>).length !== length) {
    throw new InvalidArgumentError(name, value, `length ${length}`);
  }
}

/** Check a positive integer option (at least `min`, default 1). */
export function checkPositiveInteger(name: string, value: number, min = 1): void {
  assertArgument(
    Number.isInteger(value) && value >= min && value > 0,
    name,
    value,
    min > 1 ? `an integer >= ${min}` : 'a positive integer',
  );
}

/** The smallest `max` of evenIndices: it keeps the first and the last index. */
export const MIN_EVEN_INDICES = 2;

/** A key-safe version of a name for `numbers` keys: lower case, runs of other characters → '-'. */
export function slug(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return s || 'series';
}

/** Check that names are unique (and non-empty); `what` names the argument in the error. */
export function checkUniqueNames(what: string, names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    assertArgument(typeof name === 'string' && name.length > 0, what, name, 'non-empty names');
    assertArgument(!seen.has(slug(name)), what, name, 'names that differ after lower-casing/slugging');
    seen.add(slug(name));
  }
}

/**
 * Indices to display when a series has more than `max` items: a seeded uniform random sample,
 * returned in increasing order (all indices when n ≤ max).
 */
export function sampleIndices(n: number, max: number, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= max) return all;
  return new Rng(seed)
    .shuffle(all)
    .slice(0, max)
    .sort((a, b) => a - b);
}

/** At most `max` evenly spaced indices of [0, n), always including the first and the last. */
export function evenIndices(n: number, max: number): number[] {
  checkPositiveInteger('max', max, MIN_EVEN_INDICES);
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const out = new Set<number>();
  for (let k = 0; k < max; k++) out.add(Math.round((k * (n - 1)) / (max - 1)));
  return [...out].sort((a, b) => a - b);
}

/** A caption from its sentences: the non-empty ones (e.g. a conditional '' or an absent note), space-joined. */
export function joinSentences(sentences: readonly (string | undefined)[]): string {
  return sentences.filter(Boolean).join(' ');
}

/** Round for embedding in a spec (keeps SVG/JSON small; 6 significant digits is far below a pixel). */
export function round6(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}
