/**
 * Scoring of predicted trajectories (src/experiment/predict.ts) against hand-computed numbers; the
 * cumulative one-step path is not a distribution and gets no probability metrics.
 */
import { describe, expect, it } from 'vitest';
import type { Trajectory } from '../../src/dynamics/index.js';
import { type Predictions, scoreRecording, scoreTrajectory } from '../../src/experiment/index.js';

const L = Math.log;
/** 2 records, 2 points, V = 2 */
const actual: Trajectory = {
  numPoints: 2,
  numClasses: 2,
  steps: [0, 3],
  logProbs: Float64Array.from([0.5, 0.5, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6].map(L)),
};
const trajectory = (probs: number[]): Trajectory => ({
  ...actual,
  logProbs: Float64Array.from(probs.map(L)),
});

describe('scoring predictions', () => {
  it('scores a distribution trajectory with log-prob and probability metrics (hand values)', () => {
    const pred = trajectory([0.5, 0.5, 0.2, 0.8, 0.6, 0.4, 0.4, 0.6]);
    const s = scoreTrajectory(actual, pred);
    // one point at the last step differs: log-prob diffs L(0.6/0.7), L(0.4/0.3) among 8 entries
    const d1 = L(0.6 / 0.7);
    const d2 = L(0.4 / 0.3);
    expect(s.rmseLogProb).toBeCloseTo(Math.sqrt((d1 * d1 + d2 * d2) / 8), 14);
    expect(s.maxLogProb).toBeCloseTo(Math.abs(d2), 14);
    expect(s.rmseProb).toBeCloseTo(Math.sqrt((2 * 0.01) / 8), 14);
    // KL(actual ‖ pred) at the last step: point 0 only, mean over 2 points
    expect(s.finalKl).toBeCloseTo((0.7 * L(0.7 / 0.6) + 0.3 * L(0.3 / 0.4)) / 2, 14);
  });

  it('gives no probability metrics for a trajectory that is not a distribution', () => {
    // a cumulative one-step path: start + summed increments, rows not normalised (Σ π ≠ 1),
    // for which finalKl would be negative (and get clamped to 0)
    const path = trajectory([0.5, 0.5, 0.2, 0.8, 0.9, 0.5, 0.4, 0.6]);
    const s = scoreTrajectory(actual, path, { distributions: false });
    expect(s.rmseProb).toBeNull();
    expect(s.finalKl).toBeNull();
    expect(s.rmseLogProb).toBeGreaterThan(0);
    expect(s.rTotal).not.toBeNull();
  });

  it("scoreRecording leaves probability metrics out of 'one-step' only", () => {
    const n = 4;
    const oneStep = new Float64Array(n);
    for (let j = 0; j < n; j++) oneStep[j] = 1.1 * (actual.logProbs[n + j]! - actual.logProbs[j]!);
    const path: Trajectory = { ...actual, logProbs: Float64Array.from(actual.logProbs) };
    for (let j = 0; j < n; j++) path.logProbs[n + j] = actual.logProbs[j]! + oneStep[j]!;
    // the path is not normalised
    expect(Math.exp(path.logProbs[4]!) + Math.exp(path.logProbs[5]!)).not.toBeCloseTo(1, 3);
    const p: Predictions = {
      trajectories: {
        'one-step': path,
        'pop-mu': trajectory([0.5, 0.5, 0.2, 0.8, 0.6, 0.4, 0.4, 0.6]),
        'pop-ode': actual,
      },
      increments: { 'one-step': oneStep },
    };
    const s = scoreRecording(actual, p);
    expect(Object.keys(s.methods)).toEqual(['one-step', 'POP-MU', 'POP-ODE']);
    expect(s.methods['one-step']!.rmseProb).toBeNull();
    expect(s.methods['one-step']!.finalKl).toBeNull();
    expect(s.methods['one-step']!.rTotal).toBeCloseTo(1, 12);
    // log-prob error of the path = the sum of per-interval errors (one interval: 0.1 × actual Δ)
    let sq = 0;
    for (let j = 0; j < n; j++) sq += (0.1 * (actual.logProbs[n + j]! - actual.logProbs[j]!)) ** 2;
    expect(s.methods['one-step']!.rmseLogProb).toBeCloseTo(Math.sqrt(sq / (2 * n)), 14);
    expect(s.methods['POP-MU']!.finalKl).toBeGreaterThan(0);
    expect(s.methods['POP-MU']!.rmseProb).toBeGreaterThan(0);
    expect(s.methods['POP-ODE']!.finalKl).toBe(0);
    expect(s.methods['POP-ODE']!.rmseProb).toBe(0);
  });
});
