// Shipped datasets: byte-identical to scikit-learn 1.2.1's files, and parsed into the right shapes,
// classes and values. Reference numbers (class counts, sums, rows) were computed with
// sklearn.datasets.load_* (float64) from Debian's python3-sklearn 1.2.1 and are hard-coded here.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  BUILTIN_DATASET_INFO,
  BUILTIN_DATASETS,
  classCounts,
  DATA_DIR,
  type Dataset,
  loadDataset,
} from '../../src/data/index.js';
import { InvalidArgumentError } from '../../src/errors.js';

interface Reference {
  n: number;
  d: number;
  classNames: string[];
  counts: number[];
  /** float64 sums of all features and of their squares (sklearn). */
  sum: number;
  sumSq: number;
  /** Some values: [row, first features..., label]. */
  rows: [number, number[], number][];
  /** SHA-256 of scikit-learn's (decompressed) file. */
  sha256: string;
}

const REFERENCE: Record<string, Reference> = {
  digits: {
    n: 1797,
    d: 64,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    counts: [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
    sum: 561718,
    sumSq: 6907012,
    rows: [
      [0, [0, 0, 5, 13, 9, 1, 0, 0], 0],
      [100, [0, 0, 0, 2, 13, 0], 4],
    ],
    sha256: '6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8',
  },
  iris: {
    n: 150,
    d: 4,
    classNames: ['setosa', 'versicolor', 'virginica'],
    counts: [50, 50, 50],
    sum: 2078.7,
    sumSq: 9539.29,
    rows: [
      [0, [5.1, 3.5, 1.4, 0.2], 0],
      [100, [6.3, 3.3, 6.0, 2.5], 2],
      [149, [5.9, 3.0, 5.1, 1.8], 2],
    ],
    sha256: 'f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449',
  },
  wine: {
    n: 178,
    d: 13,
    classNames: ['class_0', 'class_1', 'class_2'],
    counts: [59, 71, 48],
    sum: 159975.295999,
    sumSq: 118768104.78031619,
    rows: [
      [0, [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28], 0],
      [100, [12.08, 2.08, 1.7, 17.5, 97.0, 2.23], 1],
    ],
    sha256: '10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede',
  },
  breast_cancer: {
    n: 569,
    d: 30,
    classNames: ['malignant', 'benign'],
    counts: [212, 357],
    sum: 1056474.4596356,
    sumSq: 955069324.0850048,
    rows: [
      [0, [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471], 0],
      [100, [13.61, 24.98, 88.05, 582.7, 0.09488, 0.08511], 0],
    ],
    sha256: 'fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed',
  },
};

function rowValues(ds: Dataset, row: number, count: number): number[] {
  const d = ds.inputShape[0]!;
  return Array.from(ds.x.subarray(row * d, row * d + count));
}

describe('shipped datasets', () => {
  it('lists exactly the four built-ins', () => {
    expect([...BUILTIN_DATASETS]).toEqual(['digits', 'iris', 'wine', 'breast_cancer']);
  });

  for (const name of Object.keys(REFERENCE)) {
    const ref = REFERENCE[name]!;
    it(`${name}: file content is scikit-learn's, byte for byte`, () => {
      const file = join(DATA_DIR, BUILTIN_DATASET_INFO[name as 'iris'].file);
      let bytes: Buffer = readFileSync(file);
      if (file.endsWith('.gz')) bytes = gunzipSync(bytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(ref.sha256);
    });

    it(`${name}: shape, classes, ids and values match scikit-learn`, async () => {
      const ds = await loadDataset(name);
      expect(ds.name).toBe(name);
      expect(ds.y.length).toBe(ref.n);
      expect(ds.inputShape).toEqual([ref.d]);
      expect(ds.x.length).toBe(ref.n * ref.d);
      expect(ds.classNames).toEqual(ref.classNames);
      expect(classCounts(ds)).toEqual(ref.counts);
      expect(ds.featureNames).toHaveLength(ref.d);
      expect(ds.text).toBeUndefined();
      expect(ds.ids[0]).toBe(`${name}-0000`);
      expect(ds.ids[ref.n - 1]).toBe(`${name}-${String(ref.n - 1).padStart(4, '0')}`);
      expect(new Set(ds.ids).size).toBe(ref.n);
      for (const [row, values, label] of ref.rows) {
        // Stored as float32: equal to the float32 rounding of the file's decimal value.
        expect(rowValues(ds, row, values.length)).toEqual(values.map((v) => Math.fround(v)));
        expect(ds.y[row]).toBe(label);
      }
      let sum = 0;
      let sumSq = 0;
      for (const v of ds.x) {
        sum += v;
        sumSq += v * v;
      }
      // float32 storage rounds each value by at most 2^-24 relative: sums agree to ~1e-7 relative.
      expect(Math.abs(sum - ref.sum) / ref.sum).toBeLessThan(1e-6);
      expect(Math.abs(sumSq - ref.sumSq) / ref.sumSq).toBeLessThan(1e-6);
    });
  }

  it('digits: 8x8 images with pixel values 0..16 and scikit-learn feature names', async () => {
    const ds = await loadDataset('digits');
    let min = Infinity;
    let max = -Infinity;
    let nonIntegers = 0;
    for (const v of ds.x) {
      if (!Number.isInteger(v)) nonIntegers++;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(nonIntegers).toBe(0);
    expect([min, max]).toEqual([0, 16]);
    expect(ds.featureNames.slice(0, 9)).toEqual([
      'pixel_0_0',
      'pixel_0_1',
      'pixel_0_2',
      'pixel_0_3',
      'pixel_0_4',
      'pixel_0_5',
      'pixel_0_6',
      'pixel_0_7',
      'pixel_1_0',
    ]);
    expect(ds.featureNames[63]).toBe('pixel_7_7');
  });

  it('breast_cancer and wine carry scikit-learn feature names', async () => {
    const bc = await loadDataset('breast_cancer');
    expect([bc.featureNames[0], bc.featureNames[10], bc.featureNames[20], bc.featureNames[29]]).toEqual([
      'mean radius',
      'radius error',
      'worst radius',
      'worst fractal dimension',
    ]);
    const wine = await loadDataset('wine');
    expect(wine.featureNames[11]).toBe('od280/od315_of_diluted_wines');
  });

  it("accepts 'breast-cancer' and upper case as aliases", async () => {
    const a = await loadDataset('breast-cancer');
    const b = await loadDataset('IRIS');
    expect(a.name).toBe('breast_cancer');
    expect(b.name).toBe('iris');
  });

  it('each load returns fresh arrays (mutating one copy does not affect the next load)', async () => {
    const a = await loadDataset('iris');
    a.x[0] = 999;
    a.ids[0] = 'changed';
    const b = await loadDataset('iris');
    expect(b.x[0]).toBe(Math.fround(5.1));
    expect(b.ids[0]).toBe('iris-0000');
  });

  it('the user CSV loader reads data/iris.csv (relative path resolved against data/) identically', async () => {
    // scikit-learn's header "150,4,setosa,versicolor,virginica" makes the last column "virginica".
    const viaCsv = await loadDataset('iris.csv', { labelColumn: 'virginica' });
    const builtin = await loadDataset('iris');
    expect(viaCsv.name).toBe('iris');
    expect(viaCsv.x).toEqual(builtin.x);
    expect(Array.from(viaCsv.y)).toEqual(Array.from(builtin.y));
    expect(viaCsv.classNames).toEqual(['0', '1', '2']);
    expect(viaCsv.ids).toEqual(builtin.ids);
  });

  it('an unknown name is an error listing the built-ins and the other spec forms', async () => {
    const error = await loadDataset('mnist').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const message = (error as Error).message;
    expect(message).toContain('"mnist"');
    for (const name of BUILTIN_DATASETS) expect(message).toContain(name);
    expect(message).toContain('synthetic');
    expect(message).toContain('.csv');
    await expect(loadDataset('')).rejects.toThrow(InvalidArgumentError);
  });

  it('a missing data file names the places it looked', async () => {
    await expect(loadDataset('no/such/file.csv')).rejects.toThrow(
      /not found: .*no\/such\/file\.csv or .*data/,
    );
    await expect(loadDataset('/no/such/file.jsonl')).rejects.toThrow(/not found: \/no\/such\/file\.jsonl/);
  });
});
