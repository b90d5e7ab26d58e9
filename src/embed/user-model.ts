/**
 * Bring your own model: load a TensorFlow.js *layers* model from disk (`model.json` + its weight
 * shards, e.g. converted from Keras with `tensorflowjs_converter --input_format keras`) and report,
 * layer by layer, whether the eNTK engine's structured path covers it.
 *
 * The verdict is the engine's (src/kernel/analyze.ts, structured.ts): the model must have one
 * input and one [batch, V] output; the structured path runs any graph of single-output layer
 * calls (residuals, merges, nested models, shared layers) and reports, per trainable layer, the
 * rule that differentiates it ('dense-factored', 'conv2d-explicit', 'layernorm', …, or 'autodiff'
 * for a layer without a rule, differentiated alone while the rest stays structured). Layers
 * without trainable weights (and frozen ones) are applied as functions. Only a graph entk cannot
 * run node by node needs the 'jacobian' implementation.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CorruptFileError, EntkError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { analyzeModel, leafLayers, type NtkLayerRule, planStructured } from '../kernel/index.js';
import { countParameters, loadModel } from '../model/index.js';

/** How one layer relates to the structured eNTK path. */
export interface LayerSupport {
  /** Position among the model's leaf layers (nested models expanded, InputLayer skipped). */
  index: number;
  name: string;
  className: string;
  /**
   * 'parameterised': a trainable layer the structured path handles (its rule in `note`);
   * 'parameter-free': applied as a function (no trainable weights, or frozen); 'outside': trainable
   * but the model's graph cannot be run by the structured path.
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
  /** Model-level remarks (unsupported shapes, a graph the structured path cannot run, output softmax, frozen layers). */
  notes: string[];
  /**
   * The eNTK engine's own verdict (src/kernel `analyzeModel(model, 'all').unsupported`, the same list
   * a kernel result reports as `unsupportedLayers`): "name (ClassName)[: reason]" per layer, or a
   * topology problem. Empty exactly when `structured` is true (for a supported model).
   */
  unsupported: string[];
}

/** The name of a layer's fused activation from its config ('linear', 'relu', ...), if it has one. */
function activationOf(layer: tf.layers.Layer): string | undefined {
  const config = layer.getConfig() as Record<string, unknown>;
  const a = config.activation;
  return typeof a === 'string' ? a : undefined;
}

function classify(layer: tf.layers.Layer, index: number, rules: Map<string, NtkLayerRule>): LayerSupport {
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
  const rule = rules.get(layer.name);
  if (!rule) return { ...base, role: 'outside', note: 'the model graph cannot be run layer by layer' };
  const notes = [
    `rule ${rule.rule}`,
    ...(rule.rule === 'autodiff' ? ['no structured rule: differentiated alone by autodiff (hybrid)'] : []),
    ...(rule.note ? [rule.note] : []),
    ...(rule.uses > 1 ? [`shared: ${rule.uses} calls`] : []),
    ...(fused ? [fused] : []),
  ];
  return { ...base, role: 'parameterised', note: notes.join('; ') };
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
      `unsupported: output shape [${outShape.map((d, k) => d ?? (k === 0 ? 'batch' : 'null')).join(', ')}]; the eNTK needs logits of shape [batch, V]`,
    );
  }
  const leaves = leafLayers(model);
  // One source of truth: the engine's analysis and plan decide the rule of every layer (analysed
  // with logits 'pre-activation' so that a probability output is reported, not thrown).
  let unsupported: string[] = [];
  const rules = new Map<string, NtkLayerRule>();
  if (supported && leaves.some((l) => countParameters(l) > 0)) {
    try {
      const analysis = analyzeModel(model, 'all', { logits: 'pre-activation' });
      unsupported = analysis.unsupported;
      if (analysis.graph) for (const r of planStructured(analysis).rules) rules.set(r.name, r);
      else notes.push(`${unsupported.join('; ')}: implementation 'jacobian' is used`);
      if (analysis.strippedOutput) {
        notes.push(
          `the output layer ${analysis.strippedOutput} applies softmax/sigmoid: its outputs are probabilities, not logits — the eNTK is refused unless --logits pre-activation (the kernel of the values before it)`,
        );
      }
    } catch (e) {
      if (!(e instanceof EntkError)) throw e;
      supported = false;
      notes.push(`unsupported: ${e.message}`);
    }
  }
  const layers = leaves.map((l, i) => classify(l, i, rules));
  if (!supported) for (const l of layers) if (l.role === 'outside') l.note = undefined;
  const frozen = layers.filter((l) => l.note?.startsWith('frozen'));
  if (frozen.length > 0) {
    notes.push(`frozen layers (not in the eNTK's parameters): ${frozen.map((l) => l.name).join(', ')}`);
  }
  const outside = supported ? layers.filter((l) => l.role === 'outside') : [];
  return {
    file,
    modelClass: model instanceof tf.Sequential ? 'Sequential' : model.getClassName(),
    inputShape: model.inputs[0]!.shape.slice(1).map((d) => d ?? -1),
    numOutputs: outShape[outShape.length - 1] ?? -1,
    parameters: layers.reduce((s, l) => s + l.parameters, 0),
    supported,
    structured: supported && outside.length === 0 && unsupported.length === 0,
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
 * ("name (ClassName): why"), then model-level problems (a graph the structured path cannot run, unsupported shapes).
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
 * The model.json of a model path: the file itself, or the model.json in a directory (absolute).
 * `argument` names the path in the error when there is none.
 */
export async function resolveModelJson(target: string, argument = 'model'): Promise<string> {
  const resolved = path.resolve(target);
  const stat = await fs.stat(resolved).catch(() => null);
  const file = stat?.isDirectory() ? path.join(resolved, 'model.json') : resolved;
  if (!(await fs.stat(file).catch(() => null))?.isFile()) {
    throw new InvalidArgumentError(
      argument,
      target,
      'an existing model.json file or a directory containing one',
    );
  }
  return file;
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
  const file = await resolveModelJson(target);
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
