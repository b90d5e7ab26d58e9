/**
 * Dormand–Prince 5(4) — the explicit embedded Runge–Kutta pair of Hairer, Nørsett & Wanner,
 * "Solving Ordinary Differential Equations I", §II.5 (the method behind Fortran DOPRI5, SciPy's
 * `solve_ivp(method='RK45')` and MATLAB's `ode45`): 7 stages with FSAL (6 right-hand-side
 * evaluations per accepted step), local extrapolation (the 5th-order solution is propagated),
 * error control on the embedded 4th-order solution with a mixed tolerance, step-size PI control
 * (Hairer's β-stabilised controller; β = 0 gives the classical I controller SciPy uses), and
 * Hairer's 4th-order continuous extension for output at requested times.
 *
 * Error norm (same as SciPy and Hairer): RMS over components of `err_i / (atol_i + rtol · max(|y_i|, |y_new_i|))`;
 * a step is accepted when the norm is ≤ 1.
 */
import { assertArgument, EntkError, InvalidArgumentError } from '../errors.js';

/** Right-hand side: write dy/dt at (t, y) into `dydt` (do not keep references to the arrays). */
export type OdeRhs = (t: number, y: Float64Array, dydt: Float64Array) => void;

/**
 * The project's ODE tolerances, in one place: the default of the integrator, of POP-ODE and of
 * `entk predict`, and the tighter pair the experiments predict with (solver error far below the
 * laziness and discretisation gaps they measure).
 */
export const ODE_TOLERANCES = { rtol: 1e-6, atol: 1e-9 } as const;
export const TIGHT_ODE_TOLERANCES = { rtol: 1e-8, atol: 1e-10 } as const;

export interface Dopri5Options {
  /** Relative tolerance. Default {@link ODE_TOLERANCES} (1e-6). */
  rtol?: number;
  /** Absolute tolerance, one number or one per component. Default {@link ODE_TOLERANCES} (1e-9). */
  atol?: number | Float64Array;
  /** First step size; default: Hairer's automatic estimate (SciPy's `select_initial_step`). */
  firstStep?: number;
  /** Largest step size. Default Infinity. */
  maxStep?: number;
  /** Give up (EntkError) after this many steps, accepted or rejected. Default 1 000 000. */
  maxSteps?: number;
  /** PI stabilisation β of the step controller (Hairer recommends 0.04; 0 = plain I control). Default 0.04. */
  beta?: number;
  /** Safety factor of the step controller. Default 0.9. */
  safety?: number;
  /** Smallest allowed step-size ratio h_new / h. Default 0.2. */
  minFactor?: number;
  /** Largest allowed step-size ratio h_new / h. Default 10. */
  maxFactor?: number;
  /**
   * Called with each output (index into `tEval`, time, state) as soon as it is available; the
   * state array is reused — copy what you keep. When given, `dopri5` does not store the outputs.
   */
  onOutput?: (index: number, t: number, y: Float64Array) => void;
}

export interface OdeStats {
  /** Right-hand-side evaluations, including the ones of the initial step selection. */
  rhsEvaluations: number;
  acceptedSteps: number;
  rejectedSteps: number;
  /** Wall-clock milliseconds spent inside `dopri5`. */
  milliseconds: number;
}

export interface OdeSolution {
  /** The output times (a copy of `tEval`). */
  t: Float64Array;
  /** The states at `t`, [T, dim] row-major (empty when `onOutput` was given). */
  y: Float64Array;
  stats: OdeStats;
}

// Butcher tableau of DOPRI5.
const C2 = 1 / 5;
const C3 = 3 / 10;
const C4 = 4 / 5;
const C5 = 8 / 9;
const A21 = 1 / 5;
const A31 = 3 / 40;
const A32 = 9 / 40;
const A41 = 44 / 45;
const A42 = -56 / 15;
const A43 = 32 / 9;
const A51 = 19372 / 6561;
const A52 = -25360 / 2187;
const A53 = 64448 / 6561;
const A54 = -212 / 729;
const A61 = 9017 / 3168;
const A62 = -355 / 33;
const A63 = 46732 / 5247;
const A64 = 49 / 176;
const A65 = -5103 / 18656;
const A71 = 35 / 384;
const A73 = 500 / 1113;
const A74 = 125 / 192;
const A75 = -2187 / 6784;
const A76 = 11 / 84;
// error coefficients: b(5th) − b̂(4th)
const E1 = 71 / 57600;
const E3 = -71 / 16695;
const E4 = 71 / 1920;
const E5 = -17253 / 339200;
const E6 = 22 / 525;
const E7 = -1 / 40;
// dense output (Hairer's CONTD5)
const D1 = -12715105075 / 11282082432;
const D3 = 87487479700 / 32700410799;
const D4 = -10690763975 / 1880347072;
const D5 = 701980252875 / 199316789632;
const D6 = -1453857185 / 822651844;
const D7 = 69997945 / 29380423;

/**
 * Integrate `dy/dt = f(t, y)` from `t0` with `y(t0) = y0`, returning `y` at the (non-decreasing,
 * ≥ t0) times `tEval`. Forward in time only (substitute `s = −t` to go backwards).
 *
 * @example
 *   // y' = −y, y(0) = 1 → y(1) = e⁻¹
 *   const sol = dopri5((t, y, d) => { d[0] = -y[0]; }, 0, new Float64Array([1]), [1]);
 */
export function dopri5(
  f: OdeRhs,
  t0: number,
  y0: Float64Array,
  tEval: ArrayLike<number>,
  options: Dopri5Options = {},
): OdeSolution {
  const started = performance.now();
  const dim = y0.length;
  const rtol = options.rtol ?? ODE_TOLERANCES.rtol;
  const atolOpt = options.atol ?? ODE_TOLERANCES.atol;
  const maxStep = options.maxStep ?? Number.POSITIVE_INFINITY;
  const maxSteps = options.maxSteps ?? 1_000_000;
  const beta = options.beta ?? 0.04;
  const safety = options.safety ?? 0.9;
  const minFactor = options.minFactor ?? 0.2;
  const maxFactor = options.maxFactor ?? 10;
  assertArgument(Number.isFinite(t0), 't0', t0, 'a finite number');
  assertArgument(rtol > 0 && Number.isFinite(rtol), 'rtol', rtol, 'a positive finite number');
  const atol = typeof atolOpt === 'number' ? null : atolOpt;
  const atolScalar = typeof atolOpt === 'number' ? atolOpt : 0;
  if (atol) {
    assertArgument(atol.length === dim, 'atol', atol, `a number or a Float64Array of length ${dim}`);
    for (let i = 0; i < dim; i++) assertArgument(atol[i]! >= 0, `atol[${i}]`, atol[i], 'a number ≥ 0');
  } else {
    assertArgument(atolScalar >= 0 && Number.isFinite(atolScalar), 'atol', atolOpt, 'a finite number ≥ 0');
  }
  assertArgument(maxStep > 0, 'maxStep', maxStep, 'a positive number');
  assertArgument(Number.isInteger(maxSteps) && maxSteps > 0, 'maxSteps', maxSteps, 'a positive integer');
  assertArgument(beta >= 0 && beta <= 0.2, 'beta', beta, 'a number in [0, 0.2]');
  assertArgument(safety > 0 && safety <= 1, 'safety', safety, 'a number in (0, 1]');
  assertArgument(minFactor > 0 && minFactor < 1, 'minFactor', minFactor, 'a number in (0, 1)');
  assertArgument(maxFactor > 1, 'maxFactor', maxFactor, 'a number > 1');
  const T = tEval.length;
  const times = new Float64Array(T);
  for (let k = 0; k < T; k++) {
    const tk = tEval[k]!;
    if (!Number.isFinite(tk) || tk < t0 || (k > 0 && tk < times[k - 1]!)) {
      throw new InvalidArgumentError(
        `tEval[${k}]`,
        tk,
        `a finite time ≥ t0 = ${t0} and ≥ the previous output time`,
      );
    }
    times[k] = tk;
  }
  for (let i = 0; i < dim; i++) {
    if (!Number.isFinite(y0[i]!)) throw new InvalidArgumentError(`y0[${i}]`, y0[i], 'a finite number');
  }

  const out = options.onOutput ? new Float64Array(0) : new Float64Array(T * dim);
  const emit = (k: number, tk: number, yk: Float64Array) => {
    if (options.onOutput) options.onOutput(k, tk, yk);
    else out.set(yk, k * dim);
  };
  const stats: OdeStats = { rhsEvaluations: 0, acceptedSteps: 0, rejectedSteps: 0, milliseconds: 0 };
  const rhs = (t: number, y: Float64Array, d: Float64Array) => {
    stats.rhsEvaluations++;
    f(t, y, d);
  };

  let y = Float64Array.from(y0);
  let yNew = new Float64Array(dim);
  let k1 = new Float64Array(dim);
  const k2 = new Float64Array(dim);
  const k3 = new Float64Array(dim);
  const k4 = new Float64Array(dim);
  const k5 = new Float64Array(dim);
  const k6 = new Float64Array(dim);
  let k7 = new Float64Array(dim);
  const tmp = new Float64Array(dim);
  const scale = (i: number, a: number, b: number) =>
    (atol ? atol[i]! : atolScalar) + rtol * Math.max(Math.abs(a), Math.abs(b));

  let next = 0;
  while (next < T && times[next] === t0) emit(next++, t0, y);
  const tEnd = T > 0 ? times[T - 1]! : t0;
  if (next >= T) {
    stats.milliseconds = performance.now() - started;
    return { t: times, y: out, stats };
  }

  rhs(t0, y, k1);
  let h: number;
  if (options.firstStep !== undefined) {
    assertArgument(options.firstStep > 0, 'firstStep', options.firstStep, 'a positive number');
    h = options.firstStep;
  } else {
    h = initialStep(rhs, t0, y, k1, rtol, atol, atolScalar, tmp, k2);
  }
  h = Math.min(h, maxStep, tEnd - t0);
  let t = t0;
  let facOld = 1e-4;
  let rejectedLast = false;
  let steps = 0;
  const expo1 = 0.2 - beta * 0.75;
  const yOut = new Float64Array(dim);
  const c1 = new Float64Array(dim);
  const c2 = new Float64Array(dim);
  const c3 = new Float64Array(dim);
  const c4 = new Float64Array(dim);

  while (next < T) {
    if (steps++ >= maxSteps) {
      throw new EntkError(
        `dopri5: more than ${maxSteps} steps before t = ${tEnd} (reached t = ${t}); raise maxSteps`,
      );
    }
    if (!(h > 0) || t + h === t) {
      throw new EntkError(
        `dopri5: step size underflow at t = ${t} (h = ${h}); the problem may be stiff or singular`,
      );
    }
    // Hairer: stretch the step by up to 1% rather than leave a sliver before the end
    const lastStep = t + 1.01 * h >= tEnd;
    if (lastStep) h = tEnd - t;
    // stages
    for (let i = 0; i < dim; i++) tmp[i] = y[i]! + h * A21 * k1[i]!;
    rhs(t + C2 * h, tmp, k2);
    for (let i = 0; i < dim; i++) tmp[i] = y[i]! + h * (A31 * k1[i]! + A32 * k2[i]!);
    rhs(t + C3 * h, tmp, k3);
    for (let i = 0; i < dim; i++) tmp[i] = y[i]! + h * (A41 * k1[i]! + A42 * k2[i]! + A43 * k3[i]!);
    rhs(t + C4 * h, tmp, k4);
    for (let i = 0; i < dim; i++) {
      tmp[i] = y[i]! + h * (A51 * k1[i]! + A52 * k2[i]! + A53 * k3[i]! + A54 * k4[i]!);
    }
    rhs(t + C5 * h, tmp, k5);
    for (let i = 0; i < dim; i++) {
      tmp[i] = y[i]! + h * (A61 * k1[i]! + A62 * k2[i]! + A63 * k3[i]! + A64 * k4[i]! + A65 * k5[i]!);
    }
    const tNew = lastStep ? tEnd : t + h;
    rhs(tNew, tmp, k6);
    for (let i = 0; i < dim; i++) {
      yNew[i] = y[i]! + h * (A71 * k1[i]! + A73 * k3[i]! + A74 * k4[i]! + A75 * k5[i]! + A76 * k6[i]!);
    }
    rhs(tNew, yNew, k7);
    // error estimate
    let sum = 0;
    for (let i = 0; i < dim; i++) {
      const e = h * (E1 * k1[i]! + E3 * k3[i]! + E4 * k4[i]! + E5 * k5[i]! + E6 * k6[i]! + E7 * k7[i]!);
      const s = e / scale(i, y[i]!, yNew[i]!);
      sum += s * s;
    }
    const err = dim > 0 ? Math.sqrt(sum / dim) : 0;
    if (!Number.isFinite(err)) {
      // treat as a failed step: shrink strongly
      stats.rejectedSteps++;
      h *= minFactor;
      rejectedLast = true;
      continue;
    }
    const fac11 = err > 0 ? err ** expo1 : 0;
    if (err <= 1) {
      // accepted: dense output for the requested times in (t, tNew]
      if (next < T && times[next]! <= tNew) {
        let prepared = false;
        for (; next < T && times[next]! <= tNew; next++) {
          const tk = times[next]!;
          if (tk === tNew) {
            emit(next, tk, yNew);
            continue;
          }
          if (!prepared) {
            // Hairer's continuous extension coefficients, once per step
            for (let i = 0; i < dim; i++) {
              const ydiff = yNew[i]! - y[i]!;
              const bspl = h * k1[i]! - ydiff;
              c1[i] = ydiff;
              c2[i] = bspl;
              c3[i] = ydiff - h * k7[i]! - bspl;
              c4[i] = h * (D1 * k1[i]! + D3 * k3[i]! + D4 * k4[i]! + D5 * k5[i]! + D6 * k6[i]! + D7 * k7[i]!);
            }
            prepared = true;
          }
          const theta = (tk - t) / h;
          const theta1 = 1 - theta;
          for (let i = 0; i < dim; i++) {
            yOut[i] = y[i]! + theta * (c1[i]! + theta1 * (c2[i]! + theta * (c3[i]! + theta1 * c4[i]!)));
          }
          emit(next, tk, yOut);
        }
      }
      stats.acceptedSteps++;
      // new step size (Hairer's PI controller)
      let fac = fac11 / facOld ** beta;
      fac = Math.max(1 / maxFactor, Math.min(1 / minFactor, fac / safety));
      let hNew = err === 0 ? h * maxFactor : h / fac;
      facOld = Math.max(err, 1e-4);
      if (rejectedLast) hNew = Math.min(hNew, h);
      rejectedLast = false;
      t = tNew;
      let swap = y;
      y = yNew;
      yNew = swap;
      swap = k1;
      k1 = k7;
      k7 = swap;
      h = Math.min(hNew, maxStep);
    } else {
      stats.rejectedSteps++;
      h /= Math.min(1 / minFactor, fac11 / safety);
      rejectedLast = true;
    }
  }
  stats.milliseconds = performance.now() - started;
  return { t: times, y: out, stats };
}

/** Hairer's starting step estimate (RMS norms, as SciPy's `select_initial_step`). */
function initialStep(
  f: OdeRhs,
  t0: number,
  y0: Float64Array,
  f0: Float64Array,
  rtol: number,
  atol: Float64Array | null,
  atolScalar: number,
  y1: Float64Array,
  f1: Float64Array,
): number {
  const dim = y0.length;
  if (dim === 0) return 1;
  let d0 = 0;
  let d1 = 0;
  const sc = new Float64Array(dim);
  for (let i = 0; i < dim; i++) {
    sc[i] = (atol ? atol[i]! : atolScalar) + rtol * Math.abs(y0[i]!);
    d0 += (y0[i]! / sc[i]!) ** 2;
    d1 += (f0[i]! / sc[i]!) ** 2;
  }
  d0 = Math.sqrt(d0 / dim);
  d1 = Math.sqrt(d1 / dim);
  const h0 = d0 < 1e-5 || d1 < 1e-5 || !Number.isFinite(d0 / d1) ? 1e-6 : (0.01 * d0) / d1;
  for (let i = 0; i < dim; i++) y1[i] = y0[i]! + h0 * f0[i]!;
  f(t0 + h0, y1, f1);
  let d2 = 0;
  for (let i = 0; i < dim; i++) d2 += ((f1[i]! - f0[i]!) / sc[i]!) ** 2;
  d2 = Math.sqrt(d2 / dim) / h0;
  const h1 = d1 <= 1e-15 && d2 <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : (0.01 / Math.max(d1, d2)) ** (1 / 5);
  return Math.min(100 * h0, h1);
}
