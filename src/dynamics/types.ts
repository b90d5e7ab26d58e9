/**
 * Shared types of the dynamics module, and the small numerical helpers every predictor uses.
 *
 * Conventions (docs/theory.md#notation):
 * - V labels; N finetune ("training") points u = 0..N−1 with labels y_u; M observation points.
 * - Tracked points: the N finetune points first, then the M observation points (P = N + M).
 * - Per-point arrays are row-major [P, V] Float64Array; trajectories are [T, P, V].
 * - Step n of SGD uses batch B_n with mean loss, i.e. weights w_u = 1/|B_n| on B_n, 0 elsewhere.
 *   Time of step n is t = n·|η|.
 */
import { assertArgument, InvalidArgumentError } from '../errors.js';

/** Which finetune points step n trains on. */
export type BatchSchedule =
  /** Every step uses the whole finetune set (full-batch gradient descent, weights 1/N). */
  | { kind: 'full' }
  /**
   * Step n uses `batches[n mod batches.length]` (indices into the finetune set, 0..N−1;
   * repeated indices count twice). A single example repeated is `{ batches: [[u]] }`.
   */
  | { kind: 'sequence'; batches: number[][] };

/** The initial state of a finetune run as the predictors need it. */
export interface DynamicsProblem {
  /** V */
  numClasses: number;
  /** y_u for the N finetune points, integers in [0, V). */
  labels: ArrayLike<number>;
  /**
   * Logits z_0 of the P = N + M tracked points at the checkpoint, [P, V], finetune points first.
   * Log-probabilities are equally good (softmax ignores a per-point constant).
   */
  initialLogits: Float64Array;
}

/** Log-probabilities of every label at every tracked point at a sequence of steps. */
export interface Trajectory {
  /** P, tracked points (finetune points first). */
  numPoints: number;
  /** V */
  numClasses: number;
  /** The recorded step indices n (non-decreasing); time t = n·|η|. */
  steps: number[];
  /** log π_n(i | x_α), [T, P, V] with T = steps.length. */
  logProbs: Float64Array;
}

/** Validate a problem; returns N and M = P − N. */
export function problemSizes(problem: DynamicsProblem): { N: number; M: number; P: number; V: number } {
  const V = problem.numClasses;
  assertArgument(Number.isInteger(V) && V >= 2, 'numClasses', V, 'an integer ≥ 2');
  const N = problem.labels.length;
  assertArgument(N >= 1, 'labels', problem.labels, 'at least one finetune point');
  checkLabels(problem.labels, V);
  const z = problem.initialLogits;
  assertArgument(z instanceof Float64Array, 'initialLogits', z, 'a Float64Array [P, V]');
  assertArgument(
    z.length % V === 0 && z.length / V >= N,
    'initialLogits',
    z,
    `a [P, V] array with V = ${V} and P ≥ N = ${N} (length a multiple of ${V})`,
  );
  for (let i = 0; i < z.length; i++) {
    if (!Number.isFinite(z[i]!))
      throw new InvalidArgumentError(`initialLogits[${i}]`, z[i], 'a finite number');
  }
  const P = z.length / V;
  return { N, M: P - N, P, V };
}

/** Validate labels y_u: integers in [0, V). */
export function checkLabels(labels: ArrayLike<number>, V: number): void {
  for (let u = 0; u < labels.length; u++) {
    const y = labels[u]!;
    if (!Number.isInteger(y) || y < 0 || y >= V) {
      throw new InvalidArgumentError(`labels[${u}]`, y, `an integer label in [0, ${V})`);
    }
  }
}

/**
 * The step options every predictor shares (one name per quantity, as in `finetune()` and the
 * recording manifest): the learning rate η, the number of update steps, and the steps to record.
 */
export interface StepOptions {
  /** Learning rate η of the run (η < 0: gradient ascent). */
  learningRate: number;
  /** Number of update steps; states 0..steps exist. */
  steps: number;
  /** Steps to record (non-decreasing, within 0..steps). Default: every step 0..steps. */
  record?: number[];
}

/**
 * Validate `steps` (an integer ≥ 0) and the steps to record (non-decreasing, within 0..steps);
 * returns `record`, by default every step 0..steps.
 */
export function recordSteps(steps: number, record?: number[]): number[] {
  assertArgument(Number.isInteger(steps) && steps >= 0, 'steps', steps, 'an integer ≥ 0');
  const out = record ?? Array.from({ length: steps + 1 }, (_, i) => i);
  checkSteps(out, 'record');
  assertArgument(out[out.length - 1]! <= steps, 'record', out, `recorded steps ≤ steps = ${steps}`);
  return out;
}

/** Validate a batch schedule against N finetune points. */
export function checkSchedule(schedule: BatchSchedule, N: number): void {
  if (schedule.kind === 'full') return;
  assertArgument(
    schedule.kind === 'sequence',
    'schedule.kind',
    (schedule as { kind: unknown }).kind,
    "'full' or 'sequence'",
  );
  assertArgument(
    Array.isArray(schedule.batches) && schedule.batches.length > 0,
    'schedule.batches',
    schedule.batches,
    'a non-empty array of batches',
  );
  schedule.batches.forEach((batch, b) => {
    assertArgument(
      Array.isArray(batch) && batch.length > 0,
      `schedule.batches[${b}]`,
      batch,
      'a non-empty array of indices',
    );
    for (const u of batch) {
      if (!Number.isInteger(u) || u < 0 || u >= N) {
        throw new InvalidArgumentError(`schedule.batches[${b}]`, u, `finetune-point indices in [0, ${N})`);
      }
    }
  });
}

/** Add the weights of step n (w_u = 1/|B_n| on the batch) times `scale` into `weights` [N]. */
export function addStepWeights(schedule: BatchSchedule, n: number, weights: Float64Array, scale = 1): void {
  const N = weights.length;
  if (schedule.kind === 'full') {
    const w = scale / N;
    for (let u = 0; u < N; u++) weights[u] += w;
    return;
  }
  const batch = schedule.batches[n % schedule.batches.length]!;
  const w = scale / batch.length;
  for (const u of batch) weights[u] += w;
}

/**
 * The per-point weights of the small-η limit of a schedule, [N]: the step weights averaged over
 * the batches of the schedule,
 *
 *     w_u = (1/L) Σ_{b=0..L−1} c_u(B_b) / |B_b|,
 *
 * where L = `batches.length` and c_u(B) counts u in B (repeated indices count twice); `full` gives
 * w_u = 1/N. A `sequence` schedule repeats with period L, so this is the average over one cycle
 * (the weights of the small-η limit of a cyclic schedule). A recorded run of reshuffled epochs
 * (src/train/finetune.ts stores one batch per step, L = T) gives the average over all T recorded
 * steps, w_u = (1/T) Σ_t [u ∈ B_t]/|B_t|; reshuffling makes E[w_u] = 1/N, so there the difference
 * from 1/N is a finite-sample one. Σ_u w_u = 1 always, and w_u = 1/N whenever every point appears
 * equally often in batches of one size (e.g. the batch size divides N); a fixed cycle of unequal
 * batches (N = 6, batch 4 → [[0,1,2,3],[4,5]]) gives w = (1/8, 1/8, 1/8, 1/8, 1/4, 1/4).
 */
export function scheduleWeights(schedule: BatchSchedule, N: number): Float64Array {
  assertArgument(Number.isInteger(N) && N >= 1, 'N', N, 'an integer ≥ 1');
  checkSchedule(schedule, N);
  const w = new Float64Array(N);
  if (schedule.kind === 'full') {
    w.fill(1 / N);
    return w;
  }
  const L = schedule.batches.length;
  for (let b = 0; b < L; b++) addStepWeights(schedule, b, w, 1 / L);
  return w;
}

/** Validate a learning rate η (any finite non-zero number; η < 0 is gradient ascent). */
export function checkLearningRate(learningRate: number): void {
  assertArgument(
    Number.isFinite(learningRate) && learningRate !== 0,
    'learningRate',
    learningRate,
    'a finite non-zero number (η < 0 is ascent)',
  );
}

/** Validate recorded steps: non-decreasing non-negative integers. */
export function checkSteps(steps: readonly number[], argument = 'steps'): void {
  assertArgument(
    Array.isArray(steps) && steps.length > 0,
    argument,
    steps,
    'a non-empty array of step indices',
  );
  for (let k = 0; k < steps.length; k++) {
    const s = steps[k]!;
    if (!Number.isInteger(s) || s < 0 || (k > 0 && s < steps[k - 1]!)) {
      throw new InvalidArgumentError(`${argument}[${k}]`, s, 'a non-negative integer ≥ the previous step');
    }
  }
}

/** log softmax of row `p` of `z` [*, V] into `out` at row `outRow` (default: the same row). */
export function logSoftmaxRow(
  z: ArrayLike<number>,
  p: number,
  V: number,
  out: Float64Array,
  outRow = p,
): void {
  const o = p * V;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < V; i++) if (z[o + i]! > max) max = z[o + i]!;
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(z[o + i]! - max);
  const lse = max + Math.log(s);
  const q = outRow * V;
  for (let i = 0; i < V; i++) out[q + i] = z[o + i]! - lse;
}

/** Row-wise log softmax of [P, V] logits. */
export function logSoftmax(z: Float64Array, V: number): Float64Array {
  const out = new Float64Array(z.length);
  for (let p = 0; p < z.length / V; p++) logSoftmaxRow(z, p, V, out);
  return out;
}

/** softmax of the first `n` rows of `z` [≥n, V] into `out` [n, V] (π(u) of the finetune points). */
export function softmaxRows(z: ArrayLike<number>, n: number, V: number, out: Float64Array): void {
  for (let u = 0; u < n; u++) logSoftmaxRow(z, u, V, out);
  for (let i = 0; i < n * V; i++) out[i] = Math.exp(out[i]!);
}

/** Row-wise softmax of [P, V] logits. */
export function softmax(z: Float64Array, V: number): Float64Array {
  const out = logSoftmax(z, V);
  for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i]!);
  return out;
}

/** Residuals r_u = e_{y_u} − π(u) of the first N rows of probabilities `probs` [≥N, V] into `out` [N, V]. */
export function residuals(
  probs: Float64Array,
  labels: ArrayLike<number>,
  V: number,
  out: Float64Array,
): void {
  const N = labels.length;
  for (let u = 0; u < N; u++) {
    const o = u * V;
    for (let i = 0; i < V; i++) out[o + i] = -probs[o + i]!;
    out[o + labels[u]!] += 1;
  }
}
