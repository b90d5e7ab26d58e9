/**
 * Predictions from a kernel: what the linearised network f_lin(x; θ) = f(x; θ₀) + J₀(x)(θ − θ₀)
 * does under gradient flow on the training points, for training and test points, in the time
 * t = n·η of an SGD run with learning rate η (docs/theory.md#pop-ode: the convention of POP-ODE).
 *
 * **MSE flow** ({@link mseFlow}). entk's loss convention is the mean over the N training points,
 * L = (1/2N) Σ_u ‖f(x_u) − y_u‖², so gradient flow on the linearised network is
 *
 *     ḟ(X) = −(1/N) K(X, X) (f(X) − Y),   ḟ(x) = −(1/N) K(x, X) (f(X) − Y),
 *
 * solved in closed form from one eigen-decomposition K(X,X) + λI = U Λ Uᵀ (ridge λ ≥ 0 added to
 * the diagonal, as neural-tangents' `diag_reg`; negative eigenvalues from rounding are clipped to 0,
 * as neural-tangents does): with g = Uᵀ (Y − f₀(X)),
 *
 *     f_t(X) = f₀(X) + U diag(1 − e^{−λ_k t/N}) g                        (λ = 0; see below for λ > 0)
 *     f_t(x) = f₀(x) + K(x, X) U diag((1 − e^{−λ_k t/N}) / λ_k) g       (λ_k → 0: t/N)
 *     f_∞(x) = f₀(x) + K(x, X) (K + λI)⁺ (Y − f₀(X))                     (kernel (ridge) regression)
 *
 * where λ_k, U are those of K + λI (the flow of the loss plus (λ/2N)‖θ − θ₀‖², in which the training
 * outputs are f₀(X) + K(X, X) w like any other input's: with a ridge they do not reach Y, and at
 * t = ∞ they are the kernel ridge regression fit f₀(X) + K (K + λI)⁻¹ (Y − f₀(X)); docs/theory.md
 * §MSE gradient flow).
 * (neural-tangents' `gradient_descent_mse` divides by Y.size = N·V instead of N: its time
 * `t_nt = V·t` for a scalar kernel.) A scalar kernel [N, N] (a 'trace' store, or tr K/V) acts on
 * every output alike (K ⊗ I_V); a full kernel [N·V, N·V] (point-major) couples the outputs.
 *
 * **Cross-entropy flow** ({@link crossEntropyFlow}): ż(α) = (1/N) Σ_u K(α, u)(e_u − softmax(z(u))),
 * the POP-ODE of src/dynamics in logit form (its FitnessOperator and Dormand–Prince integrator),
 * for the training points and the test points, under the same input and time convention.
 */
import { type Dopri5Options, dopri5, FitnessOperator, logitRhs, logSoftmax } from '../dynamics/index.js';
import { assertArgument, EntkError } from '../errors.js';
import {
  type FactoredSymmetricEigen,
  factoredSymmetricEigen,
  type SymmetricEigen,
  symmetricEigen,
} from './eigh.js';

/** Kernel blocks and targets of a train/test split. */
export interface KernelSplit {
  /** V, the number of outputs (classes). */
  numClasses: number;
  /**
   * K(X, X) over the N training points: scalar [N, N] (applied to every output alike) or full
   * [N·V, N·V] (point-major: row u·V + i). Row-major, symmetric.
   */
  trainTrain: Float32Array | Float64Array;
  /** K(x, X) from M test points: [M, N] (scalar) or [M·V, N·V] (full). Omit for no test points. */
  testTrain?: Float32Array | Float64Array;
  /** Targets Y [N, V] (MSE: e.g. one-hot; cross-entropy: ignored, see `labels`). */
  targets?: Float64Array;
  /** Class labels y_u of the N training points (cross-entropy; MSE targets default to their one-hot). */
  labels?: ArrayLike<number>;
  /** f₀(X) [N, V], the network's outputs at θ₀. Default 0. */
  initialTrain?: Float64Array;
  /** f₀(x) [M, V]. Default 0. */
  initialTest?: Float64Array;
}

/** Sizes of a {@link KernelSplit}: N, M, V and whether the kernel is full (V×V blocks). */
export function splitSizes(split: KernelSplit): { N: number; M: number; V: number; full: boolean } {
  const V = split.numClasses;
  assertArgument(Number.isInteger(V) && V >= 1, 'numClasses', V, 'a positive integer');
  const tt = split.trainTrain;
  assertArgument(
    tt instanceof Float32Array || tt instanceof Float64Array,
    'trainTrain',
    tt,
    'a Float32Array or Float64Array',
  );
  const side = Math.round(Math.sqrt(tt.length));
  assertArgument(side * side === tt.length && side > 0, 'trainTrain', tt, 'a square [n, n] matrix');
  const hasLabels = split.labels !== undefined;
  const hasTargets = split.targets !== undefined;
  // Scalar when n·V = targets length (or labels count = n); full when n = N·V.
  const N0 = hasTargets ? split.targets!.length / V : hasLabels ? split.labels!.length : side;
  const full = V > 1 && side === N0 * V;
  const N = full ? side / V : side;
  assertArgument(
    N0 === N,
    'trainTrain',
    `[${side}, ${side}]`,
    `[N, N] or [N·V, N·V] with N = ${N0} training points and V = ${V}`,
  );
  const width = full ? N * V : N;
  let M = 0;
  if (split.testTrain !== undefined) {
    const t = split.testTrain;
    assertArgument(
      (t instanceof Float32Array || t instanceof Float64Array) && t.length % width === 0,
      'testTrain',
      t,
      `a [M${full ? '·V' : ''}, ${width}] matrix`,
    );
    M = t.length / width / (full ? V : 1);
    assertArgument(
      Number.isInteger(M),
      'testTrain',
      t,
      `a [M·V, ${width}] matrix (rows a multiple of V = ${V})`,
    );
  }
  const check = (name: string, a: Float64Array | undefined, rows: number) =>
    assertArgument(
      a === undefined || (a instanceof Float64Array && a.length === rows * V),
      name,
      a,
      `a Float64Array [${rows}, ${V}]`,
    );
  check('targets', split.targets, N);
  check('initialTrain', split.initialTrain, N);
  check('initialTest', split.initialTest, M);
  if (hasLabels) {
    assertArgument(split.labels!.length === N, 'labels', split.labels, `${N} labels`);
    for (let u = 0; u < N; u++) {
      const y = split.labels![u]!;
      assertArgument(Number.isInteger(y) && y >= 0 && y < V, `labels[${u}]`, y, `an integer in [0, ${V})`);
    }
  }
  return { N, M, V, full };
}

/** One-hot rows [N, V] of integer labels. */
export function oneHot(labels: ArrayLike<number>, V: number): Float64Array {
  const out = new Float64Array(labels.length * V);
  for (let u = 0; u < labels.length; u++) out[u * V + labels[u]!] = 1;
  return out;
}

/**
 * The class targets of a full (point-major [N·V, N·V]) kernel: Y ⊗ I_V [N·V, V·V] for the one-hot
 * Y [N, V], whose Gram matrix is YYᵀ ⊗ I_V — the same-class kernel on every output
 * (docs/theory.md §Kernel-target alignment): row u·V + i has a 1 in column y_u·V + i.
 */
export function oneHotKron(labels: ArrayLike<number>, V: number): Float64Array {
  const C = V * V;
  const out = new Float64Array(labels.length * V * C);
  for (let u = 0; u < labels.length; u++)
    for (let i = 0; i < V; i++) out[(u * V + i) * C + labels[u]! * V + i] = 1;
  return out;
}

/** Options of {@link mseFlow}. */
export interface MseFlowOptions {
  /** Ridge λ ≥ 0 added to the diagonal of K(X, X) (absolute). Default 0. */
  ridge?: number;
  /** Eigenvalues ≤ cutoff · λ_max count as zero at t = ∞ (pseudo-inverse). Default 1e-12. */
  cutoff?: number;
}

/** Outputs of the linearised network at one time. */
export interface FlowOutputs {
  /** Time t (= n·η). */
  t: number;
  /** f_t(X) [N, V]. */
  train: Float64Array;
  /** f_t(x) [M, V]. */
  test: Float64Array;
}

/** The closed-form MSE flow of a split, prepared once: call `at(t)` for any t ≥ 0 or Infinity. */
export interface MseFlow {
  readonly numTrain: number;
  readonly numTest: number;
  readonly numClasses: number;
  /**
   * The eigen-decomposition of K(X, X) + λI (eigenvalues clipped at 0), with the explicit n×n
   * eigenvectors: computed on first access (O(n³)) and kept until {@link dispose}.
   */
  readonly eigen: SymmetricEigen;
  /** Outputs at time t (Infinity: the kernel-regression limit). */
  at(t: number): FlowOutputs;
  /**
   * Release what the flow holds (the factored decomposition, its copy of K(X, X) + λI and the
   * explicit eigenvectors: ≈ 40·n² bytes); {@link at} and {@link eigen} throw afterwards. Idempotent.
   */
  dispose(): void;
}

/**
 * Closed-form gradient flow of the MSE loss on the linearised network (module comment), prepared
 * with one eigen-decomposition of K(X, X) + λI: O(n³) once, then O(n²·C + M·n·C) per time
 * (n = N for a scalar kernel, C = V outputs; n = N·V and C = 1 for a full kernel).
 *
 * @example
 *   const flow = mseFlow({ numClasses: 10, trainTrain, testTrain, labels }, { ridge: 1e-3 });
 *   const { test } = flow.at(Infinity);   // kernel ridge regression predictions [M, 10]
 *   flow.dispose();                        // release the decomposition
 */
export function mseFlow(split: KernelSplit, options: MseFlowOptions = {}): MseFlow {
  const { N, M, V, full } = splitSizes(split);
  const ridge = options.ridge ?? 0;
  assertArgument(Number.isFinite(ridge) && ridge >= 0, 'ridge', ridge, 'a finite number ≥ 0');
  const cutoff = options.cutoff ?? 1e-12;
  assertArgument(cutoff >= 0 && cutoff < 1, 'cutoff', cutoff, 'a number in [0, 1)');
  const targets = split.targets ?? (split.labels ? oneHot(split.labels, V) : undefined);
  assertArgument(targets !== undefined, 'targets', undefined, 'targets [N, V] or labels');
  const n = full ? N * V : N;
  const C = full ? 1 : V; // columns of the right-hand side (point-major flattening for full kernels)
  // K + λI; the methods below reach it, the factors and the explicit vectors only through these
  // variables, so that dispose() releases them.
  let k: Float64Array | null = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) k[i] = split.trainTrain[i]!;
  for (let i = 0; i < n; i++) k[i * n + i] = k[i * n + i]! + ridge;
  // U = Q Z in factored form: blocks of C vectors are multiplied by U, Uᵀ in O(n²·C) without the
  // O(n³) eigenvector matrix (see factoredSymmetricEigen).
  let factored: FactoredSymmetricEigen | null = factoredSymmetricEigen(k, n);
  const lambda = factored.values.map((x) => Math.max(x, 0));
  let explicit: SymmetricEigen | null = null;
  const live = (): FactoredSymmetricEigen => {
    if (!factored) throw new EntkError('mseFlow: used after dispose()');
    return factored;
  };
  const f0 = split.initialTrain ?? new Float64Array(N * V);
  const f0Test = split.initialTest ?? new Float64Array(M * V);
  // g = Uᵀ (Y − f₀) : [n, C]; row j = u_jᵀ r.
  const residual = new Float64Array(n * C);
  for (let i = 0; i < n * C; i++) residual[i] = targets[i]! - f0[i]!;
  const g = factored.projectT(residual, C);
  const floor = cutoff * Math.max(lambda[0]!, 0);
  return {
    numTrain: N,
    numTest: M,
    numClasses: V,
    get eigen(): SymmetricEigen {
      live();
      // The explicit eigenvectors only when asked for (O(n³)); the same algorithm, so the same values.
      explicit ??= { ...symmetricEigen(k!, n), values: lambda };
      return explicit;
    },
    at(t: number): FlowOutputs {
      assertArgument(t >= 0 && !Number.isNaN(t), 't', t, 'a time ≥ 0 (or Infinity)');
      const factors = live();
      // Per eigen-direction factors: b_k = (1 − e^{−λ_k t/N}) / λ_k (w = U diag(b) g), and for the
      // training outputs f₀(X) + K w with K = U diag(λ_k − ridge) Uᵀ, a_k = (λ_k − ridge)⁺ b_k
      // (= 1 − e^{−λ_k t/N} without a ridge). Coefficients [a ⊙ g | b ⊙ g] as one block of 2C
      // columns, mapped back by U at once.
      const coefficients = new Float64Array(n * 2 * C);
      for (let j = 0; j < n; j++) {
        const l = lambda[j]!;
        let a: number;
        let b: number;
        if (t === Number.POSITIVE_INFINITY) {
          a = l > floor ? 1 : 0;
          b = l > floor ? 1 / l : 0;
        } else {
          a = -Math.expm1((-l * t) / N);
          b = l > 0 ? a / l : t / N;
        }
        if (ridge > 0) a = Math.max(l - ridge, 0) * b;
        for (let c = 0; c < C; c++) {
          coefficients[j * 2 * C + c] = a * g[j * C + c]!;
          coefficients[j * 2 * C + C + c] = b * g[j * C + c]!;
        }
      }
      // train = f₀ + U diag(a) g ; w = U diag(b) g (coefficients in the training space) for test.
      const both = factors.combine(coefficients, 2 * C);
      const train = Float64Array.from(f0);
      const w = new Float64Array(n * C);
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < C; c++) {
          train[i * C + c] = train[i * C + c]! + both[i * 2 * C + c]!;
          w[i * C + c] = both[i * 2 * C + C + c]!;
        }
      }
      const test = Float64Array.from(f0Test);
      if (M > 0) {
        const kt = split.testTrain!;
        const rows = full ? M * V : M;
        for (let r = 0; r < rows; r++) {
          const row = r * n;
          for (let i = 0; i < n; i++) {
            const kv = kt[row + i]!;
            if (kv === 0) continue;
            for (let c = 0; c < C; c++) test[r * C + c] = test[r * C + c]! + kv * w[i * C + c]!;
          }
        }
      }
      return { t, train, test };
    },
    dispose() {
      factored?.dispose();
      factored = null;
      k = null;
      explicit = null;
    },
  };
}

/** Options of {@link crossEntropyFlow}. */
export interface CrossEntropyFlowOptions
  extends Pick<Dopri5Options, 'rtol' | 'atol' | 'maxStep' | 'maxSteps'> {
  /** Output times t = n·η (non-decreasing, ≥ 0, finite). */
  times: number[];
}

/** Log-probabilities of the linearised network under cross-entropy gradient flow. */
export interface CrossEntropyFlowResult {
  times: number[];
  /** log π_t(X) [T, N, V]. */
  train: Float64Array;
  /** log π_t(x) [T, M, V]. */
  test: Float64Array;
}

/**
 * Cross-entropy gradient flow of the linearised network (POP-ODE in logit form, src/dynamics) from
 * f₀ = `initialTrain`/`initialTest` (logits; default 0), for training and test points, at the given
 * times. Needs `labels`. A scalar kernel is used as K ⊗ I_V.
 */
export function crossEntropyFlow(
  split: KernelSplit,
  options: CrossEntropyFlowOptions,
): CrossEntropyFlowResult {
  const { N, M, V, full } = splitSizes(split);
  assertArgument(split.labels !== undefined, 'labels', undefined, 'the class labels of the training points');
  assertArgument(V >= 2, 'numClasses', V, 'at least 2 classes for cross-entropy');
  const times = options.times;
  assertArgument(
    Array.isArray(times) &&
      times.length > 0 &&
      times.every((t, i) => Number.isFinite(t) && t >= 0 && (i === 0 || t >= times[i - 1]!)),
    'times',
    times,
    'a non-empty, non-decreasing array of finite times ≥ 0',
  );
  const expand = (k: Float32Array | Float64Array, rows: number, cols: number) => {
    if (full) return k;
    const out = new Float64Array(rows * V * cols * V);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const v = k[r * cols + c]!;
        for (let i = 0; i < V; i++) out[(r * V + i) * cols * V + c * V + i] = v;
      }
    return out;
  };
  const operator = new FitnessOperator({
    numClasses: V,
    train: expand(split.trainTrain, N, N),
    observe: M > 0 ? expand(split.testTrain!, M, N) : undefined,
  });
  try {
    const P = N + M;
    const z0 = new Float64Array(P * V);
    if (split.initialTrain) z0.set(split.initialTrain, 0);
    if (split.initialTest) z0.set(split.initialTest, N * V);
    const scratch = { probs: new Float64Array(N * V), r: new Float64Array(N * V) };
    const train = new Float64Array(times.length * N * V);
    const test = new Float64Array(times.length * M * V);
    dopri5((_t, z, dz) => logitRhs(operator, split.labels!, z, 1 / N, dz, scratch), 0, z0, times, {
      rtol: options.rtol ?? 1e-8,
      atol: options.atol ?? 1e-10,
      maxStep: options.maxStep,
      maxSteps: options.maxSteps,
      onOutput: (k, _t, z) => {
        const lp = logSoftmax(z, V);
        train.set(lp.subarray(0, N * V), k * N * V);
        test.set(lp.subarray(N * V), k * M * V);
      },
    });
    return { times: times.slice(), train, test };
  } finally {
    operator.dispose();
  }
}

/** Fraction of rows of `outputs` [n, V] whose arg-max is the label. */
export function accuracy(outputs: Float64Array, labels: ArrayLike<number>, V: number): number {
  assertArgument(outputs.length === labels.length * V, 'outputs', outputs, `[${labels.length}, ${V}]`);
  let hits = 0;
  for (let u = 0; u < labels.length; u++) {
    let best = 0;
    for (let i = 1; i < V; i++) if (outputs[u * V + i]! > outputs[u * V + best]!) best = i;
    if (best === labels[u]) hits++;
  }
  return labels.length > 0 ? hits / labels.length : Number.NaN;
}

/** Mean over rows of ½‖f − y‖² (entk's MSE convention). */
export function mseLoss(outputs: Float64Array, targets: Float64Array, V: number): number {
  assertArgument(outputs.length === targets.length, 'targets', targets, `length ${outputs.length}`);
  let s = 0;
  for (let i = 0; i < outputs.length; i++) s += (outputs[i]! - targets[i]!) ** 2;
  return outputs.length > 0 ? s / 2 / (outputs.length / V) : Number.NaN;
}

/** Mean cross-entropy −log π(y) of log-probabilities [n, V]. */
export function crossEntropyLoss(logProbs: Float64Array, labels: ArrayLike<number>, V: number): number {
  assertArgument(logProbs.length === labels.length * V, 'logProbs', logProbs, `[${labels.length}, ${V}]`);
  let s = 0;
  for (let u = 0; u < labels.length; u++) s -= logProbs[u * V + labels[u]!]!;
  return labels.length > 0 ? s / labels.length : Number.NaN;
}
