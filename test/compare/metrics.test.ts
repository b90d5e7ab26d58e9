import { describe, expect, it } from 'vitest';
import {
  alignSteps,
  changeAgreement,
  discretisationGap,
  finalKl,
  lazinessGap,
  trajectoryErrors,
} from '../../src/compare/index.js';
import type { Trajectory } from '../../src/dynamics/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Rng } from '../../src/util/rng.js';
import {
  kernelDrift,
  klDivergence,
  logLogSlope,
  pearson,
  ranks,
  signAgreement,
  spearman,
} from '../../src/util/stats.js';

const L = Math.log;

/** 2 points × 2 labels, steps given, probabilities given per step as [[p0, p1], [q0, q1]] */
function traj(steps: number[], probs: number[][][]): Trajectory {
  return {
    numPoints: 2,
    numClasses: 2,
    steps,
    logProbs: new Float64Array(probs.flatMap((s) => s.flatMap((row) => row.map(L)))),
  };
}

describe('correlations (values checked against scipy.stats 1.17)', () => {
  it('Pearson', () => {
    expect(pearson([1, 2, 3, 4], [2, 4, 6, 8])).toBeCloseTo(1, 15);
    expect(pearson([1, 2, 3, 4], [8, 6, 4, 2])).toBeCloseTo(-1, 15);
    // hand: dx = (−1, 0, 1), dy = (−1, 1, 0): 1 / √(2·2)
    expect(pearson([1, 2, 3], [1, 3, 2])).toBeCloseTo(0.5, 15);
    // scipy.stats.pearsonr
    expect(pearson([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8])).toBeCloseTo(0.2096553190730121, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(pearson([1], [2])).toBeNaN();
  });

  it('Spearman with ties (average ranks)', () => {
    expect(Array.from(ranks([10, 20, 20, 30]))).toEqual([1, 2.5, 2.5, 4]);
    expect(Array.from(ranks([5, 5, 5]))).toEqual([2, 2, 2]);
    // hand: ranks (1, 2.5, 2.5, 4) vs (1, 3, 2, 4) → 4.5 / √(4.5·5)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 14);
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(0.9486832980505139, 12);
    expect(spearman([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8])).toBeCloseTo(0.19885368120992467, 12);
    // monotone but non-linear: Spearman 1, Pearson < 1
    const x = [1, 2, 3, 4, 5];
    const y = x.map((v) => v ** 4);
    expect(spearman(x, y)).toBeCloseTo(1, 15);
    expect(pearson(x, y)).toBeLessThan(0.99);
  });

  it('ranks ±Infinity below / above every finite value (ties averaged) and rejects NaN', () => {
    const I = Number.POSITIVE_INFINITY;
    expect(Array.from(ranks([I, 1, -I, I, 0, -I]))).toEqual([5.5, 4, 1.5, 5.5, 3, 1.5]);
    expect(Array.from(ranks([-I, -I, -I]))).toEqual([2, 2, 2]);
    expect(spearman([-I, 0, I], [1, 2, 3])).toBeCloseTo(1, 15);
    expect(() => ranks([3, Number.NaN, 1])).toThrow(InvalidArgumentError);
    expect(() => ranks([3, Number.NaN, 1])).toThrow(/x\[1\].*NaN/);
    expect(() => spearman([1, 2, 3], [1, Number.NaN, 2])).toThrow(InvalidArgumentError);
  });

  it('sign agreement over entries above a threshold', () => {
    expect(signAgreement([1, -1, 2, -3], [2, -5, -1, -0.1])).toBe(0.75);
    expect(signAgreement([1, -1, 2, -3], [2, -5, -1, -0.1], 0.5)).toBeCloseTo(2 / 3, 15);
    expect(signAgreement([0, 1], [1, 1])).toBe(0.5); // a zero prediction does not agree
    expect(signAgreement([1], [0])).toBeNaN();
    expect(() => signAgreement([1, 2], [1])).toThrow(InvalidArgumentError);
  });
});

describe('trajectory errors, KL and gaps', () => {
  const actual = traj(
    [0, 1, 2],
    [
      [
        [0.5, 0.5],
        [0.9, 0.1],
      ],
      [
        [0.6, 0.4],
        [0.8, 0.2],
      ],
      [
        [0.7, 0.3],
        [0.7, 0.3],
      ],
    ],
  );
  const predicted = traj(
    [0, 2],
    [
      [
        [0.5, 0.5],
        [0.9, 0.1],
      ],
      [
        [0.6, 0.4],
        [0.7, 0.3],
      ],
    ],
  );

  it('align on shared steps and compute RMSE/max per point, label, step and overall', () => {
    expect(alignSteps(actual, predicted)).toEqual({ steps: [0, 2], ia: [0, 2], ib: [0, 1] });
    const e = trajectoryErrors(actual, predicted);
    expect(e.steps).toEqual([0, 2]);
    // only point 0 at step 2 differs: log-prob errors |ln .7 − ln .6|, |ln .3 − ln .4|
    const d0 = Math.abs(L(0.7) - L(0.6));
    const d1 = Math.abs(L(0.3) - L(0.4));
    expect(e.logProb.overall.max).toBeCloseTo(Math.max(d0, d1), 14);
    expect(e.logProb.overall.rmse).toBeCloseTo(Math.sqrt((d0 * d0 + d1 * d1) / 8), 14);
    expect(e.logProb.perPoint[1]).toEqual({ rmse: 0, max: 0 });
    expect(e.logProb.perPoint[0]!.rmse).toBeCloseTo(Math.sqrt((d0 * d0 + d1 * d1) / 4), 14);
    expect(e.logProb.perLabel[0]!.max).toBeCloseTo(d0, 14);
    expect(e.logProb.perLabel[1]!.max).toBeCloseTo(d1, 14);
    expect(e.logProb.perStep[0]).toEqual({ rmse: 0, max: 0 });
    expect(e.prob.overall.max).toBeCloseTo(0.1, 14);
    expect(e.prob.overall.rmse).toBeCloseTo(Math.sqrt(0.02 / 8), 14);
  });

  it('final KL(actual ‖ predicted) per point', () => {
    const kl = finalKl(actual, predicted);
    expect(kl.step).toBe(2);
    const expected = 0.7 * L(0.7 / 0.6) + 0.3 * L(0.3 / 0.4);
    expect(kl.perPoint[0]).toBeCloseTo(expected, 14);
    expect(kl.perPoint[1]).toBe(0);
    expect(kl.mean).toBeCloseTo(expected / 2, 14);
    expect(kl.max).toBeCloseTo(expected, 14);
    // hand value: KL((.5,.5) ‖ (.25,.75)) = .5 ln 2 + .5 ln(2/3)
    expect(klDivergence([L(0.5), L(0.5)], [L(0.25), L(0.75)])).toBeCloseTo(0.5 * L(2) + 0.5 * L(2 / 3), 15);
    // a zero-probability label contributes nothing
    expect(klDivergence([0, Number.NEGATIVE_INFINITY], [L(0.5), L(0.5)])).toBeCloseTo(L(2), 15);
  });

  it('laziness and discretisation gaps are per-step curves of RMSE and ‖Z − Z′‖', () => {
    const g = lazinessGap(actual, predicted);
    expect(g.steps).toEqual([0, 2]);
    expect(g.logProbRmse[0]).toBe(0);
    expect(g.probNorm[1]).toBeCloseTo(Math.sqrt(0.02), 14);
    expect(g.final.probNorm).toBeCloseTo(Math.sqrt(0.02), 14);
    // step 2: point 0 differs by ln(0.7/0.6), ln(0.3/0.4); point 1 agrees
    expect(g.logProbRmse[1]).toBeCloseTo(Math.sqrt((L(7 / 6) ** 2 + L(3 / 4) ** 2) / 4), 14);
    expect(g.max.logProbRmse).toBeCloseTo(g.logProbRmse[1]!, 15);
    expect(discretisationGap(predicted, predicted).max).toEqual({ logProbRmse: 0, probNorm: 0 });
  });

  it('agreement of per-interval changes', () => {
    // predicted Δ equal to the actual Δ, except the sign of one entry flipped
    const n = 4;
    const d = new Float64Array(2 * n);
    for (let k = 0; k < 2; k++)
      for (let j = 0; j < n; j++)
        d[k * n + j] = actual.logProbs[(k + 1) * n + j]! - actual.logProbs[k * n + j]!;
    const exact = changeAgreement(actual, d);
    expect(exact.count).toBe(8);
    expect(exact.pearson).toBeCloseTo(1, 14);
    expect(exact.spearman).toBeCloseTo(1, 14);
    expect(exact.signAgreement).toBe(1);
    const flipped = Float64Array.from(d);
    flipped[0] = -flipped[0]!;
    const f = changeAgreement(actual, flipped);
    expect(f.signAgreement).toBeCloseTo(7 / 8, 15);
    expect(f.perPoint[0]!.signAgreement).toBeCloseTo(3 / 4, 15);
    expect(f.perPoint[1]!.signAgreement).toBe(1);
    expect(f.perLabel[0]!.signAgreement).toBeCloseTo(3 / 4, 15);
    expect(() => changeAgreement(actual, new Float64Array(3))).toThrow(/predicted/);
    // a NaN prediction has no rank: Spearman is NaN (like Pearson), the comparison does not fail
    const withNaN = Float64Array.from(d);
    withNaN[3] = Number.NaN;
    const g = changeAgreement(actual, withNaN);
    expect(g.spearman).toBeNaN();
    expect(g.pearson).toBeNaN();
  });

  it('reject mismatched trajectories', () => {
    const wrong: Trajectory = { numPoints: 1, numClasses: 2, steps: [0], logProbs: new Float64Array(2) };
    expect(() => trajectoryErrors(actual, wrong)).toThrow(/predicted/);
    const disjoint = traj(
      [5],
      [
        [
          [0.5, 0.5],
          [0.5, 0.5],
        ],
      ],
    );
    expect(() => trajectoryErrors(actual, disjoint)).toThrow(/predicted.steps/);
    expect(() => trajectoryErrors(actual, { ...predicted, logProbs: new Float64Array(3) })).toThrow(
      /predicted.logProbs/,
    );
  });
});

describe('kernel drift and slopes', () => {
  it('relative change and kernel distance', () => {
    expect(kernelDrift([1, 0, 0, 1], [2, 0, 0, 2])).toEqual({ relativeChange: 1, distance: 0 });
    const orth = kernelDrift([1, 0, 0, 1], [0, 1, 1, 0]);
    expect(orth.relativeChange).toBeCloseTo(Math.SQRT2, 15);
    expect(orth.distance).toBeCloseTo(1, 15);
    const same = kernelDrift([3, 1, 1, 2], [3, 1, 1, 2]);
    expect(same).toEqual({ relativeChange: 0, distance: 0 });
    // hand: K0 = (1, 0), Kt = (1, 1): ‖Kt − K0‖/‖K0‖ = 1; 1 − 1/√2
    const d = kernelDrift([1, 0], [1, 1]);
    expect(d.relativeChange).toBeCloseTo(1, 15);
    expect(d.distance).toBeCloseTo(1 - 1 / Math.SQRT2, 15);
    expect(() => kernelDrift([0, 0], [1, 1])).toThrow(/k0/);
    expect(() => kernelDrift([1, 0], [1])).toThrow(/kt/);
    // a zero K_t is as far as it gets
    expect(kernelDrift([1, 2], [0, 0])).toEqual({ relativeChange: 1, distance: 1 });
  });

  it('takes lists of blocks as one concatenated kernel', () => {
    const rng = new Rng(4);
    const a = [rng.normalArray(12, 1), rng.normalArray(8, 1)];
    const b = [rng.normalArray(12, 1), rng.normalArray(8, 1)];
    const joined = (x: Float32Array[]) => Float64Array.from([...x[0]!, ...x[1]!]);
    // hand: the float64 reference on the concatenation
    const ja = joined(a);
    const jb = joined(b);
    let n0 = 0;
    let nt = 0;
    let dot = 0;
    let dd = 0;
    for (let i = 0; i < ja.length; i++) {
      n0 += ja[i]! ** 2;
      nt += jb[i]! ** 2;
      dot += ja[i]! * jb[i]!;
      dd += (jb[i]! - ja[i]!) ** 2;
    }
    const d = kernelDrift(a, b);
    expect(d.relativeChange).toBeCloseTo(Math.sqrt(dd / n0), 14);
    expect(d.distance).toBeCloseTo(1 - dot / Math.sqrt(n0 * nt), 14);
    expect(kernelDrift([a[0]!], [b[0]!])).toEqual(kernelDrift(a[0]!, b[0]!));
    // blocks must match one by one, not only in total length
    expect(() => kernelDrift(a, [b[0]!])).toThrow(/kt/);
    expect(() => kernelDrift(a, [b[1]!, b[0]!])).toThrow(/kt/);
  });

  it('log–log slope of a power law', () => {
    const x = [0.1, 0.2, 0.4, 0.8];
    const fit = logLogSlope(
      x,
      x.map((v) => 3 * v * v),
    );
    expect(fit.slope).toBeCloseTo(2, 14);
    expect(fit.intercept).toBeCloseTo(L(3), 14);
    expect(fit.r2).toBeCloseTo(1, 14);
    expect(fit.count).toBe(4);
    // non-positive values are skipped
    expect(logLogSlope([1, 2, 0, 4], [1, 2, 5, 4]).count).toBe(3);
    expect(logLogSlope([1], [1]).slope).toBeNaN();
  });
});
