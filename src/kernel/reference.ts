/**
 * Independent float64 reference for tests: the model's forward pass re-implemented in plain
 * double-precision JS (no tfjs arithmetic), the Jacobian by central finite differences on each
 * parameter, and K = J Jᵀ (docs/theory.md#closed-forms: finite differences).
 * O(P) forward passes — for tiny networks only.
 *
 * The model's graph (src/kernel/analyze.ts modelGraph: branches, merges, nested models, shared
 * layers) is evaluated call by call. Supported layers: Dense (any input rank), ScaledDense, Conv1D,
 * Conv2D, DepthwiseConv2D, SeparableConv2D (NHWC, valid/same, strides, dilation as tfjs applies it:
 * none for DepthwiseConv2D), Embedding,
 * LayerNormalization (trailing axes), BatchNormalization (inference, last axis), PReLU, Add,
 * Subtract, Multiply, Average, Maximum, Minimum, Concatenate, MaxPooling2D, AveragePooling2D,
 * GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D (channels last), Flatten, Reshape, Dropout-like identities,
 * Activation, ReLU (with maxValue), ThresholdedReLU, ElementwiseActivation, Scale; activations linear, relu,
 * relu6, tanh, sigmoid, softplus, softsign, elu, selu, swish, gelu (exact), gelu_new, erf, softmax.
 */
import type * as tf from '@tensorflow/tfjs';
import { UnsupportedError } from '../errors.js';
import { analyzeModel, appliedDilation, type ModelGraph, pair } from './analyze.js';
import { toPoints } from './engine.js';
import type { NtkInput, NtkLogits, NtkParameters } from './types.js';

/** Options of {@link finiteDifferenceJacobian} / {@link finiteDifferenceNtk}. */
export interface FiniteDifferenceOptions {
  /** Parameter subset (as in NtkOptions.parameters); default 'all'. */
  parameters?: NtkParameters;
  /** Kernel of the outputs or of the pre-softmax/sigmoid logits (as NtkOptions.logits). */
  logits?: NtkLogits;
  /** Central-difference step h (absolute); default 1e-5. Truncation error O(h²), round-off O(1e-16/h). */
  step?: number;
}

interface Arr {
  data: Float64Array;
  /** Shape including the batch dimension. */
  shape: number[];
}

/** erf(x) to double precision: a positive-term series for |x| < 3, a continued fraction beyond. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    // erf(x) = 2/√π · e^{−x²} · Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * ax * ax) / (2 * n + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    const v = (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
    return x < 0 ? -v : v;
  }
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated bottom-up.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

function activation(name: string, x: Arr): Arr {
  const d = x.data;
  const out = new Float64Array(d.length);
  const map = (f: (v: number) => number) => {
    for (let i = 0; i < d.length; i++) out[i] = f(d[i]!);
  };
  switch (name) {
    case 'linear':
      return x;
    case 'relu':
      map((v) => Math.max(v, 0));
      break;
    case 'relu6':
      map((v) => Math.min(6, Math.max(0, v)));
      break;
    case 'tanh':
      map(Math.tanh);
      break;
    case 'sigmoid':
      map((v) => 1 / (1 + Math.exp(-v)));
      break;
    case 'softplus':
      map((v) => Math.log1p(Math.exp(v)));
      break;
    case 'softsign':
      map((v) => v / (1 + Math.abs(v)));
      break;
    case 'elu':
      map((v) => (v > 0 ? v : Math.expm1(v)));
      break;
    case 'selu':
      map((v) => SELU_SCALE * (v > 0 ? v : SELU_ALPHA * Math.expm1(v)));
      break;
    case 'swish':
      map((v) => v / (1 + Math.exp(-v)));
      break;
    case 'erf':
      map(erf64);
      break;
    case 'gelu':
      map((v) => 0.5 * v * (1 + erf64(v / Math.SQRT2)));
      break;
    case 'gelu_new':
      map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));
      break;
    case 'softmax': {
      const last = x.shape[x.shape.length - 1]!;
      for (let r = 0; r < d.length / last; r++) {
        let max = -Infinity;
        for (let k = 0; k < last; k++) max = Math.max(max, d[r * last + k]!);
        let s = 0;
        for (let k = 0; k < last; k++) s += Math.exp(d[r * last + k]! - max);
        for (let k = 0; k < last; k++) out[r * last + k] = Math.exp(d[r * last + k]! - max) / s;
      }
      break;
    }
    default:
      throw new UnsupportedError(`finite-difference reference: activation '${name}' is not implemented`);
  }
  return { data: out, shape: x.shape };
}

function actName(layer: tf.layers.Layer): string {
  const act = (layer as unknown as { activation?: { getClassName(): string } }).activation;
  return act ? act.getClassName() : 'linear';
}

function dense(x: Arr, w: Float64Array, b: Float64Array | null, ws: number, bs: number): Arr {
  const dIn = x.shape[x.shape.length - 1]!;
  const units = w.length / dIn;
  const rows = x.data.length / dIn;
  const out = new Float64Array(rows * units);
  for (let r = 0; r < rows; r++) {
    for (let u = 0; u < units; u++) {
      let s = 0;
      for (let k = 0; k < dIn; k++) s += x.data[r * dIn + k]! * w[k * units + u]!;
      out[r * units + u] = ws * s + (b ? bs * b[u]! : 0);
    }
  }
  return { data: out, shape: [...x.shape.slice(0, -1), units] };
}

/** Output size and leading padding of a 2D window op along one axis ('valid' | 'same', TF rules). */
function windowAxis(
  size: number,
  k: number,
  stride: number,
  dilation: number,
  padding: string,
): [number, number] {
  const eff = (k - 1) * dilation + 1;
  if (padding === 'valid') return [Math.floor((size - eff) / stride) + 1, 0];
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + eff - size, 0);
  return [out, Math.floor(total / 2)];
}

function conv2d(
  x: Arr,
  w: Float64Array,
  wShape: number[],
  b: Float64Array | null,
  strides: [number, number],
  padding: string,
  dil: [number, number],
): Arr {
  const [n, H, W, C] = x.shape as [number, number, number, number];
  const [kh, kw, cin, cout] = wShape as [number, number, number, number];
  if (cin !== C) throw new Error('conv2d reference: channel mismatch');
  const [oh, pt] = windowAxis(H, kh, strides[0], dil[0], padding);
  const [ow, pl] = windowAxis(W, kw, strides[1], dil[1], padding);
  const out = new Float64Array(n * oh * ow * cout);
  for (let s = 0; s < n; s++) {
    for (let y = 0; y < oh; y++) {
      for (let z = 0; z < ow; z++) {
        for (let o = 0; o < cout; o++) {
          let acc = b ? b[o]! : 0;
          for (let i = 0; i < kh; i++) {
            const yy = y * strides[0] + i * dil[0] - pt;
            if (yy < 0 || yy >= H) continue;
            for (let j = 0; j < kw; j++) {
              const zz = z * strides[1] + j * dil[1] - pl;
              if (zz < 0 || zz >= W) continue;
              for (let c = 0; c < C; c++) {
                acc += x.data[((s * H + yy) * W + zz) * C + c]! * w[((i * kw + j) * cin + c) * cout + o]!;
              }
            }
          }
          out[((s * oh + y) * ow + z) * cout + o] = acc;
        }
      }
    }
  }
  return { data: out, shape: [n, oh, ow, cout] };
}

function pool2d(
  x: Arr,
  size: [number, number],
  strides: [number, number],
  padding: string,
  max: boolean,
): Arr {
  const [n, H, W, C] = x.shape as [number, number, number, number];
  const [oh, pt] = windowAxis(H, size[0], strides[0], 1, padding);
  const [ow, pl] = windowAxis(W, size[1], strides[1], 1, padding);
  const out = new Float64Array(n * oh * ow * C);
  for (let s = 0; s < n; s++) {
    for (let y = 0; y < oh; y++) {
      for (let z = 0; z < ow; z++) {
        for (let c = 0; c < C; c++) {
          let acc = max ? -Infinity : 0;
          let count = 0;
          for (let i = 0; i < size[0]; i++) {
            const yy = y * strides[0] + i - pt;
            if (yy < 0 || yy >= H) continue;
            for (let j = 0; j < size[1]; j++) {
              const zz = z * strides[1] + j - pl;
              if (zz < 0 || zz >= W) continue;
              const v = x.data[((s * H + yy) * W + zz) * C + c]!;
              acc = max ? Math.max(acc, v) : acc + v;
              count++;
            }
          }
          out[((s * oh + y) * ow + z) * C + c] = max ? acc : acc / count;
        }
      }
    }
  }
  return { data: out, shape: [n, oh, ow, C] };
}

/** Depthwise 2-D convolution (NHWC, kernel [kh, kw, cin, mult], output channel c·mult + m). */
function depthwise2d(
  x: Arr,
  w: Float64Array,
  wShape: number[],
  strides: [number, number],
  padding: string,
  dil: [number, number],
): Arr {
  const [n, H, W, C] = x.shape as [number, number, number, number];
  const [kh, kw, , mult] = wShape as [number, number, number, number];
  const [oh, pt] = windowAxis(H, kh, strides[0], dil[0], padding);
  const [ow, pl] = windowAxis(W, kw, strides[1], dil[1], padding);
  const out = new Float64Array(n * oh * ow * C * mult);
  for (let s = 0; s < n; s++) {
    for (let y = 0; y < oh; y++) {
      for (let z = 0; z < ow; z++) {
        for (let c = 0; c < C; c++) {
          for (let m = 0; m < mult; m++) {
            let acc = 0;
            for (let i = 0; i < kh; i++) {
              const yy = y * strides[0] + i * dil[0] - pt;
              if (yy < 0 || yy >= H) continue;
              for (let j = 0; j < kw; j++) {
                const zz = z * strides[1] + j * dil[1] - pl;
                if (zz < 0 || zz >= W) continue;
                acc += x.data[((s * H + yy) * W + zz) * C + c]! * w[((i * kw + j) * C + c) * mult + m]!;
              }
            }
            out[((s * oh + y) * ow + z) * C * mult + c * mult + m] = acc;
          }
        }
      }
    }
  }
  return { data: out, shape: [n, oh, ow, C * mult] };
}

/** y = γ ⊙ (x − μ)/√(σ² + ε) + β with μ, σ² per row of `width` trailing values (or given per channel). */
function normalize(
  x: Arr,
  width: number,
  eps: number,
  gamma: Float64Array | null,
  beta: Float64Array | null,
  moving: [Float64Array, Float64Array] | null,
): Arr {
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / width; r++) {
    let mean = 0;
    let variance = 0;
    if (!moving) {
      for (let k = 0; k < width; k++) mean += x.data[r * width + k]!;
      mean /= width;
      for (let k = 0; k < width; k++) variance += (x.data[r * width + k]! - mean) ** 2;
      variance /= width;
    }
    for (let k = 0; k < width; k++) {
      const mu = moving ? moving[0][k]! : mean;
      const v = moving ? moving[1][k]! : variance;
      const xhat = (x.data[r * width + k]! - mu) / Math.sqrt(v + eps);
      out[r * width + k] = (gamma ? gamma[k]! : 1) * xhat + (beta ? beta[k]! : 0);
    }
  }
  return { data: out, shape: x.shape };
}

/** Element-wise merge of same-shape inputs. */
function merge(inputs: Arr[], f: (values: number[]) => number): Arr {
  const out = new Float64Array(inputs[0]!.data.length);
  for (let e = 0; e < out.length; e++) out[e] = f(inputs.map((t) => t.data[e]!));
  return { data: out, shape: inputs[0]!.shape };
}

function concatenate(inputs: Arr[], axis: number): Arr {
  const rank = inputs[0]!.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  const outer = inputs[0]!.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inners = inputs.map((t) => t.shape.slice(ax).reduce((a, b) => a * b, 1));
  const total = inners.reduce((a, b) => a + b, 0);
  const out = new Float64Array(outer * total);
  for (let o = 0; o < outer; o++) {
    let at = o * total;
    inputs.forEach((t, q) => {
      out.set(t.data.subarray(o * inners[q]!, (o + 1) * inners[q]!), at);
      at += inners[q]!;
    });
  }
  const shape = [...inputs[0]!.shape];
  shape[ax] = inputs.reduce((s, t) => s + t.shape[ax]!, 0);
  return { data: out, shape };
}

const IDENTITIES = new Set([
  'Dropout',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'SpatialDropout1D',
]);

/** Pooling over channels-last inputs only (a channels-first one would be read wrongly). */
function channelsLast(layer: tf.layers.Layer, cls: string): void {
  const format = (layer as unknown as { dataFormat?: string }).dataFormat;
  if (format !== undefined && format !== 'channelsLast') {
    throw new UnsupportedError(
      `finite-difference reference: layer ${layer.name} (${cls}) with dataFormat '${format}' is not implemented`,
    );
  }
}

/** Float64 value of one layer call on `inputs`, weights taken from `value`. */
function layer64(
  layer: tf.layers.Layer,
  inputs: Arr[],
  value: (v: tf.LayerVariable | null | undefined) => Float64Array | null,
  strip: boolean,
): Arr {
  const named = (suffix: string) =>
    layer.weights.find((w) => new RegExp(`(^|/)${suffix}(_\\d+)?$`).test(w.name)) ?? null;
  const cls = layer.getClassName();
  const l = layer as unknown as Record<string, unknown>;
  const act = (x: Arr) => (strip ? x : activation(actName(layer), x));
  let a = inputs[0]!;
  switch (cls) {
    case 'Dense':
      return act(
        dense(
          a,
          value(l.kernel as tf.LayerVariable)!,
          l.useBias ? value(l.bias as tf.LayerVariable) : null,
          1,
          1,
        ),
      );
    case 'ScaledDense':
      return act(
        dense(
          a,
          value(named('kernel'))!,
          value(named('bias')),
          l.weightScale as number,
          l.biasScale as number,
        ),
      );
    case 'Conv2D':
    case 'Conv1D': {
      if (l.padding !== 'valid' && l.padding !== 'same') {
        throw new UnsupportedError(
          `finite-difference reference: layer ${layer.name} (${cls}) with padding '${String(l.padding)}' is not implemented`,
        );
      }
      const k = l.kernel as tf.LayerVariable;
      const one = cls === 'Conv1D';
      const shape = one ? [1, ...(k.shape as number[])] : (k.shape as number[]);
      const [n, L, C] = a.shape as [number, number, number];
      const x = one ? { data: a.data, shape: [n, 1, L, C] } : a;
      const [s1, d1] = [l.strides as number[] | number, l.dilationRate as number[] | number];
      const y = conv2d(
        x,
        value(k)!,
        shape,
        l.useBias ? value(l.bias as tf.LayerVariable) : null,
        one ? [1, pair(s1, 1)[0]] : pair(s1, 1),
        l.padding as string,
        one ? [1, pair(d1, 1)[0]] : pair(d1, 1),
      );
      return act(one ? { data: y.data, shape: [n, y.shape[2]!, y.shape[3]!] } : y);
    }
    case 'DepthwiseConv2D':
    case 'SeparableConv2D': {
      const k = l.depthwiseKernel as tf.LayerVariable;
      let y = depthwise2d(
        a,
        value(k)!,
        k.shape as number[],
        pair(l.strides, 1),
        l.padding as string,
        appliedDilation(layer),
      );
      const bias = l.useBias ? value(l.bias as tf.LayerVariable) : null;
      if (cls === 'SeparableConv2D') {
        y = dense(y, value(l.pointwiseKernel as tf.LayerVariable)!, bias, 1, 1);
      } else if (bias) {
        y = { data: y.data.map((v, e) => v + bias[e % bias.length]!), shape: y.shape };
      }
      return act(y);
    }
    case 'Embedding': {
      const e = l.embeddings as tf.LayerVariable;
      const [vocab, dim] = e.shape as [number, number];
      const w = value(e)!;
      const out = new Float64Array(a.data.length * dim);
      for (let t = 0; t < a.data.length; t++) {
        const id = Math.trunc(a.data[t]!);
        if (id < 0 || id >= vocab) throw new Error(`embedding reference: id ${id} out of range`);
        out.set(w.subarray(id * dim, (id + 1) * dim), t * dim);
      }
      return { data: out, shape: [...a.shape, dim] };
    }
    case 'LayerNormalization': {
      const axes = (Array.isArray(l.axis) ? l.axis : [l.axis]) as number[];
      const rank = a.shape.length;
      const trailing = axes.map((x) => (x < 0 ? x + rank : x)).sort((p, q) => p - q);
      if (!trailing.every((x, i) => x === rank - trailing.length + i)) {
        throw new UnsupportedError('finite-difference reference: LayerNormalization over non-trailing axes');
      }
      const width = a.shape.slice(rank - trailing.length).reduce((p, q) => p * q, 1);
      return normalize(
        a,
        width,
        l.epsilon as number,
        value(l.gamma as tf.LayerVariable),
        value(l.beta as tf.LayerVariable),
        null,
      );
    }
    case 'BatchNormalization': {
      const axis = l.axis as number;
      if (axis !== -1 && axis !== a.shape.length - 1) {
        throw new UnsupportedError(
          `finite-difference reference: layer ${layer.name} (BatchNormalization) over axis ${axis} (only the last axis is implemented)`,
        );
      }
      const width = a.shape[a.shape.length - 1]!;
      const moving: [Float64Array, Float64Array] = [
        value(l.movingMean as tf.LayerVariable)!,
        value(l.movingVariance as tf.LayerVariable)!,
      ];
      return normalize(
        a,
        width,
        l.epsilon as number,
        value(l.gamma as tf.LayerVariable),
        value(l.beta as tf.LayerVariable),
        moving,
      );
    }
    case 'PReLU': {
      const alpha = l.alpha as tf.LayerVariable;
      const w = value(alpha)!;
      const aShape = alpha.shape as number[];
      const xShape = a.shape.slice(1);
      const per = xShape.reduce((p, q) => p * q, 1);
      const out = new Float64Array(a.data.length);
      for (let e = 0; e < a.data.length; e++) {
        // α index: the example coordinate with shared axes collapsed to 0.
        let rem = e % per;
        let idx = 0;
        let stride = 1;
        const coords: number[] = [];
        for (let d = xShape.length - 1; d >= 0; d--) {
          coords[d] = rem % xShape[d]!;
          rem = Math.floor(rem / xShape[d]!);
        }
        for (let d = xShape.length - 1; d >= 0; d--) {
          idx += (aShape[d] === 1 ? 0 : coords[d]!) * stride;
          stride *= aShape[d]!;
        }
        const v = a.data[e]!;
        out[e] = v > 0 ? v : w[idx]! * v;
      }
      return { data: out, shape: a.shape };
    }
    case 'Add':
      return merge(inputs, (v) => v.reduce((p, q) => p + q, 0));
    case 'Subtract':
      return merge(inputs, (v) => v[0]! - v[1]!);
    case 'Multiply':
      return merge(inputs, (v) => v.reduce((p, q) => p * q, 1));
    case 'Average':
      return merge(inputs, (v) => v.reduce((p, q) => p + q, 0) / v.length);
    case 'Maximum':
      return merge(inputs, (v) => Math.max(...v));
    case 'Minimum':
      return merge(inputs, (v) => Math.min(...v));
    case 'Concatenate':
      return concatenate(inputs, (l.axis as number | undefined) ?? -1);
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const size = pair(l.poolSize, 2);
      return pool2d(a, size, pair(l.strides ?? size, size[0]), l.padding as string, cls === 'MaxPooling2D');
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D': {
      channelsLast(layer, cls);
      const [n, H, W, C] = a.shape as [number, number, number, number];
      a = pool2d(a, [H, W], [H, W], 'valid', cls === 'GlobalMaxPooling2D');
      return { data: a.data, shape: [n, C] };
    }
    case 'GlobalAveragePooling1D':
    case 'GlobalMaxPooling1D': {
      channelsLast(layer, cls);
      const [n, L, C] = a.shape as [number, number, number];
      const max = cls === 'GlobalMaxPooling1D';
      const out = new Float64Array(n * C).fill(max ? Number.NEGATIVE_INFINITY : 0);
      for (let s = 0; s < n; s++)
        for (let t = 0; t < L; t++)
          for (let c = 0; c < C; c++) {
            const v = a.data[(s * L + t) * C + c]!;
            out[s * C + c] = max ? Math.max(out[s * C + c]!, v) : out[s * C + c]! + v / L;
          }
      return { data: out, shape: [n, C] };
    }
    case 'Flatten':
      channelsLast(layer, cls); // (channelsFirst flattens a transposed layout)
      return { data: a.data, shape: [a.shape[0]!, a.data.length / a.shape[0]!] };
    case 'Reshape':
      return { data: a.data, shape: [a.shape[0]!, ...(l.targetShape as number[])] };
    case 'Activation':
      return act(a);
    case 'ReLU': {
      // tfjs ReLU({maxValue}): clipByValue(x, 0, maxValue); relu without it.
      const max = l.maxValue as number | null | undefined;
      return max == null
        ? activation('relu', a)
        : { data: a.data.map((v) => Math.min(Math.max(v, 0), max)), shape: a.shape };
    }
    case 'ThresholdedReLU': {
      const theta = l.theta as number;
      return { data: a.data.map((v) => (v > theta ? v : 0)), shape: a.shape };
    }
    case 'ElementwiseActivation':
      return activation(String(l.fn), a);
    case 'Scale': {
      const f = l.factor as number;
      return { data: a.data.map((v) => v * f), shape: a.shape };
    }
    default:
      if (IDENTITIES.has(cls)) return a;
      throw new UnsupportedError(
        `finite-difference reference: layer ${layer.name} (${cls}) is not implemented`,
      );
  }
}

/** Float64 forward pass of the model's graph with weights taken from `weights` (variable → values). */
function forward64(graph: ModelGraph, weights: Map<tf.LayerVariable, Float64Array>, x: Arr): Arr {
  const value = (v: tf.LayerVariable | null | undefined): Float64Array | null => (v ? weights.get(v)! : null);
  const values: Arr[] = new Array(graph.tensors);
  values[0] = x;
  for (const node of graph.nodes) {
    values[node.output] = layer64(
      node.layer,
      node.inputs.map((i) => values[i]!),
      value,
      node.stripActivation === true,
    );
  }
  return values[graph.output]!;
}

/**
 * J(x) by central differences in float64: data [n·V, P] (row n·V + i, columns in the order of the
 * selected trainable variables, each flattened row-major).
 */
export function finiteDifferenceJacobian(
  model: tf.LayersModel,
  x: NtkInput,
  options: FiniteDifferenceOptions = {},
): { data: Float64Array; shape: [number, number] } {
  const h = options.step ?? 1e-5;
  const analysis = analyzeModel(model, options.parameters ?? 'all', { logits: options.logits });
  const points = toPoints(x, 'x', analysis.inputShape, analysis.inputDtype, analysis.tokenIds);
  const graph = analysis.graph;
  if (!graph) {
    throw new UnsupportedError(`finite-difference reference: ${analysis.unsupported.join('; ')}`);
  }
  const weights = new Map<tf.LayerVariable, Float64Array>();
  for (const node of graph.nodes)
    for (const w of node.layer.weights) weights.set(w, Float64Array.from(w.read().dataSync()));
  const input: Arr = { data: Float64Array.from(points.data), shape: [points.n, ...points.exampleShape] };
  const V = analysis.numOutputs;
  const P = analysis.parameterCount;
  const n = points.n;
  const J = new Float64Array(n * V * P);
  let col = 0;
  for (const v of analysis.variables) {
    const w = weights.get(v)!;
    for (let p = 0; p < w.length; p++, col++) {
      const saved = w[p]!;
      w[p] = saved + h;
      const plus = forward64(graph, weights, input).data;
      w[p] = saved - h;
      const minus = forward64(graph, weights, input).data;
      w[p] = saved;
      for (let r = 0; r < n * V; r++) J[r * P + col] = (plus[r]! - minus[r]!) / (2 * h);
    }
  }
  return { data: J, shape: [n * V, P] };
}

/** The eNTK by finite differences in float64: data [n1·V, n2·V] point-major (x2 omitted: x1). */
export function finiteDifferenceNtk(
  model: tf.LayersModel,
  x1: NtkInput,
  x2?: NtkInput | null,
  options: FiniteDifferenceOptions = {},
): { data: Float64Array; shape: [number, number] } {
  const j1 = finiteDifferenceJacobian(model, x1, options);
  const j2 = x2 == null ? j1 : finiteDifferenceJacobian(model, x2, options);
  const [r1, P] = j1.shape;
  const r2 = j2.shape[0];
  const K = new Float64Array(r1 * r2);
  for (let a = 0; a < r1; a++) {
    for (let b = 0; b < r2; b++) {
      let s = 0;
      for (let p = 0; p < P; p++) s += j1.data[a * P + p]! * j2.data[b * P + p]!;
      K[a * r2 + b] = s;
    }
  }
  return { data: K, shape: [r1, r2] };
}
