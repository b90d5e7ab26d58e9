/**
 * Point specs: which examples a kernel is computed over, named against a run's data.
 *
 * A spec is a comma-separated list of terms; the points are the terms' points in order (ids must
 * not repeat):
 *
 * | term                    | points                                                                   |
 * |-------------------------|--------------------------------------------------------------------------|
 * | `train:all`, `test:all` | the whole split, in split order                                          |
 * | `train:100`             | 100 examples drawn by a seeded shuffle (seed), kept in split order       |
 * | `train:first=100`       | the first 100 examples of the split                                      |
 * | `train:per-class=10`    | 10 examples of every class (seeded, stratified), in split order         |
 * | `ids:a,b,c`             | examples by id from either split, in the order given (the comma list    |
 * |                         | continues until the next `train:`/`test:`/`ids:`/`file:` term)          |
 * | `file:path.csv`         | every example of a data file with the run's columns (standardised with   |
 * |                         | the run's training statistics, shaped for the model)                     |
 *
 * Example: `train:per-class=5,test:20,ids:digits-0001,digits-0002`.
 */
import {
  applyStandardization,
  type Dataset,
  loadDataset,
  stratifiedSample,
  subset,
  withInputShape,
} from '../data/index.js';
import { tokenizeDataset } from '../embed/index.js';
import { InvalidArgumentError } from '../errors.js';
import type { Run } from '../train/index.js';
import { Rng } from '../util/index.js';

/** Where a point came from. */
export type PointSource = 'train' | 'test' | 'file';

/** One term of a point spec. */
export type PointTerm =
  | {
      kind: 'split';
      split: 'train' | 'test';
      select: { all: true } | { count: number } | { first: number } | { perClass: number };
    }
  | { kind: 'ids'; ids: string[] }
  | { kind: 'file'; path: string };

const TERM = /^(train|test|ids|file):(.*)$/s;
const SPEC_HELP =
  'terms like train:100, test:all, train:first=50, train:per-class=10, ids:a,b, file:points.csv';

function positive(value: string, spec: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError(
      'points',
      spec,
      `a positive integer in ${JSON.stringify(value)} (${SPEC_HELP})`,
    );
  }
  return n;
}

/** Parse a point spec into its terms (see the module comment); InvalidArgumentError on bad specs. */
export function parsePointSpec(spec: string): PointTerm[] {
  if (typeof spec !== 'string' || spec.trim() === '')
    throw new InvalidArgumentError('points', spec, SPEC_HELP);
  const terms: PointTerm[] = [];
  for (const raw of spec.split(',')) {
    const token = raw.trim();
    const m = TERM.exec(token);
    if (!m) {
      const last = terms[terms.length - 1];
      if (last?.kind === 'ids' && token !== '') {
        last.ids.push(token);
        continue;
      }
      throw new InvalidArgumentError('points', spec, `${SPEC_HELP}; ${JSON.stringify(token)} is not a term`);
    }
    const [, kind, rest] = m;
    const value = rest!.trim();
    if (kind === 'ids') {
      if (value === '')
        throw new InvalidArgumentError('points', spec, 'ids:<id>,<id>,... with at least one id');
      terms.push({ kind: 'ids', ids: [value] });
    } else if (kind === 'file') {
      if (value === '') throw new InvalidArgumentError('points', spec, 'file:<path to a .csv/.jsonl file>');
      terms.push({ kind: 'file', path: value });
    } else {
      const split = kind as 'train' | 'test';
      let select: Extract<PointTerm, { kind: 'split' }>['select'];
      if (value === 'all') select = { all: true };
      else if (value.startsWith('first=')) select = { first: positive(value.slice(6), spec) };
      else if (value.startsWith('per-class=')) select = { perClass: positive(value.slice(10), spec) };
      else select = { count: positive(value, spec) };
      terms.push({ kind: 'split', split, select });
    }
  }
  return terms;
}

/** A default directory name for a point spec: `train:per-class=10` → `train-per-class-10`. */
export function defaultPointSetName(spec: string): string {
  const name = spec
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|-+$/g, '');
  return (name || 'points').slice(0, 80);
}

/** A resolved point set: the points, ready for the model, in kernel order. */
export interface PointSet {
  /** Name (the store's parent directory). */
  name: string;
  /** The spec it came from. */
  spec: string;
  /** Seed used for sampling. */
  seed: number;
  /** The points: ids, inputs [N, ...inputShape] (standardised like the run), labels. */
  dataset: Dataset;
  /** Where each point came from. */
  sources: PointSource[];
}

/** Options of {@link resolvePoints}. */
export interface ResolvePointsOptions {
  /** Seed of the sampled terms (`train:100`, `per-class=`). Default 0. */
  seed?: number;
  /** Point-set name; default {@link defaultPointSetName}(spec). */
  name?: string;
}

function concat(parts: Dataset[], like: Dataset): Dataset {
  const d = like.inputShape.reduce((a, b) => a * b, 1);
  const n = parts.reduce((s, p) => s + p.ids.length, 0);
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    x.set(p.x, o * d);
    y.set(p.y, o);
    o += p.ids.length;
  }
  return {
    name: like.name,
    ids: parts.flatMap((p) => p.ids),
    x,
    y,
    inputShape: [...like.inputShape],
    classNames: [...like.classNames],
    featureNames: [...like.featureNames],
  };
}

/**
 * Resolve a point spec against a run: the selected examples of its (standardised, model-shaped)
 * train/test splits or of a file, in spec order. Throws InvalidArgumentError for unknown ids,
 * counts larger than a split, repeated points, or a file whose features do not fit the model.
 */
export async function resolvePoints(
  run: Run,
  spec: string,
  options: ResolvePointsOptions = {},
): Promise<PointSet> {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new InvalidArgumentError('seed', seed, 'a non-negative integer');
  const terms = parsePointSpec(spec);
  const parts: Dataset[] = [];
  const sources: PointSource[] = [];
  const splits = { train: run.train, test: run.test };
  for (const [t, term] of terms.entries()) {
    if (term.kind === 'split') {
      const ds = splits[term.split];
      const n = ds.ids.length;
      const s = term.select;
      let part: Dataset;
      if ('all' in s) part = ds;
      else if ('first' in s || 'count' in s) {
        const k = 'first' in s ? s.first : s.count;
        if (k > n) {
          throw new InvalidArgumentError(
            'points',
            spec,
            `at most ${n} ${term.split} examples (the ${term.split} split has ${n})`,
          );
        }
        const indices =
          'first' in s
            ? Array.from({ length: k }, (_, i) => i)
            : new Rng(seed)
                .fork(`points/${t}/${term.split}`)
                .shuffle(Array.from({ length: n }, (_, i) => i))
                .slice(0, k)
                .sort((a, b) => a - b);
        part = subset(ds, indices);
      } else {
        part = stratifiedSample(ds, s.perClass, seed);
      }
      parts.push(part);
      for (let i = 0; i < part.ids.length; i++) sources.push(term.split); // no spread: n can be ≥ 125k
    } else if (term.kind === 'ids') {
      const where = new Map<string, ['train' | 'test', number]>();
      for (const [i, id] of run.train.ids.entries()) where.set(id, ['train', i]);
      for (const [i, id] of run.test.ids.entries()) where.set(id, ['test', i]);
      const missing = term.ids.filter((id) => !where.has(id));
      if (missing.length > 0) {
        throw new InvalidArgumentError(
          'points',
          `unknown id${missing.length > 1 ? 's' : ''} ${missing.slice(0, 5).join(', ')}`,
          `ids of the run's train or test examples (e.g. ${run.train.ids.slice(0, 2).join(', ')})`,
        );
      }
      for (const id of term.ids) {
        const [split, i] = where.get(id)!;
        parts.push(subset(splits[split], [i]));
        sources.push(split);
      }
    } else {
      let ds = await loadDataset(term.path, { ...run.config.dataOptions, classNames: run.split.classNames });
      // A transformer trained on text: the file's texts tokenised as the run's were.
      if (run.config.tokenizer && run.config.model.kind === 'transformer') {
        const options = { tokenizer: run.config.tokenizer, maxLength: run.config.model.maxLength };
        ds = (await tokenizeDataset(ds, options)).dataset;
      }
      const d = run.train.inputShape.reduce((a, b) => a * b, 1);
      const fd = ds.inputShape.reduce((a, b) => a * b, 1);
      if (fd !== d) {
        throw new InvalidArgumentError(
          'points',
          term.path,
          `a data file with the run's ${d} features (it has ${fd})`,
        );
      }
      if (run.config.standardize) ds = applyStandardization(ds, run.standardization);
      ds = withInputShape(ds, run.train.inputShape);
      parts.push(ds);
      for (let i = 0; i < ds.ids.length; i++) sources.push('file');
    }
  }
  const dataset = concat(parts, run.train);
  const seen = new Set<string>();
  for (const id of dataset.ids) {
    if (seen.has(id))
      throw new InvalidArgumentError('points', spec, `distinct points (${JSON.stringify(id)} repeats)`);
    seen.add(id);
  }
  if (dataset.ids.length === 0) throw new InvalidArgumentError('points', spec, 'at least one point');
  return { name: options.name ?? defaultPointSetName(spec), spec, seed, dataset, sources };
}
