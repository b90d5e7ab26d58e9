// Splits, samples, subsets, standardisation and reshaping: stratification, determinism, ids that
// follow their examples, and standardisation fitted on the training split only (checked against a
// float64 two-pass reference computed here).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  applyStandardization,
  classCounts,
  type Dataset,
  fitStandardization,
  loadDataset,
  selectByIds,
  stratifiedSample,
  stratifiedSplit,
  subset,
  syntheticGaussianMixture,
  withInputShape,
} from '../../src/data/index.js';
import { InvalidArgumentError } from '../../src/errors.js';

const digits = await loadDataset('digits');

/** Row `i` of ds as a plain array. */
function row(ds: Dataset, i: number): number[] {
  const d = ds.x.length / ds.y.length;
  return Array.from(ds.x.subarray(i * d, (i + 1) * d));
}

/** Check that every example of `part` is the example with the same id in `whole`. */
function expectExamplesFollowIds(part: Dataset, whole: Dataset) {
  const index = new Map(whole.ids.map((id, i) => [id, i]));
  part.ids.forEach((id, r) => {
    const i = index.get(id);
    expect(i, `id ${id}`).toBeDefined();
    expect(part.y[r]).toBe(whole.y[i!]);
    expect(row(part, r)).toEqual(row(whole, i!));
    if (whole.text) expect(part.text![r]).toBe(whole.text[i!]);
  });
}

describe('stratifiedSplit', () => {
  const cases: [string, number][] = [
    ['digits', 0.2],
    ['digits', 0.5],
    ['iris', 0.3],
    ['wine', 0.25],
    ['breast_cancer', 0.1],
  ];
  for (const [name, f] of cases) {
    it(`${name}, testFraction ${f}: per-class proportions within one example, no id lost or shared`, async () => {
      const ds = await loadDataset(name);
      const { train, test } = stratifiedSplit(ds, { testFraction: f, seed: 3 });
      const n = ds.y.length;
      expect(test.y.length).toBe(Math.round(n * f));
      expect(train.y.length + test.y.length).toBe(n);
      const all = classCounts(ds);
      const testCounts = classCounts(test);
      const trainCounts = classCounts(train);
      all.forEach((nc, c) => {
        expect(Math.abs(testCounts[c]! - nc * f)).toBeLessThan(1);
        expect(trainCounts[c]! + testCounts[c]!).toBe(nc);
      });
      const trainIds = new Set(train.ids);
      expect(trainIds.size).toBe(train.ids.length);
      expect(test.ids.some((id) => trainIds.has(id))).toBe(false);
      expect(new Set([...train.ids, ...test.ids])).toEqual(new Set(ds.ids));
      expectExamplesFollowIds(train, ds);
      expectExamplesFollowIds(test, ds);
      // Both parts keep the original order.
      const position = new Map(ds.ids.map((id, i) => [id, i]));
      for (const part of [train, test]) {
        const p = part.ids.map((id) => position.get(id)!);
        expect(p).toEqual([...p].sort((a, b) => a - b));
      }
      expect(train.classNames).toEqual(ds.classNames);
      expect(train.inputShape).toEqual(ds.inputShape);
    });
  }

  it('iris 0.2 gives exactly 10 test examples per class', async () => {
    const { test } = stratifiedSplit(await loadDataset('iris'), { testFraction: 0.2, seed: 0 });
    expect(classCounts(test)).toEqual([10, 10, 10]);
  });

  it('is deterministic by seed, and different seeds give different splits', () => {
    const a = stratifiedSplit(digits, { testFraction: 0.2, seed: 7 });
    const b = stratifiedSplit(digits, { testFraction: 0.2, seed: 7 });
    const c = stratifiedSplit(digits, { testFraction: 0.2, seed: 8 });
    expect(a.test.ids).toEqual(b.test.ids);
    expect(a.train.x).toEqual(b.train.x);
    expect(a.test.ids).not.toEqual(c.test.ids);
    // A different seed still picks a fair share of the same examples by chance only (~20 %).
    const overlap = c.test.ids.filter((id) => new Set(a.test.ids).has(id)).length;
    expect(overlap / a.test.ids.length).toBeLessThan(0.4);
  });

  it('does not modify its input', () => {
    const before = { x: digits.x.slice(), y: digits.y.slice(), ids: [...digits.ids] };
    stratifiedSplit(digits, { testFraction: 0.3, seed: 1 });
    expect(digits.x).toEqual(before.x);
    expect(digits.y).toEqual(before.y);
    expect(digits.ids).toEqual(before.ids);
  });

  it('carries text along with its examples', () => {
    const ds: Dataset = {
      name: 't',
      ids: ['a', 'b', 'c', 'd', 'e', 'f'],
      x: new Float32Array(0),
      y: Int32Array.from([0, 1, 0, 1, 0, 1]),
      inputShape: [0],
      classNames: ['n', 'p'],
      featureNames: [],
      text: ['t-a', 't-b', 't-c', 't-d', 't-e', 't-f'],
    };
    const { train, test } = stratifiedSplit(ds, { testFraction: 0.34, seed: 0 });
    expect(classCounts(test)).toEqual([1, 1]);
    expectExamplesFollowIds(train, ds);
    expectExamplesFollowIds(test, ds);
    expect(test.text!.map((t) => t.slice(2))).toEqual(test.ids);
  });

  it('rejects fractions outside (0, 1) and splits that would leave a side empty', () => {
    for (const testFraction of [0, 1, -0.1, Number.NaN, 1.5]) {
      expect(() => stratifiedSplit(digits, { testFraction, seed: 0 })).toThrow(
        /testFraction: expected a number in \(0, 1\)/,
      );
    }
    const tiny = subset(digits, [0, 1, 2]);
    expect(() => stratifiedSplit(tiny, { testFraction: 0.1, seed: 0 })).toThrow(
      /at least one train and one test/,
    );
    expect(() => stratifiedSplit(digits, { testFraction: 0.2, seed: -1 })).toThrow(InvalidArgumentError);
  });
});

describe('standardisation', () => {
  const { train, test } = stratifiedSplit(digits, { testFraction: 0.25, seed: 0 });
  const st = fitStandardization(train);

  it('fits mean and population std of the training split (float64 two-pass reference)', () => {
    const n = train.y.length;
    const d = 64;
    for (let k = 0; k < d; k++) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += train.x[i * d + k]!;
      const mean = sum / n;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += (train.x[i * d + k]! - mean) ** 2;
      const std = Math.sqrt(ss / n);
      expect(Math.abs(st.mean[k]! - mean)).toBeLessThan(1e-12 * Math.max(1, Math.abs(mean)));
      // Constant features (e.g. pixel_0_0, always 0 in digits) get std 1.
      expect(st.std[k]).toBeCloseTo(std === 0 ? 1 : std, 12);
    }
    expect(st.std[0]).toBe(1);
    expect(st.mean[0]).toBe(0);
  });

  it('gives mean 0 / std 1 on the training split, but not on the test split', () => {
    const trainZ = applyStandardization(train, st);
    const testZ = applyStandardization(test, st);
    const moments = (ds: Dataset) => {
      const n = ds.y.length;
      const mean = new Array(64).fill(0);
      const sq = new Array(64).fill(0);
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < 64; k++) {
          mean[k] += ds.x[i * 64 + k]! / n;
          sq[k] += ds.x[i * 64 + k]! ** 2 / n;
        }
      }
      return { mean, std: sq.map((s, k) => Math.sqrt(Math.max(0, s - mean[k] ** 2))) };
    };
    const tr = moments(trainZ);
    let nonConstant = 0;
    for (let k = 0; k < 64; k++) {
      expect(Math.abs(tr.mean[k])).toBeLessThan(1e-5);
      if (train.x.some((_, j) => j % 64 === k && train.x[j] !== train.x[k])) {
        nonConstant++;
        expect(Math.abs(tr.std[k] - 1)).toBeLessThan(1e-4);
      } else {
        expect(tr.std[k]).toBeLessThan(1e-6); // constant feature → all zeros
      }
    }
    expect(nonConstant).toBeGreaterThan(55);
    // The test split is standardised with the training statistics, so its moments are not exactly 0/1.
    const te = moments(testZ);
    const maxTestMean = Math.max(...te.mean.map(Math.abs));
    const maxTestStdDev = Math.max(
      ...te.std.map((s, k) => (st.std[k] === 1 && s === 0 ? 0 : Math.abs(s - 1))),
    );
    expect(maxTestMean).toBeGreaterThan(0.01);
    expect(maxTestStdDev).toBeGreaterThan(0.01);
    // Element by element: (x - trainMean) / trainStd.
    for (const i of [0, 17, test.y.length - 1]) {
      const expected = row(test, i).map((v, k) => Math.fround((v - st.mean[k]!) / st.std[k]!));
      expect(row(testZ, i)).toEqual(expected);
    }
    expect(testZ.ids).toEqual(test.ids);
    expect(testZ.y).toEqual(test.y);
  });

  it('does not modify its input, and validates the statistics', () => {
    const before = test.x.slice();
    applyStandardization(test, st);
    expect(test.x).toEqual(before);
    expect(() => applyStandardization(test, { mean: st.mean.slice(1), std: st.std })).toThrow(
      /standardization: expected length 64/,
    );
    const zeroStd = { mean: st.mean, std: st.std.map((s, k) => (k === 3 ? 0 : s)) };
    expect(() => applyStandardization(test, zeroStd)).toThrow(/standardization\.std\[3\]: expected > 0/);
    expect(() => fitStandardization(subset(digits, []))).toThrow(/at least one example/);
  });
});

describe('subset, selectByIds, stratifiedSample, withInputShape', () => {
  it('subset keeps the given order and validates indices', () => {
    const s = subset(digits, [5, 0, 1796]);
    expect(s.ids).toEqual(['digits-0005', 'digits-0000', 'digits-1796']);
    expectExamplesFollowIds(s, digits);
    expect(() => subset(digits, [0, 1797])).toThrow(
      /indices: expected distinct integers in \[0, 1797\), received 1797/,
    );
    expect(() => subset(digits, [3, 3])).toThrow(/repeated/);
    expect(() => subset(digits, [1.5])).toThrow(InvalidArgumentError);
  });

  it('selectByIds keeps the given order and names unknown ids', () => {
    const s = selectByIds(digits, ['digits-0100', 'digits-0007']);
    expect(s.ids).toEqual(['digits-0100', 'digits-0007']);
    expect(s.y[0]).toBe(4);
    expectExamplesFollowIds(s, digits);
    expect(() => selectByIds(digits, ['digits-0001', 'digit-7', 'nope'])).toThrow(
      /ids: expected ids of dataset "digits" .*received "2 unknown ids: \\"digit-7\\", \\"nope\\""/,
    );
    expect(() => selectByIds(digits, ['digits-0001', 'digits-0001'])).toThrow(/repeated/);
  });

  it('selectByIds reconstructs a split from its recorded ids', () => {
    const { train, test } = stratifiedSplit(digits, { testFraction: 0.2, seed: 11 });
    const again = selectByIds(digits, test.ids);
    expect(again.x).toEqual(test.x);
    expect(again.y).toEqual(test.y);
    expect(selectByIds(digits, train.ids).x).toEqual(train.x);
  });

  it('stratifiedSample takes perClass of each class, deterministically by seed', () => {
    const a = stratifiedSample(digits, 7, 1);
    expect(classCounts(a)).toEqual(new Array(10).fill(7));
    expect(stratifiedSample(digits, 7, 1).ids).toEqual(a.ids);
    expect(stratifiedSample(digits, 7, 2).ids).not.toEqual(a.ids);
    expectExamplesFollowIds(a, digits);
    expect(new Set(a.ids).size).toBe(70);
    expect(() => stratifiedSample(digits, 175, 0)).toThrow(
      /at most 174, the number of examples of class "8"/,
    );
    expect(() => stratifiedSample(digits, 0, 0)).toThrow(/perClass: expected an integer ≥ 1/);
  });

  it('withInputShape reshapes digits to 8x8x1 images (pixel (r, c) = feature 8r + c)', () => {
    const images = withInputShape(digits, [8, 8, 1]);
    expect(images.inputShape).toEqual([8, 8, 1]);
    expect(digits.inputShape).toEqual([64]);
    expect(images.ids).toEqual(digits.ids);
    const before = tf.memory().numTensors;
    const pixel = tf.tidy(() => {
      const t = tf.tensor(images.x, [images.y.length, ...images.inputShape]);
      return t.slice([100, 3, 5, 0], [1, 1, 1, 1]).dataSync()[0];
    });
    expect(pixel).toBe(digits.x[100 * 64 + 8 * 3 + 5]);
    expect(pixel).toBe(16); // scikit-learn: load_digits().images[100][3][5]
    expect(tf.memory().numTensors).toBe(before);
    expect(() => withInputShape(digits, [8, 9])).toThrow(/shape: expected a shape with 64 elements/);
    expect(() => withInputShape(digits, [64, 0])).toThrow(/positive integers/);
  });

  it('every transform returns fresh arrays', () => {
    const ds = syntheticGaussianMixture({ numClasses: 2, dim: 3, perClass: 4, seed: 0 });
    for (const out of [
      subset(ds, [0, 1, 2, 3, 4, 5, 6, 7]),
      withInputShape(ds, [3, 1]),
      applyStandardization(ds, fitStandardization(ds)),
    ]) {
      expect(out.x).not.toBe(ds.x);
      expect(out.y).not.toBe(ds.y);
      expect(out.ids).not.toBe(ds.ids);
      out.y[0] = 1;
      out.ids[0] = 'changed';
    }
    expect(ds.y[0]).toBe(0);
    expect(ds.ids[0]).toBe('synthetic-gmm-0000');
  });
});
