/**
 * docs/theory.md#one-sgd-step, the equation behind (1): one plain SGD step on the mean cross-entropy of a batch B changes
 * the logits of any point x_o by ΔZ(x_o) ≈ (η/|B|) Σ_u K(x_o, x_u)(e_u − π(x_u)), with an error of
 * second order in η. Checked on the real tfjs model: the actual step is applied to its weights.
 *
 * Tolerance rules: the log–log slope of max|ΔZ_actual − ΔZ_predicted| against η, fitted by least
 * squares over η = 0.4 … 0.025 (halving), lies in [1.8, 2.2]; the relative error
 * max|error| / max|ΔZ_predicted| at the smallest η is below 1e-2 and decreases at every halving.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { buildModel } from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';
import { normalPoints } from './helpers.js';

const V = 4;

/** Logits of `x` as a float64 array [n·V]. */
function logits(model: tf.LayersModel, x: tf.Tensor): Float64Array {
  const y = model.predict(x) as tf.Tensor;
  const out = Float64Array.from(y.dataSync());
  y.dispose();
  return out;
}

/** Apply θ ← θ − η ∇θ mean_u CE(f(x_u), y_u) to the model, return ΔZ at xo, and restore θ. */
function actualStep(
  model: tf.LayersModel,
  xb: tf.Tensor,
  onehot: tf.Tensor,
  xo: tf.Tensor,
  eta: number,
): Float64Array {
  const before = logits(model, xo);
  const saved = model.trainableWeights.map((w) => tf.clone(w.read()));
  tf.tidy(() => {
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(() => {
      const z = model.apply(xb, { training: false }) as tf.Tensor;
      return tf.mean(tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(z)), 1))) as tf.Scalar;
    }, vars);
    for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, eta)));
  });
  const after = logits(model, xo);
  model.trainableWeights.forEach((w, k) => {
    w.write(saved[k]!);
  });
  tf.dispose(saved);
  return after.map((v, i) => v - before[i]!);
}

describe('one SGD step versus the eNTK prediction', () => {
  it('ΔZ ≈ (η/|B|) K (e − π) with an error of order η²', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [32, 32], activation: 'tanh', parameterization: 'standard' },
      { inputShape: [6], numClasses: V, seed: 11 },
    );
    const B = 8;
    const xb = normalPoints(B, [6], 201);
    const xo = normalPoints(5, [6], 202);
    const rng = new Rng(203);
    const labels = Array.from({ length: B }, () => rng.int(V));
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), V).toFloat();
    const tensorsBefore = tf.memory().numTensors;

    const K = await empiricalNtkFn(model, { progress: false })(xo, xb); // [5V, B·V]
    const zb = logits(model, xb);
    // Residuals e_u − π(x_u) in float64.
    const residual = new Float64Array(B * V);
    for (let u = 0; u < B; u++) {
      const row = Array.from(zb.subarray(u * V, (u + 1) * V));
      const max = Math.max(...row);
      const exp = row.map((z) => Math.exp(z - max));
      const sum = exp.reduce((a, b) => a + b, 0);
      for (let i = 0; i < V; i++) residual[u * V + i] = (labels[u] === i ? 1 : 0) - exp[i]! / sum;
    }
    const cols = B * V;
    const predictUnit = new Float64Array(5 * V); // prediction for η = 1
    for (let r = 0; r < 5 * V; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += K.data[r * cols + c]! * residual[c]!;
      predictUnit[r] = s / B;
    }

    const etas = [0.4, 0.2, 0.1, 0.05, 0.025];
    const errors: number[] = [];
    const relative: number[] = [];
    for (const eta of etas) {
      const actual = actualStep(model, xb, onehot, xo, eta);
      let err = 0;
      let scale = 0;
      for (let r = 0; r < 5 * V; r++) {
        err = Math.max(err, Math.abs(actual[r]! - eta * predictUnit[r]!));
        scale = Math.max(scale, Math.abs(eta * predictUnit[r]!));
      }
      errors.push(err);
      relative.push(err / scale);
    }
    // Least-squares slope of log(error) against log(η).
    const lx = etas.map(Math.log);
    const ly = errors.map(Math.log);
    const mx = lx.reduce((a, b) => a + b, 0) / lx.length;
    const my = ly.reduce((a, b) => a + b, 0) / ly.length;
    const slope =
      lx.reduce((s, x, i) => s + (x - mx) * (ly[i]! - my), 0) / lx.reduce((s, x) => s + (x - mx) ** 2, 0);
    if (process.env.ENTK_TEST_VERBOSE) console.log({ slope, errors, relative });
    expect(slope).toBeGreaterThan(1.8);
    expect(slope).toBeLessThan(2.2);
    for (let k = 1; k < relative.length; k++) expect(relative[k]!).toBeLessThan(relative[k - 1]!);
    expect(relative[relative.length - 1]!).toBeLessThan(1e-2);

    // Gradient ascent (η < 0) is predicted with the same accuracy.
    const ascent = actualStep(model, xb, onehot, xo, -0.025);
    let errAscent = 0;
    for (let r = 0; r < 5 * V; r++)
      errAscent = Math.max(errAscent, Math.abs(ascent[r]! + 0.025 * predictUnit[r]!));
    expect(errAscent / (0.025 * Math.max(...predictUnit.map(Math.abs)))).toBeLessThan(1e-2);

    expect(tf.memory().numTensors).toBe(tensorsBefore);
    tf.dispose([xb, xo, onehot]);
    model.dispose();
  });
});
