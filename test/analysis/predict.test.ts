import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracy,
  crossEntropyFlow,
  crossEntropyLoss,
  mseFlow,
  mseLoss,
  oneHot,
} from '../../src/analysis/index.js';
import { dopri5 } from '../../src/dynamics/index.js';
import { EntkError, InvalidArgumentError } from '../../src/errors.js';
import { readNpy, writeNpy } from '../../src/io/index.js';
import { Rng } from '../../src/util/rng.js';
import { python } from '../io/helpers.js';
import { tempDir } from '../util/temp-dir.js';
import { maxRelDiff, psdKernel, RUN_SCIPY_TESTS, randomLabels } from './helpers.js';

const dir = tempDir('analysis-predict');

/** A joint PSD kernel over N train + M test points, split into its blocks. */
function split(N: number, M: number, seed: number) {
  const P = N + M;
  const K = psdKernel(P, P + 5, seed, 10); // full rank
  const trainTrain = new Float64Array(N * N);
  const testTrain = new Float64Array(M * N);
  for (let a = 0; a < N; a++) for (let b = 0; b < N; b++) trainTrain[a * N + b] = K[a * P + b]!;
  for (let a = 0; a < M; a++) for (let b = 0; b < N; b++) testTrain[a * N + b] = K[(N + a) * P + b]!;
  return { K, trainTrain, testTrain };
}

function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: n }, () => scale * rng.normal());
}

/** ḟ = −(1/N) K_rows,train (f_train − y) for [train; test] integrated by dopri5 at tight tolerance. */
function integrate(
  rowsKernel: (row: number, col: number) => number,
  n: number,
  m: number,
  C: number,
  N: number,
  y: Float64Array,
  f0: Float64Array,
  times: number[],
): Float64Array {
  const sol = dopri5(
    (_t, f, df) => {
      for (let r = 0; r < n + m; r++) {
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let u = 0; u < n; u++) s += rowsKernel(r, u) * (f[u * C + c]! - y[u * C + c]!);
          df[r * C + c] = -s / N;
        }
      }
    },
    0,
    f0,
    times,
    { rtol: 1e-11, atol: 1e-12 },
  );
  return sol.y;
}

describe('mseFlow', () => {
  const N = 40;
  const M = 15;
  const V = 3;
  const { trainTrain, testTrain } = split(N, M, 5);
  const labels = randomLabels(N, V, 1);
  const f0Train = randomArray(N * V, 2, 0.3);
  const f0Test = randomArray(M * V, 3, 0.3);
  const times = [0, 0.5, 5, 60];

  it('scalar kernel: closed form equals a float64 ODE integration of ḟ = −K(f − y)/N (train and test)', () => {
    const flow = mseFlow({
      numClasses: V,
      trainTrain,
      testTrain,
      labels,
      initialTrain: f0Train,
      initialTest: f0Test,
    });
    const kernel = (r: number, u: number) => (r < N ? trainTrain[r * N + u]! : testTrain[(r - N) * N + u]!);
    const y = oneHot(labels, V);
    const ode = integrate(kernel, N, M, V, N, y, Float64Array.from([...f0Train, ...f0Test]), times);
    times.forEach((t, k) => {
      const out = flow.at(t);
      const ref = ode.subarray(k * (N + M) * V, (k + 1) * (N + M) * V);
      expect(maxRelDiff(out.train, ref.subarray(0, N * V))).toBeLessThan(1e-8);
      expect(maxRelDiff(out.test, ref.subarray(N * V))).toBeLessThan(1e-8);
    });
    // t = 0 is f₀ exactly; t → ∞ interpolates the training targets (K has full rank here)
    expect(flow.at(0).test).toEqual(f0Test);
    expect(maxRelDiff(flow.at(Number.POSITIVE_INFINITY).train, y)).toBeLessThan(1e-6);
  });

  it('full kernel [N·V, N·V]: closed form equals the ODE integration', () => {
    const n = 12;
    const m = 5;
    const { trainTrain: kf, testTrain: kt } = split(n * V, m * V, 9); // a PSD kernel over (point, output) pairs
    const lab = randomLabels(n, V, 4);
    const flow = mseFlow({ numClasses: V, trainTrain: kf, testTrain: kt, labels: lab });
    const y = oneHot(lab, V);
    const kernel = (r: number, u: number) => (r < n * V ? kf[r * n * V + u]! : kt[(r - n * V) * n * V + u]!);
    const ode = integrate(kernel, n * V, m * V, 1, n, y, new Float64Array((n + m) * V), [3]);
    const out = flow.at(3);
    expect(maxRelDiff(out.train, ode.subarray(0, n * V))).toBeLessThan(1e-8);
    expect(maxRelDiff(out.test, ode.subarray(n * V))).toBeLessThan(1e-8);
  });

  it.runIf(RUN_SCIPY_TESTS)('matches scipy.linalg.expm (finite t) and a ridge solve (t = ∞)', async () => {
    const files = { tt: 'tt.npy', xt: 'xt.npy', y: 'y.npy', f0: 'f0.npy', g0: 'g0.npy' };
    await writeNpy(path.join(dir, files.tt), { dtype: 'float64', shape: [N, N], data: trainTrain });
    await writeNpy(path.join(dir, files.xt), { dtype: 'float64', shape: [M, N], data: testTrain });
    await writeNpy(path.join(dir, files.y), { dtype: 'float64', shape: [N, V], data: oneHot(labels, V) });
    await writeNpy(path.join(dir, files.f0), { dtype: 'float64', shape: [N, V], data: f0Train });
    await writeNpy(path.join(dir, files.g0), { dtype: 'float64', shape: [M, V], data: f0Test });
    const ridge = 0.7;
    python(
      `import scipy.linalg, os
d = sys.argv[1]
K, X, Y, F, G = (np.load(os.path.join(d, f)) for f in ['tt.npy', 'xt.npy', 'y.npy', 'f0.npy', 'g0.npy'])
N = K.shape[0]; t = 5.0; lam = ${ridge}
E = scipy.linalg.expm(-K * t / N)
train = Y + E @ (F - Y)
test = G + X @ np.linalg.solve(K, (np.eye(N) - E) @ (Y - F))
Kr = K + lam * np.eye(N)
inf = G + X @ np.linalg.solve(Kr, Y - F)
np.save(os.path.join(d, 'train.npy'), train); np.save(os.path.join(d, 'test.npy'), test); np.save(os.path.join(d, 'inf.npy'), inf)`,
      dir,
    );
    const read = async (f: string) => (await readNpy(path.join(dir, f))).data as Float64Array;
    const input = {
      numClasses: V,
      trainTrain,
      testTrain,
      labels,
      initialTrain: f0Train,
      initialTest: f0Test,
    };
    const out = mseFlow(input).at(5);
    expect(maxRelDiff(out.train, await read('train.npy'))).toBeLessThan(1e-9);
    expect(maxRelDiff(out.test, await read('test.npy'))).toBeLessThan(1e-7);
    const inf = mseFlow(input, { ridge }).at(Number.POSITIVE_INFINITY);
    expect(maxRelDiff(inf.test, await read('inf.npy'))).toBeLessThan(1e-9);
  });

  it('with a ridge: training outputs are f₀ + K α_t, at t = ∞ the kernel ridge fit K(K + λI)⁻¹(Y − f₀) (float64 solve, ODE)', () => {
    const ridge = 0.7;
    const y = oneHot(labels, V);
    // Direct ridge solve: α = (K + λI)⁻¹ (Y − f₀) by Gaussian elimination with partial pivoting.
    const a = Float64Array.from(trainTrain);
    for (let i = 0; i < N; i++) a[i * N + i] = a[i * N + i]! + ridge;
    const rhs = Float64Array.from(y, (v, i) => v - f0Train[i]!);
    for (let c = 0; c < N; c++) {
      let p = c;
      for (let r = c + 1; r < N; r++) if (Math.abs(a[r * N + c]!) > Math.abs(a[p * N + c]!)) p = r;
      for (let j = 0; j < N; j++) [a[c * N + j], a[p * N + j]] = [a[p * N + j]!, a[c * N + j]!];
      for (let j = 0; j < V; j++) [rhs[c * V + j], rhs[p * V + j]] = [rhs[p * V + j]!, rhs[c * V + j]!];
      for (let r = c + 1; r < N; r++) {
        const f = a[r * N + c]! / a[c * N + c]!;
        for (let j = c; j < N; j++) a[r * N + j] = a[r * N + j]! - f * a[c * N + j]!;
        for (let j = 0; j < V; j++) rhs[r * V + j] = rhs[r * V + j]! - f * rhs[c * V + j]!;
      }
    }
    const alpha = new Float64Array(N * V);
    for (let r = N - 1; r >= 0; r--) {
      for (let j = 0; j < V; j++) {
        let s = rhs[r * V + j]!;
        for (let c = r + 1; c < N; c++) s -= a[r * N + c]! * alpha[c * V + j]!;
        alpha[r * V + j] = s / a[r * N + r]!;
      }
    }
    const fit = Float64Array.from(f0Train);
    for (let u = 0; u < N; u++)
      for (let w = 0; w < N; w++)
        for (let j = 0; j < V; j++)
          fit[u * V + j] = fit[u * V + j]! + trainTrain[u * N + w]! * alpha[w * V + j]!;
    const flow = mseFlow(
      { numClasses: V, trainTrain, testTrain, labels, initialTrain: f0Train, initialTest: f0Test },
      { ridge },
    );
    const inf = flow.at(Number.POSITIVE_INFINITY);
    expect(maxRelDiff(inf.train, fit)).toBeLessThan(1e-9);
    // not the targets: the ridge keeps the fit off Y
    expect(maxRelDiff(inf.train, y)).toBeGreaterThan(1e-3);
    // finite t: α̇ = −((K + λI) α − (Y − f₀))/N (gradient flow of the loss + (λ/2N)‖θ − θ₀‖²)
    const ode = dopri5(
      (_t, al, da) => {
        for (let u = 0; u < N; u++)
          for (let j = 0; j < V; j++) {
            let s = ridge * al[u * V + j]! - (y[u * V + j]! - f0Train[u * V + j]!);
            for (let w = 0; w < N; w++) s += trainTrain[u * N + w]! * al[w * V + j]!;
            da[u * V + j] = -s / N;
          }
      },
      0,
      new Float64Array(N * V),
      [5],
      { rtol: 1e-11, atol: 1e-12 },
    ).y;
    const ref = Float64Array.from(f0Train);
    for (let u = 0; u < N; u++)
      for (let w = 0; w < N; w++)
        for (let j = 0; j < V; j++)
          ref[u * V + j] = ref[u * V + j]! + trainTrain[u * N + w]! * ode[w * V + j]!;
    expect(maxRelDiff(flow.at(5).train, ref)).toBeLessThan(1e-8);
    flow.dispose();
  });

  it('a singular kernel: t = ∞ uses the pseudo-inverse, finite t stays finite', () => {
    const low = psdKernel(10, 3, 2); // rank 3
    const lab = randomLabels(10, 2, 0);
    const flow = mseFlow({ numClasses: 2, trainTrain: low, testTrain: low.subarray(0, 20), labels: lab });
    const inf = flow.at(Number.POSITIVE_INFINITY);
    const late = flow.at(1e9);
    expect(inf.test.every(Number.isFinite)).toBe(true);
    expect(maxRelDiff(late.train, inf.train)).toBeLessThan(1e-6);
  });

  it('dispose() releases the decomposition: later calls are refused', () => {
    const flow = mseFlow({ numClasses: V, trainTrain, testTrain, labels });
    const again = mseFlow({ numClasses: V, trainTrain, testTrain, labels });
    const eigen = flow.eigen; // the explicit vectors, computed now
    const out = flow.at(2);
    flow.dispose();
    flow.dispose(); // idempotent
    expect(() => flow.at(2)).toThrow(EntkError);
    expect(() => flow.at(2)).toThrow('mseFlow: used after dispose()');
    expect(() => flow.eigen).toThrow('mseFlow: used after dispose()');
    // what was handed out before stays valid; another flow on the same split is untouched
    expect(eigen.vectors!.length).toBe(N * N);
    expect(again.at(2)).toEqual(out);
    again.dispose();
  });

  it('bad input', () => {
    expect(() => mseFlow({ numClasses: V, trainTrain, labels }, { ridge: -1 })).toThrow(/ridge/);
    expect(() => mseFlow({ numClasses: V, trainTrain: trainTrain.subarray(1), labels })).toThrow(
      InvalidArgumentError,
    );
    expect(() => mseFlow({ numClasses: V, trainTrain, testTrain: testTrain.subarray(1), labels })).toThrow(
      /testTrain/,
    );
    expect(() => mseFlow({ numClasses: V, trainTrain, labels: [...labels.slice(1), 7] })).toThrow(/labels/);
    expect(() => mseFlow({ numClasses: V, trainTrain, labels }).at(-1)).toThrow(/t: expected/);
  });
});

describe('crossEntropyFlow', () => {
  it('equals a plain float64 integration of ż = (1/N) K (e − softmax(z)) for train and test points', () => {
    const N = 12;
    const M = 6;
    const V = 3;
    const { trainTrain, testTrain } = split(N, M, 21);
    const labels = randomLabels(N, V, 5);
    const z0 = randomArray((N + M) * V, 6, 0.5);
    const times = [0, 1, 4];
    const res = crossEntropyFlow(
      {
        numClasses: V,
        trainTrain,
        testTrain,
        labels,
        initialTrain: z0.slice(0, N * V),
        initialTest: z0.slice(N * V),
      },
      { times, rtol: 1e-11, atol: 1e-12 },
    );
    const ref = dopri5(
      (_t, z, dz) => {
        const r = new Float64Array(N * V);
        for (let u = 0; u < N; u++) {
          let m = -Infinity;
          for (let i = 0; i < V; i++) m = Math.max(m, z[u * V + i]!);
          let s = 0;
          for (let i = 0; i < V; i++) s += Math.exp(z[u * V + i]! - m);
          for (let i = 0; i < V; i++)
            r[u * V + i] = (i === labels[u] ? 1 : 0) - Math.exp(z[u * V + i]! - m) / s;
        }
        for (let a = 0; a < N + M; a++) {
          const row = (u: number) => (a < N ? trainTrain[a * N + u]! : testTrain[(a - N) * N + u]!);
          for (let i = 0; i < V; i++) {
            let s = 0;
            for (let u = 0; u < N; u++) s += row(u) * r[u * V + i]!;
            dz[a * V + i] = s / N;
          }
        }
      },
      0,
      z0,
      times,
      { rtol: 1e-11, atol: 1e-12 },
    ).y;
    const P = N + M;
    for (let k = 0; k < times.length; k++) {
      for (let a = 0; a < P; a++) {
        const zr = ref.subarray((k * P + a) * V, (k * P + a + 1) * V);
        const lse = Math.log(zr.reduce((s, v) => s + Math.exp(v), 0));
        for (let i = 0; i < V; i++) {
          const ours = a < N ? res.train[(k * N + a) * V + i]! : res.test[(k * M + a - N) * V + i]!;
          expect(Math.abs(ours - (zr[i]! - lse))).toBeLessThan(1e-8);
        }
      }
    }
  });
});

describe('metrics', () => {
  it('accuracy, MSE (½ mean over points) and cross-entropy by hand', () => {
    const f = new Float64Array([0.9, 0.1, 0.2, 0.8, 0.6, 0.4]);
    expect(accuracy(f, [0, 1, 1], 2)).toBeCloseTo(2 / 3, 15);
    // rows: (−0.1, 0.1), (0.2, −0.2), (0.6, −0.6) → ½(0.02 + 0.08 + 0.72)/3
    expect(mseLoss(f, oneHot([0, 1, 1], 2), 2)).toBeCloseTo((0.5 * (0.02 + 0.08 + 0.72)) / 3, 14);
    const lp = new Float64Array([Math.log(0.25), Math.log(0.75)]);
    expect(crossEntropyLoss(lp, [1], 2)).toBeCloseTo(-Math.log(0.75), 15);
  });
});
