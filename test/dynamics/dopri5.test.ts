import { describe, expect, it } from 'vitest';
import { dopri5, type OdeRhs } from '../../src/dynamics/dopri5.js';
import { EntkError, InvalidArgumentError } from '../../src/errors.js';
import { logLogSlope } from './reference.js';

const exponential: OdeRhs = (_t, y, d) => {
  d[0] = -y[0]!;
};
// harmonic oscillator x'' = −ω² x with ω = 2: (x, v)
const OMEGA = 2;
const oscillator: OdeRhs = (_t, y, d) => {
  d[0] = y[1]!;
  d[1] = -OMEGA * OMEGA * y[0]!;
};
const oscillatorExact = (t: number) => [Math.cos(OMEGA * t), -OMEGA * Math.sin(OMEGA * t)];

/** fixed step size h: a tolerance that accepts every step and maxStep = h */
const fixed = (h: number) => ({ rtol: 1e10, atol: 1e10, firstStep: h, maxStep: h });

describe('dopri5', () => {
  it('solves y′ = −y to the requested tolerance at many output times', () => {
    const times = Array.from({ length: 21 }, (_, k) => k * 0.25);
    const sol = dopri5(exponential, 0, new Float64Array([1]), times, { rtol: 1e-10, atol: 1e-12 });
    expect(sol.y.length).toBe(21);
    let err = 0;
    times.forEach((t, k) => {
      err = Math.max(err, Math.abs(sol.y[k]! - Math.exp(-t)));
    });
    // global error of a tolerance-controlled run: within a small multiple of the tolerance
    expect(err).toBeLessThan(1e-9);
    expect(sol.y[0]).toBe(1); // t = t0 is returned exactly
    expect(sol.stats.acceptedSteps).toBeGreaterThan(0);
    // FSAL: 6 evaluations per step attempt, + 2 for the start (k1 and the initial step estimate)
    expect(sol.stats.rhsEvaluations).toBe(6 * (sol.stats.acceptedSteps + sol.stats.rejectedSteps) + 2);
  });

  it('is 5th-order accurate at step ends and 4th-order accurate in between (dense output)', () => {
    const hs = [0.2, 0.1, 0.05, 0.025];
    const endErr: number[] = [];
    const midErr: number[] = [];
    for (const h of hs) {
      // output at the step ends (multiples of h) and at the middle of every step
      const ends = Array.from({ length: Math.round(4 / h) }, (_, k) => (k + 1) * h);
      const mids = ends.map((t) => t - h / 2);
      const a = dopri5(oscillator, 0, new Float64Array([1, 0]), ends, fixed(h));
      const b = dopri5(oscillator, 0, new Float64Array([1, 0]), mids, { ...fixed(h) });
      expect(a.stats.rejectedSteps).toBe(0);
      expect(a.stats.acceptedSteps).toBe(ends.length);
      let e1 = 0;
      ends.forEach((t, k) => {
        const [x, v] = oscillatorExact(t);
        e1 = Math.max(e1, Math.abs(a.y[2 * k]! - x!), Math.abs(a.y[2 * k + 1]! - v!));
      });
      let e2 = 0;
      mids.forEach((t, k) => {
        const [x, v] = oscillatorExact(t);
        e2 = Math.max(e2, Math.abs(b.y[2 * k]! - x!), Math.abs(b.y[2 * k + 1]! - v!));
      });
      endErr.push(e1);
      midErr.push(e2);
    }
    const pEnd = logLogSlope(hs, endErr);
    const pMid = logLogSlope(hs, midErr);
    // expected orders 5 (method) and ≥ 4 (continuous extension); allow ±0.5
    expect(pEnd).toBeGreaterThan(4.5);
    expect(pEnd).toBeLessThan(5.5);
    expect(pMid).toBeGreaterThan(3.8);
  });

  it('tightening the tolerance reduces the error and costs more steps', () => {
    const errs: number[] = [];
    const steps: number[] = [];
    for (const rtol of [1e-4, 1e-6, 1e-8, 1e-10]) {
      const sol = dopri5(oscillator, 0, new Float64Array([1, 0]), [10], { rtol, atol: rtol * 1e-3 });
      const [x, v] = oscillatorExact(10);
      errs.push(Math.max(Math.abs(sol.y[0]! - x!), Math.abs(sol.y[1]! - v!)));
      steps.push(sol.stats.acceptedSteps);
    }
    for (let i = 1; i < errs.length; i++) {
      expect(errs[i]!).toBeLessThan(errs[i - 1]!);
      expect(steps[i]!).toBeGreaterThan(steps[i - 1]!);
    }
    // error per unit tolerance stays bounded (tolerance proportionality)
    expect(errs[3]!).toBeLessThan(1e-8);
  });

  it('with β = 0 (I control) takes exactly the steps of SciPy solve_ivp RK45 and returns its dense output', () => {
    // Reference: SciPy 1.17.1, solve_ivp(f, (0, 10), [1, 0], method='RK45', rtol, atol, t_eval=[2.5, 10])
    // for x'' = −4x; nfev and the outputs printed by Python (repr).
    const scipy = [
      [1e-3, 1e-6, 152, 0.2848059182936318, 0.4026268472086679, -1.83027337019469],
      [1e-6, 1e-9, 728, 0.2836623089362374, 0.4080801836537295, -1.8258868676216342],
      [1e-9, 1e-12, 2528, 0.2836621853532848, 0.4080820606169557, -1.8258904972324188],
    ] as const;
    for (const [rtol, atol, nfev, x25, x10, v10] of scipy) {
      const sol = dopri5(oscillator, 0, new Float64Array([1, 0]), [2.5, 10], { rtol, atol, beta: 0 });
      expect(sol.stats.rhsEvaluations).toBe(nfev);
      // same arithmetic up to summation order: agreement to ~1e-14
      expect(Math.abs(sol.y[0]! - x25)).toBeLessThan(1e-13);
      expect(Math.abs(sol.y[2]! - x10)).toBeLessThan(1e-13);
      expect(Math.abs(sol.y[3]! - v10)).toBeLessThan(1e-13);
    }
  });

  it('streams outputs through onOutput and handles repeated and initial times', () => {
    const seen: [number, number, number][] = [];
    const sol = dopri5(exponential, 1, new Float64Array([2]), [1, 1, 1.5, 1.5, 3], {
      rtol: 1e-9,
      onOutput: (k, t, y) => seen.push([k, t, y[0]!]),
    });
    expect(sol.y.length).toBe(0);
    expect(seen.map((s) => s[0])).toEqual([0, 1, 2, 3, 4]);
    expect(seen[0]![2]).toBe(2);
    expect(Math.abs(seen[2]![2] - 2 * Math.exp(-0.5))).toBeLessThan(1e-8);
    expect(seen[3]![2]).toBe(seen[2]![2]);
    expect(Math.abs(seen[4]![2] - 2 * Math.exp(-2))).toBeLessThan(1e-8);
  });

  it('PI control (β = 0.04) and I control (β = 0) both meet the tolerance on a mildly stiff problem', () => {
    // y' = −50 (y − cos t): stiffness limits the step; the controller must not oscillate wildly
    const f: OdeRhs = (t, y, d) => {
      d[0] = -50 * (y[0]! - Math.cos(t));
    };
    // exact solution with y(0) = 0
    const exact = (t: number) =>
      (2500 / 2501) * Math.cos(t) + (50 / 2501) * Math.sin(t) - (2500 / 2501) * Math.exp(-50 * t);
    for (const beta of [0, 0.04]) {
      const sol = dopri5(f, 0, new Float64Array([0]), [5], { rtol: 1e-6, atol: 1e-9, beta });
      expect(Math.abs(sol.y[0]! - exact(5))).toBeLessThan(1e-5);
      expect(sol.stats.rejectedSteps).toBeLessThan(sol.stats.acceptedSteps);
    }
  });

  it('rejects bad inputs and reports exhaustion', () => {
    const y0 = new Float64Array([1]);
    expect(() => dopri5(exponential, 0, y0, [1, 0.5])).toThrow(InvalidArgumentError);
    expect(() => dopri5(exponential, 0, y0, [-1])).toThrow(/tEval\[0\]/);
    expect(() => dopri5(exponential, 0, y0, [1], { rtol: 0 })).toThrow(/rtol/);
    expect(() => dopri5(exponential, 0, y0, [1], { atol: new Float64Array(2) })).toThrow(/atol/);
    expect(() => dopri5(exponential, 0, new Float64Array([Number.NaN]), [1])).toThrow(/y0\[0\]/);
    expect(() => dopri5(exponential, 0, y0, [100], { rtol: 1e-12, maxSteps: 5 })).toThrow(EntkError);
    // blow-up in finite time: y' = y², y(0) = 1 explodes at t = 1
    expect(() =>
      dopri5(
        (_t, y, d) => {
          d[0] = y[0]! * y[0]!;
        },
        0,
        y0,
        [2],
        { maxSteps: 10_000 },
      ),
    ).toThrow(EntkError);
  });
});
