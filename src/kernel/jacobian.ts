/**
 * The general path: the Jacobian J(x) = ∂f(x)/∂θ ∈ R^{V×P} of any tf.LayersModel through tfjs
 * autodiff, contracted as K = J Jᵀ (docs/theory.md#jacobian-contraction).
 *
 * Rows of J: one backward pass per point and logit (tfjs has no vmap, and the parameter gradient
 * of a batch sums over its examples, so per-example rows of an arbitrary model need one pass
 * each). Each pass back-propagates the cotangent e_i from the model output of one point
 * (`engine.gradients` with dy = e_i, no slicing of the output) and the gradients are read straight
 * into the factor arrays (no concat/stack on the backend). Cost N·V backward passes.
 *
 * Columns of J are cut into chunks of {@link JACOBIAN_CHUNK} parameters, one 'gram' term each
 * (./chunked.ts): each chunk's product J_c J_cᵀ is a float32 product over ≤ 2048 columns (cache-
 * sized and accurate), and the chunks are summed in float64 — K = Σ_c J_c J_cᵀ — so the float32
 * error no longer grows with P (one float32 sum of length P erred by 3.2e-5 at 301k parameters and
 * 1.9e-4 at 1.13M), and the products run at the speed of small-K GEMMs.
 */
import * as tf from '@tensorflow/tfjs';
import { logitSelectors, type TermFeatures } from './structured.js';
import type { TermMeta } from './terms.js';

/** Parameters (columns of J) per chunk term. */
export const JACOBIAN_CHUNK = 2048;

/** The terms of the Jacobian contraction: one 'gram' term per chunk of parameters (layer '*'). */
export function jacobianTerms(parameterCount: number): TermMeta[] {
  const terms: TermMeta[] = [];
  for (let start = 0; start < parameterCount; start += JACOBIAN_CHUNK) {
    const width = Math.min(JACOBIAN_CHUNK, parameterCount - start);
    terms.push({ kind: 'gram', layer: '*', dIn: 0, width, sw2: 1, sb2: 0 });
  }
  return terms;
}

/** What tfjs's engine records for gradients (internal to tfjs 4.22: Engine.state). */
interface EngineTapeState {
  gradientDepth: number;
  activeTape: Array<{ saved?: tf.Tensor[] }> | null;
}

/**
 * tf.engine().gradients, releasing what the tape kept when it throws: tfjs disposes the tensors its
 * gradient tape saves for the backward pass only once the backward pass succeeds, so a forward or
 * backward pass that throws (an embedding id out of range, an op without a gradient) would leak them.
 */
function gradientsOrRelease(
  f: () => tf.Tensor,
  vars: tf.Variable[],
  dy: tf.Tensor,
): { value: tf.Tensor; grads: Array<tf.Tensor | null> } {
  try {
    return tf.engine().gradients(f, vars, dy, true);
  } catch (error) {
    const state = (tf.engine() as unknown as { state: EngineTapeState }).state;
    if (state.gradientDepth === 0 && state.activeTape) {
      for (const node of state.activeTape) tf.dispose(node.saved ?? []);
      state.activeTape = null;
    }
    throw error;
  }
}

/**
 * J for the points `x` ([b, ...inputShape]), one factor per chunk of {@link jacobianTerms}: chunk c
 * is [b·V, w_c], point-major (row n·V + i holds ∂f_i(x_n)/∂θ_p for the chunk's parameters p, in the
 * order of `variables`, each flattened row-major). Inference mode (training: false).
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
  const chunks = jacobianTerms(P).map((t) => new Float32Array(b * V * t.width));
  // Where each variable's values go: [start, end) of the flat parameter index.
  const offsets: number[] = [];
  vars.reduce((s, v) => {
    offsets.push(s);
    return s + v.size;
  }, 0);
  /** Copy g (the gradient of variable j) into row `row` of the chunks. */
  const place = (
    row: number,
    j: number,
    g: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> },
  ) => {
    let p = offsets[j]!;
    let k = 0;
    while (k < g.length) {
      const c = Math.floor(p / JACOBIAN_CHUNK);
      const col = p - c * JACOBIAN_CHUNK;
      const w = chunks[c]!.length / (b * V);
      const take = Math.min(w - col, g.length - k);
      chunks[c]!.set(g.subarray(k, k + take) as Float32Array, row * w + col);
      k += take;
      p += take;
    }
  };
  for (let n = 0; n < b; n++) {
    tf.tidy(() => {
      const xn = x.slice([n], [1]);
      const forward = () => model.apply(xn, { training: false }) as tf.Tensor;
      for (let i = 0; i < V; i++) {
        tf.tidy(() => {
          const dy = logitSelectors(Int32Array.of(i), V);
          // allowNoGradients: a variable the logit does not depend on gets null (its rows stay 0).
          const { value, grads } = gradientsOrRelease(forward, vars, dy);
          value.dispose();
          grads.forEach((g, j) => {
            if (g) place(n * V + i, j, g.dataSync() as Float32Array);
          });
        });
      }
    });
  }
  return chunks.map((d) => ({ d }));
}
