/**
 * A pretrained BERT-style encoder as entk's transformer classifier: the spec follows the model
 * directory's `config.json` (post-LN, embedding LayerNorm, its width, heads, MLP size, token types
 * and LayerNorm ε), the encoder's weights come from ./bert-weights.ts (safetensors or ONNX), and
 * the classification head is fresh (seeded, like every entk model). The layer ↔ Hugging Face
 * parameter table is in ./transformer.ts.
 *
 * The tfjs model reads `maxLength` positions (the first `maxLength` rows of the position table) and
 * token type 0 everywhere (single-text classification); on those inputs its token states equal
 * `BertModel`'s `last_hidden_state` (test/model/bert-import.test.ts compares them with onnxruntime).
 */
import * as tf from '@tensorflow/tfjs';
import { assertArgument, InvalidArgumentError, UnsupportedError } from '../errors.js';
import {
  type BertConfig,
  type BertWeightSource,
  type BertWeights,
  type DenseWeights,
  type NormWeights,
  readBertWeights,
} from './bert-weights.js';
import { buildModel } from './build.js';
import { TRANSFORMER_POOLINGS, type TransformerSpec } from './spec.js';
import { transformerInputShape } from './transformer.js';

/** Sequence length used when none is given: the model's own limit, at most this. */
export const DEFAULT_PRETRAINED_MAX_LENGTH = 128;

/** Architecture choices left to the user when importing (the rest is `config.json`'s). */
export interface PretrainedSpecOptions {
  /** Positions the classifier reads (≤ max_position_embeddings); default min(max_position_embeddings, 128). */
  maxLength?: number;
  /** 'cls' (default, BERT's classifier) or 'mean' (sentence-transformers' pooling). */
  pooling?: 'cls' | 'mean';
  /** Use the checkpoint's pooler (Dense + tanh on the pooled vector); default: when it has one. */
  pooler?: boolean;
}

/** Options of {@link loadPretrainedTransformer}. */
export interface PretrainedTransformerOptions extends PretrainedSpecOptions {
  /** Number of classes V of the fresh head (>= 2). */
  numClasses: number;
  /** Seed of the head's initial weights. */
  seed: number;
  /** Which weight file to read (default 'auto': model.safetensors, else onnx/model.onnx). */
  source?: BertWeightSource;
}

/** The transformer spec of a BERT encoder with `config` (see {@link PretrainedSpecOptions}). */
export function pretrainedTransformerSpec(
  config: BertConfig,
  options: PretrainedSpecOptions & { pooler: boolean },
): TransformerSpec {
  const maxLength = options.maxLength ?? Math.min(config.maxPositions, DEFAULT_PRETRAINED_MAX_LENGTH);
  assertArgument(
    Number.isInteger(maxLength) && maxLength >= 1 && maxLength <= config.maxPositions,
    'maxLength',
    maxLength,
    `an integer in [1, ${config.maxPositions}] (the model's max_position_embeddings)`,
  );
  const pooling = options.pooling ?? 'cls';
  assertArgument(
    (TRANSFORMER_POOLINGS as readonly string[]).includes(pooling),
    'pooling',
    pooling,
    `one of ${TRANSFORMER_POOLINGS.join(', ')}`,
  );
  if (config.intermediateSize % config.hiddenSize !== 0) {
    throw new UnsupportedError(
      `intermediate_size ${config.intermediateSize} is not a multiple of hidden_size ${config.hiddenSize}: entk's transformer has an MLP of mlpRatio × width units`,
    );
  }
  return {
    kind: 'transformer',
    layers: config.numLayers,
    width: config.hiddenSize,
    heads: config.numHeads,
    mlpRatio: config.intermediateSize / config.hiddenSize,
    maxLength,
    vocabSize: config.vocabSize,
    typeVocabSize: config.typeVocabSize,
    norm: 'post',
    embeddingNorm: true,
    pooling,
    pooler: options.pooler,
    layerNormEpsilon: config.layerNormEps,
    activation: 'gelu',
  };
}

/**
 * Copy `weights` into a transformer built from `spec` (= {@link pretrainedTransformerSpec} of
 * their config): embeddings, every block, and the pooler when the spec has one. The head is left
 * as it is.
 */
export function setPretrainedWeights(
  model: tf.LayersModel,
  spec: TransformerSpec,
  weights: BertWeights,
): void {
  const W = spec.width;
  const set = (name: string, values: Array<[Float32Array, number[]]>) => {
    const tensors = values.map(([data, shape]) => tf.tensor(data, shape, 'float32'));
    try {
      model.getLayer(name).setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  };
  const dense = (name: string, d: DenseWeights) =>
    set(name, [
      [d.kernel, [d.kernel.length / d.bias.length, d.bias.length]],
      [d.bias, [d.bias.length]],
    ]);
  const norm = (name: string, n: NormWeights) =>
    set(name, [
      [n.gamma, [W]],
      [n.beta, [W]],
    ]);
  const c = weights.config;
  set('embeddings/word', [[weights.wordEmbeddings, [c.vocabSize, W]]]);
  set('embeddings/position', [
    [weights.positionEmbeddings.subarray(0, spec.maxLength * W), [spec.maxLength, W]],
  ]);
  if (spec.typeVocabSize > 0)
    set('embeddings/token_type', [[weights.tokenTypeEmbeddings, [c.typeVocabSize, W]]]);
  norm('embeddings/norm', weights.embeddingNorm);
  weights.layers.forEach((l, i) => {
    const b = `block${i}`;
    dense(`${b}/attention/query`, l.query);
    dense(`${b}/attention/key`, l.key);
    dense(`${b}/attention/value`, l.value);
    dense(`${b}/attention/output`, l.attentionOutput);
    norm(`${b}/attention/norm`, l.attentionNorm);
    dense(`${b}/mlp/dense1`, l.intermediate);
    dense(`${b}/mlp/dense2`, l.output);
    norm(`${b}/mlp/norm`, l.outputNorm);
  });
  if (spec.pooler) dense('pooler', weights.pooler!);
}

/** What {@link loadPretrainedTransformer} returns. */
export interface PretrainedTransformer {
  model: tf.LayersModel;
  spec: TransformerSpec;
  /** The encoder's configuration and where its weights came from. */
  config: BertConfig;
  source: BertWeights['source'];
}

/**
 * Build entk's transformer classifier from the pretrained encoder in `dir` (config.json and
 * model.safetensors or onnx/model.onnx): the encoder (and pooler) weights imported, a fresh seeded
 * head of `numClasses` logits. Errors as {@link readBertWeights}; InvalidArgumentError for a
 * maxLength beyond the model's positions or `pooler: true` without a pooler in the checkpoint.
 */
export async function loadPretrainedTransformer(
  dir: string,
  options: PretrainedTransformerOptions,
): Promise<PretrainedTransformer> {
  const weights = await readBertWeights(dir, { source: options.source });
  const spec = pretrainedSpecOf(weights, dir, options);
  const model = pretrainedModel(weights, spec, options);
  return { model, spec, config: weights.config, source: weights.source };
}

/**
 * The transformer spec for imported `weights` (read from `dir`): {@link pretrainedTransformerSpec}
 * with the pooler defaulting to whether the checkpoint has one; InvalidArgumentError for
 * `pooler: true` without one.
 */
export function pretrainedSpecOf(
  weights: BertWeights,
  dir: string,
  options: PretrainedSpecOptions,
): TransformerSpec {
  if (options.pooler && !weights.pooler) {
    throw new InvalidArgumentError(
      'pooler',
      true,
      `false: ${weights.source.files.join(', ')} in ${dir} holds no pooler.dense weights`,
    );
  }
  return pretrainedTransformerSpec(weights.config, {
    ...options,
    pooler: options.pooler ?? weights.pooler !== null,
  });
}

/** The classifier of `spec` (from {@link pretrainedSpecOf}) with `weights` imported and a fresh seeded head. */
export function pretrainedModel(
  weights: BertWeights,
  spec: TransformerSpec,
  options: { numClasses: number; seed: number },
): tf.LayersModel {
  const model = buildModel(spec, {
    inputShape: transformerInputShape(spec),
    numClasses: options.numClasses,
    seed: options.seed,
  });
  try {
    setPretrainedWeights(model, spec, weights);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** The name of the layer whose output is the encoder's last hidden state (before pooling). */
export function encoderOutputLayer(spec: TransformerSpec): string {
  return spec.norm === 'pre' ? 'final_norm' : `block${spec.layers - 1}/mlp/norm`;
}

/**
 * The encoder's token states [n, maxLength, width] of a transformer for inputs x [n, 2·maxLength]
 * (token ids, then the mask) — BERT's `last_hidden_state` at the token positions.
 */
export function transformerHiddenStates(
  model: tf.LayersModel,
  spec: TransformerSpec,
  x: tf.Tensor,
): tf.Tensor3D {
  const encoder = tf.model({
    inputs: model.inputs,
    outputs: model.getLayer(encoderOutputLayer(spec)).output,
  });
  return encoder.predict(x) as tf.Tensor3D;
}
