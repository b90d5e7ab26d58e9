/**
 * Model inspection for the eNTK engine: which parameters the Jacobian covers, whether the model is
 * a single chain of layers, and which of its parameterised layers the structured path understands.
 *
 * The structured path needs the model to be a chain (tf.Sequential, nested Sequentials, or a
 * functional model whose layers form one chain) whose *selected* parameterised layers are Dense,
 * ScaledDense (src/model), Conv2D (channelsLast) or Embedding. Every other layer — activations,
 * Scale, pooling, flatten, reshape, dropout (inference mode), and also parameterised layers whose
 * weights are not selected — is applied as a function and differentiated by tfjs autodiff.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import type { NtkParameters } from './types.js';

type Layer = tf.layers.Layer;
type LayerVariable = tf.LayerVariable;

/** A selected parameterised layer the structured path handles. */
export interface ParamLayer {
  kind: 'dense' | 'conv2d' | 'embedding';
  layer: Layer;
  /** Weight (kernel / embeddings) variable and whether it is in the parameter subset. */
  kernel: LayerVariable;
  kernelSelected: boolean;
  /** Bias variable (null without bias) and whether it is in the parameter subset. */
  bias: LayerVariable | null;
  biasSelected: boolean;
  /** Forward multipliers: h = weightScale·(a ⋆ kernel) + biasScale·bias (1 for tfjs layers). */
  weightScale: number;
  biasScale: number;
  /** Fused activation applied after the pre-activation h (null = linear). */
  activation: ((x: tf.Tensor) => tf.Tensor) | null;
  /** Whether that activation acts element-wise (true for linear; false for softmax, unknown ones). */
  elementwiseActivation: boolean;
  /** Conv2D geometry. */
  strides?: [number, number];
  padding?: 'valid' | 'same';
  dilationRate?: [number, number];
}

/** One step of a chain: a selected parameterised layer, or any layer applied as a function. */
export interface ChainStep {
  layer: Layer;
  param: ParamLayer | null;
}

export interface ModelAnalysis {
  /** Shape of one input example and its dtype. */
  inputShape: number[];
  inputDtype: 'float32' | 'int32';
  /** Number of outputs V. */
  numOutputs: number;
  /** Selected layers (with trainable weights in the subset), in model order. */
  selectedLayers: Layer[];
  /** Selected trainable variables, in model order. */
  variables: LayerVariable[];
  /** Total number of selected parameters P. */
  parameterCount: number;
  /** The chain of layers (null when the topology is not a single chain). */
  chain: ChainStep[] | null;
  /** Why the structured path does not apply (empty when it does). */
  unsupported: string[];
}

const PARAMETERISED = new Set(['Dense', 'ScaledDense', 'Conv2D', 'Embedding']);

function describe(layer: Layer): string {
  return `${layer.name} (${layer.getClassName()})`;
}

function isContainer(layer: Layer): layer is tf.LayersModel {
  return layer instanceof tf.LayersModel;
}

/** Every leaf layer (nested models expanded, InputLayers dropped), in model order. */
export function leafLayers(model: tf.LayersModel): Layer[] {
  const out: Layer[] = [];
  for (const layer of model.layers) {
    if (isContainer(layer)) out.push(...leafLayers(layer));
    else if (layer.getClassName() !== 'InputLayer') out.push(layer);
  }
  return out;
}

/** The layers of `model` as one chain, or null (with a reason) when the topology is not a chain. */
function chainOf(model: tf.LayersModel, problems: string[]): Layer[] | null {
  let layers: Layer[];
  if (model instanceof tf.Sequential) {
    layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  } else {
    if (model.inputs.length !== 1 || model.outputs.length !== 1) {
      problems.push(`${model.name}: not a single-input single-output chain`);
      return null;
    }
    const all = model.layers;
    const first = all[0];
    if (first?.getClassName() !== 'InputLayer') {
      problems.push(`${model.name}: topology is not a chain of layers`);
      return null;
    }
    layers = all.slice(1);
    let previous: Layer = first;
    for (const layer of layers) {
      const nodes = layer.inboundNodes;
      const node = nodes.length === 1 ? nodes[0] : undefined;
      if (node?.inboundLayers.length !== 1 || node.inboundLayers[0] !== previous) {
        problems.push(`${model.name}: topology is not a chain of layers (at ${describe(layer)})`);
        return null;
      }
      previous = layer;
    }
    if (model.outputLayers[0] !== previous) {
      problems.push(`${model.name}: the last layer of the chain is not the output`);
      return null;
    }
  }
  const flat: Layer[] = [];
  for (const layer of layers) {
    if (isContainer(layer)) {
      const inner = chainOf(layer, problems);
      if (!inner) return null;
      flat.push(...inner);
    } else {
      flat.push(layer);
    }
  }
  return flat;
}

function sizeOf(v: LayerVariable): number {
  return (v.shape as number[]).reduce((a, b) => a * b, 1);
}

/** The layer's weight variable whose name ends in `/<suffix>` (or equals it). */
function weightNamed(layer: Layer, suffix: string): LayerVariable | null {
  const re = new RegExp(`(^|/)${suffix}(_\\d+)?$`);
  return layer.weights.find((w) => re.test(w.name) || re.test(w.originalName)) ?? null;
}

function activationObject(layer: Layer): { apply(x: tf.Tensor): tf.Tensor; getClassName(): string } | null {
  return (
    (layer as unknown as { activation?: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string } })
      .activation ?? null
  );
}

function activationOf(layer: Layer): ((x: tf.Tensor) => tf.Tensor) | null {
  const act = activationObject(layer);
  if (!act || act.getClassName() === 'linear') return null;
  return (x) => act.apply(x);
}

/** tfjs activation functions (class names) that act element-wise: all but softmax / logSoftmax. */
const ELEMENTWISE_ACTIVATIONS = new Set([
  'elu',
  'hardSigmoid',
  'linear',
  'relu',
  'relu6',
  'selu',
  'sigmoid',
  'softplus',
  'softsign',
  'tanh',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
]);

/** Parameter-free layers that act element-wise at inference (y_p = g(x_p), same shape). */
const ELEMENTWISE_LAYERS = new Set([
  'ReLU',
  'LeakyReLU',
  'ELU',
  'ThresholdedReLU',
  'ElementwiseActivation',
  'Dropout',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
]);

function activationIsElementwise(layer: Layer): boolean {
  const act = activationObject(layer);
  return !act || ELEMENTWISE_ACTIVATIONS.has(act.getClassName());
}

/** Whether a parameter-free layer maps each coordinate on its own at inference. */
export function isElementwiseLayer(layer: Layer): boolean {
  const cls = layer.getClassName();
  if (cls === 'Activation') return activationIsElementwise(layer);
  return ELEMENTWISE_LAYERS.has(cls);
}

/** A layer's 2-D config value (number or [a, b] / [a]) as a pair; `fallback` when absent. */
export function pair(value: unknown, fallback: number): [number, number] {
  if (Array.isArray(value)) return [Number(value[0] ?? fallback), Number(value[1] ?? value[0] ?? fallback)];
  if (typeof value === 'number') return [value, value];
  return [fallback, fallback];
}

/**
 * Describe a selected layer for the structured path, or return a reason why it cannot be.
 * `selected` are the layer's trainable variables in the subset.
 */
function paramLayerOf(layer: Layer, selected: Set<LayerVariable>): ParamLayer | string {
  const cls = layer.getClassName();
  const l = layer as unknown as Record<string, unknown>;
  const base = { layer, weightScale: 1, biasScale: 1 };
  let kernel: LayerVariable | null;
  let bias: LayerVariable | null;
  let out: ParamLayer;
  if (cls === 'Dense') {
    kernel = (l.kernel as LayerVariable | null) ?? null;
    bias = l.useBias ? ((l.bias as LayerVariable | null) ?? null) : null;
    if (!kernel) return `${describe(layer)}: not built`;
    out = {
      ...base,
      kind: 'dense',
      kernel,
      bias,
      kernelSelected: false,
      biasSelected: false,
      activation: activationOf(layer),
      elementwiseActivation: activationIsElementwise(layer),
    };
  } else if (cls === 'ScaledDense') {
    kernel = weightNamed(layer, 'kernel');
    bias = weightNamed(layer, 'bias');
    const weightScale = l.weightScale;
    const biasScale = l.biasScale;
    if (!kernel || typeof weightScale !== 'number' || typeof biasScale !== 'number') {
      return `${describe(layer)}: missing kernel, weightScale or biasScale`;
    }
    out = {
      layer,
      kind: 'dense',
      kernel,
      bias,
      kernelSelected: false,
      biasSelected: false,
      weightScale,
      biasScale,
      activation: activationOf(layer),
      elementwiseActivation: activationIsElementwise(layer),
    };
  } else if (cls === 'Conv2D') {
    kernel = (l.kernel as LayerVariable | null) ?? null;
    bias = l.useBias ? ((l.bias as LayerVariable | null) ?? null) : null;
    if (!kernel) return `${describe(layer)}: not built`;
    if (l.dataFormat !== 'channelsLast') return `${describe(layer)}: dataFormat ${String(l.dataFormat)}`;
    if (l.padding !== 'valid' && l.padding !== 'same')
      return `${describe(layer)}: padding ${String(l.padding)}`;
    if (pair(l.dilationRate, 1).some((d) => d !== 1)) {
      return `${describe(layer)}: dilationRate > 1 (tfjs has no gradient for dilated convolutions)`;
    }
    out = {
      ...base,
      kind: 'conv2d',
      kernel,
      bias,
      kernelSelected: false,
      biasSelected: false,
      activation: activationOf(layer),
      elementwiseActivation: activationIsElementwise(layer),
      strides: pair(l.strides, 1),
      padding: l.padding,
      dilationRate: pair(l.dilationRate, 1),
    };
  } else if (cls === 'Embedding') {
    kernel = (l.embeddings as LayerVariable | null) ?? null;
    if (!kernel) return `${describe(layer)}: not built`;
    bias = null;
    out = {
      ...base,
      kind: 'embedding',
      kernel,
      bias,
      kernelSelected: false,
      biasSelected: false,
      activation: null,
      elementwiseActivation: true,
    };
  } else {
    return describe(layer);
  }
  out.kernelSelected = selected.has(out.kernel);
  out.biasSelected = out.bias != null && selected.has(out.bias);
  const known = [out.kernel, out.bias].filter((v): v is LayerVariable => v != null);
  const stray = [...selected].filter((v) => !known.includes(v));
  if (stray.length > 0) return `${describe(layer)}: unexpected trainable weight ${stray[0]!.name}`;
  return out;
}

/**
 * Analyse `model` for the parameter subset `parameters`.
 * Throws UnsupportedError for models that are not single-input, single-output [batch, V]
 * classifiers, and InvalidArgumentError for unknown or weightless layer names.
 */
export function analyzeModel(model: tf.LayersModel, parameters: NtkParameters = 'all'): ModelAnalysis {
  if (!(model instanceof tf.LayersModel)) {
    throw new InvalidArgumentError('model', model, 'a tf.LayersModel');
  }
  if (model.inputs.length !== 1) {
    throw new UnsupportedError(
      `model ${model.name}: ${model.inputs.length} inputs; the eNTK needs exactly one`,
    );
  }
  if (model.outputs.length !== 1) {
    throw new UnsupportedError(
      `model ${model.name}: ${model.outputs.length} outputs; the eNTK needs exactly one`,
    );
  }
  const outShape = model.outputs[0]!.shape;
  if (outShape.length !== 2 || outShape[1] == null) {
    throw new UnsupportedError(
      `model ${model.name}: output shape [${outShape.map(String).join(', ')}]; the eNTK needs logits of shape [batch, V]`,
    );
  }
  const numOutputs = outShape[1];
  const inShape = model.inputs[0]!.shape.slice(1);
  if (inShape.some((d) => d == null)) {
    throw new UnsupportedError(
      `model ${model.name}: input shape [${inShape.map(String).join(', ')}] has unknown dimensions`,
    );
  }
  const inputShape = inShape as number[];
  const inputDtype = model.inputs[0]!.dtype === 'int32' ? 'int32' : 'float32';

  // Parameter subset.
  const leaves = leafLayers(model);
  const withWeights = leaves.filter((l) => l.trainableWeights.length > 0);
  let selectedLayers: Layer[];
  if (parameters === 'all') {
    selectedLayers = withWeights;
  } else if (parameters === 'head') {
    const last = withWeights[withWeights.length - 1];
    selectedLayers = last ? [last] : [];
  } else if (
    Array.isArray(parameters) &&
    parameters.length > 0 &&
    parameters.every((p) => typeof p === 'string')
  ) {
    const names = new Set(parameters);
    for (const name of names) {
      const layer = leaves.find((l) => l.name === name);
      if (!layer) {
        throw new InvalidArgumentError(
          'parameters',
          name,
          `names of layers of the model (${leaves.map((l) => l.name).join(', ')})`,
        );
      }
      if (layer.trainableWeights.length === 0) {
        throw new InvalidArgumentError('parameters', name, 'a layer with trainable weights');
      }
    }
    selectedLayers = withWeights.filter((l) => names.has(l.name));
  } else {
    throw new InvalidArgumentError(
      'parameters',
      parameters,
      "'all', 'head' or a non-empty list of layer names",
    );
  }
  if (selectedLayers.length === 0) {
    throw new InvalidArgumentError(
      'parameters',
      parameters,
      'a subset containing at least one trainable weight',
    );
  }
  const variables = selectedLayers.flatMap((l) => l.trainableWeights);
  const parameterCount = variables.reduce((s, v) => s + sizeOf(v), 0);

  // Structured support.
  const unsupported: string[] = [];
  const layers = chainOf(model, unsupported);
  let chain: ChainStep[] | null = null;
  if (layers) {
    const selectedSet = new Set(selectedLayers);
    chain = layers.map((layer) => {
      if (!selectedSet.has(layer)) return { layer, param: null };
      if (!PARAMETERISED.has(layer.getClassName())) {
        unsupported.push(describe(layer));
        return { layer, param: null };
      }
      const info = paramLayerOf(layer, new Set(layer.trainableWeights));
      if (typeof info === 'string') {
        unsupported.push(info);
        return { layer, param: null };
      }
      return { layer, param: info };
    });
    if (unsupported.length > 0) chain = null;
  }
  return {
    inputShape,
    inputDtype,
    numOutputs,
    selectedLayers,
    variables,
    parameterCount,
    chain,
    unsupported,
  };
}
