/**
 * `loadDataset(spec)`: one entry point for every data source — a shipped dataset by name, the
 * synthetic Gaussian mixture by spec string, or a user CSV/JSONL file by path.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { exists } from '../util/index.js';
import { BUILTIN_DATASETS, builtinName, DATA_DIR, loadBuiltinDataset } from './builtin.js';
import { DATA_FILE_EXTENSIONS, dataFileFormat, loadDataFile } from './files.js';
import { SYNTHETIC_DEFAULTS, type SyntheticOptions, syntheticGaussianMixture } from './synthetic.js';
import { checkClassNames, type LoadOptions } from './table.js';
import type { Dataset } from './types.js';

const SYNTHETIC_KEYS: Record<string, keyof SyntheticOptions> = {
  classes: 'numClasses',
  'num-classes': 'numClasses',
  numClasses: 'numClasses',
  dim: 'dim',
  'per-class': 'perClass',
  perClass: 'perClass',
  separation: 'separation',
  seed: 'seed',
};

const SPEC_HELP =
  `a built-in dataset (${BUILTIN_DATASETS.join(', ')}), ` +
  `'synthetic[:classes=3,dim=2,per-class=100,separation=3,seed=0]', ` +
  `or a path to a ${DATA_FILE_EXTENSIONS.join(' / ')} file`;

/** True if `spec` names the synthetic generator ('synthetic' or 'synthetic:...'). */
export function isSyntheticSpec(spec: string): boolean {
  return /^synthetic(:|$)/i.test(spec.trim());
}

/**
 * Parse `synthetic` / `synthetic:classes=3,dim=2,per-class=100,seed=0,separation=3` into
 * SyntheticOptions (missing keys take SYNTHETIC_DEFAULTS; keys also accepted in camelCase).
 */
export function parseSyntheticSpec(spec: string): SyntheticOptions {
  const trimmed = spec.trim();
  if (!isSyntheticSpec(trimmed)) throw new InvalidArgumentError('data', spec, SPEC_HELP);
  const options: SyntheticOptions = { ...SYNTHETIC_DEFAULTS };
  const body = trimmed.slice('synthetic'.length).replace(/^:/, '');
  if (body.trim() === '') return options;
  for (const part of body.split(',')) {
    const match = /^\s*([A-Za-z-]+)\s*=\s*([^\s=]+)\s*$/.exec(part);
    const key = match ? SYNTHETIC_KEYS[match[1]!] : undefined;
    if (!match || !key) {
      throw new InvalidArgumentError(
        'data',
        spec,
        `'synthetic:key=value,...' with keys classes, dim, per-class, separation, seed (bad part ${JSON.stringify(part)})`,
      );
    }
    const value = Number(match[2]);
    if (!Number.isFinite(value)) {
      throw new InvalidArgumentError(`data (synthetic ${match[1]})`, match[2], 'a number');
    }
    options[key] = value;
  }
  return options;
}

/**
 * Where a data file spec points: an absolute path as is; a relative path against the current
 * directory first (returned unchanged), then against the repository's data/ directory (returned as
 * an absolute path). Null if neither exists.
 */
export async function resolveDataPath(spec: string): Promise<string | null> {
  if (isAbsolute(spec)) return (await exists(spec)) ? spec : null;
  if (await exists(resolve(spec))) return spec;
  const inDataDir = join(DATA_DIR, spec);
  return (await exists(inDataDir)) ? inDataDir : null;
}

/** The CLI flag of each LoadOptions key (the `entk train` flags set them). */
const OPTION_FLAGS: Record<keyof LoadOptions, string> = {
  labelColumn: '--label-column',
  featureColumns: '--feature-columns',
  textColumn: '--text-column',
  idColumn: '--id-column',
  classNames: '--class-names',
};

/** Column options describe a file: refuse them for a built-in or synthetic dataset (they would be ignored). */
function rejectFileOptions(name: string, options: LoadOptions): void {
  for (const [key, flag] of Object.entries(OPTION_FLAGS) as [keyof LoadOptions, string][]) {
    if (options[key] !== undefined) {
      throw new InvalidArgumentError(
        `${key} (${flag})`,
        options[key],
        `nothing for the ${name === 'synthetic' ? 'synthetic' : 'built-in'} dataset ${name} (column options apply to CSV/JSONL files only)`,
      );
    }
  }
}

/**
 * Load a dataset by spec:
 * - a built-in name: 'digits' (1797×64, 10 classes), 'iris' (150×4, 3), 'wine' (178×13, 3),
 *   'breast_cancer' (569×30, 2) — '-' may stand for '_';
 * - 'synthetic' or 'synthetic:classes=V,dim=d,per-class=m,separation=s,seed=k' (syntheticGaussianMixture);
 * - a path to .csv / .jsonl / .ndjson, optionally .gz (relative paths: current directory, then data/).
 * `options` (column choice, class names) apply to files only: given for a built-in or synthetic
 * dataset they are an InvalidArgumentError naming the option and its CLI flag. Returns raw (unstandardised) features, inputShape [d].
 */
export async function loadDataset(spec: string, options: LoadOptions = {}): Promise<Dataset> {
  if (typeof spec !== 'string' || spec.trim() === '') throw new InvalidArgumentError('data', spec, SPEC_HELP);
  const builtin = builtinName(spec);
  if (builtin || isSyntheticSpec(spec)) rejectFileOptions(builtin ?? 'synthetic', options);
  if (builtin) return loadBuiltinDataset(builtin);
  if (isSyntheticSpec(spec)) return syntheticGaussianMixture(parseSyntheticSpec(spec));
  if (dataFileFormat(spec) === null) throw new InvalidArgumentError('data', spec, SPEC_HELP);
  if (options.classNames != null) checkClassNames(options.classNames);
  const path = await resolveDataPath(spec);
  if (path === null) {
    const tried = isAbsolute(spec) ? spec : `${resolve(spec)} or ${join(DATA_DIR, spec)}`;
    throw new InvalidArgumentError('data', spec, `an existing file (not found: ${tried})`);
  }
  return loadDataFile(path, options);
}
