/**
 * References for the BERT import tests: the encoder's last hidden state from transformers.js /
 * onnxruntime (the model directory's ONNX graph, run by onnxruntime-node), and a float64 forward
 * pass in plain loops over imported weights (post-LN BERT, exact erf GELU).
 */

import type { BertWeights } from '../../src/model/index.js';
import { erf } from '../embed/reference.js';

/** A padded batch of token ids, attention mask and token types ([n][T] each). */
export interface TokenBatch {
  ids: number[][];
  mask: number[][];
  types: number[][];
}

/** Pad sequences (lists of ids; optional token types) to the longest with id `pad`. */
export function padBatch(seqs: number[][], typesOf: number[][] | null = null, pad = 0): TokenBatch {
  const T = Math.max(...seqs.map((s) => s.length));
  const fill = (row: number[], v: number) => [...row, ...new Array(T - row.length).fill(v)];
  return {
    ids: seqs.map((s) => fill(s, pad)),
    mask: seqs.map((s) => fill(new Array(s.length).fill(1), 0)),
    types: seqs.map((s, i) => fill(typesOf?.[i] ?? new Array(s.length).fill(0), 0)),
  };
}

/**
 * last_hidden_state [n, T, H] (and pooler_output [n, H] when the graph has it) from transformers.js
 * AutoModel (onnxruntime-node) on a local model directory.
 */
export async function onnxOutputs(
  dir: string,
  batch: TokenBatch,
): Promise<{ hidden: Float32Array; pooler: Float32Array | null }> {
  const { AutoModel, Tensor, env } = await import('@huggingface/transformers');
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
  env.useFSCache = false;
  const model = await AutoModel.from_pretrained(dir, {
    dtype: 'fp32',
    device: 'cpu',
    local_files_only: true,
  });
  try {
    const n = batch.ids.length;
    const T = batch.ids[0]!.length;
    const tensor = (rows: number[][]) =>
      new Tensor(
        'int64',
        BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
        [n, T],
      );
    const out = await model({
      input_ids: tensor(batch.ids),
      attention_mask: tensor(batch.mask),
      token_type_ids: tensor(batch.types),
    });
    return {
      hidden: Float32Array.from(out.last_hidden_state.data as Float32Array),
      pooler: out.pooler_output ? Float32Array.from(out.pooler_output.data as Float32Array) : null,
    };
  } finally {
    await model.dispose();
  }
}

function layerNorm(x: Float64Array, gamma: Float32Array, beta: Float32Array, eps: number): Float64Array {
  const h = x.length;
  let mean = 0;
  for (let i = 0; i < h; i++) mean += x[i]!;
  mean /= h;
  let v = 0;
  for (let i = 0; i < h; i++) v += (x[i]! - mean) ** 2;
  v /= h;
  const inv = 1 / Math.sqrt(v + eps);
  const out = new Float64Array(h);
  for (let i = 0; i < h; i++) out[i] = (x[i]! - mean) * inv * gamma[i]! + beta[i]!;
  return out;
}

function dense(x: Float64Array, d: { kernel: Float32Array; bias: Float32Array }): Float64Array {
  const out = d.bias.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = d.bias[o]!;
    for (let i = 0; i < x.length; i++) s += x[i]! * d.kernel[i * out + o]!;
    y[o] = s;
  }
  return y;
}

/**
 * Float64 BERT forward of one padded sequence: rows [T][H]. Keys at masked positions get no
 * attention weight (the exp of a score minus ≥ 1e4 underflows in float32 and float64 alike).
 */
export function bertForward64(
  w: BertWeights,
  ids: number[],
  mask: number[],
  types: number[],
): Float64Array[] {
  const { hiddenSize: H, numHeads: NH, layerNormEps: eps } = w.config;
  const dh = H / NH;
  const T = ids.length;
  let h = ids.map((id, t) => {
    const x = new Float64Array(H);
    for (let j = 0; j < H; j++)
      x[j] =
        w.wordEmbeddings[id * H + j]! +
        w.positionEmbeddings[t * H + j]! +
        w.tokenTypeEmbeddings[types[t]! * H + j]!;
    return layerNorm(x, w.embeddingNorm.gamma, w.embeddingNorm.beta, eps);
  });
  for (const layer of w.layers) {
    const q = h.map((x) => dense(x, layer.query));
    const k = h.map((x) => dense(x, layer.key));
    const v = h.map((x) => dense(x, layer.value));
    const context = h.map(() => new Float64Array(H));
    for (let head = 0; head < NH; head++) {
      for (let t = 0; t < T; t++) {
        const scores = new Float64Array(T);
        let max = Number.NEGATIVE_INFINITY;
        for (let u = 0; u < T; u++) {
          if (!mask[u]) continue;
          let s = 0;
          for (let j = head * dh; j < (head + 1) * dh; j++) s += q[t]![j]! * k[u]![j]!;
          scores[u] = s / Math.sqrt(dh);
          max = Math.max(max, scores[u]!);
        }
        let z = 0;
        for (let u = 0; u < T; u++) {
          scores[u] = mask[u] ? Math.exp(scores[u]! - max) : 0;
          z += scores[u]!;
        }
        for (let u = 0; u < T; u++) {
          if (!mask[u]) continue;
          for (let j = head * dh; j < (head + 1) * dh; j++) context[t]![j]! += (scores[u]! / z) * v[u]![j]!;
        }
      }
    }
    h = h.map((x, t) => {
      const a = dense(context[t]!, layer.attentionOutput);
      for (let j = 0; j < H; j++) a[j]! += x[j]!;
      const h1 = layerNorm(a, layer.attentionNorm.gamma, layer.attentionNorm.beta, eps);
      const pre = dense(h1, layer.intermediate);
      for (let j = 0; j < pre.length; j++) pre[j] = (pre[j]! * (1 + erf(pre[j]! / Math.SQRT2))) / 2;
      const o = dense(pre, layer.output);
      for (let j = 0; j < H; j++) o[j]! += h1[j]!;
      return layerNorm(o, layer.outputNorm.gamma, layer.outputNorm.beta, eps);
    });
  }
  return h;
}

/**
 * Largest |a − b| over the unpadded positions, relative to the largest |b| there (the "relative
 * max" the import is held to).
 */
export function relativeMaxDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: TokenBatch,
  H: number,
): number {
  const T = batch.ids[0]!.length;
  let diff = 0;
  let scale = 0;
  for (let n = 0; n < batch.mask.length; n++) {
    for (let t = 0; t < T; t++) {
      if (!batch.mask[n]![t]) continue;
      for (let j = 0; j < H; j++) {
        const i = (n * T + t) * H + j;
        diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        scale = Math.max(scale, Math.abs(b[i]!));
      }
    }
  }
  return diff / scale;
}

/** last_hidden_state [n, T, H] from onnxruntime (see {@link onnxOutputs}). */
export async function onnxHiddenStates(dir: string, batch: TokenBatch): Promise<Float32Array> {
  return (await onnxOutputs(dir, batch)).hidden;
}
