/**
 * The transformer encoder classifier of a {@link TransformerSpec}: a functional `tf.LayersModel`
 * built from standard tfjs layers (Embedding, Dense over positions, LayerNormalization, Add,
 * Activation 'gelu' — tfjs's is the exact x·Φ(x) with erf) and the parameter-free layers of
 * ./transformer-layers.ts, so that the eNTK engine's structured rules cover every parameter.
 *
 * Input: one tensor [n, 2L] (L = maxLength) — token ids in columns 0..L−1, the attention mask
 * (1 = token, 0 = padding) in columns L..2L−1. Output: logits [n, V].
 *
 * BERT compatibility (post-LN, embeddingNorm, typeVocabSize 2, pooler as the checkpoint has it,
 * layerNormEpsilon 1e-12): the forward pass is BERT's (HF `BertModel` in eval mode) with
 * token_type_ids = 0 and position_ids = 0..L−1. Layer names (weights are `<layer>/<weight>`;
 * Dense kernels are [in, out], i.e. the transpose of a torch Linear's weight):
 *
 * | layer | class | weights | BERT (HF) parameter |
 * |---|---|---|---|
 * | `inputs/ids`, `inputs/mask`, `inputs/positions`, `inputs/types` | TokenInputs | — | — |
 * | `embeddings/word` | Embedding | embeddings [vocab, W] | embeddings.word_embeddings.weight |
 * | `embeddings/position` | Embedding | embeddings [L, W] | embeddings.position_embeddings.weight[:L] |
 * | `embeddings/token_type` (typeVocabSize > 0) | Embedding | embeddings [T, W] | embeddings.token_type_embeddings.weight |
 * | `embeddings/sum` | Add | — | — |
 * | `embeddings/norm` (embeddingNorm) | LayerNormalization | gamma, beta | embeddings.LayerNorm.{weight,bias} |
 * | `block{i}/attention/query`, `…/key`, `…/value` | Dense | kernel [W, W], bias | encoder.layer.{i}.attention.self.{query,key,value} |
 * | `block{i}/attention/core` | AttentionCore | — | — |
 * | `block{i}/attention/output` | Dense | kernel [W, W], bias | encoder.layer.{i}.attention.output.dense |
 * | `block{i}/attention/residual` | Add | — | — |
 * | `block{i}/attention/norm` | LayerNormalization | gamma, beta | encoder.layer.{i}.attention.output.LayerNorm |
 * | `block{i}/mlp/dense1` | Dense | kernel [W, rW], bias | encoder.layer.{i}.intermediate.dense |
 * | `block{i}/mlp/gelu` | Activation (gelu) | — | — |
 * | `block{i}/mlp/dense2` | Dense | kernel [rW, W], bias | encoder.layer.{i}.output.dense |
 * | `block{i}/mlp/residual` | Add | — | — |
 * | `block{i}/mlp/norm` | LayerNormalization | gamma, beta | encoder.layer.{i}.output.LayerNorm |
 * | `final_norm` (norm 'pre' only) | LayerNormalization | gamma, beta | — |
 * | `pool` | SequencePooling | — | (hidden state of [CLS], or masked mean) |
 * | `pooler`, `pooler/tanh` (pooler) | Dense, Activation (tanh) | kernel [W, W], bias | pooler.dense |
 * | `head` | Dense | kernel [W, V], bias | classifier |
 *
 * Post-LN block: x ← LN(x + O(attn(Q x, K x, V x))); x ← LN(x + dense2(gelu(dense1(x)))).
 * Pre-LN block (the same names; `…/norm` is then the LN *before* the sub-layer):
 * x ← x + O(attn(LN(x))); x ← x + MLP(LN(x)); then `final_norm` after the last block.
 *
 * Initial weights (seeded, one stream per layer name; src/model/init.ts): embeddings N(0, 1);
 * Dense kernels Glorot, `mlp/dense1` He; biases 0; LayerNorm γ = 1, β = 0.
 */
import * as tf from '@tensorflow/tfjs';
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { assertFits, memoryBudget } from '../util/index.js';
import { initialiseWeights, type PendingInit } from './init.js';
import type { TransformerSpec } from './spec.js';
import { AttentionCore, SequencePooling, TokenInputs } from './transformer-layers.js';

/** Options of {@link buildTransformer} (those of buildModel). */
export interface TransformerBuildOptions {
  /** Must be [2·maxLength]. */
  inputShape: number[];
  numClasses: number;
  seed: number;
  /** Vocabulary size when the spec has none. */
  vocabSize?: number;
}

/** The input shape a transformer of `spec` takes: [2·maxLength] (token ids, then the mask). */
export function transformerInputShape(spec: TransformerSpec): number[] {
  return [2 * spec.maxLength];
}

/** Trainable parameters of a transformer of `spec` with `vocab` tokens and V classes. */
export function transformerParameterCount(spec: TransformerSpec, vocab: number, V: number): number {
  const W = spec.width;
  const H = spec.mlpRatio * W;
  const ln = 2 * W;
  const embeddings = (vocab + spec.maxLength + spec.typeVocabSize) * W + (spec.embeddingNorm ? ln : 0);
  const block = 4 * (W * W + W) + (W * H + H) + (H * W + W) + 2 * ln;
  return (
    embeddings +
    spec.layers * block +
    (spec.norm === 'pre' ? ln : 0) +
    (spec.pooler ? W * W + W : 0) +
    W * V +
    V
  );
}

/** Build the seeded transformer classifier of `spec` (see the module comment for names and maths). */
export function buildTransformer(spec: TransformerSpec, options: TransformerBuildOptions): tf.LayersModel {
  const { numClasses: V, seed } = options;
  const L = spec.maxLength;
  const W = spec.width;
  const vocab = spec.vocabSize ?? options.vocabSize;
  if (vocab === undefined) {
    throw new InvalidArgumentError(
      'vocabSize',
      undefined,
      'the token vocabulary size: model.vocabSize, or a tokenizer (--tokenizer) whose vocabulary gives it',
    );
  }
  assertArgument(Number.isInteger(vocab) && vocab > 0, 'vocabSize', vocab, 'a positive integer');
  const expected = transformerInputShape(spec);
  if (JSON.stringify(options.inputShape) !== JSON.stringify(expected)) {
    throw new InvalidArgumentError(
      'inputShape',
      options.inputShape,
      `[${expected[0]}] for a transformer of maxLength ${L} (token ids, then the attention mask)`,
    );
  }
  if (W % spec.heads !== 0) {
    throw new InvalidArgumentError('model.heads', spec.heads, `a divisor of width (${W})`);
  }
  const parameters = transformerParameterCount(spec, vocab, V);
  assertFits({
    what: `a transformer of ${parameters} parameters (float32 weights, gradients and optimiser state, ×4)`,
    bytes: parameters * 16,
    available: memoryBudget(),
    argument: 'model',
    received: `${spec.layers} layers of width ${W}, vocabulary ${vocab}`,
  });

  const pending: PendingInit[] = [];
  const dense = (name: string, units: number, fanIn: number, init: 'he' | 'glorot' = 'glorot') => {
    const layer = tf.layers.dense({ units, activation: 'linear', kernelInitializer: 'zeros', name });
    pending.push({ layer, init, fanIn, fanOut: units });
    return layer;
  };
  const embedding = (name: string, rows: number) => {
    const layer = tf.layers.embedding({
      inputDim: rows,
      outputDim: W,
      embeddingsInitializer: 'zeros',
      name,
    });
    pending.push({ layer, init: 'unit', fanIn: rows, fanOut: W });
    return layer;
  };
  const norm = (name: string) =>
    tf.layers.layerNormalization({ axis: -1, epsilon: spec.layerNormEpsilon, name });
  type T = tf.SymbolicTensor;
  const call = (layer: tf.layers.Layer, x: T | T[]) => layer.apply(x) as T;

  const input = tf.input({ shape: expected, name: 'tokens', dtype: 'float32' });
  const part = (p: 'ids' | 'mask' | 'positions' | 'types') =>
    call(new TokenInputs({ part: p, length: L, name: `inputs/${p}` }), input);
  const ids = part('ids');
  const mask = part('mask');
  const summands = [
    call(embedding('embeddings/word', vocab), ids),
    call(embedding('embeddings/position', L), part('positions')),
  ];
  if (spec.typeVocabSize > 0)
    summands.push(call(embedding('embeddings/token_type', spec.typeVocabSize), part('types')));
  let x = call(tf.layers.add({ name: 'embeddings/sum' }), summands);
  if (spec.embeddingNorm) x = call(norm('embeddings/norm'), x);

  const hidden = spec.mlpRatio * W;
  for (let i = 0; i < spec.layers; i++) {
    const b = `block${i}`;
    const pre = spec.norm === 'pre';
    // Attention sub-layer.
    const a = pre ? call(norm(`${b}/attention/norm`), x) : x;
    const q = call(dense(`${b}/attention/query`, W, W), a);
    const k = call(dense(`${b}/attention/key`, W, W), a);
    const v = call(dense(`${b}/attention/value`, W, W), a);
    const attended = call(new AttentionCore({ heads: spec.heads, name: `${b}/attention/core` }), [
      q,
      k,
      v,
      mask,
    ]);
    const o = call(dense(`${b}/attention/output`, W, W), attended);
    x = call(tf.layers.add({ name: `${b}/attention/residual` }), [x, o]);
    if (!pre) x = call(norm(`${b}/attention/norm`), x);
    // MLP sub-layer.
    const m = pre ? call(norm(`${b}/mlp/norm`), x) : x;
    const h1 = call(dense(`${b}/mlp/dense1`, hidden, W, 'he'), m);
    const g = call(tf.layers.activation({ activation: 'gelu', name: `${b}/mlp/gelu` }), h1);
    const h2 = call(dense(`${b}/mlp/dense2`, W, hidden), g);
    x = call(tf.layers.add({ name: `${b}/mlp/residual` }), [x, h2]);
    if (!pre) x = call(norm(`${b}/mlp/norm`), x);
  }
  if (spec.norm === 'pre') x = call(norm('final_norm'), x);
  let pooled = call(
    new SequencePooling({ mode: spec.pooling, name: 'pool' }),
    spec.pooling === 'mean' ? [x, mask] : x,
  );
  if (spec.pooler) {
    pooled = call(dense('pooler', W, W), pooled);
    pooled = call(tf.layers.activation({ activation: 'tanh', name: 'pooler/tanh' }), pooled);
  }
  const logits = call(dense('head', V, W), pooled);
  const model = tf.model({ inputs: input, outputs: logits, name: 'transformer' });
  initialiseWeights(pending, seed);
  return model;
}
