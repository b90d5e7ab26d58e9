/**
 * Bring your own model: load a TensorFlow.js *layers* model from disk (`model.json` + its weight
 * shards, e.g. converted from Keras with `tensorflowjs_converter --input_format keras`) and report,
 * layer by layer, whether the eNTK engine's structured path covers it.
 *
 * The rules mirror the engine (src/kernel/analyze.ts): the model must have one input and one
 * [batch, V] output; the structured path needs the layers to form one chain (tf.Sequential,
 * nested Sequentials, or a functional model whose layers form a chain) whose parameterised layers
 * are Dense, ScaledDense, Conv2D (channelsLast, 'valid'/'same' padding) or Embedding (fused
 * activations allowed). Layers without trainable weights (activations of any kind, Scale,
 * pooling, flatten, reshape, dropout, frozen layers) are applied as functions and differentiated
 * by autodiff. Any other layer with trainable weights, or a non-chain topology, needs the
 * 'jacobian' implementation (autodiff over all parameters, slower).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CorruptFileError, EntkError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { analyzeModel, leafLayers } from '../kernel/index.js';
import { countParameters, loadModel } from '../model/index.js';

/** How one layer relates to the structured eNTK path. */
export interface LayerSupport {
  /** Position among the model's leaf layers (nested models expanded, InputLayer skipped). */
  index: number;
  name: string;
  className: string;
  /**
   * 'parameterised': a trainable layer the structured path handles; 'parameter-free': applied as
   * a function (no trainable weights, or frozen); 'outside': trainable but not on the structured path.
   */
  role: 'parameterised' | 'parameter-free' | 'outside';
  /** Trainable parameter count of the layer. */
  parameters: number;
  /** Why the layer is outside, or a remark (fused activation, frozen weights...). */
  note?: string;
}

/** What the eNTK engine can do with a user model. */
export interface ModelSupportReport {
  /** The model.json file. */
  file: string;
  /** 'Sequential' or the functional class name. */
  modelClass: string;
  /** Input shape without the batch dimension (-1 for unknown dimensions). */
  inputShape: number[];
  /** Number of outputs V (last dimension of the output). */
  numOutputs: number;
  /** Trainable parameters in total. */
  parameters: number;
  /** False when no eNTK can be computed at all (several inputs/outputs, output not [batch, V]). */
  supported: boolean;
  /** True when the structured path covers the whole model (implementation 'structured' / 'auto'). */
  structured: boolean;
  layers: LayerSupport[];
  /** The trainable layers outside the structured path (subset of `layers`). */
  outside: LayerSupport[];
  /** Model-level remarks (unsupported shapes, non-chain topology, output softmax, frozen layers). */
  notes: string[];
  /**
   * The eNTK engine's own verdict (src/kernel `analyzeModel(model, 'all').unsupported`, the same list
   * a kernel result reports as `unsupportedLayers`): "name (ClassName)[: reason]" per layer, or a
   * topology problem. Empty exactly when `structured` is true (for a supported model).
   */
  unsupported: string[];
}

const PARAMETERISED = new Set(['Dense', 'ScaledDense', 'Conv2D', 'Embedding']);

/** The name of a layer's fused activation from its config ('linear', 'relu', ...), if it has one. */
function activationOf(layer: tf.layers.Layer): string | undefined {
  const config = layer.getConfig() as Record<string, unknown>;
  const a = config.activation;
  return typeof a === 'string' ? a : undefined;
}

/** Null when the model's layers form one chain, else the reason. */
function chainProblem(model: tf.LayersModel): string | null {
  if (model instanceof tf.Sequential) {
    for (const layer of model.layers) {
      if (layer instanceof tf.LayersModel) {
        const inner = chainProblem(layer);
        if (inner) return inner;
      }
    }
    return null;
  }
  const all = model.layers;
  if (all[0]?.getClassName() !== 'InputLayer') return `${model.name}: topology is not a chain of layers`;
  let previous = all[0]!;
  for (const layer of all.slice(1)) {
    const nodes = layer.inboundNodes;
    if (
      nodes.length !== 1 ||
      nodes[0]!.inboundLayers.length !== 1 ||
      nodes[0]!.inboundLayers[0] !== previous
    ) {
      return `${model.name}: topology is not a chain of layers (at ${layer.name}, ${layer.getClassName()})`;
    }
    if (layer instanceof tf.LayersModel) {
      const inner = chainProblem(layer);
      if (inner) return inner;
    }
    previous = layer;
  }
  return model.outputLayers[0] === previous
    ? null
    : `${model.name}: the last layer of the chain is not the output`;
}

function classify(layer: tf.layers.Layer, index: number): LayerSupport {
  const className = layer.getClassName();
  const parameters = countParameters(layer);
  const base = { index, name: layer.name, className, parameters };
  const act = activationOf(layer);
  const fused = act && act !== 'linear' ? `fused activation '${act}'` : undefined;
  if (parameters === 0) {
    const frozen =
      layer.weights.length > 0 ? 'frozen (trainable=false): applied as a fixed function' : undefined;
    return { ...base, role: 'parameter-free', note: frozen };
  }
  if (!PARAMETERISED.has(className)) {
    return {
      ...base,
      role: 'outside',
      note: "trainable layer type not on the structured path (needs implementation 'jacobian')",
    };
  }
  if (className === 'Conv2D') {
    const c = layer.getConfig() as Record<string, unknown>;
    if (c.dataFormat !== undefined && c.dataFormat !== 'channelsLast') {
      return {
        ...base,
        role: 'outside',
        note: `dataFormat ${String(c.dataFormat)} (structured Conv2D needs channelsLast)`,
      };
    }
    if (c.padding !== 'valid' && c.padding !== 'same') {
      return {
        ...base,
        role: 'outside',
        note: `padding ${String(c.padding)} (structured Conv2D needs valid or same)`,
      };
    }
  }
  return { ...base, role: 'parameterised', note: fused };
}

/** Classify the layers of a loaded model against the eNTK engine's structured path. */
export function structuredSupportReport(model: tf.LayersModel, file = '(in memory)'): ModelSupportReport {
  const notes: string[] = [];
  let supported = true;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    supported = false;
    notes.push(
      `unsupported: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; the eNTK needs exactly one of each`,
    );
  }
  const outShape = model.outputs[0]!.shape;
  if (outShape.length !== 2 || outShape[1] == null) {
    supported = false;
    notes.push(
      `unsupported: output shape [${outShape.join(', ')}]; the eNTK needs logits of shape [batch, V]`,
    );
  }
  const chain = supported ? chainProblem(model) : null;
  if (chain) notes.push(`${chain}: the structured path needs a chain; implementation 'jacobian' is used`);
  const leaves = leafLayers(model);
  const layers = leaves.map(classify);
  const lastLayer = leaves.at(-1);
  if (lastLayer && activationOf(lastLayer) === 'softmax') {
    notes.push(
      `the last layer '${lastLayer.name}' applies softmax: the kernel would be of probabilities, while entk's kernels are of logits (docs/theory.md#notation) — remove the output softmax (the loss applies it)`,
    );
  }
  const frozen = layers.filter((l) => l.note?.startsWith('frozen'));
  if (frozen.length > 0) {
    notes.push(`frozen layers (not in the eNTK's parameters): ${frozen.map((l) => l.name).join(', ')}`);
  }
  // One source of truth: the engine's analysis decides what is outside the structured path (it also
  // knows rules this file does not repeat, e.g. dilated Conv2D). The local rules above only fill in
  // per-layer roles where the engine stops early (a non-chain topology).
  let unsupported: string[] = [];
  if (supported) {
    try {
      unsupported = analyzeModel(model, 'all').unsupported;
    } catch (e) {
      if (!(e instanceof EntkError)) throw e;
      supported = false;
      notes.push(`unsupported: ${e.message}`);
    }
  }
  for (const entry of unsupported) {
    const layer = layers.find((l) => entry.startsWith(`${l.name} (${l.className})`));
    if (!layer) continue;
    const reason = entry.slice(`${layer.name} (${layer.className})`.length).replace(/^:\s*/, '');
    layer.role = 'outside';
    if (reason !== '') layer.note = reason;
    else layer.note ??= "trainable layer type not on the structured path (needs implementation 'jacobian')";
  }
  const outside = layers.filter((l) => l.role === 'outside');
  return {
    file,
    modelClass: model instanceof tf.Sequential ? 'Sequential' : model.getClassName(),
    inputShape: model.inputs[0]!.shape.slice(1).map((d) => d ?? -1),
    numOutputs: outShape[outShape.length - 1] ?? -1,
    parameters: layers.reduce((s, l) => s + l.parameters, 0),
    supported,
    structured: supported && chain === null && outside.length === 0 && unsupported.length === 0,
    layers,
    outside,
    notes,
    unsupported,
  };
}

/** A readable multi-line summary of a support report (for the CLI). */
export function formatSupportReport(report: ModelSupportReport): string {
  const lines = [
    `${report.file}: ${report.modelClass}, input [${report.inputShape.join(', ')}], ${report.numOutputs} outputs, ${report.parameters} trainable parameters`,
    !report.supported
      ? 'no eNTK can be computed for this model (see the notes)'
      : report.structured
        ? 'every layer is on the structured eNTK path'
        : `not fully on the structured eNTK path (${report.outside.length} trainable layer(s) outside): implementation 'jacobian' is needed`,
  ];
  for (const l of report.layers) {
    const mark = l.role === 'outside' ? 'OUTSIDE' : l.role;
    lines.push(
      `  ${String(l.index).padStart(3)}  ${l.name} (${l.className}, ${l.parameters} params): ${mark}${l.note ? ` — ${l.note}` : ''}`,
    );
  }
  for (const n of report.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

/**
 * What keeps a model off the structured eNTK path, one line each: every trainable layer outside it
 * ("name (ClassName): why"), then model-level problems (non-chain topology, unsupported shapes).
 * Empty when the structured path covers the model.
 */
export function unsupportedLines(report: ModelSupportReport): string[] {
  const lines = report.outside.map(
    (l) => `${l.name} (${l.className}): ${l.note ?? 'not on the structured path'}`,
  );
  const named = new Set(report.outside.map((l) => `${l.name} (${l.className})`));
  for (const entry of report.unsupported) {
    if (![...named].some((n) => entry.startsWith(n))) lines.push(entry);
  }
  for (const note of report.notes) {
    if (note.startsWith('unsupported:') && !lines.includes(note)) lines.push(note);
  }
  return lines;
}

/**
 * Load a user-supplied tfjs layers model: `target` is a model.json file or a directory holding
 * one (weight shards resolved relative to it and size-checked by src/model's loader). entk's custom
 * layers (ScaledDense, ElementwiseActivation, Scale) are registered by src/model. Returns the model
 * and its structured-path report; nothing is rejected for being outside the structured path.
 * Errors: a graph model (converted SavedModel) → UnsupportedError with the converter command; an
 * unknown layer class → UnsupportedError naming it; missing/truncated weights → CorruptFileError.
 */
export async function loadUserModel(
  target: string,
): Promise<{ model: tf.LayersModel; report: ModelSupportReport }> {
  if (typeof target !== 'string' || target === '') {
    throw new InvalidArgumentError('model', target, 'a path to a tfjs layers model.json (or its directory)');
  }
  let file = path.resolve(target);
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat)
    throw new InvalidArgumentError(
      'model',
      target,
      'an existing model.json file or a directory containing one',
    );
  if (stat.isDirectory()) file = path.join(file, 'model.json');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) {
      throw new InvalidArgumentError('model', target, 'a directory containing model.json (not found)');
    }
    throw new CorruptFileError(file, `not valid JSON (${(e as Error).message})`);
  }
  const topology = json?.modelTopology as Record<string, unknown> | undefined;
  if (json?.format === 'graph-model' || (topology && typeof topology === 'object' && 'node' in topology)) {
    throw new UnsupportedError(
      `${file}: a tfjs graph model (converted SavedModel / frozen graph) has no layers to differentiate; convert the Keras model with tensorflowjs_converter --input_format keras --output_format tfjs_layers_model`,
    );
  }
  const model = await loadModel(file); // weight paths stay inside the directory, sizes checked
  return { model, report: structuredSupportReport(model, file) };
}
