/**
 * The general path: the Jacobian J(x) = ∂f(x)/∂θ ∈ R^{V×P} of any tf.LayersModel through tfjs
 * autodiff, one point and one logit at a time (tfjs has no vmap, and per-example gradients of an
 * arbitrary model cannot be batched), contracted as K = J Jᵀ by the shared block code (a single
 * "gram" term). Cost N·V backward passes plus N²V²P multiply-adds (docs/theory.md#jacobian-contraction).
 */
import * as tf from '@tensorflow/tfjs';
import type { TermFeatures } from './structured.js';
import type { TermMeta } from './terms.js';

/** The single term of the Jacobian contraction. */
export function jacobianTerms(parameterCount: number): TermMeta[] {
  return [{ kind: 'gram', layer: '*', dIn: 0, width: parameterCount, sw2: 1, sb2: 0 }];
}

/**
 * J for the points `x` ([b, ...inputShape]) as [b·V, P], point-major (row n·V + i is ∂f_i(x_n)/∂θ),
 * columns in the order of `variables` (each flattened row-major). Inference mode (training: false).
 */
export function jacobianFeatures(
  model: tf.LayersModel,
  variables: tf.LayerVariable[],
  x: tf.Tensor,
  V: number,
): TermFeatures[] {
  const b = x.shape[0]!;
  const vars = variables.map((v) => v.read() as tf.Variable);
  const P = vars.reduce((s, v) => s + v.size, 0);
  const out = new Float32Array(b * V * P);
  for (let n = 0; n < b; n++) {
    const rows = tf.tidy(() => {
      const xn = x.slice([n], [1]);
      const perOutput: tf.Tensor[] = [];
      for (let i = 0; i < V; i++) {
        const { value, grads } = tf.variableGrads(() => {
          const y = model.apply(xn, { training: false }) as tf.Tensor;
          return y.slice([0, i], [1, 1]).sum() as tf.Scalar;
        }, vars);
        value.dispose();
        // A variable the logit does not depend on has no gradient entry: its derivative is 0.
        perOutput.push(tf.concat(vars.map((v) => (grads[v.name] ?? tf.zeros(v.shape)).reshape([-1]))));
      }
      return tf.stack(perOutput);
    });
    out.set(rows.dataSync() as Float32Array, n * V * P);
    rows.dispose();
  }
  return [{ d: out }];
}
