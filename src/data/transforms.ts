/**
 * Pure functions on Datasets: seeded stratified splits and samples, subsets by index or id,
 * standardisation, reshaping. Every function returns a new Dataset (fresh arrays) and never mutates
 * its input; ids, labels and text always travel with their examples.
 */
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { Rng } from '../util/index.js';
import type { Dataset, Standardization } from './types.js';

/** Number of examples. */
export function numExamples(ds: Dataset): number {
  return ds.y.length;
}

/** Features per example: prod(inputShape). */
export function featureSize(ds: Dataset): number {
  return ds.inputShape.reduce((a, b) => a * b, 1);
}

/** Examples per class, length V (classNames.length). */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.classNames.length).fill(0);
  for (let i = 0; i < ds.y.length; i++) counts[ds.y[i]!]!++;
  return counts;
}

/**
 * The examples at `indices` (0-based, distinct), in the order given. x: [indices.length, ...inputShape].
 */
export function subset(ds: Dataset, indices: readonly number[]): Dataset {
  const n = numExamples(ds);
  const d = featureSize(ds);
  const seen = new Uint8Array(n);
  for (const i of indices) {
    assertArgument(Number.isInteger(i) && i >= 0 && i < n, 'indices', i, `distinct integers in [0, ${n})`);
    if (seen[i]) throw new InvalidArgumentError('indices', i, 'distinct indices (this one is repeated)');
    seen[i] = 1;
  }
  const m = indices.length;
  const x = new Float32Array(m * d);
  const y = new Int32Array(m);
  indices.forEach((i, r) => {
    x.set(ds.x.subarray(i * d, (i + 1) * d), r * d);
    y[r] = ds.y[i]!;
  });
  const out: Dataset = {
    name: ds.name,
    ids: indices.map((i) => ds.ids[i]!),
    x,
    y,
    inputShape: [...ds.inputShape],
    classNames: [...ds.classNames],
    featureNames: [...ds.featureNames],
  };
  if (ds.text) out.text = indices.map((i) => ds.text![i]!);
  return out;
}

/**
 * The examples with the given ids, in the order given. Throws naming the ids not in `ds` (and
 * repeated ids).
 */
export function selectByIds(ds: Dataset, ids: readonly string[]): Dataset {
  const position = new Map<string, number>(ds.ids.map((id, i) => [id, i]));
  const missing = ids.filter((id) => !position.has(id));
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).map((id) => JSON.stringify(id));
    throw new InvalidArgumentError(
      'ids',
      `${missing.length} unknown id${missing.length > 1 ? 's' : ''}: ${shown.join(', ')}${missing.length > 5 ? ', ...' : ''}`,
      `ids of dataset ${JSON.stringify(ds.name)} (e.g. ${ds.ids
        .slice(0, 2)
        .map((id) => JSON.stringify(id))
        .join(', ')})`,
    );
  }
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new InvalidArgumentError('ids', id, 'distinct ids (this one is repeated)');
    seen.add(id);
  }
  return subset(
    ds,
    ids.map((id) => position.get(id)!),
  );
}

/** Indices of each class's examples, in dataset order: result[c] lists the examples of class c. */
function indicesByClass(ds: Dataset): number[][] {
  const groups: number[][] = ds.classNames.map(() => []);
  for (let i = 0; i < ds.y.length; i++) groups[ds.y[i]!]!.push(i);
  return groups;
}

/** Options of stratifiedSplit. */
export interface SplitOptions {
  /** Fraction of examples that go to the test split, in (0, 1). */
  testFraction: number;
  /** Seed of the split (the same dataset, fraction and seed always give the same split). */
  seed: number;
}

/**
 * Seeded stratified train/test split. round(n * testFraction) examples go to test; each class c
 * contributes floor(n_c * f) of them plus at most one more (the remaining ones go to the classes with
 * the largest fractional parts, ties to the lower class index), so every class's test count is within
 * one example of n_c * f. Which examples of class c go to test is a seeded shuffle of that class
 * alone (Rng(seed).fork('split/class-c')). Both splits keep the dataset's original order.
 */
export function stratifiedSplit(ds: Dataset, o: SplitOptions): { train: Dataset; test: Dataset } {
  assertArgument(
    Number.isFinite(o.testFraction) && o.testFraction > 0 && o.testFraction < 1,
    'testFraction',
    o.testFraction,
    'a number in (0, 1)',
  );
  assertArgument(Number.isInteger(o.seed) && o.seed >= 0, 'seed', o.seed, 'a non-negative integer');
  const n = numExamples(ds);
  const f = o.testFraction;
  const total = Math.round(n * f);
  if (total < 1 || total > n - 1) {
    throw new InvalidArgumentError(
      'testFraction',
      f,
      `a fraction giving at least one train and one test example out of ${n} (round(${n} * f) = ${total})`,
    );
  }
  const groups = indicesByClass(ds);
  const quotas = groups.map((g) => g.length * f);
  const counts = quotas.map((q) => Math.floor(q));
  let remaining = total - counts.reduce((a, b) => a + b, 0);
  const order = quotas
    .map((q, c) => ({ c, frac: q - Math.floor(q) }))
    .filter(({ c }) => counts[c]! < groups[c]!.length)
    .sort((a, b) => b.frac - a.frac || a.c - b.c);
  for (const { c } of order) {
    if (remaining <= 0) break;
    counts[c]!++;
    remaining--;
  }
  const root = new Rng(o.seed);
  const isTest = new Uint8Array(n);
  groups.forEach((g, c) => {
    const shuffled = root.fork(`split/class-${c}`).shuffle([...g]);
    for (let k = 0; k < counts[c]!; k++) isTest[shuffled[k]!] = 1;
  });
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < n; i++) (isTest[i] ? test : train).push(i);
  return { train: subset(ds, train), test: subset(ds, test) };
}

/**
 * `perClass` examples of every class, chosen by a seeded shuffle of each class
 * (Rng(seed).fork('sample/class-c')), in the dataset's original order. Throws if a class has fewer.
 */
export function stratifiedSample(ds: Dataset, perClass: number, seed: number): Dataset {
  assertArgument(Number.isInteger(perClass) && perClass >= 1, 'perClass', perClass, 'an integer ≥ 1');
  assertArgument(Number.isInteger(seed) && seed >= 0, 'seed', seed, 'a non-negative integer');
  const groups = indicesByClass(ds);
  const root = new Rng(seed);
  const chosen: number[] = [];
  groups.forEach((g, c) => {
    if (g.length < perClass) {
      throw new InvalidArgumentError(
        'perClass',
        perClass,
        `at most ${g.length}, the number of examples of class ${JSON.stringify(ds.classNames[c])} in ${JSON.stringify(ds.name)}`,
      );
    }
    chosen.push(
      ...root
        .fork(`sample/class-${c}`)
        .shuffle([...g])
        .slice(0, perClass),
    );
  });
  return subset(
    ds,
    chosen.sort((a, b) => a - b),
  );
}

/**
 * Per-feature mean and standard deviation of `train` (population std, divisor n, computed in
 * float64; feature k is x[i * d + k], whatever inputShape is). A constant feature (std 0, or below
 * 1e-12 * max(1, |mean|)) gets std 1, so standardising maps it to 0 instead of dividing by zero.
 * Fit on the training split only and apply the result to every split.
 */
export function fitStandardization(train: Dataset): Standardization {
  const n = numExamples(train);
  const d = featureSize(train);
  assertArgument(n >= 1, 'train', `${n} examples`, 'at least one example');
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k]! += train.x[i * d + k]!;
  for (let k = 0; k < d; k++) mean[k]! /= n;
  const variance = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) {
      const delta = train.x[i * d + k]! - mean[k]!;
      variance[k]! += delta * delta;
    }
  }
  const std = Array.from(variance, (v, k) => {
    const s = Math.sqrt(v / n);
    return s > 1e-12 * Math.max(1, Math.abs(mean[k]!)) ? s : 1;
  });
  return { mean: Array.from(mean), std };
}

/** x' = (x - mean) / std per feature (float64 arithmetic, stored as float32); a new Dataset. */
export function applyStandardization(ds: Dataset, st: Standardization): Dataset {
  const n = numExamples(ds);
  const d = featureSize(ds);
  assertArgument(
    st.mean.length === d && st.std.length === d,
    'standardization',
    `mean/std of length ${st.mean.length}/${st.std.length}`,
    `length ${d} (features of ${JSON.stringify(ds.name)})`,
  );
  for (let k = 0; k < d; k++) {
    assertArgument(Number.isFinite(st.mean[k]), `standardization.mean[${k}]`, st.mean[k], 'a finite number');
    assertArgument(
      Number.isFinite(st.std[k]) && st.std[k]! > 0,
      `standardization.std[${k}]`,
      st.std[k],
      '> 0',
    );
  }
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) x[i * d + k] = (ds.x[i * d + k]! - st.mean[k]!) / st.std[k]!;
  }
  return { ...copyMeta(ds), x };
}

/**
 * The same examples with each input reshaped to `shape` (prod(shape) must equal the current feature
 * size), e.g. withInputShape(digits, [8, 8, 1]) for the CNN; x keeps its row-major order.
 */
export function withInputShape(ds: Dataset, shape: readonly number[]): Dataset {
  assertArgument(
    Array.isArray(shape) && shape.length >= 1 && shape.every((s) => Number.isInteger(s) && s >= 1),
    'shape',
    shape,
    'a non-empty list of positive integers',
  );
  const size = shape.reduce((a, b) => a * b, 1);
  const d = featureSize(ds);
  assertArgument(
    size === d,
    'shape',
    `[${shape.join(', ')}]`,
    `a shape with ${d} elements (like [${ds.inputShape}])`,
  );
  return { ...copyMeta(ds), x: ds.x.slice(), inputShape: [...shape] };
}

function copyMeta(ds: Dataset): Dataset {
  const out: Dataset = {
    name: ds.name,
    ids: [...ds.ids],
    x: ds.x,
    y: ds.y.slice(),
    inputShape: [...ds.inputShape],
    classNames: [...ds.classNames],
    featureNames: [...ds.featureNames],
  };
  if (ds.text) out.text = [...ds.text];
  return out;
}
