import { describe, expect, it } from 'vitest';
import {
  type BatchSchedule,
  equationOne,
  FitnessOperator,
  fitness,
  linearizedGd,
  logitRhs,
  oneStepPredict,
  popMu,
  popOde,
  replicatorRhs,
  scheduleWeights,
  softmax,
  type Trajectory,
} from '../../src/dynamics/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  logLogSlope,
  maxAbsDiff,
  type RandomProblem,
  randomProblem,
  replicatorRhsNaive,
  splitKernel,
} from './reference.js';

function operatorOf(pr: RandomProblem, threads: number | 'auto' = 1) {
  return new FitnessOperator({ numClasses: pr.V, train: pr.train, observe: pr.observe }, { threads });
}
const problemOf = (pr: RandomProblem) => ({
  numClasses: pr.V,
  labels: pr.labels,
  initialLogits: pr.initialLogits,
});

/** probabilities at record k of a trajectory */
function probsAt(tr: Trajectory, k: number): Float64Array {
  const n = tr.numPoints * tr.numClasses;
  return tr.logProbs.slice(k * n, (k + 1) * n).map(Math.exp);
}

describe('POP-MU ≡ gradient descent on the linearised network (docs/theory.md#check-4-pop-mu-is-linearised-gd)', () => {
  const pr = randomProblem(11, 5, 3, 4, 12, 0.6);
  const schedules: [string, BatchSchedule][] = [
    ['full batch', { kind: 'full' }],
    ['minibatches', { kind: 'sequence', batches: [[0, 1], [2, 3, 4], [1]] }],
    ['single example repeated', { kind: 'sequence', batches: [[2]] }],
  ];
  for (const [name, schedule] of schedules) {
    for (const eta of [0.3, -0.2]) {
      it(`${name}, η = ${eta}: identical log-prob trajectories to 1e-11 over 40 steps`, () => {
        const op = operatorOf(pr);
        const mu = popMu(op, problemOf(pr), { learningRate: eta, steps: 40, schedule });
        const gd = linearizedGd(pr.jacobian, problemOf(pr), { learningRate: eta, steps: 40, schedule });
        expect(mu.steps).toEqual(gd.steps);
        expect(mu.logProbs.length).toBe(41 * pr.P * pr.V);
        // the dynamics moved (the identity is not trivially satisfied by a frozen state)
        expect(
          maxAbsDiff(mu.logProbs.subarray(0, pr.P * pr.V), mu.logProbs.subarray(40 * pr.P * pr.V)),
        ).toBeGreaterThan(0.05);
        expect(maxAbsDiff(mu.logProbs, gd.logProbs)).toBeLessThan(1e-11);
        op.dispose();
      });
    }
  }

  it('records only the requested steps', () => {
    const op = operatorOf(pr);
    const all = popMu(op, problemOf(pr), { learningRate: 0.1, steps: 10 });
    const some = popMu(op, problemOf(pr), { learningRate: 0.1, steps: 10, record: [0, 3, 3, 10] });
    const n = pr.P * pr.V;
    expect(some.steps).toEqual([0, 3, 3, 10]);
    expect(maxAbsDiff(some.logProbs.subarray(n, 2 * n), all.logProbs.subarray(3 * n, 4 * n))).toBe(0);
    expect(maxAbsDiff(some.logProbs.subarray(3 * n), all.logProbs.subarray(10 * n))).toBe(0);
    op.dispose();
  });
});

describe('POP-ODE (docs/theory.md#pop-ode, checks 5 and 6)', () => {
  const pr = randomProblem(21, 6, 3, 4, 10, 0.7);

  it('the fast replicator RHS equals a naive triple loop over the full kernel', () => {
    const op = operatorOf(pr);
    const a = softmax(pr.initialLogits, pr.V);
    for (const weight of [1 / pr.N, -1 / pr.N]) {
      const fast = new Float64Array(pr.P * pr.V);
      replicatorRhs(op, pr.labels, a, weight, fast);
      const naive = replicatorRhsNaive(pr.kernelAll, pr.N, pr.P, pr.V, pr.labels, a, weight);
      expect(maxAbsDiff(fast, naive)).toBeLessThan(1e-13);
      expect(Math.max(...naive.map(Math.abs))).toBeGreaterThan(1e-2);
      // logit form: dz differs from the full φ only by a per-point constant, so the induced
      // probability velocity a ⊙ (dz − ⟨a, dz⟩) is the same replicator field
      const dz = new Float64Array(pr.P * pr.V);
      logitRhs(op, pr.labels, Float64Array.from(pr.initialLogits), weight, dz);
      const induced = new Float64Array(pr.P * pr.V);
      for (let p = 0; p < pr.P; p++) {
        let m = 0;
        for (let i = 0; i < pr.V; i++) m += a[p * pr.V + i]! * dz[p * pr.V + i]!;
        for (let i = 0; i < pr.V; i++) induced[p * pr.V + i] = a[p * pr.V + i]! * (dz[p * pr.V + i]! - m);
      }
      expect(maxAbsDiff(induced, naive)).toBeLessThan(1e-13);
    }
    op.dispose();
  });

  it('logit form ≡ simplex form to solver tolerance, and the simplex form stays on the simplex', () => {
    const op = operatorOf(pr);
    const steps = Array.from({ length: 51 }, (_, k) => 4 * k); // t = 0 .. 20 with η = 0.1
    for (const [rtol, tol] of [
      [1e-6, 1e-5],
      [1e-10, 1e-8],
    ] as const) {
      const opts = { learningRate: 0.1, steps: 200, record: steps, rtol, atol: rtol * 1e-3 };
      const logit = popOde(op, problemOf(pr), { ...opts, form: 'logit' });
      const simplex = popOde(op, problemOf(pr), { ...opts, form: 'simplex' });
      const pl = logit.trajectory.logProbs.map(Math.exp);
      const ps = simplex.trajectory.logProbs.map(Math.exp);
      // the state moved substantially over the run
      expect(maxAbsDiff(pl.subarray(0, pr.P * pr.V), pl.subarray(50 * pr.P * pr.V))).toBeGreaterThan(0.1);
      // agreement in probability to a small multiple of the tolerance
      expect(maxAbsDiff(pl, ps)).toBeLessThan(tol);
      expect(simplex.stats.maxSimplexDefect).toBeLessThan(tol);
      expect(simplex.stats.minProbability).toBeGreaterThan(-tol);
      expect(logit.stats.maxSimplexDefect).toBe(0);
    }
    op.dispose();
  });

  it('POP-MU → POP-ODE with error slope 1 ± 0.15 in η (log–log)', () => {
    const op = operatorOf(pr);
    const T = 2;
    const etas = [0.2, 0.1, 0.05, 0.025, 0.0125];
    const errs = etas.map((eta) => {
      const n = Math.round(T / eta);
      const mu = popMu(op, problemOf(pr), { learningRate: eta, steps: n, record: [n] });
      const ode = popOde(op, problemOf(pr), {
        learningRate: eta,
        steps: n,
        record: [n],
        rtol: 1e-11,
        atol: 1e-14,
      });
      // Euclidean norm of the difference of the stacked probability vectors (the theorem's norm)
      const a = probsAt(mu, 0);
      const b = probsAt(ode.trajectory, 0);
      let s = 0;
      for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
      return Math.sqrt(s);
    });
    const slope = logLogSlope(etas, errs);
    expect(errs[0]!).toBeGreaterThan(1e-4); // a real gap to measure
    expect(slope).toBeGreaterThan(0.85);
    expect(slope).toBeLessThan(1.15);
    op.dispose();
  });

  it('minibatch POP-MU → POP-ODE of the schedule-averaged weights, slope 1 ± 0.15 (unequal batches)', () => {
    // N = 6 with batch size 4 gives batches of sizes 4, 2: points 0–3 weigh 1/8, points 4–5 weigh 1/4
    // in the cycle average, not 1/N. The full-batch flow is the wrong limit (its gap stays O(1)).
    const mb = randomProblem(19, 6, 2, 3, 12, 0.8);
    const op = operatorOf(mb);
    const schedule: BatchSchedule = {
      kind: 'sequence',
      batches: [
        [0, 1, 2, 3],
        [4, 5],
      ],
    };
    const T = 2;
    const etas = [0.2, 0.1, 0.05, 0.025, 0.0125];
    const norm = (a: Float64Array, b: Float64Array) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
      return Math.sqrt(s);
    };
    const withSchedule: number[] = [];
    const fullBatch: number[] = [];
    for (const eta of etas) {
      const n = Math.round(T / eta); // even: whole cycles
      const mu = probsAt(popMu(op, problemOf(mb), { learningRate: eta, steps: n, schedule, record: [n] }), 0);
      const opts = { learningRate: eta, steps: n, record: [n], rtol: 1e-11, atol: 1e-14 };
      withSchedule.push(norm(mu, probsAt(popOde(op, problemOf(mb), { ...opts, schedule }).trajectory, 0)));
      fullBatch.push(norm(mu, probsAt(popOde(op, problemOf(mb), opts).trajectory, 0)));
    }
    const slope = logLogSlope(etas, withSchedule);
    expect(withSchedule[0]!).toBeGreaterThan(1e-4);
    expect(slope).toBeGreaterThan(0.85);
    expect(slope).toBeLessThan(1.15);
    // the unweighted (1/N) flow does not converge: its gap at the smallest η is ≫ the real one
    expect(fullBatch[fullBatch.length - 1]!).toBeGreaterThan(0.5 * fullBatch[0]!);
    expect(fullBatch[fullBatch.length - 1]!).toBeGreaterThan(20 * withSchedule[withSchedule.length - 1]!);
    op.dispose();
  });

  it('scheduleWeights: the cycle average of the step weights; equal batches give the full-batch flow', () => {
    const w = scheduleWeights(
      {
        kind: 'sequence',
        batches: [
          [0, 1, 2, 3],
          [4, 5],
        ],
      },
      6,
    );
    expect([...w]).toEqual([1 / 8, 1 / 8, 1 / 8, 1 / 8, 1 / 4, 1 / 4]);
    // repeated indices count twice; Σ w = 1
    const w2 = scheduleWeights({ kind: 'sequence', batches: [[0, 0, 1], [2]] }, 3);
    expect(maxAbsDiff(w2, [1 / 3, 1 / 6, 1 / 2])).toBeLessThan(1e-15);
    expect([...scheduleWeights({ kind: 'full' }, 4)]).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(() => scheduleWeights({ kind: 'sequence', batches: [[0, 7]] }, 3)).toThrow(InvalidArgumentError);
    // batch size dividing N: the averaged weights are 1/N, so POP-ODE equals the full-batch flow
    const eq = randomProblem(23, 6, 2, 3, 12, 0.8);
    const op = operatorOf(eq);
    const opts = { learningRate: 0.1, steps: 20, record: [0, 5, 20], rtol: 1e-10, atol: 1e-13 };
    const even = popOde(op, problemOf(eq), {
      ...opts,
      schedule: {
        kind: 'sequence',
        batches: [
          [0, 1, 2],
          [3, 4, 5],
        ],
      },
    });
    const full = popOde(op, problemOf(eq), opts);
    expect(maxAbsDiff(even.trajectory.logProbs, full.trajectory.logProbs)).toBeLessThan(1e-12);
    const uneven = popOde(op, problemOf(eq), {
      ...opts,
      schedule: {
        kind: 'sequence',
        batches: [
          [0, 1, 2, 3],
          [4, 5],
        ],
      },
    });
    expect(maxAbsDiff(uneven.trajectory.logProbs, full.trajectory.logProbs)).toBeGreaterThan(1e-3);
    op.dispose();
  });

  it('matches the closed form of a single point with a scalar kernel', () => {
    // one finetune point, V = 2, K = k·I: logit gap g = z_y − z_other obeys ġ = k (1 − σ(g)) ·2 ... derive:
    // φ = K(e − π) = k(e − π); ż_y − ż_o = k((1 − π_y) − (−π_o)) = k(1 − π_y + π_o) = 2k(1 − π_y) = 2k σ(−g)
    // ⇒ e^{g} + g = e^{g0} + g0 + 2k t  (implicit), solved by Newton below.
    const k = 1.5;
    const train = new Float64Array([k, 0, 0, k]);
    const op = new FitnessOperator({ numClasses: 2, train });
    const z0 = new Float64Array([0.2, 0.7]); // label 0, g0 = −0.5
    const steps = [0, 10, 50, 100];
    const res = popOde(
      op,
      { numClasses: 2, labels: [0], initialLogits: z0 },
      { learningRate: 0.02, steps: 100, record: steps, rtol: 1e-10 },
    );
    const g0 = -0.5;
    steps.forEach((n, idx) => {
      const t = n * 0.02;
      const c = Math.exp(g0) + g0 + 2 * k * t;
      let g = g0;
      for (let it = 0; it < 50; it++) g -= (Math.exp(g) + g - c) / (Math.exp(g) + 1);
      const logPy = -Math.log1p(Math.exp(-g));
      expect(Math.abs(res.trajectory.logProbs[idx * 2]! - logPy)).toBeLessThan(1e-8);
    });
    op.dispose();
  });
});

describe('equation (1) and ascent', () => {
  const pr = randomProblem(31, 5, 4, 3, 9, 0.8);

  it('oneStepPredict equals the exact full-kernel equation (1) at every recorded step', () => {
    const op = operatorOf(pr);
    const schedule: BatchSchedule = { kind: 'sequence', batches: [[0, 1, 2], [3, 4], [4]] };
    const actual = linearizedGd(pr.jacobian, problemOf(pr), { learningRate: 0.2, steps: 6, schedule });
    const pred = oneStepPredict(op, pr.labels, actual, { learningRate: 0.2, schedule });
    const n = pr.P * pr.V;
    expect(pred.length).toBe(6 * n);
    // the kernel rows of all tracked points against the finetune points, [P·V, N·V]
    const kernelRows = new Float64Array(n * pr.N * pr.V);
    for (let a = 0; a < n; a++)
      for (let b = 0; b < pr.N * pr.V; b++) kernelRows[a * pr.N * pr.V + b] = pr.kernelAll[a * n + b]!;
    for (let s = 0; s < 6; s++) {
      const probs = probsAt(actual, s);
      const batch = schedule.batches[s % 3]!;
      const w = new Float64Array(pr.N);
      for (const u of batch) w[u] += 1 / batch.length;
      const exact = equationOne(kernelRows, probs, probs.subarray(0, pr.N * pr.V), pr.labels, w, pr.V, 0.2);
      expect(maxAbsDiff(pred.subarray(s * n, (s + 1) * n), exact)).toBeLessThan(1e-13);
    }
    // recording every 2nd step: the sum of the per-step weights at the interval start
    const sparse: Trajectory = {
      ...actual,
      steps: [0, 2, 4, 6],
      logProbs: new Float64Array(
        [0, 2, 4, 6].flatMap((s) => [...actual.logProbs.subarray(s * n, (s + 1) * n)]),
      ),
    };
    const pred2 = oneStepPredict(op, pr.labels, sparse, { learningRate: 0.2, schedule });
    expect(pred2.length).toBe(3 * n);
    for (let k = 0; k < 3; k++) {
      // weights of steps 2k and 2k+1 summed; probabilities at the interval start (step 2k)
      const w = new Float64Array(pr.N);
      for (const s of [2 * k, 2 * k + 1]) {
        const batch = schedule.batches[s % 3]!;
        for (const u of batch) w[u] += 1 / batch.length;
      }
      const probs = probsAt(actual, 2 * k);
      const exact = equationOne(kernelRows, probs, probs.subarray(0, pr.N * pr.V), pr.labels, w, pr.V, 0.2);
      const got = pred2.subarray(k * n, (k + 1) * n);
      expect(maxAbsDiff(got, exact)).toBeLessThan(1e-13);
      // not the single-step prediction: the summed weights matter
      expect(maxAbsDiff(got, pred.subarray(2 * k * n, (2 * k + 1) * n))).toBeGreaterThan(1e-3);
    }
    op.dispose();
  });

  it('the one-step prediction has first-order error: relative error ∝ η (slope 1 ± 0.15)', () => {
    const op = operatorOf(pr);
    const etas = [0.08, 0.04, 0.02, 0.01, 0.005];
    const rel = etas.map((eta) => {
      const actual = linearizedGd(pr.jacobian, problemOf(pr), { learningRate: eta, steps: 1 });
      const pred = oneStepPredict(op, pr.labels, actual, { learningRate: eta });
      const n = pr.P * pr.V;
      let num = 0;
      let den = 0;
      for (let i = 0; i < n; i++) {
        const d = actual.logProbs[n + i]! - actual.logProbs[i]!;
        num += (pred[i]! - d) ** 2;
        den += d * d;
      }
      return Math.sqrt(num / den);
    });
    const slope = logLogSlope(etas, rel);
    expect(rel[rel.length - 1]!).toBeLessThan(0.01);
    expect(slope).toBeGreaterThan(0.85);
    expect(slope).toBeLessThan(1.15);
    op.dispose();
  });

  it('gradient ascent flips the sign of the predicted and of the POP-MU change', () => {
    const op = operatorOf(pr);
    const actual = linearizedGd(pr.jacobian, problemOf(pr), { learningRate: 0.01, steps: 1 });
    const up = oneStepPredict(op, pr.labels, actual, { learningRate: 0.01 });
    const down = oneStepPredict(op, pr.labels, actual, { learningRate: -0.01 });
    for (let i = 0; i < up.length; i++) expect(down[i]).toBe(-up[i]!);
    const muUp = popMu(op, problemOf(pr), { learningRate: 0.01, steps: 1 });
    const muDown = popMu(op, problemOf(pr), { learningRate: -0.01, steps: 1 });
    const n = pr.P * pr.V;
    let scale = 0;
    for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(muUp.logProbs[n + i]! - muUp.logProbs[i]!));
    let checked = 0;
    for (let i = 0; i < n; i++) {
      const a = muUp.logProbs[n + i]! - muUp.logProbs[i]!;
      const b = muDown.logProbs[n + i]! - muDown.logProbs[i]!;
      // equal and opposite up to the second-order term, O(η²) ≪ the O(η) change
      expect(Math.abs(a + b)).toBeLessThan(0.02 * scale);
      if (Math.abs(a) < 0.05 * scale) continue;
      checked++;
      expect(Math.sign(b)).toBe(-Math.sign(a));
    }
    expect(checked).toBeGreaterThan(n / 2);
    // POP-ODE: the ascent flow over a short time is the mirror image to first order
    const ode = (eta: number) =>
      popOde(op, problemOf(pr), { learningRate: eta, steps: 1, rtol: 1e-10 }).trajectory.logProbs;
    const o1 = ode(0.001);
    const o2 = ode(-0.001);
    for (let i = 0; i < n; i++) {
      const a = o1[n + i]! - o1[i]!;
      const b = o2[n + i]! - o2[i]!;
      if (Math.abs(a) > 1e-7) expect(Math.sign(b)).toBe(-Math.sign(a));
    }
    op.dispose();
  });

  it('the exact fitness equals K(e − π) averaged with the weights', () => {
    // a 1-point, V = 2 hand computation
    const K = new Float64Array([2, 1, 1, 3]);
    const phi = fitness(K, new Float64Array([0.25, 0.75]), [0], new Float64Array([1]), 2);
    // r = (0.75, −0.75): φ = (2·0.75 − 1·0.75, 1·0.75 − 3·0.75) = (0.75, −1.5)
    expect(Array.from(phi)).toEqual([0.75, -1.5]);
  });
});

describe('permutation invariance and refreshed kernels', () => {
  const pr = randomProblem(41, 6, 4, 3, 10, 0.7);

  it('permuting finetune and observation points permutes every prediction', () => {
    const permTrain = [3, 0, 5, 1, 4, 2];
    const permObs = [2, 0, 3, 1];
    const perm = [...permTrain, ...permObs.map((o) => o + pr.N)]; // new point p is old point perm[p]
    const V = pr.V;
    const PV = pr.P * V;
    const kernelAll = new Float64Array(PV * PV);
    for (let a = 0; a < pr.P; a++)
      for (let b = 0; b < pr.P; b++)
        for (let i = 0; i < V; i++)
          for (let j = 0; j < V; j++)
            kernelAll[(a * V + i) * PV + b * V + j] =
              pr.kernelAll[(perm[a]! * V + i) * PV + perm[b]! * V + j]!;
    const blocks = splitKernel(kernelAll, pr.N, pr.M, V);
    const labels = Int32Array.from(permTrain.map((u) => pr.labels[u]!));
    const z0 = new Float64Array(PV);
    for (let a = 0; a < pr.P; a++)
      for (let i = 0; i < V; i++) z0[a * V + i] = pr.initialLogits[perm[a]! * V + i]!;
    const opA = operatorOf(pr);
    const opB = new FitnessOperator(
      { numClasses: V, train: blocks.train, observe: blocks.observe },
      { threads: 1 },
    );
    const unpermute = (tr: Float64Array, T: number) => {
      const out = new Float64Array(tr.length);
      for (let t = 0; t < T; t++)
        for (let a = 0; a < pr.P; a++)
          for (let i = 0; i < V; i++) out[t * PV + perm[a]! * V + i] = tr[t * PV + a * V + i]!;
      return out;
    };
    const probB = { numClasses: V, labels, initialLogits: z0 };
    const muA = popMu(opA, problemOf(pr), { learningRate: 0.2, steps: 15 });
    const muB = popMu(opB, probB, { learningRate: 0.2, steps: 15 });
    expect(maxAbsDiff(muA.logProbs, unpermute(muB.logProbs, 16))).toBeLessThan(1e-12);
    const steps = [0, 5, 10, 20];
    const odeA = popOde(opA, problemOf(pr), { learningRate: 0.2, steps: 20, record: steps });
    const odeB = popOde(opB, probB, { learningRate: 0.2, steps: 20, record: steps });
    expect(maxAbsDiff(odeA.trajectory.logProbs, unpermute(odeB.trajectory.logProbs, 4))).toBeLessThan(1e-9);
    const osA = oneStepPredict(opA, pr.labels, muA, { learningRate: 0.2 });
    const osB = oneStepPredict(opB, labels, muB, { learningRate: 0.2 });
    expect(maxAbsDiff(osA, unpermute(osB, 15))).toBeLessThan(1e-12);
    opA.dispose();
    opB.dispose();
  });

  it('a refresh schedule switches kernels at the given steps (piecewise-constant K_t)', () => {
    const other = randomProblem(42, 6, 4, 3, 10, 0.7);
    const opA = operatorOf(pr);
    const opB = operatorOf(other); // same sizes, different kernel
    const both = popMu({ steps: [0, 5], operators: [opA, opB] }, problemOf(pr), {
      learningRate: 0.2,
      steps: 10,
    });
    const first = popMu(opA, problemOf(pr), { learningRate: 0.2, steps: 5 });
    const n = pr.P * pr.V;
    const mid = first.logProbs.slice(5 * n, 6 * n);
    const second = popMu(opB, { ...problemOf(pr), initialLogits: mid }, { learningRate: 0.2, steps: 5 });
    expect(maxAbsDiff(both.logProbs.subarray(0, 6 * n), first.logProbs)).toBe(0);
    expect(maxAbsDiff(both.logProbs.subarray(5 * n), second.logProbs)).toBeLessThan(1e-12);
    // a schedule whose kernels are all the same equals the frozen kernel
    const same = popMu({ steps: [0, 3], operators: [opA, opA] }, problemOf(pr), {
      learningRate: 0.2,
      steps: 10,
    });
    const frozen = popMu(opA, problemOf(pr), { learningRate: 0.2, steps: 10 });
    expect(maxAbsDiff(same.logProbs, frozen.logProbs)).toBe(0);
    opA.dispose();
    opB.dispose();
  });
});

describe('bad inputs', () => {
  const pr = randomProblem(51, 3, 1, 3);
  const op = operatorOf(pr);
  const prob = problemOf(pr);

  it('name the argument, the value and what was expected', () => {
    expect(() => popMu(op, prob, { learningRate: 0, steps: 3 })).toThrow(
      /learningRate: expected a finite non-zero number/,
    );
    expect(() => popMu(op, prob, { learningRate: Number.NaN, steps: 3 })).toThrow(InvalidArgumentError);
    expect(() => popMu(op, prob, { learningRate: 0.1, steps: -1 })).toThrow(/steps: expected an integer ≥ 0/);
    expect(() => popMu(op, prob, { learningRate: 0.1, steps: 3, record: [0, 5] })).toThrow(/record/);
    expect(() => popMu(op, prob, { learningRate: 0.1, steps: 3, record: [2, 1] })).toThrow(/record\[1\]/);
    expect(() => popMu(op, { ...prob, labels: [0, 1, 3] }, { learningRate: 0.1, steps: 3 })).toThrow(
      /labels\[2\]/,
    );
    expect(() => popMu(op, { ...prob, labels: [0, 1] }, { learningRate: 0.1, steps: 3 })).toThrow(/problem/);
    expect(() =>
      popMu(op, prob, { learningRate: 0.1, steps: 3, schedule: { kind: 'sequence', batches: [[0, 7]] } }),
    ).toThrow(/schedule.batches\[0\]/);
    expect(() =>
      popMu(op, prob, { learningRate: 0.1, steps: 3, schedule: { kind: 'sequence', batches: [] } }),
    ).toThrow(/schedule.batches/);
    expect(() => popOde(op, prob, { learningRate: 0.1, steps: 1, form: 'euler' as 'logit' })).toThrow(/form/);
    expect(() =>
      popOde(
        op,
        { ...prob, initialLogits: new Float64Array(5) },
        { learningRate: 0.1, steps: 1, record: [1] },
      ),
    ).toThrow(/initialLogits/);
    expect(() => popMu({ steps: [1], operators: [op] }, prob, { learningRate: 0.1, steps: 3 })).toThrow(
      /operators.steps/,
    );
    const tr = linearizedGd(pr.jacobian, prob, { learningRate: 0.1, steps: 2 });
    expect(() =>
      oneStepPredict(op, pr.labels, { ...tr, logProbs: new Float64Array(3) }, { learningRate: 0.1 }),
    ).toThrow(/actual.logProbs/);
    expect(() => linearizedGd(new Float64Array(7), prob, { learningRate: 0.1, steps: 2 })).toThrow(
      /jacobian/,
    );
    // a step past the end of the run would be left unwritten: rejected like popMu's
    expect(() => linearizedGd(pr.jacobian, prob, { learningRate: 0.1, steps: 2, record: [0, 3] })).toThrow(
      /record/,
    );
    const badLabels = Int32Array.from(pr.labels);
    badLabels[0] = pr.V;
    expect(() => oneStepPredict(op, badLabels, tr, { learningRate: 0.1 })).toThrow(/labels\[0\]/);
  });
});
