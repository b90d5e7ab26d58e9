/**
 * Structured (layer-wise) eNTK factors on any graph: for every selected parameterised layer, the
 * per-point quantities whose contraction gives that layer's contribution to K, without ever forming
 * the whole-model J (docs/theory.md#structured-derivatives).
 *
 * The per-example, per-logit gradient of a layer's parameters depends only on the layer's inputs
 * at x and the cotangents δ_i(x) = ∂f_i(x)/∂(layer output), whatever path (residuals, merges,
 * shared layers, nested models) connects the layer to the output. So the model's graph is run node
 * by node (src/kernel/analyze.ts modelGraph): once on the points themselves, recording every
 * parameterised call's inputs, and once on a batch in which every point is repeated V times (row
 * n·V + i holds x_n and is differentiated through logit i) with zero "probe" tensors added where
 * each rule needs cotangents (a pre-activation, a layer output). The gradient of Σ_{n,i} f_i(x_{n,i})
 * with respect to the probes is exactly δ, point-major ([n·V + i, ...]), in ONE backward pass.
 * Examples never interact (inference mode), so the replicated batch is exact.
 *
 * The replicated batch reuses what the run on the points computed, V times less work than
 * recomputing it: dense and embedding pre-activations, element-wise maps (f'(x) on the points;
 * GELU's in closed form), layer norms (x̂, σ: closed-form input gradient), the transformer's attention
 * cores (q, k, v, P: ./attention-grad.ts, skipping zero cotangent rows) and CLS pooling. When no
 * gradient of the run reads a forward value (replicatedValueFree), the forward values are not even
 * formed (zero placeholders). Dense input gradients dy·Wᵀ and the gram terms' Σ_t products skip
 * positions whose signals are exactly zero (./position-grads.ts): the padding of masked texts.
 *
 * Terms (./terms.ts), per selected layer:
 * - dense on a rank-2 input, called once: h = s_w·(a W) + s_b·b, gradient s_w·a ⊗ δ_i, so
 *       K_ij(x, x') += (s_w²⟨a, a'⟩ + s_b²) · ⟨δ_i, δ'_j⟩          ("factored": rule 'dense-factored')
 *   When its output reaches the model output through identities / Scale(c) only, δ_i = c·e_i and
 *   the term is c²(s_w²⟨a, a'⟩ + s_b²) I_V ("identity": 'dense-identity'). A dense layer feeding that
 *   head through element-wise maps only is "gated" (δ_i = g'(h) ⊙ u_i, u_i = c·s_w·W_head[:, i]:
 *   'dense-gated', see ./wasm-terms.ts).
 * - every other rule materialises the per-example gradient G_i(x) (a "gram" term, ⟨G_i, G'_j⟩),
 *   summed over the layer's calls (shared layers) and positions:
 *   dense over positions / conv1d / conv2d (im2col rows a_t): G_i = Σ_t a_t ⊗ δ_{i,t} (+ Σ_t δ_{i,t});
 *   depthwise: the same per channel; separable: depthwise part + pointwise (dense over positions);
 *   embedding: one-hot rows, or, when a point selects fewer rows than the table has ('embedding-sparse',
 *   a 'tokens' term), only the selected rows: one per distinct token, Σ of its positions' δ_i;
 *   layernorm / batchnorm (inference): Σ_t x̂_t ⊙ δ_{i,t} and Σ_t δ_{i,t};
 *   prelu: Σ over shared axes of min(x, 0) ⊙ δ_i;
 *   'autodiff' (hybrid, any other layer): the layer alone differentiated by tfjs, once per (point, logit),
 *   on its recorded inputs with the probe cotangents.
 */
import * as tf from '@tensorflow/tfjs';
import {
  maxPoolArgmax,
  type PoolGeometry,
  poolGeometry,
  replicatedMaxPoolGradient,
} from '../backend/index.js';
import { UnsupportedError } from '../errors.js';
import { AttentionCore, attentionProbabilities, SequencePooling } from '../model/index.js';
import {
  type GraphNode,
  isElementwiseLayer,
  type ModelAnalysis,
  type ModelGraph,
  type ParamLayer,
} from './analyze.js';
import { attentionBackward } from './attention-grad.js';
import { gemmABt, useFactorGemm } from './factor-gemm.js';
import {
  type ConvGeometry,
  denseGradientRows,
  denseGradientRowsAvailable,
  embeddingGradientRows,
  im2colRows,
  pooledFactors,
  pooledPositions,
  positionGradTestHooks,
  sparseRowsProduct,
} from './position-grads.js';
import { compactTokens, type TermMeta } from './terms.js';
import { heapView } from './tf-terms.js';
import type { NtkOutput } from './types.js';

/** How one selected layer is differentiated (reported in the plan). */
export interface LayerRule {
  name: string;
  className: string;
  /** e.g. 'dense-identity', 'dense-factored', 'dense-gated', 'dense-explicit', 'conv2d-explicit', 'layernorm', 'autodiff'. */
  rule: string;
  /** Parameters of the layer. */
  parameters: number;
  /** Calls of the layer in the graph (> 1 for shared layers). */
  uses: number;
  /** Why a layer whose class has a rule runs through 'autodiff'. */
  note?: string;
}

/**
 * For tests only: `sparseEmbeddings = false` plans every embedding with the explicit rule;
 * `replicatedAttention = false` differentiates attention cores by tfjs on the replicated batch.
 */
export const structuredTestHooks = {
  sparseEmbeddings: true,
  replicatedAttention: true,
  /** Dense input gradients with fewer multiply-adds than this stay on tfjs (see sparseRowsProduct). */
  sparseRowsMinWork: 2 ** 20,
  /** Replicated runs made without the forward values so far (see replicatedValueFree). */
  valueFreeRuns: 0,
  /**
   * Convolutions behind a max-pooling (see pooledTerm): pooled terms where they cost less ('cost'),
   * always, or never (gram terms).
   */
  pooledConvolutions: 'cost' as 'cost' | 'always' | 'never',
  /**
   * Pooled terms behind max-pool windows from input pixels (terms.ts PoolPixels): where they cost
   * less than the slots' patches ('cost'), always, or never.
   */
  pooledPixels: 'cost' as 'cost' | 'always' | 'never',
  /**
   * Dense layers over positions (one call): positions terms where they cost less than the explicit
   * gradient rows ('cost', see positionsTerm), always, or never.
   */
  positionTerms: 'cost' as 'cost' | 'always' | 'never',
};

/** Shapes (without batch) found by tracing one example. */
interface NodeTrace {
  inShapes: number[][];
  /** Shapes of the tensors the rule probes (pre-activation, output, …). */
  probeShapes: number[][];
}

/** A selected layer, its calls and its term. */
interface PlannedLayer {
  param: ParamLayer;
  /** Indices (into graph.nodes) of the layer's calls. */
  nodes: number[];
  term: number;
  /** Gated dense layers: the head's node, the element-wise nodes in between, and c·s_w. */
  gate?: { head: number; between: number[]; scale: number };
  /** Dense over positions whose cotangent lives on this position only (see positionSupport). */
  position?: number;
}

/** The structured plan of a model: its graph, traced shapes and terms. */
export interface StructuredPlan {
  graph: ModelGraph;
  traces: Map<number, NodeTrace>;
  layers: PlannedLayer[];
  terms: TermMeta[];
  rules: LayerRule[];
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
  group = 1,
): tf.Tensor2D {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: value(args[0] as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor) => {
      const [rows, k] = dy.shape as [number, number];
      const cols = w.shape[0];
      // Wide layers: entk's threaded GEMM (./factor-gemm.ts) instead of single-threaded tfjs-wasm.
      // Read dy in place and hand C over as a view (the wasm backend copies it at once): no fresh
      // tens-of-MB arrays (see gemmABt's `view`).
      const wasm = tf.getBackend() === 'wasm';
      if (!useFactorGemm(rows, k, cols) && rows * k * cols >= structuredTestHooks.sparseRowsMinWork) {
        // Many zero rows of dy (padding positions): only the others multiplied (./position-grads.ts).
        const wData = w.dataSync() as Float32Array;
        const sparse = sparseRowsProduct(valuesOf(dy), rows, k, wData, cols, scale, wasm);
        if (sparse) return tf.tensor2d(sparse, [rows, cols]);
      }
      const g = useFactorGemm(rows, k, cols)
        ? tf.tensor2d(
            gemmABt(
              heapView(dy) ?? (dy.dataSync() as Float32Array),
              rows,
              () => w.dataSync() as Float32Array,
              cols,
              k,
              'rows',
              group,
              w.dataId,
              wasm,
            ),
            [rows, cols],
          )
        : tf.matMul(dy as tf.Tensor2D, tf.transpose(w));
      return scale === 1 ? g : tf.mul(g, scale);
    },
  }));
  return f(a) as tf.Tensor2D;
}

/** a @ w with the fast input gradient. */
function denseMatMul(a: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return withDenseGradient(a, w, (x) => tf.matMul(x, w));
}

/**
 * A [kh, kw, ...] kernel with zeros inserted between its taps: a convolution with dilation 1 on it
 * equals the dilated convolution (same output size and 'same' padding, both computed from the
 * effective size (k − 1)·d + 1), and tfjs differentiates it (it has no gradients for dilations > 1).
 */
function dilateKernel(w: tf.Tensor, dilation: [number, number]): tf.Tensor {
  const [dh, dw] = dilation;
  if (dh === 1 && dw === 1) return w;
  const [kh, kw, ...rest] = w.shape as number[];
  const spread = w
    .reshape([kh!, 1, kw!, 1, ...rest])
    .pad([[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], ...rest.map((): [number, number] => [0, 0])])
    .reshape([kh! * dh, kw! * dw, ...rest]);
  return spread.slice([0, 0, ...rest.map(() => 0)], [(kh! - 1) * dh + 1, (kw! - 1) * dw + 1, ...rest]);
}

/**
 * conv2d(x, w) with dilation 1, differentiable in x only. For stride 1 the input gradient is itself
 * a convolution — of dy padded by (k − 1) with the kernel rotated by 180° and its channels swapped,
 * cropped by the forward padding — which runs on the backend's fast Conv2D kernel (the wasm
 * Conv2DBackpropInput kernel is ~10× slower). Other strides keep tfjs's gradient.
 */
function conv2dFastGrad(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: [number, number],
  padding: 'valid' | 'same',
): tf.Tensor4D {
  if (strides[0] !== 1 || strides[1] !== 1) return tf.conv2d(x, w, strides, padding);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    // The kernel may be an intermediate (dilated): saved, or autodiff would have disposed it.
    (args[args.length - 1] as tf.GradSaveFunc)([w]);
    return {
      value: tf.conv2d(args[0] as tf.Tensor4D, w, 1, padding),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        conv2dInputGradient(dy as tf.Tensor4D, saved[0] as tf.Tensor4D, x.shape, strides, padding),
    };
  });
  return f(x) as tf.Tensor4D;
}

/**
 * The input gradient of conv2d(x, w) (dilation 1) for x of `xShape`: for stride 1 a convolution of
 * dy padded by (k − 1) with the kernel rotated by 180° and its channels swapped, cropped by the
 * forward padding (see conv2dFastGrad); other strides tfjs's own (Conv2DBackpropInput).
 */
function conv2dInputGradient(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  xShape: number[],
  strides: [number, number],
  padding: 'valid' | 'same',
): tf.Tensor4D {
  const shape = xShape as [number, number, number, number];
  if (strides[0] !== 1 || strides[1] !== 1) return tf.conv2dTranspose(dy, w, shape, strides, padding);
  const [kh, kw] = w.shape;
  const [, H, W] = shape;
  const pt = padding === 'same' ? Math.floor((kh - 1) / 2) : 0;
  const pl = padding === 'same' ? Math.floor((kw - 1) / 2) : 0;
  const rotated = tf.reverse(w, [0, 1]).transpose([0, 1, 3, 2]) as tf.Tensor4D;
  const [, oh, ow] = dy.shape;
  // dy padded by (k − 1) on each side gives the full correlation; only its rows [pt, pt + H) and
  // columns [pl, pl + W) are the input gradient, so pad just for those (a crop would be a slice,
  // which the wasm backend runs in JS).
  const padded = tf.pad(dy, [
    [0, 0],
    [kh - 1 - pt, H + pt - oh!],
    [kw - 1 - pl, W + pl - ow!],
    [0, 0],
  ]);
  return tf.conv2d(padded, rotated, 1, 'valid');
}

/**
 * A convolution's pre-activation on the replicated batch: the points' values (`value`: no
 * convolution of V copies), differentiable in the input with the gradient autodiff gives
 * preActivation (conv2dInputGradient; tfjs convolutions have s_w = 1, the only ones taken here).
 */
function withConvGradient(p: ParamLayer, a: tf.Tensor, value: tf.Tensor): tf.Tensor {
  const shape = a.shape;
  const image = p.conv1d ? [shape[0]!, 1, shape[1]!, shape[2]!] : shape;
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value,
    gradFunc: (dy: tf.Tensor) => {
      const w = imageKernel(p, p.kernel!.read());
      return conv2dInputGradient(asImage(p, dy), w, image, p.strides!, p.padding!).reshape(shape);
    },
  }));
  return f(a);
}

/** A conv layer's input as NHWC (conv1d: [b, L, C] → [b, 1, L, C]). */
function asImage(p: ParamLayer, a: tf.Tensor): tf.Tensor4D {
  return (p.conv1d ? a.reshape([a.shape[0]!, 1, a.shape[1]!, a.shape[2]!]) : a) as tf.Tensor4D;
}

/** A conv layer's kernel as [kh, kw, cin, cout], dilated. */
function imageKernel(p: ParamLayer, w: tf.Tensor): tf.Tensor4D {
  const k = p.conv1d ? w.reshape([1, ...w.shape]) : w;
  return dilateKernel(k, p.dilationRate!) as tf.Tensor4D;
}

/** Output of an NHWC conv back in the layer's layout (conv1d: [b, L, C]). */
function fromImage(p: ParamLayer, h: tf.Tensor): tf.Tensor {
  return p.conv1d ? h.reshape([h.shape[0]!, h.shape[2]!, h.shape[3]!]) : h;
}

function addBias(p: ParamLayer, h: tf.Tensor): tf.Tensor {
  if (!p.bias) return h;
  const b = p.biasScale === 1 ? p.bias.read() : tf.mul(p.bias.read(), p.biasScale);
  return tf.add(h, b);
}

/**
 * Rows ids of a float32 table [rows, width] as [...ids.shape, width], copied in JS (tfjs-wasm's
 * Gather is slow), or null if an id is not a row index (then tf.gather, with its checks). Not
 * differentiable: for the runs on the points.
 */
function gatherRows(table: tf.Tensor, ids: tf.Tensor): tf.Tensor | null {
  const [rows, width] = table.shape as [number, number];
  if (table.dtype !== 'float32') return null;
  const index = ids.dataSync();
  const out = new Float32Array(index.length * width);
  const values = valuesOf(table);
  for (let e = 0; e < index.length; e++) {
    const id = index[e]!;
    if (!(Number.isInteger(id) && id >= 0 && id < rows)) return null;
    out.set(values.subarray(id * width, (id + 1) * width), e * width);
  }
  return tf.tensor(out, [...ids.shape, width]);
}

/** The pre-activation h = s_w·(a ⋆ kernel) + s_b·bias of a dense / conv / depthwise / embedding layer. */
function preActivation(p: ParamLayer, a: tf.Tensor): tf.Tensor {
  const w = p.kernel!.read();
  let h: tf.Tensor;
  if (p.kind === 'dense') {
    const dIn = a.shape[a.rank - 1]!;
    const flat = a.rank === 2 ? (a as tf.Tensor2D) : a.reshape([-1, dIn]);
    h = denseMatMul(flat as tf.Tensor2D, w as tf.Tensor2D);
    if (a.rank !== 2) h = h.reshape([...a.shape.slice(0, -1), w.shape[1]!]);
  } else if (p.kind === 'conv') {
    h = fromImage(p, conv2dFastGrad(asImage(p, a), imageKernel(p, w), p.strides!, p.padding!));
  } else if (p.kind === 'depthwise' || p.kind === 'separable') {
    h = tf.depthwiseConv2d(
      a as tf.Tensor4D,
      dilateKernel(w, p.dilationRate!) as tf.Tensor4D,
      p.strides!,
      p.padding!,
    );
  } else {
    h =
      gatherRows(w, a) ??
      tf.gather(w, tf.cast(a, 'int32').reshape([a.size])).reshape([...a.shape, w.shape[1]!]);
  }
  if (p.weightScale !== 1) h = tf.mul(h, p.weightScale);
  return p.kind === 'separable' ? h : addBias(p, h);
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

/** The linear activation (to call a layer without its fused softmax/sigmoid). */
const LINEAR = (tf.layers.dense({ units: 1 }) as unknown as { activation: unknown }).activation;

/** A parameter-free call (or an 'autodiff' layer's call) in inference mode. */
function applyLayer(node: GraphNode, ins: tf.Tensor[]): tf.Tensor {
  const arg = ins.length === 1 ? ins[0]! : ins;
  if (!node.stripActivation) return node.layer.apply(arg, { training: false }) as tf.Tensor;
  if (node.layer.getClassName() === 'Activation') return ins[0]!;
  const layer = node.layer as unknown as { activation: unknown };
  const saved = layer.activation;
  layer.activation = LINEAR;
  try {
    return node.layer.apply(arg, { training: false }) as tf.Tensor;
  } finally {
    layer.activation = saved;
  }
}

/** What a rule records of one call on the points: its inputs, pre-activation, and rule-specific x̂ etc. */
interface Saved {
  inputs: tf.Tensor[];
  pre?: tf.Tensor;
  extra?: tf.Tensor;
}

interface RunHooks {
  /** Sees the j-th probed tensor of node k; returns what the graph continues with. */
  probe?: (k: number, j: number, t: tf.Tensor) => tf.Tensor;
  capture?: (k: number, saved: Saved) => void;
  /** Replicated batch: dense pre-activations on the points themselves (forward values repeated). */
  replicated?: {
    pre: Map<number, tf.Tensor>;
    V: number;
    /** Parameter-free element-wise calls: their output and derivative f'(input) on the points. */
    elementwise?: Map<number, { out: tf.Tensor; deriv: tf.Tensor }>;
    /** Dense / conv calls' fused element-wise activations: output and f'(pre-activation) on the points. */
    activations?: Map<number, { out: tf.Tensor; deriv: tf.Tensor }>;
    /** Max-pooling calls: output and argmax indices on the points (src/backend/max-pool.ts). */
    maxPools?: Map<number, MaxPoolOnPoints>;
    /** Attention cores: their output and q, k, v, weights on the points. */
    attention?: Map<number, AttentionOnPoints>;
    /** Every tensor of the run on the points (indexed like graph tensors). */
    points: tf.Tensor[];
    /** Layer norms: output, x̂ and 1/σ on the points. */
    norms?: Map<number, NormOnPoints>;
    /**
     * The forward value on the replicated batch of a tensor t of the points: t repeated, or — when
     * no gradient of the run reads a forward value (valueFree) — a zero placeholder of that shape.
     */
    value: (t: tf.Tensor) => tf.Tensor;
    valueFree: boolean;
  };
  /** Storage of every tensor of the run (indexed like graph tensors), kept by the caller. */
  values?: tf.Tensor[];
  /** Apply every layer as tfjs does (no rules: differentiable in the weights too). */
  plain?: boolean;
}

/** A layer norm's call on the points: its output y = γ x̂ + β, x̂, and 1/σ = 1/√(var + ε) (keepDims). */
interface NormOnPoints {
  out: tf.Tensor;
  xhat: tf.Tensor;
  inv: tf.Tensor;
}

/** Layer normalisation over the trailing `axes` axes of x, [axes of x]. */
function normAxes(p: ParamLayer, x: tf.Tensor): number[] {
  return Array.from({ length: p.axes! }, (_, i) => x.rank - p.axes! + i);
}

/**
 * A layer norm on the replicated batch: the points' output repeated, and the input gradient
 * dx = (g − mean(g) − x̂·mean(g ⊙ x̂))/σ, g = γ ⊙ dy (means over the normalised axes), from the
 * points' x̂ and σ — instead of recomputing the moments on V copies and differentiating them
 * (tfjs's mean gradient materialises a ones tensor of the input's size per call).
 */
function replicatedLayerNorm(p: ParamLayer, x: tf.Tensor, norm: NormOnPoints, rep: Replicated): tf.Tensor {
  const V = rep.V;
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(norm.out),
    gradFunc: (dy: tf.Tensor) => {
      const axes = normAxes(p, x);
      const xhat = repeatRows(norm.xhat, V);
      const g = p.gamma ? tf.mul(dy, p.gamma.read()) : dy;
      const m1 = tf.mean(g, axes, true);
      const m2 = tf.mean(tf.mul(g, xhat), axes, true);
      return tf.mul(tf.sub(tf.sub(g, m1), tf.mul(xhat, m2)), repeatRows(norm.inv, V));
    },
  }));
  return f(x);
}

/** x̂ = (x − μ)/√(σ² + ε) of a layer norm over the trailing `axes` axes, or of a batch norm. */
function normalized(p: ParamLayer, x: tf.Tensor): tf.Tensor {
  if (p.kind === 'batchnorm') return tf.mul(tf.sub(x, p.movingMean!.read()), batchNormInv(p));
  const { mean, variance } = tf.moments(x, normAxes(p, x), true);
  return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, p.epsilon!)));
}

/** 1/√(v + ε) of an inference-mode batch norm (its moving variance v). */
function batchNormInv(p: ParamLayer): tf.Tensor {
  return tf.rsqrt(tf.add(p.movingVariance!.read(), p.epsilon!));
}

/**
 * A convolution whose replicated-batch output and input gradient come from the points
 * (withConvGradient; applyRule and replicatedValueFree must agree on it).
 */
function convFromPoints(p: ParamLayer): boolean {
  return p.kind === 'conv' && p.weightScale === 1;
}

/** A selected layer's call: its output, with the rule's probes inserted. */
function applyRule(node: GraphNode, k: number, ins: tf.Tensor[], hooks: RunHooks): tf.Tensor {
  const p = node.param!;
  const probe = (j: number, t: tf.Tensor) => (hooks.probe ? hooks.probe(k, j, t) : t);
  const act = node.stripActivation ? null : p.activation;
  const activate = (h: tf.Tensor) => (act ? act(h) : h);
  const a = ins[0]!;
  switch (p.kind) {
    case 'dense':
    case 'conv':
    case 'depthwise':
    case 'embedding': {
      const hBase = hooks.replicated?.pre.get(k);
      const V = hooks.replicated?.V ?? 1;
      // Replicated batch: the forward values of the points, repeated (no recomputation); ids are
      // not differentiated (embeddings), dense layers keep the input gradient.
      let h: tf.Tensor;
      if (hBase && p.kind === 'embedding') h = hooks.replicated!.value(hBase);
      else if (hBase && p.kind === 'dense') {
        const w = p.kernel!.read() as tf.Tensor2D;
        const flat =
          a.rank === 2 ? (a as tf.Tensor2D) : (a.reshape([-1, a.shape[a.rank - 1]!]) as tf.Tensor2D);
        const value = () =>
          a.rank === 2
            ? hooks.replicated!.value(hBase)
            : hooks.replicated!.value(hBase).reshape([-1, w.shape[1]]);
        h = withDenseGradient(flat, w, value, p.weightScale, a.rank === 2 ? V : 1);
        if (a.rank !== 2) h = h.reshape([...a.shape.slice(0, -1), w.shape[1]!]);
      } else if (hBase && convFromPoints(p)) h = withConvGradient(p, a, hooks.replicated!.value(hBase));
      else h = preActivation(p, a);
      hooks.capture?.(k, { inputs: [a], pre: h });
      // Replicated batch: the fused activation from its values and derivative on the points.
      const fused = hooks.replicated?.activations?.get(k);
      if (fused) return replicatedElementwise(probe(0, h), fused.out, fused.deriv, hooks.replicated!);
      return activate(probe(0, h));
    }
    case 'separable': {
      const d = preActivation(p, a);
      hooks.capture?.(k, { inputs: [a], extra: d });
      const pw = p.pointwise!.read() as tf.Tensor4D;
      const h = addBias(p, conv2dFastGrad(probe(0, d) as tf.Tensor4D, pw, [1, 1], 'valid'));
      return activate(probe(1, h));
    }
    case 'layernorm':
    case 'batchnorm': {
      const norm = hooks.replicated?.norms?.get(k);
      if (norm) return probe(0, replicatedLayerNorm(p, a, norm, hooks.replicated!));
      const rep = hooks.replicated;
      if (rep && p.kind === 'batchnorm')
        return probe(0, replicatedBatchNorm(p, a, rep.points[node.output]!, rep));
      const xhat = normalized(p, a);
      hooks.capture?.(k, { inputs: [a], extra: xhat });
      let y = p.gamma ? tf.mul(xhat, p.gamma.read()) : xhat;
      if (p.beta) y = tf.add(y, p.beta.read());
      return probe(0, y);
    }
    case 'prelu': {
      const neg = tf.neg(tf.relu(tf.neg(a)));
      hooks.capture?.(k, { inputs: [a], extra: neg });
      return probe(0, tf.add(tf.relu(a), tf.mul(p.gamma!.read(), neg)));
    }
    default: {
      hooks.capture?.(k, { inputs: ins });
      return probe(0, applyLayer(node, ins));
    }
  }
}

/**
 * An inference-mode BatchNormalization y = γ·(x − μ)/√(v + ε) + β on the replicated batch: the
 * points' output `out` repeated (or a placeholder), and dx = (dy·γ)·(1/√(v + ε)) — autodiff's own
 * products, in its order — without the normalisation of V copies.
 */
function replicatedBatchNorm(p: ParamLayer, x: tf.Tensor, out: tf.Tensor, rep: Replicated): tf.Tensor {
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(out),
    gradFunc: (dy: tf.Tensor) => tf.mul(p.gamma ? tf.mul(dy, p.gamma.read()) : dy, batchNormInv(p)),
  }));
  return f(x);
}

/**
 * An element-wise map y = f(x) on the replicated batch from its values on the points: y the
 * points' output repeated, and ∂/∂x = dy ⊙ f'(x) with f' evaluated on the points and repeated
 * (the same values as recomputing f on V copies, V times less work).
 */
function replicatedElementwise(x: tf.Tensor, out: tf.Tensor, deriv: tf.Tensor, rep: Replicated): tf.Tensor {
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(out),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, repeatRows(deriv, rep.V)),
  }));
  return f(x) as tf.Tensor;
}

/**
 * GELU's derivative Φ(x) + x·φ(x) (Φ, φ the standard normal CDF and density) for an
 * Activation('gelu') call — tfjs's own x·Φ(x) with erf, whose autodiff gradient costs several
 * times as much (the forward again, then the erf gradient) — or null for any other layer. Φ(x) is
 * read off the call's output y = x·Φ(x) as y/x (Φ(0) = ½): no second erf (a slow wasm kernel).
 */
function geluDerivative(node: GraphNode, x: tf.Tensor, y: tf.Tensor): tf.Tensor | null {
  if (node.layer.getClassName() !== 'Activation') return null;
  const act = (node.layer as unknown as { activation?: { getClassName(): string } }).activation;
  if (act?.getClassName() !== 'gelu') return null;
  const zero = tf.equal(x, 0);
  const cdf = tf.where(zero, tf.fill(x.shape, 0.5), tf.div(y, tf.where(zero, tf.onesLike(x), x)));
  const density = tf.mul(tf.exp(tf.mul(tf.square(x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
  return tf.add(cdf, tf.mul(x, density));
}

/** Whether a call is a first-position ('cls') SequencePooling (src/model/transformer-layers.ts). */
function firstPositionPooling(node: GraphNode): boolean {
  return (
    node.layer instanceof SequencePooling &&
    node.layer.mode === 'cls' &&
    node.inputs.length === 1 &&
    !node.stripActivation
  );
}

/**
 * First-position pooling h [rows, L, width] → h[:, 0] on the replicated batch: the points' output
 * repeated (tfjs-wasm's strided Slice reads all of h, slowly), gradient dy placed at position 0.
 */
function replicatedFirstPosition(h: tf.Tensor, out: tf.Tensor, rep: Replicated): tf.Tensor {
  const [rows, L, width] = h.shape as [number, number, number];
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(out),
    gradFunc: (dy: tf.Tensor) =>
      tf.pad(dy.reshape([rows, 1, width]), [
        [0, 0],
        [0, L - 1],
        [0, 0],
      ]),
  }));
  return f(h);
}

/** The replicated-batch hooks. */
type Replicated = NonNullable<RunHooks['replicated']>;

/** A max-pooling call on the points: its output, geometry and argmax indices (src/backend/max-pool.ts). */
interface MaxPoolOnPoints {
  out: tf.Tensor;
  geometry: PoolGeometry;
  index: Int32Array;
}

/**
 * A MaxPooling2D (channels last) or MaxPooling1D call on the points: its argmax per window, for the
 * replicated backward; null for any other node.
 */
function maxPoolOnPoints(node: GraphNode, values: tf.Tensor[]): MaxPoolOnPoints | null {
  const cls = node.layer.getClassName();
  if ((cls !== 'MaxPooling2D' && cls !== 'MaxPooling1D') || node.inputs.length !== 1 || node.stripActivation)
    return null;
  const layer = node.layer as unknown as {
    poolSize: number[];
    strides: number[];
    padding: string;
    dataFormat?: string;
  };
  if ((layer.padding !== 'valid' && layer.padding !== 'same') || layer.dataFormat === 'channelsFirst')
    return null;
  const x = values[node.inputs[0]!]!;
  // MaxPooling1D pools [b, L, C] as [b, L, 1, C] with a [p, 1] window (as tfjs does).
  const one = cls === 'MaxPooling1D';
  const inShape = (one ? [x.shape[1], 1, x.shape[2]] : x.shape.slice(1)) as [number, number, number];
  const filter: [number, number] = one ? [layer.poolSize[0]!, 1] : [layer.poolSize[0]!, layer.poolSize[1]!];
  const strides: [number, number] = one ? [layer.strides[0]!, 1] : [layer.strides[0]!, layer.strides[1]!];
  const geometry = poolGeometry(inShape, filter, strides, layer.padding);
  return { out: values[node.output]!, geometry, index: maxPoolArgmax(valuesOf(x), x.shape[0]!, geometry) };
}

/**
 * A max-pooling on the replicated batch: the points' output repeated (or a placeholder), and the
 * input gradient scattered by the points' argmax (no pooling nor MaxPoolGrad of V copies).
 */
function replicatedMaxPool(x: tf.Tensor, pool: MaxPoolOnPoints, rep: Replicated): tf.Tensor {
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(pool.out),
    gradFunc: (dy: tf.Tensor) => {
      // The wasm backend copies a tensor's values at once: a reused scratch (others keep the array).
      let into: Float32Array | undefined;
      if (tf.getBackend() === 'wasm') {
        if (!maxPoolScratch || maxPoolScratch.length < x.size) maxPoolScratch = new Float32Array(x.size);
        into = maxPoolScratch;
      }
      return tf.tensor(
        replicatedMaxPoolGradient(valuesOf(dy), pool.index, rep.V, pool.geometry, into),
        x.shape,
      );
    },
  }));
  return f(x);
}

/** The replicated max-pool gradients' reused array on the wasm backend (see replicatedMaxPool). */
let maxPoolScratch: Float32Array | null = null;

/** A sum layer on a value-free replicated batch: the placeholder `value`, every input's gradient dy. */
function replicatedSum(ins: tf.Tensor[], value: tf.Tensor): tf.Tensor {
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value,
    // (distinct tensors: tfjs disposes each input's gradient on its own)
    gradFunc: (dy: tf.Tensor) => ins.map((_, i) => (i === 0 ? dy : dy.clone())),
  }));
  return f(...ins);
}

/** An attention core's call on the points (see ./attention-grad.ts). */
interface AttentionOnPoints {
  out: tf.Tensor;
  heads: number;
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  p: ArrayLike<number>;
}

/** The attention core of node k on the points, or null for any other node. */
function attentionOnPoints(node: GraphNode, values: tf.Tensor[]): AttentionOnPoints | null {
  if (!structuredTestHooks.replicatedAttention) return null;
  if (node.param || node.stripActivation || !(node.layer instanceof AttentionCore)) return null;
  if (node.inputs.length !== 4) return null;
  const [q, k, v, mask] = node.inputs.map((i) => values[i]!) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const heads = node.layer.heads;
  const p = attentionProbabilities(q, k, mask, heads);
  const read = (t: tf.Tensor) => t.dataSync() as Float32Array;
  return { out: values[node.output]!, heads, q: read(q), k: read(k), v: read(v), p: read(p) };
}

/** Reused output buffers of the attention gradients on the wasm backend (which copies tensor data at once). */
let attentionScratch: Float32Array | null = null;

/**
 * The attention core on the replicated batch: the points' output repeated, and input gradients
 * (q, k, v; the mask is not differentiated) from the points' values (./attention-grad.ts).
 */
function replicatedAttention(ins: tf.Tensor[], att: AttentionOnPoints, rep: Replicated): tf.Tensor {
  const [n, L, width] = att.out.shape as [number, number, number];
  const V = rep.V;
  const f = tf.customGrad((..._args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: rep.value(att.out),
    gradFunc: (dy: tf.Tensor) => {
      const size = n * V * L * width;
      let buffers: Float32Array[];
      if (tf.getBackend() === 'wasm') {
        if (!attentionScratch || attentionScratch.length < 3 * size)
          attentionScratch = new Float32Array(3 * size);
        const s = attentionScratch;
        buffers = [0, 1, 2].map((j) => s.subarray(j * size, (j + 1) * size));
      } else buffers = [0, 1, 2].map(() => new Float32Array(size));
      const [dq, dk, dv] = buffers as [Float32Array, Float32Array, Float32Array];
      const dims = { n, V, L, width, heads: att.heads };
      attentionBackward(dims, att.q, att.k, att.v, att.p, valuesOf(dy), dq, dk, dv);
      return buffers.map((g) => tf.tensor3d(g, [n * V, L, width]));
    },
  }));
  return f(ins[0]!, ins[1]!, ins[2]!);
}

/**
 * Whether no gradient of the replicated run reads a forward value: every call the probes reach
 * (see runGraph's `live`) is a dense, embedding or (tfjs) convolution call on its points'
 * pre-activation, linear or with an element-wise activation differentiated on the points, a
 * replicated layer norm or inference batch norm, element-wise map, max-pooling, attention core or
 * first-position pooling, or a sum, reshape or average pooling.
 */
function replicatedValueFree(
  plan: StructuredPlan,
  pre: Map<number, tf.Tensor>,
  rules: Record<'elementwise' | 'attention' | 'norms' | 'activations' | 'maxPools', Map<number, unknown>>,
): boolean {
  const graph = plan.graph;
  const live: boolean[] = new Array(graph.tensors).fill(false);
  return graph.nodes.every((node, k) => {
    live[node.output] = !!node.param || node.inputs.some((i) => live[i]);
    if (!live[node.output]) return true;
    const p = node.param;
    if (p) {
      const linear = !p.activation || !!node.stripActivation || rules.activations.has(k);
      const fromPoints = p.kind === 'dense' || p.kind === 'embedding' || convFromPoints(p);
      return (fromPoints && pre.has(k) && linear) || rules.norms.has(k) || p.kind === 'batchnorm';
    }
    if (
      rules.elementwise.has(k) ||
      rules.attention.has(k) ||
      rules.maxPools.has(k) ||
      firstPositionPooling(node)
    )
      return true;
    // Sums, and calls that only move values (their gradients read no value).
    return !node.stripActivation && VALUE_FREE_LAYERS.has(node.layer.getClassName());
  });
}

/** Parameter-free layers whose gradient reads no forward value: sums, reshapes, average poolings. */
const VALUE_FREE_LAYERS = new Set([
  'Add',
  'Flatten',
  'Reshape',
  'AveragePooling1D',
  'AveragePooling2D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
]);

/**
 * Rows selecting logits: [n, V] float32, row r one-hot at logits[r] (the cotangents that pick one
 * logit each). tf.oneHot with dtype float32 writes integer bit patterns on the wasm backend (hence the
 * cast) and needs a depth ≥ 2 (a single output selects itself: ones).
 */
export function logitSelectors(logits: Int32Array, V: number): tf.Tensor2D {
  return tf.tidy(() =>
    V === 1 ? tf.ones([logits.length, 1]) : tf.cast(tf.oneHot(tf.tensor1d(logits, 'int32'), V), 'float32'),
  ) as tf.Tensor2D;
}

/** Run the graph on x (tensor 0); returns the output. */
function runGraph(graph: ModelGraph, x: tf.Tensor, hooks: RunHooks = {}): tf.Tensor {
  const values: tf.Tensor[] = hooks.values ?? new Array(graph.tensors);
  values[0] = x;
  const rep = hooks.replicated;
  // Replicated batch: whether a tensor depends on the probes (a parameterised call's output, or
  // any parameter-free call of one); one that does not is the points' value repeated.
  const live: boolean[] = new Array(graph.tensors).fill(false);
  graph.nodes.forEach((node, k) => {
    const ins = node.inputs.map((i) => values[i]!);
    live[node.output] = !!node.param || node.inputs.some((i) => live[i]);
    if (rep && !live[node.output]) {
      values[node.output] = repeatRows(rep.points[node.output]!, rep.V);
      return;
    }
    const known = rep?.elementwise?.get(k);
    const attention = rep?.attention?.get(k);
    const pool = rep?.maxPools?.get(k);
    values[node.output] = known
      ? replicatedElementwise(ins[0]!, known.out, known.deriv, rep!)
      : pool
        ? replicatedMaxPool(ins[0]!, pool, rep!)
        : attention
          ? replicatedAttention(ins, attention, rep!)
          : rep && firstPositionPooling(node)
            ? replicatedFirstPosition(ins[0]!, rep.points[node.output]!, rep)
            : rep?.valueFree && node.layer.getClassName() === 'Add' && !node.stripActivation
              ? replicatedSum(ins, rep.value(rep.points[node.output]!))
              : node.param && !hooks.plain
                ? applyRule(node, k, ins, hooks)
                : applyLayer(node, ins);
  });
  return values[graph.output]!;
}

/**
 * The model's logits as entk computes them (the graph run node by node, inference mode; with
 * logits 'pre-activation' before the output's softmax/sigmoid). `x`: [b, ...inputShape].
 */
export function graphForward(analysis: ModelAnalysis): (x: tf.Tensor) => tf.Tensor {
  const graph = analysis.graph;
  if (!graph) {
    throw new UnsupportedError(
      `logits 'pre-activation': entk cannot run this model call by call (${analysis.unsupported.join('; ')})`,
    );
  }
  return (x) => tf.tidy(() => runGraph(graph, x, { plain: true }));
}

/** Layers that are the identity at inference (besides Activation('linear')). */
const IDENTITY_AT_INFERENCE = new Set(['Dropout', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

/** Consumers of every tensor id (node indices, once per input slot). */
function consumersOf(graph: ModelGraph): number[][] {
  const out: number[][] = Array.from({ length: graph.tensors }, () => []);
  graph.nodes.forEach((node, k) => {
    for (const i of node.inputs) out[i]!.push(k);
  });
  return out;
}

/**
 * If tensor t reaches the output through single-consumer identities / constant Scale layers only,
 * the product of the factors; else null.
 */
function pathScale(graph: ModelGraph, consumers: number[][], t: number): number | null {
  let c = 1;
  for (let at = t; at !== graph.output; ) {
    const users = consumers[at]!;
    if (users.length !== 1) return null;
    const node = graph.nodes[users[0]!]!;
    const cls = node.layer.getClassName();
    const l = node.layer as unknown as Record<string, unknown>;
    if (node.param || node.inputs.length !== 1) return null;
    if (IDENTITY_AT_INFERENCE.has(cls) || (cls === 'Activation' && node.stripActivation)) {
      // identity
    } else if (
      cls === 'Activation' &&
      (l.activation as { getClassName(): string })?.getClassName() === 'linear'
    ) {
      // identity
    } else if (cls === 'Scale' && typeof l.factor === 'number') {
      c *= l.factor;
    } else return null;
    at = node.output;
  }
  return c;
}

/** Layers whose output at a position depends only on their inputs at that position (rank ≥ 3). */
const POSITIONWISE = new Set(['Dense', 'Add', 'Dropout', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

/** Whether a layer normalises over the last axis only (then it acts position by position). */
function lastAxisNorm(node: GraphNode): boolean {
  if (node.layer.getClassName() !== 'LayerNormalization') return false;
  if (node.param) return node.param.kind === 'layernorm' && node.param.axes === 1;
  const axis = (node.layer.getConfig() as { axis?: unknown }).axis;
  return axis === -1 || (Array.isArray(axis) && axis.length === 1 && axis[0] === -1);
}

/**
 * Which positions (axis 1) of every tensor the output can depend on: 'first' (position 0 only) or
 * 'all'. Found backwards from the output, conservatively: only a first-position pooling
 * (SequencePooling 'cls', src/model/transformer-layers.ts) restricts it, position-wise layers
 * (Dense over positions, last-axis LayerNormalization, element-wise maps, Add) pass it on, an
 * attention core passes its output's support to its query and needs every position of its keys and
 * values, and every other layer needs all positions. So the cotangent δ of a tensor marked 'first'
 * is exactly zero outside position 0 (e.g. the last block of a CLS-pooled transformer after its keys
 * and values): a dense layer there has the rank-one gradient a_0 ⊗ δ_0, a factored term.
 */
function positionSupport(graph: ModelGraph, consumers: number[][]): Array<'first' | 'all'> {
  const support: Array<'first' | 'all'> = new Array(graph.tensors).fill('all');
  const needs = (k: number, slot: number): 'first' | 'all' => {
    const node = graph.nodes[k]!;
    const layer = node.layer as unknown as { mode?: unknown };
    const cls = node.layer.getClassName();
    const out = support[node.output]!;
    if (cls === 'SequencePooling' && layer.mode === 'cls' && slot === 0) return 'first';
    if (cls === 'AttentionCore') return slot === 0 ? out : 'all';
    if (node.stripActivation) return 'all';
    if (POSITIONWISE.has(cls) || lastAxisNorm(node) || isElementwiseLayer(node.layer)) return out;
    return 'all';
  };
  // Nodes are in topological order: in reverse, a node's output has all its consumers' needs.
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const t = graph.nodes[k]!.output;
    if (t === graph.output || consumers[t]!.length === 0) continue;
    const first = consumers[t]!.every((c) =>
      graph.nodes[c]!.inputs.every((i, slot) => i !== t || needs(c, slot) === 'first'),
    );
    support[t] = first ? 'first' : 'all';
  }
  return support;
}

/**
 * Distinct signals per channel when tensor t reaches the logits only through a max-pooling (after
 * element-wise layers and inference-mode batch norms, which keep a zero signal zero): one per pool
 * window, as its gradient routes each window's signal to one position (`windows`: at one position
 * each; a global max-pool: to its tied maxima, with equal signals). Null otherwise.
 */
function maxPoolSlots(
  graph: ModelGraph,
  consumers: number[][],
  t: number,
  shape: number[],
): { slots: number; windows: boolean } | null {
  for (let at = t; at !== graph.output; ) {
    const users = consumers[at]!;
    if (users.length !== 1) return null;
    const next = graph.nodes[users[0]!]!;
    if (next.inputs.length !== 1 || next.stripActivation) return null;
    const cls = next.layer.getClassName();
    if (cls === 'MaxPooling2D' || cls === 'MaxPooling1D') {
      const out = next.layer.computeOutputShape([null, ...shape]) as number[];
      return { slots: prod(out.slice(1, -1)), windows: true };
    }
    // A global max-pool over the positions (channels last): one window. Its tied maxima share the
    // signal evenly (src/backend/gradients.ts), so they have equal signals and share a slot.
    if (cls === 'GlobalMaxPooling2D' || cls === 'GlobalMaxPooling1D') {
      const format = (next.layer as unknown as { dataFormat?: string }).dataFormat;
      return format === undefined || format === 'channelsLast' ? { slots: 1, windows: false } : null;
    }
    if (!(isElementwiseLayer(next.layer) || cls === 'BatchNormalization')) return null;
    at = next.output;
  }
  return null;
}

/**
 * Floats per column point that a pooled term's first stage may hold in wasm memory (wasm-terms.ts
 * pooledSizes: slot products of a band of POOL_BAND_ROWS row points, or one row point's pixel and
 * position products); 2¹⁷ keeps a block of 512 column points within 256 MiB.
 */
const POOLED_COLUMN_FLOATS = 2 ** 17;
/** Row points per band of the pooled term's first stage (wasm-terms.ts POOL_ROWS). */
const POOL_BAND_ROWS = 32;

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

/**
 * The pooled term (./terms.ts; docs/theory.md §Per-layer rules) of a convolution called once, with an
 * element-wise activation, whose output reaches the logits only through a max-pooling, when it costs
 * less than half of the V² products of full gradient rows (full kernels and their blocks: not for
 * trace kernels); else null. Per pair of points and channel: S² patch products + the signals'
 * contraction (about 3× slower per operation); behind max-pool windows, from input pixels where that
 * costs less (U² pixel products and P² sums of taps shared by all channels, + gathering C·S² slot
 * products, see pixelTable).
 */
function pooledTerm(
  graph: ModelGraph,
  consumers: number[][],
  p: ParamLayer,
  single: GraphNode | null,
  trace: NodeTrace,
  V: number,
  layer: string,
  output: NtkOutput,
): TermMeta | null {
  const hook = structuredTestHooks.pooledConvolutions;
  // (The convolution's own activation must keep a zero signal zero: not a softmax over channels.)
  if (p.kind !== 'conv' || !single || !p.elementwiseActivation || hook === 'never') return null;
  // Trace kernels contract a gram term's V·P-long rows once per pair, not V² times: no saving.
  if (hook === 'cost' && output === 'trace') return null;
  const out = trace.probeShapes[0]!;
  const found = maxPoolSlots(graph, consumers, single.output, out);
  if (found === null) return null;
  const S = found.slots;
  const C = out[out.length - 1]!;
  const ks = p.kernel!.shape as number[];
  const [kh, kw] = p.conv1d ? [1, ks[0]!] : [ks[0]!, ks[1]!];
  const K = kh * kw * ks[ks.length - 2]! + (p.bias ? 1 : 0);
  const signals = 3 * S * V * (S + V) * C;
  // Each form's first-stage memory per column point (wasm-terms.ts pooledSizes) must stay bounded.
  const slotsFit = C * roundUp(POOL_BAND_ROWS * S, 4) * S <= POOLED_COLUMN_FLOATS;
  const slotsCost = slotsFit ? S * S * K * C + signals : Number.POSITIVE_INFINITY;
  const table =
    found.windows && structuredTestHooks.pooledPixels !== 'never' ? pixelTable(p, trace, kh, kw) : null;
  const positions = table ? table.index.length / table.taps : 0;
  const pixels =
    table && roundUp(table.units, 4) * table.units + positions ** 2 + C * S * S <= POOLED_COLUMN_FLOATS
      ? table
      : null;
  const pixelsCost = pixels
    ? pixels.units * pixels.units * pixels.depth + positions ** 2 * pixels.taps + 2 * C * S * S + signals
    : Number.POSITIVE_INFINITY;
  if (!pixels && !slotsFit) return null;
  if (hook === 'cost' && Math.min(slotsCost, pixelsCost) >= 0.5 * V * V * K * C) return null;
  const usePixels =
    pixels !== null && (structuredTestHooks.pooledPixels === 'always' || pixelsCost < slotsCost);
  const base = { kind: 'pooled' as const, layer, width: C * S, sw2: 1, sb2: 0 };
  if (!usePixels) return { ...base, dIn: C * S * K, pool: { channels: C, slots: S, patch: K } };
  return {
    ...base,
    dIn: pixels.units * pixels.depth + C * S,
    pool: { channels: C, slots: S, patch: K, pixels: { ...pixels, bias2: p.bias ? p.biasScale ** 2 : 0 } },
  };
}

/**
 * The input pixel of every tap of every output position of a convolution (terms.ts PoolPixels,
 * without the bias): tap (i, j) of position (y, z) reads pixel (y·s_h + i·d_h − pad_top, z·s_w + j·d_w
 * − pad_left), −1 where that is in the padding.
 */
function pixelTable(
  p: ParamLayer,
  trace: NodeTrace,
  kh: number,
  kw: number,
): { units: number; depth: number; taps: number; index: number[] } {
  const g = convGeometry(p, [1, ...trace.inShapes[0]!], kh, kw, trace.probeShapes[0]!.slice(0, -1));
  const index: number[] = [];
  for (let y = 0; y < g.oh; y++) {
    for (let z = 0; z < g.ow; z++) {
      for (let i = 0; i < kh; i++) {
        const row = y * g.strides[0] + i * g.dilations[0] - g.padTop;
        for (let j = 0; j < kw; j++) {
          const col = z * g.strides[1] + j * g.dilations[1] - g.padLeft;
          index.push(row < 0 || row >= g.H || col < 0 || col >= g.W ? -1 : row * g.W + col);
        }
      }
    }
  }
  return { units: g.H * g.W, depth: g.C, taps: kh * kw, index };
}

/**
 * Whether a dense layer over positions (one call, input [T, dIn], output [T, width]) is contracted
 * as a positions term (terms.ts positionsPair): per pair of points T²·KA + V·T²·WP + V²·T·WP
 * multiply-adds in the positionPairs kernel (T, KA = dIn + 1, WP = width and V padded to its tiles,
 * wasm-terms.ts positionShape) against V²·P for the explicit gradient rows of its P parameters —
 * taken for full kernels where that is fewer by the kernel's slower rate (measured 60–80 % of the
 * dense GEMM's, wasm-gemm.ts). Trace, diagonal and pairs outputs keep the explicit rows: there the
 * term would run in plain JS, and a trace needs only V·P per pair.
 */
function positionsTerm(trace: NodeTrace, V: number, output: NtkOutput, parameters: number): boolean {
  const shape = trace.inShapes[0]!;
  if (shape.length < 2) return false;
  const hook = structuredTestHooks.positionTerms;
  if (hook !== 'cost') return hook === 'always';
  if (output !== 'full') return false;
  const up = (x: number, m: number) => Math.ceil(x / m) * m;
  const T = up(prod(shape.slice(0, -1)), 4);
  const [KA, WP, VP] = [up(shape.at(-1)! + 1, 4), up(trace.probeShapes[0]!.at(-1)!, 8), up(V, 2)];
  const cost = T * T * KA + VP * T * T * WP + VP * VP * T * WP;
  return 1.6 * cost < V * V * parameters;
}

const RULE_NAMES: Record<ParamLayer['kind'], string> = {
  dense: 'dense-explicit',
  conv: 'conv2d-explicit',
  depthwise: 'depthwise-explicit',
  separable: 'separable-explicit',
  embedding: 'embedding-explicit',
  layernorm: 'layernorm',
  batchnorm: 'batchnorm',
  prelu: 'prelu',
  autodiff: 'autodiff',
};

/**
 * Trace one example through the graph to fix every selected call's shapes and choose each layer's
 * term. `analysis.graph` must be non-null.
 */
export function planStructured(analysis: ModelAnalysis, output: NtkOutput = 'full'): StructuredPlan {
  const graph = analysis.graph!;
  const V = analysis.numOutputs;
  const traces = new Map<number, NodeTrace>();
  tf.tidy(() => {
    const x = tf.zeros([1, ...analysis.inputShape], analysis.inputDtype);
    const y = runGraph(graph, x, {
      capture: (k, saved) => {
        traces.set(k, { inShapes: saved.inputs.map((t) => t.shape.slice(1)), probeShapes: [] });
      },
      probe: (k, j, t) => {
        traces.get(k)!.probeShapes[j] = t.shape.slice(1);
        return t;
      },
    });
    if (y.rank !== 2 || y.shape[1] !== V) {
      throw new Error(
        `structured eNTK: graph output shape [${y.shape}] differs from the model's [batch, ${V}]`,
      );
    }
  });

  const consumers = consumersOf(graph);
  const support = positionSupport(graph, consumers);
  const terms: TermMeta[] = [];
  const layers: PlannedLayer[] = [];
  const rules: LayerRule[] = [];
  for (const layer of analysis.selectedLayers) {
    const nodes = graph.nodes.flatMap((n, k) => (n.layer === layer && n.param ? [k] : []));
    if (nodes.length === 0) continue;
    const p = graph.nodes[nodes[0]!]!.param!;
    const name = layer.name;
    const parameters = p.variables.reduce((s, v) => s + prod(v.shape as number[]), 0);
    const single = nodes.length === 1 ? graph.nodes[nodes[0]!]! : null;
    const trace = traces.get(nodes[0]!)!;
    const s2 = p.weightScale * p.weightScale;
    const b2 = p.bias ? p.biasScale * p.biasScale : 0;
    const pooled = pooledTerm(graph, consumers, p, single, trace, V, name, output);
    let rule: string;
    if (p.kind === 'dense' && single && trace.inShapes[0]!.length === 1) {
      const dIn = trace.inShapes[0]![0]!;
      const hShape = trace.probeShapes[0]!;
      const act = single.stripActivation ? null : p.activation;
      const c = !act && hShape[0] === V ? pathScale(graph, consumers, single.output) : null;
      if (c !== null) {
        terms.push({ kind: 'identity', layer: name, dIn, width: 0, sw2: s2 * c * c, sb2: b2 * c * c });
        rule = 'dense-identity';
      } else {
        terms.push({ kind: 'factored', layer: name, dIn, width: hShape[0]!, sw2: s2, sb2: b2 });
        rule = 'dense-factored';
      }
    } else if (
      p.kind === 'dense' &&
      single &&
      trace.inShapes[0]!.length === 2 &&
      support[single.output] === 'first'
    ) {
      const dIn = trace.inShapes[0]![1]!;
      terms.push({ kind: 'factored', layer: name, dIn, width: trace.probeShapes[0]![1]!, sw2: s2, sb2: b2 });
      layers.push({ param: p, nodes, term: terms.length - 1, position: 0 });
      rules.push({ name, className: layer.getClassName(), rule: 'dense-position', parameters, uses: 1 });
      continue;
    } else if (
      p.kind === 'embedding' &&
      single &&
      structuredTestHooks.sparseEmbeddings &&
      prod(trace.inShapes[0]!) < p.kernel!.shape[0]!
    ) {
      // A point selects at most S (positions) of the table's rows: its gradient kept sparse.
      const S = prod(trace.inShapes[0]!);
      terms.push({ kind: 'tokens', layer: name, dIn: S, width: S * p.kernel!.shape[1]!, sw2: 1, sb2: 0 });
      rule = 'embedding-sparse';
    } else if (pooled) {
      terms.push(pooled);
      rule = p.conv1d ? 'conv1d-pooled' : 'conv2d-pooled';
    } else if (p.kind === 'dense' && single && positionsTerm(trace, V, output, parameters)) {
      const T = prod(trace.inShapes[0]!.slice(0, -1));
      const [dIn, width] = [trace.inShapes[0]!.at(-1)!, trace.probeShapes[0]!.at(-1)!];
      terms.push({
        kind: 'positions',
        layer: name,
        dIn: T * dIn,
        width: T * width,
        positions: T,
        sw2: s2,
        sb2: b2,
      });
      rule = 'dense-position-pairs';
    } else {
      // Masked (skipping each point's zero columns) only where zeros are common: a PReLU's slope
      // gradient is zero wherever its input is positive, an embedding's outside the point's tokens.
      // Elsewhere a column is zero only if the layer's whole output channel gets no signal (even
      // conv → ReLU → max-pool: about a third), and the dense kernel is faster than the masked one
      // (residual CNN with BN 1.15–1.2×, cnn preset at N = 200 1.2–1.3×).
      const dense = p.kind !== 'prelu' && p.kind !== 'embedding' && p.kind !== 'autodiff';
      terms.push({
        kind: 'gram',
        layer: name,
        dIn: 0,
        width: parameters,
        sw2: 1,
        sb2: 0,
        ...(dense ? { dense } : {}),
      });
      rule = p.kind === 'conv' && p.conv1d ? 'conv1d-explicit' : RULE_NAMES[p.kind];
    }
    layers.push({ param: p, nodes, term: terms.length - 1 });
    rules.push({
      name,
      className: layer.getClassName(),
      rule,
      parameters,
      uses: nodes.length,
      ...(p.note ? { note: p.note } : {}),
    });
  }
  markGated(graph, consumers, layers, terms, rules);
  return {
    graph,
    traces,
    layers,
    terms,
    rules,
    numOutputs: V,
    needsDeltas: terms.some((t) => t.kind !== 'identity'),
  };
}

/** Mark factored dense terms whose layer reaches an identity head through element-wise maps only. */
function markGated(
  graph: ModelGraph,
  consumers: number[][],
  layers: PlannedLayer[],
  terms: TermMeta[],
  rules: LayerRule[],
): void {
  const producer = new Map(graph.nodes.map((n, k) => [n.output, k]));
  const byNode = new Map(layers.map((l, j) => [l.nodes[0]!, j]));
  layers.forEach((head) => {
    if (terms[head.term]!.kind !== 'identity') return;
    const headNode = graph.nodes[head.nodes[0]!]!;
    const between: number[] = [];
    let t = headNode.inputs[0]!;
    for (;;) {
      if (consumers[t]!.length !== 1) return;
      const k = producer.get(t);
      if (k === undefined) return;
      const node = graph.nodes[k]!;
      if (node.param) {
        const j = byNode.get(k);
        if (j === undefined || layers[j]!.nodes.length !== 1) return;
        const planned = layers[j]!;
        if (terms[planned.term]!.kind !== 'factored' || !planned.param.elementwiseActivation) return;
        if (planned.position !== undefined) return;
        if (node.stripActivation) return;
        const c = pathScale(graph, consumers, headNode.output)!;
        planned.gate = { head: head.nodes[0]!, between, scale: c * head.param.weightScale };
        terms[planned.term]!.gated = true;
        rules[j]!.rule = 'dense-gated';
        return;
      }
      if (node.inputs.length !== 1 || node.stripActivation || !isElementwiseLayer(node.layer)) return;
      between.unshift(k);
      t = node.inputs[0]!;
    }
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

/** The geometry of a conv call on input a (conv1d as an image of height 1), output size `out`. */
function convGeometry(p: ParamLayer, shape: number[], kh: number, kw: number, out: number[]): ConvGeometry {
  const [b, H, W, C] = p.conv1d ? [shape[0]!, 1, shape[1]!, shape[2]!] : shape;
  const [sh, sw] = p.strides!;
  const [dh, dw] = p.dilationRate!;
  const [oh, ow] = p.conv1d ? [1, out[0]!] : [out[0]!, out[1]!];
  // 'same': the total padding, half before (rounded down), the rest after.
  const before = (size: number, k: number, s: number, d: number, o: number) =>
    p.padding === 'valid' ? 0 : Math.floor(Math.max((o - 1) * s + (k - 1) * d + 1 - size, 0) / 2);
  return {
    b: b!,
    H: H!,
    W: W!,
    C: C!,
    kh,
    kw,
    oh,
    ow,
    strides: [sh!, sw!],
    dilations: [dh!, dw!],
    padTop: before(H!, kh, sh!, dh!, oh),
    padLeft: before(W!, kw, sw!, dw!, ow),
  };
}

/**
 * im2col rows of a convolution's input, [b, L, kh·kw·cin] in the kernel's (i, j, c) order: one
 * strided slice of the padded input per tap (a copy, no arithmetic), so padding, strides and
 * dilation match the layer exactly.
 */
function patches(p: ParamLayer, a: tf.Tensor, kh: number, kw: number, out: number[]): tf.Tensor3D {
  const x = asImage(p, a);
  const g = convGeometry(p, a.shape, kh, kw, out);
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  const { b, H, W, C, oh, ow } = g;
  const padded = tf.pad(x, [
    [0, 0],
    [g.padTop, Math.max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - H - g.padTop)],
    [g.padLeft, Math.max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - W - g.padLeft)],
    [0, 0],
  ]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const begin = [0, i * dh, j * dw, 0];
      const end = [b, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, C];
      taps.push(tf.stridedSlice(padded, begin, end, [1, sh, sw, 1]));
    }
  }
  return (taps.length === 1 ? taps[0]! : tf.concat(taps, 3)).reshape([b, oh * ow, kh * kw * C]);
}

/**
 * Σ_t δ[n·V + i, t] ⊗ A[n, t] for A [b, L, K], δ [b·V, L, dOut]: [b·V, dOut·K] (the per-example
 * gradient with its columns in (output, input) order: only inner products of these rows are used,
 * so any fixed column order will do), scaled by `scale`. One batched product δᵀ [b, V·dOut, L] @ A
 * [b, L, K] whose result is already in row-major (n, i, c, k) order: no transposed operand (slow on
 * tfjs-wasm) and no transpose of the [b·V, dOut·K] result.
 */
function positionsProduct(A: tf.Tensor3D, delta: tf.Tensor, V: number, scale: number): tf.Tensor2D {
  const [b, L] = A.shape;
  const dOut = delta.size / (b * V * L);
  const dt = delta
    .reshape([b, V, L, dOut])
    .transpose([0, 1, 3, 2])
    .reshape([b, V * dOut, L]);
  let g: tf.Tensor = tf.matMul(dt as tf.Tensor3D, A);
  if (scale !== 1) g = tf.mul(g, scale);
  return g.reshape([b * V, -1]) as tf.Tensor2D;
}

/** Σ over all but the last axis of δ [b·V, ..., c], scaled: [b·V, c]. */
function biasGradient(delta: tf.Tensor, scale: number): tf.Tensor2D {
  const c = delta.shape[delta.rank - 1]!;
  let g: tf.Tensor = delta.reshape([delta.shape[0]!, -1, c]).sum(1);
  if (scale !== 1) g = tf.mul(g, scale);
  return g as tf.Tensor2D;
}

/**
 * Depthwise part: G[n·V + i][(p, c, m)] = Σ_t P[n, t, p, c] · δ[n·V + i, t, (c, m)] for patches P
 * [b, L, khkw·cin] and δ [b·V, L, cin·mult]: a batched product per (point, channel).
 */
function depthwiseProduct(P: tf.Tensor3D, delta: tf.Tensor, V: number, cin: number): tf.Tensor2D {
  const [b, L, KC] = P.shape;
  const khkw = KC / cin;
  const mult = delta.size / (b * V * L * cin);
  const pt = P.reshape([b, L, khkw, cin])
    .transpose([0, 3, 2, 1])
    .reshape([b * cin, khkw, L]);
  const dc = delta
    .reshape([b, V, L, cin, mult])
    .transpose([0, 3, 2, 1, 4])
    .reshape([b * cin, L, V * mult]);
  return tf
    .matMul(pt as tf.Tensor3D, dc as tf.Tensor3D)
    .reshape([b, cin, khkw, V, mult])
    .transpose([0, 3, 2, 1, 4])
    .reshape([b * V, khkw * cin * mult]);
}

/** Σ_t x̂_t ⊙ δ_t over the leading positions, for x̂ [b, ..., P] and δ [b·V, ..., P]: [b·V, P]. */
function scaleGradient(xhat: tf.Tensor, delta: tf.Tensor, V: number, width: number): tf.Tensor2D {
  const b = xhat.shape[0]!;
  const x = xhat.reshape([b, 1, -1, width]);
  return tf
    .mul(x, delta.reshape([b, V, -1, width]))
    .sum(2)
    .reshape([b * V, width]);
}

/** Per-example gradients [b·V, width] of one call of a selected layer (see the module comment). */
function callGradients(node: GraphNode, saved: Saved, deltas: tf.Tensor[], V: number): tf.Tensor2D {
  const p = node.param!;
  const b = saved.inputs[0]!.shape[0]!;
  const parts: tf.Tensor2D[] = [];
  const a = saved.inputs[0]!;
  switch (p.kind) {
    case 'dense': {
      const K = a.shape[a.rank - 1]!;
      parts.push(positionsProduct(a.reshape([b, -1, K]) as tf.Tensor3D, deltas[0]!, V, p.weightScale));
      if (p.bias) parts.push(biasGradient(deltas[0]!, p.biasScale));
      break;
    }
    case 'embedding': {
      const vocab = p.kernel!.shape[0]!;
      const ids = tf.cast(a, 'int32').reshape([-1]);
      const A = tf.cast(tf.oneHot(ids, vocab), 'float32').reshape([b, -1, vocab]) as tf.Tensor3D;
      parts.push(positionsProduct(A, deltas[0]!, V, 1));
      break;
    }
    case 'conv': {
      const ks = p.kernel!.shape as number[];
      const [kh, kw] = p.conv1d ? [1, ks[0]!] : [ks[0]!, ks[1]!];
      const out = deltas[0]!.shape.slice(1, -1);
      parts.push(positionsProduct(patches(p, a, kh, kw, out), deltas[0]!, V, p.weightScale));
      if (p.bias) parts.push(biasGradient(deltas[0]!, p.biasScale));
      break;
    }
    case 'depthwise':
    case 'separable': {
      const [kh, kw, cin] = p.kernel!.shape as number[];
      const P = patches(p, a, kh!, kw!, deltas[0]!.shape.slice(1, -1));
      parts.push(depthwiseProduct(P, deltas[0]!, V, cin!));
      if (p.kind === 'separable') {
        const d = saved.extra!;
        const A = d.reshape([b, -1, d.shape[d.rank - 1]!]) as tf.Tensor3D;
        parts.push(positionsProduct(A, deltas[1]!, V, 1));
        if (p.bias) parts.push(biasGradient(deltas[1]!, p.biasScale));
      } else if (p.bias) parts.push(biasGradient(deltas[0]!, p.biasScale));
      break;
    }
    case 'layernorm':
    case 'batchnorm': {
      const width = p.kind === 'batchnorm' ? a.shape[a.rank - 1]! : prod(a.shape.slice(a.rank - p.axes!));
      if (p.gamma) parts.push(scaleGradient(saved.extra!, deltas[0]!, V, width));
      if (p.beta) parts.push(biasGradient(deltas[0]!.reshape([b * V, -1, width]), 1));
      break;
    }
    case 'prelu': {
      // ∂y/∂α = min(x, 0), summed over the axes α is shared along.
      const alphaShape = p.gamma!.shape as number[];
      const neg = saved.extra!;
      const g = tf.mul(
        neg.reshape([b, 1, ...neg.shape.slice(1)]),
        deltas[0]!.reshape([b, V, ...neg.shape.slice(1)]),
      );
      const shared = alphaShape.flatMap((d, i) => (d === 1 && neg.shape[i + 1]! > 1 ? [i + 2] : []));
      parts.push((shared.length > 0 ? g.sum(shared, true) : g).reshape([b * V, prod(alphaShape)]));
      break;
    }
    default: {
      // The layer alone, differentiated by autodiff once per (point, logit) with the probe cotangent.
      const vars = p.variables.map((v) => v.read() as tf.Variable);
      const rows: tf.Tensor[] = [];
      for (let n = 0; n < b; n++) {
        const insN = saved.inputs.map((t) => t.slice([n], [1]));
        for (let i = 0; i < V; i++) {
          const dn = deltas[0]!.slice([n * V + i], [1]);
          const { value, grads } = tf.variableGrads(
            () => tf.sum(tf.mul(applyLayer(node, insN), dn)) as tf.Scalar,
            vars,
          );
          value.dispose();
          rows.push(tf.concat(vars.map((v) => (grads[v.name] ?? tf.zeros(v.shape)).reshape([-1]))));
        }
      }
      parts.push(tf.stack(rows) as tf.Tensor2D);
    }
  }
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/** A tensor's float32 values, in place where the backend allows (valid until its next allocation). */
function valuesOf(t: tf.Tensor): Float32Array {
  return (t.dtype === 'float32' ? heapView(t) : null) ?? (t.dataSync() as Float32Array);
}

/**
 * Per-example gradients [b·V, width] of a dense-over-positions, convolution (its im2col patches as
 * the positions' inputs) or embedding call written straight into an array by ./position-grads.ts
 * (positions with zero signals skipped), or null where that path does not apply (other kinds,
 * no WebAssembly SIMD): then callGradients.
 */
function gradientRowsFiller(
  node: GraphNode,
  saved: Saved,
  deltas: tf.Tensor[],
  V: number,
): ((out: Float32Array) => void) | null {
  const p = node.param!;
  const a = saved.inputs[0]!;
  const delta = deltas[0]!;
  const b = a.shape[0]!;
  if (p.kind === 'dense' && a.rank >= 3) {
    const K = a.shape[a.rank - 1]!;
    const dOut = delta.shape[delta.rank - 1]!;
    const L = a.size / (b * K);
    if (!denseGradientRowsAvailable(K, dOut) || delta.size !== b * V * L * dOut) return null;
    const dims = { b, V, L, K, dOut };
    const biasScale = p.bias ? p.biasScale : null;
    return (out) => denseGradientRows(valuesOf(a), valuesOf(delta), dims, p.weightScale, biasScale, out);
  }
  if (p.kind === 'conv') {
    // The same sum over im2col rows: a_t is the patch at output position t.
    const ks = p.kernel!.shape as number[];
    const [kh, kw] = p.conv1d ? [1, ks[0]!] : [ks[0]!, ks[1]!];
    const K = kh * kw * a.shape[a.rank - 1]!;
    const dOut = delta.shape[delta.rank - 1]!;
    const outShape = delta.shape.slice(1, -1);
    const L = outShape.reduce((x, y) => x * y, 1);
    if (!denseGradientRowsAvailable(K, dOut) || delta.size !== b * V * L * dOut) return null;
    const dims = { b, V, L, K, dOut };
    const biasScale = p.bias ? p.biasScale : null;
    const geometry = convGeometry(p, a.shape, kh, kw, outShape);
    return (out) => {
      const A = im2colRows(valuesOf(a), geometry);
      denseGradientRows(A, valuesOf(delta), dims, p.weightScale, biasScale, out);
    };
  }
  if (p.kind === 'embedding' && positionGradTestHooks.enabled) {
    const [vocab, dOut] = p.kernel!.shape as [number, number];
    const L = a.size / b;
    if (delta.size !== b * V * L * dOut) return null;
    const dims = { b, V, L, vocab, dOut };
    return (out) => {
      const ids = a.dtype === 'float32' ? valuesOf(a) : (a.dataSync() as Int32Array);
      embeddingGradientRows(ids, valuesOf(delta), dims, p.weightScale, out);
    };
  }
  return null;
}

/**
 * Where a factor array goes: `dest(term, key, length)` returns an array of that length to write
 * into (e.g. a slice of shared memory: no fresh array, whose first touch is slow), or undefined for
 * a fresh one.
 */
export type FeatureDestination = (
  term: number,
  key: keyof TermFeatures,
  length: number,
) => Float32Array | undefined;

/** Whether δ [rows, L, width] is nonzero anywhere off position t (read in place where possible). */
function offPosition(delta: tf.Tensor, t: number): boolean {
  const [rows, L] = delta.shape as [number, number];
  const width = delta.size / (rows * L);
  const d = heapView(delta) ?? (delta.dataSync() as Float32Array);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < L; q++) {
      if (q === t) continue;
      const base = (r * L + q) * width;
      for (let e = base; e < base + width; e++) if (d[e] !== 0) return true;
    }
  }
  return false;
}

/**
 * Compute the structured factors of every term for the points `x` ([b, ...inputShape]).
 * Returns one TermFeatures per term (arrays from `dest` where it gives one). No tensors escape.
 */
export function structuredFeatures(
  plan: StructuredPlan,
  x: tf.Tensor,
  dest?: FeatureDestination,
): TermFeatures[] {
  const V = plan.numOutputs;
  const b = x.shape[0]!;
  const graph = plan.graph;
  const out: TermFeatures[] = plan.terms.map(() => ({}));
  const tensors: Array<{ term: number; key: keyof TermFeatures; t: tf.Tensor }> = tf.tidy(() => {
    const result: Array<{ term: number; key: keyof TermFeatures; t: tf.Tensor }> = [];
    // Forward pass on the points themselves: every selected call's inputs (and pre-activation).
    const saved = new Map<number, Saved>();
    const pre = new Map<number, tf.Tensor>();
    const values: tf.Tensor[] = new Array(graph.tensors);
    runGraph(graph, x, {
      capture: (k, s) => {
        saved.set(k, s);
        if (s.pre) pre.set(k, s.pre);
      },
      values,
    });
    // Parameter-free element-wise calls (GELU, tanh, …): f'(input) on the points, exact (the
    // gradient of Σ f, element by element).
    const elementwise = new Map<number, { out: tf.Tensor; deriv: tf.Tensor }>();
    graph.nodes.forEach((node, k) => {
      if (node.param || node.inputs.length !== 1 || node.stripActivation || !isElementwiseLayer(node.layer))
        return;
      const z = values[node.inputs[0]!]!;
      const out = values[node.output]!;
      const deriv =
        geluDerivative(node, z, out) ?? tf.grad((t: tf.Tensor) => tf.sum(applyLayer(node, [t])))(z);
      elementwise.set(k, { out: values[node.output]!, deriv });
    });
    const deltas = new Map<number, tf.Tensor[]>();
    if (plan.needsDeltas) {
      // Attention cores: q, k, v and weights on the points, for their replicated backward.
      const attention = new Map<number, AttentionOnPoints>();
      graph.nodes.forEach((node, k) => {
        const att = attentionOnPoints(node, values);
        if (att) attention.set(k, att);
      });
      // Layer norms: output, x̂ and 1/σ on the points, for their replicated backward.
      const norms = new Map<number, NormOnPoints>();
      for (const l of plan.layers) {
        if (l.param.kind !== 'layernorm') continue;
        for (const k of l.nodes) {
          const s = saved.get(k)!;
          const x0 = s.inputs[0]!;
          const { variance } = tf.moments(x0, normAxes(l.param, x0), true);
          const inv = tf.rsqrt(tf.add(variance, l.param.epsilon!));
          norms.set(k, { out: values[graph.nodes[k]!.output]!, xhat: s.extra!, inv });
        }
      }
      // Fused element-wise activations of calls whose pre-activation is known on the points: their
      // output and f'(pre-activation) there (ReLU: step(h), what autodiff multiplies dy by).
      const activations = new Map<number, { out: tf.Tensor; deriv: tf.Tensor }>();
      for (const l of plan.layers) {
        const p = l.param;
        if (!p.activation || !p.elementwiseActivation) continue;
        for (const k of l.nodes) {
          const h = pre.get(k);
          if (!h || graph.nodes[k]!.stripActivation) continue;
          const deriv = tf.grad((t: tf.Tensor) => tf.sum(p.activation!(t)))(h);
          activations.set(k, { out: values[graph.nodes[k]!.output]!, deriv });
        }
      }
      // Max-poolings: argmax on the points, for a replicated backward that scatters by it.
      const maxPools = new Map<number, MaxPoolOnPoints>();
      graph.nodes.forEach((node, k) => {
        const pool = maxPoolOnPoints(node, values);
        if (pool) maxPools.set(k, pool);
      });
      // Whether every call the probes reach differentiates without reading its inputs' forward
      // values (replicated rules, sums): then those values are never computed, only placeholders.
      const valueFree = replicatedValueFree(plan, pre, {
        elementwise,
        attention,
        norms,
        activations,
        maxPools,
      });
      if (valueFree) structuredTestHooks.valueFreeRuns++;
      // Zeros (probes, placeholders): one tensor per size, reshaped; filled on the backend
      // (tf.zeros fills an array in JS and copies it in). Kept from the scopes of the replicated
      // rules that may create them (their reshapes share the data), disposed after the run.
      const zeros = new Map<number, tf.Tensor>();
      const zerosOf = (shape: number[]) => {
        const size = prod(shape);
        if (!zeros.has(size)) zeros.set(size, tf.keep(tf.fill([size], 0)));
        return zeros.get(size)!.reshape(shape);
      };
      const value = (t: tf.Tensor) => (valueFree ? zerosOf([b * V, ...t.shape.slice(1)]) : repeatRows(t, V));
      // Replicated batch: row n·V + i is x_n, differentiated through logit i.
      const xr = repeatRows(x, V);
      const select = logitSelectors(
        new Int32Array(b * V).map((_, r) => r % V),
        V,
      );
      const probed: Array<[number, number]> = plan.layers.flatMap((l) =>
        plan.terms[l.term]!.kind === 'identity'
          ? []
          : l.nodes.flatMap((k) => plan.traces.get(k)!.probeShapes.map((_, j): [number, number] => [k, j])),
      );
      const index = new Map(probed.map(([k, j], q) => [`${k}:${j}`, q]));
      const probes = probed.map(([k, j]) => zerosOf([b * V, ...plan.traces.get(k)!.probeShapes[j]!]));
      let grads: tf.Tensor[];
      try {
        grads = tf.grads((...ps: tf.Tensor[]) => {
          const y = runGraph(graph, xr, {
            probe: (k, j, t) => {
              const q = index.get(`${k}:${j}`);
              if (q === undefined) return t;
              // (value-free: no sum computed, only the two gradients)
              return valueFree ? replicatedSum([t, ps[q]!], zerosOf(t.shape)) : tf.add(t, ps[q]!);
            },
            replicated: {
              pre,
              V,
              elementwise,
              activations,
              maxPools,
              attention,
              points: values,
              norms,
              value,
              valueFree,
            },
          });
          return tf.sum(tf.mul(y, select));
        })(probes);
      } finally {
        tf.dispose([...zeros.values()]);
      }
      probed.forEach(([k, j], q) => {
        if (!deltas.has(k)) deltas.set(k, []);
        deltas.get(k)![j] = grads[q]!;
      });
    }
    plan.layers.forEach((planned) => {
      const term = plan.terms[planned.term]!;
      const k0 = planned.nodes[0]!;
      if (term.kind === 'tokens') {
        // Raw ids and cotangents (× s_w); compacted to distinct tokens in JS below (compactTokens).
        const ids = saved.get(k0)!.inputs[0]!;
        const delta = deltas.get(k0)![0]!;
        const scaled = planned.param.weightScale === 1 ? delta : tf.mul(delta, planned.param.weightScale);
        // (Truncated to integers first, as the layer's gather reads them: 2.2 and 2.7 are one row.)
        result.push({
          term: planned.term,
          key: 'a',
          t: tf.cast(tf.cast(ids, 'int32'), 'float32').reshape([b, term.dIn]),
        });
        result.push({ term: planned.term, key: 'd', t: scaled.reshape([b * V, term.width]) });
        return;
      }
      if (term.kind === 'pooled') {
        const p = planned.param;
        const a = saved.get(k0)!.inputs[0]!;
        const delta = deltas.get(k0)![0]!;
        const { channels: C, slots: S, pixels } = term.pool!;
        const into = {
          a: dest?.(planned.term, 'a', b * term.dIn),
          d: dest?.(planned.term, 'd', b * V * term.width),
        };
        if (pixels) {
          const dims = { b, V, L: delta.size / (b * V * C), C, S, units: pixels.units, depth: pixels.depth };
          // (In place views of the backend's memory: no tfjs call in between.)
          Object.assign(
            out[planned.term]!,
            pooledPositions(valuesOf(a), valuesOf(delta), dims, p.weightScale, term.layer, into),
          );
          return;
        }
        const ks = p.kernel!.shape as number[];
        const [kh, kw] = p.conv1d ? [1, ks[0]!] : [ks[0]!, ks[1]!];
        const geometry = convGeometry(p, a.shape, kh, kw, delta.shape.slice(1, -1));
        const dims = { b, V, L: geometry.oh * geometry.ow, K: kh * kw * geometry.C, C, S };
        const biasScale = p.bias ? p.biasScale : null;
        // (In place views of the backend's memory: no tfjs call in between.)
        const patches = im2colRows(valuesOf(a), geometry);
        Object.assign(
          out[planned.term]!,
          pooledFactors(patches, valuesOf(delta), dims, p.weightScale, biasScale, term.layer, into),
        );
        return;
      }
      if (term.kind === 'gram') {
        const fill =
          planned.nodes.length === 1
            ? gradientRowsFiller(graph.nodes[k0]!, saved.get(k0)!, deltas.get(k0)!, V)
            : null;
        if (fill) {
          const size = b * V * term.width;
          const target = dest?.(planned.term, 'd', size) ?? new Float32Array(size);
          fill(target);
          out[planned.term]!.d = target;
          return;
        }
        let g: tf.Tensor | null = null;
        for (const k of planned.nodes) {
          const gk = callGradients(graph.nodes[k]!, saved.get(k)!, deltas.get(k)!, V);
          g = g ? tf.add(g, gk) : gk;
        }
        result.push({ term: planned.term, key: 'd', t: g! });
        return;
      }
      if (planned.position !== undefined) {
        // Dense over positions, δ zero off one position (positionSupport): a_t ⊗ δ_t at that t.
        const t = planned.position;
        const input = saved.get(k0)!.inputs[0]!;
        const delta = deltas.get(k0)![0]!;
        if (offPosition(delta, t)) {
          throw new Error(`structured eNTK: layer ${term.layer} has cotangents off position ${t} (a bug)`);
        }
        // Row r of a [rows, L, width] tensor at position t, copied in JS (tfjs-wasm's strided
        // Slice is slow).
        const atPosition = (src: tf.Tensor, rows: number, width: number, key: keyof TermFeatures) => {
          const target = dest?.(planned.term, key, rows * width) ?? new Float32Array(rows * width);
          const data = valuesOf(src);
          const L = src.shape[1]!;
          for (let r = 0; r < rows; r++) {
            const from = (r * L + t) * width;
            target.set(data.subarray(from, from + width), r * width);
          }
          out[planned.term]![key] = target;
        };
        atPosition(input, b, term.dIn, 'a');
        atPosition(delta, b * V, term.width, 'd');
        return;
      }
      result.push({ term: planned.term, key: 'a', t: saved.get(k0)!.inputs[0]!.reshape([b, term.dIn]) });
      if (term.kind === 'factored' || term.kind === 'positions') {
        result.push({ term: planned.term, key: 'd', t: deltas.get(k0)![0]!.reshape([b * V, term.width]) });
      }
      if (planned.gate) {
        // s = g'(h) of the element-wise map g from h to the head's input (sum's gradient, exact).
        const p = planned.param;
        const between = planned.gate.between.map((k) => graph.nodes[k]!);
        const g = (h: tf.Tensor) => {
          let y = p.activation ? p.activation(h) : h;
          for (const node of between) y = applyLayer(node, [y]);
          return tf.sum(y);
        };
        result.push({ term: planned.term, key: 's', t: tf.grad(g)(pre.get(k0)!) });
        const head = graph.nodes[planned.gate.head]!.param!;
        result.push({ term: planned.term, key: 'u', t: tf.mul(head.kernel!.read(), planned.gate.scale) });
      }
    });
    return result;
  });
  for (const { term, key, t } of tensors) {
    const target = plan.terms[term]!.kind === 'tokens' ? undefined : dest?.(term, key, t.size);
    if (target) {
      target.set(heapView(t) ?? (t.dataSync() as Float32Array));
      out[term]![key] = target;
    } else out[term]![key] = t.dataSync() as Float32Array;
    t.dispose();
  }
  plan.terms.forEach((term, k) => {
    if (term.kind !== 'tokens') return;
    const f = out[k]!;
    Object.assign(f, compactTokens(f.a!, f.d!, b, V, term.dIn, term.width / term.dIn));
  });
  return out;
}
