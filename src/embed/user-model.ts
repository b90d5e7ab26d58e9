/**
 * Bring your own model: load a TensorFlow.js *layers* model from disk (`model.json` + its weight
 * shards, e.g. converted from Keras with `tensorflowjs_converter --input_format keras`) and report,
 * layer by layer, whether the eNTK engine's structured path covers it.
 *
 * The structured path (see the module contracts) handles a tf.Sequential stack of
 *   parameterised:   Dense, ScaledDense, Conv2D (fused activations linear / relu / tanh)
 *   parameter-free:  Activation (relu, tanh, linear), ElementwiseActivation (erf, gelu), Scale,
 *                    Flatten, Reshape, MaxPooling2D, AveragePooling2D, Dropout (inference), InputLayer
 * Anything else is listed as outside the structured path: its kernel needs the 'jacobian'
 * implementation (autodiff, slower) or is not supported.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CorruptFileError, DataFormatError, EntkError, InvalidArgumentError, UnsupportedError } from '../errors.js';

/** How one layer relates to the structured eNTK path. */
export interface LayerSupport {
  /** Position in model.layers. */
  index: number;
  name: string;
  className: string;
  /** 'parameterised' / 'parameter-free': on the structured path; 'outside': not on it. */
  role: 'parameterised' | 'parameter-free' | 'outside';
  /** Trainable parameter count of the layer. */
  parameters: number;
  /** Why the layer is outside, or a remark (fused activation, frozen weights...). */
  note?: string;
}

/** What the structured eNTK path can do with a user model. */
export interface ModelSupportReport {
  /** The model.json file. */
  file: string;
  /** 'Sequential' or the functional class name ('Model' / 'Functional'). */
  modelClass: string;
  /** Input shape without the batch dimension. */
  inputShape: number[];
  /** Number of outputs V (last dimension of the output). */
  numOutputs: number;
  /** Trainable parameters in total. */
  parameters: number;
  /** True when every layer is on the structured path (and the model is a Sequential stack). */
  structured: boolean;
  layers: LayerSupport[];
  /** The layers outside the structured path (subset of `layers`). */
  outside: LayerSupport[];
  /** Model-level remarks (non-Sequential graph, output softmax, frozen layers...). */
  notes: string[];
}

const PARAMETERISED = new Set(['Dense', 'ScaledDense', 'Conv2D']);
const PARAMETER_FREE = new Set([
  'Activation',
  'ElementwiseActivation',
  'Scale',
  'Flatten',
  'Reshape',
  'MaxPooling2D',
  'AveragePooling2D',
  'Dropout',
  'InputLayer',
]);
const STRUCTURED_ACTIVATIONS = new Set(['linear', 'relu', 'tanh']);

function activationOf(layer: tf.layers.Layer): string | undefined {
  const config = layer.getConfig() as Record<string, unknown>;
  const a = config.activation;
  return typeof a === 'string' ? a : undefined;
}

function trainableCount(layer: tf.layers.Layer): number {
  return layer.trainableWeights.reduce((s, w) => s + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
}

/** Classify the layers of a loaded model against the structured eNTK path. */
export function structuredSupportReport(model: tf.LayersModel, file = '(in memory)'): ModelSupportReport {
  const notes: string[] = [];
  const isSequential = model instanceof tf.Sequential;
  if (!isSequential) {
    notes.push(
      `the model is a functional ${model.getClassName()} graph, not a tf.Sequential stack: the structured path needs a Sequential chain of layers; use implementation 'jacobian'`,
    );
  }
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    notes.push(`the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; the eNTK engine needs exactly one of each`);
  }
  const layers: LayerSupport[] = model.layers.map((layer, index) => {
    const className = layer.getClassName();
    const parameters = trainableCount(layer);
    const base = { index, name: layer.name, className, parameters };
    if (PARAMETERISED.has(className)) {
      const act = activationOf(layer) ?? 'linear';
      if (!STRUCTURED_ACTIVATIONS.has(act)) {
        return { ...base, role: 'outside' as const, note: `fused activation '${act}' (the structured path handles linear, relu, tanh)` };
      }
      const frozen = !layer.trainable ? '; frozen (trainable=false): its parameters do not enter the eNTK' : '';
      return {
        ...base,
        role: 'parameterised' as const,
        note: act !== 'linear' ? `fused activation '${act}'${frozen}` : frozen ? frozen.slice(2) : undefined,
      };
    }
    if (PARAMETER_FREE.has(className)) {
      if (className === 'Activation') {
        const act = activationOf(layer) ?? '';
        if (!STRUCTURED_ACTIVATIONS.has(act)) {
          return { ...base, role: 'outside' as const, note: `activation '${act}' (the structured path handles relu, tanh, linear; erf/gelu via ElementwiseActivation)` };
        }
      }
      return { ...base, role: 'parameter-free' as const };
    }
    const note =
      parameters > 0
        ? `parameterised layer type not on the structured path (use implementation 'jacobian')`
        : `layer type not on the structured path (use implementation 'jacobian')`;
    return { ...base, role: 'outside' as const, note };
  });
  const last = model.layers[model.layers.length - 1];
  if (last && (activationOf(last) === 'softmax' || (last.getClassName() === 'Activation' && activationOf(last) === 'softmax'))) {
    notes.push(
      `the last layer '${last.name}' applies softmax: the kernel would be of probabilities, while THEORY.md's kernels are of logits — remove the output softmax (the loss applies it)`,
    );
  }
  const frozen = model.layers.filter((l) => !l.trainable && l.weights.length > 0);
  if (frozen.length > 0) notes.push(`frozen layers (trainable=false): ${frozen.map((l) => l.name).join(', ')}`);
  const outShape = model.outputs[0]!.shape;
  const outside = layers.filter((l) => l.role === 'outside');
  return {
    file,
    modelClass: isSequential ? 'Sequential' : model.getClassName(),
    inputShape: model.inputs[0]!.shape.slice(1).map((d) => d ?? -1),
    numOutputs: outShape[outShape.length - 1] ?? -1,
    parameters: layers.reduce((s, l) => s + l.parameters, 0),
    structured: isSequential && model.inputs.length === 1 && model.outputs.length === 1 && outside.length === 0,
    layers,
    outside,
    notes,
  };
}

/** A readable multi-line summary of a support report (for the CLI). */
export function formatSupportReport(report: ModelSupportReport): string {
  const lines = [
    `${report.file}: ${report.modelClass}, input [${report.inputShape.join(', ')}], ${report.numOutputs} outputs, ${report.parameters} trainable parameters`,
    report.structured
      ? 'every layer is on the structured eNTK path'
      : `not fully on the structured eNTK path (${report.outside.length} layer(s) outside): the 'jacobian' implementation is needed`,
  ];
  for (const l of report.layers) {
    const mark = l.role === 'outside' ? 'OUTSIDE' : l.role;
    lines.push(`  ${String(l.index).padStart(3)}  ${l.name} (${l.className}, ${l.parameters} params): ${mark}${l.note ? ` — ${l.note}` : ''}`);
  }
  for (const n of report.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string };
}

function entryBytes(e: WeightEntry): number | undefined {
  const size = e.shape.reduce((a, b) => a * b, 1);
  const q = e.quantization?.dtype;
  if (q) return size * (q === 'uint8' ? 1 : 2);
  if (e.dtype === 'float32' || e.dtype === 'int32') return size * 4;
  if (e.dtype === 'bool') return size;
  return undefined;
}

/**
 * Load a user-supplied tfjs layers model: `target` is a model.json file or a directory holding
 * one. Weight shards are read from the paths in its weightsManifest (relative to model.json) and
 * checked against the declared sizes. Custom layers (ScaledDense, ElementwiseActivation, Scale)
 * must be registered first (importing the entk library does it). Returns the model and its
 * structured-path report; nothing is rejected for being outside the structured path.
 */
export async function loadUserModel(target: string): Promise<{ model: tf.LayersModel; report: ModelSupportReport }> {
  if (typeof target !== 'string' || target === '') {
    throw new InvalidArgumentError('model', target, 'a path to a tfjs layers model.json (or its directory)');
  }
  let file = path.resolve(target);
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat) throw new InvalidArgumentError('model', target, 'an existing model.json file or a directory containing one');
  if (stat.isDirectory()) file = path.join(file, 'model.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    throw new InvalidArgumentError('model', target, 'a directory containing model.json');
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(file, `not valid JSON (${(e as Error).message})`);
  }
  const topology = json.modelTopology as Record<string, unknown> | undefined;
  if (json.format === 'graph-model' || (topology && 'node' in topology)) {
    throw new UnsupportedError(
      `${file}: a tfjs graph model (converted SavedModel / frozen graph) has no layers to differentiate; convert the Keras model with tensorflowjs_converter --input_format keras --output_format tfjs_layers_model`,
    );
  }
  if (!topology || typeof topology !== 'object') {
    throw new DataFormatError(file, 'no "modelTopology": not a tfjs layers model.json');
  }
  const manifest = json.weightsManifest as { paths: string[]; weights: WeightEntry[] }[] | undefined;
  if (!Array.isArray(manifest)) throw new DataFormatError(file, 'no "weightsManifest": not a tfjs layers model.json');
  const weightSpecs: WeightEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    let groupBytes = 0;
    for (const rel of group.paths ?? []) {
      const shard = path.resolve(path.dirname(file), rel);
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(shard);
      } catch {
        throw new CorruptFileError(shard, `weight shard listed in ${path.basename(file)} is missing`);
      }
      buffers.push(bytes);
      groupBytes += bytes.length;
    }
    let expected: number | undefined = 0;
    for (const w of group.weights ?? []) {
      weightSpecs.push(w);
      const b = entryBytes(w);
      expected = expected === undefined || b === undefined ? undefined : expected + b;
    }
    if (expected !== undefined && expected !== groupBytes) {
      throw new CorruptFileError(
        path.resolve(path.dirname(file), group.paths?.[0] ?? ''),
        `weight shards hold ${groupBytes} bytes but the manifest declares ${expected} (truncated or mismatched weights)`,
      );
    }
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: topology,
        weightSpecs: weightSpecs as tf.io.WeightsManifestEntry[],
        weightData,
        format: json.format as string | undefined,
        generatedBy: json.generatedBy as string | undefined,
        convertedBy: json.convertedBy as string | null | undefined,
      }),
    );
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    const unknown = /Unknown layer: (\w+)/.exec(message);
    if (unknown) {
      throw new UnsupportedError(
        `${file}: layer class '${unknown[1]}' is not known to tfjs or entk (custom layers must be registered with tf.serialization.registerClass before loading)`,
      );
    }
    throw new EntkError(`${file}: tfjs could not load the layers model: ${message.split('\n')[0]}`);
  }
  return { model, report: structuredSupportReport(model, file) };
}
