/**
 * The datasets shipped in the repository's `data/` directory: verbatim copies (some gzip-compressed)
 * of the files in scikit-learn 1.2.1's `sklearn/datasets/data/` (Debian python3-sklearn), which in
 * turn are copies of UCI Machine Learning Repository datasets. Origins and licences: data/README.md.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorruptFileError } from '../errors.js';
import { decodeDataBytes } from './files.js';
import { rowId } from './table.js';
import type { Dataset } from './types.js';

/** Absolute path of the repository's `data/` directory (shipped datasets live here). */
export const DATA_DIR: string = fileURLToPath(new URL('../../data/', import.meta.url));

/** Names of the shipped datasets, usable as `loadDataset(name)` / `--data name`. */
export const BUILTIN_DATASETS = ['digits', 'iris', 'wine', 'breast_cancer'] as const;

export type BuiltinDatasetName = (typeof BUILTIN_DATASETS)[number];

/** What is known about one shipped dataset file (scikit-learn's CSV layout). */
export interface BuiltinDatasetInfo {
  /** File name inside DATA_DIR. */
  file: string;
  /**
   * Whether the first line is scikit-learn's header `n_samples,n_features,class_0,class_1,...`
   * (all but digits). Data rows are `feature_1,...,feature_d,label` with integer labels.
   */
  sklearnHeader: boolean;
  numSamples: number;
  numFeatures: number;
  classNames: string[];
  featureNames: string[];
  /** Examples per class, in class order (checked on load). */
  classCounts: number[];
}

/** Metadata of the shipped datasets (feature and class names as in scikit-learn's loaders). */
export const BUILTIN_DATASET_INFO: Readonly<Record<BuiltinDatasetName, BuiltinDatasetInfo>> = {
  digits: {
    file: 'digits.csv.gz',
    sklearnHeader: false,
    numSamples: 1797,
    numFeatures: 64,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    featureNames: Array.from({ length: 64 }, (_, k) => `pixel_${Math.floor(k / 8)}_${k % 8}`),
    classCounts: [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
  },
  iris: {
    file: 'iris.csv',
    sklearnHeader: true,
    numSamples: 150,
    numFeatures: 4,
    classNames: ['setosa', 'versicolor', 'virginica'],
    featureNames: ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)'],
    classCounts: [50, 50, 50],
  },
  wine: {
    file: 'wine_data.csv.gz',
    sklearnHeader: true,
    numSamples: 178,
    numFeatures: 13,
    classNames: ['class_0', 'class_1', 'class_2'],
    featureNames: [
      'alcohol',
      'malic_acid',
      'ash',
      'alcalinity_of_ash',
      'magnesium',
      'total_phenols',
      'flavanoids',
      'nonflavanoid_phenols',
      'proanthocyanins',
      'color_intensity',
      'hue',
      'od280/od315_of_diluted_wines',
      'proline',
    ],
    classCounts: [59, 71, 48],
  },
  breast_cancer: {
    file: 'breast_cancer.csv.gz',
    sklearnHeader: true,
    numSamples: 569,
    numFeatures: 30,
    classNames: ['malignant', 'benign'],
    featureNames: ['mean', 'error', 'worst'].flatMap((kind) =>
      [
        'radius',
        'texture',
        'perimeter',
        'area',
        'smoothness',
        'compactness',
        'concavity',
        'concave points',
        'symmetry',
        'fractal dimension',
      ].map((f) => (kind === 'error' ? `${f} error` : `${kind} ${f}`)),
    ),
    classCounts: [212, 357],
  },
};

/** Canonical built-in name for `name` ('breast-cancer' → 'breast_cancer'), or null if not one. */
export function builtinName(name: string): BuiltinDatasetName | null {
  const canonical = name.trim().toLowerCase().replace(/-/g, '_');
  return (BUILTIN_DATASETS as readonly string[]).includes(canonical)
    ? (canonical as BuiltinDatasetName)
    : null;
}

/**
 * Load a shipped dataset. Features: Float32Array [n, d] row-major, inputShape [d] (digits: [64],
 * pixel (r, c) at index 8r + c, values 0..16); ids `<name>-<row>` by original row, zero-padded to 4
 * digits (`digits-0000` ... `digits-1796`). No standardisation is applied.
 */
export async function loadBuiltinDataset(name: BuiltinDatasetName): Promise<Dataset> {
  const info = BUILTIN_DATASET_INFO[name];
  const path = join(DATA_DIR, info.file);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new CorruptFileError(
      path,
      `shipped dataset file is missing or unreadable (${(error as Error).message})`,
    );
  }
  return parseSklearnCsv(decodeDataBytes(bytes, path), path, name, info);
}

/** Parse scikit-learn's dataset CSV layout (see BuiltinDatasetInfo) and check it against `info`. */
export function parseSklearnCsv(text: string, file: string, name: string, info: BuiltinDatasetInfo): Dataset {
  const lines = text.split(/\r?\n/);
  let start = 0;
  if (info.sklearnHeader) {
    const header = lines[0]!.split(',').map((s) => s.trim());
    const expected = [String(info.numSamples), String(info.numFeatures), ...info.classNames];
    if (header.join(',') !== expected.join(',')) {
      throw new CorruptFileError(
        file,
        `header ${JSON.stringify(lines[0])} differs from ${expected.join(',')}`,
      );
    }
    start = 1;
  }
  const { numSamples: n, numFeatures: d } = info;
  const V = info.classNames.length;
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  let row = 0;
  for (let l = start; l < lines.length; l++) {
    const line = lines[l]!;
    if (line.trim() === '') continue;
    const fields = line.split(',');
    if (fields.length !== d + 1 || row >= n) {
      throw new CorruptFileError(
        file,
        `line ${l + 1}: expected ${n} rows of ${d + 1} fields (features then label), found ${row >= n ? 'more rows' : `${fields.length} fields`}`,
      );
    }
    for (let k = 0; k < d; k++) {
      const v = Number(fields[k]);
      if (fields[k]!.trim() === '' || !Number.isFinite(v)) {
        throw new CorruptFileError(
          file,
          `line ${l + 1}, column ${k + 1}: ${JSON.stringify(fields[k])} is not a number`,
        );
      }
      x[row * d + k] = v;
    }
    const label = Number(fields[d]);
    if (!Number.isInteger(label) || label < 0 || label >= V) {
      throw new CorruptFileError(
        file,
        `line ${l + 1}: label ${JSON.stringify(fields[d])} is not an integer in [0, ${V})`,
      );
    }
    y[row] = label;
    row++;
  }
  if (row !== n) throw new CorruptFileError(file, `expected ${n} rows, found ${row}`);
  const counts = new Array(V).fill(0);
  for (let i = 0; i < n; i++) counts[y[i]!]++;
  if (counts.join(',') !== info.classCounts.join(',')) {
    throw new CorruptFileError(
      file,
      `class counts ${counts.join(',')} differ from ${info.classCounts.join(',')}`,
    );
  }
  return {
    name,
    ids: Array.from({ length: n }, (_, i) => rowId(name, i, n)),
    x,
    y,
    inputShape: [d],
    classNames: [...info.classNames],
    featureNames: [...info.featureNames],
  };
}
