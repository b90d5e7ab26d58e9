/**
 * Models: presets registry, seeded construction, custom layers, and standard-format save/load.
 * See src/model/layers.ts for the layer contract the eNTK engine relies on.
 */

export type {
  PretrainedSpecOptions,
  PretrainedTransformer,
  PretrainedTransformerOptions,
} from './bert-import.js';
export {
  DEFAULT_PRETRAINED_MAX_LENGTH,
  encoderOutputLayer,
  loadPretrainedTransformer,
  pretrainedModel,
  pretrainedSpecOf,
  pretrainedTransformerSpec,
  setPretrainedWeights,
  transformerHiddenStates,
} from './bert-import.js';
export type {
  BertConfig,
  BertLayerWeights,
  BertWeightSource,
  BertWeights,
  DenseWeights,
  NormWeights,
  ReadBertWeightsOptions,
} from './bert-weights.js';
export {
  BERT_WEIGHT_FILES,
  BERT_WEIGHT_SOURCES,
  bertParameterNames,
  canonicalBertName,
  findBertWeightFile,
  readBertConfig,
  readBertWeights,
} from './bert-weights.js';
export type { BuildModelOptions } from './build.js';
export { buildModel, countParameters, squareImageShape } from './build.js';
export { disposeModel, fileSystemHandler, loadModel, MODEL_JSON, saveModel, WEIGHTS_BIN } from './io.js';
export type { ElementwiseActivationArgs, ElementwiseFunction, ScaleArgs, ScaledDenseArgs } from './layers.js';
export {
  applyElementwise,
  ELEMENTWISE_FUNCTIONS,
  ElementwiseActivation,
  Scale,
  ScaledDense,
} from './layers.js';
export type {
  ActivationName,
  CnnSpec,
  LinearSpec,
  MlpSpec,
  ModelSpec,
  Parameterization,
  TransformerSpec,
} from './spec.js';
export {
  ACTIVATIONS,
  formatPath,
  MODEL_PRESETS,
  modelSpecSchema,
  PARAMETERIZATIONS,
  presetNameOf,
  resolveModelSpec,
  TRANSFORMER_NORMS,
  TRANSFORMER_POOLINGS,
  valueAt,
  zodToArgumentError,
} from './spec.js';
export type { TransformerBuildOptions } from './transformer.js';
export { buildTransformer, transformerInputShape, transformerParameterCount } from './transformer.js';
export type {
  AttentionCoreArgs,
  SequencePoolingArgs,
  SequencePoolingMode,
  TokenInputPart,
  TokenInputsArgs,
} from './transformer-layers.js';
export {
  ATTENTION_MASK_BIAS,
  AttentionCore,
  attentionCore,
  attentionProbabilities,
  SEQUENCE_POOLINGS,
  SequencePooling,
  TOKEN_INPUT_PARTS,
  TokenInputs,
} from './transformer-layers.js';
