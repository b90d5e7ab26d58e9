// Synthetic Gaussian mixture: determinism by seed, geometry of the class means (closed forms),
// sample moments, the overlap of the V = 3, 2-D problem, and the `synthetic:` spec string.
import { describe, expect, it } from 'vitest';
import {
  classCounts,
  loadDataset,
  parseSyntheticSpec,
  SYNTHETIC_DEFAULTS,
  syntheticClassMeans,
  syntheticGaussianMixture,
} from '../../src/data/index.js';
import { InvalidArgumentError } from '../../src/errors.js';

function distance(a: number[], b: number[]): number {
  return Math.hypot(...a.map((v, k) => v - b[k]!));
}

describe('syntheticGaussianMixture', () => {
  it('has the requested shape, classes, ids and names', () => {
    const ds = syntheticGaussianMixture({ numClasses: 4, dim: 3, perClass: 25, seed: 1 });
    expect(ds.name).toBe('synthetic-gmm');
    expect(ds.y.length).toBe(100);
    expect(ds.x.length).toBe(300);
    expect(ds.inputShape).toEqual([3]);
    expect(ds.classNames).toEqual(['class_0', 'class_1', 'class_2', 'class_3']);
    expect(ds.featureNames).toEqual(['x0', 'x1', 'x2']);
    expect(classCounts(ds)).toEqual([25, 25, 25, 25]);
    expect(ds.ids[0]).toBe('synthetic-gmm-0000');
    expect(ds.ids[99]).toBe('synthetic-gmm-0099');
    expect(new Set(ds.ids).size).toBe(100);
    expect(Array.from(ds.y.slice(0, 26))).toEqual([...new Array(25).fill(0), 1]);
  });

  it('is bit-identical for the same seed and differs for another seed', () => {
    const o = { numClasses: 3, dim: 2, perClass: 50, separation: 3, seed: 42 };
    const a = syntheticGaussianMixture(o);
    const b = syntheticGaussianMixture({ ...o });
    const c = syntheticGaussianMixture({ ...o, seed: 43 });
    expect(a.x).toEqual(b.x);
    expect(a.y).toEqual(b.y);
    expect(a.ids).toEqual(b.ids);
    let differ = 0;
    for (let i = 0; i < a.x.length; i++) if (a.x[i] !== c.x[i]) differ++;
    expect(differ).toBe(a.x.length);
    expect(syntheticClassMeans(o)).not.toEqual(syntheticClassMeans({ ...o, seed: 43 }));
  });

  it('V ≤ d + 1: means form a centred regular simplex with edge = separation', () => {
    for (const [V, d, s] of [
      [2, 1, 2],
      [3, 2, 3],
      [4, 3, 1.5],
      [5, 10, 4],
    ] as const) {
      const means = syntheticClassMeans({ numClasses: V, dim: d, perClass: 1, separation: s, seed: 9 });
      expect(means).toHaveLength(V);
      for (let i = 0; i < V; i++) {
        expect(means[i]).toHaveLength(d);
        for (let j = i + 1; j < V; j++) expect(distance(means[i]!, means[j]!)).toBeCloseTo(s, 12);
      }
      for (let t = 0; t < d; t++) {
        expect(Math.abs(means.reduce((acc, m) => acc + m[t]!, 0))).toBeLessThan(1e-12);
      }
      // Circumradius of a regular simplex with V vertices and edge s: s * sqrt((V-1) / (2V)).
      for (const m of means) expect(Math.hypot(...m)).toBeCloseTo(s * Math.sqrt((V - 1) / (2 * V)), 12);
    }
  });

  it('V > d + 1: equally spaced on a line (d = 1) or a regular polygon in a plane (d ≥ 2)', () => {
    const line = syntheticClassMeans({ numClasses: 4, dim: 1, perClass: 1, separation: 2, seed: 0 });
    const xs = line.map((m) => m[0]!).sort((a, b) => a - b);
    expect(xs).toEqual([-3, -1, 1, 3]);
    const V = 6;
    const s = 2.5;
    const polygon = syntheticClassMeans({ numClasses: V, dim: 3, perClass: 1, separation: s, seed: 5 });
    for (let i = 0; i < V; i++) {
      expect(distance(polygon[i]!, polygon[(i + 1) % V]!)).toBeCloseTo(s, 12);
      expect(Math.hypot(...polygon[i]!)).toBeCloseTo(s / (2 * Math.sin(Math.PI / V)), 12);
    }
    // All in one plane through the origin: the 3x3 determinant of any three means vanishes.
    const [a, b, c] = polygon as [number[], number[], number[]];
    const det =
      a[0]! * (b[1]! * c[2]! - b[2]! * c[1]!) -
      a[1]! * (b[0]! * c[2]! - b[2]! * c[0]!) +
      a[2]! * (b[0]! * c[1]! - b[1]! * c[0]!);
    expect(Math.abs(det)).toBeLessThan(1e-12);
  });

  it('samples have the class means and unit variance (within sampling error)', () => {
    const o = { numClasses: 3, dim: 4, perClass: 4000, separation: 5, seed: 2 };
    const ds = syntheticGaussianMixture(o);
    const means = syntheticClassMeans(o);
    for (let c = 0; c < 3; c++) {
      for (let t = 0; t < 4; t++) {
        let sum = 0;
        let sq = 0;
        for (let j = 0; j < o.perClass; j++) {
          const v = ds.x[(c * o.perClass + j) * 4 + t]!;
          sum += v;
          sq += v * v;
        }
        const mean = sum / o.perClass;
        const variance = sq / o.perClass - mean * mean;
        // Standard error of the mean: 1/sqrt(4000) ≈ 0.016; of the variance: sqrt(2/4000) ≈ 0.022.
        expect(Math.abs(mean - means[c]![t]!)).toBeLessThan(5 * 0.016);
        expect(Math.abs(variance - 1)).toBeLessThan(5 * 0.022);
      }
    }
  });

  it('V = 3 in 2-D with the default separation: well separated but overlapping', () => {
    const o = { numClasses: 3, dim: 2, perClass: 3000, seed: 0 };
    const ds = syntheticGaussianMixture(o);
    const means = syntheticClassMeans(o);
    // Bayes-optimal rule for equal priors and identity covariance: the nearest mean.
    let correct = 0;
    for (let i = 0; i < ds.y.length; i++) {
      const p = [ds.x[2 * i]!, ds.x[2 * i + 1]!];
      const dists = means.map((m) => distance(p, m));
      if (dists.indexOf(Math.min(...dists)) === ds.y[i]) correct++;
    }
    const accuracy = correct / ds.y.length;
    // Bayes accuracy for an equilateral triangle with side 3σ ≈ 0.88 (each pair overlaps by Φ(-1.5)).
    expect(accuracy).toBeGreaterThan(0.84);
    expect(accuracy).toBeLessThan(0.92);
  });

  it('validates its options', () => {
    const ok = { numClasses: 3, dim: 2, perClass: 10, seed: 0 };
    expect(() => syntheticGaussianMixture({ ...ok, numClasses: 1 })).toThrow(
      /numClasses: expected an integer ≥ 2/,
    );
    expect(() => syntheticGaussianMixture({ ...ok, dim: 0 })).toThrow(/dim: expected an integer ≥ 1/);
    expect(() => syntheticGaussianMixture({ ...ok, perClass: 2.5 })).toThrow(/perClass/);
    expect(() => syntheticGaussianMixture({ ...ok, separation: -1 })).toThrow(/separation/);
    expect(() => syntheticGaussianMixture({ ...ok, seed: -3 })).toThrow(/seed/);
  });
});

describe('synthetic spec strings', () => {
  it("'synthetic' alone uses the defaults", async () => {
    expect(parseSyntheticSpec('synthetic')).toEqual({ ...SYNTHETIC_DEFAULTS });
    const ds = await loadDataset('synthetic');
    expect(ds.x).toEqual(syntheticGaussianMixture({ ...SYNTHETIC_DEFAULTS }).x);
    expect(classCounts(ds)).toEqual([100, 100, 100]);
  });

  it('maps every key onto syntheticGaussianMixture', async () => {
    const spec = 'synthetic:classes=4,dim=3,per-class=20,seed=5,separation=2.5';
    expect(parseSyntheticSpec(spec)).toEqual({
      numClasses: 4,
      dim: 3,
      perClass: 20,
      seed: 5,
      separation: 2.5,
    });
    const ds = await loadDataset(spec);
    const direct = syntheticGaussianMixture({
      numClasses: 4,
      dim: 3,
      perClass: 20,
      seed: 5,
      separation: 2.5,
    });
    expect(ds.x).toEqual(direct.x);
    expect(ds.ids).toEqual(direct.ids);
    expect(parseSyntheticSpec('synthetic:perClass=7, numClasses=2')).toMatchObject({
      perClass: 7,
      numClasses: 2,
    });
  });

  it('rejects unknown keys, non-numbers and invalid values', async () => {
    expect(() => parseSyntheticSpec('synthetic:colors=3')).toThrow(
      /keys classes, dim, per-class, separation, seed/,
    );
    expect(() => parseSyntheticSpec('synthetic:classes')).toThrow(InvalidArgumentError);
    expect(() => parseSyntheticSpec('synthetic:dim=two')).toThrow(/synthetic dim.*expected a number/);
    await expect(loadDataset('synthetic:classes=1')).rejects.toThrow(/numClasses: expected an integer ≥ 2/);
  });
});
