/**
 * Independent float64 references for the tiny test models: the forward passes written out in plain
 * loops from the generators' weights and the architecture documented in models/generate-*.ts.
 * They share nothing with onnxruntime, so agreement checks the ONNX graphs, the transformers.js
 * plumbing and the pooling.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  buildVocab,
  TINY_BERT,
  TINY_BERT_DATASET,
  tinyBertWeights,
} from '../../models/generate-tiny-bert.js';
import { TINY_VIT, tinyVitWeights } from '../../models/generate-tiny-vit.js';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const TINY_BERT_DIR = path.join(REPO, 'models', 'tiny-bert');
export const TINY_VIT_DIR = path.join(REPO, 'models', 'tiny-vit');
export const TOPICS_CSV = TINY_BERT_DATASET;

function layerNorm(x: Float64Array, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  const h = x.length;
  let mean = 0;
  for (let i = 0; i < h; i++) mean += x[i]!;
  mean /= h;
  let variance = 0;
  for (let i = 0; i < h; i++) variance += (x[i]! - mean) ** 2;
  variance /= h;
  const out = new Float64Array(h);
  const inv = 1 / Math.sqrt(variance + eps);
  for (let i = 0; i < h; i++) out[i] = (x[i]! - mean) * inv * gamma[i]! + beta[i]!;
  return out;
}

/** y = x W + b with W stored [in, out] row-major. */
function dense(x: Float64Array, w: Float32Array, b: Float32Array, out: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b[o]!;
    for (let i = 0; i < x.length; i++) s += x[i]! * w[i * out + o]!;
    y[o] = s;
  }
  return y;
}

/** erf via Abramowitz–Stegun 7.1.26 is too coarse; use a series/continued-fraction pair (|err| < 1e-14). */
export function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = a;
    let sum = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  // Continued fraction for erfc (Lentz), accurate for a ≥ 2.5.
  let f = a;
  let c = a;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = a + an * d;
    d = 1 / d;
    c = a + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-a * a) / (f * Math.sqrt(Math.PI));
  return sign * (1 - erfc);
}

/**
 * Last hidden state of tiny-bert for token ids / mask / token types of one sequence (already
 * padded): [T, H] as an array of Float64Array rows.
 */
let bertWeights: ReturnType<typeof tinyBertWeights> | undefined;

export function tinyBertForward(ids: number[], mask: number[], types: number[]): Float64Array[] {
  bertWeights ??= tinyBertWeights(buildVocab(readFileSync(TINY_BERT_DATASET, 'utf8')).length);
  const W = bertWeights;
  const { hidden: H, intermediate: I, layerNormEps: eps, maskFill } = TINY_BERT;
  const T = ids.length;
  const h0 = ids.map((id, t) => {
    const e = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      e[j] =
        W.wordEmbeddings[id * H + j]! +
        W.tokenTypeEmbeddings[types[t]! * H + j]! +
        W.positionEmbeddings[t * H + j]!;
    }
    return layerNorm(e, W.ln0Gamma, W.ln0Beta, eps);
  });
  const q = h0.map((x) => dense(x, W.wq, W.bq, H));
  const k = h0.map((x) => dense(x, W.wk, W.bk, H));
  const v = h0.map((x) => dense(x, W.wv, W.bv, H));
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const scores = new Float64Array(T);
    for (let u = 0; u < T; u++) {
      let s = 0;
      for (let j = 0; j < H; j++) s += q[t]![j]! * k[u]![j]!;
      scores[u] = s / Math.sqrt(H) + (1 - mask[u]!) * maskFill;
    }
    const max = Math.max(...scores);
    let z = 0;
    for (let u = 0; u < T; u++) {
      scores[u] = Math.exp(scores[u]! - max);
      z += scores[u]!;
    }
    const ctx = new Float64Array(H);
    for (let u = 0; u < T; u++) for (let j = 0; j < H; j++) ctx[j] = ctx[j]! + (scores[u]! / z) * v[u]![j]!;
    const a = dense(ctx, W.wo, W.bo, H);
    for (let j = 0; j < H; j++) a[j] = a[j]! + h0[t]![j]!;
    const h1 = layerNorm(a, W.ln1Gamma, W.ln1Beta, eps);
    const f = dense(h1, W.w1, W.b1, I);
    for (let j = 0; j < I; j++) f[j] = (f[j]! * (1 + erf(f[j]! / Math.SQRT2))) / 2;
    const g = dense(f, W.w2, W.b2, H);
    for (let j = 0; j < H; j++) g[j] = g[j]! + h1[j]!;
    out.push(layerNorm(g, W.ln2Gamma, W.ln2Beta, eps));
  }
  return out;
}

/**
 * Last hidden state of tiny-vit for one RGB image given as interleaved 8-bit pixels [16, 16, 3]:
 * [17, H] rows (token 0 = CLS). Preprocessing: p/255, then (x − 0.5)/0.5.
 */
export function tinyVitForward(pixels: Uint8Array): Float64Array[] {
  const { hidden: H, channels: C, patchSize: P, imageSize: S, layerNormEps: eps } = TINY_VIT;
  const W = tinyVitWeights();
  const grid = S / P;
  const x = (c: number, r: number, col: number) => (pixels[(r * S + col) * C + c]! / 255 - 0.5) / 0.5;
  const tokens: Float64Array[] = [Float64Array.from(W.cls)];
  for (let pr = 0; pr < grid; pr++) {
    for (let pc = 0; pc < grid; pc++) {
      const e = new Float64Array(H);
      for (let o = 0; o < H; o++) {
        let s = W.patchBias[o]!;
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < P; i++) {
            for (let j = 0; j < P; j++)
              s += W.patchKernel[((o * C + c) * P + i) * P + j]! * x(c, pr * P + i, pc * P + j);
          }
        }
        e[o] = s;
      }
      tokens.push(e);
    }
  }
  return tokens.map((t, n) => {
    const e = new Float64Array(H);
    for (let j = 0; j < H; j++) e[j] = t[j]! + W.pos[n * H + j]!;
    return layerNorm(e, W.lnGamma, W.lnBeta, eps);
  });
}

/** Mean of rows where mask = 1, or the first row ('cls'); optional L2 normalisation. */
export function poolRows(
  rows: Float64Array[],
  mask: number[],
  pooling: 'mean' | 'cls',
  normalize: boolean,
): Float64Array {
  const H = rows[0]!.length;
  let f = new Float64Array(H);
  if (pooling === 'cls') f = Float64Array.from(rows[0]!);
  else {
    let count = 0;
    rows.forEach((r, t) => {
      if (!mask[t]) return;
      count++;
      for (let j = 0; j < H; j++) f[j] = f[j]! + r[j]!;
    });
    for (let j = 0; j < H; j++) f[j] = f[j]! / count;
  }
  if (normalize) {
    const norm = Math.sqrt(f.reduce((s, v) => s + v * v, 0));
    for (let j = 0; j < H; j++) f[j] = f[j]! / norm;
  }
  return f;
}

/** Read the committed topics dataset: ids, texts, labels. */
export function readTopics(): { ids: string[]; texts: string[]; labels: string[] } {
  const lines = readFileSync(TOPICS_CSV, 'utf8').trim().split('\n').slice(1);
  const ids: string[] = [];
  const texts: string[] = [];
  const labels: string[] = [];
  for (const line of lines) {
    const first = line.indexOf(',');
    const last = line.lastIndexOf(',');
    ids.push(line.slice(0, first));
    texts.push(line.slice(first + 1, last));
    labels.push(line.slice(last + 1));
  }
  return { ids, texts, labels };
}
