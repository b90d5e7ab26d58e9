/**
 * An independent float64 re-implementation of entk's transformer (src/model/transformer.ts) for
 * tests: the forward pass in plain loops over weights looked up by layer name, the attention core
 * on its own, and the eNTK by central finite differences over every (or a chosen subset of)
 * parameter(s). Nothing here calls tfjs arithmetic.
 */
import type * as tf from '@tensorflow/tfjs';
import type { TransformerSpec } from '../../src/model/index.js';
import { gelu64 } from './reference.js';

/** Weights by layer name (each layer's getWeights() order: Dense kernel, bias; LN γ, β; Embedding table). */
export type Weights64 = Map<string, Float64Array[]>;

/** The model's weights as float64 arrays, by layer name. */
export function weights64(model: tf.LayersModel): Weights64 {
  const out: Weights64 = new Map();
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length > 0)
      out.set(
        layer.name,
        ws.map((w) => Float64Array.from(w.dataSync())),
      );
  }
  return out;
}

/**
 * Multi-head attention core in float64: q, k, v [n, L, W], mask [n, L] → [n, L, W];
 * P = softmax(Q_h K_hᵀ/√d) over the token keys only (padding keys get weight exactly 0).
 */
export function attention64(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  mask: ArrayLike<number>,
  n: number,
  L: number,
  W: number,
  heads: number,
): Float64Array {
  const d = W / heads;
  const out = new Float64Array(n * L * W);
  const p = new Float64Array(L);
  for (let s = 0; s < n; s++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < L; i++) {
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          if (mask[s * L + j] === 0) {
            p[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let c = 0; c < d; c++)
            dot += q[(s * L + i) * W + h * d + c]! * k[(s * L + j) * W + h * d + c]!;
          p[j] = dot / Math.sqrt(d);
          max = Math.max(max, p[j]!);
        }
        let z = 0;
        for (let j = 0; j < L; j++) {
          p[j] = p[j] === -Infinity ? 0 : Math.exp(p[j]! - max);
          z += p[j]!;
        }
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += p[j]! * v[(s * L + j) * W + h * d + c]!;
          out[(s * L + i) * W + h * d + c] = acc / z;
        }
      }
    }
  }
  return out;
}

function dense(x: Float64Array, rows: number, w: Float64Array[]): Float64Array {
  const [kernel, bias] = w as [Float64Array, Float64Array];
  const units = bias.length;
  const dIn = kernel.length / units;
  const out = new Float64Array(rows * units);
  for (let r = 0; r < rows; r++) {
    for (let u = 0; u < units; u++) {
      let s = bias[u]!;
      for (let c = 0; c < dIn; c++) s += x[r * dIn + c]! * kernel[c * units + u]!;
      out[r * units + u] = s;
    }
  }
  return out;
}

function layerNorm(x: Float64Array, rows: number, W: number, w: Float64Array[], eps: number): Float64Array {
  const [gamma, beta] = w as [Float64Array, Float64Array];
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < W; c++) mean += x[r * W + c]!;
    mean /= W;
    let variance = 0;
    for (let c = 0; c < W; c++) variance += (x[r * W + c]! - mean) ** 2;
    variance /= W;
    for (let c = 0; c < W; c++) {
      out[r * W + c] = (gamma[c]! * (x[r * W + c]! - mean)) / Math.sqrt(variance + eps) + beta[c]!;
    }
  }
  return out;
}

const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]!);

/** Logits [n, V] of the transformer of `spec` with weights `w` at inputs x [n, 2L] (ids, then mask). */
export function transformer64(
  spec: TransformerSpec,
  w: Weights64,
  x: ArrayLike<number>,
  n: number,
): Float64Array {
  const L = spec.maxLength;
  const W = spec.width;
  const rows = n * L;
  const get = (name: string) => {
    const v = w.get(name);
    if (!v) throw new Error(`no weights for layer ${name}`);
    return v;
  };
  const mask = new Float64Array(rows);
  let h: Float64Array = new Float64Array(rows * W);
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < L; t++) {
      const id = x[s * 2 * L + t]!;
      mask[s * L + t] = x[s * 2 * L + L + t]!;
      for (let c = 0; c < W; c++) {
        let e = get('embeddings/word')[0]![id * W + c]! + get('embeddings/position')[0]![t * W + c]!;
        if (spec.typeVocabSize > 0) e += get('embeddings/token_type')[0]![c]!; // type 0
        h[(s * L + t) * W + c] = e;
      }
    }
  }
  const eps = spec.layerNormEpsilon;
  if (spec.embeddingNorm) h = layerNorm(h, rows, W, get('embeddings/norm'), eps);
  for (let i = 0; i < spec.layers; i++) {
    const b = `block${i}`;
    const pre = spec.norm === 'pre';
    const a = pre ? layerNorm(h, rows, W, get(`${b}/attention/norm`), eps) : h;
    const core = attention64(
      dense(a, rows, get(`${b}/attention/query`)),
      dense(a, rows, get(`${b}/attention/key`)),
      dense(a, rows, get(`${b}/attention/value`)),
      mask,
      n,
      L,
      W,
      spec.heads,
    );
    h = add(h, dense(core, rows, get(`${b}/attention/output`)));
    if (!pre) h = layerNorm(h, rows, W, get(`${b}/attention/norm`), eps);
    const m = pre ? layerNorm(h, rows, W, get(`${b}/mlp/norm`), eps) : h;
    const g = dense(m, rows, get(`${b}/mlp/dense1`)).map(gelu64);
    h = add(h, dense(g, rows, get(`${b}/mlp/dense2`)));
    if (!pre) h = layerNorm(h, rows, W, get(`${b}/mlp/norm`), eps);
  }
  if (spec.norm === 'pre') h = layerNorm(h, rows, W, get('final_norm'), eps);
  let pooled: Float64Array = new Float64Array(n * W);
  for (let s = 0; s < n; s++) {
    if (spec.pooling === 'cls') {
      pooled.set(h.subarray(s * L * W, s * L * W + W), s * W);
      continue;
    }
    let count = 0;
    for (let t = 0; t < L; t++) count += mask[s * L + t]!;
    for (let c = 0; c < W; c++) {
      let acc = 0;
      for (let t = 0; t < L; t++) acc += mask[s * L + t]! * h[(s * L + t) * W + c]!;
      pooled[s * W + c] = acc / Math.max(count, 1);
    }
  }
  if (spec.pooler) pooled = dense(pooled, n, get('pooler')).map(Math.tanh);
  return dense(pooled, n, get('head'));
}

/**
 * K = J Jᵀ [n1·V, n2·V] (point-major) with J by central differences (step h) over the weights of
 * `layers` (default: every layer with weights), in model order.
 */
export function transformerNtk64(
  spec: TransformerSpec,
  w: Weights64,
  x1: ArrayLike<number>,
  n1: number,
  x2: ArrayLike<number>,
  n2: number,
  layers: string[] = [...w.keys()],
  h = 1e-5,
): Float64Array {
  const jac = (x: ArrayLike<number>, n: number) => {
    const cols: Float64Array[] = [];
    for (const name of layers) {
      for (const arr of w.get(name)!) {
        for (let p = 0; p < arr.length; p++) {
          const saved = arr[p]!;
          arr[p] = saved + h;
          const plus = transformer64(spec, w, x, n);
          arr[p] = saved - h;
          const minus = transformer64(spec, w, x, n);
          arr[p] = saved;
          cols.push(plus.map((v, r) => (v - minus[r]!) / (2 * h)));
        }
      }
    }
    return cols; // P columns of length n·V
  };
  const j1 = jac(x1, n1);
  const j2 = x2 === x1 ? j1 : jac(x2, n2);
  const r1 = j1[0]!.length;
  const r2 = j2[0]!.length;
  const K = new Float64Array(r1 * r2);
  for (let p = 0; p < j1.length; p++) {
    const a = j1[p]!;
    const b = j2[p]!;
    for (let i = 0; i < r1; i++) {
      const ai = a[i]!;
      if (ai === 0) continue;
      for (let j = 0; j < r2; j++) K[i * r2 + j]! += ai * b[j]!;
    }
  }
  return K;
}
