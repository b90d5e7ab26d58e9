/**
 * Structured (layer-wise) eNTK factors: for every selected parameterised layer, the per-point
 * quantities whose contraction gives that layer's contribution to K, without ever forming J
 * (docs/theory.md#structured-derivatives).
 *
 * For a dense layer h = s_w·(a W) + s_b·b on a rank-2 input, the per-example gradient of logit i
 * is s_w·a(x) ⊗ δ_i(x) (plus s_b·δ_i(x) for the bias), δ_i(x) = ∂f_i(x)/∂h, hence
 *
 *     K_ij(x, x') += (s_w²⟨a(x), a(x')⟩ + s_b²) · ⟨δ_i(x), δ_j(x')⟩          ("factored" term)
 *
 * The δ_i of all layers and points come from ONE backward pass over a batch in which every point
 * is repeated V times (row n·V + i holds x_n and is differentiated through logit i): zero "probe"
 * tensors are added to every pre-activation and the gradient of Σ_{n,i} f_i(x_{n,i}) with respect
 * to the probes is exactly δ, already point-major ([n·V + i, width]), so Δ Δᵀ lands in the final
 * kernel layout. Examples never interact (inference mode), so the replicated batch is exact.
 *
 * When the last parameterised layer is a linear dense layer followed only by identities / Scale(c),
 * δ_i = c·e_i and its contribution is c²(s_w²⟨a, a'⟩ + s_b²) I_V ("identity" term, no Δ at all).
 *
 * A dense layer feeding that head through element-wise maps only (its activation, dropout) is
 * "gated": δ_i(x) = g'(h(x)) ⊙ u_i with u_i = c·s_w·W_head[:, i] the same for every point, so
 * ⟨δ_i(x), δ_j(x')⟩ = Σ_p g'(h_p) g'(h'_p) u_ip u_jp. Besides Δ its factors carry s = g'(h) [b, width]
 * and U [width, V], which lets a contraction work with the V(V+1)/2 products u_i ⊙ u_j instead of V²
 * inner products of Δ rows (src/kernel/wasm-terms.ts).
 *
 * Layers whose weights are shared across positions (Conv2D, Embedding, Dense on rank > 2 inputs)
 * have few parameters: their per-example gradients J_l(x) = Σ_p a_p(x) ⊗ δ_p(x) are materialised
 * (batched A_nᵀ Δ_n) and contribute J_l J_lᵀ ("gram" term). Conv2D patches a_p are extracted by a
 * convolution with an identity filter, so padding, strides and dilation match the layer exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { type ChainStep, isElementwiseLayer, type ModelAnalysis, type ParamLayer } from './analyze.js';
import type { TermMeta } from './terms.js';

/** A chain step with the geometry found by tracing one example through the chain. */
interface TracedStep extends ChainStep {
  /** For parameterised steps: the term index this layer feeds, and its shapes (without batch). */
  term?: number;
  inShape?: number[];
  hShape?: number[];
  /** Shared-weight layers: positions L and patch width K. */
  positions?: number;
  patch?: number;
  /** Gated dense layers: the head's step index and the factor c·s_w of u_i = c·s_w·W_head[:, i]. */
  gate?: { head: number; scale: number };
}

/** The structured plan of a model: traced chain and its terms. */
export interface StructuredPlan {
  steps: TracedStep[];
  terms: TermMeta[];
  numOutputs: number;
  /** Whether any term needs back-propagated signals (else the backward pass is skipped). */
  needsDeltas: boolean;
}

function prod(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * `value(a)`, differentiable in a only, with the input gradient of a dense product, dy·(scale·w)ᵀ,
 * computed against an explicitly transposed wᵀ: tfjs's own MatMul gradient uses a
 * transposed-operand matMul, ~8× slower on wasm. (The weights are constants here: the structured
 * path differentiates with respect to probes.)
 */
function withDenseGradient(
  a: tf.Tensor2D,
  w: tf.Tensor2D,
  value: (x: tf.Tensor2D) => tf.Tensor,
  scale = 1,
): tf.Tensor2D {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: value(args[0] as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor) => {
      const g = tf.matMul(dy as tf.Tensor2D, tf.transpose(w));
      return scale === 1 ? g : tf.mul(g, scale);
    },
  }));
  return f(a) as tf.Tensor2D;
}

/** a @ w with the fast input gradient. */
function denseMatMul(a: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return withDenseGradient(a, w, (x) => tf.matMul(x, w));
}

/** The pre-activation h = s_w·(a ⋆ kernel) + s_b·bias of a parameterised layer. */
function preActivation(p: ParamLayer, a: tf.Tensor): tf.Tensor {
  const w = p.kernel.read();
  let h: tf.Tensor;
  if (p.kind === 'dense') {
    const dIn = a.shape[a.rank - 1]!;
    const flat = a.rank === 2 ? (a as tf.Tensor2D) : a.reshape([-1, dIn]);
    h = denseMatMul(flat as tf.Tensor2D, w as tf.Tensor2D);
    if (a.rank !== 2) h = h.reshape([...a.shape.slice(0, -1), w.shape[1]!]);
  } else if (p.kind === 'conv2d') {
    h = tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, p.strides!, p.padding!, 'NHWC', p.dilationRate!);
  } else {
    const ids = tf.cast(a, 'int32');
    h = tf.gather(w, ids.reshape([ids.size])).reshape([...a.shape, w.shape[1]!]);
  }
  if (p.weightScale !== 1) h = tf.mul(h, p.weightScale);
  if (p.bias) {
    const b = p.biasScale === 1 ? p.bias.read() : tf.mul(p.bias.read(), p.biasScale);
    h = tf.add(h, b);
  }
  return h;
}

/**
 * Each row (along axis 0) repeated V times in place: row n·V + i ← row n. A concat: on the wasm
 * backend broadcastTo / tile (a slow Tile kernel) and gather are 10–20× slower.
 */
function repeatRows(t: tf.Tensor, V: number): tf.Tensor {
  const [n, ...rest] = t.shape;
  const row = t.reshape([n!, 1, ...rest]);
  return tf.concat(new Array<tf.Tensor>(V).fill(row), 1).reshape([n! * V, ...rest]);
}

/**
 * The pre-activation of a dense layer on the V-fold replicated batch a [b·V, dIn], given its value
 * on the b points themselves, hBase [b, width]: the forward value is hBase repeated (bitwise what the
 * product would give, every copy of a row being equal), so only the backward product dy (s_w·W)ᵀ
 * runs on the replicated batch.
 */
function replicatedDense(p: ParamLayer, a: tf.Tensor2D, hBase: tf.Tensor2D, V: number): tf.Tensor2D {
  return withDenseGradient(a, p.kernel.read() as tf.Tensor2D, () => repeatRows(hBase, V), p.weightScale);
}

/**
 * Run the chain on x. `probes[k]` (when given) is added to the pre-activation of the k-th traced
 * parameterised step; `capture(k, a, h)` sees each parameterised step's input and pre-activation.
 * With `replicated` (x is the V-fold replicated batch), dense layers on rank-2 inputs take their
 * forward values from `replicated.h` (the pre-activations on the points themselves).
 */
function runChain(
  steps: TracedStep[],
  x: tf.Tensor,
  probes: Map<number, tf.Tensor> | null,
  capture: ((k: number, a: tf.Tensor, h: tf.Tensor) => void) | null,
  replicated: { h: Map<number, tf.Tensor>; V: number } | null = null,
): tf.Tensor {
  let a = x;
  steps.forEach((step, k) => {
    const p = step.param;
    if (!p) {
      a = step.layer.apply(a, { training: false }) as tf.Tensor;
      return;
    }
    const hBase = replicated?.h.get(k);
    let h =
      hBase && p.kind === 'dense' && a.rank === 2 && hBase.rank === 2
        ? replicatedDense(p, a as tf.Tensor2D, hBase as tf.Tensor2D, replicated!.V)
        : preActivation(p, a);
    capture?.(k, a, h);
    const probe = probes?.get(k);
    if (probe) h = tf.add(h, probe);
    a = p.activation ? p.activation(h) : h;
  });
  return a;
}

/** Layers that are the identity at inference (besides Activation('linear')). */
const IDENTITY_AT_INFERENCE = new Set(['Dropout', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

/** If every step after `k` is an identity or a constant Scale, the product of the factors; else null. */
function trailingScale(steps: ChainStep[], k: number): number | null {
  let c = 1;
  for (const step of steps.slice(k + 1)) {
    const cls = step.layer.getClassName();
    const l = step.layer as unknown as Record<string, unknown>;
    if (step.param) return null;
    if (IDENTITY_AT_INFERENCE.has(cls)) continue;
    if (cls === 'Activation' && (l.activation as { getClassName(): string })?.getClassName() === 'linear')
      continue;
    if (cls === 'Scale' && typeof l.factor === 'number') {
      c *= l.factor;
      continue;
    }
    return null;
  }
  return c;
}

/**
 * Trace one example through the chain to fix every parameterised layer's shapes and choose its
 * term kind. `analysis.chain` must be non-null.
 */
export function planStructured(analysis: ModelAnalysis): StructuredPlan {
  const chain = analysis.chain!;
  const V = analysis.numOutputs;
  const steps: TracedStep[] = chain.map((s) => ({ ...s }));
  tf.tidy(() => {
    const x = tf.zeros([1, ...analysis.inputShape], analysis.inputDtype);
    let a = x;
    steps.forEach((step) => {
      const p = step.param;
      if (!p) {
        a = step.layer.apply(a, { training: false }) as tf.Tensor;
        return;
      }
      step.inShape = a.shape.slice(1);
      const h = preActivation(p, a);
      step.hShape = h.shape.slice(1);
      a = p.activation ? p.activation(h) : h;
    });
    if (a.rank !== 2 || a.shape[1] !== V) {
      throw new Error(
        `structured eNTK: chain output shape [${a.shape}] differs from the model's [batch, ${V}]`,
      );
    }
  });

  const terms: TermMeta[] = [];
  const paramIndices = steps.flatMap((s, k) => (s.param ? [k] : []));
  const lastParam = paramIndices[paramIndices.length - 1];
  for (const k of paramIndices) {
    const step = steps[k]!;
    const p = step.param!;
    const sw2 = p.kernelSelected ? p.weightScale * p.weightScale : 0;
    const sb2 = p.biasSelected ? p.biasScale * p.biasScale : 0;
    const inShape = step.inShape!;
    const hShape = step.hShape!;
    const name = p.layer.name;
    if (p.kind === 'dense' && inShape.length === 1) {
      const c = k === lastParam && !p.activation && hShape[0] === V ? trailingScale(steps, k) : null;
      if (c !== null) {
        terms.push({
          kind: 'identity',
          layer: name,
          dIn: inShape[0]!,
          width: 0,
          sw2: sw2 * c * c,
          sb2: sb2 * c * c,
        });
      } else {
        terms.push({ kind: 'factored', layer: name, dIn: inShape[0]!, width: hShape[0]!, sw2, sb2 });
      }
    } else {
      // Shared weights: positions L, patch width K, output channels dOut.
      const dOut = hShape[hShape.length - 1]!;
      const positions = prod(hShape.slice(0, -1));
      let patch: number;
      if (p.kind === 'dense') patch = inShape[inShape.length - 1]!;
      else if (p.kind === 'conv2d') {
        const ks = p.kernel.shape as number[];
        patch = ks[0]! * ks[1]! * ks[2]!;
      } else patch = (p.kernel.shape as number[])[0]!;
      step.positions = positions;
      step.patch = patch;
      const width = (p.kernelSelected ? patch * dOut : 0) + (p.biasSelected ? dOut : 0);
      terms.push({ kind: 'gram', layer: name, dIn: 0, width, sw2, sb2 });
    }
    step.term = terms.length - 1;
  }
  markGated(steps, terms);
  return { steps, terms, numOutputs: V, needsDeltas: terms.some((t) => t.kind !== 'identity') };
}

/** Mark factored dense terms whose layer reaches the identity head through element-wise maps only. */
function markGated(steps: TracedStep[], terms: TermMeta[]): void {
  const paramIndices = steps.flatMap((s, k) => (s.param ? [k] : []));
  paramIndices.forEach((k, j) => {
    const head = paramIndices[j + 1];
    const step = steps[k]!;
    if (head === undefined || terms[step.term!]!.kind !== 'factored') return;
    if (terms[steps[head]!.term!]!.kind !== 'identity' || !step.param!.elementwiseActivation) return;
    if (!steps.slice(k + 1, head).every((s) => isElementwiseLayer(s.layer))) return;
    const c = trailingScale(steps, head)!;
    step.gate = { head, scale: c * steps[head]!.param!.weightScale };
    terms[step.term!]!.gated = true;
  });
}

/** Feature arrays of one term for a block of points (see TermMeta for shapes). */
export interface TermFeatures {
  /** Layer inputs [b, dIn] (factored, identity). */
  a?: Float32Array;
  /** Back-propagated signals [b·V, width], point-major (factored); per-example gradients (gram). */
  d?: Float32Array;
  /** Gated terms: s = g'(h) [b, width], and U [width, V] (u_i = column i; the same for every block). */
  s?: Float32Array;
  u?: Float32Array;
}

/** Rows A_n [L, K] of a shared-weight layer's input, for a batch: [b, L, K]. */
function sharedInputs(step: TracedStep, a: tf.Tensor): tf.Tensor3D {
  const p = step.param!;
  const b = a.shape[0]!;
  const L = step.positions!;
  const K = step.patch!;
  if (p.kind === 'dense') return a.reshape([b, L, K]);
  if (p.kind === 'embedding') {
    const ids = tf.cast(a, 'int32').reshape([-1]);
    return tf.cast(tf.oneHot(ids, K), 'float32').reshape([b, L, K]);
  }
  const [kh, kw, cin] = p.kernel.shape as number[];
  const eye = tf.eye(K).reshape([kh!, kw!, cin!, K]) as tf.Tensor4D;
  const patches = tf.conv2d(a as tf.Tensor4D, eye, p.strides!, p.padding!, 'NHWC', p.dilationRate!);
  return patches.reshape([b, L, K]);
}

/**
 * Per-example gradients of a shared-weight layer, [b·V, width] point-major:
 * weight part s_w·A_nᵀ Δ_{n,i} (flattened [K·dOut]) then bias part s_b·Σ_p Δ_{n,i,p}.
 */
function sharedGradients(step: TracedStep, A: tf.Tensor3D, delta: tf.Tensor, V: number): tf.Tensor2D {
  const p = step.param!;
  const b = A.shape[0];
  const L = step.positions!;
  const K = step.patch!;
  const hShape = step.hShape!;
  const dOut = hShape[hShape.length - 1]!;
  const parts: tf.Tensor2D[] = [];
  if (p.kernelSelected) {
    // [b·V, L, dOut] → [b, L, V·dOut]; batched Aᵀ [b, K, L] @ that → [b, K, V·dOut] → [b·V, K·dOut].
    const dl = delta
      .reshape([b, V, L, dOut])
      .transpose([0, 2, 1, 3])
      .reshape([b, L, V * dOut]);
    const at = A.transpose([0, 2, 1]);
    let jw = tf
      .matMul(at, dl as tf.Tensor3D)
      .reshape([b, K, V, dOut])
      .transpose([0, 2, 1, 3]);
    if (p.weightScale !== 1) jw = tf.mul(jw, p.weightScale);
    parts.push(jw.reshape([b * V, K * dOut]));
  }
  if (p.biasSelected) {
    let jb = delta.reshape([b * V, L, dOut]).sum(1);
    if (p.biasScale !== 1) jb = tf.mul(jb, p.biasScale);
    parts.push(jb as tf.Tensor2D);
  }
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/**
 * Compute the structured factors of every term for the points `x` ([b, ...inputShape]).
 * Returns one TermFeatures per term. No tensors escape.
 */
export function structuredFeatures(plan: StructuredPlan, x: tf.Tensor): TermFeatures[] {
  const V = plan.numOutputs;
  const b = x.shape[0]!;
  const out: TermFeatures[] = plan.terms.map(() => ({}));
  const tensors: Array<{ term: number; key: keyof TermFeatures; t: tf.Tensor }> = tf.tidy(() => {
    const result: Array<{ term: number; key: keyof TermFeatures; t: tf.Tensor }> = [];
    // Forward pass on the points themselves: the layer inputs A.
    const inputs = new Map<number, tf.Tensor>();
    const pre = new Map<number, tf.Tensor>();
    runChain(plan.steps, x, null, (k, a, h) => {
      inputs.set(k, a);
      pre.set(k, h);
    });
    if (plan.needsDeltas) {
      // Replicated batch: row n·V + i is x_n, differentiated through logit i.
      const xr = repeatRows(x, V);
      // (tf.oneHot with dtype float32 writes integer bit patterns on the wasm backend: cast instead.)
      const labels = tf.tensor1d(
        new Int32Array(b * V).map((_, r) => r % V),
        'int32',
      );
      const select = tf.cast(tf.oneHot(labels, V), 'float32');
      const probeSteps = plan.steps.flatMap((s, k) =>
        s.param && plan.terms[s.term!]!.kind !== 'identity' ? [k] : [],
      );
      const probes = probeSteps.map((k) => tf.zeros([b * V, ...plan.steps[k]!.hShape!]));
      const grads = tf.grads((...ps: tf.Tensor[]) => {
        const map = new Map(probeSteps.map((k, j) => [k, ps[j]!]));
        return tf.sum(tf.mul(runChain(plan.steps, xr, map, null, { h: pre, V }), select));
      })(probes);
      probeSteps.forEach((k, j) => {
        const step = plan.steps[k]!;
        const term = plan.terms[step.term!]!;
        const delta = grads[j]!;
        if (term.kind === 'factored') {
          result.push({ term: step.term!, key: 'd', t: delta.reshape([b * V, term.width]) });
        } else {
          const A = sharedInputs(step, inputs.get(k)!);
          result.push({ term: step.term!, key: 'd', t: sharedGradients(step, A, delta, V) });
        }
      });
    }
    plan.steps.forEach((step, k) => {
      if (!step.param) return;
      const term = plan.terms[step.term!]!;
      if (term.kind !== 'gram')
        result.push({ term: step.term!, key: 'a', t: inputs.get(k)!.reshape([b, term.dIn]) });
      if (step.gate) {
        // s = g'(h) of the element-wise map g from h to the head's input (sum's gradient, exact).
        const p = step.param;
        const between = plan.steps.slice(k + 1, step.gate.head);
        const g = (h: tf.Tensor) => {
          let y = p.activation ? p.activation(h) : h;
          for (const s of between) y = s.layer.apply(y, { training: false }) as tf.Tensor;
          return tf.sum(y);
        };
        result.push({ term: step.term!, key: 's', t: tf.grad(g)(pre.get(k)!) });
        const head = plan.steps[step.gate.head]!.param!;
        result.push({ term: step.term!, key: 'u', t: tf.mul(head.kernel.read(), step.gate.scale) });
      }
    });
    return result;
  });
  for (const { term, key, t } of tensors) {
    out[term]![key] = t.dataSync() as Float32Array;
    t.dispose();
  }
  return out;
}
