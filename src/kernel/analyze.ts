/**
 * Model inspection for the eNTK engine: which parameters the Jacobian covers, the model's graph of
 * layer calls (nested models expanded, shared layers once per use), which rule differentiates each
 * selected parameterised layer on the structured path, and whether the output is a logit.
 *
 * The structured path runs the graph node by node (docs/theory.md#per-layer-rules): residual connections, merges (Add, Concatenate, Multiply, Average, …), nested models and
 * shared layers are autodiff's business; a selected parameterised layer needs only its inputs and
 * the cotangents at its outputs. Rules exist for Dense / ScaledDense (any input rank), Conv1D,
 * Conv2D, DepthwiseConv2D, SeparableConv2D (channelsLast, valid/same, any strides and dilations —
 * DepthwiseConv2D's as tfjs runs it: none), Embedding, LayerNormalization (trailing axes),
 * BatchNormalization (inference, last axis) and PReLU; any other selected layer is differentiated
 * alone by autodiff ('autodiff', the hybrid). The graph must have one input and one [batch, V]
 * output, every layer call one output tensor, and no Keras mask reaching a layer that reads it
 * (else: the Jacobian path). BatchNormalization over another axis and 'causal' padding are refused.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, UnsupportedError } from '../errors.js';
import type { NtkLogits, NtkParameters } from './types.js';

type Layer = tf.layers.Layer;
type LayerVariable = tf.LayerVariable;

/** How a selected layer's per-example gradients are obtained (see structured.ts). */
export type RuleKind =
  | 'dense'
  | 'conv'
  | 'depthwise'
  | 'separable'
  | 'embedding'
  | 'layernorm'
  | 'batchnorm'
  | 'prelu'
  | 'autodiff';

/** A selected parameterised layer and what its rule needs. */
export interface ParamLayer {
  kind: RuleKind;
  layer: Layer;
  /** The layer's trainable variables (all of them are selected). */
  variables: LayerVariable[];
  /** Why a layer of a class with a rule runs through 'autodiff' (configuration outside the rule). */
  note?: string;
  /** dense / conv / embedding: weight; depthwise: depthwise kernel; separable: depthwise kernel. */
  kernel: LayerVariable | null;
  /** separable: pointwise kernel. */
  pointwise?: LayerVariable | null;
  /** Bias (null without bias). */
  bias: LayerVariable | null;
  /** layernorm / batchnorm: γ and β (null when absent); batchnorm: moving statistics; prelu: α in gamma. */
  gamma?: LayerVariable | null;
  beta?: LayerVariable | null;
  movingMean?: LayerVariable;
  movingVariance?: LayerVariable;
  epsilon?: number;
  /** layernorm: number of trailing axes normalised. */
  axes?: number;
  /** Forward multipliers: h = weightScale·(a ⋆ kernel) + biasScale·bias (1 for tfjs layers). */
  weightScale: number;
  biasScale: number;
  /** Fused activation applied after the pre-activation h (null = linear). */
  activation: ((x: tf.Tensor) => tf.Tensor) | null;
  /** Whether that activation acts element-wise (true for linear; false for softmax, unknown ones). */
  elementwiseActivation: boolean;
  /** Convolution geometry (conv1d as conv2d of height 1). */
  conv1d?: boolean;
  strides?: [number, number];
  padding?: 'valid' | 'same';
  dilationRate?: [number, number];
}

/** One call of a leaf layer in the flattened graph. Tensor 0 is the model input. */
export interface GraphNode {
  layer: Layer;
  /** Tensor ids of the inputs (in call order) and of the output. */
  inputs: number[];
  output: number;
  /** Index of this call among the calls of the same layer (0 for the first). */
  use: number;
  /** The rule of a selected layer (shared by all its calls); null for layers applied as functions. */
  param: ParamLayer | null;
  /** The output call whose probability activation is dropped (option logits: 'pre-activation'). */
  stripActivation?: boolean;
}

export interface ModelGraph {
  nodes: GraphNode[];
  /** Tensor id of the output (the input is tensor 0). */
  output: number;
  /** Number of tensor ids. */
  tensors: number;
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
  /** The graph of layer calls (null when it cannot be run node by node: see `unsupported`). */
  graph: ModelGraph | null;
  /** Why the structured path does not apply (empty when it does). */
  unsupported: string[];
  /** The output layer whose softmax/sigmoid is dropped (logits: 'pre-activation'), else null. */
  strippedOutput: string | null;
  /** The Embedding calls that read the input's values as token ids (checked on every call). */
  tokenIds: TokenIdInput[];
}

/**
 * An Embedding whose ids are input values (reached from the model input through layers that keep
 * values: reshapes, dropouts, linear activations; or entk's TokenInputs 'ids'/'mask' slice): the
 * entries of an example it reads must be integers in [0, inputDim).
 */
export interface TokenIdInput {
  /** The layer, as `name (Embedding)`. */
  layer: string;
  inputDim: number;
  /** The entries [start, end) of a flattened example it reads; null: all of them. */
  entries: [number, number] | null;
}

function describe(layer: Layer): string {
  return `${layer.name} (${layer.getClassName()})`;
}

function isContainer(layer: Layer): layer is tf.LayersModel {
  return layer instanceof tf.LayersModel;
}

/** Every leaf layer (nested models expanded, InputLayers dropped), in model order, once each. */
export function leafLayers(model: tf.LayersModel): Layer[] {
  const out: Layer[] = [];
  for (const layer of model.layers) {
    if (isContainer(layer)) {
      for (const l of leafLayers(layer)) if (!out.includes(l)) out.push(l);
    } else if (layer.getClassName() !== 'InputLayer' && !out.includes(layer)) out.push(layer);
  }
  return out;
}

/**
 * Every weight of the model with its layer, in leaf-layer order (each layer's weights in its own
 * order): unlike model.weights (trainable weights first), the order does not change when layers
 * are frozen or unfrozen.
 */
export function leafWeights(model: tf.LayersModel): Array<{ layer: string; weight: LayerVariable }> {
  return leafLayers(model).flatMap((l) => l.weights.map((weight) => ({ layer: l.name, weight })));
}

interface SymbolicNode {
  outboundLayer: Layer;
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
}

/**
 * Append the calls of `container` applied to tensor `input` to `nodes`; returns the output tensor
 * id, or null (with a reason in `problems`).
 */
function flatten(
  container: tf.LayersModel,
  input: number,
  g: { nodes: GraphNode[]; next: number },
  problems: string[],
): number | null {
  const add = (layer: Layer, inputs: number[]): number | null => {
    if (isContainer(layer)) {
      if (inputs.length !== 1) {
        problems.push(`${layer.name}: a nested model with ${inputs.length} inputs`);
        return null;
      }
      return flatten(layer, inputs[0]!, g, problems);
    }
    const use = g.nodes.filter((n) => n.layer === layer).length;
    g.nodes.push({ layer, inputs, output: g.next, use, param: null });
    return g.next++;
  };
  if (container instanceof tf.Sequential) {
    let current: number | null = input;
    for (const layer of container.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      current = add(layer, [current]);
      if (current === null) return null;
    }
    return current;
  }
  if (container.inputs.length !== 1 || container.outputs.length !== 1) {
    problems.push(`${container.name}: not a single-input single-output model`);
    return null;
  }
  const ids = new Map<number, number>([[container.inputs[0]!.id, input]]);
  const byDepth = (container as unknown as { nodesByDepth: Record<string, SymbolicNode[]> }).nodesByDepth;
  const depths = Object.keys(byDepth)
    .map(Number)
    .sort((a, b) => b - a);
  for (const depth of depths) {
    for (const node of byDepth[String(depth)]!) {
      const layer = node.outboundLayer;
      if (layer.getClassName() === 'InputLayer') continue;
      if (node.outputTensors.length !== 1) {
        problems.push(`${describe(layer)}: a layer call with ${node.outputTensors.length} outputs`);
        return null;
      }
      const inputs = node.inputTensors.map((t) => ids.get(t.id));
      if (inputs.some((i) => i === undefined)) {
        problems.push(`${describe(layer)}: an input the model does not compute from its input`);
        return null;
      }
      const out = add(layer, inputs as number[]);
      if (out === null) return null;
      ids.set(node.outputTensors[0]!.id, out);
    }
  }
  const out = ids.get(container.outputs[0]!.id);
  if (out === undefined) {
    problems.push(`${container.name}: output not reached from the input`);
    return null;
  }
  return out;
}

/** The model's graph of leaf layer calls, or null (with reasons in `problems`). */
export function modelGraph(model: tf.LayersModel, problems: string[] = []): ModelGraph | null {
  const g = { nodes: [] as GraphNode[], next: 1 };
  const output = flatten(model, 0, g, problems);
  if (output === null) return null;
  return { nodes: g.nodes, output, tensors: g.next };
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

/** The class name of a layer's fused or own activation ('linear' without one). */
export function activationName(layer: Layer): string {
  const act = activationObject(layer);
  return act && typeof act.getClassName === 'function' ? act.getClassName() : 'linear';
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

/** Output activations whose values are probabilities, not logits. */
const PROBABILITY_ACTIVATIONS = new Set(['softmax', 'sigmoid']);

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

/** A layer's 1-D config value (number or [a]). */
function single(value: unknown, fallback: number): number {
  if (Array.isArray(value)) return Number(value[0] ?? fallback);
  return typeof value === 'number' ? value : fallback;
}

/** The rank of the layer's (first) input, batch included; null when unknown. */
function inputRank(layer: Layer): number | null {
  const shapes = layer.inboundNodes[0]?.inputShapes as unknown;
  if (!Array.isArray(shapes)) return null;
  return Array.isArray(shapes[0]) ? (shapes[0] as unknown[]).length : shapes.length;
}

/**
 * The dilation a depthwise or separable convolution layer applies when it runs. tfjs 4.22's
 * DepthwiseConv2D.call passes no dilation to the op ("TODO(cais): Add support for dilation"; its
 * computeOutputShape ignores it too), so the model computes the undilated convolution whatever its
 * dilationRate: entk differentiates that function. SeparableConv2D applies its dilation.
 */
export function appliedDilation(layer: Layer): [number, number] {
  if (layer.getClassName() === 'DepthwiseConv2D') return [1, 1];
  return pair((layer as unknown as { dilationRate?: unknown }).dilationRate, 1);
}

/**
 * For assertGradientsTrusted: whether a layer's dilation needs no tfjs gradient — it runs undilated
 * (see appliedDilation); or it is selected and the structured path differentiates it itself (an
 * undilated convolution with a dilated kernel) because its rule is not tfjs autodiff; or it is not
 * selected and comes before every selected layer (model order), so that no gradient flows through it.
 */
export function dilationHandled(
  model: tf.LayersModel,
  rules: Array<{ name: string; rule: string }>,
  structured: boolean,
): (layer: string) => boolean {
  const order = leafLayers(model).map((l) => l.name);
  const undilated = new Set(
    leafLayers(model)
      .filter((l) => appliedDilation(l).every((d) => d === 1))
      .map((l) => l.name),
  );
  const firstSelected = Math.min(...rules.map((r) => order.indexOf(r.name)).filter((i) => i >= 0));
  return (layer) => {
    if (undilated.has(layer)) return true;
    const rule = rules.find((r) => r.name === layer)?.rule;
    if (rule === undefined) return order.indexOf(layer) < firstSelected;
    return structured && rule !== 'autodiff';
  };
}

/** For tests only: names of layers to differentiate by 'autodiff' although they have a rule. */
export const ruleTestHooks = { autodiff: new Set<string>() };

/**
 * The rule for a selected layer: a ParamLayer of the layer's kind, or one of kind 'autodiff' (with
 * a note when the class has a rule but not for this configuration).
 */
function paramLayerOf(layer: Layer): ParamLayer {
  const cls = layer.getClassName();
  const l = layer as unknown as Record<string, unknown>;
  const variables = [...layer.trainableWeights];
  const v = (x: unknown) => (x as LayerVariable | null | undefined) ?? null;
  const base: ParamLayer = {
    kind: 'autodiff',
    layer,
    variables,
    kernel: null,
    bias: null,
    weightScale: 1,
    biasScale: 1,
    activation: activationOf(layer),
    elementwiseActivation: activationIsElementwise(layer),
  };
  const autodiff = (note: string): ParamLayer => ({ ...base, kind: 'autodiff', note });
  if (ruleTestHooks.autodiff.has(layer.name)) return base;
  let out: ParamLayer;
  const convGeometry = (): string | null => {
    if (l.dataFormat !== undefined && l.dataFormat !== 'channelsLast')
      return `dataFormat ${String(l.dataFormat)}`;
    if (l.padding !== 'valid' && l.padding !== 'same') return `padding ${String(l.padding)}`;
    return null;
  };
  if (cls === 'Dense') {
    out = { ...base, kind: 'dense', kernel: v(l.kernel), bias: l.useBias ? v(l.bias) : null };
  } else if (cls === 'ScaledDense') {
    const weightScale = l.weightScale;
    const biasScale = l.biasScale;
    if (typeof weightScale !== 'number' || typeof biasScale !== 'number') {
      return autodiff('missing weightScale or biasScale');
    }
    out = {
      ...base,
      kind: 'dense',
      kernel: weightNamed(layer, 'kernel'),
      bias: weightNamed(layer, 'bias'),
      weightScale,
      biasScale,
    };
  } else if (cls === 'Conv2D' || cls === 'Conv1D') {
    const why = convGeometry();
    if (why) return autodiff(why);
    const conv1d = cls === 'Conv1D';
    out = {
      ...base,
      kind: 'conv',
      kernel: v(l.kernel),
      bias: l.useBias ? v(l.bias) : null,
      conv1d,
      strides: conv1d ? [1, single(l.strides, 1)] : pair(l.strides, 1),
      padding: l.padding as 'valid' | 'same',
      dilationRate: conv1d ? [1, single(l.dilationRate, 1)] : pair(l.dilationRate, 1),
    };
  } else if (cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D') {
    const why = convGeometry();
    if (why) return autodiff(why);
    out = {
      ...base,
      kind: cls === 'DepthwiseConv2D' ? 'depthwise' : 'separable',
      kernel: v(l.depthwiseKernel),
      pointwise: cls === 'SeparableConv2D' ? v(l.pointwiseKernel) : undefined,
      bias: l.useBias ? v(l.bias) : null,
      strides: pair(l.strides, 1),
      padding: l.padding as 'valid' | 'same',
      dilationRate: appliedDilation(layer),
    };
  } else if (cls === 'Embedding') {
    out = { ...base, kind: 'embedding', kernel: v(l.embeddings), activation: null };
  } else if (cls === 'LayerNormalization') {
    const axis = (Array.isArray(l.axis) ? l.axis : [l.axis]) as number[];
    const rank = inputRank(layer);
    const sorted = [...axis].sort((a, b) => a - b);
    // Normalised axes must be the trailing ones (γ, β broadcast over the leading positions).
    if (rank === null || !sorted.every((a, i) => a === rank - sorted.length + i)) {
      return autodiff(`axis [${axis.join(', ')}] (the rule needs the trailing axes)`);
    }
    out = {
      ...base,
      kind: 'layernorm',
      gamma: v(l.gamma),
      beta: v(l.beta),
      epsilon: l.epsilon as number,
      axes: axis.length,
      activation: null,
    };
  } else if (cls === 'BatchNormalization') {
    const rank = inputRank(layer);
    const axis = l.axis as number;
    if (rank === null || !(axis === -1 || axis === rank - 1)) {
      return autodiff(`axis ${String(axis)} (the rule needs the last axis)`);
    }
    out = {
      ...base,
      kind: 'batchnorm',
      gamma: v(l.gamma),
      beta: v(l.beta),
      movingMean: l.movingMean as LayerVariable,
      movingVariance: l.movingVariance as LayerVariable,
      epsilon: l.epsilon as number,
      activation: null,
    };
  } else if (cls === 'PReLU') {
    out = { ...base, kind: 'prelu', gamma: v(l.alpha), activation: null };
  } else {
    return base;
  }
  const known = [out.kernel, out.pointwise, out.bias, out.gamma, out.beta].filter(
    (x): x is LayerVariable => x != null,
  );
  const stray = variables.filter((x) => !known.includes(x));
  if (stray.length > 0) return autodiff(`unexpected trainable weight ${stray[0]!.name}`);
  if (known.some((x) => !variables.includes(x))) return autodiff('some of its weights are not trainable');
  return out;
}

/**
 * Layer configurations neither path can differentiate: a BatchNormalization over another axis than
 * the last (tfjs's own gradient of it fails, and entk's rule and float64 reference normalise the last
 * axis), and 'causal' padding (tfjs 4.22 cannot run a causal Conv1D forward). Throws UnsupportedError
 * naming the layer.
 */
function refuseUnsupportedConfigurations(model: tf.LayersModel, leaves: Layer[]): void {
  for (const layer of leaves) {
    const l = layer as unknown as Record<string, unknown>;
    const cls = layer.getClassName();
    if (cls === 'BatchNormalization') {
      const rank = inputRank(layer);
      const axis = l.axis as number;
      if (rank === null || !(axis === -1 || axis === rank - 1)) {
        throw new UnsupportedError(
          `model ${model.name}: layer ${describe(layer)} normalises axis ${String(axis)} of a rank-${String(rank)} input; entk supports BatchNormalization over the last axis only (axis -1${rank === null ? '' : ` or ${rank - 1}`})`,
        );
      }
    }
    if (l.padding === 'causal') {
      throw new UnsupportedError(
        `model ${model.name}: layer ${describe(layer)} has padding 'causal', which tfjs cannot run; use 'valid' after left zero-padding (ZeroPadding1D) or 'same'`,
      );
    }
  }
}

/**
 * tfjs 4.22 layers whose call reads the Keras mask of its input (kwargs.mask): the recurrent
 * layers (RNN.call, SimpleRNN/GRU/LSTM/ConvRNN2D) skip masked time steps, Softmax gives them −1e9,
 * and the wrappers pass it to the layer they wrap. Every other built-in layer ignores it.
 */
const MASK_READERS = new Set([
  'RNN',
  'SimpleRNN',
  'GRU',
  'LSTM',
  'ConvRNN2D',
  'ConvLSTM2D',
  'Softmax',
  'Bidirectional',
  'TimeDistributed',
]);

/** tfjs merge layers: each output value combines (or, Concatenate, passes on) its inputs' values. */
const MERGE_LAYERS = new Set([
  'Add',
  'Subtract',
  'Multiply',
  'Average',
  'Maximum',
  'Minimum',
  'Concatenate',
  'Dot',
]);

/** tfjs layers that override computeMask only to pass on or combine their inputs' masks. */
const MASK_PASSERS = new Set([...MASK_READERS, ...MERGE_LAYERS]);

/** Whether a layer can create a mask: Embedding(maskZero), Masking, or a custom computeMask. */
function createsMask(layer: Layer): boolean {
  if (!layer.supportsMasking || MASK_PASSERS.has(layer.getClassName())) return false;
  return layer.computeMask !== tf.layers.Layer.prototype.computeMask;
}

/**
 * Why the structured path cannot run `graph`: a mask created by a layer (Embedding with maskZero,
 * Masking, …) reaches a layer that uses it. entk runs each layer call on tensors (layer.apply)
 * without masks, while model.apply / predict propagate them; so any layer reachable from a mask
 * creator is taken as masked (conservatively: tfjs 4.22 even carries masks through layers that do
 * not support masking).
 */
function maskProblems(graph: ModelGraph): string[] {
  const source: Array<Layer | null> = new Array(graph.tensors).fill(null);
  const problems: string[] = [];
  for (const node of graph.nodes) {
    const from = node.inputs.map((i) => source[i]).find((s) => s != null) ?? null;
    if (from && MASK_READERS.has(node.layer.getClassName())) {
      problems.push(
        `${describe(node.layer)} uses the mask of ${describe(from)} (entk's layer-by-layer run has no masks)`,
      );
    }
    source[node.output] = from ?? (createsMask(node.layer) ? node.layer : null);
  }
  return problems;
}

/** Parameter-free layers whose output has their input's values at inference (in another shape). */
const VALUE_PRESERVING_LAYERS = new Set([
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'Reshape',
  'Flatten',
  'Permute',
]);

function preservesValues(layer: Layer): boolean {
  const cls = layer.getClassName();
  if (cls === 'Activation') return activationName(layer) === 'linear';
  return VALUE_PRESERVING_LAYERS.has(cls);
}

/** The probability function a layer applies ('softmax' / 'sigmoid'), else null. */
function probabilityOf(layer: Layer): string | null {
  if (layer.getClassName() === 'Softmax') return 'softmax';
  const act = activationName(layer);
  return PROBABILITY_ACTIVATIONS.has(act) ? act : null;
}

function refuseProbabilities(model: tf.LayersModel, layer: Layer, after: Layer[] = []): never {
  const act = probabilityOf(layer) ?? activationName(layer);
  const where =
    after.length === 0
      ? `the output layer ${describe(layer)} applies ${act}`
      : `layer ${describe(layer)} applies ${act} and the layers after it (${after.map(describe).join(', ')}) keep its values`;
  throw new UnsupportedError(
    `model ${model.name}: ${where}, so the model outputs probabilities and the eNTK would be the kernel of probabilities, not of logits; pass logits: 'pre-activation' (CLI --logits pre-activation) for the kernel of the logits before the ${act}`,
  );
}

/**
 * A softmax/sigmoid whose values reach the output through a merge that keeps them probabilities (see
 * probabilityCall: a Concatenate of one, an average or product of several): the outputs are not
 * logits, and there is no one output activation for logits 'pre-activation' to drop. Refused
 * whatever the logits option.
 */
function refuseMergedProbabilities(model: tf.LayersModel, layer: Layer, after: Layer[]): never {
  const act = probabilityOf(layer)!;
  const merge = after.find((l) => MERGE_LAYERS.has(l.getClassName()))!;
  throw new UnsupportedError(
    `model ${model.name}: layer ${describe(layer)} applies ${act} and the layers after it (${after.map(describe).join(', ')}) compute the output from its values through the merge ${describe(merge)}, so the outputs are not logits and the eNTK would not be a kernel of logits; logits 'pre-activation' (CLI --logits pre-activation) drops a softmax/sigmoid only when the layers after it keep its values (dropouts, reshapes, linear activations): pass a model whose output is the logits`,
  );
}

/** Whether the layers after an output's softmax/sigmoid (see probabilityCall) include a merge. */
function merged(after: Layer[]): boolean {
  return after.some((l) => MERGE_LAYERS.has(l.getClassName()));
}

/**
 * The call that applies the output's softmax/sigmoid: walking back from the output through
 * value-preserving single-input layers (dropouts, reshapes, linear activations) and merges to the
 * first call that changes values on each branch; the first of those that applies softmax/sigmoid,
 * with the calls after it; else null. A Concatenate passes on each input's values, so one input
 * carrying probabilities makes some outputs probabilities; an arithmetic merge (Add, Multiply,
 * Average, Dot, …) only when every input carries them (an average of softmax heads) — a gate times
 * logits (GLU), a softmax-weighted mix of expert logits or logits plus anything are not
 * probabilities, and their outputs are the model's own.
 */
function probabilityCall(graph: ModelGraph): { node: GraphNode; after: Layer[] } | null {
  type Found = { node: GraphNode; after: Layer[] } | null;
  const memo = new Map<number, Found>();
  const visit = (t: number, after: Layer[]): Found => {
    if (memo.has(t)) return memo.get(t)!;
    memo.set(t, null);
    const node = graph.nodes.find((n) => n.output === t);
    let found: Found = null;
    if (!node) found = null;
    else if (probabilityOf(node.layer)) found = { node, after };
    else if (node.inputs.length === 1 && preservesValues(node.layer))
      found = visit(node.inputs[0]!, [node.layer, ...after]);
    else if (MERGE_LAYERS.has(node.layer.getClassName())) {
      const inputs = node.inputs.map((input) => visit(input, [node.layer, ...after]));
      found = mergedProbability(node.layer, inputs);
    }
    memo.set(t, found);
    return found;
  };
  return visit(graph.output, []);
}

/** A merge's result from its inputs' (see probabilityCall): Concatenate any, other merges all. */
function mergedProbability<F>(merge: Layer, inputs: Array<F | null>): F | null {
  if (merge.getClassName() === 'Concatenate') return inputs.find((f) => f !== null) ?? null;
  return inputs.every((f) => f !== null) ? inputs[0]! : null;
}

/** The same walk on the model's own layers (when entk has no graph of it). */
function probabilityLayer(model: tf.LayersModel): { layer: Layer; after: Layer[] } | null {
  type Found = { layer: Layer; after: Layer[] } | null;
  const memo = new Map<Layer, Found>();
  const visit = (layer: Layer | undefined, after: Layer[]): Found => {
    if (!layer) return null;
    if (memo.has(layer)) return memo.get(layer)!;
    memo.set(layer, null);
    let found: Found = null;
    const inbound: Array<{ inboundLayers: Layer[] }> = layer.inboundNodes;
    const from = inbound.length === 1 ? inbound[0]!.inboundLayers : null;
    if (isContainer(layer)) found = visit(layer.outputLayers[0], after);
    else if (probabilityOf(layer)) found = { layer, after };
    else if (from?.length === 1 && preservesValues(layer)) found = visit(from[0], [layer, ...after]);
    else if (from && MERGE_LAYERS.has(layer.getClassName())) {
      found = mergedProbability(
        layer,
        from.map((l) => visit(l, [layer, ...after])),
      );
    }
    memo.set(layer, found);
    return found;
  };
  return visit(model.outputLayers[0], []);
}

/**
 * Logits 'pre-activation': drop the softmax/sigmoid of `node`. A parameter-free Softmax or
 * Activation call is removed from the graph (its consumers read its input); a layer's fused
 * activation is skipped when it runs (stripActivation).
 */
function stripProbabilities(graph: ModelGraph, node: GraphNode): void {
  const cls = node.layer.getClassName();
  if (cls !== 'Softmax' && cls !== 'Activation') {
    node.stripActivation = true;
    return;
  }
  const from = node.inputs[0]!;
  graph.nodes.splice(graph.nodes.indexOf(node), 1);
  for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === node.output ? from : i));
  if (graph.output === node.output) graph.output = from;
}

/**
 * Which example entries a TokenInputs slice of the model input passes on (entk transformers: ids
 * then mask, src/model/transformer-layers.ts); null for its generated parts or another layer.
 */
function tokenInputsEntries(layer: Layer): [number, number] | null {
  if (layer.getClassName() !== 'TokenInputs') return null;
  const { part, length } = layer as unknown as { part: string; length: number };
  if (part === 'ids') return [0, length];
  if (part === 'mask') return [length, 2 * length];
  return null;
}

function tokenIdInput(layer: Layer, entries: [number, number] | null): TokenIdInput {
  return { layer: describe(layer), inputDim: (layer as unknown as { inputDim: number }).inputDim, entries };
}

/** The inputs of `model` its Embeddings read as token ids (see engine.ts checkTokenIds). */
export function modelTokenIds(model: tf.LayersModel): TokenIdInput[] {
  const graph = modelGraph(model, []);
  return graph ? graphTokenIds(graph) : symbolicTokenIds(model);
}

/**
 * The Embedding calls of `graph` whose ids are model input values (see TokenIdInput): walking back
 * from each one's input through value-keeping single-input calls to the model input (tensor 0).
 */
function graphTokenIds(graph: ModelGraph): TokenIdInput[] {
  const out: TokenIdInput[] = [];
  for (const embedding of graph.nodes) {
    if (embedding.layer.getClassName() !== 'Embedding') continue;
    let t = embedding.inputs[0]!;
    let entries: [number, number] | null = null;
    while (t !== 0) {
      const node = graph.nodes.find((n) => n.output === t);
      if (node?.inputs.length !== 1) break;
      entries = node.inputs[0] === 0 ? tokenInputsEntries(node.layer) : null;
      if (entries) t = 0;
      else if (preservesValues(node.layer)) t = node.inputs[0]!;
      else break;
    }
    if (t === 0) out.push(tokenIdInput(embedding.layer, entries));
  }
  return out;
}

/** The same walk on the model's own (outermost) layer calls, when entk has no graph of it. */
function symbolicTokenIds(model: tf.LayersModel): TokenIdInput[] {
  const input = model.inputs[0]!;
  const out: TokenIdInput[] = [];
  for (const layer of model.layers) {
    const nested = isContainer(layer) && layer.inputs.length === 1;
    if (layer.getClassName() !== 'Embedding' && !nested) continue;
    for (const call of layer.inboundNodes as unknown as SymbolicNode[]) {
      let t: tf.SymbolicTensor | undefined = call.inputTensors[0];
      let entries: [number, number] | null = null;
      while (t && t.id !== input.id) {
        const source = t.sourceLayer.inboundNodes[t.nodeIndex] as unknown as SymbolicNode | undefined;
        const from = source?.inputTensors.length === 1 ? source.inputTensors[0] : undefined;
        entries = from?.id === input.id ? tokenInputsEntries(t.sourceLayer) : null;
        t = entries || preservesValues(t.sourceLayer) ? from : undefined;
      }
      if (!t) continue;
      // A nested single-input model fed the whole input (values kept): its own Embeddings on it.
      if (nested) {
        if (entries === null) out.push(...symbolicTokenIds(layer as tf.LayersModel));
      } else out.push(tokenIdInput(layer, entries));
    }
  }
  return out;
}

/** Options of {@link analyzeModel}. */
export interface AnalyzeOptions {
  /** See NtkOptions.logits. */
  logits?: NtkLogits;
}

/**
 * Analyse `model` for the parameter subset `parameters`.
 * Throws UnsupportedError for models that are not single-input, single-output [batch, V]
 * classifiers or whose output is a softmax/sigmoid (unless options.logits is 'pre-activation'),
 * and InvalidArgumentError for unknown or weightless layer names.
 */
export function analyzeModel(
  model: tf.LayersModel,
  parameters: NtkParameters = 'all',
  options: AnalyzeOptions = {},
): ModelAnalysis {
  if (!(model instanceof tf.LayersModel)) {
    throw new InvalidArgumentError('model', model, 'a tf.LayersModel');
  }
  const logits = options.logits ?? 'output';
  if (logits !== 'output' && logits !== 'pre-activation') {
    throw new InvalidArgumentError('logits', logits, "'output' or 'pre-activation'");
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
    // A name ending in '/' is a prefix: every layer with weights whose name starts with it
    // (`block1/` = the last block of entk's 2-block transformer).
    const names = new Set<string>();
    for (const name of new Set(parameters)) {
      if (name.endsWith('/')) {
        const matched = withWeights.filter((l) => l.name.startsWith(name));
        if (matched.length === 0) {
          throw new InvalidArgumentError(
            'parameters',
            name,
            `a prefix of the names of layers with trainable weights (${withWeights.map((l) => l.name).join(', ')})`,
          );
        }
        for (const l of matched) names.add(l.name);
        continue;
      }
      const layer = leaves.find((l) => l.name === name);
      if (!layer) {
        throw new InvalidArgumentError(
          'parameters',
          name,
          `names of layers of the model (${leaves.map((l) => l.name).join(', ')}), or a name prefix ending in '/'`,
        );
      }
      if (layer.trainableWeights.length === 0) {
        throw new InvalidArgumentError('parameters', name, 'a layer with trainable weights');
      }
      names.add(name);
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

  refuseUnsupportedConfigurations(model, leaves);
  const unsupported: string[] = [];
  let graph = modelGraph(model, unsupported);
  let strippedOutput: string | null = null;
  const tokenIds = graph ? graphTokenIds(graph) : symbolicTokenIds(model);
  if (graph) {
    const rules = new Map(selectedLayers.map((l) => [l, paramLayerOf(l)]));
    for (const node of graph.nodes) node.param = rules.get(node.layer) ?? null;
    // Output check: the kernel is of logits, never of probabilities.
    const found = probabilityCall(graph);
    if (found) {
      if (merged(found.after)) refuseMergedProbabilities(model, found.node.layer, found.after);
      if (logits === 'output') refuseProbabilities(model, found.node.layer, found.after);
      strippedOutput = describe(found.node.layer);
      stripProbabilities(graph, found.node);
    }
    // Masks: the graph cannot be run call by call (structured path, float64 reference, logits
    // 'pre-activation'); model.apply (the Jacobian path) propagates them.
    const masks = maskProblems(graph);
    if (masks.length > 0) {
      unsupported.push(...masks);
      graph = null;
    }
  } else {
    // (Without a graph, logits 'pre-activation' is refused by empiricalNtkFn.)
    const found = probabilityLayer(model);
    if (found && merged(found.after)) refuseMergedProbabilities(model, found.layer, found.after);
    if (found && logits === 'output') refuseProbabilities(model, found.layer, found.after);
  }
  return {
    inputShape,
    inputDtype,
    numOutputs,
    selectedLayers,
    variables,
    parameterCount,
    graph,
    unsupported,
    strippedOutput,
    tokenIds,
  };
}
